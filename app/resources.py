"""The only st.cache_resource use (the DuckDB connection) and the cached reads built on it.

The app's server process owns the database file: one connection for all sessions, a cursor per call
(``app/store.py`` does that). Cached reads are cleared whenever the app writes.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from analysis.label_metrics import candidates_correct
from app import store
from app.claims import ClaimRegistry


@st.cache_resource(show_spinner=False)
def get_connection(db_path: str) -> duckdb.DuckDBPyConnection:
    return store.connect(db_path)


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
    from analysis import skill_routing as sr

    router = sr.SkillRouter.from_pretrained(checkpoint)
    examples = sr.build_examples(store.list_turn_records(_conn, dataset, production_only=True))
    return router, examples, sr.data_fingerprint(examples) == router.fingerprint


def clear_reads() -> None:
    """Call after any write, so every page shows the new state."""
    skill_checkpoint.clear()
    label_candidates.clear()
    overview.clear()
    datasets.clear()
    values.clear()
    tasks.clear()
