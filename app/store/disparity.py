"""The SQL of stored disparity reports (m007): ``disparity_reports`` (one row per dataset, data fingerprint
(``get_data_fingerprint``), options and format, with the scalars as JSON), ``disparity_report_parts`` (each
frame of a report as Arrow IPC bytes) and ``disparity_layouts`` (the voices' UMAP layout per dataset and
voices key).

What is stored is written by analysis/disparity/snapshot.py and only read back as data (JSON and Arrow, never
pickle). A key is stored once: the report of the same data with the same options is the same report, so a
second writer (the job and a page at the same moment) stores nothing and gets the first one's id. Used as a
module: ``from app.store import disparity as store_disparity``.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd

from analysis import wer_normalise
from app.store import sql, transaction
from app.store.turns import get_wer_normaliser


def get_data_fingerprint(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None) -> str:
    """The fingerprint of the dataset's turns as the disparity analysis reads them (the rows and columns of
    ``list_speaker_turns`` under normaliser, None: the dataset's default; their order keys included): the key a
    stored report is matched by, so a report made under one normaliser is never taken for another's. Computed in
    the database (about 50 ms for 200k turns) so a stored report is found without reading the turns. A sum of
    row hashes: any changed, added or removed row changes it, whatever the order of the rows. Under ``raw`` it
    reads as before m010 (reports stored then still match); another normaliser's name is part of it."""
    normaliser = normaliser or get_wer_normaliser(conn, dataset)
    source = sql.turns_with_wer(normaliser)
    # source: sql.turns_with_wer's checked subquery
    count, total = conn.cursor().execute(f"""
        SELECT count(*), coalesce(sum(hash(dialogue_id, turn_index, speaker_id, latitude, longitude, wer_sub,
                                           wer_del, wer_ins, wer_ref_words, speaker_embedding)::HUGEINT), 0)
        FROM {source} t
        WHERE dataset = ? AND wer_ref_words >= 0 AND speaker_id IS NOT NULL
    """, [dataset]).fetchone()
    named = "" if normaliser == wer_normalise.RAW else f"{normaliser}:"
    return f"turns:{named}{count}:{total:x}"


def insert_report(conn: duckdb.DuckDBPyConnection, *, dataset: str, data_fingerprint: str, options: str,
                  format: int, meta: str, parts: Mapping[str, bytes], computed_by: str,
                  analysis_id: int | None = None, seconds: float | None = None) -> int:
    """Store a report with its parts, unless one with the same key (dataset, data_fingerprint, options, format)
    is stored already; returns the report_id of the stored one. computed_by: "job" or "page"."""
    cur = conn.cursor()
    try:
        try:
            with transaction(cur):
                row = cur.execute("""
                    INSERT INTO disparity_reports (dataset, data_fingerprint, options, format, meta, computed_by,
                                                   analysis_id, seconds)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING RETURNING report_id
                """, [dataset, data_fingerprint, options, int(format), meta, computed_by, analysis_id,
                      seconds]).fetchone()
                if row is not None:
                    cur.executemany("INSERT INTO disparity_report_parts (report_id, part, arrow) VALUES (?, ?, ?)",
                                    [[row[0], name, data] for name, data in parts.items()])
        except (duckdb.ConstraintException, duckdb.TransactionException):
            row = None  # another transaction stored the same key meanwhile: theirs is the report
        found = cur.execute("""
            SELECT report_id FROM disparity_reports
            WHERE dataset = ? AND data_fingerprint = ? AND options = ? AND format = ?
        """, [dataset, data_fingerprint, options, int(format)]).fetchone()
    finally:
        cur.close()
    if found is None:
        raise RuntimeError(f"the disparity report of {dataset!r} could not be stored")
    return int(found[0])


def get_report(conn: duckdb.DuckDBPyConnection, dataset: str, data_fingerprint: str, options: str,
               format: int) -> dict | None:
    """The stored report of this key: {report_id, meta, parts {name: bytes}, computed_by, analysis_id, seconds,
    created_at}, or None."""
    cur = conn.cursor()
    try:
        row = cur.execute("""
            SELECT report_id, meta, computed_by, analysis_id, seconds, created_at FROM disparity_reports
            WHERE dataset = ? AND data_fingerprint = ? AND options = ? AND format = ?
        """, [dataset, data_fingerprint, options, int(format)]).fetchone()
        if row is None:
            return None
        parts = dict(cur.execute("SELECT part, arrow FROM disparity_report_parts WHERE report_id = ?",
                                 [row[0]]).fetchall())
    finally:
        cur.close()
    report_id, meta, computed_by, analysis_id, seconds, created_at = row
    return {"report_id": int(report_id), "meta": meta, "parts": parts, "computed_by": computed_by,
            "analysis_id": None if analysis_id is None else int(analysis_id), "seconds": seconds,
            "created_at": created_at}


def get_report_by_id(conn: duckdb.DuckDBPyConnection, report_id: int) -> dict | None:
    """A stored report by id (as get_report, plus dataset and data_fingerprint), or None."""
    cur = conn.cursor()
    try:
        row = cur.execute("""SELECT dataset, data_fingerprint, options, format FROM disparity_reports
                             WHERE report_id = ?""", [int(report_id)]).fetchone()
    finally:
        cur.close()
    if row is None:
        return None
    found = get_report(conn, row[0], row[1], row[2], row[3])
    return None if found is None else {**found, "dataset": row[0], "data_fingerprint": row[1]}


def get_latest_report_id(conn: duckdb.DuckDBPyConnection, dataset: str, data_fingerprint: str,
                         format: int) -> int | None:
    """The newest stored report of a dataset for this data (any options), or None."""
    row = conn.cursor().execute("""
        SELECT max(report_id) FROM disparity_reports WHERE dataset = ? AND data_fingerprint = ? AND format = ?
    """, [dataset, data_fingerprint, int(format)]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def list_reports(conn: duckdb.DuckDBPyConnection, dataset: str | None = None) -> pd.DataFrame:
    """Stored reports, newest first: report_id, dataset, data_fingerprint, options (JSON), format, computed_by,
    analysis_id, seconds, created_at."""
    return conn.cursor().execute("""
        SELECT report_id, dataset, data_fingerprint, options, format, computed_by, analysis_id, seconds, created_at
        FROM disparity_reports WHERE (?::VARCHAR IS NULL OR dataset = ?)
        ORDER BY created_at DESC, report_id DESC
    """, [dataset, dataset]).df()


def insert_layout(conn: duckdb.DuckDBPyConnection, *, dataset: str, voices_key: str, method: str, arrow: bytes,
                  seconds: float | None = None) -> bool:
    """Store a voices layout unless one is stored for (dataset, voices_key); True when this call stored it."""
    cur = conn.cursor()
    try:
        with transaction(cur):
            row = cur.execute("""
                INSERT INTO disparity_layouts (dataset, voices_key, method, arrow, seconds) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING RETURNING voices_key
            """, [dataset, voices_key, method, arrow, seconds]).fetchone()
    except (duckdb.ConstraintException, duckdb.TransactionException):
        return False  # stored by another transaction meanwhile
    finally:
        cur.close()
    return row is not None


def get_layout(conn: duckdb.DuckDBPyConnection, dataset: str, voices_key: str) -> dict | None:
    """The stored layout {arrow, method, seconds, created_at} of (dataset, voices_key), or None."""
    row = conn.cursor().execute("""
        SELECT arrow, method, seconds, created_at FROM disparity_layouts WHERE dataset = ? AND voices_key = ?
    """, [dataset, voices_key]).fetchone()
    if row is None:
        return None
    return {"arrow": bytes(row[0]), "method": row[1], "seconds": row[2], "created_at": row[3]}


def list_layout_keys(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    """The voices keys of the layouts stored for a dataset."""
    return [row[0] for row in conn.cursor().execute(
        "SELECT voices_key FROM disparity_layouts WHERE dataset = ? ORDER BY voices_key", [dataset]).fetchall()]
