"""Prodigy both ways, against its documented JSONL (Prodigy is proprietary: no package to install): tasks in as
candidates (the documented ner_manual and classification examples, model suggestions with meta.score),
reviewed labels out as db-out examples with answer accept / reject / ignore, and back in."""

from __future__ import annotations

import json

import pytest

from analysis.interop.prodigy import read_prodigy
from analysis.logs import LogFormatError
from app import store
from tests.helpers import write_jsonl
from tests.test_interop_common import (
    DATA,
    TURNS,
    candidate_ids,
    count_candidates,
    decide,
    export,
    ingest_turns,
    lookup,
    reviewed_labels,
    values_of,
)


def source_tasks() -> list[dict]:
    t = {(d, i): text for d, i, text in TURNS}

    def meta(d, i, score, task=None):
        return {"dialogue_id": d, "turn_index": i, "score": score, "model_name": "nlu", "model_version": "7",
                **({"task": task} if task else {})}

    return [
        {"text": t["d1", 0], "label": "alarm_set", "meta": meta("d1", 0, 0.8)},
        {"text": t["d1", 0], "spans": [{"start": 14, "end": 19, "label": "time"},
                                       {"start": 33, "end": 45, "label": "time"}], "meta": meta("d1", 0, 0.7)},
        {"text": t["d1", 1], "label": "calendar_set", "meta": meta("d1", 1, 0.6)},
        {"text": t["d1", 1], "spans": [{"start": 11, "end": 17, "label": "date"}], "meta": meta("d1", 1, 0.9)},
        {"text": t["d2", 0], "label": "play_music", "meta": meta("d2", 0, 0.8)},
        {"text": t["d2", 0], "spans": [{"start": 5, "end": 9, "label": "genre"},
                                       {"start": 17, "end": 24, "label": "room"}], "meta": meta("d2", 0, 0.8)},
        {"text": t["d3", 0], "options": [{"id": "call", "text": "Call"}, {"id": "text", "text": "Text"}],
         "accept": ["call"], "meta": meta("d3", 0, 0.4)},
    ]


@pytest.fixture
def reviewed(db, tmp_path):
    ingest_turns(db, tmp_path)
    store.insert_candidates(db, read_prodigy(write_jsonl(tmp_path / "in.jsonl", source_tasks()),
                                             turn_texts=lookup(db)).table)
    ids = candidate_ids(db)
    c = lambda d, i, task: ids[("nlu", d, i, task)]  # noqa: E731
    decide(db, c("d1", 0, "intent"), "accept")
    decide(db, c("d1", 0, "slots"), "correct", [{"type": "time", "value": "seven"},
                                                 {"type": "date", "value": "tomorrow"}])
    decide(db, c("d1", 1, "intent"), "reject")
    decide(db, c("d1", 1, "slots"), "accept")
    decide(db, c("d2", 0, "intent"), "correct", "play_radio")
    decide(db, c("d2", 0, "slots"), "accept")
    # d3's intent stays undecided: ignore
    return db


def test_documented_examples_read(db, tmp_path):
    examples = [json.loads(line) for line in (DATA / "prodigy_interfaces.jsonl").read_text().splitlines()]
    ingest_turns(db, tmp_path, [("p", i, e["text"]) for i, e in enumerate(examples)], dataset="docs")
    for i, e in enumerate(examples):  # the turn each labels, and a score: the documented tasks have neither
        e["meta"] = {"dialogue_id": "p", "turn_index": i, "score": 0.5}
    rows = read_prodigy(write_jsonl(tmp_path / "p.jsonl", examples), turn_texts=lookup(db)).table.to_pylist()
    assert [(r["task"], json.loads(r["value"])) for r in rows] == [
        ("slots", [{"type": "PRODUCT", "value": "MacBook Pro", "start": 22, "end": 33}]), ("intent", "TECHNOLOGY")]
    assert {(r["model_name"], r["model_version"]) for r in rows} == {("prodigy", "unversioned")}


def test_answers_in_db_out(reviewed, tmp_path):
    out, written, _ = export(reviewed, tmp_path, "prodigy", kind="candidates")
    examples = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == len(examples) == 7
    by = {(e["meta"]["dialogue_id"], e["meta"]["turn_index"], e["meta"]["task"]): e for e in examples}
    assert (by["d1", 0, "intent"]["answer"], by["d1", 0, "intent"]["label"]) == ("accept", "alarm_set")
    assert (by["d2", 0, "intent"]["answer"], by["d2", 0, "intent"]["label"]) == ("accept", "play_radio")  # corrected
    assert json.loads(by["d2", 0, "intent"]["meta"]["proposed_value"]) == "play_music"
    assert (by["d1", 1, "intent"]["answer"], by["d1", 1, "intent"]["label"]) == ("reject", "calendar_set")
    assert by["d3", 0, "intent"]["answer"] == "ignore" and "_annotator_id" not in by["d3", 0, "intent"]
    assert by["d1", 0, "slots"]["spans"] == [{"start": 14, "end": 19, "label": "time"}]
    assert by["d1", 0, "slots"]["meta"]["unlocated_slots"] == [{"type": "date", "value": "tomorrow", "at": 1}]
    assert by["d1", 0, "slots"]["meta"]["span_located"] is False
    assert all(isinstance(e["_input_hash"], int) and isinstance(e["_task_hash"], int) for e in examples)
    assert by["d1", 0, "intent"]["_input_hash"] == by["d1", 0, "slots"]["_input_hash"]  # same text, same input
    assert by["d1", 0, "intent"]["_task_hash"] != by["d1", 0, "slots"]["_task_hash"]


def test_round_trip_keeps_labels_and_spans(reviewed, tmp_path):
    db = reviewed
    expected = reviewed_labels(db)
    out, _, _ = export(db, tmp_path, "prodigy")
    back = read_prodigy(out, turn_texts=lookup(db))
    assert back.skipped == {"answer reject": 1}
    assert values_of(back.table, "prodigy-answer") == {
        **expected, ("d1", 0, "slots"): [{"type": "time", "value": "seven", "start": 14, "end": 19},
                                          {"type": "date", "value": "tomorrow"}]}
    assert {r["model_version"] for r in back.table.to_pylist()} == {"ana"}  # the reviewer, as _annotator_id
    store.insert_candidates(db, back.table)


def test_bad_tasks_name_file_line_and_field_and_write_nothing(db, tmp_path):
    ingest_turns(db, tmp_path)
    cases = [
        ({"text": TURNS[0][2], "label": "x", "meta": {"turn_index": 0, "score": 0.5}},
         "x.jsonl:2: meta.dialogue_id: required"),
        ({"text": TURNS[0][2], "label": "x", "meta": {"dialogue_id": "d7", "turn_index": 0, "score": 0.5}},
         "x.jsonl:2: meta.dialogue_id: no turn 0 of dialogue 'd7'"),
        ({"text": TURNS[2][2], "spans": [{"start": 5, "end": 9, "label": "genre", "text": "jaz"}],
          "meta": {"dialogue_id": "d2", "turn_index": 0, "score": 0.5}}, "x.jsonl:2: spans[0]: offsets 5..9 give"),
        ({"text": TURNS[2][2], "label": "x", "meta": {"dialogue_id": "d2", "turn_index": 0}},
         "x.jsonl:2: meta.score: required"),
        ({"text": TURNS[2][2], "label": "x", "answer": "maybe", "meta": {"dialogue_id": "d2", "turn_index": 0}},
         "x.jsonl:2: answer: expected one of accept, reject, ignore"),
    ]
    first = source_tasks()[0]
    for bad, said in cases:
        path = write_jsonl(tmp_path / "x.jsonl", [first, bad])
        with pytest.raises(LogFormatError) as err:
            read_prodigy(path, name="x.jsonl", turn_texts=lookup(db))
        assert str(err.value.problems[0]).startswith(said), (said, err.value.problems)
    with pytest.raises(LogFormatError, match="x.jsonl:2"):
        read_prodigy(write_jsonl(tmp_path / "x.jsonl", [first, '{"text": "a",']), name="x.jsonl")
    assert count_candidates(db) == 0
