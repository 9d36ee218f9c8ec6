"""The Import page's candidate import and the Export page's tool formats (AppTest): the same choices as the CLI,
a tool's file imported all or nothing with its problems shown as text, reviewed labels exported in each shape."""

from __future__ import annotations

import json

import pytest

from analysis.interop import CANDIDATE_FORMATS
from analysis.interop.labelstudio import read_labelstudio
from app import store
from app.store.export import INTEROP_FORMATS
from tests.helpers import open_app_page
from tests.test_interop_common import DATASET, candidate_ids, count_candidates, decide, ingest_turns, lookup
from tests.test_interop_labelstudio import source_tasks, write_tasks


@pytest.fixture
def turns_db(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    conn = store.connect(path)
    ingest_turns(conn, tmp_path)
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def upload(at, name: str, body: object, fmt: str):
    at.file_uploader(key="candidates_file").set_value((name, json.dumps(body).encode(), "application/json"))
    at.selectbox(key="candidates_format").set_value(fmt)
    next(b for b in at.button if b.label == "Import candidates").click().run()
    assert not at.exception, at.exception


def test_import_page_offers_every_candidate_format_and_imports_a_label_studio_file(turns_db):
    at = open_app_page("app_pages/import_logs.py")
    assert at.selectbox(key="candidates_format").options == [
        "turnlens candidates (.jsonl, .jsonl.gz, .parquet)", "Label Studio tasks (.json, .jsonl)",
        "Argilla records (.json, .jsonl)", "Prodigy tasks (.jsonl, .json)"]
    assert len(CANDIDATE_FORMATS) == 4
    upload(at, "tasks.json", source_tasks(), "labelstudio")
    assert at.success[0].value == "7 candidates read, 7 added, 0 already present."
    conn = store.connect(turns_db)
    try:
        assert count_candidates(conn) == 7
    finally:
        conn.close()


def test_import_page_refuses_a_bad_tool_file_and_shows_where_as_text(turns_db):
    at = open_app_page("app_pages/import_logs.py")
    tasks = source_tasks()
    tasks[2]["data"]["dialogue_id"] = "<b>d9</b>"  # text from a file is shown as text
    upload(at, "tasks.json", tasks, "labelstudio")
    assert at.error[0].value == "Nothing was imported: 1 problem(s)."
    assert at.code[0].value == ("tasks.json: [2].data.dialogue_id: no turn 0 of dialogue '<b>d9</b>' among the "
                                "stored turns (ingest the logs first)")
    conn = store.connect(turns_db)
    try:
        assert count_candidates(conn) == 0
    finally:
        conn.close()


def test_export_page_offers_the_tool_formats_and_writes_them(turns_db, tmp_path):
    conn = store.connect(turns_db)
    tasks = write_tasks(tmp_path / "in.json", source_tasks())
    store.insert_candidates(conn, read_labelstudio(tasks, turn_texts=lookup(conn)).table)
    ids = candidate_ids(conn)
    decide(conn, ids[("labelstudio", "d2", 0, "intent")], "correct", "play_radio")
    decide(conn, ids[("labelstudio", "d2", 0, "slots")], "accept")
    conn.close()
    at = open_app_page("app_pages/export.py", state={"dataset": DATASET})
    assert at.selectbox(key="export_format").options[3:] == [
        "Label Studio: tasks with annotations (JSON)", "Label Studio: JSON-MIN", "Label Studio: CSV",
        "Argilla: records with responses (JSON)", "Prodigy: db-out JSONL (answer accept / reject / ignore)"]
    assert len(INTEROP_FORMATS) == 5
    at.selectbox(key="export_format").set_value("prodigy").run()
    at.button(key="export_go").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "2 items ready."
    path = at.session_state["export_file"]["path"]
    assert path.endswith("-prodigy.jsonl")
    examples = [json.loads(line) for line in open(path, encoding="utf-8").read().splitlines()]
    assert [(e["answer"], e.get("label")) for e in examples] == [("accept", "play_radio"), ("accept", None)]
    assert examples[1]["spans"] == [{"start": 5, "end": 9, "label": "genre"}, {"start": 17, "end": 24, "label": "room"}]
    at.selectbox(key="export_format").set_value("labelstudio-csv").run()
    at.button(key="export_go").click().run()
    assert at.session_state["export_file"]["path"].endswith("-labelstudio-csv.csv")
