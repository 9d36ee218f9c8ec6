"""The one decision writer: every decision a person makes in the app (Review, Query rewrites, Agreement) is
stored by decide() or retract() here, under the same rules.

- **One decision per button shown.** A decision id is made when a decision button is first shown (Tokens.bind)
  and bound into the button's callback arguments. A double click, a double key press or a resubmitted
  request replays the callback with the arguments of the render the person saw, so it carries the same id,
  and the database's primary key refuses the second row (Outcome.ALREADY_STORED). The id is spent when it
  is used, so the next time the button is drawn it carries a new one: a deliberate second decision (a change
  of mind, a candidate shown again after an undo) is stored.
- **Outside a queue, a repeat changes nothing.** The Query rewrites page keeps its buttons on the same
  candidate after a decision and has them drawn again within about 100 ms (measured in a browser), sooner
  than the second click of a person's double click comes: that click carries the new id of the redrawn
  button. So a decision made outside a review queue that repeats the reviewer's standing one on the
  candidate (same verdict, value and role) is not stored again (Outcome.UNCHANGED). In a queue the card moves
  on after a decision, so a later click is on the next card; a repeat there (in a decided/all queue) is
  stored, as it always was.
- **Overlap queues keep their slots.** In an undecided queue the store re-checks the candidate's free slots in
  the INSERT itself (store.insert_decision's overlap), and the decision is stored and the card's claim
  released as one step (ClaimRegistry.record), so no other session's slot check runs in between.
- **One reviewer, one name.** Names are stored in their normal form (store.reviewer_name).
- **Read-only mode refuses.** With TURNLENS_READ_ONLY nothing is written (ReadOnlyError), whatever the page
  shows: the read-only connection would refuse anyway, with a DuckDB error nobody can act on.
- **No cached read is cleared.** No read cached in app/resources.py depends on decisions (they cache turns,
  candidates, checkpoints and disparity reports), and the pages never cleared them after deciding;
  resources.clear_reads() would also throw away the disparity reports and the skill checkpoint on every
  card. Should a cached read of decisions be added there, clear it here, after the write.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Hashable
from dataclasses import dataclass

import duckdb

from app import store
from app.review.claims import ClaimRegistry
from app.settings import Settings

# Retractions get an id derived from the decision they take back, so that undoing one decision twice (a double
# click on Undo, a resubmitted request) stores one retraction: the primary key refuses the second.
_RETRACT_NAMESPACE = uuid.UUID("5b0f5f7e-3b1c-4c2e-9a51-6f1d2c9e8a47")


class DecisionRefused(Exception):
    """Nothing was stored, for a reason the person can act on; the message says which, in plain words."""


class ReadOnlyError(DecisionRefused):
    """The app runs read-only (TURNLENS_READ_ONLY): no decision can be stored."""


class Outcome(enum.Enum):
    STORED = "stored"
    ALREADY_STORED = "already stored"  # this decision id was stored before: a double click or a resubmit
    UNCHANGED = "unchanged"  # outside a queue: the reviewer's standing decision already says this
    SLOT_TAKEN = "slot taken"  # the queue's overlap is full (a claim expired while others decided the card)
    NO_CANDIDATE = "no candidate"  # no such candidate (a stale page, a forged request)


@dataclass(frozen=True)
class Result:
    """What became of one decision. verdict is what was stored (a correction to the proposal itself is an
    accept); reviewer is the stored (normal) form of the name."""

    outcome: Outcome
    decision_id: str
    candidate_id: int
    reviewer: str
    verdict: str

    @property
    def saved(self) -> bool:
        """Whether the decision stands now: stored by this call, or by the earlier click it repeats."""
        return self.outcome in (Outcome.STORED, Outcome.ALREADY_STORED, Outcome.UNCHANGED)


class Tokens:
    """The decision ids bound into one browser session's decision buttons: key (what the button decides,
    e.g. a candidate id, or (candidate id, verdict)) -> decision id. Keep one per page in session state."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, str] = {}

    def bind(self, key: Hashable) -> str:
        """The decision id of the button `key` as it is shown now: made when first shown, the same on every
        run until it is spent, so the callback of any click on this render carries it."""
        return self._ids.setdefault(key, new_id())

    def spend(self, decision_id: str) -> None:
        """Forget a used id (whatever became of its decision): the button's next render gets a new one."""
        for key in [k for k, v in self._ids.items() if v == decision_id]:
            del self._ids[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._ids


def new_id() -> str:
    return str(uuid.uuid4())


def role_for(queue: store.QueueSpec) -> str:
    """The role a queue's decisions are stored with: an audit of a bulk accept, or a review."""
    return "audit" if queue.audit_bulk_id is not None else "review"


def decide(conn: duckdb.DuckDBPyConnection, *, decision_id: str, candidate_id: int, reviewer: str, verdict: str,
           corrected_value: str | None = None, role: str = "review", queue: store.QueueSpec | None = None,
           claims: ClaimRegistry | None = None, tokens: Tokens | None = None) -> Result:
    """Store one decision (committed when this returns) and say what became of it.

    decision_id: the id bound into the button that was clicked (Tokens.bind); spent in `tokens` whatever the
    outcome. queue: the review queue the card came from; its role (review or audit) replaces `role`, and
    in an undecided queue the store re-checks the candidate's free slots (Outcome.SLOT_TAKEN when full).
    claims: the registry the card was claimed in; the claim is released with the write, as one step.

    Raises ReadOnlyError in read-only mode and DecisionRefused for an unusable reviewer name; nothing is
    stored then."""
    try:
        if Settings.from_env().read_only:
            raise ReadOnlyError("Read-only mode (TURNLENS_READ_ONLY): decisions are switched off; nothing was "
                                "stored.")
        try:
            reviewer = store.reviewer_name(reviewer)
        except ValueError as exc:
            raise DecisionRefused(f"This reviewer name cannot be used, so nothing was stored: {exc}") from exc
        if verdict == "correct":
            card = store.get_candidate(conn, candidate_id)
            if card is not None and card["value"] == corrected_value:
                verdict, corrected_value = "accept", None  # "corrected" to the proposal itself: an accept
        overlap = None
        if queue is not None:
            role, overlap = role_for(queue), store.decision_slots(queue)
        if queue is None and standing(conn, candidate_id, reviewer, role) == (verdict, corrected_value):
            return Result(Outcome.UNCHANGED, decision_id, candidate_id, reviewer, verdict)

        def write() -> bool:
            return store.insert_decision(conn, decision_id=decision_id, candidate_id=candidate_id,
                                         reviewer=reviewer, verdict=verdict, corrected_value=corrected_value,
                                         role=role, overlap=overlap)

        try:
            # stored and the claim released in one step: see app/review/claims.py
            stored = write() if claims is None else claims.record(candidate_id, reviewer, write)
        except store.SlotTakenError:
            return Result(Outcome.SLOT_TAKEN, decision_id, candidate_id, reviewer, verdict)
    finally:
        if tokens is not None:
            tokens.spend(decision_id)
    if stored:
        outcome = Outcome.STORED
    else:  # insert_decision stores nothing for a known id and for an unknown candidate: tell them apart
        outcome = Outcome.NO_CANDIDATE if store.get_candidate(conn, candidate_id) is None else Outcome.ALREADY_STORED
    return Result(outcome, decision_id, candidate_id, reviewer, verdict)


def standing(conn: duckdb.DuckDBPyConnection, candidate_id: int, reviewer: str, role: str
             ) -> tuple[str, str | None] | None:
    """The reviewer's standing decision on the candidate in this role, (verdict, corrected value), or None
    (never decided, skipped only, or retracted). reviewer: the stored form."""
    mine = store.list_current_decisions(conn, candidate_id)
    mine = mine[(mine["reviewer"] == reviewer) & (mine["role"] == role)]
    if mine.empty:
        return None
    latest = mine.iloc[-1]  # oldest first
    value = latest["corrected_value"]
    return str(latest["verdict"]), value if isinstance(value, str) else None


def retract(conn: duckdb.DuckDBPyConnection, *, decision_id: str, candidate_id: int, reviewer: str,
            role: str = "review") -> Result:
    """Take back the decision decision_id (undo): a new 'retract' row by the reviewer who made it. Its id is
    derived from decision_id, so a repeated undo of the same decision stores one retraction
    (Outcome.ALREADY_STORED). Raises as decide() does."""
    return decide(conn, decision_id=str(uuid.uuid5(_RETRACT_NAMESPACE, decision_id)), candidate_id=candidate_id,
                  reviewer=reviewer, verdict="retract", role=role)
