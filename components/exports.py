"""Downloads built from log data, made safe to open in a spreadsheet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from analysis.csv_safety import csv_bytes


def csv_download(frame: pd.DataFrame) -> bytes:
    """The frame as CSV bytes for a download button, written by turnlens's one CSV writer
    (analysis.csv_safety.write_csv, shared with the labels export): every text cell a spreadsheet would run as a
    formula (=, +, -, @, tab or carriage return first) prefixed with an apostrophe, since rewrites, speaker ids
    and cohort labels come from logs; lists and dicts as JSON text."""
    return csv_bytes(frame)


# How the Export page names each format (app/store/export.py: EXPORT_FORMATS and INTEROP_FORMATS).
FORMAT_TITLES = {
    "jsonl": "jsonl", "csv": "csv", "parquet": "parquet",
    "labelstudio": "Label Studio: tasks with annotations (JSON)", "labelstudio-min": "Label Studio: JSON-MIN",
    "labelstudio-csv": "Label Studio: CSV", "argilla": "Argilla: records with responses (JSON)",
    "prodigy": "Prodigy: db-out JSONL (answer accept / reject / ignore)",
}


def zip_files(paths: list[Path]) -> Path:
    """A zip beside the first of paths holding each of them under its own name (a Parquet export and its
    dataset card, say), written again on every call; returns its path."""
    out = paths[0].with_suffix(".zip")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, arcname=path.name)
    return out
