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
import os
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

MAX_LINE_BYTES = int(os.environ.get("TURNLENS_MAX_LINE_BYTES", 1 << 20))
MAX_PROBLEMS_SHOWN = 50
SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".parquet", ".csv")

# Fields read as strings first, then parsed: Arrow's JSON reader cannot parse offsets in timestamps.
_RAW_SCHEMA = pa.schema(
    [pa.field(f.name, pa.string() if f.kind == "timestamp" else arrow_type(f)) for f in FIELDS]
)
_LIST_KINDS = {"string_list", "float_list", "slots"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. line is 1-based (a row number for Parquet); None for the file."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class LogFormatError(ValueError):
    """The input is not a valid dialogue log; nothing was read. ``problems`` lists what is wrong."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: Sequence[Problem], limit: int = MAX_PROBLEMS_SHOWN) -> str:
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more problems ({len(problems)} in all)")
    return "\n".join(lines)


@dataclass
class ParsedLog:
    """Validated turns of one or more files, in ``TURN_SCHEMA``."""

    table: pa.Table
    files: list[str]
    unknown_fields: dict[str, int] = field(default_factory=dict)  # name -> rows carrying it


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
    cross = _check_keys(combined, _MultiLocator(locators))
    if cross:
        raise LogFormatError(cross)
    return ParsedLog(combined, [str(p) for p in paths], unknown)


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
    # Plain files go to Arrow by path (memory-mapped, no copy through Python); gzip is decompressed first.
    data = _read_bytes(path, kind, name) if kind == "jsonl.gz" else None
    source = pa.BufferReader(pa.py_buffer(data)) if data is not None else str(path)

    def load() -> bytes:
        return data if data is not None else _read_bytes(path, kind, name)

    try:
        # One block per MAX_LINE_BYTES: a longer record fails here and is then reported by line.
        table = pj.read_json(
            source,
            read_options=pj.ReadOptions(block_size=max(MAX_LINE_BYTES, 1 << 16)),
            parse_options=pj.ParseOptions(explicit_schema=_RAW_SCHEMA, unexpected_field_behavior="infer"),
        )
        # A line holding `null` or `{}` reads as a row with every field null: let the exact path say which.
        if table.num_rows and pc.any(pc.and_(pc.is_null(table.column("dialogue_id")),
                                             pc.is_null(table.column("asr_text")))).as_py():
            raise pa.ArrowInvalid("a record that is not an object")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _records_to_raw(name, _jsonl_records(name, load()))
    return table, _Locator(name, load=load)


def _jsonl_records(name: str, data: bytes) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            yield lineno, None, [Problem(name, lineno, None,
                                         f"line is {len(line):,} bytes, over the limit of {MAX_LINE_BYTES:,} "
                                         "(set TURNLENS_MAX_LINE_BYTES to change it)")]
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
            col = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            yield lineno, None, [Problem(name, lineno, None, f"invalid JSON: {msg}{col}")]
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
    reader = csv.reader(io.StringIO(text, newline=""))
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
            if low in ("true", "1"):
                record[key] = True
            elif low in ("false", "0"):
                record[key] = False
            else:
                problems.append(Problem(name, line, key, f"expected true or false, got {cell!r}"))
        else:
            try:
                record[key] = int(cell) if f.kind == "int" else float(cell)
            except ValueError:
                problems.append(Problem(name, line, key, f"expected {_KIND_WORD[f.kind]}, got {cell!r}"))
    return record, problems


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
        columns["__extra__" + extra] = pa.array(
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
        for row in idx[: MAX_PROBLEMS_SHOWN * 4]:
            problems.append(Problem(locator.file, locator.line(int(row)), fname, message(int(row))))
        if len(idx) > MAX_PROBLEMS_SHOWN * 4:
            # Keep the count honest without materialising millions of messages.
            problems.append(Problem(locator.file, None, fname,
                                    f"the same problem on {len(idx) - MAX_PROBLEMS_SHOWN * 4:,} more rows"))

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
                report(pc.fill_null(pc.is_nan(values), False), f.name, lambda r: "must be a finite number")
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
            flat = pc.list_flatten(col)
            if len(flat) and pc.any(pc.is_nan(flat)).as_py():
                nan_rows = np.zeros(n, dtype=bool)
                for r, v in enumerate(col.to_pylist()):
                    nan_rows[r] = v is not None and any(math.isnan(x) for x in v)
                report(nan_rows, f.name, lambda r: "contains NaN")
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
    unknown = {c.removeprefix("__extra__"): int(n - raw.column(c).null_count) for c in extra_cols}
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
    n = raw.num_rows
    if not extra_cols:
        return pa.chunked_array([pa.nulls(n, type=pa.string())])
    values = {c: raw.column(c).to_pylist() for c in extra_cols}
    pre_encoded = {c: c.startswith("__extra__") for c in extra_cols}
    out: list[str | None] = []
    for i in range(n):
        obj = {}
        for c in extra_cols:
            v = values[c][i]
            if v is None:
                continue
            key = c.removeprefix("__extra__")
            obj[key] = json.loads(v) if pre_encoded[c] else v
        out.append(json.dumps(obj, sort_keys=True, default=str) if obj else None)
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
    for i in np.flatnonzero(same_dialogue & (turns[1:] == turns[:-1]))[: MAX_PROBLEMS_SHOWN]:
        file, line = where.where(int(order_np[i + 1]))
        first_file, first_line = where.where(int(order_np[i]))
        problems.append(Problem(file, line, "turn_index",
                                f"duplicate turn {turns[i + 1]} of dialogue {ids[i + 1]!r} "
                                f"(also at {first_file}:{first_line})"))
    for i in np.flatnonzero(same_dialogue & (turns[1:] != turns[:-1]) & (times[1:] < times[:-1]))[
            : MAX_PROBLEMS_SHOWN]:
        file, line = where.where(int(order_np[i + 1]))
        problems.append(Problem(file, line, "timestamp",
                                f"turn {turns[i + 1]} of dialogue {ids[i + 1]!r} is earlier than turn {turns[i]}"))
    return problems
