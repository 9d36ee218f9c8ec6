"""Candidate files: validated like logs (FILE:LINE: field), all or nothing, idempotent; the logged-NLU source."""

from __future__ import annotations

import json
import subprocess
import sys

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
