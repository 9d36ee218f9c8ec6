"""The labels export: labels with their provenance, streamed by DuckDB to JSON Lines, CSV or Parquet, typed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from analysis import csv_safety, interop
from analysis.dataset_card import CardFacts, dataset_card, is_slurp_source
from app import __version__
from app.store import sql

EXPORT_KINDS = ("accepted", "resolved", "candidates")
EXPORT_FORMATS = ("jsonl", "csv", "parquet")
# The labelling tools' shapes (analysis/interop, docs/interop.md), one item per candidate of a turn, built in memory.
INTEROP_FORMATS = tuple(interop.WRITERS)
# A batch of the CSV export in memory at a time (write_csv streams DuckDB's record batches).
CSV_BATCH_ROWS = 65_536


def export_labels(conn: duckdb.DuckDBPyConnection, path: str | Path, *, dataset: str, kind: str, fmt: str,
                  task: str | None = None) -> int:
    """Write labels with their provenance to path, streamed (never all in memory). Returns rows.

    kind: 'accepted' (accepted or corrected, agreed or adjudicated: training data), 'resolved' (also the
    rejections), 'candidates' (every candidate with its score and resolution, if any).
    The same columns, in the same order, in every format (docs/review.md, Export). proposed_value and label
    hold a value of the row's task (a string intent, a list of slot objects, a boolean, an object):
    - 'jsonl': as JSON values (``"label": "transport_taxi"``), list_slot an object, lists as lists;
    - 'parquet': typed, one column type across tasks: a struct with one field per task in the file, the row's
      value under its own task's field, typed as the task's values are (parquet_task_structures), the other
      fields null; list_slot a struct, lists as lists; Hugging Face datasets reads them as typed features;
    - 'csv': for spreadsheets, through analysis.csv_safety.write_csv: values, labels, lists and list_slot as
      their JSON text (every cell parses back), and every text cell starting with =, +, -, @, a tab or a
      carriage return prefixed with an apostrophe. JSON Lines and Parquet hold the exact values.
    A stored value that is not JSON text is exported as that text, a JSON string.
    """
    if kind not in EXPORT_KINDS or fmt not in EXPORT_FORMATS:
        raise ValueError(f"kind must be one of {EXPORT_KINDS} and format one of {EXPORT_FORMATS}")
    target = str(Path(path).resolve())
    query, params = sql.export_query(kind), [dataset, task, task]
    cur = conn.cursor()
    try:
        if fmt == "csv":
            columns = cur.execute(sql.no_rows(query), params).description
            # a relation streams its batches; a DB-API result would copy all rows first
            reader = cur.sql(sql.as_csv_text(query, columns), params=params).to_arrow_reader(CSV_BATCH_ROWS)
            return csv_safety.write_csv(reader, target)
        if fmt == "parquet":
            structures = parquet_task_structures(cur, query, params)
            if structures:  # no rows, no tasks: the values stay JSON
                query = sql.export_by_task(query, list(structures))
                params = [*structures.values()] * len(sql.TASK_VALUE_COLUMNS) + params
        # sql.copy_to quotes the file name, which COPY cannot take as a parameter
        cur.execute(sql.copy_to(query, target, fmt), params)
        row = cur.fetchone()
        return int(row[0]) if row else 0
    finally:
        cur.close()


def parquet_task_structures(cur: duckdb.DuckDBPyConnection, query: str, params: list) -> dict[str, str]:
    """task -> the JSON structure (json_transform's) its values get in the Parquet export, inferred from the
    proposed values and labels of the export's own rows (DuckDB's json_group_structure). A task whose values
    do not share one shape keeps JSON (a string column with Parquet's JSON type) where they differ; whole
    numbers are BIGINT (signed: a later export with a negative number keeps the type); a part that is always
    empty or null is JSON."""
    rows = cur.execute(sql.task_structures(query), params).fetchall()
    return {task: json.dumps(_portable(json.loads(structure))) for task, structure in rows}


def _portable(structure: object) -> object:
    """A json_group_structure with the types a reader of the Parquet file expects: signed integers, and JSON
    for what no value gave a type to (NULL: only nulls or empty lists were seen) and for an object that cannot
    be a struct (an empty key, or keys differing only in case: struct fields are case-insensitive)."""
    if isinstance(structure, dict):
        keys = [key.lower() for key in structure]
        if not keys or "" in keys or len(set(keys)) < len(keys):
            return "JSON"
        return {key: _portable(value) for key, value in structure.items()}
    if isinstance(structure, list):
        return [_portable(value) for value in structure]
    return {"UBIGINT": "BIGINT", "NULL": "JSON"}.get(structure, structure)


def list_export_rows(conn: duckdb.DuckDBPyConnection, *, dataset: str, kind: str,
                     task: str | None = None) -> list[dict]:
    """The labels export's rows (export_labels' columns, in candidate order) as dicts, proposed_value, label and
    model_parameters decoded from JSON: what the interop writers (analysis/interop) shape for each tool. All in
    memory, unlike export_labels' own formats."""
    if kind not in EXPORT_KINDS:
        raise ValueError(f"kind must be one of {EXPORT_KINDS}")
    cur = conn.cursor()
    try:
        # export_query is built from sql.py's fixed fragments; dataset and task are parameters
        cur.execute(sql.export_query(kind), [dataset, task, task])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        cur.close()
    for row in rows:
        for column in ("proposed_value", "label", "model_parameters"):
            if isinstance(row[column], str):  # DuckDB returns its JSON type as text
                row[column] = json.loads(row[column])
    return rows


def export_interop(conn: duckdb.DuckDBPyConnection, path: str | Path, *, dataset: str, kind: str, fmt: str,
                   task: str | None = None) -> tuple[int, int]:
    """Write the labels export in a labelling tool's shape (fmt: one of INTEROP_FORMATS; docs/interop.md).
    Returns (items written, rows left out because their target is not a turn: a dialogue or a pair)."""
    if fmt not in INTEROP_FORMATS:
        raise ValueError(f"format must be one of {INTEROP_FORMATS}")
    write, _ = interop.WRITERS[fmt]
    return write(list_export_rows(conn, dataset=dataset, kind=kind, task=task), Path(path))


def interop_suffix(fmt: str) -> str:
    """The file suffix of an interop format's file (.json, .jsonl or .csv)."""
    return interop.WRITERS[fmt][1]


CARD_NAME = "README.md"


def write_dataset_card(conn: duckdb.DuckDBPyConnection, parquet_path: str | Path, *, dataset: str, kind: str,
                       task: str | None = None) -> Path:
    """Write the dataset card (analysis.dataset_card: schema, provenance, licence) as README.md beside a Parquet
    file export_labels wrote with these options, and return its path. Its schema is the written file's own;
    its provenance the model runs, reviewers and adjudicators of the exported rows, the dataset's imports,
    the time now and this turnlens's version. A README.md already in that folder is replaced."""
    if kind not in EXPORT_KINDS:
        raise ValueError(f"kind must be one of {EXPORT_KINDS}")
    parquet_path = Path(parquet_path)
    schema = pq.read_schema(parquet_path)
    query, params = sql.export_query(kind), [dataset, task, task]
    cur = conn.cursor()
    try:
        found = {name: cur.execute(statement, params).fetchall()
                 for name, statement in sql.export_provenance(query).items()}
        sources = cur.execute("""
            SELECT sources, strftime(timezone('UTC', imported_at), '%Y-%m-%dT%H:%M:%SZ'), rows_added
            FROM imports WHERE dataset = ? ORDER BY import_id""", [dataset]).fetchall()
        # query is sql.export_query's, built from fixed fragments; the values are parameters
        rows = cur.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0]
    finally:
        cur.close()
    facts = CardFacts(
        file_name=parquet_path.name, dataset=dataset, kind=kind, task=task, rows=int(rows),
        exported_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), version=__version__, schema=schema,
        runs=found["runs"], reviewers=found["reviewers"], adjudicators=found["adjudicators"],
        sources=[(", ".join(_source_names(s)), at, n) for s, at, n in sources],
        slurp_derived=any(is_slurp_source(name) for s, _, _ in sources for name in _source_names(s)))
    card = parquet_path.parent / CARD_NAME
    card.write_text(dataset_card(facts), encoding="utf-8")
    return card


def _source_names(sources: str) -> list[str]:
    """An import's sources as stored (a JSON list of names; older rows: the text itself)."""
    try:
        names = json.loads(sources)
    except ValueError:
        return [sources]
    return [str(n) for n in names] if isinstance(names, list) else [str(names)]
