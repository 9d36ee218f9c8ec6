"""The round trip at scale (slow): 20,000 simulated turns, the logged NLU's candidates and SIMULATED reviews,
exported in each tool's shape and read back; every reviewed label must come back (equal, or differing only in
the case of a slot value located case-insensitively: docs/interop.md, lossy). Prints the figures docs/interop.md
quotes: `.venv/bin/pytest -q -m slow tests/test_interop_scale.py -s -p no:cacheprovider`."""

from __future__ import annotations

import json
import time

import pytest

from analysis.interop import READERS
from analysis.interop.common import reviewed_label
from app import cli, store
from app.store.candidates import get_turn_texts
from app.store.export import list_export_rows

HUMAN_RUN = {"labelstudio": "labelstudio-annotation", "argilla": "argilla-response", "prodigy": "prodigy-answer"}
SUFFIX = {"labelstudio": ".json", "argilla": ".json", "prodigy": ".jsonl"}


def _plain(value: object) -> object:
    """A value with its slots' offsets dropped (the stored labels have none where a reviewer corrected them)."""
    if isinstance(value, list) and all(isinstance(s, dict) and "type" in s for s in value):
        return [{"type": s["type"], "value": s["value"]} for s in value]
    return value


@pytest.mark.slow
def test_every_reviewed_label_comes_back_at_20k_turns(tmp_path, capsys):
    db, log = tmp_path / "m.duckdb", tmp_path / "log.jsonl"
    for argv in (["demo-data", "--turns", "20000", "--out", str(log), "--seed", "0", "--quiet"],
                 ["ingest", str(log), "--dataset", "m", "--db", str(db), "--quiet"],
                 ["candidates", "from-logs", "--dataset", "m", "--db", str(db)],
                 ["simulate-reviews", "--dataset", "m", "--db", str(db), "--reviewers", "1", "--share", "1"]):
        assert cli.main(argv) == 0
    conn = store.connect(db)
    expected: dict[tuple, list] = {}
    for row in list_export_rows(conn, dataset="m", kind="resolved"):
        label = reviewed_label(row)
        if label is not None:
            expected.setdefault((row["dialogue_id"], row["turn_index"], row["task"]), []).append(label)
    conn.close()
    n = sum(len(v) for v in expected.values())
    figures = []
    for fmt in READERS:
        out = tmp_path / f"out-{fmt}{SUFFIX[fmt]}"
        started = time.perf_counter()
        assert cli.main(["export", "--dataset", "m", "--what", "resolved", "--format", fmt, "--out", str(out),
                         "--db", str(db)]) == 0
        exported = time.perf_counter() - started
        conn = store.connect(db, read_only=True)
        started = time.perf_counter()
        read = READERS[fmt](out, turn_texts=lambda k: get_turn_texts(conn, k))  # noqa: B023 (used at once)
        read_s = time.perf_counter() - started
        conn.close()
        back: dict[tuple, list] = {}
        for row in read.table.to_pylist():
            if row["model_name"] == HUMAN_RUN[fmt]:
                back.setdefault((row["dialogue_id"], row["turn_index"], row["task"]), []).append(
                    json.loads(row["value"]))

        def fold(v):
            return json.dumps(_plain(v)).casefold()

        exact = sum(any(_plain(b) == _plain(v) for b in back.get(k, [])) for k, vs in expected.items() for v in vs)
        folded = sum(any(fold(b) == fold(v) for b in back.get(k, [])) for k, vs in expected.items() for v in vs)
        figures.append(f"{fmt}: {n:,} reviewed labels, {exact:,} back equal, {folded:,} equal up to the case of a "
                       f"located slot value; export {exported:.1f} s, read {read_s:.1f} s; skipped {read.skipped}")
        assert folded == n, figures[-1]
        if fmt == "labelstudio":  # how many reviewed slot values the export could place in the utterance
            tasks = json.loads(out.read_text(encoding="utf-8"))
            results = [r for t in tasks for a in t.get("annotations", []) for r in a["result"]]
            located = sum(r["type"] == "labels" for r in results)
            unlocated = sum(len(json.loads(r["value"]["text"][0])) for r in results
                            if r["from_name"].endswith("_unlocated"))
            flagged = sum(t["data"]["span_located"] is False for t in tasks)
            figures.append(f"reviewed slot values: {located:,} located, {unlocated:,} not located "
                           f"({unlocated / (located + unlocated):.1%}); {flagged:,} items say span_located false")
    with capsys.disabled():
        print("\n" + "\n".join(figures))
