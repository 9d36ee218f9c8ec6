"""Ingestion: validate log files, add per-turn WER counts, append them to the store in one transaction.

Shared by ``turnlens ingest`` and the app's Import page, so both refuse and accept exactly the same input.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis.logs import ParsedLog
from analysis.wer import error_counts
from app import store
from app.isolated_read import read_logs_isolated

# progress(stage, done, total): stage is "read", "wer" or "write"; total may be None when unknown.
Progress = Callable[[str, int, int | None], None]

_WER_CHUNK = 50_000


def with_wer_counts(table: pa.Table, progress: Progress | None = None) -> pa.Table:
    """Append wer_sub, wer_del, wer_ins, wer_ref_words (-1 where there is no reference_text)."""
    n = table.num_rows
    parts: list[tuple] = []
    for start in range(0, n, _WER_CHUNK):
        chunk = table.slice(start, _WER_CHUNK)
        parts.append(error_counts(chunk.column("reference_text").to_pylist(),
                                  chunk.column("asr_text").to_pylist()))
        if progress:
            progress("wer", min(start + _WER_CHUNK, n), n)
    for i, name in enumerate(("wer_sub", "wer_del", "wer_ins", "wer_ref_words")):
        values = [p[i] for p in parts]
        table = table.append_column(name, pa.chunked_array([pa.array(v, type=pa.int32()) for v in values]
                                                          or [pa.array([], type=pa.int32())]))
    return table


def fingerprint(paths: Sequence[str | Path]) -> str:
    """sha256 over the files' bytes, in order: the same input gives the same fingerprint."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def ingest_files(conn: duckdb.DuckDBPyConnection, paths: Sequence[str | Path], *, dataset: str,
                 imported_by: str | None = None, source_names: Sequence[str] | None = None,
                 progress: Progress | None = None) -> tuple[store.IngestResult, dict[str, int]]:
    """Validate and store paths as one input. Returns the result and the unknown fields kept in extras.

    Raises analysis.logs.LogFormatError or store.IngestConflictError; in both cases nothing is written. The
    files are read in a child process (app/isolated_read.py): no input can crash the caller.
    source_names replaces the paths in messages and the import log (e.g. an upload's original name).
    """
    if not dataset or not dataset.strip():
        raise ValueError("dataset name must not be empty")
    # The parsed table maps a file in this folder: it stays until the insert is done.
    with tempfile.TemporaryDirectory(prefix="turnlens-read-") as workdir:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Hashing releases the GIL: it runs beside parsing instead of after it.
            digest = pool.submit(fingerprint, paths)
            # In a child process: a crash in a parsing library must not take the server down with it.
            parsed = read_logs_isolated(
                paths, workdir, names=source_names,
                progress=(lambda done: progress("read", done, None)) if progress else None)
        return _store(conn, parsed, paths, dataset=dataset, imported_by=imported_by, source_names=source_names,
                      digest=digest.result(), progress=progress)


def _store(conn: duckdb.DuckDBPyConnection, parsed: ParsedLog, paths: Sequence[str | Path], *, dataset: str,
           imported_by: str | None, source_names: Sequence[str] | None, digest: str, progress: Progress | None
           ) -> tuple[store.IngestResult, dict[str, int]]:
    table = with_wer_counts(parsed.table, progress)
    if progress:
        progress("write", 0, table.num_rows)
    try:
        result = store.insert_turns(conn, table, dataset=dataset.strip(),
                                    sources=list(source_names or [str(p) for p in paths]),
                                    content_sha256=digest, unknown_fields=parsed.unknown_fields,
                                    imported_by=imported_by)
    except store.IngestConflictError as exc:
        # Say where each contradicting turn is in the input: FILE:LINE: field: message.
        located = []
        for row, field, message in exc.rows:
            if row is None or parsed.locate is None:
                located.append(message)
            else:
                file, line = parsed.locate(row)
                located.append(f"{file}:{line}: {field}: {message}")
        raise store.IngestConflictError(located, exc.rows) from None
    if progress:
        progress("write", table.num_rows, table.num_rows)
    return result, parsed.unknown_fields


class _BenchmarkDatabase:
    """analysis.disparity.benchmark.AppDatabase over one open connection."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def ingest(self, path: Path, dataset: str) -> int:
        return ingest_files(self._conn, [path], dataset=dataset)[0].rows_read

    def speaker_turns(self, dataset: str):
        return store.list_speaker_turns(self._conn, dataset)

    def fingerprint(self, path: Path) -> str:
        return fingerprint([path])


@contextmanager
def benchmark_database(path: Path) -> Iterator[_BenchmarkDatabase]:
    """A new database at path, with the app's ingest and speaker read (the disparity benchmark's data path)."""
    conn = store.connect(path)
    try:
        yield _BenchmarkDatabase(conn)
    finally:
        conn.close()
