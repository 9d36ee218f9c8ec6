"""The labels export: labels with their provenance, streamed by DuckDB to JSONL, CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis import csv_safety
from app.store import sql

EXPORT_KINDS = ("accepted", "resolved", "candidates")
EXPORT_FORMATS = ("jsonl", "csv", "parquet")


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
    query, params = sql.export_query(kind, fmt), [dataset, task, task]
    cur = conn.cursor()
    try:
        if fmt == "csv":
            query, params = _csv_safe_query(cur, query, params)
        # sql.copy_to quotes the file name, which COPY cannot take as a parameter
        cur.execute(sql.copy_to(query, target, fmt), params)
        row = cur.fetchone()
        return int(row[0]) if row else 0
    finally:
        cur.close()


def _csv_safe_query(cur: duckdb.DuckDBPyConnection, query: str, params: list) -> tuple[str, list]:
    """query (whose rows have a candidate_id) with analysis.csv_safety's rule applied to every text column, in
    candidate order: a spreadsheet opening the CSV must not run log text as a formula. The text columns are
    read from the query's own result types, so a column added to the export later is covered too."""
    columns = cur.execute(sql.no_rows(query), params).description
    return sql.csv_guarded(query, columns), [list(csv_safety.FORMULA_STARTS), csv_safety.PREFIX, *params]
