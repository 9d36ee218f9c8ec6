"""A batch of log rows read from Parquet parts -> the family's score inputs, exactly as the local path makes them.

The local score action reads a dataset's turns from the store (the family's ``read_score``) after ingest validated
and normalised them. A batch read by an engine goes the same way, through a throwaway in-memory store: the batch is
written to a temporary Parquet file and ingested (app.ingest.ingest_files: the log reader's checks, the store's
types), and the family's own ``read_score`` reads it back. So the inputs are the local path's (types, order,
production fields only, each family's filters such as the rescorer's scored n-best lists) without a second copy of
that mapping. It costs a small DuckDB and a file per batch (well under a second): small beside scoring a few
thousand turns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.logs import LogFormatError, Problem, read_logs
from analysis.parquet_parts import is_url
from app import store
from app.ingest import ingest_files
from app.jobs.registry import Family

_DATASET = "batch"
# What scoring never reads (app/store/sql.PRODUCTION_COLUMNS leaves them out): dropped before the batch is stored,
# so it cannot, and no word error rate is computed for nothing.
_EVALUATION_ONLY = ("reference_text", "speaker_embedding")


class NothingToScore(Exception):
    """The batch holds no turn this family scores (e.g. no scored n-best list for the rescorer)."""


def _located(exc: LogFormatError, parts: Sequence[str]) -> LogFormatError:
    """The batch's problems said where they are in the input: the local parts are read again (only on this failure
    path), so each problem names its part and row; URL parts are named with the batch's problems."""
    if parts and not any(is_url(p) for p in parts):
        try:
            read_logs(list(parts))
        except LogFormatError as exact:
            return exact
    where = ", ".join(parts) or "(input)"
    return LogFormatError([Problem(where, None, None, "a batch of these parts is not a valid log: " + "; ".join(
        p.message if p.field is None else f"{p.field}: {p.message}" for p in exc.problems[:5]))])


def score_inputs(family: Family, raw: pa.Table, options: dict, parts: Sequence[str] = ()) -> object:
    """The family's score inputs for one batch of raw log rows (log-format columns as read from Parquet).

    parts: the files the rows came from, for error messages. Raises LogFormatError for an invalid batch (naming
    the part and row) and NothingToScore when the family finds nothing to score in it."""
    raw = raw.drop_columns([c for c in _EVALUATION_ONLY if c in raw.column_names])
    with tempfile.TemporaryDirectory(prefix="turnlens-batch-") as work:
        path = Path(work) / "batch.parquet"
        pq.write_table(raw, path)
        conn = store.connect(":memory:")
        try:
            try:
                ingest_files(conn, [path], dataset=_DATASET, allow_missing_audio=True)
            except LogFormatError as exc:
                raise _located(exc, parts) from None
            try:
                return family.read_score(conn, _DATASET, options)
            except ValueError as exc:  # the family's "has no turns / no n-best lists to score": an empty batch
                raise NothingToScore(str(exc).replace(f"dataset {_DATASET!r} ", "this batch ")) from None
        finally:
            conn.close()
