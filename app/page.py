"""What every page starts with: its title, the settings, the database, the dataset and the reviewer."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import streamlit as st

from app import accounts, resources, state
from app.settings import Settings

NO_DATA = "There is no data yet. Import a dialogue log on the Import page, or run `make run`, which loads the " \
          "bundled sample."


@dataclass(frozen=True)
class Page:
    settings: Settings
    conn: duckdb.DuckDBPyConnection
    db: str  # the database path, the key of cached reads
    dataset: str | None
    reviewer: str  # who acts: the verified account, or (no-account mode) the name typed in the sidebar; "" if none
    identity: accounts.Identity = accounts.NOBODY  # the reviewer with their role: identity.may(action)


def start(title: str, *, needs_data: bool = True) -> Page:
    """Draw the title; when needs_data and there is no dataset yet, say how to get one and stop."""
    settings = Settings.from_env()
    st.title(title)
    dataset = st.session_state.get(state.DATASET)
    if needs_data and not dataset:
        st.info(NO_DATA)
        st.stop()
    conn = resources.get_connection(str(settings.db_path))
    who = identity(settings, conn)
    return Page(settings, conn, str(settings.db_path), dataset, who.name, who)


def identity(settings: Settings, conn: duckdb.DuckDBPyConnection) -> accounts.Identity:
    """Who acts in this session. With accounts, only the identity that signed in (state.IDENTITY, which no widget
    can set), as the database has it now; a typed or URL-given name counts for nothing. In no-account mode, the
    name accepted from the sidebar box, holding every role."""
    if settings.auth == "none":
        name = st.session_state.get(state.REVIEWER) or ""
        return accounts.Identity(name, "admin", False, "none") if name else accounts.NOBODY
    signed_in = st.session_state.get(state.IDENTITY)
    if settings.read_only or not isinstance(signed_in, accounts.Identity):
        return accounts.NOBODY
    return accounts.refresh(conn, signed_in)
