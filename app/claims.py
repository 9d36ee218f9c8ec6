"""Who has which card on screen, shared by every session of the app process (the process that owns the
database), so that with overlap k no more than k reviewers work on one candidate at a time.

A claim lasts until its reviewer decides or skips, or until it expires (a closed tab must not hold a card
forever). Claims are not decisions: they live in memory only and are never stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLAIM_SECONDS = 600.0


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
        now = self._clock()
        with self._lock:
            holders = {r: t for r, t in self._claims.get(candidate_id, {}).items() if t > now}
            if reviewer not in holders and len(holders) >= slots:
                self._claims[candidate_id] = holders
                return False
            holders[reviewer] = now + self._ttl
            self._claims[candidate_id] = holders
            return True

    def release(self, candidate_id: int, reviewer: str) -> None:
        with self._lock:
            holders = self._claims.get(candidate_id)
            if holders is not None:
                holders.pop(reviewer, None)
                if not holders:
                    del self._claims[candidate_id]

    def holders(self, candidate_id: int) -> list[str]:
        now = self._clock()
        with self._lock:
            return sorted(r for r, t in self._claims.get(candidate_id, {}).items() if t > now)
