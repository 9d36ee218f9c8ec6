"""The coordination family end to end on a stored dataset: train on lists made from its gold slots, score (an
items candidate per turn split into two or more items), evaluate on the held-out dialogues (stored with the run),
a reviewer's corrected split feeding the next training, and the family in the registry and the CLI."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from analysis.candidates import KNOWN_TASKS
from analysis.coordination.evaluate import by_item_count, evaluate_heldout
from analysis.coordination.examples import words
from analysis.coordination.items import corrected_value, disagrees, list_slot, top_items
from analysis.coordination.model import CoordinationModel
from app import store
from app.ingest import ingest_files
from app.jobs import coordination as coord_jobs
from app.jobs import registry
from app.store import coordination as store_coordination
from tests.coordination_fixtures import SMALL, coordination_run


@pytest.fixture
def trained(tmp_path_factory):
    run = coordination_run(tmp_path_factory)
    return run.folder, run.summary, run.scored


def test_train_and_score_store_items_candidates(trained):
    tmp, summary, result = trained
    tmp_db = tmp / "c.duckdb"
    assert summary["turns"] == 600 and summary["examples"] >= coord_jobs.MIN_EXAMPLES
    assert summary["reviewed_labels_used"] == 0 and len(summary["history"]) == 3
    assert result.rows_added == result.rows_read > 0
    conn = store.connect(tmp_db, read_only=True)
    try:
        rows = conn.execute("SELECT c.value, c.score, t.asr_text FROM candidates c JOIN turns t USING (dialogue_id, "
                            "turn_index) WHERE c.task = 'items'").fetchall()
        for value, score, text in rows:
            v = json.loads(value)
            assert len(v["items"]) >= 2 and len(v["spans"]) == len(v["items"]) == len(v["chunk_scores"])
            assert score == pytest.approx(min(v["chunk_scores"]), abs=1e-6)
            # each span highlights its item in the turn's text
            assert [" ".join(words(text[s:e])) for s, e in v["spans"]] == v["items"]
            assert v["slot_type"] is None or isinstance(v["slot_type"], str)
        assert coord_jobs.candidates(store.list_turn_records(conn, "t", production_only=True), tmp / "m").equals(
            coord_jobs.candidates(store.list_turn_records(conn, "t", production_only=True), tmp / "m"))
        runs = store_coordination.list_coordination_runs(conn, "t")
        assert len(runs) == 1 and runs.iloc[0]["candidates"] == len(rows)
        cands = store_coordination.list_item_candidates(conn, "t", int(runs.iloc[0]["run_id"]))
        assert len(cands) == len(rows) and cands["verdict"].isna().all()
    finally:
        conn.close()


def test_quick_evaluation_on_held_out_dialogues(trained):
    tmp, _, _ = trained
    conn = store.connect(tmp / "c.duckdb", read_only=True)
    turns = store.list_turn_records(conn, "t")
    conn.close()
    ev = evaluate_heldout(turns[:150], CoordinationModel.from_pretrained(tmp / "m"), n_boot=50)
    assert ev.family == "coordination" and ev.n_items > 0
    for name in ("exact_match", "items_2.exact_match", "single.false_split_rate", "recognised.exact_match",
                 "baseline.rule.exact_match", "gain_over_rule"):
        assert name in ev.metrics, name
    rows = by_item_count(ev)
    assert [r["items"] for r in rows] == ["1 (no list)", "2", "3", "4+"]
    assert all(0.0 <= r["exact_match"] <= 1.0 for r in rows)
    assert json.loads(ev.to_json())["family"] == "coordination"


def test_a_corrected_split_is_stored_exported_and_trains_the_next_model(trained, tmp_path):
    tmp, _, _ = trained
    db = tmp_path / "copy.duckdb"
    db.write_bytes((tmp / "c.duckdb").read_bytes())
    conn = store.connect(db)
    try:
        cid, value, text = conn.execute("SELECT c.candidate_id, c.value, t.asr_text FROM candidates c JOIN turns t "
                                        "USING (dialogue_id, turn_index) WHERE c.task = 'items' ORDER BY 1 "
                                        "LIMIT 1").fetchone()
        proposed = json.loads(value)
        said = words(text)
        fixed = corrected_value(text, [said[0], " ".join(said[1:3])], "food_type", proposed["logged"])
        assert fixed["items"] == [said[0], " ".join(said[1:3])] and None not in fixed["spans"]
        assert list_slot(fixed) == {"type": "food_type", "value": fixed["items"]}
        store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="ana",
                              verdict="correct", corrected_value=json.dumps(fixed))
        reviewed = coord_jobs.train_inputs(conn, "t", with_reviewed=True)["reviewed"]
        assert list(reviewed.values()) == [fixed]
        summary = coord_jobs.train(conn, "t", tmp_path / "m2", config=replace(SMALL, epochs=1), with_reviewed=True)
        assert summary["reviewed_labels_used"] == 1
    finally:
        conn.close()


def test_candidate_helpers():
    value = {"items": ["bananas", "peanut butter"], "chunk_scores": [0.9, 0.5], "slot_type": "food_type",
             "logged": ["bananas peanut butter"]}
    assert disagrees(value) and not disagrees({**value, "logged": ["Bananas", "peanut  butter"]})
    top = top_items([value, {**value, "items": ["bananas", "milk"], "slot_type": None}])
    assert top[0]["item"] == "bananas" and top[0]["turns"] == 2 and top[0]["mean_chunk_score"] == pytest.approx(0.9)
    assert "(none logged)" in top[0]["slot_types"]


def test_the_family_is_registered_with_its_options():
    family = registry.get("coordination")
    assert family.actions() == ("train", "score", "evaluate") and family.page == "coordination"
    assert family.module == "app.jobs.coordination" and family in registry.built_in()
    parsed = family.parse_options("train", {})
    assert parsed["epochs"] == 6 and parsed["held_out_types"] == ""
    assert coord_jobs.config_from({**parsed, "held_out_types": "auto"}).held_out_types
    with pytest.raises(ValueError, match="not list-able slot types: colour"):
        family.parse_options("train", {"held_out_types": "colour"})
    assert "items" in KNOWN_TASKS


def test_training_needs_list_able_values(db, tmp_path):
    from tests.helpers import make_turn, write_jsonl

    ingest_files(db, [write_jsonl(tmp_path / "l.jsonl", [make_turn("d", 0, gold_slots=[])])], dataset="x")
    with pytest.raises(ValueError, match="at least 50 are needed"):
        coord_jobs.train(db, "x", tmp_path / "m", config=SMALL)
