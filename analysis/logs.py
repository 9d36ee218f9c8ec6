"""Read dialogue logs (JSON Lines, .jsonl.gz, Parquet, CSV), validate them against format v1, and
normalise them into one Arrow table (``log_format.TURN_SCHEMA``).

Reading is all or nothing: any problem raises ``LogFormatError`` listing every problem as
``FILE:LINE: field: what is wrong``. The fast path lets Arrow's C++ JSON reader parse and type-check
the whole file, then checks values column-wise; only when that fails does the exact per-line path run,
to say precisely where and what.
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
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from analysis.log_format import FIELD_BY_NAME, FIELDS, TURN_SCHEMA, Field, arrow_type

MAX_PROBLEMS_SHOWN = 50
_KEEP_PER_CHECK = 200  # problems materialised per check; the rest are counted, not listed
_INT64 = (-(2**63), 2**63 - 1)


def max_line_bytes() -> int:
    """The longest record line accepted (TURNLENS_MAX_LINE_BYTES, default 1 MiB)."""
    raw = os.environ.get("TURNLENS_MAX_LINE_BYTES", str(1 << 20))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"TURNLENS_MAX_LINE_BYTES must be a whole number of bytes, got {raw!r}") from None
    if value < 1024:
        raise ValueError(f"TURNLENS_MAX_LINE_BYTES must be at least 1024, got {value}")
    return value
SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".parquet", ".csv")

# Fields read as strings first, then parsed: Arrow's JSON reader cannot parse offsets in timestamps.
_RAW_SCHEMA = pa.schema(
    [pa.field(f.name, pa.string() if f.kind == "timestamp" else arrow_type(f)) for f in FIELDS]
)
_LIST_KINDS = {"string_list", "float_list", "slots"}
_EXTRA = "__extra__"  # prefix of the internal columns holding unknown fields as JSON text


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


def _read_bytes(path: Path, kind: str, name: str) -> bytes:
    raw = path.read_bytes()
    if kind == "jsonl.gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise LogFormatError([Problem(name, None, None, f"cannot be read as gzip ({exc})")]) from exc
    return raw


# ------------------------------------------------------------------------------------------ public


def read_logs(paths: Sequence[str | Path], *, progress: Callable[[int], None] | None = None,
              names: Sequence[str] | None = None) -> ParsedLog:
    """Read and validate several files as one input (duplicates and time order are checked across them).

    progress, if given, is called with the number of rows read so far after each file. names, if given,
    replaces each path in messages (e.g. the original name of an uploaded file).
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
            table, locator, file_unknown = _read_one(Path(path), names[i] if names else str(path))
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
    """Maps row indices of a file's table to the file's line numbers (computed only when needed)."""

    def __init__(self, file: str, lines: np.ndarray | None = None,
                 load: Callable[[], bytes] | None = None):
        self.file = file
        self._lines = lines
        self._load = load  # reads the file's text again, only if a line number is ever needed
        self.n_rows = 0

    def line(self, row: int) -> int:
        if self._lines is None:
            if self._load is None:  # Parquet: the row number is the location
                return row + 1
            # Record rows are the non-blank lines, in order; blank lines are skipped by the reader.
            lines = [i + 1 for i, text in enumerate(self._load().split(b"\n")) if text.strip()]
            self._lines = np.asarray(lines, dtype=np.int64)
            self._load = None
        return int(self._lines[row])


class _MultiLocator:
    def __init__(self, locators: Sequence[_Locator]):
        self.locators = list(locators)
        self.starts = np.cumsum([0] + [loc.n_rows for loc in self.locators])

    def where(self, row: int) -> tuple[str, int]:
        i = int(np.searchsorted(self.starts, row, side="right")) - 1
        loc = self.locators[i]
        return loc.file, loc.line(row - int(self.starts[i]))


# --------------------------------------------------------------------------------------- one file


def _read_one(path: Path, name: str) -> tuple[pa.Table, _Locator, dict[str, int]]:
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
        raw, locator = _read_csv(name, _read_bytes(path, kind, name))
    else:
        raw, locator = _read_jsonl(path, kind, name)
    if raw.num_rows == 0:
        raise LogFormatError([Problem(name, None, None, "file is empty (no records)")])
    locator.n_rows = raw.num_rows
    table, unknown, problems = _normalise(raw, locator)
    if problems:
        raise LogFormatError(problems)
    return table, locator, unknown


def _read_jsonl(path: Path, kind: str, name: str) -> tuple[pa.Table, _Locator]:
    limit = max_line_bytes()
    if kind == "jsonl.gz":
        data: bytes | mmap.mmap = _read_bytes(path, kind, name)
    else:
        with open(path, "rb") as fh:  # mapped, not copied: Arrow and NumPy read the page cache directly
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def load() -> bytes:
        return data[:] if isinstance(data, mmap.mmap) else data

    # Where the lines are, in one vectorised pass: it gives the longest line, and which lines hold records.
    newlines = _newline_positions(data)
    starts = np.concatenate(([0], newlines + 1))
    lengths = np.concatenate((newlines, [len(data)])) - starts
    record_lines = np.flatnonzero(lengths > 2) + 1  # a record is at least "{}"; shorter lines are blank
    fast = int(lengths.max(initial=0)) <= limit
    table = None
    if fast:
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
    # holding null or {}, unknown fields (Arrow would coerce their types; extras must stay as written).
    if (table is None or table.num_rows != len(record_lines) or set(table.column_names) - set(_RAW_SCHEMA.names)
            or (table.num_rows and pc.any(pc.and_(pc.is_null(table.column("dialogue_id")),
                                                  pc.is_null(table.column("asr_text")))).as_py())):
        return _records_to_raw(name, _jsonl_records(name, load(), limit))
    return table, _Locator(name, lines=record_lines)


def _newline_positions(data: bytes | mmap.mmap) -> np.ndarray:
    """Offsets of every b"\\n". In 8 MiB slices: one comparison over a whole 1 GB file would first build a
    1 GB mask, about ten times slower than slices that stay in the CPU cache."""
    arr = np.frombuffer(data, dtype=np.uint8)
    step = 8 << 20
    parts = [np.flatnonzero(arr[start:start + step] == 10) + start for start in range(0, len(arr), step)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON (numbers must be finite)")


def _too_long(name: str, line: int, size: int, limit: int) -> Problem:
    return Problem(name, line, None, f"record is {size:,} bytes, over the limit of {limit:,} "
                                     "(set TURNLENS_MAX_LINE_BYTES to change it)")


def _jsonl_records(name: str, data: bytes, limit: int) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(line) > limit:
            yield lineno, None, [_too_long(name, lineno, len(line), limit)]
            continue
        try:
            record = json.loads(line, parse_constant=_no_constants)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                msg = f"{exc.msg} at column {exc.colno}"
            elif isinstance(exc, UnicodeDecodeError):
                msg = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
            else:
                msg = str(exc)
            yield lineno, None, [Problem(name, lineno, None, f"invalid JSON: {msg}")]
            continue
        if not isinstance(record, dict):
            yield lineno, None, [Problem(name, lineno, None,
                                         f"expected a JSON object, got {_json_type(record)}")]
            continue
        yield lineno, record, []


def _read_csv(name: str, data: bytes) -> tuple[pa.Table, _Locator]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = Problem(name, None, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
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
        elif f is None or f.kind in ("string", "timestamp"):
            record[key] = cell
        elif f.kind in _LIST_KINDS:
            try:
                record[key] = json.loads(cell)
            except json.JSONDecodeError as exc:
                problems.append(Problem(name, line, key, f"expected a JSON list, got invalid JSON ({exc.msg})"))
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
    if kind == "string":
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
    if kind == "string_list":
        return pa.types.is_string(item) or pa.types.is_large_string(item) or pa.types.is_null(item)
    if kind == "float_list":
        return pa.types.is_integer(item) or pa.types.is_floating(item) or pa.types.is_null(item)
    return pa.types.is_struct(item) and all(
        item.get_field_index(n) >= 0 and (pa.types.is_string(item.field(n).type)
                                          or pa.types.is_large_string(item.field(n).type))
        for n in ("type", "value"))


def _read_parquet(path: Path, name: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LogFormatError([Problem(name, None, None, f"cannot be read as Parquet ({exc})")]) from exc
    problems: list[Problem] = []
    columns, names = [], []
    for col_name in table.column_names:
        col = table.column(col_name)
        f = FIELD_BY_NAME.get(col_name)
        if f is not None and not _parquet_type_ok(f.kind, col.type):
            problems.append(Problem(name, None, col_name,
                                    f"column has type {col.type}, expected {_KIND_WORD[f.kind]}"))
            continue
        if f is not None:
            target = pa.string() if f.kind == "timestamp" and (pa.types.is_string(col.type)
                                                               or pa.types.is_large_string(col.type)) \
                else arrow_type(f)
            if f.kind == "timestamp" and pa.types.is_timestamp(col.type):
                col = col.cast(pa.timestamp("us", tz=col.type.tz or "UTC")).cast(arrow_type(f))
                target = arrow_type(f)
            try:
                col = col.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                problems.append(Problem(name, None, col_name,
                                        f"column has type {col.type}, expected {_KIND_WORD[f.kind]} ({target})"))
                continue
        if f is None:
            # An unknown column: kept as JSON text per row, like unknown fields of JSON Lines.
            col = pa.chunked_array([pa.array([None if v is None else json.dumps(v, default=str)
                                              for v in col.to_pylist()], type=pa.string())])
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
    if kind in ("string", "timestamp"):
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
    elif kind == "float_list":
        ok = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                             for v in value)
    else:  # slots
        ok = isinstance(value, list) and all(
            isinstance(v, dict) and isinstance(v.get("type"), str) and isinstance(v.get("value"), str)
            for v in value)
    return None if ok else f"expected {_KIND_WORD[kind]}, got {_json_type(value)}"


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
        for f in FIELDS:
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
    known = {f.name for f in FIELDS}
    columns = {f.name: pa.array([r.get(f.name) for r in rows], type=_RAW_SCHEMA.field(f.name).type)
               for f in FIELDS}
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
    for f in FIELDS:
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
            col, bad_ts = _parse_timestamps(col)
            report(bad_ts, f.name, lambda r, c=text_col: f"{c[r].as_py()!r} is not an ISO 8601 timestamp")
        columns[f.name] = col.cast(arrow_type(f))

    extra_cols = [c for c in raw.column_names if c not in FIELD_BY_NAME]
    unknown = {c.removeprefix(_EXTRA): int(n - raw.column(c).null_count) for c in extra_cols}
    columns["extras"] = _extras_json(raw, extra_cols)
    table = pa.table(columns, schema=TURN_SCHEMA) if not problems else pa.table(
        {k: v for k, v in columns.items()})
    return table, {k: v for k, v in unknown.items() if v}, problems


def _clean_slots(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Keep only {type, value} of each slot (Arrow infers any extra keys as more struct children)."""
    value_type = col.type.value_type
    if value_type == pa.struct([("type", pa.string()), ("value", pa.string())]):
        return col
    return pa.chunked_array([
        pa.array([None if v is None else [{"type": s.get("type"), "value": s.get("value")} for s in v]
                  for v in col.to_pylist()], type=pa.list_(pa.struct([("type", pa.string()),
                                                                      ("value", pa.string())])))])


def _parse_timestamps(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """ISO 8601 strings -> UTC timestamps. Strings without an offset are read as UTC."""
    target = pa.timestamp("us", tz="UTC")
    if pa.types.is_timestamp(col.type):
        return col.cast(target), np.zeros(len(col), dtype=bool)
    has_zone = pc.fill_null(pc.match_substring_regex(col, r"(Z|z|[+-]\d\d(:?\d\d)?)$"), False)
    try:
        if pc.all(pc.or_(has_zone, pc.is_null(col))).as_py():
            parsed = pc.cast(col, target)
        else:
            naive = pc.cast(pc.if_else(has_zone, None, col), pa.timestamp("us"))
            zoned = pc.cast(pc.if_else(has_zone, col, None), target)
            parsed = pc.if_else(has_zone, zoned, pc.assume_timezone(naive, "UTC"))
        return parsed, np.zeros(len(col), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some value did not parse: do it one by one to say which.
    out: list[datetime | None] = []
    bad = np.zeros(len(col), dtype=bool)
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
        out.append(value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))
    return pa.chunked_array([pa.array(out, type=target)]), bad


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
