"""The only st.cache_resource use (the DuckDB connection) and the cached reads built on it.

The app's server process owns the database file: one connection for all sessions, a cursor per call
(``app/store.py`` does that). Cached reads are cleared whenever the app writes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st

from analysis.disparity import cohorts as disparity_cohorts
from analysis.disparity import report as disparity_report
from analysis.disparity import snapshot as disparity_snapshot
from analysis.labels.evaluation import candidates_correct
from app import store
from app.jobs.disparity import UmapJobs
from app.migrations import MIGRATIONS
from app.review.claims import ClaimRegistry
from app.settings import Settings


class DatabaseUnavailableError(RuntimeError):
    """The database cannot be used as configured; the message says why and what to do."""


def open_database(db_path: str | Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the app's database: writable (created and migrated as needed), or, in read-only mode, read-only
    and only if it exists with the code's schema (a read-only connection cannot create or migrate it).

    Raises StoreLockedError when another process holds the file, DatabaseUnavailableError when it cannot be
    used (missing or outdated in read-only mode, or not a DuckDB database)."""
    path = Path(db_path)
    if read_only and not path.is_file():
        raise DatabaseUnavailableError(
            f"{path}: no such database. Read-only mode (TURNLENS_READ_ONLY) does not create one: start the app "
            "once without TURNLENS_READ_ONLY, or import with `turnlens ingest`, then start it read-only.")
    try:
        conn = store.connect(path, read_only=read_only)
    except duckdb.Error as exc:
        raise DatabaseUnavailableError(f"{path} cannot be opened as a turnlens database: "
                                       f"{str(exc).splitlines()[0]}") from exc
    if read_only:
        latest = max(version for version, _name, _fn in MIGRATIONS)
        try:
            version = store.get_schema_version(conn)
        except duckdb.CatalogException:  # no schema_migrations table: some other DuckDB file
            version = None
        if version is None or version < latest:
            conn.close()  # releases the file for the writable start that fixes it
            found = "no turnlens schema" if version is None else f"schema version {version}"
            raise DatabaseUnavailableError(
                f"{path} has {found}; this version of turnlens needs version {latest}, and a read-only "
                "connection cannot upgrade it. Open it once without TURNLENS_READ_ONLY to upgrade it (start the "
                "app writable once), then start it read-only again.")
    return conn


# The connection app/serve.py opened before Streamlit started, so the lock is held from the start: one per
# server process, shared by every session like the cached one below (which returns it).
_opened_at_start: dict[str, duckdb.DuckDBPyConnection] = {}


def use_connection(db_path: str, conn: duckdb.DuckDBPyConnection) -> None:
    """Make ``conn`` the app's connection to ``db_path`` (called by app/serve.py before Streamlit starts)."""
    _opened_at_start[db_path] = conn


def get_connection(db_path: str) -> duckdb.DuckDBPyConnection:
    """The server process's connection to db_path: the one opened at start by app/serve.py, or else (under a
    plain `streamlit run`) one opened now, read-only when TURNLENS_READ_ONLY is on."""
    conn = _opened_at_start.get(db_path)
    if conn is not None:
        return conn
    return _connection(db_path, Settings.from_env().read_only)


# Keyed by the mode too: a process (a test run) that opens one file both ways must not get the other mode.
@st.cache_resource(show_spinner=False)
def _connection(db_path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    return open_database(db_path, read_only=read_only)


@st.cache_resource(show_spinner=False)
def claims(db_path: str) -> ClaimRegistry:
    """Cards on screen, shared by every session: see app/claims.py."""
    return ClaimRegistry()


# Reads are keyed by the database path and dataset; _conn is not hashed (underscore).
@st.cache_data(ttl=300, show_spinner=False)
def overview(_conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str
             ) -> tuple[store.OverviewCounts, pd.DataFrame, pd.DataFrame]:
    """The Overview page's reads: the headline counts, the per-domain sums its rates and intervals come from, and
    the signals per day (one cached entry, cleared on every write by clear_reads)."""
    return (store.get_overview_counts(_conn, dataset), store.list_domain_signal_sums(_conn, dataset),
            store.list_signals_by_day(_conn, dataset))


@st.cache_data(ttl=300, show_spinner=False)
def datasets(_conn: duckdb.DuckDBPyConnection, db_path: str) -> list[str]:
    return store.list_datasets(_conn)


@st.cache_data(ttl=300, show_spinner=False)
def values(_conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str, column: str) -> list[str]:
    return store.list_values(_conn, dataset, column)


@st.cache_data(ttl=300, show_spinner=False)
def tasks(_conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str) -> list[str]:
    """Candidate tasks of a dataset (candidates arrive by `turnlens candidates`, while the app is stopped)."""
    return store.list_tasks(_conn, dataset)


@st.cache_data(ttl=300, show_spinner=False, max_entries=8)
def label_candidates(_conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str, run_id: int, task: str
                     ) -> tuple[pd.DataFrame, np.ndarray]:
    """A label run's candidates for one task and whether each equals the log's gold label (NaN: no gold).
    Cached: at a million candidates the read and the check take seconds, and every slider move reruns the
    page; candidates only change when a model scores (a write that clears this)."""
    frame = store.list_label_candidates(_conn, dataset, run_id, task)
    return frame, candidates_correct(task, frame["value"], frame["gold"])


@st.cache_resource(show_spinner=False, max_entries=4)
def skill_checkpoint(_conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str, checkpoint: str):
    """A skill-router checkpoint, the dataset's routing examples (the order its dynamics index) and whether it
    was trained on the dataset as it is now. Cached: loading and rebuilding them takes seconds on big logs."""
    from analysis.skills import model as sr
    from app.jobs import skills as skill_jobs

    router = sr.SkillRouter.from_pretrained(checkpoint)
    examples = skill_jobs.training_examples(_conn, dataset, checkpoint)
    return router, examples, sr.data_fingerprint(examples) == router.fingerprint


@st.cache_resource(show_spinner=False)
def umap_jobs() -> UmapJobs:
    """The process's background UMAP worker (see app/jobs/disparity.py). It compiles UMAP only when a page
    first needs a projection that is not stored, not at start-up (the app's start-up ``warm_up`` call is then
    a no-op): compiling holds this process's interpreter for 30 to 45 s."""
    return UmapJobs(compile_at_start=False)


# --------------------------------------------------------------------------- disparity reports and layouts


@dataclass(frozen=True)
class DisparityReport:
    """A disparity report for the page, and where it came from.

    source: "stored" (read from ``disparity_reports``: no computation) or "computed" (in this process now).
    report_id: the stored report it was read from, or stored as (None: computed and not stored).
    computed_by: "job" or "page", who computed the stored report. created_at: when it was stored.
    seconds: how long its computation took (in the job or the page). not_stored: why a computed report was
    not stored ("" when it was, or when it was read from the store).
    """

    snapshot: disparity_snapshot.Snapshot
    source: str
    report_id: int | None = None
    computed_by: str | None = None
    created_at: object = None
    seconds: float | None = None
    not_stored: str = ""


@dataclass(frozen=True)
class DisparityLayout:
    """The voices' UMAP layout of a report: xy (voice rows x 2) once known, else the background job computing
    it (or the exception that stopped it); source "stored" or "computed" (now, in this process)."""

    xy: np.ndarray | None
    source: str
    job: Future | None = None
    error: BaseException | None = None


@st.cache_resource(show_spinner=False)
def _disparity_cache() -> dict:
    """The process's disparity state: {"reports": {(db, dataset, options): DisparityReport} newest last,
    "tables": {(db, dataset): (speaker table, fingerprint)}, "layouts": {(db, dataset, voices key): xy}}."""
    return {"reports": OrderedDict(), "tables": OrderedDict(), "layouts": OrderedDict()}


_DISPARITY_KEEP = 4
_disparity_lock = threading.Lock()
_disparity_generation = [0]  # bumped by clear_reads: a report computed across a write is not kept
_disparity_running: dict[tuple, threading.Lock] = {}  # key -> held by the session computing that report


def _keep(cache: OrderedDict, key: tuple, value: object) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _DISPARITY_KEEP:
        cache.popitem(last=False)


def _read_speaker_table(conn: duckdb.DuckDBPyConnection, dataset: str):
    """The dataset's speaker table and its fingerprint (what a layout is checked against)."""
    table = disparity_report.speaker_table_from_turns(store.list_speaker_turns(conn, dataset))
    return table, disparity_report.table_fingerprint(table)


def _compute(table, options: disparity_report.Options, progress) -> disparity_snapshot.Snapshot:
    return disparity_snapshot.snapshot(disparity_report.analyse(table, options, progress=progress))


def disparity_table(conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str):
    """(speaker table, data fingerprint) of a dataset, read once per process until the next write."""
    cache = _disparity_cache()["tables"]
    key = (db_path, dataset)
    with _disparity_lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        generation = _disparity_generation[0]
    found = _read_speaker_table(conn, dataset)
    with _disparity_lock:
        if generation == _disparity_generation[0]:
            _keep(cache, key, found)
    return found


def disparity_analysis(conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str,
                       options: disparity_report.Options, progress: disparity_report.Progress | None = None, *,
                       store_result: bool = True) -> DisparityReport:
    """The disparity report of a dataset for one set of options: the stored one when one matches the data (its
    fingerprint) and the options, else computed now (``progress`` hears of each step) and, with
    ``store_result``, stored so the next open, in any process, reads it. Kept per process (the last few)
    until the next write. Not st.cache_resource itself, because ``progress`` draws a progress bar while it
    computes, and cached functions may not draw on the page.

    Reviewers often open the page together: a session asking for a report another session is computing waits
    for that one instead of computing it again (it takes seconds to minutes on big logs and both cores)."""
    from app.store import disparity as store_disparity

    reports = _disparity_cache()["reports"]
    key = (db_path, dataset, options)
    with _disparity_lock:
        if key in reports:
            reports.move_to_end(key)
            return reports[key]
        running = _disparity_running.setdefault(key, threading.Lock())
    if running.locked() and progress is not None:
        progress("waiting", 0.0)
    with running:
        with _disparity_lock:
            if key in reports:  # computed by the session we waited for
                reports.move_to_end(key)
                return reports[key]
            generation = _disparity_generation[0]
        try:
            # The stored report is found by the turns' fingerprint, computed in the database: the turns are read
            # only when the report must be computed.
            fingerprint = store_disparity.get_data_fingerprint(conn, dataset)
            options_key = disparity_snapshot.options_key(options)
            stored = store_disparity.get_report(conn, dataset, fingerprint, options_key, disparity_snapshot.FORMAT)
            result = None
            if stored is not None:
                try:
                    result = DisparityReport(
                        disparity_snapshot.from_stored(stored["meta"], stored["parts"]), "stored",
                        report_id=stored["report_id"], computed_by=stored["computed_by"],
                        created_at=stored["created_at"], seconds=stored["seconds"])
                except (ValueError, KeyError, pa.ArrowException) as exc:  # unreadable: computed again, and said
                    unreadable = f"the stored report #{stored['report_id']} could not be read ({exc})"
                else:
                    unreadable = ""
            if result is None:
                started = time.perf_counter()
                if progress is not None:
                    progress("reading the turns", 0.0)
                table, _ = disparity_table(conn, db_path, dataset)
                snap = _compute(table, options, progress)
                seconds = time.perf_counter() - started
                report_id, not_stored = None, "read-only mode" if not store_result else ""
                if stored is not None:
                    not_stored = unreadable
                elif store_result:
                    meta, parts = disparity_snapshot.to_stored(snap)
                    report_id = store_disparity.insert_report(
                        conn, dataset=dataset, data_fingerprint=fingerprint, options=options_key,
                        format=disparity_snapshot.FORMAT, meta=meta, parts=parts, computed_by="page",
                        seconds=seconds)
                result = DisparityReport(snap, "computed", report_id=report_id,
                                         computed_by="page" if report_id is not None else None, seconds=seconds,
                                         not_stored=not_stored)
            with _disparity_lock:
                if generation == _disparity_generation[0]:  # no write happened meanwhile: the report is current
                    _keep(reports, key, result)
        finally:
            with _disparity_lock:
                if _disparity_running.get(key) is running:
                    del _disparity_running[key]
    return result


def disparity_layout(conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str,
                     report: disparity_snapshot.Snapshot, *, store_result: bool = True) -> DisparityLayout | None:
    """The voices' UMAP layout of a report: the stored one for its voices key, else one computed in the
    background (``umap_jobs``; the page polls until it is done) and then, with ``store_result``, stored.
    None when fewer than 3 speakers have a voice embedding."""
    from app.store import disparity as store_disparity

    if not report.voices_key:
        return None
    layouts = _disparity_cache()["layouts"]
    key = (db_path, dataset, report.voices_key)
    with _disparity_lock:
        if key in layouts:
            layouts.move_to_end(key)
            return layouts[key]
    stored = store_disparity.get_layout(conn, dataset, report.voices_key)
    if stored is not None:
        try:
            found = DisparityLayout(disparity_snapshot.layout_for(report, stored["arrow"]), "stored")
        except (ValueError, pa.ArrowException):
            found = None  # a broken row: computed again below
        if found is not None:
            with _disparity_lock:
                _keep(layouts, key, found)
            return found
    table, fingerprint = disparity_table(conn, db_path, dataset)
    if fingerprint != report.table_fingerprint:
        raise ValueError("the data changed since this report was made: open the page again")
    voices = table.embedding[report.voice_rows]
    job = umap_jobs().projection(key, voices)
    if not job.done():
        return DisparityLayout(None, "computing", job=job)
    if job.exception() is not None:
        return DisparityLayout(None, "failed", job=job, error=job.exception())
    found = DisparityLayout(job.result(), "computed")
    if store_result:
        speakers = report.speakers["speaker_id"].to_numpy(object)[report.voice_rows]
        store_disparity.insert_layout(conn, dataset=dataset, voices_key=report.voices_key,
                                      method=disparity_cohorts.UMAP_METHOD,
                                      arrow=disparity_snapshot.layout_bytes(speakers, found.xy))
    with _disparity_lock:
        _keep(layouts, key, found)
    return found


def clear_reads() -> None:
    """Call after any write, so every page shows the new state."""
    with _disparity_lock:
        _disparity_generation[0] += 1
        for cache in _disparity_cache().values():
            cache.clear()
    skill_checkpoint.clear()
    label_candidates.clear()
    overview.clear()
    datasets.clear()
    values.clear()
    tasks.clear()


@st.cache_resource(show_spinner=False)
def job_runner(db_path: str):
    """The process's model-job runner (app/jobs/runner.py): one queue for every session, so a job survives a
    browser reload and every reviewer sees its progress. Checkpoints go beside the database, in models/."""
    from app.jobs.runner import JobRunner

    settings = Settings.from_env()
    return JobRunner(get_connection(db_path), Path(db_path).resolve().parent / "models",
                     read_only=settings.read_only, on_write=clear_reads)
