"""UMAP projections computed in the background: one worker thread per server process.

The first UMAP fit in a process compiles numba code for about 45 s, so the app starts a warm-up on this
worker when it starts (``warm_up``), and pages ask for projections (``projection``) without waiting: they get
a Future and draw the projection once it is done. Projections are kept per key (database, dataset, speakers),
the most recent ``KEEP`` of them. One worker, because two UMAP fits at once only slow each other down on a
small machine, and the warm-up must finish before the first projection anyway.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from analysis.disparity import cohorts

KEEP = 8


class UmapJobs:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnlens-umap")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[Hashable, Future] = OrderedDict()
        self.warm: Future | None = None

    def warm_up(self) -> Future:
        """Start compiling UMAP once (later calls return the same Future)."""
        with self._lock:
            if self.warm is None:
                self.warm = self._pool.submit(cohorts.warm_up_umap)
            return self.warm

    @property
    def warming(self) -> bool:
        """The warm-up was started and has not finished: a projection asked for now waits for it."""
        return self.warm is not None and not self.warm.done()

    def projection(self, key: Hashable, embeddings: np.ndarray) -> Future:
        """The 2-d projection of ``embeddings`` (speakers x d) for ``key``, started if it is not known yet.
        A failed projection is forgotten once it has been seen, so the next call tries again."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.done() and job.exception() is not None:
                del self._jobs[key]
                return job
            if job is None:
                job = self._jobs[key] = self._pool.submit(cohorts.umap_embedding, np.array(embeddings, copy=True))
                while len(self._jobs) > KEEP:
                    self._jobs.popitem(last=False)
            self._jobs.move_to_end(key)
            return job
