"""Model vs human parity on the Agreement page (AppTest), on three intent candidates decided by hand."""

from __future__ import annotations

import uuid

import pytest

from app import store
from app.store.parity import list_parity_labels
from tests.helpers import app_db, intent_turns, open_app_page, write_jsonl

PAGE = "app_pages/agreement.py"


def table(at, first: str):
    """The parity table whose first column is ``first`` (task: per task; label: per proposed value)."""
    return next(d.value for d in at.dataframe if d.value.columns[0] == first and "ratio" in d.value.columns)


def decide(conn, decisions: dict[str, dict[int, tuple[str, str | None]]]) -> None:
    for reviewer, verdicts in decisions.items():
        for candidate_id, (verdict, value) in verdicts.items():
            store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=candidate_id, reviewer=reviewer,
                                  verdict=verdict, corrected_value=value)


def parity_db(tmp_path, monkeypatch, second: str):
    """Intent candidates 1-3 (weather_query, music_play, alarm_set), each decided by ana and by ``second``:
    1 both accept (h 1, a 1); 2 ana accepts, the other rejects (h 0, a 1/2); 3 both correct to "x" (h 1, a 0):
    H = 2/3, M = 1/2, R = 3/4."""
    path = app_db(tmp_path / "parity.duckdb", write_jsonl(tmp_path / "log.jsonl", intent_turns()), monkeypatch,
                  candidates=True)
    conn = store.connect(path)
    try:
        ids = conn.execute("SELECT candidate_id FROM candidates WHERE task = 'intent' ORDER BY score").fetchall()
        c1, c2, c3 = (i for (i,) in ids)
        decide(conn, {"ana": {c1: ("accept", None), c2: ("accept", None), c3: ("correct", '"x"')},
                      second: {c1: ("accept", None), c2: ("reject", None), c3: ("correct", '"x"')}})
        labels = list_parity_labels(conn, "demo")
    finally:
        conn.close()
    assert len(labels) == 6 and set(labels.columns) == {"task", "item", "reviewer", "label", "proposal"}
    return path


def test_the_page_shows_parity_per_task_and_per_label_and_says_it_rests_on_simulated_reviewers(tmp_path, monkeypatch):
    parity_db(tmp_path, monkeypatch, "sim (simulated)")
    at = open_app_page(PAGE, reviewer="carl")
    assert "Model vs human parity" in [h.value for h in at.subheader]
    row = table(at, "task").set_index("task").loc["intent"]
    assert (row["items"], row["reviewers"], row["simulated_labels"]) == (3, 2, 3)
    assert row["human_agreement"] == pytest.approx(2 / 3) and row["model_agreement"] == pytest.approx(1 / 2)
    assert row["ratio"] == pytest.approx(3 / 4) and row["ratio_low"] <= 0.75 <= row["ratio_high"]
    assert any("rest on simulated reviewers: 3 of the 6" in w.value for w in at.warning)
    # every proposed value has one candidate: none reaches the 5 the per-label table asks for
    assert table(at, "label").empty
    assert not [i.value for i in at.info if "yet" in i.value]


def test_with_people_only_the_page_says_nothing_about_simulated_reviewers(tmp_path, monkeypatch):
    parity_db(tmp_path, monkeypatch, "bo")
    at = open_app_page(PAGE, reviewer="carl")
    assert not [w.value for w in at.warning if "simulated" in w.value]
    assert table(at, "task").iloc[0]["simulated_labels"] == 0


def test_without_two_reviewers_the_page_says_so(tmp_path, monkeypatch):
    app_db(tmp_path / "one.duckdb", write_jsonl(tmp_path / "log.jsonl", intent_turns()), monkeypatch, candidates=True)
    at = open_app_page(PAGE, reviewer="carl")
    assert any("parity needs the same items" in i.value for i in at.info)
