"""The disparity analysis family: its registry entry (a job runs the whole analysis of a dataset in the child
process and stores its summary in ``analyses``), and the UMAP projections the Disparity page computes in the
background, one worker thread per server process.

The first UMAP fit in a process compiles numba code for about 45 s, so the app starts a warm-up on this
worker when it starts (``warm_up``), and pages ask for projections (``projection``) without waiting: they get
a Future and draw the projection once it is done. Projections are kept per key (database, dataset, speakers),
the most recent ``KEEP`` of them. One worker, because two UMAP fits at once only slow each other down on a
small machine, and the warm-up must finish before the first projection anyway.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict

import numpy as np

from analysis.disparity import cohorts
from app.jobs.registry import Action, Family, Option, register

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


# --------------------------------------------------------------------- the registry entry


def _read(conn, dataset: str, options: dict):
    from app import store

    turns = store.list_speaker_turns(conn, dataset)
    if not turns.num_rows:
        raise ValueError(f"dataset {dataset!r} has no turns with a reference transcript and a speaker to analyse")
    return turns


def _options(options: dict):
    from analysis.disparity import report as dr

    return dr.Options(k=options["k"], n_boot=options["n_boot"], seed=options["seed"])


def fingerprint(table) -> str:
    """The speaker table's fingerprint: a stored analysis is current while the data gives the same one."""
    digest = hashlib.sha256()
    for column in (table.speaker, table.words, table.errors):
        digest.update(np.asarray(column).astype(str).tobytes())
    return digest.hexdigest()[:16]


def _run(turns, options: dict, _path, progress) -> dict:
    from analysis.disparity import report as dr

    table = dr.speaker_table_from_turns(turns)
    report = dr.analyse(table, _options(options), progress=lambda step, share: progress(step, int(share * 100), 100))
    summary = dr.summary(report)
    return {"summary": summary, "fingerprint": fingerprint(table), "markdown": _markdown(summary),
            "options": dr.plain(asdict(report.options))}


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _markdown(summary: dict) -> str:
    o = summary["overall"]
    lines = [f"Pooled WER {_percent(o.get('wer'))} [{_percent(o.get('wer_low'))}, {_percent(o.get('wer_high'))}] "
             f"over {o.get('speakers', 0):,} speakers (speaker bootstrap); {len(summary['regions'])} learned "
             "region(s).", "", "| cohorting | WER gap | interval |", "|---|---|---|"]
    for row in summary["comparison"]:
        lines.append(f"| {row.get('cohorting')} | {_percent(row.get('wer_gap'))} | "
                     f"[{_percent(row.get('wer_gap_low'))}, {_percent(row.get('wer_gap_high'))}] |")
    return "\n".join(lines) + "\n"


def _write(conn, dataset: str, outcome: dict) -> dict:
    from app.store import evaluations as store_evaluations

    analysis_id = store_evaluations.insert_analysis(
        conn, family="disparity", dataset=dataset, options=outcome["options"],
        data_fingerprint=outcome["fingerprint"], summary=outcome["summary"], markdown=outcome["markdown"])
    o = outcome["summary"]["overall"]
    return {"analysis_id": analysis_id, "speakers": o.get("speakers"), "wer": o.get("wer"),
            "regions": len(outcome["summary"]["regions"])}


def _describe(action: str, result: dict) -> str:
    return (f"analysis #{result['analysis_id']}: pooled WER {_percent(result['wer'])} over "
            f"{result['speakers'] or 0:,} speakers, {result['regions']} learned region(s)")


register(Family(
    name="disparity", title="Disparity", page="disparity",
    description="Who the recogniser serves worst: pooled WER per speaker group with speaker-bootstrap "
                "intervals, learned regions, automatic and geographic cohorts (docs/disparity.md). An analysis, "
                "not a model: the job stores its summary for the Models page and the Disparity page.",
    options=(Option("k", int, 5, "privacy minimum: no group or map cell of fewer speakers is shown", ("analyse",),
                    low=1, high=1000),
             Option("n_boot", int, 1000, "speaker-bootstrap replicates", ("analyse",), low=10, high=100_000),
             Option("seed", int, 0, "random seed", ("analyse",), low=0)),
    more=(Action("analyse", "Analyse", _read, _run, "own", write=_write,
                 help="run the whole disparity analysis and store its summary"),),
    describe=_describe,
))
