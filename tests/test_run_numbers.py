"""Runs are numbered from 1 per dataset and family on the pages (model_runs ids are global to the database, so
the first run of a dataset used to be called "#2" or "#5")."""

from __future__ import annotations

import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from app import store
from app.ingest import ingest_files
from tests.helpers import make_turn, write_jsonl


def failure_candidates(dataset_prefix: str, version: str) -> pa.Table:
    kind, key = target_key(f"{dataset_prefix}-d1", 0)
    return pa.Table.from_pylist([{
        "task": "failure_point", "target_kind": kind, "dialogue_id": f"{dataset_prefix}-d1", "turn_index": 0,
        "other_dialogue_id": None, "other_turn_index": None, "target_key": key, "value": canonical_json("ASR"),
        "score": 0.7, "distribution": None, "model_name": "failure-points", "model_version": version,
        "model_parameters": "{}", "run_at": None}], schema=CANDIDATE_SCHEMA)


def test_runs_are_numbered_per_dataset(tmp_path):
    conn = store.connect(tmp_path / "n.duckdb")
    for name in ("a", "b"):
        ingest_files(conn, [write_jsonl(tmp_path / f"{name}.jsonl", [make_turn(f"{name}-d1", 0)])], dataset=name)
    store.insert_candidates(conn, failure_candidates("a", "v1"))  # run_id 1, in dataset a
    store.insert_candidates(conn, failure_candidates("b", "v2"))  # run_id 2, the first run of dataset b
    store.insert_candidates(conn, failure_candidates("b", "v3"))  # run_id 3
    runs = store.list_failure_runs(conn, "b")
    assert runs["run_id"].tolist() == [3, 2]  # newest first
    assert runs["run_number"].tolist() == [2, 1]
    assert store.list_failure_runs(conn, "a")["run_number"].tolist() == [1]
    conn.close()
