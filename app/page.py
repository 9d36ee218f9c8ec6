"""What every page starts with: its title, the settings, the database, the dataset and the reviewer."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import streamlit as st

from app import resources, state
from app.settings import Settings

NO_DATA = "There is no data yet. Import a dialogue log on the Import page, or run `make run`, which loads the " \
          "bundled sample."


@dataclass(frozen=True)
class Page:
    settings: Settings
    conn: duckdb.DuckDBPyConnection
    db: str  # the database path, the key of cached reads
    dataset: str | None
    reviewer: str  # "" until the reviewer has typed a name in the sidebar that was accepted (see streamlit_app)


def start(title: str, *, needs_data: bool = True) -> Page:
    """Draw the title; when needs_data and there is no dataset yet, say how to get one and stop."""
    settings = Settings.from_env()
    st.title(title)
    dataset = st.session_state.get(state.DATASET)
    if needs_data and not dataset:
        st.info(NO_DATA)
        st.stop()
    return Page(settings, resources.get_connection(str(settings.db_path)), str(settings.db_path), dataset,
                st.session_state.get(state.REVIEWER) or "")
