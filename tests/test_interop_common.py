"""The labelling-tool adapters' shared parts (analysis/interop/spans.py, common.py) and the store they are tested
against: a few turns, candidates imported from a tool's file, people's decisions on them, the export rows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from analysis.interop.common import read_items, split_value
from analysis.interop.spans import locate, slot_spans, span_problem
from analysis.logs import LogFormatError
from app import store
from app.ingest import ingest_files
from app.store.candidates import get_turn_texts
from app.store.export import export_interop, list_export_rows
from tests.helpers import make_turn, write_jsonl

DATA = Path(__file__).parent / "data" / "interop"
DATASET = "tools"
# (dialogue, turn, text): a repeated value, mixed case, and a turn whose text a spreadsheet would run
TURNS = [
    ("d1", 0, "wake me up at seven and again at seven thirty"),
    ("d1", 1, "Set it for Monday"),
    ("d2", 0, "play jazz in the kitchen"),
    ("d3", 0, '=HYPERLINK("http://x","hi") call mom'),
]


def ingest_turns(db, tmp_path: Path, turns=TURNS, dataset: str = DATASET) -> None:
    records = [make_turn(d, i, asr_text=text, nlu_slots=None) for d, i, text in turns]
    ingest_files(db, [write_jsonl(tmp_path / f"turns-{dataset}.jsonl", records)], dataset=dataset)


def lookup(db):
    """The store's turn-text lookup, as the CLI and the Import page pass it to the adapters."""
    return lambda keys: get_turn_texts(db, keys)


def candidate_ids(db) -> dict[tuple, int]:
    """(model_name, dialogue, turn, task) -> candidate id."""
    return {(m, d, t, task): c for c, m, d, t, task in db.execute(
        "SELECT c.candidate_id, r.name, c.dialogue_id, c.turn_index, c.task FROM candidates c "
        "JOIN model_runs r USING (run_id)").fetchall()}


def decide(db, candidate_id: int, verdict: str, corrected: object = None, reviewer: str = "ana") -> None:
    assert store.insert_decision(db, decision_id=str(uuid.uuid4()), candidate_id=candidate_id, reviewer=reviewer,
                                 verdict=verdict, corrected_value=None if corrected is None else json.dumps(corrected))


def count_candidates(db) -> int:
    return db.execute("SELECT count(*) FROM candidates").fetchone()[0]


def reviewed_labels(db, kind: str = "accepted") -> dict[tuple, object]:
    """(dialogue, turn, task) -> the reviewed label, from the export rows."""
    return {(r["dialogue_id"], r["turn_index"], r["task"]): r["label"]
            for r in list_export_rows(db, dataset=DATASET, kind=kind) if r["label"] is not None}


def values_of(table, model_name: str) -> dict[tuple, object]:
    """(dialogue, turn, task) -> value of the imported candidates of one model name."""
    return {(r["dialogue_id"], r["turn_index"], r["task"]): json.loads(r["value"])
            for r in table.to_pylist() if r["model_name"] == model_name}


def export(db, tmp_path: Path, fmt: str, kind: str = "resolved") -> tuple[Path, int, int]:
    suffix = {"labelstudio-csv": ".csv", "prodigy": ".jsonl"}.get(fmt, ".json")
    out = tmp_path / f"export-{fmt}{suffix}"
    written, left_out = export_interop(db, out, dataset=DATASET, kind=kind, fmt=fmt)
    return out, written, left_out


# ---------------------------------------------------------------------------------------------- spans


def test_locate_prefers_exact_whole_words_then_case_insensitive_and_skips_taken_spans():
    text = "Seven says seven, not sevenfold"
    assert locate(text, "seven") == (11, 16)  # exact and whole word, before 'Seven' (other case)
    assert locate(text, "seven", [(11, 16)]) == (22, 27)  # exact inside a word beats a case-insensitive match
    assert locate(text, "seven", [(11, 16), (22, 27)]) == (0, 5)  # then case-insensitive
    assert locate("play JAZZ", "jazz") == (5, 9)
    assert locate("play jazz", "blues") is None and locate("play jazz", "  ") is None


def test_slot_spans_keep_valid_own_offsets_and_place_repeated_values_apart():
    text = TURNS[0][2]
    slots = [{"type": "time", "value": "seven"}, {"type": "time", "value": "seven", "start": 14, "end": 19},
             {"type": "date", "value": "tomorrow"}]
    spans = slot_spans(text, slots)
    # the second slot's own offsets are kept; the first takes the other 'seven'
    assert [(s.start, s.end) for s in spans] == [(33, 38), (14, 19), (None, None)]
    assert [s.located for s in spans] == [True, True, False]
    stale = slot_spans(text, [{"type": "time", "value": "seven", "start": 0, "end": 5}])  # offsets of another text
    assert (stale[0].start, stale[0].end) == (14, 19)


def test_split_value_says_which_slots_were_not_located():
    kind, located, unlocated = split_value("slots", [{"type": "room", "value": "kitchen"},
                                                     {"type": "genre", "value": "blues"}], TURNS[2][2])
    assert kind == "spans" and [(s.start, s.end, s.type) for s in located] == [(17, 24, "room")]
    assert unlocated == [{"type": "genre", "value": "blues", "at": 1}]  # its place in the list travels too
    assert split_value("intent", "play_music", "") == ("string", "play_music", [])
    assert split_value("goal_success", False, "") == ("json", "false", [])
    assert split_value("slots", [], "x")[0] == "spans"  # no slots at all is still a slot list


def test_slots_without_offsets_go_back_to_their_place():
    from analysis.interop.spans import with_unlocated

    located = [{"type": "b", "value": "2", "start": 0, "end": 1}, {"type": "d", "value": "4", "start": 2, "end": 3}]
    unlocated = [{"type": "e", "value": "5", "at": 4}, {"type": "a", "value": "1", "at": 0},
                 {"type": "c", "value": "3", "at": 2}, {"type": "z", "value": "?"}]
    assert [s["type"] for s in with_unlocated(located, unlocated)] == ["a", "b", "c", "d", "e", "z"]


def test_span_problem_names_offsets_that_do_not_match_the_text():
    assert span_problem("play jazz", 5, 9, "jazz") is None
    assert "give 'jaz'" in span_problem("play jazz", 5, 8, "jazz")
    assert "outside the text" in span_problem("play jazz", 5, 12)
    assert "integers" in span_problem("play jazz", "5", 9)


def test_read_items_names_file_and_line_of_bad_json(tmp_path):
    bad = tmp_path / "tasks.json"
    bad.write_text('[{"data": {}},\n {"data": ]', encoding="utf-8")
    with pytest.raises(LogFormatError) as err:
        list(read_items(bad, "tasks.json"))
    assert str(err.value.problems[0]).startswith("tasks.json:2: is not valid JSON")
    lines = write_jsonl(tmp_path / "tasks.jsonl", [{"text": "a"}, "{not json"])
    with pytest.raises(LogFormatError) as err:
        list(read_items(lines, "tasks.jsonl"))
    assert err.value.problems[0].line == 2
    other = tmp_path / "tasks.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(LogFormatError, match="unsupported file type"):
        list(read_items(other, "tasks.txt"))


def test_turn_texts_lookup_returns_only_stored_turns(db, tmp_path):
    ingest_turns(db, tmp_path)
    assert get_turn_texts(db, [("d1", 0), ("d2", 0), ("d9", 0)]) == {("d1", 0): TURNS[0][2], ("d2", 0): TURNS[2][2]}
    assert get_turn_texts(db, []) == {}


def test_a_value_found_case_insensitively_is_quoted_as_the_utterance_has_it():
    """Span formats quote the utterance's characters (and read them back as the value): a value located only
    case-insensitively comes back in the utterance's case; its offsets are kept (docs/interop.md, lossy)."""
    spans = slot_spans("Set it for Monday", [{"type": "date", "value": "monday"}])
    assert (spans[0].start, spans[0].end, spans[0].quoted, spans[0].value) == (11, 17, "Monday", "monday")
