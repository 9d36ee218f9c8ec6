"""Candidates (CANDIDATE_SCHEMA) written as Parquet parts that `turnlens candidates import` reads back unchanged.

A candidate file's Parquet ``value`` column holds the value itself, typed (analysis/candidates.py): a string for an
intent, a boolean for goal_success, a list of structs for slots. One column has one type, so each task gets its own
folder (``task=<task>/part-....parquet``, the hive layout analysis.parquet_parts reads; the task column stays in the
file too). model_parameters and distribution stay JSON text, as the reader accepts them; target_kind and target_key
are left out (the reader derives them). Each part carries the run's provenance (engine, input, family, time) in its
Parquet key-value metadata, which the reader ignores, so a scored run is the same model run as the local path's.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.candidates import DISTRIBUTIONS_CHECKED, canonical_json

# The columns of a candidate Parquet file, in its order (analysis/candidates.py's fields).
FILE_COLUMNS = ("task", "dialogue_id", "turn_index", "other_dialogue_id", "other_turn_index", "value", "score",
                "distribution", "model_name", "model_version", "model_parameters", "run_at")
PROVENANCE_PREFIX = "turnlens."


class UnwritableValueError(ValueError):
    """A task's values have no one Parquet type that reads back as the same JSON."""


def by_task(candidates: pa.Table) -> dict[str, pa.Table]:
    """The candidates of each task as a table of FILE_COLUMNS, value decoded from its JSON text to a typed column.
    UnwritableValueError names the task whose values would not read back the same."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for row in candidates.select(list(FILE_COLUMNS)).to_pylist():
        rows[row["task"]].append(row)
    tables = {}
    for task, task_rows in sorted(rows.items()):
        texts = [r["value"] for r in task_rows]
        try:
            values = pa.array([json.loads(t) for t in texts])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnwritableValueError(f"the {task} values have no single Parquet type ({exc})") from None
        # A struct has every field of the column: a value missing a key would read back with it as null.
        for i, (text, back) in enumerate(zip(texts, values.to_pylist(), strict=True)):
            if canonical_json(back) != text:
                raise UnwritableValueError(f"the {task} value {text[:80]} (row {i + 1} of the batch) would read back "
                                           f"from Parquet as {canonical_json(back)[:80]}")
        base = pa.Table.from_pylist(task_rows, schema=candidates.select(list(FILE_COLUMNS)).schema)
        tables[task] = base.set_column(FILE_COLUMNS.index("value"), "value", values)
    return tables


def write_parts(candidates: pa.Table, filesystem, folder: str, provenance: dict[str, str]) -> list[tuple[str, int]]:
    """Write the candidates under folder (task=<task>/part-<unique>.parquet) through filesystem (a
    pyarrow.fs.FileSystem); provenance goes to each file's metadata as turnlens.<key>. Returns (path, rows) per
    file written; none for an empty table."""
    written = []
    metadata = {f"{PROVENANCE_PREFIX}{k}": str(v) for k, v in provenance.items()}
    for task, table in by_task(candidates).items():
        # (not the scorer's DISTRIBUTIONS_CHECKED mark: a file's vectors are checked again when read)
        kept = {k: v for k, v in (table.schema.metadata or {}).items() if k != DISTRIBUTIONS_CHECKED}
        table = table.replace_schema_metadata({**kept, **metadata})
        directory = f"{folder.rstrip('/')}/task={task}"
        filesystem.create_dir(directory, recursive=True)
        path = f"{directory}/part-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path, filesystem=filesystem)
        written.append((path, table.num_rows))
    return written
