"""Simulated reviewers: the rule (analysis), the bulk decision writer (store), the command, the pages they feed."""

from __future__ import annotations

import json
import math
import re

import duckdb
import pyarrow as pa
import pytest

from analysis.candidates import candidates_from_logged_nlu, canonical_json
from analysis.names import lookalike_key, normalise_name
from analysis.simulated_reviewers import (
    DECISION_SCHEMA,
    MAX_REVIEWERS,
    SimulationConfig,
    decision_id,
    reviewer_names,
    simulate_reviews,
)
from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn, open_app_page, write_jsonl
from tests.test_cli import turnlens

# turnlens() runs in this process, without a timeout of its own (tests/test_cli.py)
pytestmark = pytest.mark.timeout(600)

A, B = "sim-reviewer-a (simulated)", "sim-reviewer-b (simulated)"


def cand(cid: int, task: str, value: object, dialogue: str = "d", turn: int | None = 0) -> dict:
    return {"candidate_id": cid, "task": task, "value": canonical_json(value), "score": 0.5,
            "dialogue_id": dialogue, "turn_index": turn}


def gold_turn(dialogue: str = "d", turn: int = 0, **fields) -> dict:
    return {"dialogue_id": dialogue, "turn_index": turn, **fields}


def binomial_bound(n: int, p: float, sigmas: float = 5.0) -> float:
    """Half-width of a 5-sigma band around n * p: a seeded draw outside it would be a one-in-1.7-million event."""
    return sigmas * math.sqrt(n * p * (1 - p))


def by_candidate(sim) -> dict[int, list]:
    out: dict[int, list] = {}
    for d in sim.decisions:
        out.setdefault(d.candidate_id, []).append(d)
    return out


# --- the rule -------------------------------------------------------------------------------------------------

def test_a_transcript_is_judged_by_the_reference_and_corrected_keeping_its_nbest():
    from analysis.rescoring.transcripts import candidate_value

    def proposal(text: str) -> dict:
        hyps = ["play jaz", text]
        return candidate_value("play jaz", hyps, [-1.0, -1.1], [-9.0, -8.0], [-2.0, -1.9], 1, lam=0.1, beta=0.0)

    cands = [cand(1, "transcript", proposal("Play  Jazz"), "d1"), cand(2, "transcript", proposal("play jars"), "d2"),
             cand(3, "transcript", proposal("play jazz"), "d3")]
    gold = [gold_turn("d1", reference_text="play jazz"), gold_turn("d2", reference_text="play jazz"),
            gold_turn("d3", reference_text=None)]
    sim = simulate_reviews(cands, gold, SimulationConfig(reviewers=1, error_rate=0.0))
    decided = {d.candidate_id: d for d in sim.decisions}
    assert decided[1].verdict == "accept"  # the same words: case and spacing aside
    assert decided[2].verdict == "correct"
    fixed = json.loads(decided[2].corrected_value)
    assert fixed["text"] == "play jazz" and fixed["corrected"] is True
    assert fixed["hypotheses"] == proposal("play jars")["hypotheses"]
    assert 3 not in decided and sim.without_gold == {"transcript": 1}


def test_names_say_they_are_simulated_are_stored_as_given_and_look_like_no_other():
    names = reviewer_names(MAX_REVIEWERS)
    assert names[:2] == (A, B)
    assert all(normalise_name(n) == n and n.endswith(" (simulated)") for n in names)
    assert len({lookalike_key(n) for n in names}) == MAX_REVIEWERS
    for bad in (0, MAX_REVIEWERS + 1, True, 2.0):
        with pytest.raises(ValueError):
            reviewer_names(bad)


def test_error_free_reviewers_accept_gold_correct_to_gold_and_skip_what_has_no_gold():
    slots_gold = [{"type": "place_name", "value": "Boston"}, {"type": "date", "value": "today"}]
    gold = [gold_turn("d", 0, gold_intent="weather_query", gold_slots=slots_gold, gold_goal_start=True,
                      gold_goal_success=False, gold_failure_point="ASR", gold_skills=["weather"]),
            gold_turn("d", 1, gold_intent=None, gold_skills=["music", "radio"], gold_failure_point="NO_FAILURE"),
            gold_turn("e", 0)]
    candidates = [
        cand(1, "intent", "weather_query"),  # equals gold
        cand(2, "intent", "music_play", turn=0, dialogue="d"),  # wrong: corrected to gold
        cand(3, "slots", [{"type": "date", "value": " TODAY"}, {"type": "place_name", "value": "boston"}]),  # a set
        cand(4, "slots", [{"type": "place_name", "value": "austin"}]),
        cand(5, "goal_start", True), cand(6, "goal_success", True), cand(7, "defect", True),
        cand(8, "failure_point", "NLU"), cand(9, "skill", "weather"), cand(10, "skill", "news"),
        cand(11, "skill", "podcast", turn=1),  # two valid skills: nothing single to correct to
        cand(12, "defect", False, turn=1),
        cand(13, "intent", "weather_query", turn=1),  # the turn has no gold intent
        cand(14, "rewrite", "play jazz"),  # no gold field for rewrites
        cand(15, "intent", "weather_query", turn=None),  # a dialogue target
        cand(16, "intent", "x", dialogue="e"),  # a turn without gold fields
        cand(17, "intent", "x", dialogue="nowhere"),  # a turn not in the gold table
    ]
    sim = simulate_reviews(candidates, gold, SimulationConfig(reviewers=2, error_rate=0.0, seed=1))
    got = {cid: {(d.reviewer, d.verdict, d.corrected_value) for d in ds} for cid, ds in by_candidate(sim).items()}

    def both(verdict: str, value: object = None) -> set:
        corrected = None if value is None else canonical_json(value)
        return {(A, verdict, corrected), (B, verdict, corrected)}

    assert got == {
        1: both("accept"), 2: both("correct", "weather_query"), 3: both("accept"),
        4: both("correct", slots_gold), 5: both("accept"), 6: both("correct", False), 7: both("accept"),
        8: both("correct", "ASR"), 9: both("accept"), 10: both("correct", "weather"), 11: both("reject"),
        12: both("accept"),
    }
    assert sim.without_gold == {"intent": 4, "rewrite": 1}
    assert (sim.candidates, sim.with_gold, sim.decided, sim.shared) == (17, 12, 12, 12)
    assert not any(d.erred for d in sim.decisions)


def test_an_error_inverts_the_judgement_of_the_proposal():
    gold = [gold_turn("d", i, gold_intent="a") for i in range(400)]
    candidates = [cand(i, "intent", "a" if i % 2 else "b", turn=i) for i in range(400)]
    sim = simulate_reviews(candidates, gold, SimulationConfig(reviewers=2, error_rate=0.5, seed=3))
    erred = [d for d in sim.decisions if d.erred]
    assert erred and len(erred) < len(sim.decisions)
    for d in sim.decisions:
        right = d.candidate_id % 2 == 1
        if not d.erred:
            assert (d.verdict, d.corrected_value) == (("accept", None) if right else ("correct", '"a"'))
        else:  # a right proposal rejected, a wrong one accepted
            assert (d.verdict, d.corrected_value) == (("reject", None) if right else ("accept", None))


def test_each_reviewer_errs_at_the_stated_rate_independently():
    n, rate = 20_000, 0.1
    gold = [gold_turn("d", i, gold_intent="a") for i in range(n)]
    candidates = [cand(i, "intent", "a" if i % 3 else "b", turn=i) for i in range(n)]
    sim = simulate_reviews(candidates, gold, SimulationConfig(reviewers=2, error_rate=rate, seed=11))
    pairs = by_candidate(sim)
    assert len(pairs) == n and all(len(ds) == 2 for ds in pairs.values())
    for name in (A, B):
        # counted from the verdicts, not from the erred flag: a decision that is not the error-free one
        wrong = sum(d.verdict != d.truth for d in sim.decisions if d.reviewer == name)
        assert abs(wrong - n * rate) <= binomial_bound(n, rate), (name, wrong)
        assert sim.errors()[name] == (n, wrong)
    both = sum(all(d.erred for d in ds) for ds in pairs.values())  # independent: rate squared
    assert abs(both - n * rate**2) <= binomial_bound(n, rate**2)


def test_share_and_overlap_decide_who_decides_what():
    n = 4_000
    gold = [gold_turn("d", i, gold_intent="a") for i in range(n)]
    candidates = [cand(i, "intent", "a", turn=i) for i in range(n)]
    half = simulate_reviews(candidates, gold, SimulationConfig(reviewers=3, share=0.5, overlap_share=0.25, seed=5))
    assert abs(half.decided - n * 0.5) <= binomial_bound(n, 0.5)
    assert abs(half.shared - half.decided * 0.25) <= binomial_bound(half.decided, 0.25)
    sizes = [len(ds) for ds in by_candidate(half).values()]
    assert sorted(set(sizes)) == [1, 3] and sizes.count(3) == half.shared
    singles = [ds[0].reviewer for ds in by_candidate(half).values() if len(ds) == 1]
    for name in reviewer_names(3):  # the candidates decided by one reviewer are spread evenly
        assert abs(singles.count(name) - len(singles) / 3) <= binomial_bound(len(singles), 1 / 3)
    alone = simulate_reviews(candidates, gold, SimulationConfig(reviewers=2, overlap_share=0.0, seed=5))
    assert alone.shared == 0 and len(alone.decisions) == n


def test_deterministic_and_stable_when_candidates_are_added():
    gold = [gold_turn("d", i, gold_intent="a") for i in range(300)]
    candidates = [cand(i, "intent", "a" if i % 4 else "b", turn=i) for i in range(300)]
    config = SimulationConfig(reviewers=2, error_rate=0.2, share=0.6, overlap_share=0.7, seed=7)
    first = simulate_reviews(candidates[:200], gold, config)
    assert simulate_reviews(list(reversed(candidates[:200])), gold, config).decisions == first.decisions
    more = simulate_reviews(candidates, gold, config)
    assert set(first.decisions) <= set(more.decisions)  # earlier decisions repeat exactly; new ones are added
    assert {d.decision_id for d in first.decisions} == {decision_id(7, d.reviewer, d.candidate_id)
                                                        for d in first.decisions}
    other = simulate_reviews(candidates[:200], gold, SimulationConfig(reviewers=2, error_rate=0.2, share=0.6,
                                                                      overlap_share=0.7, seed=8))
    assert not {d.decision_id for d in other.decisions} & {d.decision_id for d in first.decisions}
    assert first.table().schema == DECISION_SCHEMA and first.table().num_rows == len(first.decisions)


@pytest.mark.parametrize("bad", [{"error_rate": 0.51}, {"error_rate": -0.01}, {"error_rate": float("nan")},
                                 {"share": 0.0}, {"share": 1.2}, {"overlap_share": -0.1}, {"reviewers": 9},
                                 {"seed": 1.5}])
def test_config_refuses_values_out_of_range(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


def test_repeated_candidates_or_turns_are_refused():
    with pytest.raises(ValueError, match="appears twice"):
        simulate_reviews([cand(1, "intent", "a"), cand(1, "intent", "b")], [gold_turn(gold_intent="a")],
                         SimulationConfig())
    with pytest.raises(ValueError, match="appears twice"):
        simulate_reviews([], [gold_turn(gold_intent="a"), gold_turn(gold_intent="b")], SimulationConfig())


# --- the store ------------------------------------------------------------------------------------------------

def _intents(i: int) -> dict:
    return {"gold_intent": "weather_query", "nlu_intent": "weather_query" if i % 3 else "music_play",
            "nlu_confidence": 0.3 + 0.6 * (i % 10) / 10}


@pytest.fixture
def review_db(tmp_path):
    """A database with 120 turns (gold intents, slots), their logged-NLU candidates, and nothing decided."""
    conn = store.connect(tmp_path / "r.duckdb")
    turns = [make_turn("d", i, gold_slots=[{"type": "place_name", "value": "boston"}], **_intents(i))
             for i in range(120)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    yield conn
    conn.close()


def simulate(conn, **config):
    return simulate_reviews(store.list_candidate_targets(conn, "demo").to_pylist(),
                            store.list_turn_gold(conn, "demo").to_pylist(), SimulationConfig(**config))


def test_store_appends_many_decisions_once_in_one_transaction(review_db):
    sim = simulate(review_db, reviewers=2, error_rate=0.1, seed=7)
    assert len(sim.decisions) == 480  # 120 intent and 120 slots candidates, two reviewers each
    result = store.insert_simulated_decisions(review_db, sim.table())
    assert (result.rows_read, result.rows_added, result.rows_already_present) == (480, 480, 0)
    rows = review_db.execute("""SELECT decision_id::VARCHAR, candidate_id, reviewer, verdict, corrected_value, role
                                FROM decisions ORDER BY seq""").fetchall()
    assert sorted(r[:5] for r in rows) == sorted(tuple(d.values()) for d in sim.table().to_pylist())
    assert {r[5] for r in rows} == {"review"}
    # current_timestamp is the start of the transaction: one value for all 480 rows means one transaction
    assert review_db.execute("SELECT count(DISTINCT decided_at) FROM decisions").fetchone()[0] == 1
    rerun = simulate(review_db, reviewers=2, error_rate=0.1, seed=7)
    again = store.insert_simulated_decisions(review_db, rerun.table())
    assert (again.rows_added, again.rows_already_present) == (0, 480)
    assert store.count_decisions(review_db) == 480
    # the decisions count as people's reviews for agreement and calibration
    labels = store.list_decision_labels(review_db, "demo")
    assert len(labels) == 480 and set(labels["reviewer"]) == {A, B}
    assert not store.list_scored_verdicts(review_db, "demo").empty


def test_store_adds_only_the_new_candidates_of_a_rerun(review_db):
    store.insert_simulated_decisions(review_db, simulate(review_db, share=0.5, seed=2).table())
    before = store.count_decisions(review_db)
    result = store.insert_simulated_decisions(review_db, simulate(review_db, share=1.0, seed=2).table())
    assert result.rows_already_present == before and result.rows_added == 480 - before


@pytest.mark.parametrize("other", [{"error_rate": 0.3}, {"seed": 8}, {"share": 0.5}])
def test_store_refuses_when_a_simulated_reviewer_already_decided_differently(review_db, other):
    store.insert_simulated_decisions(review_db, simulate(review_db, error_rate=0.1, seed=7).table())
    with pytest.raises(store.IngestConflictError, match=re.escape(f"{A!r} already has")):
        store.insert_simulated_decisions(review_db, simulate(review_db, **{"error_rate": 0.1, "seed": 7} | other
                                                             ).table())
    assert store.count_decisions(review_db) == 480


def test_a_simulation_of_another_dataset_is_not_a_conflict(review_db, tmp_path):
    store.insert_simulated_decisions(review_db, simulate(review_db, error_rate=0.1, seed=7).table())
    turns = [make_turn("e", i, **_intents(i)) for i in range(10)]
    ingest_files(review_db, [write_jsonl(tmp_path / "other.jsonl", turns)], dataset="other")
    store.insert_candidates(review_db, candidates_from_logged_nlu(store.list_nlu_outputs(review_db, "other")))
    sim = simulate_reviews(store.list_candidate_targets(review_db, "other").to_pylist(),
                           store.list_turn_gold(review_db, "other").to_pylist(), SimulationConfig(seed=7))
    assert store.insert_simulated_decisions(review_db, sim.table()).rows_added == len(sim.decisions) > 0
    # the first dataset's decisions still guard it
    with pytest.raises(store.IngestConflictError, match=re.escape(f"{A!r} already has")):
        store.insert_simulated_decisions(review_db, simulate(review_db, error_rate=0.1, seed=8).table())


def test_store_refuses_a_name_a_person_decided_under(review_db):
    store.insert_decision(review_db, decision_id="00000000-0000-0000-0000-000000000001", candidate_id=1,
                          reviewer=A, verdict="reject")
    with pytest.raises(store.IngestConflictError, match="already has 1 stored decision"):
        store.insert_simulated_decisions(review_db, simulate(review_db, seed=7).table())
    assert store.count_decisions(review_db) == 1


def test_store_writes_nothing_when_one_row_is_bad(review_db):
    table = simulate(review_db, seed=7).table()
    rows = table.to_pylist()
    rows[-1] = rows[-1] | {"candidate_id": 999_999}
    with pytest.raises(store.IngestConflictError, match="#999999: no such candidate"):
        store.insert_simulated_decisions(review_db, pa.Table.from_pylist(rows, schema=DECISION_SCHEMA))
    assert store.count_decisions(review_db) == 0


@pytest.mark.parametrize("change, message", [
    ({"reviewer": "alice"}, "not a simulated reviewer"),
    ({"reviewer": " sim-reviewer-a  (simulated)"}, "not a simulated reviewer"),
    ({"verdict": "retract"}, "accepts, rejects or corrects"),
    ({"verdict": "correct", "corrected_value": None}, "accepts, rejects or corrects"),
])
def test_store_refuses_rows_that_are_not_simulated_decisions(review_db, change, message):
    rows = simulate(review_db, reviewers=1, seed=7).table().to_pylist()
    rows[0] = rows[0] | change
    with pytest.raises(ValueError, match=message):
        store.insert_simulated_decisions(review_db, pa.Table.from_pylist(rows, schema=DECISION_SCHEMA))
    assert store.count_decisions(review_db) == 0


def test_store_refuses_a_simulated_name_that_looks_like_a_stored_one(review_db):
    lookalike = A.replace("a (", "\u0430 (")  # Cyrillic a
    store.insert_decision(review_db, decision_id="00000000-0000-0000-0000-000000000002", candidate_id=1,
                          reviewer=lookalike, verdict="accept")
    with pytest.raises(ValueError, match="looks like the stored reviewer name"):
        store.insert_simulated_decisions(review_db, simulate(review_db, seed=7).table())
    assert store.count_decisions(review_db) == 1


# --- the command ----------------------------------------------------------------------------------------------

def _cli_db(tmp_path, *, candidates: bool = True):
    db = tmp_path / "cli.duckdb"
    conn = store.connect(db)
    turns = [make_turn("d", i, **_intents(i)) for i in range(60)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    if candidates:
        store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    return db


def test_cli_simulates_reviews_says_so_and_adds_nothing_the_second_time(tmp_path):
    db = _cli_db(tmp_path)
    args = ("simulate-reviews", "--dataset", "demo", "--reviewers", "2", "--error-rate", "0.1", "--share", "1",
            "--overlap-share", "1.0", "--seed", "7", "--db", str(db))
    out = turnlens(*args)
    assert out.returncode == 0, out.stderr
    assert "SIMULATED reviews (not people's decisions) of dataset 'demo'" in out.stdout
    assert "error rate 0.1, seed 7" in out.stdout
    # the 60 slots candidates have no gold slots in these turns: skipped and counted
    assert "120 candidates; 60 without a gold value skipped (slots 60); 60 of the 60 with gold decided" in out.stdout
    assert f"{A}: 60 decisions" in out.stdout and f"{B}: 60 decisions" in out.stdout
    assert "120 decisions added, 0 already present" in out.stdout
    again = turnlens(*args)
    assert again.returncode == 0 and "0 decisions added, 120 already present" in again.stdout
    conn = duckdb.connect(str(db), read_only=True)
    try:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 120
    finally:
        conn.close()
    refused = turnlens(*args[:-4], "--seed", "8", "--db", str(db))
    assert refused.returncode == 1 and "nothing was written" in refused.stderr and "Traceback" not in refused.stderr


def test_cli_errors_are_clear(tmp_path):
    db = _cli_db(tmp_path)
    base = ("simulate-reviews", "--db", str(db))
    cases = [
        (("--dataset", "nope"), 2, "no dataset 'nope'"),
        (("--dataset", "demo", "--error-rate", "0.6"), 2, "--error-rate must be between 0 and 0.5, got 0.6"),
        (("--dataset", "demo", "--error-rate", "-0.1"), 2, "--error-rate must be between 0 and 0.5"),
        (("--dataset", "demo", "--reviewers", "9"), 2, "--reviewers must be from 1 to 8"),
        (("--dataset", "demo", "--overlap-share", "1.5"), 2, "--overlap-share must be between 0 and 1"),
        (("--dataset", "demo", "--share", "0"), 2, "--share must be above 0"),
    ]
    for extra, code, message in cases:
        out = turnlens(*base, *extra)
        assert out.returncode == code and message in out.stderr and "Traceback" not in out.stderr, (extra, out.stderr)
    (tmp_path / "empty").mkdir()
    empty = _cli_db(tmp_path / "empty", candidates=False)
    out = turnlens("simulate-reviews", "--dataset", "demo", "--db", str(empty))
    assert out.returncode == 2 and "has no candidates to decide" in out.stderr
    out = turnlens("simulate-reviews", "--dataset", "demo", "--db", str(tmp_path / "missing.duckdb"))
    assert out.returncode == 2 and "no such database" in out.stderr


# --- the pages, on the database `make run` builds for the sample ----------------------------------------------

def makefile_simulation_args() -> list[str]:
    """The arguments `make run` (app/workbench.py) passes to `turnlens simulate-reviews` for the sample."""
    from app.workbench import SIMULATED_REVIEWS

    return list(SIMULATED_REVIEWS)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    from app import cli

    db = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    assert cli.main(["ingest", str(ROOT / "sample_data" / "turns.jsonl.gz"), "--db", str(db), "--dataset", "sample",
                     "--quiet"]) == 0
    assert cli.main(["candidates", "from-logs", "--dataset", "sample", "--db", str(db)]) == 0
    assert cli.main(["simulate-reviews", *makefile_simulation_args(), "--db", str(db)]) == 0
    return db


def test_sample_decisions_are_a_few_hundred_pairs_per_task(sample_db):
    conn = store.connect(sample_db, read_only=True)
    try:
        labels = store.list_decision_labels(conn, "sample")
    finally:
        conn.close()
    pairs = labels.groupby(["task", "item"]).size()
    assert (pairs == 2).all()
    assert pairs.groupby("task").size().min() >= 300


def test_agreement_page_shows_kappa_on_the_sample(sample_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_DB", str(sample_db))
    at = open_app_page("app_pages/agreement.py")
    assert not at.info, [i.value for i in at.info]
    table = at.dataframe[0].value.set_index("task")
    assert set(table.index) == {"intent", "slots"}
    assert (table["statistic"] == "cohen_kappa").all() and (table["reviewers"] == 2).all()
    assert (table["items"] >= 300).all()
    assert table["value"].between(0.6, 0.95).all()  # 10% errors each: about 0.8, never perfect
    assert any("candidate(s) whose reviewers disagree" in c.value for c in at.caption)


def test_calibration_page_draws_the_sample(sample_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_DB", str(sample_db))
    at = open_app_page("app_pages/calibration.py")
    assert not at.info, [i.value for i in at.info]
    assert at.get("plotly_chart"), "no reliability figure"
    groups = at.selectbox(key="calib_group").options
    assert [g.split(" · ")[0] for g in groups] == ["intent", "slots"], groups
    labels = {m.label: m.value for m in at.metric}
    assert set(labels) == {"Lowest threshold", "Precision above it", "Coverage"}, labels
