"""Command-line progress for work that goes through stages (reading, then scoring, then writing ...): one tqdm
bar per stage, on standard error. A stage's bar is finished when the next stage starts (a stage that gave
way to the next is complete, so its bar ends at 100% rather than showing where the last report left it), and
no bar is redrawn after it is closed."""

from __future__ import annotations

import sys

from tqdm import tqdm


class StageBars:
    def __init__(self, *, labels: dict[str, str] | None = None, unit: str = "it", disable: bool = False):
        self._labels = labels or {}
        self._unit = unit
        self._disable = disable
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def update(self, stage: str, done: int, total: int | None) -> None:
        if self._disable:
            return
        if stage != self._stage:
            self._finish()
            self._stage = stage
            self._bar = tqdm(desc=self._labels.get(stage, stage), total=total, unit=self._unit, file=sys.stderr)
        bar = self._bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(max(done - bar.n, 0))

    def _finish(self) -> None:
        if self._bar is not None:
            if self._bar.total is not None and self._bar.n < self._bar.total:
                self._bar.update(self._bar.total - self._bar.n)
            self._bar.close()
            self._bar = None

    def close(self, *, completed: bool = True) -> None:
        """End the last bar: at 100% when the work completed, where it stood otherwise (a failure)."""
        if self._bar is not None and not completed:
            self._bar.close()
            self._bar = None
        self._finish()

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(completed=exc_type is None)
