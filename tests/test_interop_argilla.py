"""Argilla both ways, through the argilla package itself (v2: rg.Record, rg.Suggestion, rg.Response built and
serialised locally, no server): records with suggestions in as candidates, reviewed labels out as records with
responses that rg.Record.from_dict reads, and back in with the same labels and spans."""

from __future__ import annotations

import copy
import json

import argilla as rg
import pytest

from analysis.interop.argilla import read_argilla, reviewer_id
from analysis.logs import LogFormatError
from app import store
from tests.test_interop_common import (
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


def record(d: str, i: int, text: str, intent: str, spans: list[tuple[int, int, str]], score: float = 0.8) -> rg.Record:
    suggestions = [rg.Suggestion(question_name="intent", value=intent, score=score, agent="nlu-7")]
    if spans:
        suggestions.append(rg.Suggestion(question_name="slots", value=[{"label": label, "start": s, "end": e}
                                                                       for s, e, label in spans],
                                         score=[score] * len(spans), agent="nlu-7"))
    return rg.Record(fields={"text": text}, metadata={"dialogue_id": d, "turn_index": i}, suggestions=suggestions)


def source_records() -> list[dict]:
    t = {(d, i): text for d, i, text in TURNS}
    records = [record("d1", 0, t["d1", 0], "alarm_set", [(14, 19, "time"), (33, 45, "time")]),
               record("d1", 1, t["d1", 1], "calendar_set", [(11, 17, "date")], score=0.6),
               record("d2", 0, t["d2", 0], "play_music", [(5, 9, "genre"), (17, 24, "room")]),
               record("d3", 0, t["d3", 0], "call", [], score=0.4)]
    return [r.to_dict() for r in records]


def write_records(path, records) -> str:
    path.write_text(json.dumps(records, default=str), encoding="utf-8")
    return str(path)


@pytest.fixture
def reviewed(db, tmp_path):
    ingest_turns(db, tmp_path)
    store.insert_candidates(db, read_argilla(write_records(tmp_path / "in.json", source_records()),
                                             turn_texts=lookup(db)).table)
    ids = candidate_ids(db)
    c = lambda d, i, task: ids[("argilla", d, i, task)]  # noqa: E731
    decide(db, c("d1", 0, "intent"), "accept")
    decide(db, c("d1", 0, "slots"), "correct", [{"type": "time", "value": "seven"},
                                                 {"type": "date", "value": "tomorrow"}])
    decide(db, c("d1", 1, "intent"), "reject")
    decide(db, c("d1", 1, "slots"), "accept")
    decide(db, c("d2", 0, "intent"), "correct", "play_radio")
    decide(db, c("d2", 0, "slots"), "accept", reviewer="bo")
    decide(db, c("d3", 0, "intent"), "accept")
    return db


def test_suggestions_become_candidates_from_the_package_records(db, tmp_path):
    ingest_turns(db, tmp_path)
    result = read_argilla(write_records(tmp_path / "in.json", source_records()), turn_texts=lookup(db))
    rows = {(r["dialogue_id"], r["turn_index"], r["task"]): r for r in result.table.to_pylist()}
    assert len(rows) == 7 and {(r["model_name"], r["model_version"]) for r in rows.values()} == {("argilla", "nlu-7")}
    assert rows["d1", 1, "intent"]["score"] == 0.6
    assert json.loads(rows["d1", 0, "slots"]["value"]) == [{"type": "time", "value": "seven", "start": 14, "end": 19},
                                                           {"type": "time", "value": "seven thirty", "start": 33,
                                                            "end": 45}]


def test_the_api_list_spelling_reads_the_same(db, tmp_path):
    ingest_turns(db, tmp_path)
    listed = []
    for r in source_records():
        r = copy.deepcopy(r)
        r["suggestions"] = [{"question_name": q, **s} for q, s in r["suggestions"].items()]
        listed.append(r)
    a = read_argilla(write_records(tmp_path / "a.json", source_records()), turn_texts=lookup(db)).table
    b = read_argilla(write_records(tmp_path / "b.json", listed), turn_texts=lookup(db)).table
    assert a.equals(b)


def test_round_trip_through_rg_record(reviewed, tmp_path):
    db = reviewed
    expected = reviewed_labels(db)
    out, written, _ = export(db, tmp_path, "argilla")
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert written == len(exported) == 7
    # the package reads every exported record; its responses are the reviewed labels
    records = [rg.Record.from_dict(r) for r in exported]
    by = {(r.metadata["dialogue_id"], r.metadata["turn_index"], r.metadata["task"]): r for r in records}
    radio = by["d2", 0, "intent"]
    assert radio.suggestions["intent"].value == "play_music" and radio.suggestions["intent"].agent == "argilla/nlu-7"
    assert [x.value for x in radio.responses["intent"]] == ["play_radio"]
    assert str(by["d2", 0, "slots"].responses["slots"][0].user_id) == reviewer_id("bo")
    assert by["d1", 1, "intent"].metadata["verdict"] == "reject" and not by["d1", 1, "intent"].responses["intent"]
    assert by["d1", 0, "slots"].metadata["span_located"] is False
    # ... and what it serialises again reads back with the same labels and spans
    again = write_records(tmp_path / "again.json", [r.to_dict() for r in records])
    back = read_argilla(again, turn_texts=lookup(db))
    responses = {key: value for key, value in values_of(back.table, "argilla-response").items()}
    assert responses == {**expected, ("d1", 0, "slots"): [{"type": "time", "value": "seven", "start": 14, "end": 19},
                                                          {"type": "date", "value": "tomorrow"}]}
    assert values_of(back.table, "argilla")[("d2", 0, "slots")] == expected[("d2", 0, "slots")]
    store.insert_candidates(db, back.table)


def test_values_no_question_holds_travel_as_json_text(db, tmp_path):
    ingest_turns(db, tmp_path)
    rows = [{"candidate_id": 1, "task": "goal_success", "target_kind": "turn", "dialogue_id": "d2", "turn_index": 0,
             "text": TURNS[2][2], "proposed_value": True, "score": 0.7, "status": "agreed", "verdict": "correct",
             "label": False, "reviewers": ["ana"], "model_name": "m", "model_version": "1", "dataset": "tools"}]
    from analysis.interop.argilla import argilla_records

    records, _ = argilla_records(rows)
    assert records[0]["metadata"]["values_as_json"] is True
    assert records[0]["responses"]["goal_success"][0]["value"] == "false"
    back = read_argilla(write_records(tmp_path / "j.json", records), turn_texts=lookup(db)).table.to_pylist()
    assert {(r["model_name"], json.loads(r["value"])) for r in back} == {("argilla", True),
                                                                         ("argilla-response", False)}


def test_bad_records_name_file_item_and_field_and_write_nothing(db, tmp_path):
    ingest_turns(db, tmp_path)
    good = source_records()
    cases = []
    r = copy.deepcopy(good)
    del r[0]["metadata"]["turn_index"]
    cases.append((r, "x.json: [0].metadata.turn_index: required: the turn's index"))
    r = copy.deepcopy(good)
    r[1]["metadata"]["turn_index"] = 7
    cases.append((r, "x.json: [1].metadata.dialogue_id: no turn 7 of dialogue 'd1' among the stored turns"))
    r = copy.deepcopy(good)
    r[2]["suggestions"]["slots"]["value"][0]["end"] = 40
    cases.append((r, "x.json: [2].suggestions.slots.value[0]: offsets 5..40 are outside the text"))
    r = copy.deepcopy(good)
    r[3]["suggestions"]["intent"]["score"] = None
    cases.append((r, "x.json: [3].suggestions.intent.score: required: the model's confidence"))
    r = copy.deepcopy(good)
    r[3]["suggestions"]["intent"]["agent"] = None
    cases.append((r, "x.json: [3].suggestions.intent.agent: required: the model that suggested it"))
    for records, said in cases:
        with pytest.raises(LogFormatError) as err:
            read_argilla(write_records(tmp_path / "x.json", records), name="x.json", turn_texts=lookup(db))
        assert str(err.value.problems[0]).startswith(said), (said, err.value.problems)
    assert count_candidates(db) == 0


def test_files_written_and_read_by_argillas_own_json_io(reviewed, tmp_path):
    """The file I/O behind dataset.records.to_json / from_json (argilla.records._io.JsonIO), offline: what it
    writes imports, and it reads the export."""
    from argilla.records._io import JsonIO

    db = reviewed
    written = JsonIO.to_json([rg.Record.from_dict(r) for r in source_records()], tmp_path / "to_json.json")
    again = read_argilla(written, turn_texts=lookup(db)).table
    assert again.num_rows == 7 and set(again.column("model_name").to_pylist()) == {"argilla"}
    out, written_n, _ = export(db, tmp_path, "argilla")
    records = JsonIO._records_from_json(out)
    assert len(records) == written_n == 7
    assert sorted(r.responses["intent"][0].value for r in records
                  if r.metadata["task"] == "intent" and r.responses["intent"]) == ["alarm_set", "call", "play_radio"]


def test_only_submitted_responses_are_labels_and_the_others_are_counted(db, tmp_path):
    ingest_turns(db, tmp_path)
    r = source_records()[3]  # d3: a suggestion of 'call'
    r["responses"] = [{"question_name": "intent", "value": "call", "user_id": "u1", "status": "submitted"},
                      {"question_name": "intent", "value": "text", "user_id": "u2", "status": "draft"},
                      {"question_name": "intent", "value": None, "user_id": "u3", "status": "discarded"}]
    read = read_argilla(write_records(tmp_path / "r.json", [r]), turn_texts=lookup(db))
    assert read.skipped == {"response draft": 1, "response discarded": 1}
    assert {(x["model_name"], x["model_version"], json.loads(x["value"])) for x in read.table.to_pylist()} == {
        ("argilla", "nlu-7", "call"), ("argilla-response", "u1", "call")}
