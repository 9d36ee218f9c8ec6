"""Adapters between turnlens and the labelling tools teams already run (docs/interop.md): each reads the tool's
items into candidate rows (analysis.candidates.CANDIDATE_SCHEMA) and writes reviewed-label export rows in the
tool's shape. Pure Python: the store looks up turns and reads the export rows.

    labelstudio  Label Studio tasks (predictions, annotations); JSON, JSON-MIN and CSV out
    argilla      Argilla v2 records (suggestions, responses)
    prodigy      Prodigy JSONL tasks and db-out examples (answer accept / reject / ignore)
    spans        slot values as character spans: locating them, checking other tools' offsets
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analysis.interop.argilla import read_argilla, write_argilla
from analysis.interop.common import ReadResult, TurnTexts
from analysis.interop.labelstudio import read_labelstudio, write_labelstudio
from analysis.interop.prodigy import read_prodigy, write_prodigy

# Candidate file formats `turnlens candidates import --format` takes besides turnlens's own.
READERS: dict[str, Callable[..., ReadResult]] = {
    "labelstudio": read_labelstudio, "argilla": read_argilla, "prodigy": read_prodigy,
}
# Export formats: name -> (writer(rows, path) -> (items written, rows left out), file suffix).
WRITERS: dict[str, tuple[Callable[[list[dict], str | Path], tuple[int, int]], str]] = {
    "labelstudio": (lambda rows, path: write_labelstudio(rows, path, variant="json"), ".json"),
    "labelstudio-min": (lambda rows, path: write_labelstudio(rows, path, variant="min"), ".json"),
    "labelstudio-csv": (lambda rows, path: write_labelstudio(rows, path, variant="csv"), ".csv"),
    "argilla": (write_argilla, ".json"),
    "prodigy": (write_prodigy, ".jsonl"),
}

__all__ = ["READERS", "WRITERS", "ReadResult", "TurnTexts", "read_argilla", "read_labelstudio", "read_prodigy",
           "write_argilla", "write_labelstudio", "write_prodigy"]
