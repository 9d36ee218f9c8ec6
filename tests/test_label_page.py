"""The Label generation page, its store queries and analysis helpers, on a small hand-made database whose
numbers are worked out in the comments."""

from __future__ import annotations

import base64
import json
import math
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from analysis.candidates import CANDIDATE_SCHEMA, candidates_from_logged_nlu, canonical_json, target_key
from analysis.labels import evaluation as lm
from app import store
from app.ingest import ingest_files
from app.jobs import labels as label_jobs
from app.review import session as review_session
from components import charts
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
XSS = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](http://evil.example) **bold**"
BOSTON = [{"type": "place_name", "value": "boston"}]

# One turn per dialogue dN: (gold_intent, logged nlu_intent, the model's intent, its score).
# On the 7 turns with a gold intent, by score: 0.99 T, 0.97 T, 0.935 T, 0.91 F, 0.85 T, 0.70 T, 0.40 F, so
# precision at threshold 0.935 = 3/3 (coverage 3/7), at 0.91 = 3/4, at 0.85 = 4/5, at 0.70 = 5/6, at 0.40 = 5/7:
# the lowest threshold reaching 95% is 0.935 (the default; between the slider's 0.01 steps).
INTENTS = [("weather_query", "weather_query", "weather_query", 0.99),
           ("weather_query", "weather_query", "weather_query", 0.97),
           ("music_play", "music_play", "music_play", 0.935),
           ("music_play", "weather_query", "alarm_set", 0.91),
           ("alarm_set", "alarm_set", "alarm_set", 0.85),
           ("alarm_set", "music_play", "alarm_set", 0.70),
           (None, "weather_query", "music_play", 0.60),  # d6: no gold; its request is the XSS text
           ("music_play", "music_play", "weather_query", 0.40)]
# slots on d0..d2 (the other turns have no gold_slots): (gold, proposed, score)
# by score: 0.9 wrong, 0.8 right (case and spaces normalised), 0.6 right ([] = [])
SLOTS = [(BOSTON, [{"type": "place_name", "value": " Boston "}], 0.8), ([], [], 0.6),
         ([], [{"type": "artist", "value": "miles"}], 0.9)]
# defect: (gold_failure_point, proposed defect, score); d3 proposes no defect candidate
DEFECTS = [("NO_FAILURE", False, 0.9), ("ASR", True, 0.8), ("NLU", False, 0.7)]
DECIDED = {1: "accept", 7: "reject"}  # zoe's decisions on the intent candidates of d1 and d7 (run 2)


def turn_log() -> list[dict]:
    out = []
    for i, (gold, logged, _, _) in enumerate(INTENTS):
        slots = SLOTS[i][0] if i < len(SLOTS) else None
        fp = DEFECTS[i][0] if i < len(DEFECTS) else None
        out.append(make_turn(f"d{i}", 0, gold_intent=gold, nlu_intent=logged, gold_slots=slots, gold_failure_point=fp,
                             gold_goal_start=True if i < 2 else None, asr_text=XSS if i == 6 else f"request {i}",
                             timestamp=f"2026-01-0{1 + i % 5}T10:00:00Z"))
    return out


def row(task: str, dialogue: str, value: object, score: float, version: str, params: str = "{}") -> dict:
    kind, key = target_key(dialogue, 0)
    return {"task": task, "target_kind": kind, "dialogue_id": dialogue, "turn_index": 0, "other_dialogue_id": None,
            "other_turn_index": None, "target_key": key, "value": canonical_json(value), "score": score,
            "distribution": None, "model_name": "label-model", "model_version": version, "model_parameters": params,
            "run_at": None}


def build_db(tmp_path, params: str = "{}"):
    """demo: the turns above; run 1 (older): three intent candidates; run 2: the ones above; run 3: the logged
    NLU's own candidates (not a label-model run). nogold: two turns without gold and one label-model run."""
    path = tmp_path / "labels.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turn_log())], dataset="demo")
    nogold = [make_turn(f"n{i}", 0, gold_failure_point=None, timestamp="2026-02-01T10:00:00Z") for i in range(2)]
    ingest_files(conn, [write_jsonl(tmp_path / "nogold.jsonl", nogold)], dataset="nogold")
    old = [row("intent", f"d{i}", "weather_query", 0.5, "old") for i in range(3)]
    new = [row("intent", f"d{i}", intent, score, "new", params) for i, (*_, intent, score) in enumerate(INTENTS)]
    new += [row("slots", f"d{i}", value, score, "new", params) for i, (_, value, score) in enumerate(SLOTS)]
    new += [row("defect", f"d{i}", value, score, "new", params) for i, (_, value, score) in enumerate(DEFECTS)]
    for rows in (old, new):
        store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    store.insert_candidates(conn, pa.Table.from_pylist([row("intent", f"n{i}", "weather_query", 0.8 + i / 10, "ng")
                                                        for i in range(2)], schema=CANDIDATE_SCHEMA))
    ids = intent_ids(conn)
    for i, verdict in DECIDED.items():
        store.insert_decision(conn, decision_id=f"00000000-0000-0000-0000-00000000000{i}", candidate_id=ids[i],
                              reviewer="zoe", verdict=verdict)
    conn.close()
    return path


def intent_ids(conn) -> dict[int, int]:
    """Candidate id of run 2's intent candidate per turn number."""
    rows = conn.execute("SELECT dialogue_id, candidate_id FROM candidates WHERE run_id = 2 AND task = 'intent'")
    return {int(d[1:]): c for d, c in rows.fetchall()}


@pytest.fixture
def label_db(tmp_path, monkeypatch):
    path = build_db(tmp_path)
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def open_labels(reviewer: str | None = "ana", **state) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    if reviewer:
        at.session_state["reviewer"] = reviewer
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("app_pages/labels.py").run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


TABLES = {"classes": "support", "disagreements": "logged_intent", "evaluation": "ci_low"}


def frame(at: AppTest, name: str) -> pd.DataFrame:
    """The page's table of that name, known by a column only it has."""
    return next(d.value for d in at.dataframe if TABLES[name] in d.value.columns)


def links(at: AppTest) -> dict[str, dict]:
    return {p.proto.label: parse_qs(p.proto.query_string) for p in at.get("page_link")}


def charts_values(values) -> np.ndarray:
    """Plotly sends numeric arrays as {"dtype", "bdata"} (base64): decode them."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def by_hand_intent() -> tuple[np.ndarray, np.ndarray]:
    gold = [(i, g == m) for i, (g, _, m, _) in enumerate(INTENTS) if g is not None]
    return np.array([ok for _, ok in gold]), np.array([INTENTS[i][3] for i, _ in gold])


def undecided_split(path, threshold: float) -> tuple[set[int], set[int]]:
    """Run 2's undecided intent candidates at or above the threshold, and below it: directly from the tables."""
    conn = store.connect(path)
    try:
        rows = conn.execute("""SELECT candidate_id, score FROM candidates WHERE run_id = 2 AND task = 'intent'
                               AND candidate_id NOT IN (SELECT candidate_id FROM current_decisions)""").fetchall()
    finally:
        conn.close()
    return {c for c, s in rows if s >= threshold}, {c for c, s in rows if s < threshold}


# --- the page ---------------------------------------------------------------------------------------------


def test_curve_and_threshold_metrics_match_direct_computation(label_db):
    at = open_labels()
    assert at.selectbox(key="lbl_run").value == 2  # the newest label-model run; run 3 (logged NLU) is not listed
    assert at.selectbox(key="lbl_run").options == [
        "run 2 · label-model new (14 candidates)", "run 1 · label-model old (3 candidates)"]
    assert at.slider(key="lbl_threshold").value == pytest.approx(0.935)  # the lowest reaching 95%
    ok, scores = by_hand_intent()
    expected = lm.precision_coverage(ok, scores)
    drawn = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    np.testing.assert_allclose(charts_values(drawn["x"]), expected["coverage"])
    np.testing.assert_allclose(charts_values(drawn["y"]), expected["precision"])
    np.testing.assert_allclose(charts_values(drawn["customdata"]).reshape(-1, 2), expected[["threshold", "labelled"]])
    assert metric(at, "Precision above the threshold") == "100.0%"
    assert metric(at, "Coverage") == f"{3 / 7:.1%}"
    above, below = undecided_split(label_db, 0.935)
    assert len(above) == 2 and len(below) == 4  # d1 (decided) and d7 (decided) are in neither
    assert metric(at, "Auto-accepted") == "2" and metric(at, "To review") == "4"

    at.slider(key="lbl_threshold").set_value(0.85).run()  # exactly d4's score: d4 is auto-accepted
    assert metric(at, "Precision above the threshold") == f"{4 / 5:.1%}"
    assert metric(at, "Coverage") == f"{5 / 7:.1%}"
    above, below = undecided_split(label_db, 0.85)
    assert (len(above), len(below)) == (4, 2) and not above & below
    assert metric(at, "Auto-accepted") == "4" and metric(at, "To review") == "2"


def test_per_intent_table(label_db):
    at = open_labels()
    table = frame(at, "classes").set_index("intent")
    # at 0.935: d0, d1 (weather_query) and d2 (music_play) are auto-accepted, all right
    assert list(table.index) == ["music_play", "weather_query", "alarm_set"]
    assert table.loc["music_play", ["support", "accepted", "correct"]].tolist() == [3, 1, 1]
    assert table.loc["music_play", "recall"] == pytest.approx(1 / 3)
    assert table.loc["weather_query", ["support", "accepted", "correct", "precision", "recall"]].tolist() == [
        2, 2, 2, 1.0, 1.0]
    assert table.loc["alarm_set", "accepted"] == 0 and np.isnan(table.loc["alarm_set", "precision"])


def test_disagreements_list_and_log_text_stays_text(label_db):
    at = open_labels()
    odd = frame(at, "disagreements")
    assert list(odd["dialogue_id"]) == ["d3", "d5", "d6", "d7"]  # most confident first
    first = odd.iloc[0]
    assert (first["logged_intent"], first["model_intent"], first["gold"]) == ("weather_query", "alarm_set",
                                                                              "music_play")
    d6 = odd.set_index("dialogue_id").loc["d6"]
    assert d6["request"] == XSS and pd.isna(d6["gold"])
    assert "<script>" not in " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])
    at.selectbox(key="lbl_open").set_value(2).run()
    assert links(at)["Open this dialogue turn by turn"] == {"dialogue": ["d6"]}


def test_bulk_accept_writes_exactly_the_candidates_above_the_threshold(label_db):
    at = open_labels()
    above, below = undecided_split(label_db, 0.935)
    at.button(key="lbl_bulk").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Bulk accept #1: 2 accepted; 2 drawn for audit."
    conn = store.connect(label_db)
    try:
        bulk = conn.execute("SELECT candidate_id, reviewer, verdict FROM decisions WHERE role = 'bulk'").fetchall()
        audit = {c for (c,) in conn.execute("SELECT candidate_id FROM audit_items").fetchall()}
        queue = json.loads(conn.execute("SELECT queue FROM bulk_actions").fetchone()[0])
    finally:
        conn.close()
    assert {c for c, *_ in bulk} == above and {tuple(r[1:]) for r in bulk} == {("ana", "accept")}
    assert audit == above and (queue["task"], queue["run_id"], queue["score_min"]) == ("intent", 2, 0.935)
    assert links(at)["Audit bulk accept #1 (2 drawn)"] == {"audit": ["1"], "order": ["random"], "seed": ["1"]}
    assert metric(at, "Auto-accepted") == "0" and metric(at, "To review") == "4"  # the review half is untouched


@pytest.mark.parametrize("reviewer, read_only", [(None, False), ("ana", True)])
def test_bulk_accept_is_off_without_a_reviewer_or_in_read_only_mode(label_db, monkeypatch, reviewer, read_only):
    if read_only:
        monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_labels(reviewer)
    assert at.button(key="lbl_bulk").disabled
    assert (len(at.warning) == 1) == (reviewer is None)


def test_review_link_carries_the_queue_below_the_threshold(label_db):
    at = open_labels()
    params = links(at)["Review the 4 labels below the threshold"]
    smax = math.nextafter(0.935, 0.0)
    assert params == {"task": ["intent"], "smax": [str(smax)], "run": ["2"]}
    spec, warnings = review_session.spec_from_params({k: v[0] for k, v in params.items()}, "demo")
    assert not warnings and spec.score_max == smax
    review = AppTest.from_file(ENTRY, default_timeout=60)
    review.session_state["reviewer"] = "ana"
    for k, v in params.items():
        review.query_params[k] = v[0]
    review.run()
    review.switch_page("app_pages/review.py").run()
    assert not review.exception, review.exception
    assert metric(review, "Remaining") == "4"


def test_other_tasks_binary_range_and_defaults(label_db):
    at = open_labels()
    at.segmented_control(key="lbl_task").set_value("slots").run()
    # slots by score: 0.9 wrong, 0.8 right, 0.6 right: never 95%, so the default is 0.9
    assert at.slider(key="lbl_threshold").value == pytest.approx(0.9) and at.slider(key="lbl_threshold").min == 0.0
    assert metric(at, "Precision above the threshold") == "0.0%" and metric(at, "Coverage") == f"{1 / 3:.1%}"
    at.segmented_control(key="lbl_task").set_value("defect").run()
    # defect: 0.9 right (no failure), 0.8 right (ASR), 0.7 wrong (NLU is a defect): 95% down to 0.8
    assert at.slider(key="lbl_threshold").value == pytest.approx(0.8) and at.slider(key="lbl_threshold").min == 0.5
    assert metric(at, "Auto-accepted") == "2" and metric(at, "To review") == "1"
    at.segmented_control(key="lbl_task").set_value("goal_success").run()
    assert "proposed no goal_success labels" in at.info[0].value
    at.segmented_control(key="lbl_task").set_value("intent").run()
    at.selectbox(key="lbl_run").set_value(1).run()  # the old run: every label 0.5, 2 of 3 right
    assert at.slider(key="lbl_threshold").value == pytest.approx(0.9)
    assert metric(at, "Auto-accepted") == "0" and metric(at, "To review") == "3"


def test_threshold_returns_to_its_default_after_visiting_another_page(label_db):
    at = open_labels()
    at.slider(key="lbl_threshold").set_value(0.5).run()
    at.switch_page("app_pages/overview.py").run()
    at.switch_page("app_pages/labels.py").run()
    assert not at.exception and at.slider(key="lbl_threshold").value == pytest.approx(0.935)


def test_page_without_a_label_model_run(tmp_path, monkeypatch):
    path = tmp_path / "empty.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("x", 0)])], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_labels()
    assert "The label-generation model has not scored this dataset yet" in at.info[0].value
    assert at.button(key="fam_labels_train_go")  # the page offers the job itself


def test_dataset_without_gold_says_so_and_shows_counts(label_db):
    at = open_labels(dataset="nogold")
    assert "has no gold_intent" in at.info[0].value
    assert not at.get("plotly_chart") and "Precision above the threshold" not in [m.label for m in at.metric]
    assert metric(at, "Auto-accepted") == "1" and metric(at, "To review") == "1"  # scores 0.8 and 0.9 at 0.9


def test_label_store_queries(label_db):
    assert store.LABEL_MODEL == label_jobs.MODEL_NAME
    conn = store.connect(label_db)
    try:
        runs = store.list_label_runs(conn, "demo")
        assert runs["run_id"].tolist() == [2, 1] and runs["candidates"].tolist() == [14, 3]
        assert store.list_label_runs(conn, "nogold")["run_id"].tolist() == [4]
        got = store.list_label_candidates(conn, "demo", 2, "intent")
        assert got["dialogue_id"].tolist() == [f"d{i}" for i in range(8)]
        assert got["value"].tolist() == [canonical_json(m) for *_, m, _ in INTENTS]
        assert got["gold"].tolist() == [None if g is None else json.dumps(g) for g, *_ in INTENTS]
        slots = store.list_label_candidates(conn, "demo", 2, "slots")
        assert [None if g is None else json.loads(g) for g in slots["gold"]] == [BOSTON, [], []]
        defect = store.list_label_candidates(conn, "demo", 2, "defect")
        assert defect["gold"].tolist() == ["false", "true", "true"]
        odd = store.list_intent_disagreements(conn, "demo", 2, limit=2)
        assert odd["dialogue_id"].tolist() == ["d3", "d5"]
        assert list(odd.columns) == ["dialogue_id", "turn_index", "request", "logged_intent", "model_intent",
                                     "score", "gold"]
        with pytest.raises(ValueError, match="task must be one of"):
            store.list_label_candidates(conn, "demo", 2, "failure_point")
    finally:
        conn.close()


def test_below_threshold_is_the_exact_complement_of_a_bulk_accept(label_db):
    conn = store.connect(label_db)
    try:
        spec = store.QueueSpec(dataset="demo", task="intent", run_id=2)
        everything = store.count_queue(conn, "ana", spec)
        for threshold in (0.4, 0.85, 0.935, 0.99, 1.0):
            below = store.below_threshold(spec, threshold)
            assert below.score_max < threshold and math.nextafter(below.score_max, 1.0) == threshold
            above = store.count_bulk_preview(conn, "ana", spec, threshold)
            assert above + store.count_queue(conn, "ana", below) == everything == 6
            assert above == len(undecided_split(label_db, threshold)[0])
        assert store.below_threshold(spec, 0.0) is None
        assert store.below_threshold(store.QueueSpec(dataset="demo", score_max=0.5), 0.9).score_max == 0.5
    finally:
        conn.close()


def test_candidate_correct():
    assert lm.candidate_correct("intent", '"a"', '"a"') is True
    assert lm.candidate_correct("intent", '"a"', '"b"') is False
    assert lm.candidate_correct("intent", '"a"', None) is None
    assert lm.candidate_correct("slots", json.dumps([{"type": "t", "value": "New  York"}]),
                                json.dumps([{"type": "t", "value": "new york"}])) is True
    assert lm.candidate_correct("slots", "[]", json.dumps(BOSTON)) is False
    assert lm.candidate_correct("slots", "[]", "[]") is True
    assert lm.candidate_correct("defect", "false", "false") is True
    assert lm.candidate_correct("goal_start", "true", "false") is False
    with pytest.raises(ValueError, match="no gold comparison"):
        lm.candidate_correct("failure_point", '"ASR"', '"ASR"')
    got = lm.candidates_correct("intent", ['"a"', '"a"', '"a"'], ['"a"', None, '"b"'])
    np.testing.assert_array_equal(got, [1.0, np.nan, 0.0])


def test_point_at_is_the_curve_row_at_the_threshold():
    ok, scores = by_hand_intent()
    curve = lm.precision_coverage(ok, scores)
    for t in (0.99, 0.95, 0.935, 0.9, 0.5, 0.0):
        n, coverage, precision = lm.point_at(ok, scores, t)
        row = curve[curve["threshold"] >= t].iloc[-1]
        assert (n, coverage, precision) == (row["labelled"], pytest.approx(row["coverage"]),
                                            pytest.approx(row["precision"]))
    n, coverage, precision = lm.point_at(ok, scores, 0.995)
    assert n == 0 and coverage == 0.0 and np.isnan(precision)


def test_per_intent_at_by_hand():
    ok, scores = by_hand_intent()
    values = [canonical_json(m) for g, _, m, _ in INTENTS if g is not None]
    golds = [canonical_json(g) for g, *_ in INTENTS if g is not None]
    table = lm.per_intent_at(values + ['"x"'], golds + [None], list(scores) + [0.99], 0.85).set_index("intent")
    # at 0.85: d0, d1 weather (right), d2 music (right), d3 alarm (wrong, gold music), d4 alarm (right); the
    # candidate without gold is left out
    assert table.loc["alarm_set", ["support", "accepted", "correct"]].tolist() == [2, 2, 1]
    assert table.loc["alarm_set", "precision"] == 0.5 and table.loc["alarm_set", "recall"] == 0.5
    assert table.loc["music_play", ["support", "accepted", "correct"]].tolist() == [3, 1, 1]
    assert "x" not in table.index
    assert lm.per_intent_at([], [], [], 0.5).empty


def test_flatten_metrics():
    table = lm.flatten_metrics({"f1": {"value": 0.5, "ci": [0.4, 0.6]}, "n": 3, "name": "skip me",
                                "curve": {"precision_at_coverage": {"50%": 0.9}}})
    assert table["metric"].tolist() == ["f1", "n", "curve.precision_at_coverage.50%"]
    assert table["value"].tolist() == [0.5, 3.0, 0.9] and table["ci_low"].isna().tolist() == [False, True, True]


def test_precision_coverage_chart_thins_long_curves():
    curve = lm.precision_coverage(np.arange(5000) % 3 > 0, np.linspace(0, 1, 5000))
    fig = charts.precision_coverage(curve, at=(0.5, 0.6), max_points=100)
    line, mark = fig.data
    assert len(line.x) == 100 and line.x[0] == curve["coverage"].iloc[0] and line.x[-1] == 1.0
    assert (mark.x, mark.y) == ((0.5,), (0.6,))
    small = charts.precision_coverage(curve.head(10))
    assert list(small.data[0].y) == curve["precision"].head(10).tolist() and len(small.data) == 1
