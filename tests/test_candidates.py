"""Candidate files: validated like logs (FILE:LINE: field), all or nothing, idempotent; the logged-NLU source."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.candidates import candidates_from_logged_nlu, read_candidates, target_key
from analysis.logs import LogFormatError
from app import store
from app.ingest import ingest_files
from tests.helpers import make_turn, write_jsonl


def cand(**kw) -> dict:
    base = {"task": "intent", "dialogue_id": "d1", "turn_index": 0, "value": "weather_query", "score": 0.7,
            "model_name": "nlu-x", "model_version": "2"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None or k == "value"}


@pytest.fixture
def logged(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0), make_turn("d1", 1),
                                                           make_turn("d2", 0, nlu_domain="music")])],
                 dataset="t")
    return db


@pytest.mark.parametrize("record,expected", [
    (cand(score=1.5), ":1: score: 1.5 is outside [0, 1]"),
    (cand(score=None), ":1: score: required"),
    (cand(task="Intent!"), ":1: task: required: a lowercase identifier"),
    (cand(dialogue_id=""), ":1: dialogue_id: required: a non-empty string"),
    (cand(turn_index=-2), ":1: turn_index: expected an integer >= 0"),
    (cand(value=None), ":1: value: required"),
    (cand(model_version=None), ":1: model_version: required"),
    (cand(other_dialogue_id="d2"), ":1: other_turn_index: a pair target needs both"),
    (cand(run_at="soon"), ":1: run_at: 'soon' is not an ISO 8601 time"),
    (cand(colour="red"), ":1: colour: unknown field"),
])
def test_bad_candidate_records_are_refused(tmp_path, record, expected):
    path = write_jsonl(tmp_path / "c.jsonl", [record])
    with pytest.raises(LogFormatError) as info:
        read_candidates(path)
    assert any(str(p).startswith(str(path)) and expected in str(p) for p in info.value.problems), info.value


def test_same_run_proposing_twice_for_one_target_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [cand(), cand(value="other")])
    with pytest.raises(LogFormatError, match=r"c.jsonl:2: task: the same model run proposes .* twice"):
        read_candidates(path)


def test_targets_must_exist_and_nothing_is_written(logged, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [cand(), cand(dialogue_id="nope", turn_index=3)])
    with pytest.raises(store.IngestConflictError, match="turn 3 of dialogue 'nope': no such target"):
        store.insert_candidates(logged, read_candidates(path))
    assert store.count_candidates(logged) == 0


def test_import_is_idempotent_and_conflicts_are_refused(logged, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [cand(), cand(turn_index=None, task="goal_success", value=True),
                                               cand(turn_index=0, other_dialogue_id="d2", other_turn_index=0,
                                                    task="rewrite", value={"from": "a", "to": "b"})])
    result = store.insert_candidates(logged, read_candidates(first))
    assert (result.rows_added, result.rows_already_present) == (3, 0)
    again = store.insert_candidates(logged, read_candidates(first))
    assert (again.rows_added, again.rows_already_present) == (0, 3)
    changed = write_jsonl(tmp_path / "b.jsonl", [cand(score=0.9)])
    with pytest.raises(store.IngestConflictError, match="already stored from the same model run"):
        store.insert_candidates(logged, read_candidates(changed))
    kinds = logged.execute("SELECT task, target_kind, domain FROM candidates ORDER BY task").fetchall()
    assert kinds == [("goal_success", "dialogue", "weather"), ("intent", "turn", "weather"),
                     ("rewrite", "pair", "weather")]


def test_an_import_finds_the_turns_of_every_dialogue_its_targets_name(logged, tmp_path):
    # the import reads turns only within its targets' range of dialogue ids: a pair naming a dialogue before its own
    # (d2 -> d1) and a dialogue target (its first turn's domain) must still be found
    rewrite = {"task": "rewrite", "value": {"from": "a", "to": "b"}}
    path = write_jsonl(tmp_path / "a.jsonl", [cand(dialogue_id="d2", other_dialogue_id="d1", other_turn_index=1,
                                                   **rewrite),
                                              cand(dialogue_id="d2", turn_index=None, task="goal_success", value=True)])
    assert store.insert_candidates(logged, read_candidates(path)).rows_added == 2
    assert logged.execute("SELECT DISTINCT domain FROM candidates").fetchall() == [("music",)]
    missing = write_jsonl(tmp_path / "b.jsonl", [cand(dialogue_id="d2", other_dialogue_id="d1", other_turn_index=5,
                                                      **rewrite)])
    with pytest.raises(store.IngestConflictError, match="no such target"):
        store.insert_candidates(logged, read_candidates(missing))
    assert store.count_candidates(logged) == 2


def test_parquet_candidates(logged, tmp_path):
    pq.write_table(pa.Table.from_pylist([cand(), cand(turn_index=1, value="x", score=0.1)]), tmp_path / "c.parquet")
    table = read_candidates(tmp_path / "c.parquet")
    assert table.column("value").to_pylist() == ['"weather_query"', '"x"']
    assert store.insert_candidates(logged, table).rows_added == 2


def test_logged_nlu_source_uses_real_confidence(logged):
    table = candidates_from_logged_nlu(store.list_nlu_outputs(logged, "t"))
    rows = table.to_pylist()
    assert {(r["task"], r["dialogue_id"], r["turn_index"]) for r in rows} == {
        ("intent", "d1", 0), ("slots", "d1", 0), ("intent", "d1", 1), ("slots", "d1", 1),
        ("intent", "d2", 0), ("slots", "d2", 0)}
    assert all(r["score"] == 0.8 and r["model_name"] == "logged-nlu" for r in rows)
    assert json.loads(rows[1]["value"]) == [{"type": "place_name", "value": "boston"}]


def test_target_keys():
    assert target_key("d", 1) == ("turn", '["d", 1]')
    assert target_key("d", None) == ("dialogue", '["d"]')
    assert target_key("d", 1, "e", 2) == ("pair", '["d", 1, "e", 2]')


def turnlens(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_candidates_and_export(tmp_path):
    db = tmp_path / "t.duckdb"
    log = write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0), make_turn("d2", 0)])
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "t", "--quiet").returncode == 0
    out = turnlens("candidates", "from-logs", "--dataset", "t", "--db", str(db))
    assert out.returncode == 0 and "4 candidates read, 4 added" in out.stdout
    bad = write_jsonl(tmp_path / "bad.jsonl", [cand(score=2)])
    refused = turnlens("candidates", "import", str(bad), "--db", str(db))
    assert refused.returncode == 1 and f"{bad}:1: score: 2 is outside [0, 1]" in refused.stderr
    assert "Traceback" not in refused.stderr
    for fmt in ("jsonl", "csv", "parquet"):
        target = tmp_path / f"all.{fmt}"
        done = turnlens("export", "--what", "candidates", "--dataset", "t", "--out", str(target), "--db", str(db))
        assert done.returncode == 0 and "wrote 4 rows" in done.stdout, done.stderr
    rows = pq.read_table(tmp_path / "all.parquet").to_pylist()
    assert {r["model_name"] for r in rows} == {"logged-nlu"} and all(r["status"] is None for r in rows)
    assert turnlens("export", "--dataset", "t", "--out", str(tmp_path / "x.txt"), "--db", str(db)).returncode == 2


# ------------------------------------------------------------------------- probability vectors

VECTOR = {"weather_query": 0.7, "music_play": 0.2, "alarm_set": 0.1}


@pytest.mark.parametrize("distribution,expected", [
    ({"weather_query": 0.7, "music_play": 0.2}, "the probabilities sum to 0.9, not 1"),
    ({"weather_query": 0.7, "music_play": 1.3, "alarm_set": -1.0}, "the probability of 'music_play', 1.3, "
                                                                  "is outside [0, 1]"),
    ({"music_play": 0.7, "alarm_set": 0.3}, "has no probability for the proposed value 'weather_query'"),
    ({"weather_query": 0.6, "music_play": 0.4}, "gives the proposed value 'weather_query' probability 0.6, "
                                                "but its score is 0.7"),
    ({"weather_query": 0.7, "music_play": "0.3"}, "the probability of 'music_play' must be a number"),
    ([0.7, 0.3], "expected a non-empty object"),
    ("weather_query", "expected a non-empty object"),
    ({}, "expected a non-empty object"),
])
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_bad_distributions_are_refused(tmp_path, distribution, expected, fmt):
    records = [cand(turn_index=1, distribution=VECTOR), cand(distribution=distribution)]
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "c.jsonl", records)
    else:  # Parquet has no free-form objects: the vector is JSON text (maps and structs are tested below)
        path = tmp_path / "c.parquet"
        pq.write_table(pa.Table.from_pylist([{**r, "distribution": json.dumps(r["distribution"])} for r in records]),
                       path)
    with pytest.raises(LogFormatError) as info:
        read_candidates(path)
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: distribution: {expected}"), problems


def test_distribution_tolerance_and_other_values(tmp_path):
    within = {"weather_query": 0.7 + 5e-7, "music_play": 0.3}  # sum and score both within 1e-6
    path = write_jsonl(tmp_path / "c.jsonl", [
        cand(distribution=within), cand(turn_index=1, distribution=None),
        # a value that is not a string is not looked up among the labels
        cand(task="goal_success", turn_index=None, value=True, score=0.9, distribution={"yes": 0.9, "no": 0.1})])
    rows = read_candidates(path).to_pylist()
    assert json.loads(rows[0]["distribution"]) == within and rows[1]["distribution"] is None
    assert rows[2]["distribution"] == '{"no":0.1,"yes":0.9}'  # canonical: sorted labels, floats
    off = write_jsonl(tmp_path / "off.jsonl", [cand(distribution={"weather_query": 0.7 + 2e-6, "music_play": 0.3})])
    with pytest.raises(LogFormatError, match="off.jsonl:1: distribution: the probabilities sum to"):
        read_candidates(off)


def test_parquet_distributions_as_text_map_or_struct(tmp_path):
    expected = json.dumps(VECTOR, sort_keys=True, separators=(",", ":"))
    as_text = [{**cand(), "distribution": json.dumps(VECTOR)}]
    pq.write_table(pa.Table.from_pylist(as_text), tmp_path / "text.parquet")
    as_struct = [cand(distribution=VECTOR), cand(turn_index=1, distribution={"weather_query": 0.7, "x": 0.3})]
    pq.write_table(pa.Table.from_pylist(as_struct), tmp_path / "struct.parquet")  # missing labels are null
    as_map = pa.Table.from_pylist([cand()]).append_column(
        "distribution", pa.array([list(VECTOR.items())], pa.map_(pa.string(), pa.float64())))
    pq.write_table(as_map, tmp_path / "map.parquet")
    assert read_candidates(tmp_path / "text.parquet").column("distribution").to_pylist() == [expected]
    assert read_candidates(tmp_path / "struct.parquet").column("distribution").to_pylist() == [
        expected, '{"weather_query":0.7,"x":0.3}']
    assert read_candidates(tmp_path / "map.parquet").column("distribution").to_pylist() == [expected]


def stored_vectors(db) -> dict:
    return dict(db.execute("SELECT c.dialogue_id || '/' || c.turn_index, d.distribution FROM candidate_distributions d "
                           "JOIN candidates c USING (candidate_id)").fetchall())


def test_distributions_are_stored_with_their_candidates(logged, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [cand(distribution=VECTOR), cand(turn_index=1)])
    result = store.insert_candidates(logged, read_candidates(path))
    assert (result.rows_added, result.distributions_added) == (2, 1)
    ids = dict(logged.execute("SELECT turn_index, candidate_id FROM candidates").fetchall())
    shown = store.get_candidate_distribution(logged, ids[0])
    assert shown == VECTOR and list(shown) == ["weather_query", "music_play", "alarm_set"]  # most likely first
    assert store.get_candidate_distribution(logged, ids[1]) is None
    again = store.insert_candidates(logged, read_candidates(path))  # the same file: a skip
    assert (again.rows_added, again.rows_already_present, again.distributions_added) == (0, 2, 0)
    changed = write_jsonl(tmp_path / "b.jsonl", [cand(distribution={**VECTOR, "music_play": 0.1, "alarm_set": 0.2})])
    with pytest.raises(store.IngestConflictError, match="another value, score or distribution"):
        store.insert_candidates(logged, read_candidates(changed))
    assert store.get_candidate_distribution(logged, ids[0]) == VECTOR
    assert logged.execute("SELECT count(*) FROM candidate_distributions").fetchone()[0] == 1


def test_the_same_proposal_up_to_float_rounding_is_skipped_and_more_is_a_conflict(logged, tmp_path):
    # the same run scored again (another batch layout, thread count or engine) differs in the last bits
    store.insert_candidates(logged, read_candidates(write_jsonl(tmp_path / "a.jsonl", [cand(distribution=VECTOR)])))
    eps = 4e-7  # within ROUNDING (1e-6), and a vector still summing to 1 within check_distribution's 1e-6
    again = write_jsonl(tmp_path / "b.jsonl", [cand(score=0.7 + eps, distribution={
        **VECTOR, "weather_query": 0.7 + eps, "music_play": 0.2 - eps})])
    result = store.insert_candidates(logged, read_candidates(again))
    assert (result.rows_added, result.rows_already_present, result.distributions_added) == (0, 1, 0)
    cid, score = logged.execute("SELECT candidate_id, score FROM candidates").fetchone()
    assert score == 0.7 and store.get_candidate_distribution(logged, cid) == VECTOR  # the stored one is kept
    for changed in (cand(score=0.7 + 5e-6, distribution={**VECTOR, "weather_query": 0.7 + 5e-6,
                                                         "music_play": 0.2 - 5e-6}),
                    cand(distribution={**VECTOR, "music_play": 0.2 + 5e-6, "alarm_set": 0.1 - 5e-6}),
                    cand(distribution={"weather_query": 0.7, "music_play": 0.2, "timer_set": 0.1})):
        path = write_jsonl(tmp_path / "c.jsonl", [changed])
        with pytest.raises(store.IngestConflictError, match="another value, score or distribution"):
            store.insert_candidates(logged, read_candidates(path))
    assert store.get_candidate_distribution(logged, cid) == VECTOR


def test_a_failing_import_writes_no_distribution(logged, tmp_path):
    # a target that does not exist: nothing, vectors included
    missing = write_jsonl(tmp_path / "a.jsonl", [cand(distribution=VECTOR),
                                                 cand(dialogue_id="nope", distribution=VECTOR)])
    with pytest.raises(store.IngestConflictError, match="no such target"):
        store.insert_candidates(logged, read_candidates(missing))
    # a conflict on the last row, after a new candidate with a vector: nothing either
    store.insert_candidates(logged, read_candidates(write_jsonl(tmp_path / "b.jsonl", [cand(turn_index=1, score=0.5)])))
    conflicting = write_jsonl(tmp_path / "c.jsonl", [cand(distribution=VECTOR),
                                                     cand(turn_index=1, score=0.9)])
    with pytest.raises(store.IngestConflictError, match="already stored"):
        store.insert_candidates(logged, read_candidates(conflicting))
    assert store.count_candidates(logged) == 1 and stored_vectors(logged) == {}
    # a vector that contradicts its own row (a producer in code, not a file) is refused before any write
    table = read_candidates(write_jsonl(tmp_path / "d.jsonl", [cand(distribution=VECTOR)]))
    bad = table.set_column(table.column_names.index("score"), "score", pa.array([0.2]))
    with pytest.raises(ValueError, match="distribution: gives the proposed value 'weather_query' probability 0.7"):
        store.insert_candidates(logged, bad)
    assert store.count_candidates(logged) == 1 and stored_vectors(logged) == {}
    # tables made without the column (older producers) still import
    older = table.drop_columns(["distribution"])
    assert store.insert_candidates(logged, older).rows_added == 1 and stored_vectors(logged) == {}


class _FailingCursor:
    """A cursor that fails the statement writing the vectors, after the candidates were inserted."""

    def __init__(self, cur):
        self.cur = cur

    def execute(self, sql, *args):
        if "INSERT INTO candidate_distributions" in sql:
            raise duckdb.Error("injected failure")
        self.cur.execute(sql, *args)
        return self

    def __getattr__(self, name):
        return getattr(self.cur, name)


def test_vectors_and_candidates_are_one_transaction(logged, tmp_path):
    class Conn:
        def cursor(self):
            return _FailingCursor(logged.cursor())

    table = read_candidates(write_jsonl(tmp_path / "c.jsonl", [cand(distribution=VECTOR)]))
    with pytest.raises(duckdb.Error, match="injected failure"):
        store.insert_candidates(Conn(), table)
    assert store.count_candidates(logged) == 0 and store.list_model_runs(logged).empty
    assert store.insert_candidates(logged, table).distributions_added == 1  # and it goes through unhindered
