"""The log reader: every malformed-input case is refused with FILE:LINE: field, and nothing is written."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.log_format import TURN_SCHEMA
from analysis.logs import LogFormatError, read_log, read_logs
from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn, write_jsonl


def two_turns(**override) -> list[dict]:
    return [make_turn("d1", 0), make_turn("d1", 1, **override)]


# (name, lines written to a .jsonl file, expected fragment of the first problem)
JSONL_CASES = [
    ("bad_json", [make_turn("d1", 0), '{"dialogue_id": "d1", "turn_index": 1,'], ":2: invalid JSON"),
    ("not_an_object", [make_turn("d1", 0), "[1, 2, 3]"], ":2: expected a JSON object, got a list"),
    ("null_line", [make_turn("d1", 0), "null"], ":2: expected a JSON object, got null"),
    ("empty_object", [make_turn("d1", 0), "{}"], ":2: dialogue_id: required field is missing or null"),
    ("missing_required", two_turns(asr_text=None), ":2: asr_text: required field is missing or null"),
    ("null_required", two_turns(timestamp=None), ":2: timestamp: required field is missing or null"),
    ("wrong_type_int", two_turns(turn_index="1"), ":2: turn_index: expected an integer, got the string '1'"),
    ("wrong_type_float", two_turns(asr_confidence="high"), ":2: asr_confidence: expected a number"),
    ("wrong_type_bool", two_turns(barge_in="yes"), ":2: barge_in: expected true or false"),
    ("wrong_type_list", two_turns(asr_nbest="a b"), ":2: asr_nbest: expected a list of strings"),
    ("wrong_type_slots", two_turns(nlu_slots=[{"type": "x"}]), ":2: nlu_slots: expected a list of {type, value}"),
    ("float_for_int", two_turns(turn_index=1.5), ":2: turn_index: expected an integer"),
    ("negative_turn_index", [make_turn("d1", -1)], ":1: turn_index: -1 is below the minimum 0"),
    ("latitude_range", two_turns(latitude=91.0), ":2: latitude: 91.0 is above the maximum 90"),
    ("longitude_range", two_turns(longitude=-181.0), ":2: longitude: -181.0 is below the minimum -180"),
    ("confidence_range", two_turns(nlu_confidence=1.5), ":2: nlu_confidence: 1.5 is above the maximum 1"),
    ("enum_er", two_turns(er_status="maybe"), ":2: er_status: unknown value 'maybe'"),
    ("enum_response", two_turns(response_status="ok"), ":2: response_status: unknown value 'ok'"),
    ("enum_tts", two_turns(tts_status="silent"), ":2: tts_status: unknown value 'silent'"),
    ("enum_feedback", two_turns(user_feedback="meh"), ":2: user_feedback: unknown value 'meh'"),
    ("enum_failure_point", two_turns(gold_failure_point="MIC"), ":2: gold_failure_point: unknown value 'MIC'"),
    ("bad_timestamp", two_turns(timestamp="yesterday"), ":2: timestamp: 'yesterday' is not an ISO 8601"),
    ("empty_dialogue_id", [make_turn("", 0)], ":1: dialogue_id: must not be empty"),
    ("duplicate_key", [make_turn("d1", 0), make_turn("d1", 1), make_turn("d1", 0)],
     ":3: turn_index: duplicate turn 0 of dialogue 'd1'"),
    ("time_order", [make_turn("d1", 0, timestamp="2026-01-05T10:05:00Z"),
                    make_turn("d1", 1, timestamp="2026-01-05T10:01:00Z")],
     ":2: timestamp: turn 1 of dialogue 'd1' is earlier than turn 0"),
    ("embedding_length", two_turns(speaker_embedding=[0.1, 0.2]),
     ":2: speaker_embedding: has 2 values, but line 1 has 3"),
    ("huge_line", [make_turn("d1", 0), make_turn("d1", 1, asr_text="x" * (10 << 20))],
     ":2: record is 10,48"),
    ("blank_only", ["", "   "], "file is empty"),
]


@pytest.mark.parametrize("name,lines,expected", JSONL_CASES, ids=[c[0] for c in JSONL_CASES])
def test_malformed_jsonl_is_refused_and_nothing_written(db, tmp_path, name, lines, expected):
    # The database already holds a valid import: a refused one must leave it exactly as it was.
    ingest_files(db, [write_jsonl(tmp_path / "good.jsonl", [make_turn("d0", 0)])], dataset="t")
    before = (store.count_turns(db), len(store.list_imports(db)))
    path = write_jsonl(tmp_path / f"{name}.jsonl", lines)
    with pytest.raises(LogFormatError) as info:
        ingest_files(db, [path], dataset="t")
    first = str(info.value.problems[0])
    assert first.startswith(str(path)), first
    assert expected in first, first
    assert (store.count_turns(db), len(store.list_imports(db))) == before


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    lines = [make_turn("d1", i, er_status="bogus") for i in range(60)]
    path = write_jsonl(tmp_path / "many.jsonl", lines)
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert len(info.value.problems) == 60
    text = str(info.value)
    assert text.count("er_status: unknown value 'bogus'") == 50  # first 50 shown ...
    assert "and 10 more problems (60 in all)" in text  # ... then a count


def test_exact_path_reports_type_and_value_problems_together(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [make_turn("d1", 0, turn_index="0"),
                                                  make_turn("d2", 0, latitude=100.0)])
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    got = [str(p) for p in info.value.problems]
    assert any(":1: turn_index: expected an integer" in g for g in got)
    assert any(":2: latitude: 100.0 is above the maximum 90" in g for g in got)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(LogFormatError, match="empty.jsonl: file is empty"):
        read_log(path)


def test_wrong_file_type(tmp_path):
    path = tmp_path / "turns.txt"
    path.write_text("hello")
    with pytest.raises(LogFormatError, match="turns.txt: unsupported file type"):
        read_log(path)


def test_unreadable_gzip(tmp_path):
    path = tmp_path / "turns.jsonl.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(LogFormatError, match="turns.jsonl.gz: cannot be read as gzip"):
        read_log(path)


def test_truncated_gzip(tmp_path):
    data = gzip.compress(b"".join(json.dumps(make_turn("d", i)).encode() + b"\n" for i in range(50)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LogFormatError, match="cut.jsonl.gz: cannot be read as gzip"):
        read_log(path)


def test_parquet_with_garbage(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 nope")
    with pytest.raises(LogFormatError, match="t.parquet: cannot be read as Parquet"):
        read_log(path)


def test_duplicates_across_files_of_one_input(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])
    b = write_jsonl(tmp_path / "b.jsonl", [make_turn("d1", 0)])
    with pytest.raises(LogFormatError) as info:
        read_logs([a, b])
    assert "b.jsonl:1: turn_index: duplicate turn 0 of dialogue 'd1' (also at" in str(info.value)


def test_valid_jsonl_normalises_and_keeps_unknown_fields(tmp_path):
    recs = [make_turn("d1", 0, mood="happy"), "", make_turn("d1", 1, timestamp="2026-01-05T12:01:00+02:00",
                                                           mood=3, extra_list=[1])]
    parsed = read_log(write_jsonl(tmp_path / "ok.jsonl", recs))
    assert parsed.table.schema.equals(TURN_SCHEMA)
    rows = parsed.table.to_pylist()
    assert [r["turn_index"] for r in rows] == [0, 1]
    assert rows[1]["timestamp"].isoformat() == "2026-01-05T10:01:00+00:00"  # offset converted to UTC
    assert json.loads(rows[0]["extras"]) == {"mood": "happy"}
    assert json.loads(rows[1]["extras"]) == {"extra_list": [1], "mood": 3}
    assert parsed.unknown_fields == {"mood": 2, "extra_list": 1}
    assert rows[0]["nlu_slots"] == [{"type": "place_name", "value": "boston"}]


def test_naive_timestamps_are_utc(tmp_path):
    parsed = read_log(write_jsonl(tmp_path / "n.jsonl", [make_turn("d1", 0, timestamp="2026-01-05T10:00:00"),
                                                         make_turn("d1", 1, timestamp="2026-01-05T10:00:05Z")]))
    stamps = [r["timestamp"].isoformat() for r in parsed.table.to_pylist()]
    assert stamps == ["2026-01-05T10:00:00+00:00", "2026-01-05T10:00:05+00:00"]


def _as_csv_rows(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        out.append({k: (json.dumps(v) if isinstance(v, list) else ("true" if v is True else "false" if v is False
                                                                   else "" if v is None else v))
                    for k, v in r.items()})
    return out


def write_csv(path, records: list[dict]):
    import csv

    rows = _as_csv_rows(records)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        names = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(fh, fieldnames=names, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_reads_the_same_as_jsonl(tmp_path):
    recs = [make_turn("d1", 0), make_turn("d1", 1, barge_in=True, asr_nbest=["a", "b"])]
    from_csv = read_log(write_csv(tmp_path / "t.csv", recs)).table
    from_jsonl = read_log(write_jsonl(tmp_path / "t.jsonl", recs)).table
    assert from_csv.equals(from_jsonl)


def test_csv_problems_name_the_line(tmp_path):
    recs = [make_turn("d1", 0), make_turn("d1", 1, turn_index="x"), make_turn("d1", 2, er_status="zzz")]
    with pytest.raises(LogFormatError) as info:
        read_log(write_csv(tmp_path / "t.csv", recs))
    got = [str(p) for p in info.value.problems]
    assert any(g.endswith("t.csv:3: turn_index: expected an integer, got 'x'") for g in got), got
    assert any("t.csv:4: er_status: unknown value 'zzz'" in g for g in got), got


def test_csv_bad_list_json(tmp_path):
    recs = [make_turn("d1", 0)]
    path = write_csv(tmp_path / "t.csv", recs)
    path.write_text(path.read_text().replace('[{""type""', '[{""type"" oops'))
    with pytest.raises(LogFormatError, match=r"t.csv:2: nlu_slots: expected a JSON list"):
        read_log(path)


def test_parquet_reads_the_same_as_jsonl(tmp_path):
    recs = [make_turn("d1", 0), make_turn("d1", 1)]
    expected = read_log(write_jsonl(tmp_path / "t.jsonl", recs)).table
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "t.parquet")
    assert read_log(tmp_path / "t.parquet").table.equals(expected)


def test_parquet_value_problem_names_the_row(tmp_path):
    pq.write_table(pa.Table.from_pylist([make_turn("d1", 0), make_turn("d1", 1, latitude=200.0)]),
                   tmp_path / "t.parquet")
    with pytest.raises(LogFormatError, match=r"t.parquet:2: latitude: 200.0 is above the maximum 90"):
        read_log(tmp_path / "t.parquet")


def test_parquet_wrong_column_type(tmp_path):
    pq.write_table(pa.table({"dialogue_id": ["d"], "turn_index": ["zero"], "timestamp": ["2026-01-01T00:00:00Z"],
                             "asr_text": ["hi"]}), tmp_path / "t.parquet")
    with pytest.raises(LogFormatError, match=r"t.parquet: turn_index: column has type string"):
        read_log(tmp_path / "t.parquet")


def test_fast_and_exact_paths_agree(tmp_path, monkeypatch):
    """The same valid file read by Arrow's reader and by the per-line path gives the same table."""
    import analysis.logs as logs

    recs = [make_turn(f"d{i // 3}", i % 3, mood=i) for i in range(30)]
    path = write_jsonl(tmp_path / "t.jsonl", recs)
    fast = read_log(path).table

    def fail(*a, **k):
        raise pa.ArrowInvalid("forced")

    monkeypatch.setattr(logs.pj, "read_json", fail)
    exact = read_log(path).table
    assert exact.equals(fast)


@pytest.mark.parametrize("field,value,expected", [
    ("asr_text", 5, "asr_text: expected a string, got the number 5"),
    ("dialogue_id", 7, "dialogue_id: expected a string, got the number 7"),
    ("barge_in", 0, "barge_in: expected true or false, got the number 0"),
    ("asr_nbest", ["a", None], "asr_nbest: expected a list of strings"),
    ("speaker_embedding", [0.1, None, 0.3], "speaker_embedding: expected a list of numbers"),
    ("nlu_slots", [{"type": "a", "value": "b", "conf": 0.5}, {"value": "x"}], "nlu_slots: expected a list of"),
    ("timestamp", 1767607200, "timestamp: expected an ISO 8601 timestamp string"),
])
def test_type_mismatches_the_fast_reader_might_coerce(tmp_path, field, value, expected):
    path = write_jsonl(tmp_path / "t.jsonl", [make_turn("d1", 0), make_turn("d1", 1, **{field: value})])
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert any(f"t.jsonl:2: {expected}" in str(p) for p in info.value.problems), info.value.problems


def test_committed_json_schema_is_the_generated_one():
    from analysis.log_format import json_schema

    committed = json.loads((ROOT / "docs" / "log-format.schema.json").read_text())
    assert committed == json_schema(), "regenerate docs/log-format.schema.json from analysis/log_format.py"


def test_json_schema_agrees_with_the_reader(tmp_path):
    """Records the reader accepts validate against the JSON Schema, and a wrong one fails both."""
    import jsonschema

    from analysis.log_format import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    good = make_turn("d1", 0, asr_nbest=["a"], gold_skills=["s"], user_feedback="negative")
    read_log(write_jsonl(tmp_path / "g.jsonl", [good]))
    validator.validate(good)
    bad = make_turn("d1", 0, er_status="maybe")
    assert not validator.is_valid(bad)
    with pytest.raises(LogFormatError):
        read_log(write_jsonl(tmp_path / "b.jsonl", [bad]))
