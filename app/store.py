"""Every SQL statement of turnlens: small typed functions taking the DuckDB connection first.

Reads return Arrow tables or pandas DataFrames; writes run inside ``transaction``. Tables holding what a
person did (imports now, review decisions later) are append-only: this module never updates or deletes
their rows (``tests/test_store.py`` checks it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from analysis.log_format import FIELDS
from app import __version__
from app.migrations import migrate

APPEND_ONLY_TABLES = ("imports",)
_V1_COLUMNS = [f.name for f in FIELDS]


class StoreLockedError(RuntimeError):
    """Another process holds the database file."""


class IngestConflictError(ValueError):
    """Incoming turns contradict stored ones; nothing was written. ``problems`` lists them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ------------------------------------------------------------------------------------- connection


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


# ---------------------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestResult:
    import_id: int | None  # None when nothing was new
    rows_read: int
    rows_added: int
    rows_already_present: int


_CONFLICT_LIMIT = 50


def insert_turns(conn: duckdb.DuckDBPyConnection, turns: pa.Table, *, dataset: str, sources: list[str],
                 content_sha256: str, unknown_fields: dict[str, int], imported_by: str | None
                 ) -> IngestResult:
    """Append turns (``TURN_SCHEMA`` plus wer_* columns) atomically.

    Turns already stored with the same content are skipped (re-ingest is idempotent); a turn whose
    (dialogue_id, turn_index) is stored with different content, or whose time order contradicts the
    stored turns of its dialogue, makes the whole call fail with IngestConflictError and write nothing.
    """
    cur = conn.cursor()
    cur.register("incoming", turns)
    try:
        with transaction(cur):
            cols = ", ".join(f'"{c}"' for c in _V1_COLUMNS)
            differs = " OR ".join(f'i."{c}" IS DISTINCT FROM t."{c}"' for c in _V1_COLUMNS + ["extras"])
            conflicts = cur.execute(f"""
                SELECT i.dialogue_id, i.turn_index, t.dataset FROM incoming i
                JOIN turns t USING (dialogue_id, turn_index)
                WHERE {differs}
                ORDER BY 1, 2 LIMIT {_CONFLICT_LIMIT + 1}
            """).fetchall()
            if conflicts:
                problems = [f"turn {ti} of dialogue {did!r} is already stored (dataset {ds!r}) with different "
                            "content" for did, ti, ds in conflicts[:_CONFLICT_LIMIT]]
                if len(conflicts) > _CONFLICT_LIMIT:
                    problems.append("... and more conflicting turns")
                raise IngestConflictError(problems)
            present = cur.execute(
                "SELECT count(*) FROM incoming i SEMI JOIN turns t USING (dialogue_id, turn_index)").fetchone()[0]
            if present == turns.num_rows:
                return IngestResult(None, turns.num_rows, 0, present)
            import_id = cur.execute("""
                INSERT INTO imports (dataset, sources, content_sha256, rows_read, rows_added, unknown_fields,
                                     imported_by, app_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING import_id
            """, [dataset, json.dumps(sources), content_sha256, turns.num_rows, turns.num_rows - present,
                  json.dumps(unknown_fields) if unknown_fields else None, imported_by, __version__]).fetchone()[0]
            cur.execute(f"""
                INSERT INTO turns (dataset, {cols}, extras, wer_sub, wer_del, wer_ins, wer_ref_words, import_id)
                SELECT ?, {cols}, extras, wer_sub, wer_del, wer_ins, wer_ref_words, ?
                FROM incoming i ANTI JOIN turns t USING (dialogue_id, turn_index)
            """, [dataset, import_id])
            order = _time_order_violations(cur, import_id)
            if order:
                raise IngestConflictError(order)
            return IngestResult(import_id, turns.num_rows, turns.num_rows - present, present)
    finally:
        cur.unregister("incoming")
        cur.close()


def _time_order_violations(cur: duckdb.DuckDBPyConnection, import_id: int) -> list[str]:
    """New turns must keep each dialogue's turns in time order together with the turns stored before."""
    rows = cur.execute(f"""
        WITH touched AS (SELECT DISTINCT dialogue_id FROM turns WHERE import_id = ?),
        ordered AS (
            SELECT t.dialogue_id, t.turn_index, t.timestamp, t.import_id,
                   lag(t.turn_index) OVER w AS prev_index, lag(t.timestamp) OVER w AS prev_ts
            FROM turns t SEMI JOIN touched USING (dialogue_id)
            WINDOW w AS (PARTITION BY t.dialogue_id ORDER BY t.turn_index)
        )
        SELECT dialogue_id, turn_index, prev_index FROM ordered
        WHERE prev_ts > timestamp ORDER BY 1, 2 LIMIT {_CONFLICT_LIMIT}
    """, [import_id]).fetchall()
    return [f"turn {ti} of dialogue {did!r} is earlier than its turn {prev} already stored"
            for did, ti, prev in rows]


def list_imports(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT import_id, dataset, sources, rows_read, rows_added, unknown_fields, imported_by, imported_at
        FROM imports ORDER BY import_id DESC
    """).df()


# ----------------------------------------------------------------------------------------- reads


def list_datasets(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT dataset FROM turns ORDER BY dataset").fetchall()]


@dataclass(frozen=True)
class OverviewCounts:
    turns: int
    dialogues: int
    users: int
    speakers: int
    errors: int  # substitutions + deletions + insertions over turns with a reference
    ref_words: int
    turns_with_reference: int
    unhandled: int
    barge_ins: int
    first: object
    last: object

    @property
    def pooled_wer(self) -> float | None:
        return self.errors / self.ref_words if self.ref_words else None


def get_overview_counts(conn: duckdb.DuckDBPyConnection, dataset: str) -> OverviewCounts:
    row = conn.cursor().execute("""
        SELECT count(*), count(DISTINCT dialogue_id), count(DISTINCT user_id), count(DISTINCT speaker_id),
               coalesce(sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0), 0),
               coalesce(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0),
               count(*) FILTER (wer_ref_words >= 0),
               count(*) FILTER (response_status = 'unhandled'),
               count(*) FILTER (barge_in),
               min(timestamp), max(timestamp)
        FROM turns WHERE dataset = ?
    """, [dataset]).fetchone()
    return OverviewCounts(*row)


def list_signals_by_domain(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Per NLU domain: turns, pooled WER, and the rate of each failure signal."""
    return conn.cursor().execute("""
        SELECT coalesce(nlu_domain, '(none)') AS domain, count(*) AS turns,
               sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0)
                 / nullif(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0) AS pooled_wer,
               avg(CASE WHEN response_status = 'unhandled' THEN 1 ELSE 0 END) AS unhandled_rate,
               avg(CASE WHEN response_status = 'error' THEN 1 ELSE 0 END) AS error_rate,
               avg(CASE WHEN barge_in THEN 1 ELSE 0 END) AS barge_in_rate,
               avg(CASE WHEN user_feedback = 'negative' THEN 1 ELSE 0 END) AS negative_feedback_rate
        FROM turns WHERE dataset = ?
        GROUP BY ALL ORDER BY turns DESC
    """, [dataset]).df()


def list_signals_by_day(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Per UTC day: turns, pooled WER, and the rate of each failure signal."""
    return conn.cursor().execute("""
        SELECT date_trunc('day', timestamp)::DATE AS day, count(*) AS turns,
               sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0)
                 / nullif(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0) AS pooled_wer,
               avg(CASE WHEN response_status = 'unhandled' THEN 1 ELSE 0 END) AS unhandled_rate,
               avg(CASE WHEN response_status = 'error' THEN 1 ELSE 0 END) AS error_rate,
               avg(CASE WHEN barge_in THEN 1 ELSE 0 END) AS barge_in_rate,
               avg(CASE WHEN user_feedback = 'negative' THEN 1 ELSE 0 END) AS negative_feedback_rate
        FROM turns WHERE dataset = ?
        GROUP BY ALL ORDER BY day
    """, [dataset]).df()


@dataclass(frozen=True)
class DialogueFilter:
    """Filters of the Dialogues page; every field optional. text matches request or response text."""

    text: str | None = None
    domain: str | None = None
    intent: str | None = None
    response_status: str | None = None
    user_id: str | None = None
    barge_in_only: bool = False
    since: date | None = None
    until: date | None = None


def _dialogue_where(dataset: str, flt: DialogueFilter) -> tuple[str, list]:
    clauses, params = ["dataset = ?"], [dataset]
    if flt.text:
        # ILIKE with the user's text as a parameter; % and _ in it are escaped to match literally.
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(asr_text ILIKE ? ESCAPE '\\' OR response_text ILIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    for column, value in (("nlu_domain", flt.domain), ("nlu_intent", flt.intent),
                          ("response_status", flt.response_status), ("user_id", flt.user_id)):
        if value:
            clauses.append(f"{column} = ?")  # column names come from the fixed list above
            params.append(value)
    if flt.barge_in_only:
        clauses.append("barge_in")
    if flt.since:
        clauses.append("timestamp >= ?::DATE")
        params.append(flt.since)
    if flt.until:
        clauses.append("timestamp < ?::DATE + INTERVAL 1 DAY")
        params.append(flt.until)
    return " AND ".join(clauses), params


def list_dialogues(conn: duckdb.DuckDBPyConnection, dataset: str, flt: DialogueFilter, *,
                   limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """Dialogues with at least one turn matching the filter, newest first, and how many there are."""
    where, params = _dialogue_where(dataset, flt)
    cur = conn.cursor()
    total = cur.execute(f"SELECT count(DISTINCT dialogue_id) FROM turns WHERE {where}", params).fetchone()[0]
    page = cur.execute(f"""
        WITH hits AS (SELECT DISTINCT dialogue_id FROM turns WHERE {where})
        SELECT t.dialogue_id, any_value(t.user_id) AS user_id, any_value(t.device_type) AS device,
               min(t.timestamp) AS started, count(*) AS turns,
               arg_min(t.asr_text, t.turn_index) AS first_request,
               count(*) FILTER (t.response_status <> 'success') AS failed_responses,
               count(*) FILTER (t.barge_in) AS barge_ins,
               sum(t.wer_sub + t.wer_del + t.wer_ins) FILTER (t.wer_ref_words >= 0)
                 / nullif(sum(t.wer_ref_words) FILTER (t.wer_ref_words >= 0), 0) AS pooled_wer
        FROM turns t SEMI JOIN hits USING (dialogue_id)
        WHERE t.dataset = ?
        GROUP BY t.dialogue_id ORDER BY started DESC, t.dialogue_id LIMIT ? OFFSET ?
    """, params + [dataset, limit, offset]).df()
    return page, total


def list_values(conn: duckdb.DuckDBPyConnection, dataset: str, column: str) -> list[str]:
    """Distinct values of one categorical column, for filter menus."""
    allowed = {"nlu_domain", "nlu_intent", "response_status", "user_id", "device_type", "response_skill"}
    if column not in allowed:
        raise ValueError(f"not a filterable column: {column}")
    return [r[0] for r in conn.cursor().execute(
        f"SELECT DISTINCT {column} FROM turns WHERE dataset = ? AND {column} IS NOT NULL ORDER BY 1",
        [dataset]).fetchall()]


def get_dialogue_turns(conn: duckdb.DuckDBPyConnection, dialogue_id: str) -> list[dict]:
    """Every turn of one dialogue, in order, as plain dicts (all stored columns)."""
    cur = conn.cursor()
    cur.execute("SELECT * FROM turns WHERE dialogue_id = ? ORDER BY turn_index", [dialogue_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def count_turns(conn: duckdb.DuckDBPyConnection, dataset: str | None = None) -> int:
    if dataset is None:
        return conn.cursor().execute("SELECT count(*) FROM turns").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM turns WHERE dataset = ?", [dataset]).fetchone()[0]


def list_wer_pairs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """reference_text, asr_text and the stored counts of every turn with a reference (for audits)."""
    return conn.cursor().sql("""
        SELECT reference_text, asr_text, wer_sub, wer_del, wer_ins, wer_ref_words
        FROM turns WHERE dataset = ? AND reference_text IS NOT NULL
    """, params=[dataset]).to_arrow_table()


def default_db_path() -> Path:
    return Path(os.environ.get("TURNLENS_DB", "data/turnlens.duckdb"))
