"""Reads and writes in batches, for jobs over logs too large to hold at once (memory flat in the log size):
turn records a batch of whole dialogues at a time, and candidate batches written one transaction each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa

from app.store import sql
from app.store.candidates import CandidateImportResult, insert_candidates


def iter_turn_records(conn: duckdb.DuckDBPyConnection, dataset: str, *, batch_dialogues: int = 10_000,
                      production_only: bool = True, fields: Sequence[str] | None = None) -> Iterator[list[dict]]:
    """The records of list_turn_records, in the same (dialogue_id, turn_index) order, as lists of the turns of
    at most batch_dialogues whole dialogues (a model reading a turn's following turns never sees a dialogue
    cut). fields: only these production fields in each record (a model that reads a few of them is spared
    turning the others into Python objects: 20 s of a million turns' 26)."""
    if fields is not None:
        columns = sql.production_columns(fields)
    else:
        columns = sql.PRODUCTION_RECORD_COLUMNS if production_only else sql.RECORD_COLUMNS
    return iter_dialogue_pages(conn, dataset, columns=columns, batch_dialogues=batch_dialogues)


def iter_dialogue_pages(conn: duckdb.DuckDBPyConnection, dataset: str, *, columns: str, where: str = "TRUE",
                        batch_dialogues: int) -> Iterator[list[dict]]:
    """The dataset's turns matching `where` (columns and where: fragments of app/store/sql.py, never values),
    as dicts in (dialogue_id, turn_index) order, the turns of at most batch_dialogues dialogues at a time. Each
    page is its own short query (keyset paging on dialogue_id), so no cursor stays open between pages and a
    write on the same connection in between is fine."""
    if batch_dialogues < 1:
        raise ValueError(f"batch_dialogues must be at least 1, got {batch_dialogues}")
    after: str | None = None
    while True:
        cur = conn.cursor()
        try:
            cur.execute(sql.dialogue_page_sql(columns, where), [dataset, after, after, batch_dialogues, dataset])
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            cur.close()
        if not rows:
            return
        batch = [dict(zip(names, row, strict=True)) for row in rows]
        after = batch[-1]["dialogue_id"]
        yield batch


def insert_candidate_batches(conn: duckdb.DuckDBPyConnection, batches: Iterable[pa.Table]
                             ) -> CandidateImportResult:
    """insert_candidates over a stream of candidate tables, one transaction per batch: each batch is stored
    whole or not at all, and a failure stops at that batch, keeping the batches before it.

    Why not one transaction for the whole stream: DuckDB holds a transaction's uncommitted rows in memory
    (about 1 GB per million candidates with their vectors), which is what made memory grow with the log.
    Stopping half-way is safe to repeat: the import skips candidates already stored with the same value, so
    rerunning the same scoring stores the rest (and a different result for a stored one is refused as ever).
    Only one batch is held at a time on the Python side."""
    totals = [0, 0, 0, 0]
    for batch in batches:
        result = insert_candidates(conn, batch)
        for i, n in enumerate((result.rows_read, result.rows_added, result.rows_already_present,
                               result.distributions_added)):
            totals[i] += n
    return CandidateImportResult(*totals)
