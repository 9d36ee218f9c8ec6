"""The only st.cache_resource use (the DuckDB connection) and the cached reads built on it.

The app's server process owns the database file: one connection for all sessions, a cursor per call
(``app/store.py`` does that). Cached reads are cleared whenever the app writes.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import streamlit as st

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


def clear_reads() -> None:
    """Call after any write, so every page shows the new state."""
    overview.clear()
    datasets.clear()
    values.clear()
    tasks.clear()
