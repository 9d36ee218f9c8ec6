"""The Compare runs page (AppTest): two runs' intents on three turns, judged by gold and by reviews; the turns where
they disagree open their dialogue; with one run it says what is missing."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, candidates_from_logged_nlu
from app import store
from tests.helpers import app_db, intent_turns, open_app_page, write_jsonl
from tests.test_names_as_text import (  # hostile_db: a fixture
    DATASET,
    HOSTILE,
    INTENT,
    MODEL,
    TEXT,
    TEXT_ELEMENTS,
    candidate,
    hostile_db,  # noqa: F401
    markdown_strings,
    strings,
)

PAGE = "app_pages/compare_runs.py"


def turns() -> list[dict]:
    """helpers.intent_turns (logged intents weather_query, music_play, alarm_set) with gold intents weather_query,
    play_music, alarm_set: the logged NLU is right on dlg-0 and dlg-2."""
    gold = ["weather_query", "play_music", "alarm_set"]
    return [{**t, "gold_intent": g} for t, g in zip(intent_turns(), gold, strict=True)]


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """Run A: the logged NLU (weather_query, music_play, alarm_set); run B, stored after it: weather_query,
    play_music, alarm_query. By gold A is right on dlg-0 and dlg-2, B on dlg-0 and dlg-1: 2/3 each, B - A = 0;
    they disagree on dlg-1 and dlg-2."""
    path = app_db(tmp_path / "cmp.duckdb", write_jsonl(tmp_path / "log.jsonl", turns()), monkeypatch, candidates=True)
    conn = store.connect(path)
    try:
        rows = [r for r in candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo"), version="v2").to_pylist()
                if r["task"] == "intent"]
        for r, value in zip(rows, ['"weather_query"', '"play_music"', '"alarm_query"'], strict=True):
            r["value"] = value
        store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    finally:
        conn.close()
    return path


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_by_gold_the_page_compares_the_runs_and_lists_where_they_disagree(two_runs):
    at = open_app_page(PAGE)
    assert at.selectbox(key="cmp_task").value == "intent"
    assert "logged-nlu logged" in at.selectbox(key="cmp_a_intent").format_func(at.selectbox(key="cmp_a_intent").value)
    assert "logged-nlu v2" in at.selectbox(key="cmp_b_intent").format_func(at.selectbox(key="cmp_b_intent").value)
    # nobody has reviewed yet: judged by reviews, nothing to compare
    assert (metrics(at)["Judged for both"], metrics(at)["Accuracy A"]) == ("0", "–")
    assert any("No turn of these runs has a settled label yet" in i.value for i in at.info)
    at.selectbox(key="cmp_ref_intent").set_value("gold").run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Turns both proposed"] == "3" and shown["Judged for both"] == "3"
    assert (shown["Accuracy A"], shown["Accuracy B"], shown["B − A"]) == ("66.7%", "66.7%", "+0.0%")
    by_slice = next(d.value for d in at.dataframe if "domain" in d.value.columns)
    assert by_slice["domain"].tolist()[0] == "(all)" and set(by_slice["domain"][1:]) == {"weather", "music", "alarm"}
    odd = next(d.value for d in at.dataframe if "run_a" in d.value.columns)
    assert odd["dialogue_id"].tolist() == ["dlg-1", "dlg-2"]
    assert odd[["run_a", "run_b", "reference", "right_a", "right_b"]].values.tolist() == [
        ["music_play", "play_music", "play_music", "wrong", "right"],
        ["alarm_set", "alarm_query", "alarm_set", "right", "wrong"]]
    # one click: the selected row opens its dialogue
    at.session_state["cmp_disagreements"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert "Dialogue dlg-2, turn 0" in [t.value for t in at.text]


def test_by_reviews_a_settled_decision_judges_both_runs_and_says_when_reviewers_are_simulated(two_runs):
    conn = store.connect(two_runs)
    try:
        (cid,), = conn.execute("SELECT candidate_id FROM candidates c JOIN model_runs r USING (run_id) WHERE "
                               "task = 'intent' AND version = 'logged' AND dialogue_id = 'dlg-2'").fetchall()
        store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="sim (simulated)",
                              verdict="accept")
    finally:
        conn.close()
    at = open_app_page(PAGE)
    shown = metrics(at)  # dlg-2: A's alarm_set accepted (right), so B's alarm_query is wrong
    assert (shown["Judged for both"], shown["Accuracy A"], shown["Accuracy B"], shown["B − A"]) == (
        "1", "100.0%", "0.0%", "-100.0%")
    assert any("rest on simulated reviewers: 1 of the 1" in w.value for w in at.warning)


def test_with_one_run_the_page_says_what_is_missing(tmp_path, monkeypatch):
    app_db(tmp_path / "one.duckdb", write_jsonl(tmp_path / "log.jsonl", turns()), monkeypatch, candidates=True)
    at = open_app_page(PAGE)
    assert any("No two model runs have proposed values for the same task" in i.value for i in at.info)


def test_names_from_data_are_text_on_the_page(hostile_db):  # noqa: F811
    """A second run on tests/test_names_as_text's database (whose dataset, model, version, intent and request are
    Markdown): the comparison shows them in text elements only."""
    conn = store.connect(hostile_db)
    try:
        rows = [candidate(f"d{i}", "other", 0.5, model="second") for i in range(4)]
        store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    finally:
        conn.close()
    at = open_app_page(PAGE, state={"dataset": DATASET}, params={"dataset": DATASET})
    at.session_state["cmp_disagreements"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    leaks = [(kind, s) for kind, s in markdown_strings(at) for name in HOSTILE if name in s]
    assert not leaks, leaks
    shown = " ".join(s for node in at._tree if node.type in TEXT_ELEMENTS and getattr(node, "proto", None)
                     for s in strings(node.proto))
    assert MODEL in shown and TEXT in shown  # the run picker; the opened dialogue
    odd = next(d.value for d in at.dataframe if "run_a" in d.value.columns)  # a dataframe's cells are text
    assert set(odd["run_a"]) == {INTENT} and set(odd["request"]) == {TEXT}
