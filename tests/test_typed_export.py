"""Typed, Hugging Face-ready labels exports: JSON values in JSON Lines, a struct per task in Parquet (read back
with pandas and with `datasets`), the same columns in every format, and the dataset card beside a Parquet file
(the CLI and the store); the values' JSON text in CSV is covered by test_csv_safety."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.candidates import read_candidates
from analysis.dataset_card import is_slurp_source, type_name
from app import __version__, store
from app.ingest import ingest_files
from app.store import sql
from components.exports import zip_files
from tests.helpers import make_turn, write_jsonl
from tests.test_csv_safety import JSON_COLUMNS, build_every_column, parse_cell


@pytest.fixture
def typed_db(db, tmp_path):
    """Dataset "ds": every shape of value (see build_every_column), no formula starts."""
    build_every_column(db, tmp_path)
    return db


def export(conn, tmp_path, fmt: str, kind: str = "candidates", task: str | None = None, name: str = "labels"):
    out = tmp_path / f"{name}.{fmt}"
    n = store.export_labels(conn, out, dataset="ds", kind=kind, fmt=fmt, task=task)
    return n, out


def jsonl_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_holds_values_as_json_values(typed_db, tmp_path):
    n, out = export(typed_db, tmp_path, "jsonl")
    rows = jsonl_rows(out)
    assert n == len(rows) == 8
    by_task = {(r["task"], r["dialogue_id"]): r for r in rows}
    assert by_task[("intent", "d1")]["label"] == "weather_query"  # not '"weather_query"': encoded once
    assert by_task[("intent", "d2")]["label"] == "not json"  # a correction that was not JSON: that text
    assert by_task[("slots", "d1")]["proposed_value"] == [{"type": "place", "value": "here"}]
    assert by_task[("slots", "d1")]["label"] == [{"type": "place", "value": "there"}, {"type": "time", "value": "noon"}]
    goal = by_task[("goal_success", "d3")]
    assert goal["proposed_value"] is True and goal["label"] is False
    assert by_task[("count", "d2")]["label"] == -3
    assert by_task[("rewrite", "d1")]["label"] is None and by_task[("rewrite", "d1")]["verdict"] == "reject"
    items = by_task[("items", "d2")]
    assert items["label"] == {"slot_type": "food", "items": ["bananas", "paper towels"]}
    assert items["list_slot"] == {"type": "food", "value": ["bananas", "paper towels"]}
    assert by_task[("transcript", "d3")]["transcript"] == "play jazz"
    assert by_task[("slots", "d1")]["reviewers"] == ["ana", "bob"] and by_task[("slots", "d1")]["adjudicator"] == "adj"
    assert all(r["model_parameters"] == {"k": "v"} for r in rows)


def test_parquet_has_one_typed_struct_per_value_column_read_by_pandas_and_datasets(typed_db, tmp_path):
    _, jsonl = export(typed_db, tmp_path, "jsonl")
    n, out = export(typed_db, tmp_path, "parquet")
    exact = jsonl_rows(jsonl)
    schema = pq.read_schema(out)
    assert type_name(schema.field("label").type) == type_name(schema.field("proposed_value").type) == (
        "struct<count: int64, goal_success: bool, intent: string, items: struct<slot_type: string, items: "
        "list<string>>, rewrite: struct<rewrite: string>, slots: list<struct<type: string, value: string>>, "
        "transcript: struct<text: string, corrected: bool>>")
    assert type_name(schema.field("list_slot").type) == "struct<type: string, value: list<string>>"
    assert type_name(schema.field("reviewers").type) == "list<string>"
    assert type_name(schema.field("model_parameters").type) == "json"
    # pandas: the row's value under its own task's field, the others null
    frame = pd.read_parquet(out)
    assert len(frame) == n == len(exact)
    for row, want in zip(frame.to_dict("records"), exact, strict=True):
        assert list(row) == list(want)
        for col in sql.TASK_VALUE_COLUMNS:
            if want[col] is None:
                assert row[col] is None
                continue
            assert _plain(row[col][row["task"]]) == want[col], (row["task"], col)
            assert all(v is None for task, v in row[col].items() if task != row["task"])
    # datasets: typed features, the same values
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    features = ds.features
    assert features["label"] == features["proposed_value"]
    assert features["label"]["intent"] == datasets.Value("string")
    assert features["label"]["goal_success"] == datasets.Value("bool")
    assert features["label"]["count"] == datasets.Value("int64")
    assert features["label"]["slots"] == datasets.List({"type": datasets.Value("string"),
                                                        "value": datasets.Value("string")})
    assert features["list_slot"] == {"type": datasets.Value("string"), "value": datasets.List(datasets.Value("string"))}
    assert features["reviewers"] == datasets.List(datasets.Value("string"))
    assert features["turn_index"] == datasets.Value("int64") and features["score"] == datasets.Value("float64")
    for row, want in zip(ds, exact, strict=True):
        assert (row["label"] or {}).get(row["task"]) == want["label"]
        assert row["proposed_value"][row["task"]] == want["proposed_value"]
        assert row["list_slot"] == want["list_slot"] and row["reviewers"] == want["reviewers"]
        assert row["model_parameters"] == want["model_parameters"]


def _plain(value):
    """pandas' reading of a Parquet value as plain Python (NumPy arrays to lists)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_every_format_has_the_same_columns_and_values(typed_db, tmp_path):
    for kind in store.EXPORT_KINDS:
        _, jsonl = export(typed_db, tmp_path, "jsonl", kind, name=kind)
        _, csv_path = export(typed_db, tmp_path, "csv", kind, name=kind)
        _, parquet = export(typed_db, tmp_path, "parquet", kind, name=kind)
        exact = jsonl_rows(jsonl)
        with open(csv_path, newline="", encoding="utf-8") as fh:
            csv_rows = list(csv.DictReader(fh))
        table = pq.read_table(parquet)
        assert list(exact[0]) == list(csv_rows[0]) == table.column_names, kind
        for want, got_csv, got_pq in zip(exact, csv_rows, table.to_pylist(), strict=True):
            for col, value in want.items():
                if col in JSON_COLUMNS:  # a JSON value; its JSON text in CSV; typed in Parquet
                    assert got_csv[col] == "" if value is None else parse_cell(got_csv[col]) == value, col
                    typed = got_pq[col][want["task"]] if col in sql.TASK_VALUE_COLUMNS and value is not None \
                        else got_pq[col]
                    assert (typed if col != "model_parameters" else json.loads(typed)) == value, col
                elif col.endswith("_at"):
                    assert (value is None) == (got_pq[col] is None) == (got_csv[col] == ""), col
                else:  # text, numbers, nulls: the same in all three
                    assert got_pq[col] == value, col
                    assert got_csv[col] == ("" if value is None else str(value)), col


def test_a_task_whose_values_differ_in_shape_keeps_json_there(db, tmp_path):
    build_every_column(db, tmp_path)
    cid = db.execute("SELECT candidate_id FROM candidates WHERE task = 'count'").fetchone()[0]
    assert store.insert_decision(db, decision_id="6f1f1a4e-0000-4000-8000-000000000001", candidate_id=cid,
                                 reviewer="cy", verdict="correct", corrected_value='"three"', role="adjudicate")
    _, out = export(db, tmp_path, "parquet")
    assert type_name(pq.read_schema(out).field("label").type.field("count").type) == "json"
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    count = next(r for r in ds if r["task"] == "count")  # datasets decodes the JSON: the values as they were
    assert count["label"]["count"] == "three" and count["proposed_value"]["count"] == -3


def test_objects_that_cannot_be_structs_stay_json(db, tmp_path):
    """Keys differing only in case, or an empty key, cannot be struct fields: that object stays JSON."""
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0), make_turn("d2", 0)])], dataset="ds")
    cands = write_jsonl(tmp_path / "c.jsonl", [
        {"task": "odd", "dialogue_id": "d1", "turn_index": 0, "value": {"A": 1, "a": "x", "n": {"": 2}},
         "score": 0.5, "model_name": "m", "model_version": "1"},
        {"task": "fine", "dialogue_id": "d2", "turn_index": 0, "value": {"outer": {"": 1}, "k": 1},
         "score": 0.5, "model_name": "m", "model_version": "1"}])
    store.insert_candidates(db, read_candidates(cands))
    _, out = export(db, tmp_path, "parquet")
    value = pq.read_schema(out).field("proposed_value").type
    assert type_name(value) == "struct<fine: struct<k: int64, outer: json>, odd: json>"
    rows = {r["task"]: r for r in datasets.load_dataset("parquet", data_files=str(out), split="train")}
    assert rows["odd"]["proposed_value"]["odd"] == {"A": 1, "a": "x", "n": {"": 2}}
    assert rows["fine"]["proposed_value"]["fine"] == {"outer": {"": 1}, "k": 1}


def test_task_filter_and_empty_exports(typed_db, tmp_path):
    n, out = export(typed_db, tmp_path, "parquet", task="slots")
    assert n == 1 and type_name(pq.read_schema(out).field("label").type) == (
        "struct<slots: list<struct<type: string, value: string>>>")
    n, out = export(typed_db, tmp_path, "parquet", task="no_such_task", name="empty")
    assert n == 0 and pq.read_table(out).num_rows == 0  # no tasks: the values stay JSON
    assert type_name(pq.read_schema(out).field("label").type) == "json"
    card = store.write_dataset_card(typed_db, out, dataset="ds", kind="candidates", task="no_such_task")
    assert "(no rows: the values are JSON)" in card.read_text(encoding="utf-8")


def test_task_names_are_checked_before_they_become_field_names():
    with pytest.raises(ValueError, match="task names"):
        sql.export_by_task("SELECT 1", ['intent" := 1, "x'])
    with pytest.raises(ValueError, match="task names"):
        sql.export_by_task("SELECT 1", [])


def test_the_dataset_card_says_schema_provenance_and_licence(typed_db, tmp_path):
    n, out = export(typed_db, tmp_path, "parquet", kind="accepted")
    card_path = store.write_dataset_card(typed_db, out, dataset="ds", kind="accepted")
    assert card_path == tmp_path / "README.md"
    card = card_path.read_text(encoding="utf-8")
    header = card.split("---")[1]
    assert "license: other" in header and 'data_files: "labels.parquet"' in header
    assert f"{n:,} rows" in card and f"turnlens {__version__}" in card
    for column in pq.read_schema(out).names:
        assert f"| `{column}` |" in card, column
    assert "| `slots` | `list<struct<type: string, value: string>>` |" in card
    assert "| model | 1 |" in card  # the model run, its version
    assert "| ana |" in card and "| bob |" in card and "| adj | 1 |" in card
    assert "CC BY 4.0" in card and "log0.jsonl" in card
    # the card's YAML points datasets at the file: loading the folder gives the same typed features
    by_folder = datasets.load_dataset(str(tmp_path), split="train")
    by_file = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert by_folder.features == by_file.features and by_folder.num_rows == n


def test_slurp_derived_data_gets_the_cc_by_licence(db, tmp_path):
    log = write_jsonl(tmp_path / "slurp_turns.jsonl", [make_turn("s1", 0)])
    ingest_files(db, [log], dataset="s")
    assert is_slurp_source(str(log)) and is_slurp_source("sample_data/turns.jsonl.gz")
    assert not is_slurp_source("/logs/2026-01.jsonl")
    out = tmp_path / "out" / "labels.parquet"
    out.parent.mkdir()
    store.export_labels(db, out, dataset="s", kind="candidates", fmt="parquet")
    card = store.write_dataset_card(db, out, dataset="s", kind="candidates").read_text(encoding="utf-8")
    assert "license: cc-by-4.0" in card and "its text is CC BY 4.0" in card


def test_cli_export_writes_the_card_beside_a_parquet_file(typed_db, tmp_path):
    path = typed_db.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                            ).fetchone()[0]
    typed_db.close()  # the CLI opens the file itself
    out = tmp_path / "hf" / "labels.parquet"
    done = subprocess.run([sys.executable, "-m", "app.cli", "export", "--what", "accepted", "--dataset", "ds",
                           "--out", str(out), "--db", path], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dataset card" in done.stdout and (tmp_path / "hf" / "README.md").exists()
    ds = datasets.load_dataset(str(tmp_path / "hf"), split="train")
    assert ds.num_rows == pq.read_table(out).num_rows > 0
    # other formats: no card
    done = subprocess.run([sys.executable, "-m", "app.cli", "export", "--dataset", "ds",
                           "--out", str(tmp_path / "j" / "labels.jsonl"), "--db", path],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not (tmp_path / "j" / "README.md").exists()


def test_the_export_pages_zip_holds_the_file_and_its_card(typed_db, tmp_path):
    _, out = export(typed_db, tmp_path, "parquet")
    card = store.write_dataset_card(typed_db, out, dataset="ds", kind="candidates")
    archive = zip_files([out, card])
    assert archive == tmp_path / "labels.zip"
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["labels.parquet", "README.md"]
        assert zf.read("README.md") == card.read_bytes() and zf.read("labels.parquet") == out.read_bytes()
