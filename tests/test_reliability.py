"""Reliability of the decision log through the store API (issue 3, "Done when"): 8 concurrent reviewers x 500
decisions lose nothing and duplicate nothing; a decision submitted twice is stored once; decisions acknowledged
before a SIGKILL are all there after a restart; undo, retract and skip give the documented current decision.

Concurrency follows ../shared/ENVIRONMENT.md: one DuckDB connection per process, the store opens a cursor per
call, threads share the connection.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from analysis.candidates import candidates_from_logged_nlu
from analysis.simulate import load_pool, simulate_turns, write_log
from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT

DATASET = "rel"
N_REVIEWERS = 8
PER_REVIEWER = 500


# ------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory) -> Path:
    """A database with a generated 300-turn log and the logged NLU's candidates (about 480), built once;
    each test works on its own copy."""
    base = tmp_path_factory.mktemp("reliability")
    log = base / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=300, seed=3), log)
    path = base / "seed.duckdb"
    conn = store.connect(path)
    try:
        ingest_files(conn, [log], dataset=DATASET, imported_by="reliability")
        added = store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, DATASET)))
        assert added.rows_added > 300
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    return path


@pytest.fixture
def rel_db(seeded_db, tmp_path) -> Path:
    path = tmp_path / "rel.duckdb"
    path.write_bytes(seeded_db.read_bytes())
    return path


def candidate_ids(conn) -> list[int]:
    return [r[0] for r in conn.cursor().execute("SELECT candidate_id FROM candidates ORDER BY 1").fetchall()]


# ------------------------------------------------------------------------- expected current state


def expected_current(submitted: list[dict]) -> dict[tuple[int, str], dict]:
    """What current_decisions must hold, from the decisions as each reviewer submitted them (in order):
    per (candidate, reviewer), the latest decision that is not a skip, unless it is a retraction."""
    current: dict[tuple[int, str], dict] = {}
    for d in submitted:  # in submission order per reviewer: each reviewer's thread is sequential
        key = (d["candidate_id"], d["reviewer"])
        if d["verdict"] == "skip":
            continue
        if d["verdict"] == "retract":
            current.pop(key, None)
        else:
            current[key] = d
    return current


def expected_resolved(current: dict[tuple[int, str], dict], values: dict[int, str]) -> dict[int, tuple]:
    """candidate -> (status, verdict, label, sorted reviewers) as resolved_labels must show it."""
    per: dict[int, list[dict]] = {}
    for (cid, _), d in current.items():
        per.setdefault(cid, []).append(d)
    out = {}
    for cid, ds in per.items():
        labels = {{"accept": values[cid], "correct": d["corrected_value"]}.get(d["verdict"], "<rejected>")
                  for d in ds}
        if len(labels) == 1:
            d = ds[0]
            label = {"accept": values[cid], "correct": d["corrected_value"]}.get(d["verdict"])
            out[cid] = ("agreed", d["verdict"], label, sorted(x["reviewer"] for x in ds))
        else:
            out[cid] = ("conflict", None, None, sorted(x["reviewer"] for x in ds))
    return out


# ------------------------------------------------------------------------- 8 concurrent reviewers


def reviewer_plan(reviewer: int, cids: list[int]) -> list[dict]:
    """500 decisions of one reviewer: on 400 of the candidates (so reviewers overlap heavily, and not every
    candidate has the same reviewers), with changes of mind; mostly accept/reject/correct, some skips and
    undos. Corrected values never equal a proposed value, so equal labels imply equal verdicts."""
    rng = random.Random(f"reviewer-{reviewer}")
    pool = rng.sample(cids, 400)
    plan = []
    for _ in range(PER_REVIEWER):
        verdict = rng.choices(["accept", "reject", "correct", "skip", "retract"], [45, 25, 20, 5, 5])[0]
        plan.append({
            "decision_id": str(uuid.uuid4()), "candidate_id": rng.choice(pool), "reviewer": f"reviewer-{reviewer}",
            "verdict": verdict,
            "corrected_value": f'"corrected-{rng.randrange(3)}"' if verdict == "correct" else None,
        })
    return plan


def test_eight_concurrent_reviewers_lose_and_duplicate_nothing(rel_db):
    conn = store.connect(rel_db)
    try:
        cids = candidate_ids(conn)
        values = dict(conn.execute("SELECT candidate_id, value FROM candidates").fetchall())
        plans = [reviewer_plan(r, cids) for r in range(N_REVIEWERS)]
        errors: list[tuple[str, BaseException]] = []
        returned: dict[str, list[bool]] = {}
        start = threading.Barrier(N_REVIEWERS)

        def review(plan: list[dict]) -> None:
            name = plan[0]["reviewer"]
            got = []
            try:
                start.wait()
                for i, d in enumerate(plan):
                    # Show the card, as the Review page does, then decide on it.
                    assert store.get_candidate(conn, d["candidate_id"])["candidate_id"] == d["candidate_id"]
                    got.append(store.insert_decision(conn, **d))
                    if i % 100 == 0:  # and read the views while the others write
                        store.list_current_decisions(conn, d["candidate_id"])
            except BaseException as exc:  # noqa: BLE001 - reported below with the reviewer's name
                errors.append((name, exc))
            returned[name] = got

        threads = [threading.Thread(target=review, args=(p,), name=p[0]["reviewer"]) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a reviewer thread hung"
        assert not errors, f"exceptions in reviewer threads: {errors[:3]!r}"
        assert all(got == [True] * PER_REVIEWER for got in returned.values()), \
            "insert_decision returned False for a new decision id"

        submitted = [d for p in plans for d in p]
        cur = conn.cursor()
        assert cur.execute("SELECT count(*) FROM decisions").fetchone()[0] == N_REVIEWERS * PER_REVIEWER == 4000
        stored = Counter(str(r[0]) for r in cur.execute("SELECT decision_id FROM decisions").fetchall())
        assert set(stored) == {d["decision_id"] for d in submitted}
        assert max(stored.values()) == 1
        per_reviewer = dict(cur.execute("SELECT reviewer, count(*) FROM decisions GROUP BY 1").fetchall())
        assert per_reviewer == {f"reviewer-{r}": PER_REVIEWER for r in range(N_REVIEWERS)}
        assert all(store.count_decisions(conn, reviewer=f"reviewer-{r}") == PER_REVIEWER for r in range(N_REVIEWERS))
        # Every stored row is exactly what was submitted (nothing altered on the way).
        rows = {str(r[0]): r[1:] for r in cur.execute(
            "SELECT decision_id, candidate_id, reviewer, verdict, corrected_value, role FROM decisions").fetchall()}
        for d in submitted:
            assert rows[d["decision_id"]] == (d["candidate_id"], d["reviewer"], d["verdict"], d["corrected_value"],
                                              "review")
        # Each reviewer's rows keep the reviewer's own order in seq (the views' "latest" relies on it).
        for r in range(N_REVIEWERS):
            order = [str(x[0]) for x in cur.execute(
                "SELECT decision_id FROM decisions WHERE reviewer = ? ORDER BY seq", [f"reviewer-{r}"]).fetchall()]
            assert order == [d["decision_id"] for d in plans[r]]

        # current_decisions: each reviewer's latest verdict per candidate.
        want = expected_current(submitted)
        got = {(r[0], r[1]): r[2:] for r in cur.execute(
            "SELECT candidate_id, reviewer, decision_id, verdict, corrected_value FROM current_decisions").fetchall()}
        assert got.keys() == want.keys()
        for key, d in want.items():
            did, verdict, corrected = got[key]
            assert (str(did), verdict, corrected) == (d["decision_id"], d["verdict"], d["corrected_value"])
        for cid in random.Random(0).sample(cids, 25):  # the Review page's reader agrees with the view
            page = store.list_current_decisions(conn, cid)
            assert sorted(page["reviewer"]) == sorted(rv for (c, rv) in want if c == cid)

        # resolved_labels: agreed / conflict per candidate, with the label and the reviewers.
        want_resolved = expected_resolved(want, values)
        got_resolved = {r[0]: (r[1], r[2], r[3], list(r[4])) for r in cur.execute(
            "SELECT candidate_id, status, verdict, label, reviewers FROM resolved_labels").fetchall()}
        assert got_resolved == want_resolved
        statuses = Counter(s for s, *_ in want_resolved.values())
        assert statuses["agreed"] > 0 and statuses["conflict"] > 0  # the data exercises both
    finally:
        conn.close()


# ------------------------------------------------------------------------------ double submission


def test_same_decision_twice_is_stored_once(rel_db):
    conn = store.connect(rel_db)
    try:
        cid = candidate_ids(conn)[0]
        did = str(uuid.uuid4())
        first = store.insert_decision(conn, decision_id=did, candidate_id=cid, reviewer="ann", verdict="accept")
        # A resubmission of the same card: even with another verdict, the first one stands.
        second = store.insert_decision(conn, decision_id=did, candidate_id=cid, reviewer="ann", verdict="reject")
        assert (first, second) == (True, False)
        assert conn.execute("SELECT verdict FROM decisions WHERE decision_id = ?", [did]).fetchall() == [("accept",)]
        assert list(store.list_current_decisions(conn, cid)["verdict"]) == ["accept"]
    finally:
        conn.close()


def race_same_decision(conn, cid: int, trials: int) -> tuple[list[list], int]:
    """Submit each of `trials` decision ids from two threads at once. Returns per trial the two outcomes
    (True/False, or the exception) and the number of stored rows for those ids."""
    outcomes: list[list] = []
    ids = []
    for _ in range(trials):
        did = str(uuid.uuid4())
        ids.append(did)
        barrier = threading.Barrier(2)
        got: list = []

        def submit(did=did, barrier=barrier, got=got):
            barrier.wait()
            try:
                got.append(store.insert_decision(conn, decision_id=did, candidate_id=cid, reviewer="ann",
                                                 verdict="accept"))
            except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
                got.append(exc)

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        outcomes.append(got)
    stored = conn.execute("SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest(?::UUID[]))",
                          [ids]).fetchone()[0]
    return outcomes, stored


def test_concurrent_double_submit_stores_once(rel_db):
    """The data guarantee: two simultaneous submissions of one decision id store exactly one row, and at most
    one of them reports success. (Whether the loser returns False or raises is the next test.)"""
    conn = store.connect(rel_db)
    try:
        outcomes, stored = race_same_decision(conn, candidate_ids(conn)[0], trials=30)
        assert stored == 30
        for got in outcomes:
            assert len(got) == 2 and got.count(True) == 1, got
            for o in got:
                assert isinstance(o, bool | duckdb.ConstraintException | duckdb.TransactionException), o
    finally:
        conn.close()


def test_concurrent_double_submit_returns_true_exactly_once(rel_db):
    conn = store.connect(rel_db)
    try:
        outcomes, stored = race_same_decision(conn, candidate_ids(conn)[0], trials=30)
        assert stored == 30
        bad = [got for got in outcomes if sorted(map(repr, got)) != ["False", "True"]]
        assert not bad, f"{len(bad)} of 30 races did not give (True, False), e.g. {bad[0]!r}"
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ crash safety

_WRITER = textwrap.dedent("""
    import sys, uuid
    from app import store

    conn = store.connect(sys.argv[1])
    cids = [r[0] for r in conn.execute("SELECT candidate_id FROM candidates ORDER BY 1").fetchall()]
    print("ready", flush=True)
    i = 0
    while True:  # until killed
        did = str(uuid.uuid4())
        verdict = ("accept", "reject", "skip")[i % 3]
        if store.insert_decision(conn, decision_id=did, candidate_id=cids[i % len(cids)], reviewer="crash",
                                 verdict=verdict):
            print(did, flush=True)  # acknowledged: insert_decision returned, so it is committed
        i += 1
""")


def read_lines(proc: subprocess.Popen, want: int, timeout: float) -> list[str]:
    """Lines from proc's stdout until `want` lines or the timeout (then fail)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < want:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not sel.select(0):
            err = proc.stderr.read() if proc.poll() is not None else ""
            pytest.fail(f"the writer gave {len(lines)} of {want} lines (exit {proc.poll()}): {err[-2000:]}")
        if sel.select(min(left, 1.0)):
            line = proc.stdout.readline()
            if line:
                lines.append(line.strip())
    sel.close()
    return lines


def test_acknowledged_decisions_survive_sigkill(rel_db):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    acked: list[str] = []
    for round_ in range(2):  # kill, restart, kill again: the replayed log must survive a second crash too
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(rel_db)], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert read_lines(proc, 1, timeout=60) == ["ready"]
            got = read_lines(proc, 150, timeout=60)
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer never stops by itself
            rest, _ = proc.communicate(timeout=30)
            got += [line.strip() for line in rest.splitlines() if line.strip()]  # printed before the kill
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        acked += got

        conn = store.connect(rel_db)  # the restarted server: opens fine after the crash
        try:
            stored = Counter(str(r[0]) for r in conn.execute(
                "SELECT decision_id FROM decisions WHERE reviewer = 'crash'").fetchall())
            missing = set(acked) - set(stored)
            assert not missing, f"round {round_}: {len(missing)} acknowledged decisions lost: {sorted(missing)[:3]}"
            assert max(stored.values()) == 1
            # At most the one decision committed but not yet acknowledged when the kill came, per round.
            assert len(stored) - len(acked) <= round_ + 1
            # The views work on the recovered log.
            conn.execute("SELECT count(*) FROM current_decisions").fetchone()
            conn.execute("SELECT count(*) FROM resolved_labels").fetchone()
        finally:
            conn.close()
    assert len(acked) >= 300


# --------------------------------------------------------------------------------- undo semantics


def decide(conn, cid: int, verdict: str, reviewer: str = "ann", corrected_value: str | None = None) -> None:
    assert store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer=reviewer,
                                 verdict=verdict, corrected_value=corrected_value)


def current(conn, cid: int, reviewer: str = "ann") -> list[tuple]:
    df = store.list_current_decisions(conn, cid)
    df = df[df["reviewer"] == reviewer]
    return [(v, c if isinstance(c, str) else None) for v, c in zip(df["verdict"], df["corrected_value"], strict=True)]


def resolved(conn, cid: int) -> tuple | None:
    row = conn.execute("SELECT status, verdict, label FROM resolved_labels WHERE candidate_id = ?", [cid]).fetchone()
    return row


def test_undo_retract_and_skip_semantics(rel_db):
    conn = store.connect(rel_db)
    try:
        c1, c2, c3, c4, c5 = candidate_ids(conn)[:5]
        spec = store.QueueSpec(dataset=DATASET)

        # accept, then retract (undo): no current decision, and the candidate is back in the queue.
        decide(conn, c1, "accept")
        assert current(conn, c1) == [("accept", None)]
        assert not store.is_open(conn, "ann", spec, c1)
        decide(conn, c1, "retract")
        assert current(conn, c1) == []
        assert resolved(conn, c1) is None
        assert store.is_open(conn, "ann", spec, c1)

        # accept, retract, reject: the current decision is the reject.
        decide(conn, c2, "accept")
        decide(conn, c2, "retract")
        decide(conn, c2, "reject")
        assert current(conn, c2) == [("reject", None)]
        assert resolved(conn, c2) == ("agreed", "reject", None)

        # a skip does not change the current decision ...
        decide(conn, c3, "accept")
        decide(conn, c3, "skip")
        assert current(conn, c3) == [("accept", None)]
        value = conn.execute("SELECT value FROM candidates WHERE candidate_id = ?", [c3]).fetchone()[0]
        assert resolved(conn, c3) == ("agreed", "accept", value)
        assert not store.is_open(conn, "ann", spec, c3)
        # ... and a skip alone decides nothing: the candidate stays open for this reviewer.
        decide(conn, c4, "skip")
        assert current(conn, c4) == [] and resolved(conn, c4) is None
        assert store.is_open(conn, "ann", spec, c4)

        # a change of mind: correct after accept replaces it; retracting it leaves nothing (not the accept).
        decide(conn, c5, "accept")
        decide(conn, c5, "correct", corrected_value='"other"')
        assert current(conn, c5) == [("correct", '"other"')]
        assert resolved(conn, c5) == ("agreed", "correct", '"other"')
        decide(conn, c5, "retract")
        assert current(conn, c5) == []

        # another reviewer's undo touches only their own decision.
        decide(conn, c2, "accept", reviewer="bob")
        assert resolved(conn, c2)[0] == "conflict"
        decide(conn, c2, "retract", reviewer="bob")
        assert current(conn, c2) == [("reject", None)] and current(conn, c2, "bob") == []
        assert resolved(conn, c2) == ("agreed", "reject", None)

        # Nothing was updated in place: every action above is its own row.
        assert store.count_decisions(conn) == 13
        assert len(store.list_decision_log(conn, c2)) == 5
    finally:
        conn.close()
