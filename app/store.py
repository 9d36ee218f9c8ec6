"""Every SQL statement of turnlens: small typed functions taking the DuckDB connection first.

Reads return Arrow tables or pandas DataFrames; writes run inside ``transaction``. Tables holding what a
person did (imports now, review decisions later) are append-only: this module never updates or deletes
their rows (``tests/test_store.py`` checks it).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from analysis import csv_safety
from analysis.candidates import check_distribution
from analysis.log_format import FIELDS
from analysis.names import normalise_name
from app import __version__
from app.migrations import migrate

APPEND_ONLY_TABLES = ("imports", "decisions", "bulk_actions", "audit_items", "model_runs", "candidates",
                      "candidate_distributions", "jobs", "job_events", "evaluations")
_V1_COLUMNS = [f.name for f in FIELDS]


class StoreLockedError(RuntimeError):
    """Another process holds the database file."""


class IngestConflictError(ValueError):
    """Incoming rows contradict stored ones; nothing was written. ``problems`` lists them as text;
    ``rows`` holds (incoming row index or None, field or None, message) so callers can say FILE:LINE."""

    def __init__(self, problems: list[str], rows: list[tuple[int | None, str | None, str]] | None = None):
        self.problems = problems
        self.rows = rows or []
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
    # _row: the incoming row, so a conflict can be reported at its file and line.
    cur.register("incoming", turns.append_column("_row", pa.array(range(turns.num_rows), type=pa.int64())))
    try:
        with transaction(cur):
            cols = ", ".join(f'"{c}"' for c in _V1_COLUMNS)
            # Which stored fields differ, by name: column names come from the format's fixed field list.
            differing = ", ".join(f"""CASE WHEN i."{c}" IS DISTINCT FROM t."{c}" THEN '{c}' END"""
                                  for c in _V1_COLUMNS + ["extras"])
            sql = f"""
                SELECT i._row, i.dialogue_id, i.turn_index, t.dataset,
                       list_filter([{differing}], lambda x: x IS NOT NULL) AS fields
                FROM incoming i JOIN turns t USING (dialogue_id, turn_index)
                WHERE t.dataset IS DISTINCT FROM ? OR len(list_filter([{differing}], lambda x: x IS NOT NULL)) > 0
                ORDER BY i._row LIMIT ?
            """
            conflicts = cur.execute(sql, [dataset, _CONFLICT_LIMIT + 1]).fetchall()
            if conflicts:
                rows = []
                for row, did, ti, ds, fields in conflicts[:_CONFLICT_LIMIT]:
                    if ds != dataset:
                        rows.append((row, "dialogue_id", f"turn {ti} of dialogue {did!r} is already stored in "
                                                         f"dataset {ds!r}, not {dataset!r}"))
                    else:
                        rows.append((row, fields[0], f"turn {ti} of dialogue {did!r} is already stored with "
                                                     f"different content (differs in: {', '.join(fields)})"))
                if len(conflicts) > _CONFLICT_LIMIT:
                    rows.append((None, None, "... and more conflicting turns"))
                raise IngestConflictError([m for _, _, m in rows], rows)
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
            sql = f"""
                INSERT INTO turns (dataset, {cols}, extras, wer_sub, wer_del, wer_ins, wer_ref_words, import_id)
                SELECT ?, {cols}, extras, wer_sub, wer_del, wer_ins, wer_ref_words, ?
                FROM incoming i ANTI JOIN turns t USING (dialogue_id, turn_index)
            """
            cur.execute(sql, [dataset, import_id])
            order = _time_order_violations(cur, import_id)
            if order:
                raise IngestConflictError([m for _, _, m in order], order)
            return IngestResult(import_id, turns.num_rows, turns.num_rows - present, present)
    finally:
        cur.unregister("incoming")
        cur.close()


def _time_order_violations(cur: duckdb.DuckDBPyConnection, import_id: int) -> list[tuple[int | None, str, str]]:
    """New turns must keep each dialogue's turns in time order together with the turns stored before."""
    rows = cur.execute("""
        WITH touched AS (SELECT DISTINCT dialogue_id FROM turns WHERE import_id = ?),
        ordered AS (
            SELECT t.dialogue_id, t.turn_index, t.timestamp, t.import_id,
                   lag(t.turn_index) OVER w AS prev_index, lag(t.timestamp) OVER w AS prev_ts,
                   lead(t.turn_index) OVER w AS next_index, lead(t.import_id) OVER w AS next_import
            FROM turns t SEMI JOIN touched USING (dialogue_id)
            WINDOW w AS (PARTITION BY t.dialogue_id ORDER BY t.turn_index)
        )
        SELECT o.dialogue_id, o.turn_index, o.prev_index, o.import_id = ? AS is_new,
               i._row AS this_row, j._row AS prev_row
        FROM ordered o
        LEFT JOIN incoming i ON i.dialogue_id = o.dialogue_id AND i.turn_index = o.turn_index AND o.import_id = ?
        LEFT JOIN incoming j ON j.dialogue_id = o.dialogue_id AND j.turn_index = o.prev_index
        WHERE o.prev_ts > o.timestamp ORDER BY 1, 2 LIMIT ?
    """, [import_id, import_id, import_id, _CONFLICT_LIMIT]).fetchall()
    # Name the incoming row of the pair (the stored one has no line in this input).
    return [(this_row if this_row is not None else prev_row, "timestamp",
             f"turn {ti} of dialogue {did!r} is earlier than its turn {prev}, "
             + ("already stored" if this_row is not None else "which this input adds"))
            for did, ti, prev, _new, this_row, prev_row in rows]


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


# Pooled WER and the rate of each failure signal, for any grouping of turns.
_SIGNALS = """
    count(*) AS turns,
    sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0)
      / nullif(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0) AS pooled_wer,
    avg(CASE WHEN response_status = 'unhandled' THEN 1 ELSE 0 END) AS unhandled_rate,
    avg(CASE WHEN response_status = 'error' THEN 1 ELSE 0 END) AS error_rate,
    avg(CASE WHEN barge_in THEN 1 ELSE 0 END) AS barge_in_rate,
    avg(CASE WHEN user_feedback = 'negative' THEN 1 ELSE 0 END) AS negative_feedback_rate
"""


def list_signals_by_domain(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Per NLU domain: turns, pooled WER, and the rate of each failure signal."""
    # _SIGNALS is a constant of this module: no value is spliced into the SQL
    return conn.cursor().execute(f"""
        SELECT coalesce(nlu_domain, '(none)') AS domain, {_SIGNALS}
        FROM turns WHERE dataset = ? GROUP BY ALL ORDER BY turns DESC
    """, [dataset]).df()


def list_signals_by_day(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Per UTC day: turns, pooled WER, and the rate of each failure signal."""
    # _SIGNALS is a constant of this module: no value is spliced into the SQL
    return conn.cursor().execute(f"""
        SELECT date_trunc('day', timestamp)::DATE AS day, {_SIGNALS}
        FROM turns WHERE dataset = ? GROUP BY ALL ORDER BY day
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
    # where: fixed fragments from _dialogue_where; every value is in params
    total = cur.execute(f"SELECT count(DISTINCT dialogue_id) FROM turns WHERE {where}", params).fetchone()[0]
    sql = f"""
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
    """  # where is built from fixed fragments by _dialogue_where; its values are parameters
    page = cur.execute(sql, params + [dataset, limit, offset]).df()
    return page, total


def list_values(conn: duckdb.DuckDBPyConnection, dataset: str, column: str) -> list[str]:
    """Distinct values of one categorical column, for filter menus."""
    allowed = {"nlu_domain", "nlu_intent", "response_status", "user_id", "device_type", "response_skill"}
    if column not in allowed:
        raise ValueError(f"not a filterable column: {column}")
    return [r[0] for r in conn.cursor().execute(
        f"SELECT DISTINCT {column} FROM turns WHERE dataset = ? AND {column} IS NOT NULL ORDER BY 1",
        [dataset]).fetchall()]


def get_dialogue_turns(conn: duckdb.DuckDBPyConnection, dialogue_id: str, dataset: str | None = None) -> list[dict]:
    """Every turn of one dialogue (of one dataset, if given), in order, as plain dicts (all stored columns)."""
    cur = conn.cursor()
    cur.execute("SELECT * FROM turns WHERE dialogue_id = ? AND (? IS NULL OR dataset = ?) ORDER BY turn_index",
                [dialogue_id, dataset, dataset])
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


# ------------------------------------------------------------------------------------ candidates


@dataclass(frozen=True)
class CandidateImportResult:
    rows_read: int
    rows_added: int
    rows_already_present: int
    distributions_added: int = 0  # probability vectors stored, for new candidates or ones stored without


def _checked_distributions(candidates: pa.Table) -> pa.Table:
    """candidates with a `distribution` column of canonical JSON (null where a row has none), each checked
    against its row's value and score; tables made before the column existed get an all-null one. Raises
    ValueError naming the first bad row: file imports were checked already, so this guards the producers
    in code (a vector that contradicts its candidate would mislead a reviewer)."""
    if "distribution" not in candidates.column_names:
        return candidates.append_column("distribution", pa.nulls(candidates.num_rows, pa.string()))
    column = candidates.column("distribution")
    if column.null_count == candidates.num_rows:
        return candidates
    values, scores = candidates.column("value").to_pylist(), candidates.column("score").to_pylist()
    checked = []
    for i, text in enumerate(column.to_pylist()):
        if text is None:
            checked.append(None)
            continue
        try:
            checked.append(check_distribution(json.loads(text), value=json.loads(values[i]), score=scores[i]))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise ValueError(f"candidate row {i} ({candidates.column('task')[i].as_py()} for target "
                             f"{candidates.column('target_key')[i].as_py()}): distribution: {exc}") from exc
    return candidates.set_column(candidates.column_names.index("distribution"), "distribution",
                                 pa.array(checked, pa.string()))


_MISSING_LIMIT = 50


def insert_candidates(conn: duckdb.DuckDBPyConnection, candidates: pa.Table) -> CandidateImportResult:
    """Append candidates (``analysis.candidates.CANDIDATE_SCHEMA``) atomically, creating their model runs
    and storing each one's probability vector (the optional ``distribution`` column) in the same transaction.

    Every target must exist among the stored turns. A proposal already stored (same run, task and target)
    with the same value, score and distribution is skipped; with a different one, the call fails. Either
    failure raises IngestConflictError and writes nothing. A missing vector is not a difference: one stored
    before vectors were kept gets its vector now (a new row, nothing updated); an import without vectors
    changes nothing stored. A vector that contradicts its own row raises ValueError (check_distribution).
    """
    candidates = _checked_distributions(candidates)
    cur = conn.cursor()
    try:
        with transaction(cur):
            return _insert_candidates(cur, candidates)
    finally:
        cur.close()


def _insert_candidates(cur: duckdb.DuckDBPyConnection, candidates: pa.Table) -> CandidateImportResult:
    """insert_candidates' work inside the caller's transaction (candidates already checked)."""
    cur.register("incoming_c", candidates)
    try:
        missing = cur.execute("""
            SELECT i.task, i.dialogue_id, i.turn_index FROM incoming_c i
            WHERE (i.turn_index IS NULL AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.dialogue_id = i.dialogue_id))
               OR (i.turn_index IS NOT NULL AND NOT EXISTS (SELECT 1 FROM turns t
                    WHERE t.dialogue_id = i.dialogue_id AND t.turn_index = i.turn_index))
               OR (i.other_dialogue_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM turns t
                    WHERE t.dialogue_id = i.other_dialogue_id AND t.turn_index = i.other_turn_index))
            ORDER BY 2, 3 LIMIT ?
        """, [_MISSING_LIMIT + 1]).fetchall()
        if missing:
            problems = [f"{task} candidate for {'dialogue' if ti is None else f'turn {ti} of dialogue'} {did!r}: "
                        "no such target among the stored turns (ingest the logs first)"
                        for task, did, ti in missing[:_MISSING_LIMIT]]
            if len(missing) > _MISSING_LIMIT:
                problems.append("... and more candidates without a target")
            raise IngestConflictError(problems)
        cur.execute("""
            INSERT INTO model_runs (name, version, parameters, run_at)
            SELECT model_name, model_version, model_parameters, min(run_at)
            FROM incoming_c GROUP BY ALL
            ON CONFLICT DO NOTHING
        """)
        cur.execute("""
            CREATE OR REPLACE TEMP TABLE staged_c AS
            SELECT r.run_id, i.* EXCLUDE (model_name, model_version, model_parameters, run_at)
            FROM incoming_c i JOIN model_runs r
              ON r.name = i.model_name AND r.version = i.model_version AND r.parameters = i.model_parameters
        """)
        conflicts = cur.execute("""
            SELECT s.task, s.target_key FROM staged_c s JOIN candidates c USING (run_id, task, target_key)
            LEFT JOIN candidate_distributions d ON d.candidate_id = c.candidate_id
            WHERE s.value <> c.value OR s.score <> c.score OR s.distribution <> d.distribution LIMIT ?
        """, [_CONFLICT_LIMIT]).fetchall()
        if conflicts:
            raise IngestConflictError([f"{task} candidate for target {key} is already stored from the same "
                                       "model run with another value, score or distribution"
                                       for task, key in conflicts])
        present = cur.execute(
            "SELECT count(*) FROM staged_c SEMI JOIN candidates USING (run_id, task, target_key)").fetchone()[0]
        # The domain and dataset of the target's (first) turn, kept on the candidate for fast filtering.
        cur.execute("""
            INSERT INTO candidates (run_id, task, target_kind, dialogue_id, turn_index, other_dialogue_id,
                                    other_turn_index, target_key, value, score, dataset, domain)
            SELECT s.run_id, s.task, s.target_kind, s.dialogue_id, s.turn_index, s.other_dialogue_id,
                   s.other_turn_index, s.target_key, s.value, s.score, t.dataset, t.nlu_domain
            FROM staged_c s
            JOIN turns t ON t.dialogue_id = s.dialogue_id AND t.turn_index = coalesce(s.turn_index, (
                SELECT min(t2.turn_index) FROM turns t2 WHERE t2.dialogue_id = s.dialogue_id))
            ANTI JOIN candidates c USING (run_id, task, target_key)
            ORDER BY s.dialogue_id, s.turn_index, s.task
        """)
        # The vectors of the candidates just added, and of stored ones that had none.
        distributions = cur.execute("""
            INSERT INTO candidate_distributions (candidate_id, distribution)
            SELECT c.candidate_id, s.distribution
            FROM staged_c s JOIN candidates c USING (run_id, task, target_key)
            ANTI JOIN candidate_distributions d ON d.candidate_id = c.candidate_id
            WHERE s.distribution IS NOT NULL
            ORDER BY c.candidate_id
        """).fetchone()[0]
        cur.execute("DROP TABLE staged_c")
        return CandidateImportResult(candidates.num_rows, candidates.num_rows - present, present,
                                     distributions)
    finally:
        cur.unregister("incoming_c")


def get_candidate_distribution(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> dict[str, float] | None:
    """A candidate's full probability vector, label -> probability, most likely first (ties by label);
    None when its model stored none."""
    row = conn.cursor().execute("SELECT distribution FROM candidate_distributions WHERE candidate_id = ?",
                                [candidate_id]).fetchone()
    if row is None:
        return None
    return dict(sorted(json.loads(row[0]).items(), key=lambda kv: (-kv[1], kv[0])))


def list_model_runs(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT run_id, name, version, parameters, run_at, created_at FROM model_runs ORDER BY run_id
    """).df()


def list_tasks(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT task FROM candidates WHERE dataset = ? ORDER BY 1", [dataset]).fetchall()]


def count_candidates(conn: duckdb.DuckDBPyConnection, dataset: str | None = None) -> int:
    if dataset is None:
        return conn.cursor().execute("SELECT count(*) FROM candidates").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM candidates WHERE dataset = ?", [dataset]).fetchone()[0]


# ----------------------------------------------------------------------------------------- queues

ORDERS = ("score_asc", "score_desc", "random", "disagreement")
STATUSES = ("undecided", "decided", "all")


@dataclass(frozen=True)
class QueueSpec:
    """Which candidates a review queue holds and in what order. Every field has a URL form."""

    dataset: str
    task: str | None = None
    value: str | None = None  # a proposed value, as its canonical JSON text
    score_min: float = 0.0
    score_max: float = 1.0
    run_id: int | None = None
    domain: str | None = None
    status: str = "undecided"
    order: str = "score_asc"
    seed: int = 0
    overlap: int = 1  # each candidate goes to this many reviewers
    audit_bulk_id: int | None = None  # the audit sample of one bulk accept, instead of the filters above

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if not (0 <= self.score_min <= self.score_max <= 1):
            raise ValueError("need 0 <= score_min <= score_max <= 1")
        if self.overlap < 1:
            raise ValueError("overlap must be at least 1")


_ORDER_SQL = {
    "score_asc": "c.score ASC, c.candidate_id",
    "score_desc": "c.score DESC, c.candidate_id",
    "random": "hash(c.candidate_id, ?::BIGINT), c.candidate_id",
    "disagreement": "(coalesce(src.n_values, 1) > 1)::INT + (coalesce(rev.n_labels, 1) > 1)::INT DESC, "
                    "c.score ASC, c.candidate_id",
}


def _queue_sql(reviewer: str, spec: QueueSpec, *, select: str, order: bool) -> tuple[str, list]:
    """The queue's query. Only fixed SQL fragments are joined here; every value is a parameter."""
    params: list = [reviewer]
    ctes = ["""mine AS (
        SELECT candidate_id, arg_max(verdict, seq) AS last_verdict,
               arg_max(verdict, seq) FILTER (verdict <> 'skip') AS last_real
        FROM decisions WHERE reviewer = ? AND role IN ('review', 'bulk', 'audit') GROUP BY candidate_id)"""]
    where = ["c.dataset = ?"]
    params_where: list = [spec.dataset]
    joins = ["LEFT JOIN mine USING (candidate_id)"]
    if spec.audit_bulk_id is not None:
        ctes.append("""audited AS (SELECT DISTINCT candidate_id FROM current_decisions WHERE role = 'audit')""")
        where.append("c.candidate_id IN (SELECT candidate_id FROM audit_items WHERE bulk_id = ?)")
        params_where.append(spec.audit_bulk_id)
        if spec.status == "undecided":
            where.append("c.candidate_id NOT IN (SELECT candidate_id FROM audited)")
    else:
        # Each reviewer's latest non-skip verdict per candidate, by aggregation: the same as current_decisions,
        # without its window over the whole log (that costs ~4x more with hundreds of thousands of decisions).
        ctes.append("""latest AS (SELECT candidate_id, reviewer, arg_max(verdict, seq) AS verdict,
                              arg_max(CASE verdict WHEN 'correct' THEN corrected_value WHEN 'reject' THEN '<rejected>'
                                      ELSE '<accepted>' END, seq) AS label_key
                       FROM decisions WHERE verdict <> 'skip' AND role IN ('review', 'bulk', 'audit')
                       GROUP BY candidate_id, reviewer)""")
        ctes.append("""taken AS (SELECT candidate_id, count(*) AS n FROM latest WHERE verdict <> 'retract'
                       GROUP BY candidate_id)""")
        joins.append("LEFT JOIN taken USING (candidate_id)")
        for column, value in (("c.task", spec.task), ("c.value", spec.value), ("c.run_id", spec.run_id),
                              ("c.domain", spec.domain)):
            if value is not None:
                where.append(f"{column} = ?")
                params_where.append(value)
        if spec.score_min > 0 or spec.score_max < 1:
            where.append("c.score BETWEEN ? AND ?")
            params_where += [spec.score_min, spec.score_max]
        if spec.status == "undecided":
            where.append("(mine.last_real IS NULL OR mine.last_real = 'retract') AND coalesce(taken.n, 0) < ?")
            params_where.append(spec.overlap)
        elif spec.status == "decided":
            where.append("coalesce(taken.n, 0) > 0")
    if order and spec.order == "disagreement":
        ctes.append("""src AS (SELECT task, target_key, count(DISTINCT value) AS n_values FROM candidates
                       WHERE dataset = ? GROUP BY ALL)""")
        params.append(spec.dataset)
        if spec.audit_bulk_id is None:
            ctes.append("""rev AS (SELECT candidate_id, count(DISTINCT label_key) AS n_labels FROM latest
                           WHERE verdict <> 'retract' GROUP BY candidate_id)""")
        else:
            ctes.append("""rev AS (SELECT candidate_id, count(DISTINCT label_key) AS n_labels FROM decision_labels
                           WHERE role <> 'adjudicate' GROUP BY candidate_id)""")
        joins += ["LEFT JOIN src USING (task, target_key)", "LEFT JOIN rev USING (candidate_id)"]
    sql = f"WITH {', '.join(ctes)} SELECT {select} FROM candidates c {' '.join(joins)} WHERE {' AND '.join(where)}"
    params += params_where
    if order:
        # A candidate this reviewer skipped comes back, but after everything not yet seen.
        sql += f" ORDER BY coalesce(mine.last_verdict = 'skip', false), {_ORDER_SQL[spec.order]}"
        if spec.order == "random":
            params.append(spec.seed)
    return sql, params


def list_queue(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, *, limit: int = 20) -> list[int]:
    """The next candidate ids of this reviewer's queue, in order."""
    sql, params = _queue_sql(reviewer, spec, select="c.candidate_id", order=True)
    return [r[0] for r in conn.cursor().execute(sql + " LIMIT ?", params + [limit]).fetchall()]


def count_queue(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec) -> int:
    sql, params = _queue_sql(reviewer, spec, select="count(*)", order=False)
    return conn.cursor().execute(sql, params).fetchone()[0]


def count_my_decided(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec) -> int:
    """Candidates matching the queue's filters that this reviewer has a standing decision on."""
    sql, params = _queue_sql(reviewer, replace(spec, status="all"), select="count(*)", order=False)
    return conn.cursor().execute(sql + " AND mine.last_real IN ('accept', 'reject', 'correct')", params).fetchone()[0]


def is_open(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, candidate_id: int) -> bool:
    """Whether a candidate is still in this reviewer's queue (another reviewer may have taken it)."""
    return open_slots(conn, reviewer, spec, candidate_id) > 0


def open_slots(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, candidate_id: int) -> int:
    """How many more reviewers an undecided-queue candidate may get (0: not for this reviewer any more).

    Looks at this one candidate's decisions only, so it stays cheap however long the decision log grows."""
    if spec.status != "undecided":
        return 1
    if spec.audit_bulk_id is not None:
        audited = conn.cursor().execute(
            "SELECT count(*) FROM current_decisions WHERE candidate_id = ? AND role = 'audit'",
            [candidate_id]).fetchone()[0]
        return 0 if audited else 1
    mine, taken = conn.cursor().execute("""
        SELECT (SELECT arg_max(verdict, seq) FILTER (verdict <> 'skip') FROM decisions
                WHERE candidate_id = ? AND reviewer = ? AND role IN ('review', 'bulk', 'audit')),
               (SELECT count(*) FROM current_decisions
                WHERE candidate_id = ? AND role IN ('review', 'bulk', 'audit'))
    """, [candidate_id, reviewer, candidate_id]).fetchone()
    if mine is not None and mine != "retract":
        return 0
    return max(spec.overlap - taken, 0)


def get_candidate(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> dict | None:
    cur = conn.cursor()
    cur.execute("""
        SELECT c.*, r.name AS model_name, r.version AS model_version, r.parameters AS model_parameters
        FROM candidates c JOIN model_runs r USING (run_id) WHERE c.candidate_id = ?
    """, [candidate_id])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def list_proposals(conn: duckdb.DuckDBPyConnection, task: str, target: str, dialogue_id: str) -> pd.DataFrame:
    """Every source's proposal for one task and target, side by side, best score first.

    dialogue_id is implied by target but filtering on it too lets DuckDB skip row groups by their min/max
    (candidates are stored in dialogue order): a point lookup instead of a scan at a million candidates."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, r.name AS model, r.version, c.value, c.score
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dialogue_id = ? AND c.task = ? AND c.target_key = ? ORDER BY c.score DESC, c.candidate_id
    """, [dialogue_id, task, target]).df()


def list_current_decisions(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> pd.DataFrame:
    """Each reviewer's current decision on a candidate (adjudications included, marked by role)."""
    return conn.cursor().execute("""
        SELECT reviewer, role, verdict, corrected_value, decided_at FROM current_decisions
        WHERE candidate_id = ? ORDER BY decided_at
    """, [candidate_id]).df()


# -------------------------------------------------------------------------------------- decisions

VERDICTS = ("accept", "reject", "correct", "skip", "retract")
ROLES = ("review", "bulk", "audit", "adjudicate")
SLOT_VERDICTS = ("accept", "reject", "correct")  # the verdicts that take one of a candidate's review slots
# Which standing decisions fill a candidate's slots, per deciding role: a review queue counts every person's
# and bulk accept's (as its queue does), an audit only the other audits (one audit per sampled item).
_SLOT_ROLES = {"review": ["review", "bulk", "audit"], "audit": ["audit"]}
# Every decision write of this process takes this lock, for two reasons.
# 1. ON CONFLICT DO NOTHING sees committed rows only: two threads submitting one decision id at once would
#    both pass it and one would fail at commit.
# 2. The slot check (insert_decision's overlap) runs inside the INSERT statement, but DuckDB gives each
#    statement a snapshot: two concurrent INSERTs would each count the other's reviewer as absent. Taken one
#    at a time, each INSERT's snapshot holds every decision committed before it.
# This is how the database side guarantees "at most `overlap` reviewers per candidate": DuckDB has no triggers
# and no partial unique indexes to state it, and one process owns the database file (DuckDB's file lock), so
# every writer goes through here. It cannot cover SQL that bypasses this module, nor decisions written without
# an overlap (decided/all queues, adjudications, the Query rewrites page), which are not slot-limited.
# Decision inserts take ~4 ms; bulk accepts hold the lock for their whole transaction.
_DECISION_LOCK = threading.Lock()


class SlotTakenError(ValueError):
    """The candidate already has as many reviewers as its queue's overlap: the decision was not stored."""


def reviewer_name(reviewer: str) -> str:
    """The stored form of a reviewer name (analysis.names.normalise_name): ``alice`` and ``alice`` + a
    zero-width space are one reviewer. Raises ValueError (InvalidNameError) for an empty or unusable name."""
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ValueError("a reviewer name is required to decide")
    return normalise_name(reviewer, what="reviewer name")


def decision_slots(spec: QueueSpec) -> int | None:
    """How many reviewers' standing decisions a candidate of this queue may hold, for insert_decision's
    overlap: the overlap of an undecided queue, 1 in an audit (one audit per sampled item, as open_slots);
    None for decided and all queues, which revisit decided candidates on purpose."""
    if spec.status != "undecided":
        return None
    return 1 if spec.audit_bulk_id is not None else spec.overlap


def insert_decision(conn: duckdb.DuckDBPyConnection, *, decision_id: str, candidate_id: int, reviewer: str,
                    verdict: str, corrected_value: str | None = None, role: str = "review",
                    overlap: int | None = None) -> bool:
    """Append one decision; committed when this returns. Returns False if decision_id was already stored
    (a double submit: the database's primary key makes a duplicate impossible, not unlikely) or the
    candidate does not exist. The reviewer name is stored normalised (reviewer_name).

    overlap (review and audit roles): an accept, reject or correction is stored only while fewer than overlap
    OTHER reviewers hold a standing decision on the candidate (their latest non-skip decision, not a
    retraction: current_decisions), checked in the INSERT statement itself; otherwise SlotTakenError is
    raised and nothing is stored. A reviewer's own earlier decision never blocks their new one."""
    reviewer = reviewer_name(reviewer)
    if verdict not in VERDICTS or role not in ROLES or role == "bulk":
        raise ValueError(f"bad verdict or role: {verdict!r}, {role!r}")
    if overlap is not None and (role not in _SLOT_ROLES or isinstance(overlap, bool) or not isinstance(overlap, int)
                                or overlap < 1):
        raise ValueError(f"overlap must be a positive int, for the review and audit roles: {overlap!r}, {role!r}")
    limit = overlap if verdict in SLOT_VERDICTS else None
    cur = conn.cursor()
    try:
        with _DECISION_LOCK:
            rows = cur.execute("""
            INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, corrected_value, role, app_version)
            SELECT ?, candidate_id, ?, ?, ?, ?, ? FROM candidates WHERE candidate_id = ?
              AND (?::INTEGER IS NULL OR (
                  SELECT count(*) FROM (
                      SELECT arg_max(verdict, seq) AS verdict, arg_max(role, seq) AS role FROM decisions
                      WHERE candidate_id = ? AND reviewer <> ? AND verdict <> 'skip' AND role <> 'adjudicate'
                      GROUP BY reviewer)
                  WHERE verdict <> 'retract' AND list_contains(?::VARCHAR[], role)) < ?::INTEGER)
            ON CONFLICT DO NOTHING RETURNING decision_id
            """, [decision_id, reviewer, verdict, corrected_value, role, __version__, candidate_id,
                  limit, candidate_id, reviewer, _SLOT_ROLES.get(role, []), limit]).fetchall()
            if not rows and limit is not None and _slot_was_taken(cur, decision_id, candidate_id):
                raise SlotTakenError(f"candidate #{candidate_id} already has its {limit} reviewer(s) in this "
                                     "queue; the decision was not stored")
    except (duckdb.ConstraintException, duckdb.TransactionException):
        # Another process-level writer (not through this lock) committed the same id first: still one row.
        if cur.execute("SELECT count(*) FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()[0]:
            return False
        raise
    finally:
        cur.close()
    return bool(rows)


def _slot_was_taken(cur: duckdb.DuckDBPyConnection, decision_id: str, candidate_id: int) -> bool:
    """Why a slot-checked INSERT stored nothing: not a double submit, not an unknown candidate: the slots."""
    known, duplicate = cur.execute("""
        SELECT EXISTS (SELECT 1 FROM candidates WHERE candidate_id = ?),
               EXISTS (SELECT 1 FROM decisions WHERE decision_id = ?)
    """, [candidate_id, decision_id]).fetchone()
    return known and not duplicate


def count_decisions(conn: duckdb.DuckDBPyConnection, *, reviewer: str | None = None) -> int:
    if reviewer is None:
        return conn.cursor().execute("SELECT count(*) FROM decisions").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM decisions WHERE reviewer = ?", [reviewer]).fetchone()[0]


def list_reviewers(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every name that has decided or imported anything, in its normal form (reviewer_name), sorted: new names
    are checked against them. Names stored before decisions were normalised (and import names, stored as
    given) are folded to that form; one that has none (nothing visible, too long) names nobody who could
    type it, and is left out so that it cannot make every look-alike check fail."""
    names = set()
    for (raw,) in conn.cursor().execute("""
        SELECT DISTINCT reviewer FROM decisions
        UNION SELECT DISTINCT imported_by FROM imports WHERE imported_by IS NOT NULL
    """).fetchall():
        try:
            names.add(reviewer_name(raw))
        except ValueError:
            continue
    return sorted(names)


def get_reviewer_rate(conn: duckdb.DuckDBPyConnection, reviewer: str) -> int:
    """Decisions (not skips or undos) this reviewer made in the last hour."""
    return conn.cursor().execute("""
        SELECT count(*) FROM decisions WHERE reviewer = ? AND verdict IN ('accept', 'reject', 'correct')
          AND role <> 'bulk' AND decided_at > current_timestamp - INTERVAL 1 HOUR
    """, [reviewer]).fetchone()[0]


def list_decision_log(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> pd.DataFrame:
    """The full history of one candidate, oldest first."""
    return conn.cursor().execute("""
        SELECT seq, decision_id, reviewer, role, verdict, corrected_value, decided_at, app_version
        FROM decisions WHERE candidate_id = ? ORDER BY seq
    """, [candidate_id]).df()


def list_known_values(conn: duckdb.DuckDBPyConnection, dataset: str, task: str) -> list[str]:
    """Values proposed for a task (canonical JSON), for correction menus."""
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT value FROM candidates WHERE dataset = ? AND task = ? ORDER BY 1", [dataset, task]).fetchall()]


# Simulated reviewers (analysis.simulated_reviewers): what they read, and their decisions appended many at once.

_GOLD_COLUMNS = ", ".join(f'"{f.name}"' for f in FIELDS if f.name.startswith("gold_"))  # from the log format


def list_candidate_targets(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """Every candidate of a dataset with its target: candidate_id, task, value (canonical JSON), score,
    dialogue_id, turn_index (null for a dialogue target), by candidate id."""
    return conn.cursor().sql("""
        SELECT candidate_id, task, value, score, dialogue_id, turn_index FROM candidates WHERE dataset = ?
        ORDER BY candidate_id
    """, params=[dataset]).to_arrow_table()


def list_turn_gold(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """The log's gold fields (evaluation only) of every turn of a dataset: dialogue_id, turn_index, gold_*."""
    # _GOLD_COLUMNS: the quoted names of the log format's gold fields, fixed in code
    return conn.cursor().sql(f"SELECT dialogue_id, turn_index, {_GOLD_COLUMNS} FROM turns WHERE dataset = ? "
                             "ORDER BY dialogue_id, turn_index", params=[dataset]).to_arrow_table()


@dataclass(frozen=True)
class DecisionImportResult:
    rows_read: int
    rows_added: int
    rows_already_present: int


def insert_simulated_decisions(conn: duckdb.DuckDBPyConnection, decisions: pa.Table) -> DecisionImportResult:
    """Append simulated reviewers' decisions (columns decision_id, candidate_id, reviewer, verdict, corrected_value;
    analysis.simulated_reviewers.DECISION_SCHEMA) in one transaction, through Arrow, as role 'review'. Decisions
    are append-only: nothing stored is changed.

    Idempotent: a row whose decision_id is stored already, identical, is skipped, so storing the same simulation
    twice adds nothing. Refused with IngestConflictError, writing nothing, when a reviewer of the batch already
    has a stored decision that the batch does not hold identically (the simulation was stored with another seed,
    error rate or share, or a person decided under the name), when a decision id is stored with other content,
    or when a candidate does not exist. Raises ValueError, writing nothing, for a batch that is not simulated
    decisions: a reviewer name that is not in its stored form, is not marked "(simulated)" or looks like another
    stored name; a verdict other than accept, reject or correct; a correction without a value or a value
    without a correction; a repeated decision id or (reviewer, candidate)."""
    from analysis.names import find_lookalike
    from analysis.simulated_reviewers import DECISION_SCHEMA, SIMULATED_MARK

    missing = [c for c in DECISION_SCHEMA.names if c not in decisions.column_names]
    if missing:
        raise ValueError(f"simulated decisions need the columns {', '.join(DECISION_SCHEMA.names)}; missing "
                         f"{', '.join(missing)}")
    decisions = decisions.select(DECISION_SCHEMA.names).cast(DECISION_SCHEMA)
    rows = decisions.to_pylist()
    names = sorted({r["reviewer"] for r in rows})
    for name in names:
        if name is None or reviewer_name(name) != name or not name.endswith(f" {SIMULATED_MARK}"):
            raise ValueError(f"{name!r} is not a simulated reviewer's name: it must be in its stored form and end "
                             f"with {SIMULATED_MARK!r}")
    for r in rows:
        if r["verdict"] not in SLOT_VERDICTS or (r["verdict"] == "correct") != (r["corrected_value"] is not None):
            raise ValueError(f"decision {r['decision_id']}: verdict {r['verdict']!r} with corrected value "
                             f"{r['corrected_value']!r}; a simulated reviewer accepts, rejects or corrects to a value")
    if len({r["decision_id"] for r in rows}) < len(rows) or len({(r["reviewer"], r["candidate_id"]) for r in rows}
                                                               ) < len(rows):
        raise ValueError("simulated decisions repeat a decision id or a (reviewer, candidate): one decision each")
    cur = conn.cursor()
    cur.register("incoming_d", decisions)
    try:
        with _DECISION_LOCK, transaction(cur):
            stored = list_reviewers(conn)
            for name in names:
                other = find_lookalike(name, stored)
                if other is not None:
                    raise ValueError(f"the simulated reviewer name {name!r} looks like the stored reviewer name "
                                     f"{other!r}")
            cur.execute("""CREATE OR REPLACE TEMP TABLE staged_d AS
                           SELECT decision_id::UUID AS decision_id, candidate_id, reviewer, verdict, corrected_value
                           FROM incoming_d""")
            problems = [f"candidate #{cid}: no such candidate" for (cid,) in cur.execute(
                "SELECT candidate_id FROM staged_d ANTI JOIN candidates USING (candidate_id) ORDER BY 1 LIMIT ?",
                [_CONFLICT_LIMIT]).fetchall()]
            # The same decision: the same id, candidate, reviewer, verdict and value, by a review.
            same = """s.decision_id = d.decision_id AND s.candidate_id = d.candidate_id AND s.reviewer = d.reviewer
                      AND s.verdict = d.verdict AND s.corrected_value IS NOT DISTINCT FROM d.corrected_value
                      AND d.role = 'review'"""
            # same: a fixed fragment above; values are parameters
            for reviewer, n in cur.execute(f"""
                SELECT d.reviewer, count(*) FROM decisions d
                WHERE d.reviewer IN (SELECT reviewer FROM staged_d)
                  AND NOT EXISTS (SELECT 1 FROM staged_d s WHERE {same})
                GROUP BY 1 ORDER BY 1""").fetchall():
                problems.append(f"{reviewer!r} already has {n:,} stored decision(s) that this simulation would not "
                                "make (stored with another seed, error rate or share, or decided by a person under "
                                "that name); decisions are never changed, so use a new database to simulate again "
                                "with other settings")
            # (a reviewer of this batch is covered above; this finds an id stored under another name)
            clash = cur.execute(f"""SELECT count(*) FROM staged_d s JOIN decisions d USING (decision_id)
                                    WHERE NOT ({same}) AND d.reviewer NOT IN (SELECT reviewer FROM staged_d)
                                 """).fetchone()[0]
            if clash:
                problems.append(f"{clash:,} decision id(s) are stored already, under another reviewer's name")
            if problems:
                raise IngestConflictError(problems)
            added = cur.execute("""
                INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, corrected_value, role, app_version)
                SELECT decision_id, candidate_id, reviewer, verdict, corrected_value, 'review', ? FROM staged_d
                ANTI JOIN decisions USING (decision_id)
                ORDER BY candidate_id, reviewer
            """, [__version__]).fetchone()[0]
            cur.execute("DROP TABLE staged_d")
    finally:
        cur.unregister("incoming_d")
        cur.close()
    return DecisionImportResult(len(rows), int(added), len(rows) - int(added))


# ------------------------------------------------------------------------------ bulk and audits


@dataclass(frozen=True)
class BulkResult:
    bulk_id: int
    accepted: int
    audit_sample: int


def count_bulk_preview(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, threshold: float) -> int:
    """How many candidates a bulk accept with these filters and score threshold would accept."""
    sql, params = _queue_sql(reviewer, replace(spec, status="undecided"), select="count(*)", order=False)
    return conn.cursor().execute(sql + " AND c.score >= ?", params + [threshold]).fetchone()[0]


def bulk_accept(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, threshold: float, *,
                audit_size: Callable[[int], int], seed: int = 0) -> BulkResult:
    """Accept every undecided candidate of the queue with score >= threshold, in one transaction, and draw
    a simple random audit sample of them (audit_size(n) items) for people to check. The reviewer name is
    stored normalised (reviewer_name)."""
    reviewer = reviewer_name(reviewer)
    sql, params = _queue_sql(reviewer, replace(spec, status="undecided"), select="c.candidate_id", order=False)
    cur = conn.cursor()
    try:
        # Under the decision lock: a review decision committing during the bulk transaction would be unseen by
        # its pick, and the candidate would get one reviewer more than its overlap.
        with _DECISION_LOCK, transaction(cur):
            # sql: the queue's fixed fragments (_queue_sql); every value is in params
            cur.execute(f"CREATE OR REPLACE TEMP TABLE bulk_pick AS {sql} AND c.score >= ?", params + [threshold])
            n = cur.execute("SELECT count(*) FROM bulk_pick").fetchone()[0]
            if n == 0:
                raise ValueError("no candidate matches: nothing to accept")
            bulk_id = cur.execute("""
                INSERT INTO bulk_actions (reviewer, queue, threshold, n_accepted, app_version)
                VALUES (?, ?, ?, ?, ?) RETURNING bulk_id
            """, [reviewer, json.dumps(asdict(spec), default=str), threshold, n, __version__]).fetchone()[0]
            cur.execute("""
                INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, role, bulk_id, app_version)
                SELECT uuid(), candidate_id, ?, 'accept', 'bulk', ?, ? FROM bulk_pick
            """, [reviewer, bulk_id, __version__])
            k = audit_size(n)
            cur.execute("""
                INSERT INTO audit_items (bulk_id, candidate_id)
                SELECT ?, candidate_id FROM bulk_pick ORDER BY hash(candidate_id, ?::BIGINT), candidate_id LIMIT ?
            """, [bulk_id, seed + bulk_id, k])  # a different random sample for every bulk accept
            cur.execute("DROP TABLE bulk_pick")
            return BulkResult(bulk_id, n, k)
    finally:
        cur.close()


def list_bulk_actions(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Bulk accepts with their audit progress: sampled, audited, and how many audits kept the label."""
    return conn.cursor().execute("""
        WITH audits AS (
            SELECT a.bulk_id, count(*) AS sampled, count(d.candidate_id) AS audited,
                   count(*) FILTER (d.verdict = 'accept') AS confirmed
            FROM audit_items a
            LEFT JOIN (SELECT candidate_id, arg_max(verdict, seq) AS verdict FROM current_decisions
                       WHERE role = 'audit' GROUP BY candidate_id) d USING (candidate_id)
            GROUP BY a.bulk_id
        )
        SELECT b.bulk_id, b.reviewer, b.threshold, b.n_accepted, b.created_at, b.queue,
               coalesce(a.sampled, 0) AS sampled, coalesce(a.audited, 0) AS audited,
               coalesce(a.confirmed, 0) AS confirmed
        FROM bulk_actions b LEFT JOIN audits a USING (bulk_id)
        WHERE json_extract_string(b.queue, '$.dataset') = ?
        ORDER BY b.bulk_id DESC
    """, [dataset]).df()


# ------------------------------------------------------------------ agreement, conflicts, calibration


def list_decision_labels(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Every reviewer's current label per candidate (people only: no bulk, no adjudication), for agreement."""
    return conn.cursor().execute("""
        SELECT dl.task, dl.candidate_id AS item, dl.reviewer, dl.label_key AS label
        FROM decision_labels dl JOIN candidates c USING (candidate_id)
        WHERE c.dataset = ? AND dl.role IN ('review', 'audit')
    """, [dataset]).df()


def list_conflicts(conn: duckdb.DuckDBPyConnection, dataset: str, *, task: str | None = None,
                   limit: int = 200) -> pd.DataFrame:
    """Candidates whose reviewers disagree and that no one has adjudicated, with each reviewer's label."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, c.task, c.dialogue_id, c.turn_index, c.value AS proposed_value, c.score,
               list(struct_pack(reviewer := dl.reviewer, label := dl.label_key) ORDER BY dl.reviewer) AS labels
        FROM resolved_labels r JOIN candidates c USING (candidate_id)
        JOIN decision_labels dl ON dl.candidate_id = c.candidate_id AND dl.role <> 'adjudicate'
        WHERE r.status = 'conflict' AND c.dataset = ? AND (? IS NULL OR c.task = ?)
        GROUP BY ALL ORDER BY c.candidate_id LIMIT ?
    """, [dataset, task, task, limit]).df()


def list_scored_verdicts(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Score and resolved verdict of every candidate people decided (bulk accepts excluded: they would
    only echo the threshold), for calibration. accepted is True for accept, False for reject/correct."""
    return conn.cursor().execute("""
        SELECT c.task, c.run_id, r.name AS model, r.version, c.score, (rl.verdict = 'accept') AS accepted
        FROM resolved_labels rl JOIN candidates c USING (candidate_id) JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND rl.status IN ('agreed', 'adjudicated')
          AND candidate_id IN (SELECT candidate_id FROM current_decisions
                               WHERE role IN ('review', 'audit', 'adjudicate'))
    """, [dataset]).df()


# ------------------------------------------------------------------------------------------ export

EXPORT_KINDS = ("accepted", "resolved", "candidates")
EXPORT_FORMATS = ("jsonl", "csv", "parquet")

_EXPORT_SELECT = """
    SELECT c.candidate_id, c.task, c.target_kind, c.dialogue_id, c.turn_index, c.other_dialogue_id,
           c.other_turn_index, t.asr_text AS text, c.value AS proposed_value, c.score,
           rl.status, rl.verdict, rl.label, {reviewers} AS reviewers, {roles} AS decided_by_roles, rl.adjudicator,
           rl.decided_at,
           r.name AS model_name, r.version AS model_version, r.parameters AS model_parameters,
           r.run_at AS model_run_at, c.dataset
    FROM candidates c JOIN model_runs r USING (run_id)
    LEFT JOIN resolved_labels rl USING (candidate_id)
    LEFT JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
    WHERE c.dataset = ? AND (? IS NULL OR c.task = ?)
"""
_EXPORT_WHERE = {
    "accepted": " AND rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('accept', 'correct')",
    "resolved": " AND rl.status IN ('agreed', 'adjudicated')",
    "candidates": "",
}
_COPY_OPTIONS = {"jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet"}


def export_labels(conn: duckdb.DuckDBPyConnection, path: str | Path, *, dataset: str, kind: str, fmt: str,
                  task: str | None = None) -> int:
    """Write labels with their provenance to path, streamed by DuckDB (never all in memory). Returns rows.

    kind: 'accepted' (accepted or corrected, agreed or adjudicated: training data), 'resolved' (also the
    rejections), 'candidates' (every candidate with its score and resolution, if any).
    fmt 'csv' is for spreadsheets: every text cell starting with =, +, -, @, a tab or a carriage return gets a
    leading apostrophe (analysis.csv_safety); 'jsonl' and 'parquet' hold the exact values.
    """
    if kind not in EXPORT_KINDS or fmt not in EXPORT_FORMATS:
        raise ValueError(f"kind must be one of {EXPORT_KINDS} and format one of {EXPORT_FORMATS}")
    target = str(Path(path).resolve())
    # COPY cannot take the file name as a parameter: it is quoted here (the only value spliced into SQL).
    quoted = "'" + target.replace("'", "''") + "'"
    # CSV has no lists: there they are JSON text, so every cell parses back.
    select = _EXPORT_SELECT.format(reviewers="to_json(rl.reviewers)" if fmt == "csv" else "rl.reviewers",
                                   roles="to_json(rl.roles)" if fmt == "csv" else "rl.roles")
    query, params = f"{select}{_EXPORT_WHERE[kind]}", [dataset, task, task]
    cur = conn.cursor()
    try:
        if fmt == "csv":
            query, params = _csv_safe_query(cur, query, params)
        else:
            query += " ORDER BY c.candidate_id"
        cur.execute(f"COPY ({query}) TO {quoted} ({_COPY_OPTIONS[fmt]})", params)
        row = cur.fetchone()
        return int(row[0]) if row else 0
    finally:
        cur.close()


def _csv_safe_query(cur: duckdb.DuckDBPyConnection, query: str, params: list) -> tuple[str, list]:
    """query (whose rows have a candidate_id) with analysis.csv_safety's rule applied to every text column, in
    candidate order: a spreadsheet opening the CSV must not run log text as a formula. The text columns are
    read from the query's own result types, so a column added to the export later is covered too."""
    columns = cur.execute(f"SELECT * FROM ({query}) LIMIT 0", params).description
    # Column names come from our own fixed SELECT; the rule's characters are parameters.
    cells = [f'CASE WHEN list_contains(rule.starts, left(x."{name}", 1)) THEN rule.prefix || x."{name}" '
             f'ELSE x."{name}" END AS "{name}"' if str(kind) in ("VARCHAR", "JSON") else f'x."{name}"'
             for name, kind, *_ in columns]
    guarded = (f"WITH rule AS (SELECT ?::VARCHAR[] AS starts, ?::VARCHAR AS prefix) "
               f"SELECT {', '.join(cells)} FROM ({query}) x CROSS JOIN rule ORDER BY x.candidate_id")
    return guarded, [list(csv_safety.FORMULA_STARTS), csv_safety.PREFIX, *params]


_NLU_COLUMNS = ("dialogue_id", "turn_index", "nlu_intent", "nlu_slots", "nlu_confidence")


def list_nlu_outputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """The logged NLU output of every turn of a dataset (the input of the logged-NLU label source)."""
    return conn.cursor().sql(f"SELECT {', '.join(_NLU_COLUMNS)} FROM turns WHERE dataset = ? "
                             "ORDER BY dialogue_id, turn_index", params=[dataset]).to_arrow_table()


# ------------------------------------------------------------------------------- failure points

FAILURE_GROUPS = {"domain": "t.nlu_domain", "device": "t.device_type", "locale": "t.locale",
                  "day": "strftime(date_trunc('day', t.timestamp), '%Y-%m-%d')"}


def list_failure_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Model runs that proposed failure points for turns of this dataset, newest first."""
    return conn.cursor().execute("""
        SELECT r.run_id, r.name, r.version, r.parameters, count(*) AS turns
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND c.task = 'failure_point' AND c.target_kind = 'turn'
        GROUP BY ALL ORDER BY r.run_id DESC
    """, [dataset]).df()


def list_failure_shares(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, by: str) -> pd.DataFrame:
    """Turns per (group, predicted failure point) for one run; by is one of FAILURE_GROUPS."""
    if by not in FAILURE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(FAILURE_GROUPS)}")
    # the group expression comes from the fixed FAILURE_GROUPS table; values are parameters
    sql = f"""
        SELECT coalesce({FAILURE_GROUPS[by]}, '(none)') AS grp, json_extract_string(c.value, '$') AS label,
               count(*) AS turns
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point' AND c.target_kind = 'turn'
        GROUP BY ALL ORDER BY 1, 2
    """
    return conn.cursor().execute(sql, [dataset, run_id]).df()


def list_failure_vs_gold(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> pd.DataFrame:
    """Turns per (gold failure point, predicted one) where the log has a gold label."""
    return conn.cursor().execute("""
        SELECT t.gold_failure_point AS gold, json_extract_string(c.value, '$') AS predicted, count(*) AS turns
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point' AND t.gold_failure_point IS NOT NULL
        GROUP BY ALL ORDER BY 1, 2
    """, [dataset, run_id]).df()


def list_failure_turns(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, label: str, *,
                       by: str | None = None, group: str | None = None, gold: str | None = None,
                       limit: int = 100) -> pd.DataFrame:
    """The turns behind one bar or cell: predicted label (optionally within one group, optionally with one
    gold label, '(none)' for turns without one), most confident first."""
    if by is not None and by not in FAILURE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(FAILURE_GROUPS)}")
    group_sql = f" AND coalesce({FAILURE_GROUPS[by]}, '(none)') = ?" if by else ""
    group_sql += " AND coalesce(t.gold_failure_point, '(none)') = ?" if gold is not None else ""
    sql = f"""
        SELECT c.dialogue_id, c.turn_index, c.score, t.asr_text, t.response_text, t.nlu_intent,
               t.gold_failure_point AS gold, c.candidate_id
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point'
          AND json_extract_string(c.value, '$') = ?{group_sql}
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index LIMIT ?
    """
    params = [dataset, run_id, label] + ([group] if by else []) + ([gold] if gold is not None else []) + [limit]
    return conn.cursor().execute(sql, params).df()


# What production traffic has: scoring reads only these (no reference transcript, no gold labels; the speaker
# embedding is left out too, as no turn-level model reads it and it is the largest field).
_PRODUCTION_COLUMNS = [c for c in _V1_COLUMNS
                       if not c.startswith("gold_") and c not in ("reference_text", "speaker_embedding")]


def list_turn_records(conn: duckdb.DuckDBPyConnection, dataset: str, *, production_only: bool = False) -> list[dict]:
    """Every turn of a dataset as log-format-v1 dicts (the input of the turn-level models); production_only:
    without reference_text, gold_* and speaker_embedding (what scoring may read)."""
    cur = conn.cursor()
    columns = _PRODUCTION_COLUMNS if production_only else _V1_COLUMNS
    # the column list is the format's fixed field list
    cur.execute(f"SELECT {', '.join(columns)} FROM turns WHERE dataset = ? ORDER BY dialogue_id, turn_index",
                [dataset])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def list_reviewed_labels(conn: duckdb.DuckDBPyConnection, dataset: str, task: str) -> dict[tuple[str, int], str]:
    """Turn labels people settled for a task (accepted or corrected; agreed or adjudicated), by turn."""
    rows = conn.cursor().execute("""
        SELECT c.dialogue_id, c.turn_index, json_extract_string(rl.label, '$')
        FROM resolved_labels rl JOIN candidates c USING (candidate_id)
        WHERE c.dataset = ? AND c.task = ? AND c.target_kind = 'turn' AND rl.status IN ('agreed', 'adjudicated')
          AND rl.verdict IN ('accept', 'correct')
    """, [dataset, task]).fetchall()
    return {(d, int(t)): label for d, t, label in rows}


# ---------------------------------------------------------------------------- label generation

LABEL_MODEL = "label-model"  # the model runs of `turnlens score labels` (app.label_jobs.MODEL_NAME)
# Each label task's gold label in the log, as JSON text (NULL where the log has none); fixed SQL fragments.
LABEL_GOLD = {"intent": "to_json(t.gold_intent)", "slots": "to_json(t.gold_slots)",
              "goal_start": "to_json(t.gold_goal_start)", "goal_success": "to_json(t.gold_goal_success)",
              "defect": "to_json(t.gold_failure_point <> 'NO_FAILURE')"}


def list_label_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Label-model runs that proposed candidates for this dataset, newest first, with their candidate count."""
    return conn.cursor().execute("""
        SELECT r.run_id, r.name, r.version, r.parameters, count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? GROUP BY ALL ORDER BY r.run_id DESC
    """, [dataset, LABEL_MODEL]).df()


def list_label_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, task: str) -> pd.DataFrame:
    """Every turn candidate of one run and task: candidate_id, dialogue_id, turn_index, value (its JSON text),
    score and gold (the log's gold label for the task as JSON text, None where the log has none; see
    LABEL_GOLD). In turn order."""
    if task not in LABEL_GOLD:
        raise ValueError(f"task must be one of {', '.join(LABEL_GOLD)}")
    # the gold expression comes from the fixed LABEL_GOLD table; values are parameters
    df = conn.cursor().execute(f"""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, c.value, c.score, {LABEL_GOLD[task]}::VARCHAR AS gold
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = ? AND c.target_kind = 'turn'
        ORDER BY c.dialogue_id, c.turn_index
    """, [dataset, run_id, task]).df()
    df["gold"] = df["gold"].astype(object).where(df["gold"].notna(), None)  # pandas reads NULL text as NaN
    return df


def list_intent_disagreements(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, *,
                              limit: int = 100) -> pd.DataFrame:
    """Turns whose intent candidate from this run differs from the intent the logged NLU chose (turns without
    a logged intent are left out), most confident first: dialogue_id, turn_index, request (the ASR text),
    logged_intent, model_intent, score, gold (gold_intent, None where the log has none)."""
    return conn.cursor().execute("""
        SELECT c.dialogue_id, c.turn_index, t.asr_text AS request, t.nlu_intent AS logged_intent,
               json_extract_string(c.value, '$') AS model_intent, c.score, t.gold_intent AS gold
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'intent' AND t.nlu_intent IS NOT NULL
          AND json_extract_string(c.value, '$') <> t.nlu_intent
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index LIMIT ?
    """, [dataset, run_id, limit]).df()


def below_threshold(spec: QueueSpec, threshold: float) -> QueueSpec | None:
    """The queue of spec's candidates scoring below threshold: the complement of a bulk accept at threshold
    (score >= threshold). The queue's score range is inclusive (BETWEEN), so its score_max is the largest
    double below threshold: the two sets are disjoint and together hold every candidate of spec. None when
    no score can be below threshold (threshold <= spec.score_min)."""
    if threshold <= spec.score_min:
        return None
    return replace(spec, score_max=min(math.nextafter(threshold, 0.0), spec.score_max))


# ---------------------------------------------------------------------------------------- skill routing

SKILL_ROUTER = "skill-router"  # the model runs of `turnlens score skills` (app.skill_jobs.MODEL_NAME)
# A skill candidate's review status from the resolved label: accepted (the proposal itself), rejected (a
# rejection, or a correction to another skill, which rejects the proposal); undecided otherwise (no
# decision yet, or reviewers who disagree and no adjudication). Fixed SQL fragment.
_SKILL_STATUS = """CASE WHEN rl.status IN ('agreed', 'adjudicated') AND rl.verdict = 'accept' THEN 'accepted'
                        WHEN rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('reject', 'correct')
                             THEN 'rejected'
                        ELSE 'undecided' END"""


def list_skill_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Skill-router runs with `skill` candidates for this dataset, newest first: run_id, name, version,
    parameters (JSON text: checkpoint, p, r, ...) and their candidate count."""
    return conn.cursor().execute("""
        SELECT r.run_id, r.name, r.version, r.parameters, count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? AND c.task = 'skill' GROUP BY ALL ORDER BY r.run_id DESC
    """, [dataset, SKILL_ROUTER]).df()


def list_skill_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, *,
                          limit: int = 200) -> pd.DataFrame:
    """A skill run's pseudo-label candidates, most confident first: candidate_id, dialogue_id, turn_index,
    request (the ASR text), logged_skill (response_skill), proposed_skill, score, status (accepted /
    rejected / undecided, see _SKILL_STATUS)."""
    return conn.cursor().execute(f"""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, t.asr_text AS request, t.response_skill AS logged_skill,
               json_extract_string(c.value, '$') AS proposed_skill, c.score, {_SKILL_STATUS} AS status
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'skill' AND c.target_kind = 'turn'
        ORDER BY c.score DESC, c.candidate_id LIMIT ?
    """, [dataset, run_id, limit]).df()


def count_skill_review(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> dict[str, int]:
    """How many skill candidates the run proposed for the dataset, and how many are accepted, rejected and
    undecided (see _SKILL_STATUS)."""
    rows = conn.cursor().execute(f"""
        SELECT {_SKILL_STATUS} AS status, count(*) FROM candidates c LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'skill' GROUP BY ALL
    """, [dataset, run_id]).fetchall()
    out = {"accepted": 0, "rejected": 0, "undecided": 0} | {s: int(n) for s, n in rows}
    return {"proposed": sum(out.values())} | out


def list_gold_skills(conn: duckdb.DuckDBPyConnection, dataset: str) -> dict[tuple[str, int], list[str] | None]:
    """The log's gold_skills per turn (None where the log has none), for evaluation only."""
    rows = conn.cursor().execute("SELECT dialogue_id, turn_index, gold_skills FROM turns WHERE dataset = ?",
                                 [dataset]).fetchall()
    return {(d, int(t)): (None if g is None else list(g)) for d, t, g in rows}


# ---------------------------------------------------------------------------- query rewrites

REWRITE_MODEL = "rewrite-miner"  # the model runs of `turnlens mine rewrites` (app.rewrite_jobs.MODEL_NAME)
_REWRITE_INPUT = ("dialogue_id", "turn_index", "timestamp", "user_id", "asr_text", "asr_confidence", "nlu_domain",
                  "nlu_intent", "nlu_slots", "nlu_confidence", "nlu_alt_intent", "er_status", "response_status",
                  "tts_status", "barge_in", "user_feedback")
_REWRITE_GOLD = ("gold_intent", "gold_slots", "gold_goal_start", "gold_failure_point")


def list_rewrite_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_gold: bool) -> pa.Table:
    """A dataset's turns as Arrow columns for rewrite mining: production fields, plus the gold fields the
    detector is fitted on and the replay is judged against when with_gold."""
    columns = _REWRITE_INPUT + (_REWRITE_GOLD if with_gold else ())
    # the column list is one of two fixed tuples above
    return conn.cursor().sql(
        f"SELECT {', '.join(columns)} FROM turns WHERE dataset = ? ORDER BY dialogue_id, turn_index",
        params=[dataset]).to_arrow_table()


def insert_rewrite_run(conn: duckdb.DuckDBPyConnection, *, candidates: pa.Table, run: dict, rewrites: list[dict],
                       evidence: list[dict], states: list[dict], transitions: list[dict],
                       metrics: list[dict]) -> int:
    """Store one mining run atomically: its `rewrite` candidates (one per rewrite, creating the model run),
    the run's row and its rewrites, evidence, states, transitions and metrics. Rewrites name their candidate
    by target_key. Returns the run id. A run already stored (same model, version and parameters) raises
    IngestConflictError and writes nothing."""
    candidates = _checked_distributions(candidates)
    cur = conn.cursor()
    try:
        with transaction(cur):
            names = candidates.column("model_name").to_pylist()[:1]
            if not names:
                raise ValueError("a rewrite run needs at least one candidate (no rewrites were mined)")
            key = (names[0], candidates.column("model_version")[0].as_py(),
                   candidates.column("model_parameters")[0].as_py())
            if cur.execute("SELECT 1 FROM model_runs r JOIN rewrite_runs USING (run_id) WHERE r.name = ? AND "
                           "r.version = ? AND r.parameters = ?", list(key)).fetchone():
                raise IngestConflictError(["this rewrite run (same data and parameters) is already stored"])
            _insert_candidates(cur, candidates)
            run_id = cur.execute("SELECT run_id FROM model_runs WHERE name = ? AND version = ? AND parameters = ?",
                                 list(key)).fetchone()[0]
            ids = dict(cur.execute("SELECT target_key, candidate_id FROM candidates WHERE run_id = ? AND "
                                   "task = 'rewrite'", [run_id]).fetchall())
            unnamed = [r["source"] for r in rewrites if r["target_key"] not in ids]
            if unnamed:
                raise ValueError(f"{len(unnamed)} rewrite(s) name no candidate of the run, e.g. {unnamed[0]!r}")
            cur.execute("""INSERT INTO rewrite_runs (run_id, dataset, states, evaluate_from, n_mining_turns,
                               n_eval_turns, n_rephrases, n_chains, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [run_id, run["dataset"], run["states"], run["evaluate_from"], run["n_mining_turns"],
                         run["n_eval_turns"], run["n_rephrases"], run["n_chains"], run["summary"]])
            _insert_rows(cur, "rewrites", [{**{k: v for k, v in r.items() if k != "target_key"},
                                            "candidate_id": ids[r["target_key"]], "run_id": run_id}
                                           for r in rewrites])
            for table, rows in (("rewrite_evidence", evidence), ("rewrite_states", states),
                                ("rewrite_transitions", transitions), ("rewrite_metrics", metrics)):
                _insert_rows(cur, table, [{**r, "run_id": run_id} for r in rows])
            return int(run_id)
    finally:
        cur.close()


_REWRITE_TABLES = frozenset({"rewrites", "rewrite_evidence", "rewrite_states", "rewrite_transitions",
                             "rewrite_metrics"})


def _insert_rows(cur: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    """Append dicts to one of the rewrite tables through Arrow (fast for many rows)."""
    if table not in _REWRITE_TABLES:
        raise ValueError(f"not a rewrite table: {table}")
    if not rows:
        return
    arrow = pa.Table.from_pylist(rows)
    cur.register("incoming_rows", arrow)
    try:
        cols = ", ".join(arrow.column_names)
        # table is one of _REWRITE_TABLES and the columns are the dict keys our own code builds
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming_rows")
    finally:
        cur.unregister("incoming_rows")


def list_rewrite_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Mining runs of a dataset, newest first."""
    return conn.cursor().execute("""
        SELECT w.run_id, r.version, r.created_at, w.states, w.evaluate_from, w.n_mining_turns, w.n_eval_turns,
               w.n_rephrases, w.n_chains, w.summary, (SELECT count(*) FROM rewrites x WHERE x.run_id = w.run_id)
               AS n_rewrites
        FROM rewrite_runs w JOIN model_runs r USING (run_id) WHERE w.dataset = ? ORDER BY w.run_id DESC
    """, [dataset]).df()


def list_rewrites(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    """A run's rewrites with their review status (accepted / rejected / corrected / conflict / undecided)
    and the reviewed rewrite text where someone corrected it; most support x gain first."""
    return conn.cursor().execute("""
        SELECT w.*, CASE WHEN rl.status = 'conflict' THEN 'conflict'
                         WHEN rl.verdict = 'accept' THEN 'accepted' WHEN rl.verdict = 'reject' THEN 'rejected'
                         WHEN rl.verdict = 'correct' THEN 'corrected' ELSE 'undecided' END AS status,
               json_extract_string(rl.label, '$.rewrite') AS reviewed_rewrite
        FROM rewrites w LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE w.run_id = ? ORDER BY w.source_support * w.gain DESC, w.source
    """, [run_id]).df()


def list_rewrite_evidence(conn: duckdb.DuckDBPyConnection, run_id: int, source: str) -> pd.DataFrame:
    """A rewrite's evidence sessions: the source turn and the later turn of the same chain with the target."""
    return conn.cursor().execute("""
        SELECT e.rank, e.dialogue_id, e.turn_index, s.asr_text AS source_request, e.other_dialogue_id,
               e.other_turn_index, o.asr_text AS target_request, s.timestamp
        FROM rewrite_evidence e
        JOIN turns s ON s.dialogue_id = e.dialogue_id AND s.turn_index = e.turn_index
        JOIN turns o ON o.dialogue_id = e.other_dialogue_id AND o.turn_index = e.other_turn_index
        WHERE e.run_id = ? AND e.source = ? ORDER BY e.rank
    """, [run_id, source]).df()


def list_rewrite_graph(conn: duckdb.DuckDBPyConnection, run_id: int, source: str, *, depth: int = 2) -> pd.DataFrame:
    """The transitions within ``depth`` moves of a source, with each edge's probability (its count over the
    from-state's outgoing count) and the states' support and success probability."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    return conn.cursor().execute("""
        WITH RECURSIVE reach(state, d) AS (
            SELECT ?::VARCHAR, 0
            UNION
            SELECT t.to_state, r.d + 1 FROM reach r JOIN rewrite_transitions t
              ON t.run_id = ? AND t.from_state = r.state
            WHERE r.d < ? AND t.to_state NOT IN ('<SUCCESS>', '<FAILURE>')
        ), nodes AS (SELECT state, min(d) AS d FROM reach GROUP BY state),
        out AS (SELECT from_state, sum(n) AS total FROM rewrite_transitions WHERE run_id = ? GROUP BY from_state)
        SELECT t.from_state, t.to_state, t.n, t.n / o.total AS probability, nd.d AS depth,
               fs.support AS from_support, fs.success AS from_success, ts.success AS to_success
        FROM rewrite_transitions t JOIN nodes nd ON nd.state = t.from_state
        JOIN out o ON o.from_state = t.from_state
        LEFT JOIN rewrite_states fs ON fs.run_id = t.run_id AND fs.state = t.from_state
        LEFT JOIN rewrite_states ts ON ts.run_id = t.run_id AND ts.state = t.to_state
        WHERE t.run_id = ? AND nd.d < ?
        ORDER BY nd.d, t.from_state, t.n DESC, t.to_state
    """, [source, run_id, depth, run_id, run_id, depth]).df()


def list_rewrite_metrics(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT rewriter, grouping, grp, metric, value, ci_low, ci_high FROM rewrite_metrics
        WHERE run_id = ? ORDER BY rewriter, grouping, grp, metric
    """, [run_id]).df()


def list_approved_rewrites(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    """The rewrite table to deploy: rewrites people accepted or corrected (agreed or adjudicated), with the
    rewrite text they settled on."""
    return conn.cursor().execute("""
        SELECT w.source, json_extract_string(rl.label, '$.rewrite') AS rewrite, w.target AS mined_rewrite,
               rl.verdict, w.source_support, w.source_success, w.target_success, w.gain, w.wins, w.losses,
               w.retire_probability,
               array_to_string(rl.reviewers, ',') AS reviewers, rl.decided_at
        FROM rewrites w JOIN resolved_labels rl USING (candidate_id)
        WHERE w.run_id = ? AND rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('accept', 'correct')
        ORDER BY w.source
    """, [run_id]).df()



# ---------------------------------------------------------------------------- speech-recognition disparity

def list_speaker_turns(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """Per turn with a reference transcript and a speaker: the speaker, where the device was, the stored word
    error counts and the voice embedding (the disparity analysis aggregates them per speaker)."""
    return conn.cursor().sql("""
        SELECT speaker_id, latitude, longitude, wer_sub, wer_del, wer_ins, wer_ref_words, speaker_embedding
        FROM turns
        WHERE dataset = ? AND wer_ref_words >= 0 AND speaker_id IS NOT NULL
        ORDER BY speaker_id, dialogue_id, turn_index
    """, params=[dataset]).to_arrow_table()


def list_worst_utterances(conn: duckdb.DuckDBPyConnection, dataset: str, speakers: list[str], *,
                          limit: int = 50) -> pd.DataFrame:
    """The utterances of these speakers with the most word errors (then the highest WER): the evidence behind a
    region's or cohort's WER, with both transcripts for the alignment."""
    return conn.cursor().execute("""
        SELECT dialogue_id, turn_index, speaker_id, reference_text, asr_text, wer_sub, wer_del, wer_ins,
               wer_ref_words, (wer_sub + wer_del + wer_ins) / nullif(wer_ref_words, 0) AS wer
        FROM turns
        WHERE dataset = ? AND wer_ref_words > 0 AND speaker_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY wer_sub + wer_del + wer_ins DESC, wer DESC, dialogue_id, turn_index
        LIMIT ?
    """, [dataset, list(speakers), int(limit)]).df()


def list_speaker_utterances(conn: duckdb.DuckDBPyConnection, dataset: str, speakers: list[str], *,
                            limit: int = 500) -> pd.DataFrame:
    """Utterances of these speakers (newest first), for a selection of speakers on the page."""
    return conn.cursor().execute("""
        SELECT dialogue_id, turn_index, timestamp, speaker_id, asr_text, reference_text,
               (wer_sub + wer_del + wer_ins) / nullif(wer_ref_words, 0) AS wer
        FROM turns
        WHERE dataset = ? AND speaker_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY timestamp DESC, dialogue_id, turn_index
        LIMIT ?
    """, [dataset, list(speakers), int(limit)]).df()
