"""Label Studio both ways: tasks with predictions in as candidates (Label Studio's documented NER example, and
tasks as turnlens's users write them), reviewed labels out as tasks with annotations, JSON-MIN and CSV, and
back in with the same labels and spans; bad input refused with file, item and field, nothing written."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from analysis.interop.labelstudio import labelstudio_tasks, read_labelstudio
from analysis.logs import LogFormatError
from app import store
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


def region(task: str, kind: str, value: dict, **extra) -> dict:
    return {"from_name": task, "to_name": "text", "type": kind, "value": value, **extra}


def span(start: int, end: int, text: str, label: str) -> dict:
    return region("slots", "labels", {"start": start, "end": end, "text": text, "labels": [label]})


def ls_task(d: str, i: int, text: str, result: list[dict], score: float = 0.8, version: str = "nlu-7") -> dict:
    return {"data": {"text": text, "dialogue_id": d, "turn_index": i},
            "predictions": [{"model_version": version, "score": score, "result": result}]}


def source_tasks() -> list[dict]:
    t = {(d, i): text for d, i, text in TURNS}
    return [
        ls_task("d1", 0, t["d1", 0], [region("intent", "choices", {"choices": ["alarm_set"]}),
                                       span(14, 19, "seven", "time"), span(33, 45, "seven thirty", "time")]),
        ls_task("d1", 1, t["d1", 1], [region("intent", "choices", {"choices": ["calendar_set"]}, score=0.6),
                                       span(11, 17, "Monday", "date")], score=0.9),
        ls_task("d2", 0, t["d2", 0], [region("intent", "choices", {"choices": ["play_music"]}),
                                       span(5, 9, "jazz", "genre"), span(17, 24, "kitchen", "room")]),
        ls_task("d3", 0, t["d3", 0], [region("intent", "choices", {"choices": ["call"]})], score=0.4),
    ]


def write_tasks(path, tasks) -> str:
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return str(path)


@pytest.fixture
def reviewed(db, tmp_path):
    """The source tasks imported and decided: accepts, corrections (one slot not in the text), a rejection."""
    ingest_turns(db, tmp_path)
    table = read_labelstudio(write_tasks(tmp_path / "in.json", source_tasks()), turn_texts=lookup(db)).table
    store.insert_candidates(db, table)
    ids = candidate_ids(db)
    c = lambda d, i, task: ids[("labelstudio", d, i, task)]  # noqa: E731
    decide(db, c("d1", 0, "intent"), "accept")
    decide(db, c("d1", 0, "slots"), "correct", [{"type": "time", "value": "seven"},
                                                 {"type": "date", "value": "tomorrow"}])  # not in the text
    decide(db, c("d1", 1, "intent"), "reject")
    decide(db, c("d1", 1, "slots"), "accept")
    decide(db, c("d2", 0, "intent"), "correct", "play_radio")
    decide(db, c("d2", 0, "slots"), "accept")
    decide(db, c("d3", 0, "intent"), "accept")
    return db


def test_predictions_become_candidates_with_model_version_score_and_spans(db, tmp_path):
    ingest_turns(db, tmp_path)
    result = read_labelstudio(write_tasks(tmp_path / "in.json", source_tasks()), turn_texts=lookup(db))
    rows = {(r["dialogue_id"], r["turn_index"], r["task"]): r for r in result.table.to_pylist()}
    assert len(rows) == 7 and result.items == 4
    assert {r["model_name"] for r in rows.values()} == {"labelstudio"}
    assert {r["model_version"] for r in rows.values()} == {"nlu-7"}
    assert rows["d1", 1, "intent"]["score"] == 0.6  # the region's own score beats the prediction's
    assert rows["d1", 1, "slots"]["score"] == 0.9
    assert json.loads(rows["d2", 0, "slots"]["value"]) == [
        {"type": "genre", "value": "jazz", "start": 5, "end": 9},
        {"type": "room", "value": "kitchen", "start": 17, "end": 24}]
    assert json.loads(rows["d3", 0, "intent"]["value"]) == "call"


def test_documented_ner_example_reads_with_per_span_scores_and_its_published_offsets_are_refused(db, tmp_path):
    tasks = json.loads((DATA / "labelstudio_ner_predictions.json").read_text(encoding="utf-8"))
    texts = [t["data"]["text"] for t in tasks]
    ingest_turns(db, tmp_path, [("ls", i, text) for i, text in enumerate(texts)], dataset="docs")
    for i, task in enumerate(tasks):
        task["data"].update(dialogue_id="ls", turn_index=i)
    first = read_labelstudio(write_tasks(tmp_path / "first.json", tasks[:1]), turn_texts=lookup(db)).table
    rows = {r["model_version"]: r for r in first.to_pylist()}
    assert set(rows) == {"one", "two"} and {r["task"] for r in rows.values()} == {"label"}
    assert rows["one"]["score"] == 0.5 and rows["two"]["score"] == 0.22  # the weakest span's score
    assert json.loads(rows["two"]["value"])[-1] == {"type": "Date", "value": "Passover", "start": 96, "end": 104}
    # As published, the second task's offsets count from the text without its leading space, and it has no score
    with pytest.raises(LogFormatError) as err:
        read_labelstudio(write_tasks(tmp_path / "both.json", tasks), name="both.json", turn_texts=lookup(db))
    said = [str(p) for p in err.value.problems]
    assert said[0] == ("both.json: [1].predictions[0].result[0].value: offsets 17..31 give ' several inche' but "
                       "the span's text is 'several inches' (offsets that do not match the utterance)")
    assert count_candidates(db) == 0


def test_round_trip_keeps_labels_and_spans(reviewed, tmp_path):
    db = reviewed
    expected = reviewed_labels(db)
    assert expected[("d1", 1, "slots")] == [{"type": "date", "value": "Monday", "start": 11, "end": 17}]
    out, written, left_out = export(db, tmp_path, "labelstudio")
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert written == len(tasks) == 7 and left_out == 0
    by = {(t["data"]["dialogue_id"], t["data"]["turn_index"], t["data"]["task"]): t for t in tasks}
    rejected = by["d1", 1, "intent"]
    assert rejected["data"]["verdict"] == "reject" and "annotations" not in rejected
    corrected = by["d1", 0, "slots"]
    assert corrected["data"]["span_located"] is False  # 'tomorrow' is not in the text: said, not dropped
    assert corrected["annotations"][0]["result"][-1]["from_name"] == "slots_unlocated"
    assert by["d2", 0, "slots"]["predictions"][0]["result"][1]["value"] == {
        "start": 17, "end": 24, "text": "kitchen", "labels": ["room"]}
    back = read_labelstudio(out, turn_texts=lookup(db))
    assert back.skipped == {}
    assert values_of(back.table, "labelstudio-annotation") == {
        **expected, ("d1", 0, "slots"): [{"type": "time", "value": "seven", "start": 14, "end": 19},
                                          {"type": "date", "value": "tomorrow"}]}
    # the proposals travel too: every prediction back with its spans and score
    proposed = values_of(back.table, "labelstudio")
    assert proposed[("d2", 0, "slots")] == [{"type": "genre", "value": "jazz", "start": 5, "end": 9},
                                            {"type": "room", "value": "kitchen", "start": 17, "end": 24}]
    assert len(proposed) == 7
    store.insert_candidates(db, back.table)  # and the store takes them


def test_json_min_and_csv_exports(reviewed, tmp_path):
    out, written, _ = export(reviewed, tmp_path, "labelstudio-min", kind="accepted")
    items = {(r["dialogue_id"], r["turn_index"], r["task"]): r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert written == len(items) == 6
    assert items["d2", 0, "intent"]["intent"] == "play_radio"
    assert items["d1", 1, "slots"]["slots"] == [{"start": 11, "end": 17, "text": "Monday", "labels": ["date"]}]
    assert items["d1", 0, "slots"]["span_located"] is False
    assert items["d1", 0, "slots"]["unlocated_slots"] == [{"type": "date", "value": "tomorrow", "at": 1}]
    out, written, _ = export(reviewed, tmp_path, "labelstudio-csv", kind="accepted")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert written == len(rows) == 6
    call = next(r for r in rows if r["dialogue_id"] == "d3")
    assert call["text"] == "'" + TURNS[3][2]  # a spreadsheet would run it: written as text
    assert json.loads(next(r for r in rows if r["dialogue_id"] == "d1" and r["task"] == "slots")["slots"])[0] == {
        "start": 14, "end": 19, "text": "seven", "labels": ["time"]}


def test_bad_inputs_name_file_item_and_field_and_write_nothing(db, tmp_path):
    ingest_turns(db, tmp_path)
    good = source_tasks()
    cases = []
    t = copy.deepcopy(good)
    del t[1]["data"]["dialogue_id"]
    cases.append((t, "x.json: [1].data.dialogue_id: required: the turn's dialogue id, got None"))
    t = copy.deepcopy(good)
    t[2]["data"]["dialogue_id"] = "d9"
    cases.append((t, "x.json: [2].data.dialogue_id: no turn 0 of dialogue 'd9' among the stored turns"))
    t = copy.deepcopy(good)
    t[0]["predictions"][0]["result"][1]["value"]["end"] = 18
    cases.append((t, "x.json: [0].predictions[0].result[1].value: offsets 14..18 give 'seve'"))
    t = copy.deepcopy(good)
    t[3]["data"]["text"] = t[3]["data"]["text"].upper()  # another text than the stored turn's
    cases.append((t, "x.json: [3].data.text: the item's text"))
    t = copy.deepcopy(good)
    del t[3]["predictions"][0]["score"]
    cases.append((t, "x.json: [3].predictions[0].score: required: the model's confidence"))
    t = copy.deepcopy(good)
    t[3]["predictions"][0]["result"][0]["type"] = "rating"
    cases.append((t, "x.json: [3].predictions[0].result[0].type: 'rating' regions are not read"))
    t = copy.deepcopy(good)
    t[3]["predictions"][0]["result"][0]["from_name"] = "Intent Label"
    cases.append((t, "x.json: [3].predictions[0].result[0].from_name: 'Intent Label' cannot be a turnlens task"))
    for tasks, said in cases:
        with pytest.raises(LogFormatError) as err:
            read_labelstudio(write_tasks(tmp_path / "x.json", tasks), name="x.json", turn_texts=lookup(db))
        assert str(err.value.problems[0]).startswith(said), (said, err.value.problems)
    (tmp_path / "x.json").write_text('[{"data": {"text": "a"}}', encoding="utf-8")
    with pytest.raises(LogFormatError, match=r"x.json:1: is not valid JSON"):
        read_labelstudio(tmp_path / "x.json", name="x.json", turn_texts=lookup(db))
    assert count_candidates(db) == 0


def test_a_slot_found_case_insensitively_exports_the_utterances_characters(tmp_path):
    row = {"candidate_id": 1, "task": "slots", "target_kind": "turn", "dialogue_id": "d1", "turn_index": 1,
           "text": TURNS[1][2], "proposed_value": [{"type": "date", "value": "monday"}], "score": 0.5,
           "status": "agreed", "verdict": "accept", "label": [{"type": "date", "value": "monday"}],
           "reviewers": ["ana"], "model_name": "m", "model_version": "1", "dataset": "tools"}
    tasks, _ = labelstudio_tasks([row])
    assert tasks[0]["annotations"][0]["result"][0]["value"] == {"start": 11, "end": 17, "text": "Monday",
                                                                "labels": ["date"]}
    back = read_labelstudio(write_tasks(tmp_path / "t.json", tasks)).table.to_pylist()
    assert {json.loads(r["value"])[0]["value"] for r in back} == {"Monday"}


def test_an_empty_slot_list_round_trips_and_is_no_rejection(db, tmp_path):
    """No slots is a label (an accepted empty list), not a rejection: it exports as an empty `slots_unlocated`
    textarea and reads back as []; an empty result answers no control, proposes nothing and is counted."""
    ingest_turns(db, tmp_path)
    row = {"candidate_id": 1, "task": "slots", "target_kind": "turn", "dialogue_id": "d2", "turn_index": 0,
           "text": TURNS[2][2], "proposed_value": [], "score": 0.5, "status": "agreed", "verdict": "accept",
           "label": [], "reviewers": ["ana"], "model_name": "m", "model_version": "1", "dataset": "tools"}
    tasks, _ = labelstudio_tasks([row])
    back = read_labelstudio(write_tasks(tmp_path / "e.json", tasks), turn_texts=lookup(db)).table.to_pylist()
    assert {(r["model_name"], r["value"]) for r in back} == {("labelstudio", "[]"), ("labelstudio-annotation", "[]")}
    assert tasks[0]["annotations"][0]["result"] == [region("slots_unlocated", "textarea", {"text": ["[]"]})]
    tasks[0]["annotations"][0]["result"] = []
    read = read_labelstudio(write_tasks(tmp_path / "e.json", tasks), turn_texts=lookup(db))
    assert read.skipped == {"annotation with an empty result": 1}


def test_cancelled_annotations_are_counted_and_annotations_are_peoples_labels(db, tmp_path):
    ingest_turns(db, tmp_path)
    task = source_tasks()[3]
    task["annotations"] = [
        {"completed_by": {"id": 7, "email": "ana@example.org"}, "result": [region("intent", "choices",
                                                                                  {"choices": ["call"]})]},
        {"completed_by": 8, "was_cancelled": True, "result": []}]
    read = read_labelstudio(write_tasks(tmp_path / "a.json", [task]), turn_texts=lookup(db))
    assert read.skipped == {"annotation cancelled (skipped in Label Studio)": 1}
    assert {(x["model_name"], x["model_version"], x["score"]) for x in read.table.to_pylist()} == {
        ("labelstudio", "nlu-7", 0.4), ("labelstudio-annotation", "ana@example.org", 1.0)}
