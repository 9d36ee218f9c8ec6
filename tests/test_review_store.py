"""The review store: queues (orders, filters, overlap, skips), the decision views, bulk accept, export."""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.calibration import audit_sample_size
from analysis.candidates import CANDIDATE_SCHEMA, target_key
from app import store
from app.ingest import ingest_files
from tests.helpers import make_turn, write_jsonl

SCORES = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2]


def candidate_rows(run: str, values: list[str], scores: list[float], task: str = "intent") -> list[dict]:
    rows = []
    for i, (value, score) in enumerate(zip(values, scores, strict=True)):
        kind, key = target_key(f"d{i}", 0)
        rows.append({"task": task, "target_kind": kind, "dialogue_id": f"d{i}", "turn_index": 0,
                     "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
                     "value": json.dumps(value), "score": score, "model_name": run, "model_version": "1",
                     "model_parameters": "{}", "run_at": None})
    return rows


@pytest.fixture
def rdb(db, tmp_path):
    turns = [make_turn(f"d{i}", 0, nlu_domain="music" if i % 2 else "weather") for i in range(len(SCORES))]
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="t")
    values = [f"intent_{i}" for i in range(len(SCORES))]
    store.insert_candidates(db, pa.Table.from_pylist(candidate_rows("m1", values, SCORES), schema=CANDIDATE_SCHEMA))
    return db


def ids_by_score(db, scores: list[float]) -> list[int]:
    by_score = dict(db.execute("SELECT score, candidate_id FROM candidates").fetchall())
    return [by_score[s] for s in scores]


def decide(db, cid: int, reviewer: str, verdict: str, corrected=None, role="review") -> None:
    assert store.insert_decision(db, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=reviewer,
                                 verdict=verdict, corrected_value=corrected, role=role)


def spec(**kw) -> store.QueueSpec:
    return store.QueueSpec(dataset="t", **kw)


def test_orders(rdb):
    assert store.list_queue(rdb, "ana", spec()) == ids_by_score(rdb, sorted(SCORES))
    assert store.list_queue(rdb, "ana", spec(order="score_desc")) == ids_by_score(rdb, sorted(SCORES, reverse=True))
    r1 = store.list_queue(rdb, "ana", spec(order="random", seed=1))
    assert r1 == store.list_queue(rdb, "ana", spec(order="random", seed=1))  # seeded: reproducible
    assert sorted(r1) == sorted(ids_by_score(rdb, SCORES))
    assert any(store.list_queue(rdb, "ana", spec(order="random", seed=s)) != r1 for s in range(2, 6))


def test_filters(rdb):
    assert store.count_queue(rdb, "ana", spec(score_min=0.25, score_max=0.75)) == 3
    assert store.count_queue(rdb, "ana", spec(domain="music")) == 3
    assert store.list_queue(rdb, "ana", spec(value='"intent_2"')) == ids_by_score(rdb, [0.5])
    assert store.count_queue(rdb, "ana", spec(run_id=999)) == 0
    assert store.count_queue(rdb, "ana", spec(task="slots")) == 0


def test_decided_leave_the_queue_and_skips_go_last(rdb):
    low, second = ids_by_score(rdb, [0.1, 0.2])
    decide(rdb, low, "ana", "accept")
    assert low not in store.list_queue(rdb, "ana", spec())
    decide(rdb, second, "ana", "skip")
    assert store.list_queue(rdb, "ana", spec())[-1] == second
    assert store.count_my_decided(rdb, "ana", spec()) == 1
    decide(rdb, low, "ana", "retract")  # undo: back in the queue
    assert store.list_queue(rdb, "ana", spec())[0] == low


def test_overlap_sends_each_candidate_to_k_reviewers(rdb):
    low = ids_by_score(rdb, [0.1])[0]
    decide(rdb, low, "ana", "accept")
    assert low not in store.list_queue(rdb, "bob", spec())  # overlap 1: taken
    assert not store.is_open(rdb, "bob", spec(), low)
    assert low in store.list_queue(rdb, "bob", spec(overlap=2))
    decide(rdb, low, "bob", "reject")
    assert low not in store.list_queue(rdb, "carl", spec(overlap=2))


def test_disagreement_first(rdb):
    # A second source disagrees on d0 (score 0.9); reviewers disagree on d3 (score 0.3).
    store.insert_candidates(rdb, pa.Table.from_pylist(candidate_rows("m2", ["other"], [0.1]), schema=CANDIDATE_SCHEMA))
    d3 = ids_by_score(rdb, [0.3])[0]
    decide(rdb, d3, "ana", "accept")
    decide(rdb, d3, "bob", "reject")
    queue = store.list_queue(rdb, "carl", spec(order="disagreement", overlap=3, run_id=1))
    src_disagree = rdb.execute(
        "SELECT candidate_id FROM candidates WHERE run_id = 1 AND dialogue_id = 'd0'").fetchone()[0]
    assert set(queue[:2]) == {src_disagree, d3}


def test_current_and_resolved_views(rdb):
    a, b, c = ids_by_score(rdb, [0.1, 0.2, 0.3])
    decide(rdb, a, "ana", "accept")
    decide(rdb, a, "ana", "retract")
    decide(rdb, a, "ana", "reject")  # change of mind: a new row, nothing updated
    decide(rdb, b, "ana", "correct", '"fixed"')
    decide(rdb, b, "bob", "correct", '"fixed"')
    decide(rdb, c, "ana", "accept")
    decide(rdb, c, "bob", "reject")
    resolved = {r[0]: r[1:] for r in rdb.execute(
        "SELECT candidate_id, status, verdict, label FROM resolved_labels").fetchall()}
    assert resolved[a] == ("agreed", "reject", None)
    assert resolved[b] == ("agreed", "correct", '"fixed"')
    assert resolved[c] == ("conflict", None, None)
    decide(rdb, c, "carl", "accept", role="adjudicate")
    assert rdb.execute("SELECT status, verdict FROM resolved_labels WHERE candidate_id = ?", [c]).fetchone() == (
        "adjudicated", "accept")
    assert rdb.execute("SELECT count(*) FROM decisions").fetchone()[0] == 8


def test_decisions_need_a_reviewer_and_a_known_candidate(rdb):
    with pytest.raises(ValueError, match="reviewer name is required"):
        store.insert_decision(rdb, decision_id=str(uuid.uuid4()), candidate_id=1, reviewer=" ", verdict="accept")
    assert not store.insert_decision(rdb, decision_id=str(uuid.uuid4()), candidate_id=999, reviewer="ana",
                                     verdict="accept")
    import duckdb

    with pytest.raises(duckdb.ConstraintException):  # the database itself refuses a correction without a value
        rdb.execute("INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, role, app_version) "
                    "VALUES (uuid(), 1, 'ana', 'correct', 'review', 'x')")


def test_bulk_accept_and_audit(rdb):
    assert store.count_bulk_preview(rdb, "ana", spec(), 0.5) == 3
    result = store.bulk_accept(rdb, "ana", spec(), 0.5, audit_size=lambda n: 2)
    assert (result.accepted, result.audit_sample) == (3, 2)
    assert store.count_queue(rdb, "bob", spec()) == 3  # the bulk-accepted ones left the queue
    audit = spec(audit_bulk_id=result.bulk_id)
    sample = store.list_queue(rdb, "bob", audit)
    assert len(sample) == 2 and set(sample) <= set(ids_by_score(rdb, [0.5, 0.7, 0.9]))
    decide(rdb, sample[0], "bob", "accept", role="audit")
    decide(rdb, sample[1], "bob", "reject", role="audit")
    row = store.list_bulk_actions(rdb, "t").iloc[0]
    assert (row["sampled"], row["audited"], row["confirmed"]) == (2, 2, 1)
    with pytest.raises(ValueError, match="nothing to accept"):
        store.bulk_accept(rdb, "ana", spec(), 0.99, audit_size=audit_sample_size)


def test_export_kinds_and_provenance(rdb, tmp_path):
    a, b, c = ids_by_score(rdb, [0.1, 0.2, 0.3])
    decide(rdb, a, "ana", "accept")
    decide(rdb, b, "ana", "correct", '"fixed"')
    decide(rdb, c, "ana", "reject")
    counts = {kind: store.export_labels(rdb, tmp_path / f"{kind}.parquet", dataset="t", kind=kind, fmt="parquet")
              for kind in store.EXPORT_KINDS}
    assert counts == {"accepted": 2, "resolved": 3, "candidates": 6}
    rows = {r["candidate_id"]: r for r in pq.read_table(tmp_path / "accepted.parquet").to_pylist()}
    # typed: the label under its task's field (docs/review.md, Export), not JSON text
    assert rows[a]["label"] == {"intent": "intent_1"} and rows[b]["label"] == {"intent": "fixed"}
    assert rows[b]["reviewers"] == ["ana"] and rows[b]["model_name"] == "m1" and rows[b]["decided_at"] is not None
    assert rows[a]["text"] == "what is the weather in boston"
    n = store.export_labels(rdb, tmp_path / "it's here.csv", dataset="t", kind="resolved", fmt="csv")
    assert n == 3 and (tmp_path / "it's here.csv").read_text().startswith("candidate_id,task")
