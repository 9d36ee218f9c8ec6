"""Run a per-file function over worker processes, yielding results as they complete: what recognition and voice
embedding share."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


def map_in_workers(fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int,
                   initializer: Callable[..., None], initargs: tuple = ()) -> Iterator[Any]:
    """fn(job) for every job on ``workers`` forked processes (each set up by initializer(*initargs)), in the order
    they finish. Fork: workers start in milliseconds and need no importable __main__ (spawn re-runs the caller's
    script, which a `python -` caller does not have); callers keep heavy state (decoders, models) out of the parent
    so none is copied. A worker that dies raises BrokenProcessPool here instead of leaving the run waiting; leaving
    early cancels what has not started."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=initializer,
                             initargs=initargs) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
