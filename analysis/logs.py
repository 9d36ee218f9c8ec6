"""Read dialogue logs (JSON Lines, .jsonl.gz, Parquet, CSV), validate them against format 1.1 (which reads every
1.0 log), and normalise them into one Arrow table (``log_format.TURN_SCHEMA``); and resolve a log's ``audio``
paths under an audio root without ever leaving it (``resolve_audio``, ``audio_problems``).

Reading is all or nothing: any problem raises ``LogFormatError`` listing every problem as
``FILE:LINE: field: what is wrong``. The fast path lets Arrow's C++ JSON reader parse and type-check
the whole file, then checks values column-wise; only when that fails does the exact per-line path run,
to say precisely where and what. Arrow gets a file only after a vectorised pre-check (every record line
starts with an object, none can nest deeper than MAX_DEPTH): it crashes the process on some inputs. The
exact path parses with ``strict_json`` (UTF-8 only, bounded nesting, no duplicate keys, finite numbers, no
lone surrogates). Memory stays bounded: gzip is decompressed in steps into a temporary file with a size
limit, and line positions are kept for record lines only, never one entry per blank line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import mmap
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from analysis.log_format import (
    ALL_FIELDS,
    FIELD_BY_NAME,
    NBEST_CONFIDENCE,
    NBEST_KEYS,
    NBEST_REQUIRED,
    NBEST_SCORE,
    TURN_SCHEMA,
    Field,
    arrow_type,
    audio_problem,
    is_audio_url,
)

MAX_PROBLEMS_SHOWN = 50
_KEEP_PER_CHECK = 200  # problems materialised per check; the rest are counted, not listed
_INT64 = (-(2**63), 2**63 - 1)


def _int_setting(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:,}, got {value:,}")
    return value


def max_line_bytes() -> int:
    """The longest record line accepted (TURNLENS_MAX_LINE_BYTES, default 1 MiB)."""
    return _int_setting("TURNLENS_MAX_LINE_BYTES", 1 << 20, 1024)


# Nesting of arrays and objects in one record. The format itself needs 3 (a list of slot objects in a record);
# 64 leaves room for nested extras while keeping every parser far from its recursion limit (Arrow's JSON reader
# crashes the process on arrays nested ~10,000 deep; Python's json raises RecursionError near 1,000).
MAX_DEPTH = 64
# A .jsonl.gz may decompress to at most max(RATIO x its compressed size, FLOOR), and never more than the
# absolute cap: a 9 MB file of zeros must not become 2 GB in memory (or on disk).
_GZIP_RATIO_DEFAULT = 20
_GZIP_FLOOR = 256 << 20
_GZIP_CAP_DEFAULT = 4 << 30


def max_decompressed_bytes(compressed_size: int) -> int:
    """How many bytes a .jsonl.gz of compressed_size may decompress to: max(TURNLENS_MAX_GZIP_RATIO (default
    20) x compressed_size, 256 MiB), capped at TURNLENS_MAX_DECOMPRESSED_BYTES (default 4 GiB)."""
    ratio = _int_setting("TURNLENS_MAX_GZIP_RATIO", _GZIP_RATIO_DEFAULT, 1)
    cap = _int_setting("TURNLENS_MAX_DECOMPRESSED_BYTES", _GZIP_CAP_DEFAULT, 1 << 20)
    return min(max(ratio * compressed_size, _GZIP_FLOOR), cap)


SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".parquet", ".csv")

# Fields read as strings first, then parsed: Arrow's JSON reader cannot parse offsets in timestamps.
_RAW_SCHEMA = pa.schema(
    [pa.field(f.name, pa.string() if f.kind == "timestamp" else arrow_type(f)) for f in ALL_FIELDS]
)
_LIST_KINDS = {"string_list", "float_list", "slots", "word_confidence"}
_EXTRA = "__extra__"  # prefix of the internal columns holding unknown fields as JSON text
# The parts of 1.1 n-best objects beside their texts, as the exact and Parquet paths carry them to _normalise
# (named so that no field of a record can take the name: unknown fields get the _EXTRA prefix).
_RAW_NBEST = {NBEST_SCORE: "__nbest__score", NBEST_CONFIDENCE: "__nbest__confidence"}
_NBEST_PART_TYPE = pa.list_(pa.float64())


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. line is 1-based (a row number for Parquet); None for the file."""

    file: str
    line: int | None
    field: str | None
    message: str
    count: int = 1  # how many rows this entry stands for ("the same problem on N more rows")

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class LogFormatError(ValueError):
    """The input is not a valid dialogue log; nothing was read. ``problems`` lists what is wrong."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))

    @property
    def total(self) -> int:
        """How many problems there are, counting those folded into one entry."""
        return total_problems(self.problems)


def total_problems(problems: Sequence[Problem]) -> int:
    return sum(p.count for p in problems)


def format_problems(problems: Sequence[Problem], limit: int = MAX_PROBLEMS_SHOWN) -> str:
    lines = [str(p) for p in problems[:limit]]
    total = total_problems(problems)
    if total > len(lines):
        lines.append(f"... and {total - len(lines):,} more problems ({total:,} in all)")
    return "\n".join(lines)


@dataclass
class ParsedLog:
    """Validated turns of one or more files, in ``TURN_SCHEMA``."""

    table: pa.Table
    files: list[str]
    unknown_fields: dict[str, int] = field(default_factory=dict)  # name -> rows carrying it
    locate: Callable[[int], tuple[str, int]] | None = None  # table row -> (file, line)


# --------------------------------------------------------------------------------------------- files


def file_kind(path: str | Path) -> str | None:
    name = str(path).lower()
    for suffix, kind in ((".jsonl.gz", "jsonl.gz"), (".ndjson.gz", "jsonl.gz"), (".jsonl", "jsonl"),
                         (".ndjson", "jsonl"), (".parquet", "parquet"), (".csv", "csv")):
        if name.endswith(suffix):
            return kind
    return None


def _gunzip_to_file(path: Path, name: str) -> IO[bytes]:
    """Decompress a gzip file into an unnamed temporary file, in 1 MiB steps, refusing it as soon as it grows
    past max_decompressed_bytes: memory stays flat whatever the file holds (a bomb, or 100 MB of newlines)."""
    limit = max_decompressed_bytes(path.stat().st_size)
    out = tempfile.TemporaryFile()
    written = 0
    try:
        with gzip.open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise LogFormatError([Problem(
                        name, None, None,
                        f"decompresses to more than {limit:,} bytes, the limit for a {path.stat().st_size:,}-byte "
                        "file (set TURNLENS_MAX_GZIP_RATIO or TURNLENS_MAX_DECOMPRESSED_BYTES to change it)")])
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        out.close()
        raise LogFormatError([Problem(name, None, None, f"cannot be read as gzip ({exc})")]) from exc
    except BaseException:
        out.close()
        raise
    out.flush()
    return out


@contextmanager
def _mapped(path: Path, kind: str, name: str) -> Iterator[bytes | mmap.mmap]:
    """The file's (decompressed) bytes, memory-mapped rather than read: Arrow and NumPy read the page cache."""
    fh: IO[bytes] = _gunzip_to_file(path, name) if kind.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            yield b""
            return
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield data
        finally:
            try:
                data.close()
            except BufferError:  # an Arrow buffer still points into it: the mapping goes with that buffer
                pass
    finally:
        fh.close()


# ------------------------------------------------------------------------------------------ public


def read_logs(paths: Sequence[str | Path], *, progress: Callable[[int], None] | None = None,
              names: Sequence[str] | None = None, fast: bool = True) -> ParsedLog:
    """Read and validate several files as one input (duplicates and time order are checked across them).

    progress, if given, is called with the number of rows read so far after each file. names, if given,
    replaces each path in messages (e.g. the original name of an uploaded file). fast=False never hands a
    file to Arrow's JSON reader (the exact per-line path reads everything): the fallback after a crash.
    """
    if not paths:
        raise LogFormatError([Problem("(input)", None, None, "no files given")])
    problems: list[Problem] = []
    tables: list[pa.Table] = []
    locators: list[_Locator] = []
    unknown: dict[str, int] = {}
    done = 0
    for i, path in enumerate(paths):
        try:
            table, locator, file_unknown = _read_one(Path(path), names[i] if names else str(path), fast=fast)
        except LogFormatError as exc:
            problems.extend(exc.problems)
            continue
        tables.append(table)
        locators.append(locator)
        for name, n in file_unknown.items():
            unknown[name] = unknown.get(name, 0) + n
        done += table.num_rows
        if progress:
            progress(done)
    if problems:
        raise LogFormatError(problems)
    combined = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    cross = _check_keys(combined, _MultiLocator(locators))  # across files: duplicates, time order
    if cross:
        raise LogFormatError(cross)
    where = _MultiLocator(locators)
    return ParsedLog(combined, [str(p) for p in paths], unknown, locate=where.where)


def read_log(path: str | Path) -> ParsedLog:
    """Read and validate one file."""
    return read_logs([path])


# ---------------------------------------------------------------------------------------- locators


class _Locator:
    """Maps row indices of a file's table to the file's line numbers (Parquet: row numbers from 1)."""

    def __init__(self, file: str, lines: np.ndarray | None = None):
        self.file = file
        self._lines = lines  # None: the row number is the location
        self.n_rows = 0

    def line(self, row: int) -> int:
        return row + 1 if self._lines is None else int(self._lines[row])


class _MultiLocator:
    def __init__(self, locators: Sequence[_Locator]):
        self.locators = list(locators)
        self.starts = np.cumsum([0] + [loc.n_rows for loc in self.locators])

    def where(self, row: int) -> tuple[str, int]:
        i = int(np.searchsorted(self.starts, row, side="right")) - 1
        loc = self.locators[i]
        return loc.file, loc.line(row - int(self.starts[i]))


# --------------------------------------------------------------------------------------- one file


def _read_one(path: Path, name: str, *, fast: bool = True) -> tuple[pa.Table, _Locator, dict[str, int]]:
    kind = file_kind(name)
    if kind is None:
        raise LogFormatError([Problem(name, None, None,
                                      f"unsupported file type; expected one of {', '.join(SUFFIXES)}")])
    if not path.exists():
        raise LogFormatError([Problem(name, None, None, "no such file")])
    if path.is_dir():
        raise LogFormatError([Problem(name, None, None, "is a directory, not a log file")])
    if path.stat().st_size == 0:
        raise LogFormatError([Problem(name, None, None, "file is empty (no records)")])
    if kind == "parquet":
        raw, locator = _read_parquet(path, name), _Locator(name)
    elif kind == "csv":
        raw, locator = _read_csv(name, path.read_bytes())
    else:
        with _mapped(path, kind, name) as data:
            raw, locator = _read_jsonl(data, name, fast=fast)
    if raw.num_rows == 0:
        raise LogFormatError([Problem(name, None, None, "file is empty (no records)")])
    locator.n_rows = raw.num_rows
    table, unknown, problems = _normalise(raw, locator)
    if problems:
        raise LogFormatError(problems)
    return table, locator, unknown


@dataclass(frozen=True)
class _Lines:
    """The record lines of a JSON Lines file (lines longer than two bytes), found without keeping one entry
    per blank line: a file of 100 MB of newlines costs no more memory than an empty one."""

    starts: np.ndarray  # byte offset of each record line
    ends: np.ndarray  # byte offset of its newline (or the end of the data)
    numbers: np.ndarray  # its 1-based line number
    opens: np.ndarray  # how many '{' and '[' it holds: an upper bound of its nesting depth


_SCAN_STEP = 2 << 20  # bytes per vectorised slice: temporary arrays stay ~16 MB even on a file of newlines


def _scan_lines(data: bytes | mmap.mmap) -> _Lines:
    arr = np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(0, dtype=np.uint8)
    parts: list[tuple[np.ndarray, ...]] = []
    line_start, lines_before, carry_opens = 0, 0, 0
    for off in range(0, len(arr), _SCAN_STEP):
        chunk = arr[off:off + _SCAN_STEP]
        newlines = np.flatnonzero(chunk == 10)
        # '{' is 0x7B and '[' is 0x5B: they differ only in bit 0x20, so one OR and one compare find both.
        opens = np.bincount(np.searchsorted(newlines, np.flatnonzero((chunk | 0x20) == 0x7B)),
                            minlength=len(newlines) + 1)
        if not len(newlines):
            carry_opens += int(opens[0])
            continue
        opens[0] += carry_opens
        ends = newlines + off
        starts = np.empty(len(ends), dtype=np.int64)
        starts[0] = line_start
        starts[1:] = ends[:-1] + 1
        keep = np.flatnonzero(_not_blank(arr, starts, ends))
        parts.append((starts[keep], ends[keep], keep + lines_before + 1, opens[:-1][keep]))
        lines_before += len(ends)
        line_start = int(ends[-1]) + 1
        carry_opens = int(opens[-1])
    if len(arr) > line_start and _not_blank(arr, np.array([line_start]), np.array([len(arr)]))[0]:
        parts.append((np.array([line_start]), np.array([len(arr)]), np.array([lines_before + 1]),
                      np.array([carry_opens])))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Lines(empty, empty, empty, empty)
    return _Lines(*(np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(4)))


def _not_blank(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which lines hold something besides white space. Lines longer than two bytes count as records (a line
    of only spaces is rare and is skipped later, by the exact path); shorter ones are looked at byte by byte."""
    length = ends - starts
    out = length > 2
    short = np.flatnonzero((length > 0) & (length <= 2))
    if len(short):
        first = arr[starts[short]]
        last = arr[ends[short] - 1]

        def space(b: np.ndarray) -> np.ndarray:
            return (b == 32) | (b == 9) | (b == 13)

        out[short] = ~(space(first) & space(last))
    return out


def _depth(text: bytes | str) -> int:
    """The deepest nesting of arrays and objects in one JSON text, brackets inside strings not counted."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # Strings out first (an escaped quote does not end one), then only the brackets remain.
    brackets = _BRACKETS_ONLY.sub(b"", _JSON_STRING.sub(b"", raw))
    if not brackets:
        return 0
    steps = np.where((np.frombuffer(brackets, dtype=np.uint8) | 0x20) == 0x7B, 1, -1)
    return int(np.cumsum(steps).max())


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS_ONLY = re.compile(rb"[^\[\]{}]")


def _too_deep(text: bytes | str, opens: int | None = None) -> bool:
    """Whether text nests deeper than MAX_DEPTH; opens (its count of '{' and '['), when known, settles most
    texts without looking: a text with no more opening brackets than MAX_DEPTH cannot nest deeper."""
    if opens is None:
        opens = text.count(b"{" if isinstance(text, bytes) else "{") + text.count(b"[" if isinstance(text, bytes)
                                                                                  else "[")
    return opens > MAX_DEPTH and _depth(text) > MAX_DEPTH


def _read_jsonl(data: bytes | mmap.mmap, name: str, *, fast: bool = True) -> tuple[pa.Table, _Locator]:
    limit = max_line_bytes()
    lines = _scan_lines(data)
    table = None
    # Arrow's reader gets the file only when every record line starts with '{' and none can nest deeper than
    # MAX_DEPTH: it crashes the process on a file whose first record is `null`, or on deeply nested arrays.
    if fast and len(lines.starts) and _fast_path_safe(data, lines, limit):
        try:
            table = pj.read_json(
                pa.py_buffer(data),
                read_options=pj.ReadOptions(block_size=max(2 * limit, 1 << 20)),
                parse_options=pj.ParseOptions(explicit_schema=_RAW_SCHEMA, unexpected_field_behavior="infer"),
            )
            table.validate(full=True)  # Arrow's reader does not check UTF-8; this does
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            table = None
    # The exact path takes over wherever the fast one could be wrong: a record not alone on its line, a line
    # holding null or {}, unknown fields (Arrow would coerce their types; extras must stay as written),
    # duplicate keys, invalid Unicode escapes (Arrow refuses those, without saying where).
    if (table is None or table.num_rows != len(lines.starts)
            or set(table.column_names) - set(_RAW_SCHEMA.names)
            or (table.num_rows and pc.any(pc.and_(pc.is_null(table.column("dialogue_id")),
                                                  pc.is_null(table.column("asr_text")))).as_py())):
        return _records_to_raw(name, _jsonl_records(name, data, lines, limit))
    return table, _Locator(name, lines=lines.numbers)


def _fast_path_safe(data: bytes | mmap.mmap, lines: _Lines, limit: int) -> bool:
    if int((lines.ends - lines.starts).max()) > limit:
        return False
    if not np.all(np.frombuffer(data, dtype=np.uint8)[lines.starts] == 0x7B):  # '{': an object, no indent
        return False
    return not any(_too_deep(data[int(lines.starts[i]):int(lines.ends[i])])
                   for i in np.flatnonzero(lines.opens > MAX_DEPTH))


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON (numbers must be finite)")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e999 parses as infinity, which JSON cannot hold
        raise ValueError(f"{token} is not a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r} in one object (which one counts would be a guess)")
    return record


def strict_json(text: str | bytes, *, opens: int | None = None) -> object:
    """Parse one JSON text as turnlens reads every input: UTF-8 only (no UTF-16/32 detection), nesting at most
    MAX_DEPTH, no duplicate keys in an object, finite numbers only, no lone surrogate escapes.

    Raises ValueError with a message for the person who wrote the file."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if _too_deep(text, opens):
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants,
                           parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can escape as a traceback
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    if "\\u" in text and _has_lone_surrogate(value):
        raise ValueError("holds a lone surrogate escape (e.g. \\ud800): not valid Unicode")
    return value


def _has_lone_surrogate(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_long(name: str, line: int, size: int, limit: int) -> Problem:
    return Problem(name, line, None, f"record is {size:,} bytes, over the limit of {limit:,} "
                                     "(set TURNLENS_MAX_LINE_BYTES to change it)")


def _jsonl_records(name: str, data: bytes | mmap.mmap, lines: _Lines, limit: int
                   ) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    for start, end, lineno, opens in zip(lines.starts.tolist(), lines.ends.tolist(), lines.numbers.tolist(),
                                         lines.opens.tolist(), strict=True):
        if end - start > limit:
            yield lineno, None, [_too_long(name, lineno, end - start, limit)]
            continue
        line = data[start:end]
        if not line.strip():
            continue
        try:
            record = strict_json(line, opens=opens)
        except ValueError as exc:
            yield lineno, None, [Problem(name, lineno, None, f"invalid JSON: {exc}")]
            continue
        if not isinstance(record, dict):
            yield lineno, None, [Problem(name, lineno, None,
                                         f"expected a JSON object, got {_json_type(record)}")]
            continue
        yield lineno, record, []


def jsonl_records(path: str | Path, name: str | None = None) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    """(line, record or None, problems) for each record line of a .jsonl or .jsonl.gz file, parsed as strictly
    as logs are (strict_json; a record must be an object), in bounded memory. For other record files
    (candidates) that share the log reader's rules."""
    path, name = Path(path), name or str(path)
    kind = file_kind(name)
    if kind not in ("jsonl", "jsonl.gz"):
        raise LogFormatError([Problem(name, None, None, "expected a .jsonl or .jsonl.gz file")])
    with _mapped(path, kind, name) as data:
        yield from _jsonl_records(name, data, _scan_lines(data), max_line_bytes())


def _read_csv(name: str, data: bytes) -> tuple[pa.Table, _Locator]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem(name, line, None, f"not valid UTF-8 ({exc.reason})")
        raise LogFormatError([problem]) from exc
    limit = max_line_bytes()
    # The csv module's own field limit (128 KiB) is lower than ours: lift it, then apply ours per record.
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise LogFormatError([Problem(name, 1, None, "no header row")]) from exc
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise LogFormatError([Problem(name, 1, None, f"duplicate column(s) in header: {', '.join(dup)}")])

    def records() -> Iterator[tuple[int, dict | None, list[Problem]]]:
        line = reader.line_num
        while True:
            start = line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, [Problem(name, start, None, f"malformed CSV: {exc}")]
                return
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            size = sum(len(cell.encode()) for cell in row) + len(row)
            if size > limit:
                yield start, None, [_too_long(name, start, size, limit)]
                continue
            if len(row) != len(header):
                yield start, None, [Problem(name, start, None,
                                            f"has {len(row)} cells but the header has {len(header)}")]
                continue
            record, problems = _csv_record(name, start, dict(zip(header, row, strict=True)))
            yield start, record, problems

    return _records_to_raw(name, records())


def _csv_record(name: str, line: int, cells: dict[str, str]) -> tuple[dict, list[Problem]]:
    """CSV cells are text: an empty cell is null, lists are JSON strings, the rest is parsed by kind."""
    record: dict = {}
    problems: list[Problem] = []
    for key, cell in cells.items():
        f = FIELD_BY_NAME.get(key)
        if cell == "":
            record[key] = None
        elif f is None or f.kind in ("string", "timestamp", "audio"):
            record[key] = cell
        elif f.kind in _LIST_KINDS:
            try:
                record[key] = strict_json(cell)
            except ValueError as exc:
                problems.append(Problem(name, line, key, f"expected a JSON list, got invalid JSON ({exc})"))
        elif f.kind == "bool":
            low = cell.strip().lower()
            if low == "true":
                record[key] = True
            elif low == "false":
                record[key] = False
            else:
                problems.append(Problem(name, line, key, f"expected true or false, got {cell!r}"))
        elif f.kind == "int":
            if _INT_TEXT.match(cell):
                record[key] = int(cell)
            else:
                problems.append(Problem(name, line, key, f"expected {_KIND_WORD[f.kind]}, got {cell!r}"))
        else:
            try:
                value = float(cell) if _FLOAT_TEXT.match(cell) else None
            except ValueError:
                value = None
            if value is None:
                problems.append(Problem(name, line, key, f"expected {_KIND_WORD[f.kind]}, got {cell!r}"))
            else:
                record[key] = value
    return record, problems


_INT_TEXT = re.compile(r"-?[0-9]+\Z")
_FLOAT_TEXT = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\Z")


def _parquet_type_ok(kind: str, t: pa.DataType) -> bool:
    """Whether a Parquet column of type t may be read as a field of this kind (no silent conversions)."""
    if pa.types.is_null(t):
        return True
    if pa.types.is_dictionary(t):
        t = t.value_type
    is_str = pa.types.is_string(t) or pa.types.is_large_string(t)
    if kind in ("string", "audio"):
        return is_str
    if kind == "int":
        return pa.types.is_integer(t)
    if kind == "float":
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    if kind == "bool":
        return pa.types.is_boolean(t)
    if kind == "timestamp":
        return is_str or pa.types.is_timestamp(t)
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    item = t.value_type
    if kind == "nbest_objects":
        return pa.types.is_struct(item) and _nbest_struct_ok(item)
    if kind == "string_list":
        return pa.types.is_string(item) or pa.types.is_large_string(item) or pa.types.is_null(item)
    if kind in ("float_list", "word_confidence"):
        return pa.types.is_integer(item) or pa.types.is_floating(item) or pa.types.is_null(item)
    return pa.types.is_struct(item) and all(
        item.get_field_index(n) >= 0 and (pa.types.is_string(item.field(n).type)
                                          or pa.types.is_large_string(item.field(n).type))
        for n in ("type", "value"))


def _nbest_struct_ok(item: pa.StructType) -> bool:
    """A Parquet n-best item struct of format 1.1: text (string) and score (number), optionally confidence
    (number), nothing else."""
    names = [item.field(i).name for i in range(item.num_fields)]
    if set(names) - set(NBEST_KEYS) or not set(NBEST_REQUIRED) <= set(names):
        return False
    number = [pa.types.is_integer(item.field(n).type) or pa.types.is_floating(item.field(n).type)
              or pa.types.is_null(item.field(n).type) for n in names if n != "text"]
    text = item.field("text").type
    return all(number) and (pa.types.is_string(text) or pa.types.is_large_string(text) or pa.types.is_null(text))


def _parquet_nbest(col: pa.ChunkedArray) -> dict[str, pa.ChunkedArray]:
    """A Parquet column of 1.1 n-best structs as the exact path carries it: texts, and the raw score and
    confidence columns (value checks follow in _normalise)."""
    texts, scores, confidences = [], [], []
    for value in col.to_pylist():
        if value is None:
            texts.append(None), scores.append(None), confidences.append(None)
            continue
        texts.append([v["text"] if v is not None else None for v in value])
        scores.append([v["score"] if v is not None else None for v in value])
        conf = [v.get("confidence") if v is not None else None for v in value]
        confidences.append(None if all(c is None for c in conf) else conf)
    return {"text": pa.chunked_array([pa.array(texts, type=pa.list_(pa.string()))]),
            NBEST_SCORE: pa.chunked_array([pa.array(scores, type=_NBEST_PART_TYPE)]),
            NBEST_CONFIDENCE: pa.chunked_array([pa.array(confidences, type=_NBEST_PART_TYPE)])}


def _read_parquet(path: Path, name: str) -> pa.Table:
    try:
        table = pq.read_table(path)
        table.validate(full=True)  # e.g. strings that are not valid UTF-8
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise LogFormatError([Problem(name, None, None, f"cannot be read as Parquet ({exc})")]) from exc
    problems: list[Problem] = []
    columns, names = [], []
    for col_name in table.column_names:
        col = table.column(col_name)
        f = FIELD_BY_NAME.get(col_name)
        if f is not None and f.accepts and _parquet_type_ok(f.accepts, col.type):
            parts = _parquet_nbest(col)  # 1.1 n-best objects: texts, and their parts beside
            columns += [parts["text"], parts[NBEST_SCORE], parts[NBEST_CONFIDENCE]]
            names += [col_name, _RAW_NBEST[NBEST_SCORE], _RAW_NBEST[NBEST_CONFIDENCE]]
            continue
        if f is not None and not _parquet_type_ok(f.kind, col.type):
            problems.append(Problem(name, None, col_name,
                                    f"column has type {col.type}, expected {_KIND_WORD[f.kind]}"))
            continue
        if f is not None:
            target = pa.string() if f.kind == "timestamp" and (pa.types.is_string(col.type)
                                                               or pa.types.is_large_string(col.type)) \
                else arrow_type(f)
            if f.kind == "timestamp" and pa.types.is_timestamp(col.type):
                # Kept in its own unit (naive read as UTC): the range check comes before any conversion, which
                # would overflow on a year beyond 9999 instead of saying which row holds it.
                target = pa.timestamp(col.type.unit, tz=col.type.tz or "UTC")
            try:
                col = col.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                problems.append(Problem(name, None, col_name,
                                        f"column has type {col.type}, expected {_KIND_WORD[f.kind]} ({target})"))
                continue
        if f is None:
            # An unknown column: kept as JSON text per row, like unknown fields of JSON Lines.
            texts: list[str | None] = []
            for row, v in enumerate(col.to_pylist()):
                try:
                    texts.append(None if v is None else json.dumps(v, default=str, allow_nan=False))
                except ValueError:  # NaN or an infinity: JSON cannot hold it, and extras are JSON
                    problems.append(Problem(name, row + 1, col_name, "holds a number that is not finite "
                                                                     "(NaN or infinity)"))
                    texts.append(None)
            col = pa.chunked_array([pa.array(texts, type=pa.string())])
            col_name = _EXTRA + col_name
        columns.append(col)
        names.append(col_name)
    if problems:
        raise LogFormatError(problems)
    return pa.Table.from_arrays(columns, names=names)


# ------------------------------------------------------------------------- exact per-record checks

_KIND_WORD = {
    "string": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "timestamp": "an ISO 8601 timestamp string", "string_list": "a list of strings",
    "float_list": "a list of numbers", "slots": "a list of {type, value} objects",
    "audio": "a string (a relative path or an http(s) URL)", "word_confidence": "a list of numbers",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _type_error(f: Field, value: object) -> str | None:
    """Why value does not have f's type, or None if it does (null is always typed fine here)."""
    if value is None:
        return None
    kind = f.kind
    if f.accepts == "nbest_objects" and isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return _nbest_error(value)
    if kind in ("string", "timestamp", "audio"):
        ok = isinstance(value, str)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not _INT64[0] <= value <= _INT64[1]:
            return f"{value} does not fit in a 64-bit integer"
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "string_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind in ("float_list", "word_confidence"):
        ok = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                             for v in value)
    else:  # slots
        ok = isinstance(value, list) and all(
            isinstance(v, dict) and isinstance(v.get("type"), str) and isinstance(v.get("value"), str)
            for v in value)
    if not ok and f.accepts == "nbest_objects":
        return f"expected {_KIND_WORD[kind]} or of {{text, score[, confidence]}} objects, got {_json_type(value)}"
    return None if ok else f"expected {_KIND_WORD[kind]}, got {_json_type(value)}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nbest_error(items: list) -> str | None:
    """Why a list holding objects is not a 1.1 n-best list (every item a {text, score[, confidence]} object), or
    None. Values (finite scores, confidences in 0..1) are checked column-wise later, on every path."""
    if not all(isinstance(v, dict) for v in items):
        return "mixes strings and objects; an n-best list is all strings (1.0) or all {text, score} objects (1.1)"
    for i, item in enumerate(items, start=1):
        unknown = sorted(set(item) - set(NBEST_KEYS))
        if unknown:
            return (f"item {i}: unknown key {unknown[0]!r} (an n-best object has text, score and optionally "
                    "confidence)")
        for key in NBEST_REQUIRED:
            if item.get(key) is None:
                return f"item {i}: {key} is missing or null"
        if not isinstance(item["text"], str):
            return f"item {i}: text must be a string, got {_json_type(item['text'])}"
        if not _is_number(item["score"]):
            return f"item {i}: score must be a number, got {_json_type(item['score'])}"
        if item.get("confidence") is not None and not _is_number(item["confidence"]):
            return f"item {i}: confidence must be a number, got {_json_type(item['confidence'])}"
    return None


def _split_nbest(value: object) -> tuple[list | None, list | None, list | None]:
    """(texts, scores, confidences) of a type-checked asr_nbest value: scores and confidences are None for
    plain strings; confidences None too when no object of the list has one (else None per object without)."""
    if not value or not isinstance(value[0], dict):
        return value, None, None  # type: ignore[return-value]
    confidences = [v.get("confidence") for v in value]
    return ([v["text"] for v in value], [float(v["score"]) for v in value],
            None if all(c is None for c in confidences) else [None if c is None else float(c) for c in confidences])


def _records_to_raw(name: str, records: Iterator[tuple[int, dict | None, list[Problem]]]
                    ) -> tuple[pa.Table, _Locator]:
    """The exact path: type-check every record in Python, then build the raw table from the good ones."""
    problems: list[Problem] = []
    rows: list[dict] = []
    lines: list[int] = []
    for lineno, record, found in records:
        problems.extend(found)
        if record is None:
            continue
        bad = False
        for f in ALL_FIELDS:
            err = _type_error(f, record.get(f.name))
            if err:
                problems.append(Problem(name, lineno, f.name, err))
                bad = True
        if not bad and not found:
            rows.append(record)
            lines.append(lineno)
    locator = _Locator(name, lines=np.asarray(lines, dtype=np.int64))
    if not rows and not problems:
        raise LogFormatError([Problem(name, None, None, "file is empty (no records)")])
    table = _rows_to_table(rows)
    locator.n_rows = table.num_rows
    if problems:
        # Value checks on the rows that parsed, so one run reports everything it can.
        _, _, more = _normalise(table, locator)
        raise LogFormatError(sorted(problems + more, key=lambda p: (p.line or 0)))
    return table, locator


def _rows_to_table(rows: list[dict]) -> pa.Table:
    known = {f.name for f in ALL_FIELDS}
    columns = {f.name: pa.array([r.get(f.name) for r in rows], type=_RAW_SCHEMA.field(f.name).type)
               for f in ALL_FIELDS if f.accepts != "nbest_objects"}
    for f in ALL_FIELDS:
        if f.accepts == "nbest_objects":
            texts, scores, confidences = zip(*(_split_nbest(r.get(f.name)) for r in rows), strict=True) \
                if rows else ((), (), ())
            columns[f.name] = pa.array(texts, type=_RAW_SCHEMA.field(f.name).type)
            columns[_RAW_NBEST[NBEST_SCORE]] = pa.array(scores, type=_NBEST_PART_TYPE)
            columns[_RAW_NBEST[NBEST_CONFIDENCE]] = pa.array(confidences, type=_NBEST_PART_TYPE)
    extra_names = sorted({k for r in rows for k in r} - known)
    for extra in extra_names:
        # Extras of any JSON shape: kept as JSON text per row so mixed types never fail.
        columns[_EXTRA + extra] = pa.array(
            [json.dumps(r[extra]) if extra in r else None for r in rows], type=pa.string())
    return pa.table(columns)


# --------------------------------------------------------------------------- column-wise checks


def _normalise(raw: pa.Table, locator: _Locator) -> tuple[pa.Table, dict[str, int], list[Problem]]:
    """Check values column-wise and build the TURN_SCHEMA table. Returns (table, unknown fields, problems)."""
    problems: list[Problem] = []
    n = raw.num_rows

    def report(mask: pa.ChunkedArray | pa.Array | np.ndarray, fname: str, message: Callable[[int], str]) -> None:
        idx = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy")
                                        else mask, dtype=bool))
        for row in idx[:_KEEP_PER_CHECK]:
            problems.append(Problem(locator.file, locator.line(int(row)), fname, message(int(row))))
        if len(idx) > _KEEP_PER_CHECK:
            # Keep the count honest without materialising millions of messages.
            rest = len(idx) - _KEEP_PER_CHECK
            problems.append(Problem(locator.file, None, fname, f"the same problem on {rest:,} more rows", rest))

    columns: dict[str, pa.ChunkedArray] = {}
    for f in ALL_FIELDS:
        col = raw.column(f.name) if f.name in raw.column_names else pa.chunked_array(
            [pa.nulls(n, type=_RAW_SCHEMA.field(f.name).type)])
        if f.kind == "slots":
            col = _clean_slots(col)
        if f.required:
            report(pc.is_null(col), f.name, lambda r: "required field is missing or null")
        if f.kind == "string" and f.name == "dialogue_id":
            report(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False), f.name,
                   lambda r: "must not be empty")
        if f.kind in ("int", "float"):
            values = col
            if f.kind == "float":
                report(pc.invert(pc.fill_null(pc.is_finite(values), True)), f.name,
                       lambda r: "must be a finite number")
            if f.minimum is not None:
                low = pc.fill_null(pc.less(values, f.minimum), False)
                report(low, f.name, lambda r, c=values, fl=f: f"{c[r].as_py()} is below the minimum {fl.minimum:g}")
            if f.maximum is not None:
                high = pc.fill_null(pc.greater(values, f.maximum), False)
                report(high, f.name, lambda r, c=values, fl=f: f"{c[r].as_py()} is above the maximum {fl.maximum:g}")
        if f.enum is not None:
            bad = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=pa.array(f.enum))))
            report(bad, f.name, lambda r, c=col, fl=f: f"unknown value {c[r].as_py()!r}; expected one of "
                                                       + ", ".join(fl.enum))
        if f.kind in _LIST_KINDS:
            # Arrow's reader accepts null items (and missing slot keys); the format does not.
            flat = pc.list_flatten(col)
            if len(flat):
                bad_item = pc.is_null(flat)
                if f.kind == "slots":
                    bad_item = pc.or_(bad_item, pc.or_(pc.is_null(pc.struct_field(flat, "type")),
                                                       pc.is_null(pc.struct_field(flat, "value"))))
                if pc.any(bad_item).as_py():
                    parents = pc.list_parent_indices(col).to_numpy()
                    rows = np.zeros(n, dtype=bool)
                    rows[parents[np.asarray(bad_item.to_numpy(zero_copy_only=False), dtype=bool)]] = True
                    report(rows, f.name, lambda r, fl=f: f"expected {_KIND_WORD[fl.kind]}, got a null item "
                                                         "or an item without type and value")
        if f.kind == "float_list":
            # float32 storage: NaN, infinities and values beyond float32 (which become infinite) are refused
            as32 = col.cast(pa.list_(pa.float32()), safe=False)
            flat = pc.list_flatten(as32)
            if len(flat) and not pc.all(pc.fill_null(pc.is_finite(flat), True)).as_py():
                bad_rows = np.zeros(n, dtype=bool)
                for r, v in enumerate(as32.to_pylist()):
                    bad_rows[r] = v is not None and any(x is not None and not math.isfinite(x) for x in v)
                report(bad_rows, f.name, lambda r: "contains a value that is not a finite float32 number "
                                                   "(NaN, infinity, or beyond about 3.4e38)")
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            lengths = np.where(np.isnan(lengths.astype(float)), -1, lengths).astype(np.int64)
            present = np.flatnonzero(lengths >= 0)
            if len(present):
                expected = lengths[present[0]]
                report(np.where(lengths >= 0, lengths != expected, False), f.name,
                       lambda r, ln=lengths, e=expected, first=int(present[0]):
                       f"has {ln[r]} values, but line {locator.line(first)} has {e}; "
                       "all rows of a file must have the same length")
        if f.kind == "timestamp":
            text_col = col
            col, bad_ts, out_of_range = _parse_timestamps(col)
            report(bad_ts, f.name, lambda r, c=text_col: f"{_shown(c[r])} is not an ISO 8601 timestamp")
            report(out_of_range, f.name, lambda r, c=text_col: f"{_shown(c[r])} is outside the years 0001-9999 "
                                                               "after conversion to UTC")
        if f.kind == "audio":
            why = {r: audio_problem(v) for r, v in enumerate(col.to_pylist()) if v is not None}
            report(np.array([why.get(r) is not None for r in range(n)], dtype=bool), f.name,
                   lambda r, c=col, w=why: f"{_shown(c[r])[:80]}: {w[r]}")
        if f.kind == "word_confidence":
            _check_unit_interval(col, f.name, report)
            words = [None if t is None else len(t.split()) for t in raw.column("asr_text").to_pylist()] \
                if "asr_text" in raw.column_names else [None] * n
            lengths = pc.list_value_length(col).to_pylist()
            report(np.array([ln is not None and w is not None and ln != w for ln, w in zip(lengths, words,
                                                                                           strict=True)]),
                   f.name, lambda r, ln=lengths, w=words: f"has {ln[r]} values but asr_text has {w[r]} words; "
                                                          "give one posterior per word of asr_text")
        columns[f.name] = col.cast(arrow_type(f))

    # The parts of 1.1 n-best objects: a finite score for every hypothesis, confidences in 0..1 where given.
    for part in (NBEST_SCORE, NBEST_CONFIDENCE):
        raw_name = _RAW_NBEST[part]
        col = raw.column(raw_name) if raw_name in raw.column_names else pa.chunked_array(
            [pa.nulls(n, type=_NBEST_PART_TYPE)])
        if part == NBEST_SCORE:
            flat = pc.list_flatten(col)
            if len(flat) and not pc.all(pc.fill_null(pc.is_finite(flat), False)).as_py():
                bad = [v is not None and any(x is None or not math.isfinite(x) for x in v) for v in col.to_pylist()]
                report(np.array(bad, dtype=bool), "asr_nbest", lambda r: "every n-best object needs a finite score")
        else:
            _check_unit_interval(col, "asr_nbest", report, what="an n-best confidence")
        columns[part] = col.cast(_NBEST_PART_TYPE)

    extra_cols = [c for c in raw.column_names if c not in FIELD_BY_NAME and c not in _RAW_NBEST.values()]
    unknown = {c.removeprefix(_EXTRA): int(n - raw.column(c).null_count) for c in extra_cols}
    columns["extras"] = _extras_json(raw, extra_cols)
    table = pa.table(columns, schema=TURN_SCHEMA) if not problems else pa.table(
        {k: v for k, v in columns.items()})
    return table, {k: v for k, v in unknown.items() if v}, problems


def _check_unit_interval(col: pa.ChunkedArray, name: str, report: Callable, *, what: str = "a value") -> None:
    """Report the rows of a list column holding a number that is not finite or outside 0..1 (null items are
    the list checks' to report)."""
    flat = pc.list_flatten(col)
    if not len(flat):
        return
    ok = pc.fill_null(pc.and_(pc.is_finite(flat), pc.and_(pc.greater_equal(flat, 0), pc.less_equal(flat, 1))), True)
    if pc.all(ok).as_py():
        return
    values = col.to_pylist()
    first_bad: dict[int, float] = {}
    for r, v in enumerate(values):
        for x in v or ():
            if x is not None and not (math.isfinite(x) and 0 <= x <= 1):
                first_bad[r] = x
                break
    report(np.array([r in first_bad for r in range(len(values))], dtype=bool), name,
           lambda r: f"{what} {first_bad[r]!r} is outside 0..1")


def _shown(value: pa.Scalar) -> str:
    """A value of the input, quoted for a message (a timestamp column's value in ISO form, with no
    conversion that could overflow)."""
    if pa.types.is_timestamp(value.type):
        return f"{value.cast(pa.int64()).as_py()} {value.type.unit} since 1970"
    return repr(value.as_py())


def _clean_slots(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Keep only {type, value} of each slot (Arrow infers any extra keys as more struct children)."""
    value_type = col.type.value_type
    if value_type == pa.struct([("type", pa.string()), ("value", pa.string())]):
        return col
    return pa.chunked_array([
        pa.array([None if v is None else [{"type": s.get("type"), "value": s.get("value")} for s in v]
                  for v in col.to_pylist()], type=pa.list_(pa.struct([("type", pa.string()),
                                                                      ("value", pa.string())])))])


# Python's datetime holds years 1-9999 only: a timestamp beyond them would be stored, then break every page that
# shows it. The bounds are in UTC microseconds (the stored form).
_TS_MIN_US = int((datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**6
_TS_MAX_US = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
                 .total_seconds()) * 10**6 + 999_999
_TS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _parse_timestamps(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    """ISO 8601 strings (or a timestamp column) -> UTC timestamps in microseconds. Strings without an offset
    are read as UTC. Returns (timestamps, not parseable, outside years 0001-9999 after conversion to UTC);
    rows of either mask are null in the result."""
    target = pa.timestamp("us", tz="UTC")
    n = len(col)
    if pa.types.is_timestamp(col.type):
        # Compared in the column's own unit, before any conversion can overflow.
        per_second = _TS_PER_SECOND[col.type.unit]
        values = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
        present = ~np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
        low = -(-_TS_MIN_US * per_second // 10**6)  # ceil: the earliest value not before year 1
        high = _TS_MAX_US * per_second // 10**6
        with np.errstate(invalid="ignore"):
            out_of_range = present & ((np.nan_to_num(values.astype(float), nan=0) < low)
                                      | (np.nan_to_num(values.astype(float), nan=0) > high))
        kept = pc.if_else(pa.array(out_of_range), pa.scalar(None, type=col.type), col) if out_of_range.any() else col
        return kept.cast(pa.timestamp(col.type.unit, tz="UTC")).cast(target), np.zeros(n, dtype=bool), out_of_range
    has_zone = pc.fill_null(pc.match_substring_regex(col, r"(Z|z|[+-]\d\d(:?\d\d)?)$"), False)
    try:
        if pc.all(pc.or_(has_zone, pc.is_null(col))).as_py():
            parsed = pc.cast(col, target)
        else:
            naive = pc.cast(pc.if_else(has_zone, None, col), pa.timestamp("us"))
            zoned = pc.cast(pc.if_else(has_zone, col, None), target)
            parsed = pc.if_else(has_zone, zoned, pc.assume_timezone(naive, "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = None
    if parsed is not None:
        micros = parsed.cast(pa.int64()).to_numpy(zero_copy_only=False)
        present = ~np.asarray(pc.is_null(parsed).to_numpy(zero_copy_only=False), dtype=bool)
        floats = np.nan_to_num(micros.astype(float), nan=0)
        out_of_range = present & ((floats < _TS_MIN_US) | (floats > _TS_MAX_US))
        if out_of_range.any():
            parsed = pc.if_else(pa.array(out_of_range), pa.scalar(None, type=target), parsed)
        return pa.chunked_array([parsed]) if isinstance(parsed, pa.Array) else parsed, np.zeros(n, dtype=bool), \
            out_of_range
    # Some value did not parse: do it one by one to say which.
    out: list[datetime | None] = []
    bad = np.zeros(n, dtype=bool)
    out_of_range = np.zeros(n, dtype=bool)
    for i, text in enumerate(col.to_pylist()):
        if text is None:
            out.append(None)
            continue
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            bad[i] = True
            out.append(None)
            continue
        try:
            out.append(value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))
        except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is in year 0 in UTC
            out_of_range[i] = True
            out.append(None)
    return pa.chunked_array([pa.array(out, type=target)]), bad, out_of_range


def _extras_json(raw: pa.Table, extra_cols: list[str]) -> pa.ChunkedArray:
    """One JSON object per row of the unknown fields it carries (each column already holds JSON text)."""
    n = raw.num_rows
    if not extra_cols:
        return pa.chunked_array([pa.nulls(n, type=pa.string())])
    values = {c: raw.column(c).to_pylist() for c in extra_cols}
    out: list[str | None] = []
    for i in range(n):
        obj = {c.removeprefix(_EXTRA): json.loads(values[c][i]) for c in extra_cols if values[c][i] is not None}
        out.append(json.dumps(obj, sort_keys=True) if obj else None)
    return pa.chunked_array([pa.array(out, type=pa.string())])


def _check_keys(table: pa.Table, where: _MultiLocator) -> list[Problem]:
    """Duplicate (dialogue_id, turn_index) and turns out of time order, across all files of the input."""
    if table.num_rows < 2:
        return []
    order = pc.sort_indices(table, sort_keys=[("dialogue_id", "ascending"), ("turn_index", "ascending")])
    ids = pc.take(table.column("dialogue_id"), order).to_numpy(zero_copy_only=False)
    turns = pc.take(table.column("turn_index"), order).to_numpy()
    times = pc.take(table.column("timestamp"), order).cast(pa.int64()).to_numpy()
    order_np = order.to_numpy()
    same_dialogue = ids[1:] == ids[:-1]
    problems: list[Problem] = []
    dup = np.flatnonzero(same_dialogue & (turns[1:] == turns[:-1]))
    late = np.flatnonzero(same_dialogue & (turns[1:] != turns[:-1]) & (times[1:] < times[:-1]))
    for i in dup[:_KEEP_PER_CHECK]:
        file, line = where.where(int(order_np[i + 1]))
        first_file, first_line = where.where(int(order_np[i]))
        problems.append(Problem(file, line, "turn_index",
                                f"duplicate turn {turns[i + 1]} of dialogue {ids[i + 1]!r} "
                                f"(also at {first_file}:{first_line})"))
    if len(dup) > _KEEP_PER_CHECK:
        problems.append(Problem(where.locators[0].file, None, "turn_index", "the same problem on "
                                f"{len(dup) - _KEEP_PER_CHECK:,} more rows", len(dup) - _KEEP_PER_CHECK))
    for i in late[:_KEEP_PER_CHECK]:
        file, line = where.where(int(order_np[i + 1]))
        problems.append(Problem(file, line, "timestamp",
                                f"turn {turns[i + 1]} of dialogue {ids[i + 1]!r} is earlier than turn {turns[i]}"))
    if len(late) > _KEEP_PER_CHECK:
        problems.append(Problem(where.locators[0].file, None, "timestamp", "the same problem on "
                                f"{len(late) - _KEEP_PER_CHECK:,} more rows", len(late) - _KEEP_PER_CHECK))
    return problems


# ------------------------------------------------------------------------------------------------ audio


class AudioPathError(ValueError):
    """An ``audio`` value that cannot be served from the audio root: invalid, a URL, or outside the root."""


def audio_root() -> Path | None:
    """The configured audio root (TURNLENS_AUDIO_ROOT), or None when unset. Not checked here: resolve_audio
    refuses a root that does not exist."""
    raw = os.environ.get("TURNLENS_AUDIO_ROOT", "").strip()
    return Path(raw) if raw else None


def resolve_audio(value: str, root: str | Path) -> Path:
    """The file an ``audio`` path names under ``root``, with every symbolic link followed; the file need not
    exist (``audio_problems`` says whether it does). Raises AudioPathError when value is not a valid audio path
    (``log_format.audio_problem``: absolute, a ``..`` segment, a backslash ...), is a URL (nothing to resolve),
    or resolves outside the root: a symbolic link inside the root that points elsewhere is refused, wherever in
    the path it is. Open the returned path, not root/value again: a link changed in between is not followed."""
    problem = audio_problem(value)
    if problem:
        raise AudioPathError(f"{value[:80]!r}: {problem}")
    if is_audio_url(value):
        raise AudioPathError(f"{value[:80]!r} is a URL, not a file under the audio root")
    try:
        base = Path(root).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise AudioPathError(f"the audio root {str(root)!r} cannot be used ({exc})") from None
    if not base.is_dir():
        raise AudioPathError(f"the audio root {str(root)!r} is not a folder")
    try:
        target = base.joinpath(*value.split("/")).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop
        raise AudioPathError(f"{value[:80]!r} cannot be resolved ({exc})") from None
    if not target.is_relative_to(base):
        raise AudioPathError(f"{value[:80]!r} resolves outside the audio root (through a symbolic link)")
    return target


def audio_problems(parsed: ParsedLog, root: str | Path | None, *, allow_missing: bool = False) -> list[Problem]:
    """FILE:LINE problems with the ``audio`` paths of a read log: a path that resolves outside ``root``, and
    (unless allow_missing) one whose file does not exist or is not a file. URLs are not fetched. With audio
    paths but no root, one problem says to set TURNLENS_AUDIO_ROOT. For ingest, before anything is written."""
    values = parsed.table.column("audio").to_pylist()
    rows = [r for r, v in enumerate(values) if v is not None and not is_audio_url(v)]
    if not rows:
        return []

    def where(r: int) -> tuple[str, int | None]:
        return parsed.locate(r) if parsed.locate else (parsed.files[0], r + 1)

    if root is None:
        file, line = where(rows[0])
        return [Problem(file, line, "audio", f"{len(rows):,} turns name an audio file but no audio root is set "
                                             "(TURNLENS_AUDIO_ROOT)", count=len(rows))]
    problems: list[Problem] = []
    for r in rows:
        file, line = where(r)
        try:
            target = resolve_audio(values[r], root)
        except AudioPathError as exc:
            problems.append(Problem(file, line, "audio", str(exc)))
            continue
        if not allow_missing and not target.is_file():
            problems.append(Problem(file, line, "audio", f"{values[r][:80]!r}: no such file under the audio root"))
    return problems
