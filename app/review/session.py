"""The review queue of one browser session: the queue's spec from and to the URL, the card shown, and the
decision callbacks (accept, reject, skip, correct, undo).

Decisions are stored by the one decision writer (app/review/decisions.py): a card's decision id is made when
the card is first shown and bound into its buttons, and the Undo button is bound to the decision it takes
back, so a double click, a double key press or a resubmitted request stores one decision.
Callbacks run before the page's next run, so the next card is rendered in the same run as the decision.

The page shows the card and prefetches the next PREFETCH ones (cards(): claimed like the card on screen), so
the browser can show the next card the moment a key is pressed (components/keys.py). Every decision, by key or
button, names the card it was made on (candidate id and decision id); one on a card this session is no longer
offering (decided already, or gone with a change of queue) is ignored: nothing is stored.

The queue's next ids are fetched in the background (_Refill): when fewer than REFILL_AHEAD fetched ids are left
ahead of the screen, the next batch is queried on a worker thread with its own cursor while the reviewer reads,
and taken in at a later run. Only when the batch runs out before that query is done does a run wait for it. At a
million candidates the queue query takes a few hundred ms: done in the background it is off the path from a
decision to the next card (issue 22: p99 under 100 ms).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import NamedTuple

import duckdb
import streamlit as st

from analysis.candidates import canonical_json
from app import store
from app.review import decisions
from app.review.claims import ClaimRegistry

_KEY = "review_session"
COUNT_EVERY_SECONDS = 30.0  # progress counts are re-queried at a refill at most this often
BATCH = 50  # candidate ids fetched per queue query; the card on screen is re-checked on every run
PREFETCH = 2  # cards sent to the browser after the one on screen: a reviewer can decide this many ahead of it
REFILL_AHEAD = 25  # fetch the next batch in the background once fewer ids than this are left ahead of the screen

log = logging.getLogger(__name__)
# One small pool for the whole server: a refill is one query per session every BATCH - REFILL_AHEAD cards.
_REFILLS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="turnlens-queue-refill")
_PENDING: dict[Future, duckdb.DuckDBPyConnection] = {}  # refills not finished yet, with their cursors (settle())


def settle(timeout: float = 30.0) -> None:
    """Before closing a database the refills read (tests; a DuckDB connection will not close while one of its
    cursors is busy): call off the refills still queued and wait for those running."""
    for future, cursor in list(_PENDING.items()):
        if future.cancel():
            cursor.close()
            _PENDING.pop(future, None)
    wait_for_futures([f for f in list(_PENDING) if f.running()], timeout=timeout)


class Decided(NamedTuple):
    """A decision this session stored, for undo."""
    candidate_id: int
    verdict: str
    reviewer: str  # who decided (stored form): the retraction is theirs, whatever the sidebar says later
    decision_id: str


class _Fetched(NamedTuple):
    """What one queue query returned: the ids in order and, when they were counted too, the progress counts
    with the session's net decision count at the moment of counting (decisions after it are added on merge)."""
    ids: list[int]
    counts: tuple[int, int, int, float] | None  # (remaining, decided, net decisions then, time.monotonic())


@dataclass
class _Refill:
    """A queue query running in the background for one spec, on a cursor of its own."""
    spec: store.QueueSpec
    future: Future
    cursor: duckdb.DuckDBPyConnection

    def drop(self) -> None:
        """Not wanted any more: cancel it if it has not started (freeing the pool for others) and close its
        cursor; one already running finishes and closes its cursor itself."""
        if self.future.cancel():
            self.cursor.close()


@dataclass
class ReviewState:
    spec: store.QueueSpec | None = None
    batch: list[int] = field(default_factory=list)
    tokens: decisions.Tokens = field(default_factory=decisions.Tokens)  # candidate id -> decision id of its card
    history: list[Decided] = field(default_factory=list)  # for undo, newest last
    done: set[int] = field(default_factory=set)  # decided in this session: the decided/all queues move on
    correcting: bool = False
    last_saved: str | None = None  # acknowledgement shown after a decision is committed
    # Progress counts, queried when the batch is refilled and kept up to date by this session's own
    # decisions in between (counting the queue at 1M candidates costs tens of ms: not on every card).
    remaining: int = 0
    decided: int = 0
    counted_at: float = float("-inf")  # when the two counts were last queried (time.monotonic())
    net_decided: int = 0  # this session's stored decisions minus its undos (moves the counts between queries)
    writes: int = 0  # odd while this session stores a decision or an undo: a background count made meanwhile is dropped
    refill: _Refill | None = None  # the next batch, being fetched in the background
    moved: set[int] = field(default_factory=set)  # cards decided, skipped or undone since that fetch started
    exhausted: bool = False  # the last fetch returned fewer ids than asked: no background refill until it changes
    offered: dict[int, str] = field(default_factory=dict)  # cards sent to the browser: candidate id -> decision id
    turns: dict[tuple, list] = field(default_factory=dict)  # (dataset, dialogue, other dialogue) of offered cards
    ignored: str | None = None  # what the last ignored decision was (shown beside the acknowledgement)
    key_client: str = ""  # the browser page whose key events were last handled, and its last event's number
    key_seq: int = 0
    runs: int = 0  # renders of the card, so the browser hears of every run (components.keys.review_card)


def state() -> ReviewState:
    if _KEY not in st.session_state:
        st.session_state[_KEY] = ReviewState()
    return st.session_state[_KEY]


# ------------------------------------------------------------------------------- URL <-> queue spec

_PARAMS = ("task", "value", "smin", "smax", "run", "domain", "status", "order", "seed", "overlap", "audit")


def spec_from_params(params: dict[str, str], dataset: str) -> tuple[store.QueueSpec, list[str]]:
    """The queue a link describes. Unusable parameters are dropped, each with a warning saying why (quoting
    the parameter with repr, so the warning itself is always valid text)."""
    warnings: list[str] = []
    kwargs: dict = {"dataset": dataset}
    params = dict(params)
    for name in _PARAMS:
        if name in params and not valid_unicode(params[name]):
            warnings.append(f"ignored {name}={params.pop(name)!r}: not valid Unicode")

    def number(name: str, cast, low, high):
        raw = params.get(name)
        if raw is None:
            return None
        try:
            value = cast(raw)
        except ValueError:
            warnings.append(f"ignored {name}={raw!r}: not a number")
            return None
        if not low <= value <= high:
            warnings.append(f"ignored {name}={raw!r}: outside {low}..{high}")
            return None
        return value

    for name, key in (("task", "task"), ("domain", "domain")):
        if params.get(name):
            kwargs[key] = params[name]
    if params.get("value"):
        try:
            kwargs["value"] = value_json(params["value"])
        except ValueError as exc:  # "\ud800" in JSON: a lone surrogate, which no query or page can carry
            warnings.append(f"ignored value={params['value']!r}: {exc}")
    for name, key, cast, low, high in (("smin", "score_min", float, 0.0, 1.0), ("smax", "score_max", float, 0.0, 1.0),
                                       ("run", "run_id", int, 1, 2**62), ("seed", "seed", int, 0, 2**31),
                                       ("overlap", "overlap", int, 1, 10), ("audit", "audit_bulk_id", int, 1, 2**62)):
        value = number(name, cast, low, high)
        if value is not None:
            kwargs[key] = value
    for name, allowed in (("status", store.STATUSES), ("order", store.ORDERS)):
        raw = params.get(name)
        if raw is not None:
            if raw in allowed:
                kwargs[name] = raw
            else:
                warnings.append(f"ignored {name}={raw!r}: expected one of {', '.join(allowed)}")
    try:
        return store.QueueSpec(**kwargs), warnings
    except ValueError as exc:  # e.g. smin > smax
        warnings.append(f"ignored the score range: {exc}")
        kwargs.pop("score_min", None)
        kwargs.pop("score_max", None)
        return store.QueueSpec(**kwargs), warnings


def value_json(text: str) -> str:
    """A proposed value as typed or linked: JSON if it parses, else the plain string it is. Raises ValueError
    when the value is not valid Unicode (a lone surrogate, typed as is or as a JSON escape such as "\ud800")."""
    try:
        value = canonical_json(json.loads(text))
    except json.JSONDecodeError:
        value = canonical_json(text.strip())
    if not valid_unicode(value):
        raise ValueError("not valid Unicode")
    return value


def valid_unicode(text: str) -> bool:
    """Whether text can be encoded as UTF-8 (a lone surrogate cannot: no query, page or file can carry it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def spec_to_params(spec: store.QueueSpec) -> dict[str, str]:
    """The URL parameters of a queue (defaults left out, so links stay short)."""
    default = store.QueueSpec(dataset=spec.dataset)
    out: dict[str, str] = {}
    for name, key in (("task", "task"), ("value", "value"), ("domain", "domain"), ("smin", "score_min"),
                      ("smax", "score_max"), ("run", "run_id"), ("status", "status"), ("order", "order"),
                      ("seed", "seed"), ("overlap", "overlap"), ("audit", "audit_bulk_id")):
        value = getattr(spec, key)
        if value is not None and value != getattr(default, key):
            out[name] = str(value)
    return out


def sync_url(spec: store.QueueSpec) -> None:
    wanted = spec_to_params(spec)
    for name in _PARAMS:
        if name in wanted:
            if st.query_params.get(name) != wanted[name]:
                st.query_params[name] = wanted[name]
        elif name in st.query_params:
            del st.query_params[name]


# ------------------------------------------------------------------------------------------ cards


def current_card(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec,
                 claims: ClaimRegistry) -> dict | None:
    """The candidate to show now, or None when the queue is empty (cards() without prefetching)."""
    shown = cards(conn, reviewer, spec, claims, ahead=0)
    return shown[0] if shown else None


def cards(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, claims: ClaimRegistry, *,
          ahead: int = PREFETCH) -> list[dict]:
    """The candidate to show now and up to `ahead` after it, in queue order ([] when the queue is empty); each
    with its decision id ("decision_id"). These are the cards this session offers: a decision on any other card
    is ignored (decide), and claims on cards it offered before and no longer does are released.

    A card is offered only while the candidate still has room (overlap) and this reviewer can claim it, so
    two reviewers working the same queue at once are not handed the same candidate beyond its overlap. The
    room is checked and the card claimed in one step (ClaimRegistry.claim_if_open), so a decision stored
    meanwhile by another session (ClaimRegistry.record) cannot slip in between."""
    reviewer = store.reviewer_name(reviewer)
    s = state()
    if s.spec != spec:
        s.spec, s.batch, s.correcting, s.done = spec, [], False, set()
        if s.refill is not None:
            s.refill.drop()
        s.counted_at, s.refill, s.exhausted = float("-inf"), None, False
    if s.refill is not None and s.refill.future.done():
        _take_refill(s, wait=False)
    out: list[dict] = []
    refilled = False
    i = 0
    while len(out) <= ahead:
        if i >= len(s.batch):
            if refilled:
                break
            # the background query if one is running; one now if there was none, or it found the queue dry
            # (then counted afresh, as a foreground refill does)
            if not _take_refill(s, wait=True) or i >= len(s.batch):
                _refill(conn, reviewer, spec, s)
            refilled = True
            continue
        cid = s.batch[i]
        if claims.claim_if_open(cid, reviewer, partial(store.open_slots, conn, reviewer, spec, cid)):
            card = store.get_candidate(conn, cid)
            if card is not None:
                card["decision_id"] = s.tokens.bind(cid)
                out.append(card)
                i += 1
                continue
        s.batch.pop(i)
    offered = {card["candidate_id"]: card["decision_id"] for card in out}
    for cid in s.offered.keys() - offered.keys():  # no longer on offer (a change of queue, an undo): free it
        claims.release(cid, reviewer)
    s.offered = offered
    wanted = {(c["dialogue_id"], c["other_dialogue_id"]) for c in out}
    s.turns = {k: v for k, v in s.turns.items() if k[1:] in wanted}
    if len(s.batch) - len(out) < REFILL_AHEAD and s.refill is None and not s.exhausted:
        _start_refill(conn, reviewer, spec, s)
    return out


def _fetch(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, limit: int, count: bool,
           s: ReviewState) -> _Fetched:
    """The work of a refill, in the foreground or not: the queue's next `limit` ids (none when limit is 0) and,
    when count, the progress counts."""
    ids = store.list_queue(conn, reviewer, spec, limit=limit) if limit else []
    counts = None
    if count:
        # read before counting: decisions stored from here on are added on merge. A decision of this session
        # stored while counting (writes moved or odd: see _storing) may or may not be in the counts: they are
        # dropped then, and the next refill counts again
        writes, net = s.writes, s.net_decided
        remaining = store.count_queue(conn, reviewer, replace(spec, status="undecided"))
        decided = store.count_my_decided(conn, reviewer, spec)
        if writes % 2 == 0 and s.writes == writes:
            counts = (remaining, decided, net, time.monotonic())
    return _Fetched(ids, counts)


def _merge(s: ReviewState, fetched: _Fetched, limit: int) -> None:
    """Append fetched ids not in the batch yet, not decided in this session and not moved since the query
    started (a card skipped meanwhile comes back at its place at the end of a later fetch), and take its counts."""
    if limit:
        have = set(s.batch) | s.done | s.moved
        new = [c for c in fetched.ids if c not in have]
        s.batch.extend(new[:BATCH])
        # the query found fewer than it asked for and all of them are taken: nothing more to fetch until the
        # batch runs out (then a foreground refill looks again: other reviewers' undos, new candidates)
        s.exhausted = len(fetched.ids) < limit and len(new) <= BATCH
    if fetched.counts is not None:
        remaining, decided, net, at = fetched.counts
        since = s.net_decided - net
        s.remaining, s.decided, s.counted_at = max(remaining - since, 0), max(decided + since, 0), at


def _limit(s: ReviewState) -> int:
    # decided/all queues still match what was decided in this session: ask for enough to get past it
    return BATCH + len(s.done) + len(s.batch)


def _refill(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, s: ReviewState) -> None:
    """Append the queue's next ids to the batch now (in this run); the progress counts are queried again at
    most every COUNT_EVERY_SECONDS, and when the queue has run dry."""
    limit = _limit(s)
    s.moved = set()
    _merge(s, _fetch(conn, reviewer, spec, limit, False, s), limit)
    if time.monotonic() - s.counted_at > COUNT_EVERY_SECONDS or not s.batch:
        _merge(s, _fetch(conn, reviewer, spec, 0, True, s), 0)


def _start_refill(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, s: ReviewState) -> None:
    """Query the queue's next batch on a worker thread, with a cursor of its own (a DuckDB connection is used
    by one thread at a time), made here and closed there."""
    limit = _limit(s)
    count = time.monotonic() - s.counted_at > COUNT_EVERY_SECONDS
    cursor = conn.cursor()

    def work() -> tuple[_Fetched, int]:
        try:
            return _fetch(cursor, reviewer, spec, limit, count, s), limit
        finally:
            cursor.close()

    try:
        future = _REFILLS.submit(work)
    except RuntimeError:  # the pool is shut down (the interpreter is exiting): the foreground refill will do
        cursor.close()
        return
    _PENDING[future] = cursor
    future.add_done_callback(lambda f: _PENDING.pop(f, None))
    s.moved = set()
    s.refill = _Refill(spec, future, cursor)


@contextmanager
def _storing(s: ReviewState):
    """Around storing a decision or an undo and counting it in net_decided: s.writes is odd meanwhile, so a
    background count that overlaps it is dropped (_fetch)."""
    s.writes += 1
    try:
        yield
    finally:
        s.writes += 1


def _take_refill(s: ReviewState, *, wait: bool) -> bool:
    """Merge the background refill's result into the batch (waiting for it when wait); False when there was
    none for this queue or it failed (the caller then queries in the foreground)."""
    refill, s.refill = s.refill, None
    if refill is None:
        return False
    if refill.spec != s.spec:
        refill.drop()
        return False
    if not wait and not refill.future.done():
        s.refill = refill
        return False
    if wait and refill.future.cancel():  # still queued behind other sessions' refills: query now instead
        refill.cursor.close()
        return False
    try:
        fetched, limit = refill.future.result()
    except Exception:  # e.g. the database was closed under it: the foreground query says what is wrong
        log.warning("background queue refill failed; querying in the foreground", exc_info=True)
        return False
    _merge(s, fetched, limit)
    return True


def card_turns(conn: duckdb.DuckDBPyConnection, card: dict, dataset: str) -> tuple[list[dict], list[dict] | None]:
    """The card's dialogue and, for a pair target, its second utterance's dialogue; read once per offered card
    (a prefetched card's dialogues are read when it is first offered and reused when it comes on screen)."""
    s = state()
    key = (dataset, card["dialogue_id"], card["other_dialogue_id"])
    if key not in s.turns:
        other = card["other_dialogue_id"]
        s.turns[key] = [store.get_dialogue_turns(conn, card["dialogue_id"], dataset),
                        None if other is None else store.get_dialogue_turns(conn, other, dataset)]
    turns, other_turns = s.turns[key]
    return turns, other_turns


def offered(candidate_id: int, decision_id: str) -> bool:
    """Whether this session offers that card with that decision id now (the card is on screen or prefetched)."""
    return state().offered.get(candidate_id) == decision_id


def decide(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, claims: ClaimRegistry,
           candidate_id: int, decision_id: str, verdict: str, corrected_value: str | None = None) -> None:
    """Button/key callback: store the decision (committed before this returns), then move on.

    In an undecided queue the database stores it only while the candidate still has room (the queue's
    overlap, store.decision_slots): a card whose claim expired may have been decided by others meanwhile.
    Then nothing is stored, the acknowledgement says so, and the next card follows. A repeat of a click
    already stored (the same decision_id) changes nothing: its acknowledgement stays.

    A decision on a card this session no longer offers (its decision id spent: a second click of a double
    click, a key pressed on a card already replaced; or a card of a queue since changed) is ignored: nothing
    is stored, the acknowledgement stays, and s.ignored says what was ignored."""
    s = state()
    if not offered(candidate_id, decision_id):
        s.ignored = f"Ignored a {verdict} on #{candidate_id}: that card is no longer on screen."
        return
    s.ignored = None
    s.offered.pop(candidate_id, None)
    with _storing(s):
        try:
            result = decisions.decide(conn, decision_id=decision_id, candidate_id=candidate_id, reviewer=reviewer,
                                      verdict=verdict, corrected_value=corrected_value, queue=spec, claims=claims,
                                      tokens=s.tokens)
        except decisions.DecisionRefused as exc:
            s.last_saved = f"Not saved: {exc}"
            s.correcting = False
            return
        if result.outcome is decisions.Outcome.SLOT_TAKEN:
            s.last_saved = (f"Not saved: #{candidate_id} already has its reviewer(s) in this queue (another reviewer "
                            "decided it first). Here is the next card.")
        elif result.outcome is decisions.Outcome.NO_CANDIDATE:
            s.last_saved = f"Not saved: candidate #{candidate_id} does not exist (any more). Here is the next card."
        elif result.outcome is decisions.Outcome.STORED:
            s.history.append(Decided(candidate_id, result.verdict, result.reviewer, decision_id))
            s.last_saved = f"Saved: {result.verdict} #{candidate_id}"
            if result.verdict != "skip":
                s.remaining, s.decided = max(s.remaining - 1, 0), s.decided + 1
                s.net_decided += 1
                s.done.add(candidate_id)
            s.moved.add(candidate_id)
    if candidate_id in s.batch:  # a prefetched card may be decided before the page has caught up
        s.batch.remove(candidate_id)
    s.correcting = False


def keys_pressed(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec, claims: ClaimRegistry,
                 payload: dict) -> None:
    """Key events from the browser's card (components.keys.review_card), each handled once, in order.

    payload: {"client": the browser page, "events": [{"seq", "verdict", "card", "token", "undo_of"}, ...]}. The
    browser sends every event the server has not acknowledged (ReviewState.key_seq) with each new one, so a seq
    handled already is skipped. accept/reject/skip decide the card the key was pressed on (decide: ignored
    unless that card is still offered with that decision id); correct opens the editor if that card is the one
    on screen; undo takes back the decision undo_of if it is still the last one (undo)."""
    s = state()
    client = str(payload.get("client") or "")
    if client != s.key_client:  # another page (a reload): its events are numbered from 1
        s.key_client, s.key_seq = client, 0
    events = [e for e in payload.get("events") or [] if isinstance(e, dict) and isinstance(e.get("seq"), int)]
    for event in sorted(events, key=lambda e: e["seq"]):
        if event["seq"] <= s.key_seq:
            continue
        s.key_seq = event["seq"]
        verdict, card, token = event.get("verdict"), event.get("card"), event.get("token")
        if verdict == "undo":
            undo(conn, spec, str(event.get("undo_of") or ""))
        elif not isinstance(card, int) or not isinstance(token, str):
            continue  # not from our script
        elif verdict == "correct":
            if offered(card, token) and s.batch[:1] == [card]:
                start_correcting()
            else:
                s.ignored = f"Ignored a correct on #{card}: that card is no longer on screen."
        elif verdict in ("accept", "reject", "skip"):
            decide(conn, reviewer, spec, claims, card, token, verdict)


def undo(conn: duckdb.DuckDBPyConnection, spec: store.QueueSpec, decision_id: str | None = None) -> None:
    """Take back this session's last decision (a new 'retract' row, by whoever made it) and put that card
    first in the queue again (it shows if it belongs to the current queue).

    decision_id: the decision the Undo button was drawn for (bound into it); when it is no longer the last
    one, it was undone already and this is a repeated click (a double click, a resubmit): nothing happens.
    None takes back the last decision, whichever it is."""
    s = state()
    if decision_id is not None and (not s.history or s.history[-1].decision_id != decision_id):
        return
    if not s.history:
        s.last_saved = "Nothing to undo."
        return
    last = s.history[-1]
    with _storing(s):
        if last.verdict != "skip":  # a skip decided nothing: just bring the card back
            try:
                decisions.retract(conn, decision_id=last.decision_id, candidate_id=last.candidate_id,
                                  reviewer=last.reviewer, role=decisions.role_for(spec))
            except decisions.DecisionRefused as exc:
                s.last_saved = f"Not undone: {exc}"
                return
            s.remaining, s.decided = s.remaining + 1, max(s.decided - 1, 0)
            s.net_decided -= 1
            s.done.discard(last.candidate_id)
            s.exhausted = False  # the queue has one more card than the last fetch saw
    s.moved.add(last.candidate_id)
    s.history.pop()
    if last.candidate_id in s.batch:  # refilled into the batch meanwhile (a skipped card comes back at the end)
        s.batch.remove(last.candidate_id)
    s.batch.insert(0, last.candidate_id)
    s.correcting = False
    s.last_saved = f"Undone: {last.verdict} #{last.candidate_id}"


def last_decision_id(s: ReviewState) -> str:
    """What the Undo button is bound to: the decision it takes back ("" when there is none)."""
    return s.history[-1].decision_id if s.history else ""


def start_correcting() -> None:
    state().correcting = True


def stop_correcting() -> None:
    state().correcting = False


def reset_queue() -> None:
    """Forget the fetched batch (after a bulk accept or a filter change)."""
    s = state()
    s.batch = []
    s.spec = None
    if s.refill is not None:  # a query still running for the old batch is ignored
        s.refill.drop()
        s.refill = None


def progress(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: store.QueueSpec) -> tuple[int, int, int]:
    """(decided by this reviewer in this queue, remaining, this reviewer's decisions in the last hour).

    Call after current_card. The first two are queried at a batch refill (every BATCH cards, at most every
    COUNT_EVERY_SECONDS) and follow this session's decisions in between; other reviewers' work shows at
    the next such query."""
    reviewer = store.reviewer_name(reviewer)
    s = state()
    if s.spec != spec:  # no card was fetched for this queue yet
        return (store.count_my_decided(conn, reviewer, spec),
                store.count_queue(conn, reviewer, replace(spec, status="undecided")),
                store.get_reviewer_rate(conn, reviewer))
    return s.decided, s.remaining, store.get_reviewer_rate(conn, reviewer)
