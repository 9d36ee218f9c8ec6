"""The WER normaliser choice in AppTest: a new dataset's default (english-v1) is preselected, picking raw changes
every WER figure and its name, and the choice carries over to the Dialogues page for that dataset."""

from __future__ import annotations

import json

import pytest

from app import state, store
from app.ingest import ingest_files
from tests.helpers import write_jsonl
from tests.test_pages import chart, dialogue_records, metric, run_page


@pytest.fixture
def default_db(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", dialogue_records())], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def test_overview_preselects_the_datasets_default_and_names_it(default_db):
    at = run_page()
    box = at.selectbox(key="ov_wer_normaliser")
    assert box.value == "english-v1" and box.options == ["raw", "english-v1 (this dataset's default)"]
    # english-v1: "what's" and "what is" agree; the XSS text reads "alert bold" against "hello there": 2 of 12
    assert metric(at, "Pooled WER (english-v1)") == f"{2 / 12:.1%}"
    assert chart(at, "ov_wer")["layout"]["xaxis"]["title"]["text"].startswith("pooled WER (english-v1)")
    assert any("normalised by english-v1" in c.value for c in at.caption)


def test_picking_raw_changes_every_wer_figure_and_carries_to_dialogues(default_db):
    at = run_page()
    at.selectbox(key="ov_wer_normaliser").set_value("raw").run()
    assert not at.exception, at.exception
    # raw: 2 errors ("what is" for "what's") over 5 words, 0/2, 0/2, and 6 errors over 2 words for the XSS text
    assert metric(at, "Pooled WER (raw)") == f"{8 / 11:.1%}"
    # CER beside it: 2 edits ("what is" for "what's"), 0, 0, and 86 for "hello there" against the 92 characters
    # of the XSS text (jiwer.cer gives the same) over 28 + 12 + 9 + 11 reference characters
    assert f"Pooled CER (raw): {88 / 60:.1%}" in " ".join(c.value for c in at.caption)
    over_time = chart(at, "signals_over_time")
    assert {t["name"] for t in over_time["data"]} >= {"pooled WER (raw)"}
    assert at.session_state[state.WER_NORMALISER] == {"demo": "raw"}
    at.switch_page("app_pages/dialogues.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="dl_wer_normaliser").value == "raw"
    table = at.dataframe[0]
    labels = {c: cfg.get("label") for c, cfg in json.loads(table.proto.columns).items()}
    assert labels["pooled_wer"] == "WER (raw)" and labels["pooled_cer"] == "CER (raw)"
    rows = table.value.set_index("dialogue_id")
    assert rows.loc["weather-1", "pooled_wer"] == pytest.approx(2 / 7)
    # and back to the default on the Dialogues page
    at.selectbox(key="dl_wer_normaliser").set_value("english-v1").run()
    assert at.dataframe[0].value.set_index("dialogue_id").loc["weather-1", "pooled_wer"] == 0
