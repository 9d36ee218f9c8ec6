"""The review queue's background refill (app/review/session.py): the next batch is queried on a worker thread
while the reviewer reads, and the cards still come in queue order, each once, with the right progress counts,
whatever was decided, skipped or undone while that query ran."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from app import store
from app.review import session as review_session
from app.review.claims import ClaimRegistry
from tests.helpers import ingest_log, simulated_log


@pytest.fixture
def rdb(db, tmp_path):
    ingest_log(db, simulated_log(tmp_path / "log.jsonl", n_turns=120, seed=5), "t", candidates=True)
    return db


@pytest.fixture
def session(monkeypatch):
    s = review_session.ReviewState()
    monkeypatch.setattr(review_session, "state", lambda: s)
    monkeypatch.setattr(review_session, "BATCH", 8)  # many refills on a small queue
    monkeypatch.setattr(review_session, "REFILL_AHEAD", 4)
    return s


class _Lazy(Future):
    """A future whose work runs only when the test says so, or when someone waits for its result."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def run(self) -> None:
        if not self.done():
            try:
                self.set_result(self.fn())
            except Exception as exc:  # noqa: BLE001 - handed to whoever reads the result
                self.set_exception(exc)

    def result(self, timeout=None):
        self.run()
        return super().result(timeout)

    def cancel(self) -> bool:
        return False  # it stands for a query already running: it cannot be called off


class LazyPool:
    """Stands in for the refill thread pool: nothing runs behind the test's back."""

    def __init__(self):
        self.submitted: list[_Lazy] = []

    def submit(self, fn):
        self.submitted.append(_Lazy(fn))
        return self.submitted[-1]

    def run_all(self) -> None:
        for f in self.submitted:
            f.run()


class CountingPool(ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=1)
        self.n = 0

    def submit(self, fn, *args, **kwargs):
        self.n += 1
        return super().submit(fn, *args, **kwargs)


def decide(conn, spec, claims, card, verdict="accept"):
    review_session.decide(conn, "ana", spec, claims, card["candidate_id"], card["decision_id"], verdict)


@pytest.mark.parametrize("order", ["score_asc", "random", "disagreement"])
def test_cards_come_in_queue_order_each_once_with_refills_on_a_thread(rdb, session, monkeypatch, order):
    pool = CountingPool()
    monkeypatch.setattr(review_session, "_REFILLS", pool)
    spec = store.QueueSpec(dataset="t", task="intent", order=order, seed=4)
    expected = store.list_queue(rdb, "ana", spec, limit=10_000)
    claims, seen = ClaimRegistry(), []
    while (card := review_session.current_card(rdb, "ana", spec, claims)) is not None:
        seen.append(card["candidate_id"])
        decide(rdb, spec, claims, card)
        assert len(seen) <= len(expected), "a card came twice"
    pool.shutdown()
    assert seen == expected
    assert pool.n >= len(expected) // 8 - 1  # the refills did run in the background
    decided, remaining, _ = review_session.progress(rdb, "ana", spec)
    assert (decided, remaining) == (len(expected), 0)


def test_a_card_skipped_while_the_refill_ran_comes_back_after_the_unseen_ones(rdb, session, monkeypatch):
    pool = LazyPool()
    monkeypatch.setattr(review_session, "_REFILLS", pool)
    spec = store.QueueSpec(dataset="t", task="intent")
    claims = ClaimRegistry()
    card = review_session.current_card(rdb, "ana", spec, claims)
    order = [card["candidate_id"]]
    while not pool.submitted:  # decide until the background refill starts (fewer than 4 ids left ahead)
        decide(rdb, spec, claims, card)
        card = review_session.current_card(rdb, "ana", spec, claims)
        order.append(card["candidate_id"])
    pool.run_all()  # the query ran now, seeing the card on screen as unseen
    skipped = card["candidate_id"]
    decide(rdb, spec, claims, card, "skip")  # skipped after the query: the merge must not bring it back early
    unseen = store.count_queue(rdb, "ana", spec) - 1
    shown = []
    for _ in range(unseen):
        card = review_session.current_card(rdb, "ana", spec, claims)
        shown.append(card["candidate_id"])
        decide(rdb, spec, claims, card)
    assert skipped not in shown
    assert review_session.current_card(rdb, "ana", spec, claims)["candidate_id"] == skipped


def test_progress_counts_follow_decisions_made_while_they_were_counted(rdb, session, monkeypatch):
    pool = LazyPool()
    monkeypatch.setattr(review_session, "_REFILLS", pool)
    monkeypatch.setattr(review_session, "COUNT_EVERY_SECONDS", 0.0)  # every refill counts
    spec = store.QueueSpec(dataset="t", task="intent")
    claims = ClaimRegistry()
    total = store.count_queue(rdb, "ana", spec)
    card = review_session.current_card(rdb, "ana", spec, claims)
    n = 0
    while not pool.submitted:
        decide(rdb, spec, claims, card)
        n += 1
        card = review_session.current_card(rdb, "ana", spec, claims)
    pool.run_all()  # counted now: n decided
    for _ in range(3):  # three more before the counts are taken in, one of them undone
        decide(rdb, spec, claims, card)
        n += 1
        card = review_session.current_card(rdb, "ana", spec, claims)
    review_session.undo(rdb, spec)
    n -= 1
    review_session.current_card(rdb, "ana", spec, claims)  # takes in the refill and its counts
    assert session.counted_at > float("-inf")
    assert review_session.progress(rdb, "ana", spec)[:2] == (n, total - n)
    assert (store.count_my_decided(rdb, "ana", spec), store.count_queue(rdb, "ana", spec)) == (n, total - n)


def test_a_failed_background_query_falls_back_to_one_in_the_foreground(rdb, session, monkeypatch, caplog):
    class Failing(LazyPool):
        def submit(self, fn):
            def boom():
                raise RuntimeError("connection closed under it")
            return super().submit(boom)

    monkeypatch.setattr(review_session, "_REFILLS", Failing())
    spec = store.QueueSpec(dataset="t", task="intent")
    expected = store.list_queue(rdb, "ana", spec, limit=30)
    claims, seen = ClaimRegistry(), []
    with caplog.at_level(logging.WARNING, logger=review_session.__name__):
        for _ in range(30):
            card = review_session.current_card(rdb, "ana", spec, claims)
            seen.append(card["candidate_id"])
            decide(rdb, spec, claims, card)
    assert seen == expected
    assert "background queue refill failed" in caplog.text


def test_a_refill_for_a_queue_left_behind_is_not_merged(rdb, session, monkeypatch):
    pool = LazyPool()
    monkeypatch.setattr(review_session, "_REFILLS", pool)
    intents = store.QueueSpec(dataset="t", task="intent")
    slots = store.QueueSpec(dataset="t", task="slots")
    claims = ClaimRegistry()
    card = review_session.current_card(rdb, "ana", intents, claims)
    while not pool.submitted:
        decide(rdb, intents, claims, card)
        card = review_session.current_card(rdb, "ana", intents, claims)
    pool.run_all()
    shown = review_session.cards(rdb, "ana", slots, claims)  # the reviewer switched queues meanwhile
    tasks = {store.get_candidate(rdb, cid)["task"] for cid in session.batch}
    assert tasks == {"slots"} and shown[0]["task"] == "slots"


def test_a_refill_still_queued_behind_others_is_cancelled_and_run_in_the_foreground(rdb, session, monkeypatch):
    class Queued:
        """A pool whose workers are all busy with other sessions' refills: nothing submitted starts."""

        def __init__(self):
            self.submitted: list[Future] = []

        def submit(self, fn):
            self.submitted.append(Future())
            return self.submitted[-1]

    pool = Queued()
    monkeypatch.setattr(review_session, "_REFILLS", pool)
    spec = store.QueueSpec(dataset="t", task="intent")
    expected = store.list_queue(rdb, "ana", spec, limit=30)
    claims, seen = ClaimRegistry(), []
    for _ in range(30):
        card = review_session.current_card(rdb, "ana", spec, claims)
        seen.append(card["candidate_id"])
        decide(rdb, spec, claims, card)
    assert seen == expected  # the batch ran out each time: the queued query was called off, one ran now
    assert len(pool.submitted) >= 3 and all(f.cancelled() for f in pool.submitted[:-1])


def test_a_background_count_that_overlaps_a_decision_of_the_session_is_dropped(rdb, session, monkeypatch):
    spec = store.QueueSpec(dataset="t", task="intent")
    real = store.count_my_decided

    def while_a_decision_is_stored(conn, reviewer, queue):
        session.writes += 2  # a whole decision stored between the two counts
        return real(conn, reviewer, queue)

    assert review_session._fetch(rdb, "ana", spec, 0, True, session).counts is not None
    monkeypatch.setattr(store, "count_my_decided", while_a_decision_is_stored)
    assert review_session._fetch(rdb, "ana", spec, 0, True, session).counts is None
    monkeypatch.setattr(store, "count_my_decided", real)
    session.writes += 1  # a decision being stored when the count starts
    assert review_session._fetch(rdb, "ana", spec, 0, True, session).counts is None
