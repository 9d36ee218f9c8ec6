"""The Rare-word rescoring page (AppTest): with a scored and evaluated run it shows the proposed transcripts, the
held-out evaluation and, once reviewers settle transcripts, the WER measured against them; on a dataset without
rescored n-best lists it shows the dataset that has them and offers to switch; with no run anywhere it says how to
make one."""

from __future__ import annotations

import json
import uuid

import pytest

from app import store
from app.store import rescoring as store_rescoring
from tests.helpers import app_db_copy, open_app_page, simulated_db
from tests.rescoring_fixtures import rescoring_run

PAGE = "app_pages/rescoring.py"


@pytest.fixture
def scored_db(tmp_path_factory):
    return rescoring_run(tmp_path_factory).db


def test_the_page_shows_the_run_its_evaluation_and_its_transcripts(scored_db, tmp_path, monkeypatch):
    app_db_copy(scored_db, tmp_path, monkeypatch)
    at = open_app_page(PAGE, state={"dataset": "speech"})
    assert [h.value for h in at.subheader] == ["Held-out evaluation", "Word error rate against reviewed transcripts",
                                               "Proposed transcripts"]
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Transcripts proposed", "Undecided", "Accepted or corrected"]
    assert {"wer_first_pass", "wer_rescored"} <= {label.replace("\\", "") for label in labels}  # escaped names
    table = next(d.value for d in at.dataframe if "proposed" in d.value.columns)
    assert set(table.columns) >= {"logged", "proposed", "margin", "score", "decision"} and len(table) > 0
    assert (table["score"].diff().dropna() <= 1e-12).all()  # largest score first
    assert any("No transcript has been accepted or corrected yet" in i.value for i in at.info)
    assert "whole speakers" in " ".join(c.value for c in at.caption)


def test_settled_transcripts_become_the_reference(scored_db, tmp_path, monkeypatch):
    db = app_db_copy(scored_db, tmp_path, monkeypatch)
    conn = store.connect(db)
    try:
        run_id = int(store_rescoring.list_rescoring_runs(conn, "speech").iloc[0]["run_id"])
        cands = store_rescoring.list_transcript_candidates(conn, "speech", run_id)
        for cid in cands["candidate_id"].head(3):
            store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(cid), reviewer="ana",
                                  verdict="accept")
        value = json.loads(cands["value"].iloc[3])
        store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(cands["candidate_id"].iloc[3]),
                              reviewer="ana", verdict="correct",
                              corrected_value=json.dumps({**value, "text": "something else entirely"}))
    finally:
        conn.close()
    at = open_app_page(PAGE, state={"dataset": "speech"})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reviewed turns"] == "4" and metrics["Accepted or corrected"] == "4"
    assert float(metrics["WER of the proposals"]) > 0  # the corrected turn's words differ from the proposal
    assert not any("No transcript has been accepted" in i.value for i in at.info)


def test_another_dataset_shows_the_rescored_one_and_switches(scored_db, tmp_path, monkeypatch):
    app_db_copy(scored_db, tmp_path, monkeypatch)
    at = open_app_page(PAGE, state={"dataset": "t"})
    assert any("Shown below: dataset speech" in i.value for i in at.info)
    assert any(m.label == "Transcripts proposed" for m in at.metric)
    next(b for b in at.button if b.label == "Switch the sidebar to speech").click().run()
    assert not at.exception and at.session_state["dataset"] == "speech"
    assert not any("Shown below" in i.value for i in at.info)


def test_without_a_run_the_page_says_how_to_get_one(tmp_path, monkeypatch):
    path = simulated_db(tmp_path / "empty.duckdb", n_turns=50, seed=1)
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_app_page(PAGE)
    assert any("has not proposed transcripts yet" in i.value for i in at.info)
    assert any("Run the rare-word rescoring model" in e.label for e in at.expander)
