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

from analysis.candidates import read_candidates
from analysis.interop.argilla import read_argilla, write_argilla
from analysis.interop.common import ReadResult, TurnTexts
from analysis.interop.labelstudio import read_labelstudio, write_labelstudio
from analysis.interop.prodigy import read_prodigy, write_prodigy

# Candidate file formats `turnlens candidates import --format` takes besides turnlens's own.
READERS: dict[str, Callable[..., ReadResult]] = {
    "labelstudio": read_labelstudio, "argilla": read_argilla, "prodigy": read_prodigy,
}
CANDIDATE_FORMATS = ("turnlens", *READERS)


def read_candidate_file(path: str | Path, *, fmt: str = "turnlens", name: str | None = None,
                        turn_texts: TurnTexts | None = None) -> ReadResult:
    """A candidate file in any format `turnlens candidates import` takes (CANDIDATE_FORMATS), as candidate rows;
    all or nothing (LogFormatError). 'turnlens' is analysis.candidates.read_candidates (its targets are the
    store's check); the tools' adapters also check each item's turn and text against turn_texts. The one reader
    the CLI and the Import page share."""
    if fmt == "turnlens":
        table = read_candidates(path, name=name)
        return ReadResult(table, {}, table.num_rows)
    if fmt not in READERS:
        raise ValueError(f"format must be one of {CANDIDATE_FORMATS}")
    return READERS[fmt](path, name=name, turn_texts=turn_texts)


# Export formats: name -> (writer(rows, path) -> (items written, rows left out), file suffix).
WRITERS: dict[str, tuple[Callable[[list[dict], str | Path], tuple[int, int]], str]] = {
    "labelstudio": (lambda rows, path: write_labelstudio(rows, path, variant="json"), ".json"),
    "labelstudio-min": (lambda rows, path: write_labelstudio(rows, path, variant="min"), ".json"),
    "labelstudio-csv": (lambda rows, path: write_labelstudio(rows, path, variant="csv"), ".csv"),
    "argilla": (write_argilla, ".json"),
    "prodigy": (write_prodigy, ".jsonl"),
}

__all__ = ["CANDIDATE_FORMATS", "READERS", "WRITERS", "ReadResult", "TurnTexts", "read_argilla",
           "read_candidate_file", "read_labelstudio", "read_prodigy", "write_argilla", "write_labelstudio",
           "write_prodigy"]
