"""Opening the database (one process at a time: DuckDB's file lock), its transactions and schema version, and
the errors every writer of the store shares."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from app.migrations import migrate

# How many conflicting rows a refused write lists (IngestConflictError) before "... and more".
_CONFLICT_LIMIT = 50


class StoreLockedError(RuntimeError):
    """Another process holds the database file."""


class IngestConflictError(ValueError):
    """Incoming rows contradict stored ones; nothing was written. ``problems`` lists them as text;
    ``rows`` holds (incoming row index or None, field or None, message) so callers can say FILE:LINE."""

    def __init__(self, problems: list[str], rows: list[tuple[int | None, str | None, str]] | None = None):
        self.problems = problems
        self.rows = rows or []
        super().__init__("\n".join(problems))


def _holder(message: str) -> str:
    """Describe the process named in DuckDB's lock error: 'PID 123 (streamlit run ...)'."""
    m = re.search(r"PID (\d+)", message)
    if not m:
        return "another process"
    pid = m.group(1)
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"process {pid}" + (f" ({cmd[:120]})" if cmd else "")


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the database at path.

    Raises StoreLockedError, with what to do, when another process holds the file: DuckDB lets only one
    process open a database file, even for reading.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StoreLockedError(
            f"The database {path} is in use by {_holder(str(exc))}.\n"
            "DuckDB lets only one process open a database file at a time. Either stop that process "
            "(for the app: Ctrl+C in its terminal) and run this command again, or use the app's Import page "
            "while it runs, or pass --db with another file."
        ) from exc
    conn.execute("SET TimeZone = 'UTC'")
    if not read_only:
        migrate(conn)
    return conn


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get_schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def default_db_path() -> Path:
    return Path(os.environ.get("TURNLENS_DB", "data/turnlens.duckdb"))
