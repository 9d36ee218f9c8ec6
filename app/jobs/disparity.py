"""The disparity analysis family: its registry entry (a job runs the whole analysis of a dataset in the child
process, with the UMAP layout of the speakers' voices, and the server stores its summary in ``analyses`` and
the report the Disparity page draws in ``disparity_reports``, the layout in ``disparity_layouts``), and the UMAP
projections the page computes in the background when no stored layout fits, one worker thread per server
process.

The first UMAP fit on a machine compiles numba code for about 30 s (later processes load it from NUMBA_CACHE_DIR in
about 2 s: analysis.disparity.cohorts._umap), so pages ask for projections
(``projection``) without waiting: they get a Future and draw the projection once it is done; the compilation
runs on the worker just before the first projection (see ``UmapJobs``). Projections are kept per key
(database, dataset, voices key), the most recent ``KEEP`` of them. One worker, because two UMAP fits at once
only slow each other down on a small machine, and the compilation must finish before the first projection
anyway.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict

import numpy as np

from analysis import wer_normalise
from analysis.disparity import cohorts
from app.jobs.registry import Action, Family, Option, register

KEEP = 8


class UmapJobs:
    """One worker thread fitting UMAP projections in the background, each kept per key (the last ``KEEP``).

    compile_at_start: ``warm_up`` compiles UMAP's numba code at once; otherwise the compilation runs just before
    the first projection. The app's worker (``app.resources.umap_jobs``) compiles late: layouts are stored
    with the reports, so most server processes never fit UMAP, and compiling at start-up held the server's
    interpreter for 30 to 45 s, slowing every page opened meanwhile (in one measurement a cold Disparity page on
    the 200k demo drew its first figures after 5.3 s instead of 3.0 s)."""

    def __init__(self, *, compile_at_start: bool = True) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnlens-umap")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[Hashable, Future] = OrderedDict()
        self._compile_at_start = compile_at_start
        self.warm: Future | None = None  # the compilation, once started

    def _compile(self) -> Future:
        """Start the compilation once (under the lock); it runs before any projection asked for later."""
        if self.warm is None:
            self.warm = self._pool.submit(cohorts.warm_up_umap)
        return self.warm

    def warm_up(self) -> Future | None:
        """Compile UMAP once (later calls return the same Future), if this worker compiles at start; otherwise
        None, and the compilation waits for the first projection."""
        with self._lock:
            return self._compile() if self._compile_at_start else self.warm

    @property
    def warming(self) -> bool:
        """The compilation is under way: a projection asked for now waits for it (about 30 s)."""
        with self._lock:
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
                self._compile()  # first on the one worker, so `warming` says what the wait is for
                job = self._jobs[key] = self._pool.submit(cohorts.umap_embedding, np.array(embeddings, copy=True))
                while len(self._jobs) > KEEP:
                    self._jobs.popitem(last=False)
            self._jobs.move_to_end(key)
            return job


# --------------------------------------------------------------------- the registry entry


def _read(conn, dataset: str, options: dict):
    from app import store
    from app.store import disparity as store_disparity
    from app.store import turns as store_turns

    # The option, else the dataset's default: the report says which normaliser its counts were made under.
    normaliser = options.get("normaliser") or store_turns.get_wer_normaliser(conn, dataset)
    # The fingerprint before the turns: an import landing in between stores the report under the older
    # fingerprint, which no later open asks for (the other order would store the report of the older turns
    # under the newer fingerprint, as if it were current).
    fingerprint = store_disparity.get_data_fingerprint(conn, dataset, normaliser)
    turns = store.list_speaker_turns(conn, dataset, normaliser)
    if not turns.num_rows:
        raise ValueError(f"dataset {dataset!r} has no turns with a reference transcript and a speaker to analyse")
    # The voices layouts stored for this dataset: the child skips a UMAP fit whose layout is stored already.
    layouts = set(store_disparity.list_layout_keys(conn, dataset))
    return turns, layouts, fingerprint, normaliser


def _options(options: dict):
    from analysis.disparity import report as dr

    return dr.Options(k=options["k"], n_boot=options["n_boot"], seed=options["seed"])


# Share of the job's progress bar taken by the analysis; the UMAP layout takes the rest.
_ANALYSIS_SHARE = 0.7


def _run(inputs, options: dict, _path, progress) -> dict:
    from analysis.disparity import report as dr
    from analysis.disparity import snapshot as sn

    turns, layouts, fingerprint, normaliser = inputs
    said = [0.0]

    def stage(step: str, done: int) -> None:
        # The job's child passes on at most 4 progress lines a second: a new stage said sooner after the last
        # line would be dropped, and the bar would go on naming the previous one.
        wait = said[0] + 0.3 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        said[0] = time.monotonic()
        progress(step, done, 100)

    started = time.perf_counter()
    table = dr.speaker_table_from_turns(turns)
    report = dr.analyse(table, _options(options),
                        progress=lambda step, share: stage(step, int(share * _ANALYSIS_SHARE * 100)))
    snap = sn.snapshot(report)
    meta, parts = sn.to_stored(snap)
    seconds = time.perf_counter() - started
    layout = None
    if snap.voices_key and snap.voices_key not in layouts:
        stage("laying out the voices (UMAP)", int(_ANALYSIS_SHARE * 100))
        layout = _layout(snap, table.embedding[snap.voice_rows])
    stage("done", 100)
    summary = {**dr.summary(report), "wer_normaliser": normaliser}
    return {"summary": summary, "fingerprint": fingerprint, "markdown": _markdown(summary, snap),
            "options": {**dr.plain(asdict(report.options)), "normaliser": normaliser}, "report": {
                "options_key": sn.options_key(report.options), "format": sn.FORMAT, "meta": meta, "parts": parts,
                "seconds": seconds}, "layout": layout}


def _use_numba_cache() -> None:
    """numba reads its cache folder when umap is first imported: the app's (app.settings), so the server, the
    jobs and the install's warm-up share it."""
    import os

    from app.settings import Settings

    os.environ.setdefault("NUMBA_CACHE_DIR", str(Settings.from_env().numba_cache))


def warm_up() -> None:
    """Compile UMAP's numba code into the app's numba cache (about 30 s on 2 cores): `make install` runs it once,
    so the first disparity analysis (in `make run`'s build, or started from a page) loads the compiled code in
    about 2 s instead of compiling it."""
    _use_numba_cache()
    cohorts.warm_up_umap()


def _layout(snap, embeddings: np.ndarray) -> dict:
    """The voices' UMAP layout of a snapshot, ready to store."""
    from analysis.disparity import snapshot as sn

    _use_numba_cache()
    started = time.perf_counter()
    xy = cohorts.umap_embedding(embeddings)
    speakers = snap.speakers["speaker_id"].to_numpy(object)[snap.voice_rows]
    return {"voices_key": snap.voices_key, "method": cohorts.UMAP_METHOD, "arrow": sn.layout_bytes(speakers, xy),
            "seconds": time.perf_counter() - started}


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _markdown(summary: dict, snap) -> str:
    """The Models page's summary: the pooled WER and each cohorting's gap with its interval and support (a gap
    on thin support flagged, as on the Disparity page)."""
    from analysis.disparity import tables

    o = summary["overall"]
    name = wer_normalise.label(summary["wer_normaliser"])
    lines = [f"Pooled {name} {_percent(o.get('wer'))} [{_percent(o.get('wer_low'))}, {_percent(o.get('wer_high'))}] "
             f"over {o.get('speakers', 0):,} speakers (speaker bootstrap); {len(summary['regions'])} learned "
             "region(s).", "", f"| cohorting | {name} gap | interval | support |", "|---|---|---|---|"]
    for _, row in snap.comparison.iterrows():
        lines.append(f"| {row['cohorting']} | {tables.percent(row['wer_gap'])} | "
                     f"{tables.interval(row['wer_gap_low'], row['wer_gap_high'])} | "
                     f"{tables.support_text(row, len(snap.speakers))} |")
    return "\n".join(lines) + "\n"


def _write(conn, dataset: str, outcome: dict) -> dict:
    from app.store import disparity as store_disparity
    from app.store import evaluations as store_evaluations

    analysis_id = store_evaluations.insert_analysis(
        conn, family="disparity", dataset=dataset, options=outcome["options"],
        data_fingerprint=outcome["fingerprint"], summary=outcome["summary"], markdown=outcome["markdown"])
    stored = outcome["report"]
    report_id = store_disparity.insert_report(
        conn, dataset=dataset, data_fingerprint=outcome["fingerprint"], options=stored["options_key"],
        format=stored["format"], meta=stored["meta"], parts=stored["parts"], computed_by="job",
        analysis_id=analysis_id, seconds=stored["seconds"])
    layout = outcome["layout"]
    if layout is not None:
        store_disparity.insert_layout(conn, dataset=dataset, voices_key=layout["voices_key"], method=layout["method"],
                                      arrow=layout["arrow"], seconds=layout["seconds"])
    o = outcome["summary"]["overall"]
    return {"analysis_id": analysis_id, "report_id": report_id, "speakers": o.get("speakers"), "wer": o.get("wer"),
            "regions": len(outcome["summary"]["regions"]), "layout": layout is not None,
            "normaliser": outcome["summary"]["wer_normaliser"]}


def _describe(action: str, result: dict) -> str:
    name = wer_normalise.label(result["normaliser"]) if result.get("normaliser") else "WER"
    return (f"analysis #{result['analysis_id']}: pooled {name} {_percent(result['wer'])} over "
            f"{result['speakers'] or 0:,} speakers, {result['regions']} learned region(s); the Disparity page "
            f"draws it from report #{result.get('report_id')}"
            + (" with its voices layout" if result.get("layout") else ""))


register(Family(
    name="disparity", title="Disparity", page="disparity",
    description="Who the recogniser serves worst: pooled WER per speaker group with speaker-bootstrap "
                "intervals, learned regions, automatic and geographic cohorts (docs/disparity.md). An analysis, "
                "not a model: the job stores the report the Disparity page draws (with the voices' UMAP layout) "
                "and its summary for the Models page.",
    options=(Option("k", int, 5, "privacy minimum: no group or map cell of fewer speakers is shown", ("analyse",),
                    low=1, high=1000),
             Option("n_boot", int, 1000, "speaker-bootstrap replicates", ("analyse",), low=10, high=100_000),
             Option("seed", int, 0, "random seed", ("analyse",), low=0),
             Option("normaliser", str, "", "the WER normaliser the counts are read under (docs/wer.md); empty: the "
                                           "dataset's default", ("analyse",), choices=("", *wer_normalise.NAMES))),
    more=(Action("analyse", "Analyse", _read, _run, "own", write=_write,
                 help="run the whole disparity analysis and the voices' UMAP layout, and store the report the "
                      "Disparity page draws (and its summary)"),),
    describe=_describe,
))
