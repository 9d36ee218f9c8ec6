"""Who has which card on screen, shared by every session of the app process (the process that owns the
database), so that with overlap k no more than k reviewers work on one candidate at a time.

A claim lasts until its reviewer decides or skips, or until it expires (a closed tab must not hold a card
forever). Claims are not decisions: they live in memory only and are never stored.

Checking a candidate's free slots and claiming it is one step (claim_if_open), and so is storing a decision
and releasing its claim (record): both run under the registry's lock, so no decision can commit between
another session's slot check and its claim. (Otherwise a session could read "one slot free", another could
decide and release, and the first would then claim a card that is already taken.) The database re-checks the
slots when the decision is stored (store.insert_decision's overlap), for claims that expired.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

CLAIM_SECONDS = 600.0
T = TypeVar("T")


class ClaimRegistry:
    """Thread-safe claims: candidate id -> {reviewer: expiry time}."""

    def __init__(self, *, ttl: float = CLAIM_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._claims: dict[int, dict[str, float]] = {}

    def try_claim(self, candidate_id: int, reviewer: str, slots: int) -> bool:
        """Claim a card if fewer than `slots` other reviewers hold a live claim on it (slots: how many more
        reviewers the candidate may still get). A reviewer's own claim is renewed."""
        with self._lock:
            return self._claim(candidate_id, reviewer, slots)

    def claim_if_open(self, candidate_id: int, reviewer: str, open_slots: Callable[[], int]) -> bool:
        """Claim a card if it still has room, as one step: open_slots() (the candidate's free slots for this
        reviewer, read from the database) is called under the lock that record() stores decisions under, then
        the card is claimed as try_claim does. open_slots must not call this registry."""
        with self._lock:
            slots = open_slots()
            return slots > 0 and self._claim(candidate_id, reviewer, slots)

    def record(self, candidate_id: int, reviewer: str, write: Callable[[], T]) -> T:
        """Store a decision and release the reviewer's claim on the card, as one step: write() (which stores
        it, committed when it returns) runs under the lock claim_if_open checks slots under. The claim is
        released whatever write() does (a refused or failed write moves on too); its result or exception is
        passed on. write must not call this registry."""
        with self._lock:
            try:
                return write()
            finally:
                self._release(candidate_id, reviewer)

    def release(self, candidate_id: int, reviewer: str) -> None:
        with self._lock:
            self._release(candidate_id, reviewer)

    def holders(self, candidate_id: int) -> list[str]:
        now = self._clock()
        with self._lock:
            return sorted(r for r, t in self._claims.get(candidate_id, {}).items() if t > now)

    # The two below expect the lock to be held by the caller.

    def _claim(self, candidate_id: int, reviewer: str, slots: int) -> bool:
        now = self._clock()
        holders = {r: t for r, t in self._claims.get(candidate_id, {}).items() if t > now}
        if reviewer not in holders and len(holders) >= slots:
            self._claims[candidate_id] = holders
            return False
        holders[reviewer] = now + self._ttl
        self._claims[candidate_id] = holders
        return True

    def _release(self, candidate_id: int, reviewer: str) -> None:
        holders = self._claims.get(candidate_id)
        if holders is not None:
            holders.pop(reviewer, None)
            if not holders:
                del self._claims[candidate_id]
