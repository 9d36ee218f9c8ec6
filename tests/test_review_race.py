"""Review slots under concurrency: an overlap-N queue never stores more than N standing decisions per candidate
from distinct reviewers. In the store (insert_decision's overlap, checked inside the INSERT) and in the review
session (slot check and claim as one step; decision and release as one step), with threads deciding at once."""

from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pytest

from analysis.calibration import audit_sample_size
from analysis.candidates import CANDIDATE_SCHEMA
from app import store
from app.review import session as review_session
from app.review.claims import ClaimRegistry
from tests.helpers import ingest_log, make_turn, simulated_log, write_jsonl
from tests.test_review_store import candidate_rows

N_THREADS = 8


@pytest.fixture
def sdb(db, tmp_path):
    """Dataset "t": six turns with one intent candidate each."""
    turns = [make_turn(f"d{i}", 0) for i in range(6)]
    ingest_log(db, write_jsonl(tmp_path / "log.jsonl", turns), "t")
    rows = candidate_rows("m1", [f"intent_{i}" for i in range(6)], [0.1 * (i + 1) for i in range(6)])
    store.insert_candidates(db, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    return db


def cids(db) -> list[int]:
    return [r[0] for r in db.execute("SELECT candidate_id FROM candidates ORDER BY candidate_id").fetchall()]


def decide(db, cid: int, reviewer: str, verdict: str = "accept", *, overlap: int | None = 1, role: str = "review",
           decision_id: str | None = None) -> bool:
    return store.insert_decision(db, decision_id=decision_id or str(uuid.uuid4()), candidate_id=cid,
                                 reviewer=reviewer, verdict=verdict, role=role, overlap=overlap,
                                 corrected_value='"fixed"' if verdict == "correct" else None)


def standing(db, cid: int) -> list[str]:
    """The reviewers with a standing (non-adjudication) decision on a candidate."""
    return sorted(r[0] for r in db.execute(
        "SELECT reviewer FROM current_decisions WHERE candidate_id = ? AND role <> 'adjudicate'", [cid]).fetchall())


def race(db, cid: int, overlap: int) -> list:
    """N_THREADS distinct reviewers decide one candidate at the same moment; each one's outcome."""
    start = threading.Barrier(N_THREADS)
    outcomes: list = [None] * N_THREADS

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = decide(db, cid, f"reviewer-{i}", ("accept", "reject", "correct")[i % 3], overlap=overlap)
        except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a deciding thread hung"
    return outcomes


@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_concurrent_reviewers_fill_exactly_the_overlap(sdb, overlap):
    for cid in cids(sdb)[:3]:
        outcomes = race(sdb, cid, overlap)
        assert sum(o is True for o in outcomes) == overlap, outcomes
        refused = [o for o in outcomes if o is not True]
        assert len(refused) == N_THREADS - overlap
        assert all(isinstance(o, store.SlotTakenError) for o in refused), refused
        assert "already has its" in str(refused[0]) and f"#{cid}" in str(refused[0])
        assert len(standing(sdb, cid)) == overlap
        assert sdb.execute("SELECT count(*) FROM decisions WHERE candidate_id = ?", [cid]).fetchone()[0] == overlap


def test_slot_taken_is_a_value_error_and_stores_nothing(sdb):
    cid = cids(sdb)[0]
    assert decide(sdb, cid, "ana")
    with pytest.raises(ValueError, match="already has its 1 reviewer"):
        decide(sdb, cid, "bob", "reject")
    assert standing(sdb, cid) == ["ana"]
    assert sdb.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1


def test_a_reviewer_can_always_redecide_their_own_candidate(sdb):
    cid = cids(sdb)[0]
    assert decide(sdb, cid, "ana", "accept")
    assert decide(sdb, cid, "ana", "reject")  # a change of mind: one's own decision leaves one's slot free
    assert decide(sdb, cid, "ana", "retract", overlap=1)  # undo
    assert decide(sdb, cid, "ana", "correct")  # and decide again after the undo
    assert standing(sdb, cid) == ["ana"]
    with pytest.raises(store.SlotTakenError):
        decide(sdb, cid, "bob")
    assert decide(sdb, cid, "bob", "skip")  # a skip takes no slot
    decide(sdb, cid, "ana", "retract")
    assert decide(sdb, cid, "bob")  # ana's retraction freed the slot
    assert standing(sdb, cid) == ["bob"]


def test_a_double_submit_is_still_false_not_a_taken_slot(sdb):
    cid = cids(sdb)[0]
    did = str(uuid.uuid4())
    assert decide(sdb, cid, "ana", decision_id=did)
    assert decide(sdb, cid, "ana", "reject", decision_id=did) is False
    assert decide(sdb, 999_999, "ana") is False  # an unknown candidate stores nothing, as without overlap


def test_without_overlap_nothing_is_slot_limited(sdb):
    cid = cids(sdb)[0]
    assert decide(sdb, cid, "ana", overlap=None)
    assert decide(sdb, cid, "bob", overlap=None)  # decided/all queues, the rewrites page, adjudication
    assert decide(sdb, cid, "carl", overlap=None)
    assert decide(sdb, cid, "dora", overlap=None, role="adjudicate")
    assert standing(sdb, cid) == ["ana", "bob", "carl"]


def test_overlap_is_for_review_and_audit_only(sdb):
    cid = cids(sdb)[0]
    for bad in ({"overlap": 0}, {"overlap": 1, "role": "adjudicate"}, {"overlap": True}):
        with pytest.raises(ValueError, match="overlap"):
            decide(sdb, cid, "ana", **bad)
    assert sdb.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_bulk_accepts_fill_review_slots_and_audits_count_only_audits(sdb):
    bulk = store.bulk_accept(sdb, "bulker", store.QueueSpec(dataset="t"), 0.0, audit_size=lambda n: n)
    cid = cids(sdb)[0]
    with pytest.raises(store.SlotTakenError):  # the review queue counts the bulk accept, as its queue does
        decide(sdb, cid, "ana")
    audit = store.QueueSpec(dataset="t", audit_bulk_id=bulk.bulk_id)
    assert store.decision_slots(audit) == 1
    assert decide(sdb, cid, "ana", role="audit", overlap=store.decision_slots(audit))
    with pytest.raises(store.SlotTakenError):  # one audit per sampled item
        decide(sdb, cid, "bob", role="audit", overlap=1)
    assert audit_sample_size(6) >= 6


def test_decision_slots_per_queue():
    assert store.decision_slots(store.QueueSpec(dataset="t")) == 1
    assert store.decision_slots(store.QueueSpec(dataset="t", overlap=3)) == 3
    assert store.decision_slots(store.QueueSpec(dataset="t", overlap=3, status="decided")) is None
    assert store.decision_slots(store.QueueSpec(dataset="t", overlap=3, status="all")) is None


# ------------------------------------------------------------------------------------ review sessions


@pytest.fixture
def queue_db(db, tmp_path):
    """Dataset "t": 200 simulated turns, with the logged NLU's intent and slot candidates."""
    ingest_log(db, simulated_log(tmp_path / "log.jsonl", n_turns=200, seed=11), "t", candidates=True)
    return db


def per_thread_state(monkeypatch) -> threading.local:
    """review_session.state() per thread: each thread is one browser session (st.session_state does not exist
    outside a Streamlit run)."""
    local = threading.local()
    monkeypatch.setattr(review_session, "state", lambda: local.state)
    return local


def work_the_queue(db, spec: store.QueueSpec, reviewers: list[str], local: threading.local) -> dict[str, list]:
    """Each reviewer, in a thread of their own, shows a card and accepts it until the queue is empty; the
    acknowledgements each session showed."""
    claims = ClaimRegistry()
    start = threading.Barrier(len(reviewers))
    errors: list[BaseException] = []
    said: dict[str, list] = {name: [] for name in reviewers}

    def review(name: str) -> None:
        local.state = review_session.ReviewState()
        try:
            start.wait()
            for _ in range(2000):  # a bound, not a timing: the queue has far fewer cards
                card = review_session.current_card(db, name, spec, claims)
                if card is None:
                    return
                review_session.decide(db, name, spec, claims, card["candidate_id"], card["decision_id"], "accept")
                said[name].append(local.state.last_saved)
            raise AssertionError(f"{name} never reached the end of the queue")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(name,)) for name in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a reviewer thread hung"
    assert not errors, errors
    return said


def max_standing_per_candidate(db, spec: store.QueueSpec) -> int:
    return db.execute("""
        SELECT coalesce(max(n), 0) FROM (SELECT count(DISTINCT reviewer) AS n FROM current_decisions
                                         WHERE role IN ('review', 'bulk', 'audit') GROUP BY candidate_id)
    """).fetchone()[0]


@pytest.mark.parametrize("order", ["score_asc", "random"])
def test_two_sessions_never_double_review_an_overlap_1_queue(queue_db, monkeypatch, order):
    local = per_thread_state(monkeypatch)
    spec = store.QueueSpec(dataset="t", task="intent", order=order, seed=2)
    total = store.count_queue(queue_db, "nobody", spec)
    assert total >= 150
    said = work_the_queue(queue_db, spec, ["ana", "bob"], local)
    assert max_standing_per_candidate(queue_db, spec) == 1
    # Every candidate got its one reviewer, and both sessions did part of the work.
    decided = queue_db.execute("SELECT count(DISTINCT candidate_id) FROM current_decisions").fetchone()[0]
    assert decided == total and all(said.values())
    assert store.count_queue(queue_db, "carl", spec) == 0


def test_three_sessions_stay_within_an_overlap_2_queue(queue_db, monkeypatch):
    local = per_thread_state(monkeypatch)
    spec = store.QueueSpec(dataset="t", task="intent", overlap=2)
    total = store.count_queue(queue_db, "nobody", spec)
    work_the_queue(queue_db, spec, ["ana", "bob", "carl"], local)
    assert max_standing_per_candidate(queue_db, spec) == 2
    per_candidate = queue_db.execute("SELECT candidate_id, count(*) FROM current_decisions GROUP BY 1").fetchall()
    assert len(per_candidate) == total and all(n == 2 for _, n in per_candidate)


def test_a_session_whose_claim_expired_is_told_and_stores_nothing(queue_db, monkeypatch):
    """The database's check, seen from a session: ana's card was claimed long ago (the claim expired) and bob
    decided it meanwhile; ana's accept is refused, she is told, and her next card is another one."""
    states = {"ana": review_session.ReviewState(), "bob": review_session.ReviewState()}
    who = ["ana"]
    monkeypatch.setattr(review_session, "state", lambda: states[who[0]])
    now = [0.0]
    claims = ClaimRegistry(ttl=10, clock=lambda: now[0])
    spec = store.QueueSpec(dataset="t", task="intent")
    card = review_session.current_card(queue_db, "ana", spec, claims)
    now[0] = 11.0  # ana's claim expired (a tab left open)
    who[0] = "bob"
    theirs = review_session.current_card(queue_db, "bob", spec, claims)
    assert theirs["candidate_id"] == card["candidate_id"]
    review_session.decide(queue_db, "bob", spec, claims, theirs["candidate_id"], theirs["decision_id"], "reject")
    who[0] = "ana"
    review_session.decide(queue_db, "ana", spec, claims, card["candidate_id"], card["decision_id"], "accept")
    assert states["ana"].last_saved.startswith(f"Not saved: #{card['candidate_id']} already has its reviewer")
    assert states["ana"].history == [] and standing(queue_db, card["candidate_id"]) == ["bob"]
    nxt = review_session.current_card(queue_db, "ana", spec, claims)
    assert nxt["candidate_id"] != card["candidate_id"]
