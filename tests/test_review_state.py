"""The review queue's current-state tables (migration 11): kept on every decision write, always equal to what the
decision log says, and giving the queue the same candidates, counts and order as a scan of the log."""

from __future__ import annotations

import random
import uuid

import pyarrow as pa
import pytest

from app import store
from app.migrations import MIGRATIONS
from tests.helpers import ingest_log, make_turn, write_jsonl

# What the tables must hold, recomputed from the whole decision log (the definitions of migration 11).
REVIEW_STATE_FROM_LOG = """
    SELECT candidate_id, reviewer, arg_max(verdict, seq) AS last_verdict,
           arg_max(verdict, seq) FILTER (verdict <> 'skip') AS last_real,
           arg_max(CASE verdict WHEN 'correct' THEN corrected_value WHEN 'reject' THEN '<rejected>'
                   ELSE '<accepted>' END, seq) FILTER (verdict <> 'skip') AS label_key
    FROM decisions WHERE role IN ('review', 'bulk', 'audit') GROUP BY ALL ORDER BY ALL"""
CANDIDATE_STATE_FROM_LOG = f"""
    SELECT candidate_id, count(*) FILTER (last_real <> 'retract') AS n_taken,
           count(DISTINCT label_key) FILTER (last_real <> 'retract') AS n_labels
    FROM ({REVIEW_STATE_FROM_LOG}) GROUP BY ALL ORDER BY ALL"""
# The queue as it was before migration 11: every reviewer's latest verdicts aggregated from the whole log.
OLD_QUEUE = """
    WITH mine AS (SELECT candidate_id, arg_max(verdict, seq) AS last_verdict,
                         arg_max(verdict, seq) FILTER (verdict <> 'skip') AS last_real
                  FROM decisions WHERE reviewer = ? AND role IN ('review', 'bulk', 'audit') GROUP BY candidate_id),
         latest AS (SELECT candidate_id, reviewer, arg_max(verdict, seq) AS verdict
                    FROM decisions WHERE verdict <> 'skip' AND role IN ('review', 'bulk', 'audit')
                    GROUP BY candidate_id, reviewer),
         taken AS (SELECT candidate_id, count(*) AS n FROM latest WHERE verdict <> 'retract' GROUP BY candidate_id)
    SELECT c.candidate_id FROM candidates c LEFT JOIN mine USING (candidate_id) LEFT JOIN taken USING (candidate_id)
    WHERE c.dataset = ? AND (mine.last_real IS NULL OR mine.last_real = 'retract') AND coalesce(taken.n, 0) < ?
    ORDER BY coalesce(mine.last_verdict = 'skip', false), c.score ASC, c.candidate_id"""

REVIEWERS = ("ana", "bob", "cy", "dee")


@pytest.fixture
def qdb(db, tmp_path):
    turns = [make_turn(f"d{i}", 0, nlu_intent=f"intent_{i % 7}", nlu_confidence=(i * 37 % 100) / 100,
                       nlu_slots=[{"type": "date", "value": "today"}] if i % 3 == 0 else [])
             for i in range(40)]
    ingest_log(db, write_jsonl(tmp_path / "log.jsonl", turns), "t", candidates=True)
    return db


def assert_state_matches_log(conn) -> None:
    state = conn.execute("SELECT * FROM review_state ORDER BY ALL").fetchall()
    assert state == conn.execute(REVIEW_STATE_FROM_LOG).fetchall()
    # a candidate whose every decision was a skip has a review_state row but takes no slot
    cands = conn.execute("SELECT * FROM candidate_state ORDER BY ALL").fetchall()
    assert cands == conn.execute(CANDIDATE_STATE_FROM_LOG).fetchall()


def test_state_follows_every_kind_of_decision_write(qdb):
    rng = random.Random(5)
    ids = [r[0] for r in qdb.execute("SELECT candidate_id FROM candidates ORDER BY 1").fetchall()]
    for step in range(300):
        reviewer, cid = rng.choice(REVIEWERS), rng.choice(ids[:25])
        verdict = rng.choice(["accept", "reject", "correct", "skip", "retract"])
        role = rng.choice(["review", "review", "audit", "adjudicate"])
        store.insert_decision(qdb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=reviewer,
                              verdict=verdict, role=role,
                              corrected_value='"other"' if verdict == "correct" else None)
        if step == 150:
            # a bulk accept over the rest, in the middle of the people's decisions
            store.bulk_accept(qdb, "bulker", store.QueueSpec(dataset="t"), 0.5, audit_size=lambda n: 3)
    table = pa.table({"decision_id": [str(uuid.uuid4()) for _ in ids[25:35]], "candidate_id": ids[25:35],
                      "reviewer": ["sim-a (simulated)"] * 10, "verdict": ["accept", "reject"] * 5,
                      "corrected_value": [None] * 10})
    store.insert_simulated_decisions(qdb, table)
    assert_state_matches_log(qdb)
    n_state = qdb.execute("SELECT count(*) FROM review_state").fetchone()[0]
    assert n_state == qdb.execute("SELECT count(DISTINCT (candidate_id, reviewer)) FROM decisions "
                                  "WHERE role <> 'adjudicate'").fetchone()[0] > 50


@pytest.mark.parametrize("overlap", [1, 2])
def test_queue_is_the_same_as_a_scan_of_the_log(qdb, overlap):
    rng = random.Random(overlap)
    ids = [r[0] for r in qdb.execute("SELECT candidate_id FROM candidates ORDER BY 1").fetchall()]
    for _ in range(120):
        store.insert_decision(qdb, decision_id=str(uuid.uuid4()), candidate_id=rng.choice(ids),
                              reviewer=rng.choice(REVIEWERS), verdict=rng.choice(["accept", "skip", "retract"]))
    spec = store.QueueSpec(dataset="t", overlap=overlap)
    for reviewer in REVIEWERS:
        old = [r[0] for r in qdb.execute(OLD_QUEUE, [reviewer, "t", overlap]).fetchall()]
        assert store.list_queue(qdb, reviewer, spec, limit=10_000) == old
        assert store.count_queue(qdb, reviewer, spec) == len(old)
        for cid in ids:
            assert store.is_open(qdb, reviewer, spec, cid) == (cid in old)


def test_a_refused_decision_leaves_the_state_alone(qdb):
    cid = qdb.execute("SELECT min(candidate_id) FROM candidates").fetchone()[0]
    store.insert_decision(qdb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="ana", verdict="accept",
                          overlap=1)
    before = qdb.execute("SELECT * FROM review_state ORDER BY ALL").fetchall()
    with pytest.raises(store.SlotTakenError):
        store.insert_decision(qdb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="bob",
                              verdict="accept", overlap=1)
    assert qdb.execute("SELECT * FROM review_state ORDER BY ALL").fetchall() == before
    assert_state_matches_log(qdb)


def test_migration_builds_the_state_from_an_existing_log(tmp_path, monkeypatch):
    """A database with decisions made before migration 11 gets its state from its log, and its targets' value
    counts from its candidates (migration 12)."""
    from app import migrations

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:10])
    old = store.connect(path)
    ingest_log(old, write_jsonl(tmp_path / "log.jsonl", [make_turn(f"d{i}", 0, nlu_confidence=i / 10)
                                                         for i in range(6)]), "t")
    # candidates as the code of that time stored them (today's import also keeps target_state, migration 12)
    old.execute("INSERT INTO model_runs (name, version) VALUES ('logged-nlu', 'logged'), ('m2', '1')")
    for i in range(6):
        for run, value in ((1, '"weather_query"'), (2, '"other"')) if i < 2 else ((1, '"weather_query"'),):
            old.execute("INSERT INTO candidates (run_id, task, target_kind, dialogue_id, turn_index, target_key, "
                        "value, score, dataset) VALUES (?, 'intent', 'turn', ?, 0, ?, ?, 0.5, 't')",
                        [run, f"d{i}", f"d{i}#0", value])
    ids = [r[0] for r in old.execute("SELECT candidate_id FROM candidates ORDER BY 1").fetchall()]
    for i, (reviewer, verdict) in enumerate([("ana", "accept"), ("bob", "reject"), ("ana", "skip"),
                                             ("ana", "retract"), ("cy", "accept")]):
        old.execute("INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, role, app_version) "
                    "VALUES (uuid(), ?, ?, ?, 'review', 'old')", [ids[i % 3], reviewer, verdict])
    old.close()
    monkeypatch.undo()
    conn = store.connect(path)
    try:
        assert store.get_schema_version(conn) == MIGRATIONS[-1][0]
        assert_state_matches_log(conn)
        assert conn.execute("SELECT count(*) FROM review_state").fetchone()[0] == 4
        assert conn.execute("SELECT target_key, n_values FROM target_state ORDER BY 1").fetchall() == [
            ("d0#0", 2), ("d1#0", 2), ("d2#0", 1), ("d3#0", 1), ("d4#0", 1), ("d5#0", 1)]
    finally:
        conn.close()


def test_target_state_counts_each_targets_distinct_values_after_every_import(qdb):
    from analysis.candidates import candidates_from_logged_nlu

    recount = ("SELECT dataset, task, target_key, count(DISTINCT value) FROM candidates GROUP BY ALL ORDER BY ALL")
    assert qdb.execute("SELECT * FROM target_state ORDER BY ALL").fetchall() == qdb.execute(recount).fetchall()
    # a second source proposing other intents for some turns: those targets now have two values
    logged = candidates_from_logged_nlu(store.list_nlu_outputs(qdb, "t"))
    other = logged.filter(pa.compute.equal(logged["task"], "intent")).slice(0, 5)
    other = other.set_column(other.schema.get_field_index("value"), "value", pa.array(['"other"'] * 5))
    other = other.set_column(other.schema.get_field_index("model_name"), "model_name", pa.array(["m2"] * 5))
    store.insert_candidates(qdb, other)
    state = qdb.execute("SELECT * FROM target_state ORDER BY ALL").fetchall()
    assert state == qdb.execute(recount).fetchall()
    assert sum(1 for row in state if row[3] == 2) == 5
    # the disagreement order puts them first, as a count over the candidates table would
    spec = store.QueueSpec(dataset="t", order="disagreement")
    first = store.list_queue(qdb, "ana", spec, limit=10)
    two = {r[0] for r in qdb.execute("SELECT c.candidate_id FROM candidates c JOIN target_state USING (dataset, "
                                     "task, target_key) WHERE n_values = 2").fetchall()}
    assert set(first[:10]) == two
