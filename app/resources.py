"""The only st.cache_resource use (the DuckDB connection) and the cached reads built on it.

The app's server process owns the database file: one connection for all sessions, a cursor per call
(``app/store.py`` does that). Cached reads are cleared whenever the app writes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from analysis.disparity import report as disparity_report
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
    return (store.get_overview_counts(_conn, dataset), store.list_signals_by_domain(_conn, dataset),
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

    router = sr.SkillRouter.from_pretrained(checkpoint)
    examples = sr.build_examples(store.list_turn_records(_conn, dataset, production_only=True))
    return router, examples, sr.data_fingerprint(examples) == router.fingerprint


@st.cache_resource(show_spinner=False)
def umap_jobs() -> UmapJobs:
    """The process's background UMAP worker (see app/jobs/disparity.py)."""
    return UmapJobs()


@st.cache_resource(show_spinner=False)
def _disparity_reports() -> OrderedDict:
    """The process's disparity reports, newest last: {(db path, dataset, options): Report}."""
    return OrderedDict()


_DISPARITY_KEEP = 4
_disparity_lock = threading.Lock()
_disparity_generation = [0]  # bumped by clear_reads: a report computed across a write is not kept
_disparity_running: dict[tuple, threading.Lock] = {}  # key -> held by the session computing that report


def disparity_analysis(conn: duckdb.DuckDBPyConnection, db_path: str, dataset: str,
                       options: disparity_report.Options, progress: disparity_report.Progress | None = None
                       ) -> disparity_report.Report:
    """The disparity analysis of a dataset for one set of options, computed once per process and kept (the
    last few): the report is read-only and holds per-speaker arrays. Not st.cache_resource itself, because
    ``progress`` draws a progress bar while it computes, and cached functions may not draw on the page.

    Reviewers often open the page together: a session asking for a report another session is computing waits
    for that one instead of computing it again (it takes seconds to minutes on big logs and both cores)."""
    reports = _disparity_reports()
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
            if progress is not None:
                progress("reading the turns", 0.0)
            table = disparity_report.speaker_table_from_turns(store.list_speaker_turns(conn, dataset))
            report = disparity_report.analyse(table, options, progress=progress)
            with _disparity_lock:
                if generation == _disparity_generation[0]:  # no write happened meanwhile: the report is current
                    reports[key] = report
                    while len(reports) > _DISPARITY_KEEP:
                        reports.popitem(last=False)
        finally:
            with _disparity_lock:
                if _disparity_running.get(key) is running:
                    del _disparity_running[key]
    return report


def clear_reads() -> None:
    """Call after any write, so every page shows the new state."""
    with _disparity_lock:
        _disparity_generation[0] += 1
        _disparity_reports().clear()
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
