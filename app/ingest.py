"""Ingestion: validate log files, check their audio files, add per-turn WER counts (under every normaliser,
analysis/wer_normalise.py), append them to the store in one transaction.

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

from analysis import wer_normalise
from analysis.log_format import is_audio_url
from analysis.logs import LogFormatError, ParsedLog, Problem, audio_problems
from analysis.parquet_parts import is_url, list_parts, names_parts
from analysis.wer import turn_counts
from app import store
from app.isolated_read import read_logs_isolated
from app.settings import audio_root as configured_audio_root

# progress(stage, done, total): stage is "read", "wer" or "write"; total may be None when unknown.
Progress = Callable[[str, int, int | None], None]

_WER_CHUNK = 50_000


_WER_FIELDS = ("wer_sub", "wer_del", "wer_ins", "wer_ref_words", "char_edits", "ref_chars")


def with_wer_counts(table: pa.Table, progress: Progress | None = None,
                    normalisers: Sequence[str] = wer_normalise.NAMES) -> tuple[pa.Table, pa.Table]:
    """The table with wer_sub, wer_del, wer_ins, wer_ref_words appended (the raw counts, -1 where there is no
    reference_text), and the counts of every turn with a reference under each normaliser, one row per turn and
    normaliser: dialogue_id, turn_index, normaliser, wer_sub, wer_del, wer_ins, wer_ref_words, char_edits,
    ref_chars (store.insert_turns writes them to turn_wer). ``raw`` is always counted: the turns' own columns
    hold it."""
    names = [wer_normalise.RAW, *(n for n in normalisers if n != wer_normalise.RAW)]
    n = table.num_rows
    refs, hyps = table.column("reference_text"), table.column("asr_text")
    has_ref = refs.is_valid()
    keys = table.select(["dialogue_id", "turn_index"]).filter(has_ref)
    raw_columns: list[list[pa.Array]] = [[] for _ in range(4)]
    rows = []
    for k, name in enumerate(names):
        parts: list[list[pa.Array]] = [[] for _ in _WER_FIELDS]
        for start in range(0, n, _WER_CHUNK):
            c = turn_counts(refs.slice(start, _WER_CHUNK).to_pylist(), hyps.slice(start, _WER_CHUNK).to_pylist(),
                            normaliser=name)
            for i, values in enumerate((c.sub, c.dele, c.ins, c.ref_words, c.char_edits, c.ref_chars)):
                parts[i].append(pa.array(values, type=pa.int32()))
            if progress:
                progress("wer", k * n + min(start + _WER_CHUNK, n), n * len(names))
        columns = [pa.chunked_array(p, type=pa.int32()) for p in parts]
        if name == wer_normalise.RAW:
            raw_columns = columns[:4]
        rows.append(pa.table({"dialogue_id": keys.column("dialogue_id"), "turn_index": keys.column("turn_index"),
                              "normaliser": pa.array([name] * keys.num_rows, type=pa.string()),
                              **{f: col.filter(has_ref) for f, col in zip(_WER_FIELDS, columns, strict=True)}}))
    for name, column in zip(_WER_FIELDS[:4], raw_columns, strict=True):
        table = table.append_column(name, column)
    return table, pa.concat_tables(rows)


def fingerprint(paths: Sequence[str | Path]) -> str:
    """sha256 over the files' bytes, in order: the same input gives the same fingerprint."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


class AudioFilesError(LogFormatError):
    """Audio paths of the input that cannot be used (FILE:LINE: audio: ...): a path that resolves outside the
    audio root, which nothing accepts, or a file that does not exist, which ``allow_missing_audio`` accepts.
    Nothing was written. ``root`` is the audio root they were checked under."""

    def __init__(self, problems: Sequence[Problem], *, root: Path):
        super().__init__(problems)
        self.root = root


def check_audio(parsed: ParsedLog, root: str | Path, *, allow_missing: bool = False) -> None:
    """Raise AudioFilesError when an ``audio`` path of the read log resolves outside ``root`` (through a symbolic
    link: the reader has refused ``..``, absolute paths and the like already) or, unless allow_missing, names no
    file under it. URLs are passed through unchecked (nothing is fetched). A root that is not a folder is one
    problem, not one per turn; with allow_missing it is no problem at all (every file is then missing, and nothing
    can leave a folder that is not there)."""
    audio = parsed.table.column("audio")
    if audio.null_count == len(audio):
        return
    root = Path(root)
    if not root.is_dir():
        if allow_missing:
            return
        rows = [r for r, v in enumerate(audio.to_pylist()) if v is not None and not is_audio_url(v)]
        if not rows:
            return
        file, line = parsed.locate(rows[0]) if parsed.locate else (parsed.files[0], rows[0] + 1)
        named = "1 turn names" if len(rows) == 1 else f"{len(rows):,} turns name"
        raise AudioFilesError([Problem(file, line, "audio", f"{named} an audio file under the audio root "
                                                            f"{str(root)!r}, which is not a folder",
                                       count=len(rows))], root=root)
    problems = audio_problems(parsed, root, allow_missing=allow_missing)
    if problems:
        raise AudioFilesError(problems, root=root)


def expand_parts(paths: Sequence[str | Path]) -> list[str]:
    """Each path as given, or, for a folder or glob of Parquet parts (what Spark, Ray and Hive write; hive
    partitioning by day is common), its parts in a stable order (analysis.parquet_parts): the parts are then read
    as one input, so an error names the part and its row, and a dialogue split across parts is checked whole.
    A URL is refused (LogFormatError): ingest reads local files; `turnlens score --engine ray` reads URLs."""
    out: list[str] = []
    for path in paths:
        if not names_parts(path):
            out.append(str(path))
            continue
        if is_url(str(path)):
            raise LogFormatError([Problem(str(path), None, None, "a URL: ingest reads local files (copy the parts "
                                                                 "here, or score them where they are with "
                                                                 "turnlens score --engine ray)")])
        out.extend(part.path for part in list_parts(path))
    return out


def ingest_files(conn: duckdb.DuckDBPyConnection, paths: Sequence[str | Path], *, dataset: str,
                 imported_by: str | None = None, source_names: Sequence[str] | None = None,
                 progress: Progress | None = None, audio_root: str | Path | None = None,
                 allow_missing_audio: bool = False,
                 wer_normaliser: str = wer_normalise.DEFAULT_FOR_NEW_DATASETS
                 ) -> tuple[store.IngestResult, dict[str, int]]:
    """Validate and store paths as one input. Returns the result and the unknown fields kept in extras.

    Raises analysis.logs.LogFormatError (AudioFilesError for the audio files) or store.IngestConflictError; in
    every case nothing is written. The files are read in a child process (app/isolated_read.py): no input can
    crash the caller. source_names replaces the paths in messages and the import log (e.g. an upload's original
    name). The turns' audio files must exist under audio_root (default: the setting, app.settings.audio_root),
    unless allow_missing_audio (check_audio). wer_normaliser: the normaliser the dataset's WER figures use by
    default, if the dataset is new (every normaliser's counts are stored either way).
    """
    if not dataset or not dataset.strip():
        raise ValueError("dataset name must not be empty")
    wer_normalise.get(wer_normaliser)  # an unknown name is refused before any work
    if source_names is None:
        paths = expand_parts(paths)
    # The parsed table maps a file in this folder: it stays until the insert is done.
    with tempfile.TemporaryDirectory(prefix="turnlens-read-") as workdir:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Hashing releases the GIL: it runs beside parsing instead of after it.
            digest = pool.submit(fingerprint, paths)
            # In a child process: a crash in a parsing library must not take the server down with it.
            parsed = read_logs_isolated(
                paths, workdir, names=source_names,
                progress=(lambda done: progress("read", done, None)) if progress else None)
        check_audio(parsed, configured_audio_root() if audio_root is None else audio_root,
                    allow_missing=allow_missing_audio)
        return _store(conn, parsed, paths, dataset=dataset, imported_by=imported_by, source_names=source_names,
                      digest=digest.result(), progress=progress, wer_normaliser=wer_normaliser)


def _store(conn: duckdb.DuckDBPyConnection, parsed: ParsedLog, paths: Sequence[str | Path], *, dataset: str,
           imported_by: str | None, source_names: Sequence[str] | None, digest: str, progress: Progress | None,
           wer_normaliser: str) -> tuple[store.IngestResult, dict[str, int]]:
    table, wer_rows = with_wer_counts(parsed.table, progress)
    if progress:
        progress("write", 0, table.num_rows)
    try:
        result = store.insert_turns(conn, table, dataset=dataset.strip(), wer_rows=wer_rows,
                                    wer_normaliser=wer_normaliser,
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
        # raw: the committed benchmark (docs/results/disparity.md) was measured on raw counts before the english-v1
        # default existed; --check must reproduce it. A rerun under english-v1 is a new set of published numbers.
        return ingest_files(self._conn, [path], dataset=dataset, wer_normaliser="raw")[0].rows_read

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
