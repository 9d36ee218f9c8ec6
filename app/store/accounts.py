"""Reviewer accounts: the append-only account_events log (migration 9) and its current state (the accounts view).

Nothing here decides who may do what or checks a password: that is app.accounts. A password never reaches the
store, only its salted hash.

Every statement runs on its own cursor: the app's connection is shared by every session's script run, and a
statement on the connection itself while another thread's is running fails ("connection is busy with another
call"). The sign-in check at the top of every page did that, and under load a page showed that traceback instead
of its content (seen in a browser test on a loaded machine)."""

from __future__ import annotations

import duckdb
import pandas as pd

from app.store.connection import transaction

ACCOUNT_COLUMNS = ("name", "role", "password_hash", "disabled", "created_at", "updated_at")


def insert_account_event(conn: duckdb.DuckDBPyConnection, *, name: str, event: str, role: str,
                         password_hash: str | None, disabled: bool, actor: str) -> None:
    """Append one event; the row holds the account's whole state after it (see m009)."""
    cur = conn.cursor()
    try:
        with transaction(cur):
            cur.execute("""
                INSERT INTO account_events (name, event, role, password_hash, disabled, actor)
                VALUES (?, ?, ?, ?, ?, ?)
            """, [name, event, role, password_hash, disabled, actor])
    finally:
        cur.close()


def get_account(conn: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    """The current state of one account (name exactly as stored), or None if there is no such account."""
    row = conn.cursor().execute("SELECT name, role, password_hash, disabled, created_at, updated_at FROM accounts "
                                "WHERE name = ?", [name]).fetchone()
    return None if row is None else dict(zip(ACCOUNT_COLUMNS, row, strict=True))


def list_accounts(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every account's current state, by name, without the password hashes."""
    return conn.cursor().execute("SELECT name, role, disabled, password_hash IS NOT NULL AS has_password, "
                                 "created_at, updated_at FROM accounts ORDER BY name").df()


def count_active_accounts(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.cursor().execute("SELECT count(*) FROM accounts WHERE NOT disabled").fetchone()[0]


def list_account_events(conn: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """One account's history (who did what when), oldest first, without the password hashes."""
    return conn.cursor().execute("SELECT seq, event, role, disabled, actor, at_time FROM account_events "
                                 "WHERE name = ? ORDER BY seq", [name]).df()
