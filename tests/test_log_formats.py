"""Malformed input through every writer: JSON Lines, gzip JSON Lines, CSV and Parquet.

One table of cases is written in each format and ingested into a database that already holds one valid
import. Every refused case must raise LogFormatError (or IngestConflictError where noted) whose first
problem for the expected field names the right file and line, and must leave the database exactly as it was.
Lines: JSON Lines = the file line; CSV = the file line (the header is line 1); Parquet = the row from 1.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.log_format import FIELD_BY_NAME
from analysis.logs import LogFormatError
from app import store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn

FORMATS = ("jsonl", "gz", "csv", "parquet")
TEXT_FORMATS = ("jsonl", "gz", "csv")
JSONL_FORMATS = ("jsonl", "gz")
SUFFIX = {"jsonl": ".jsonl", "gz": ".jsonl.gz", "csv": ".csv", "parquet": ".parquet"}
ANY = object()  # any field (or none) may carry the problem; only file and line are checked
NAN, INF = float("nan"), float("inf")


# -------------------------------------------------------------------------------------------- writers


def _jsonl_bytes(records: list[dict | str], sep: str = "\n") -> bytes:
    # json.dumps writes NaN / Infinity / -Infinity tokens for non-finite floats, as many loggers do.
    return "".join((r if isinstance(r, str) else json.dumps(r)) + sep for r in records).encode("utf-8")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list | dict | float):
        return json.dumps(value)  # lists/slots as JSON; floats as NaN / Infinity / 1e+300 text
    return str(value)


def _csv_text(records: list[dict], lineterminator: str = "\n") -> str:
    names = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow(names)
    for r in records:
        writer.writerow([_csv_cell(r.get(k)) if k in r else "" for k in names])
    return buf.getvalue()


_PARQUET_KIND = {
    "string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
    "timestamp": pa.string(),  # ISO 8601 strings, as the format allows
    "string_list": pa.list_(pa.string()), "float_list": pa.list_(pa.float64()),
    "slots": pa.list_(pa.struct([("type", pa.string()), ("value", pa.string())])),
    "audio": pa.string(), "word_confidence": pa.list_(pa.float64()),
}
# Format 1.1 n-best objects in Parquet: a list of structs.
NBEST_STRUCT = pa.list_(pa.struct([("text", pa.string()), ("score", pa.float64()), ("confidence", pa.float64())]))


def _parquet_table(records: list[dict], overrides: dict[str, pa.Array] | None = None) -> pa.Table:
    """Explicit types for the format's fields (float64 so NaN and 1e300 survive); unknown ones inferred.

    overrides replaces whole columns (a column of the wrong Arrow type, for the type cases).
    """
    overrides = overrides or {}
    names = list(dict.fromkeys(k for r in records for k in r))
    for name in overrides:
        if name not in names:
            names.append(name)
    arrays, fields = [], []
    for name in names:
        if name in overrides:
            arr = overrides[name]
        else:
            values = [r.get(name) for r in records]
            f = FIELD_BY_NAME.get(name)
            objects = f is not None and f.accepts and any(isinstance(x, dict) for v in values for x in v or ())
            arr = pa.array(values, type=NBEST_STRUCT if objects else _PARQUET_KIND[f.kind]) if f \
                else pa.array(values)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write(fmt: str, path_stem: Path, records: list[dict | str], *,
          parquet: dict[str, pa.Array] | None = None) -> Path:
    path = path_stem.with_name(path_stem.name + SUFFIX[fmt])
    if fmt == "jsonl":
        path.write_bytes(_jsonl_bytes(records))
    elif fmt == "gz":
        path.write_bytes(gzip.compress(_jsonl_bytes(records)))
    elif fmt == "csv":
        path.write_text(_csv_text(records), encoding="utf-8", newline="")
    else:
        pq.write_table(_parquet_table(records, parquet), path)
    return path


def expected_line(fmt: str, row: int) -> int:
    """Where record number row (from 1) is reported: CSV has the header on line 1."""
    return row + 1 if fmt == "csv" else row


# -------------------------------------------------------------------------------------------- helpers


def state(conn) -> tuple[int, int]:
    return store.count_turns(conn), len(store.list_imports(conn))


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    """A database holding one valid import, built once (a new database is migrated and seeded in about 0.2 s,
    and some 280 tests here start from one); each test opens its own copy."""
    folder = tmp_path_factory.mktemp("seeded")
    conn = store.connect(folder / "seed.duckdb")
    try:
        ingest_files(conn, [write("jsonl", folder / "seed", [make_turn("d0", 0)])], dataset="t")
        assert state(conn) == (1, 1)
        conn.execute("CHECKPOINT")  # everything in the file itself, none in a write-ahead log beside it
    finally:
        conn.close()
    return folder / "seed.duckdb"


@pytest.fixture
def seeded(seeded_file, tmp_path):
    """A copy of the seeded database, open, holding one valid import; yields (conn, state before)."""
    copy = tmp_path / "test.duckdb"
    copy.write_bytes(seeded_file.read_bytes())
    conn = store.connect(copy)
    try:
        assert state(conn) == (1, 1)
        yield conn, state(conn)
    finally:
        conn.close()


def refuse(conn, paths, *, dataset="t", exc_type=LogFormatError):
    """Ingest paths expecting exc_type; any other outcome fails with a one-line reason."""
    try:
        result, _ = ingest_files(conn, [str(p) for p in paths], dataset=dataset)
    except exc_type as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point is to report what escaped instead
        pytest.fail(f"expected {exc_type.__name__}, got {type(exc).__name__}: {str(exc)[:300]}")
    pytest.fail(f"expected {exc_type.__name__}, but the input was accepted ({result.rows_added} rows added)")


def first_problem(exc: LogFormatError, path: Path, fields):
    """The first problem of path whose field is one of fields (ANY: any problem of path)."""
    mine = [p for p in exc.problems if p.file == str(path)]
    if fields is not ANY:
        wanted = fields if isinstance(fields, tuple) else (fields,)
        mine = [p for p in mine if p.field in wanted]
    assert mine, f"no problem for {path.name} with field {fields!r}; got: {str(exc)[:600]}"
    return mine[0]


def with_null(rec: dict, name: str) -> dict:
    rec = dict(rec)
    rec[name] = None  # present and null (make_turn's None removes the key instead)
    return rec


def two_turns(**override) -> list[dict]:
    return [make_turn("d1", 0), make_turn("d1", 1, **override)]


# ----------------------------------------------------------------------------------------- case table


@dataclass
class Case:
    id: str
    records: list
    row: int                           # 1-based record number of the bad record
    field: object                      # expected Problem.field: a name, None, a tuple of names, or ANY
    formats: tuple[str, ...] = FORMATS
    fragment: str | None = None        # text expected in str(problem)
    parquet: dict[str, pa.Array] | None = None  # whole-column overrides for the Parquet writer
    parquet_type: bool = False         # a column-type refusal in Parquet: the line may be None there

    def params(self):
        return [pytest.param(self, fmt, id=f"{fmt}-{self.id}") for fmt in self.formats]


def _wrong_type(name: str, field_name: str, value, formats, parquet_column: pa.Array | None) -> Case:
    return Case(name, two_turns(**{field_name: value}), 2, field_name, formats,
                parquet={field_name: parquet_column} if parquet_column is not None else None,
                parquet_type=parquet_column is not None)


_EMB = "speaker_embedding"
CASES: list[Case] = [
    # required fields
    Case("missing_required_asr_text", two_turns(asr_text=None), 2, "asr_text",
         fragment="required field is missing or null"),
    Case("null_required_timestamp", [make_turn("d1", 0), with_null(make_turn("d1", 1), "timestamp")], 2,
         "timestamp", fragment="required field is missing or null"),
    Case("null_required_dialogue_id", [make_turn("d1", 0), with_null(make_turn("d1", 1), "dialogue_id")], 2,
         "dialogue_id", fragment="required field is missing or null"),
    # wrong types (CSV cannot tell "1" from 1, so numeric-looking strings are not CSV cases)
    _wrong_type("wrong_type_turn_index_string_digit", "turn_index", "1", JSONL_FORMATS + ("parquet",),
                pa.array(["0", "1"], pa.string())),
    _wrong_type("wrong_type_turn_index_string_word", "turn_index", "one", TEXT_FORMATS, None),
    _wrong_type("wrong_type_asr_text_number", "asr_text", 5, JSONL_FORMATS + ("parquet",),
                pa.array([4, 5], pa.int64())),
    _wrong_type("wrong_type_dialogue_id_number", "dialogue_id", 7, JSONL_FORMATS + ("parquet",),
                pa.array([7, 7], pa.int64())),
    _wrong_type("wrong_type_barge_in_0", "barge_in", 0, FORMATS, pa.array([0, 0], pa.int64())),
    _wrong_type("wrong_type_barge_in_1", "barge_in", 1, FORMATS, pa.array([1, 1], pa.int64())),
    _wrong_type("wrong_type_latitude_numeric_string", "latitude", "42.36", JSONL_FORMATS + ("parquet",),
                pa.array(["42.36", "42.36"], pa.string())),
    _wrong_type("wrong_type_latitude_word", "latitude", "north", TEXT_FORMATS, None),
    _wrong_type("wrong_type_timestamp_integer", "timestamp", 1767607200, FORMATS,
                pa.array([1767607200_000000, 1767607260_000000], pa.int64())),  # not epoch microseconds
    # ranges
    Case("latitude_above_90", two_turns(latitude=91.0), 2, "latitude", fragment="above the maximum 90"),
    Case("latitude_below_-90", two_turns(latitude=-90.5), 2, "latitude", fragment="below the minimum -90"),
    Case("longitude_above_180", two_turns(longitude=180.5), 2, "longitude", fragment="above the maximum 180"),
    Case("longitude_below_-180", two_turns(longitude=-181.0), 2, "longitude", fragment="below the minimum -180"),
    Case("asr_confidence_above_1", two_turns(asr_confidence=1.01), 2, "asr_confidence", fragment="above"),
    Case("nlu_confidence_below_0", two_turns(nlu_confidence=-0.1), 2, "nlu_confidence", fragment="below"),
    Case("negative_turn_index", [make_turn("d1", 0), make_turn("d1", -1, timestamp="2026-01-05T09:00:00Z")],
         2, "turn_index", fragment="below the minimum 0"),
    Case("turn_index_2_pow_63", [make_turn("d1", 0), make_turn("d1", 2**63)], 2, ("turn_index", None),
         TEXT_FORMATS),
    # enumerations
    *[Case(f"enum_{name}", two_turns(**{name: bad}), 2, name, fragment=f"unknown value {bad!r}")
      for name, bad in [("er_status", "maybe"), ("response_status", "ok"), ("tts_status", "silent"),
                        ("user_feedback", "meh"), ("gold_failure_point", "MIC")]],
    # keys, order, embeddings
    Case("duplicate_key", [make_turn("d1", 0), make_turn("d1", 1), make_turn("d1", 0)], 3, "turn_index",
         fragment="duplicate turn 0 of dialogue 'd1'"),
    Case("time_order", [make_turn("d1", 0, timestamp="2026-01-05T10:05:00Z"),
                        make_turn("d1", 1, timestamp="2026-01-05T10:01:00Z")], 2, "timestamp",
         fragment="earlier than turn 0"),
    Case("embedding_length", two_turns(speaker_embedding=[0.1, 0.2]), 2, _EMB, fragment="has 2 values"),
    # non-finite and overflowing numbers (JSONL: NaN/Infinity tokens; CSV: the same text; Parquet: float64)
    Case("nan_latitude", two_turns(latitude=NAN), 2, ("latitude", None)),
    Case("infinity_asr_confidence", two_turns(asr_confidence=INF), 2, ("asr_confidence", None)),
    Case("-infinity_nlu_confidence", two_turns(nlu_confidence=-INF), 2, ("nlu_confidence", None)),
    Case("nan_in_embedding", two_turns(speaker_embedding=[0.1, NAN, 0.3]), 2, (_EMB, None)),
    Case("infinity_in_embedding", two_turns(speaker_embedding=[0.1, INF, 0.3]), 2, (_EMB, None)),
    Case("-infinity_in_embedding", two_turns(speaker_embedding=[0.1, -INF, 0.3]), 2, (_EMB, None)),
    Case("1e300_in_embedding_overflows_float32", two_turns(speaker_embedding=[0.1, 1e300, 0.3]), 2, _EMB),
    # CSV-specific integer text that Python's int() would take
    Case("csv_turn_index_underscore", two_turns(turn_index="1_000"), 2, "turn_index", ("csv",)),
    Case("csv_turn_index_padded", two_turns(turn_index=" 7 "), 2, "turn_index", ("csv",)),
    # format 1.1: audio references (never outside the audio root, never a scheme other than http(s))
    *[Case(f"audio_{name}", two_turns(audio=value), 2, "audio", fragment=fragment)
      for name, value, fragment in [
          ("dotdot_first", "../secret.wav", "'..' segment"),
          ("dotdot_inside", "a/b/../../../x.wav", "'..' segment"),
          ("dotdot_last", "a/..", "'..' segment"),
          ("absolute", "/etc/passwd", "not an absolute path"),
          ("windows_drive", "C:\\audio\\x.wav", "absolute Windows path"),
          ("backslash", "a\\..\\..\\x.wav", "backslash"),
          ("file_url", "file:///etc/passwd", "unsupported URL scheme 'file'"),
          ("ftp_url", "ftp://host/x.wav", "unsupported URL scheme 'ftp'"),
          ("url_credentials", "https://user:secret@host/x.wav", "user name or password"),
          ("url_without_host", "http:///x.wav", "needs a host"),
          ("blank", "  ", "must not be empty"),
          ("nul", "a\u0000b.wav", "control characters"),
          ("folder", "clips/", "not a folder"),
      ]],
    _wrong_type("audio_number", "audio", 7, JSONL_FORMATS + ("parquet",), pa.array([7, 7], pa.int64())),
    Case("audio_source_enum", two_turns(audio_source="tts"), 2, "audio_source", fragment="unknown value 'tts'"),
    # format 1.1: n-best objects (CSV carries them as JSON; Parquet as structs, below)
    *[Case(f"nbest_{name}", two_turns(asr_nbest=value), 2, "asr_nbest", TEXT_FORMATS, fragment=fragment)
      for name, value, fragment in [
          ("missing_score", [{"text": "a"}], "item 1: score is missing or null"),
          ("null_text", [{"text": "a", "score": -1}, {"text": None, "score": -2}], "item 2: text is missing"),
          ("text_number", [{"text": 5, "score": -1}], "item 1: text must be a string"),
          ("score_string", [{"text": "a", "score": "high"}], "item 1: score must be a number"),
          ("score_bool", [{"text": "a", "score": True}], "item 1: score must be a number"),
          ("confidence_string", [{"text": "a", "score": 1, "confidence": "x"}], "confidence must be a number"),
          ("unknown_key", [{"text": "a", "score": 1, "prob": 0.5}], "unknown key 'prob'"),
          ("mixed", ["a", {"text": "b", "score": -2}], "mixes strings and objects"),
          ("not_a_list", {"text": "a", "score": 1}, "expected a list of strings or of {text, score"),
          ("confidence_above_1", [{"text": "a", "score": -1, "confidence": 1.5}], "1.5 is outside 0..1"),
          ("confidence_negative", [{"text": "a", "score": -1, "confidence": -0.1}], "-0.1 is outside 0..1"),
      ]],
    Case("nbest_nan_score", two_turns(asr_nbest=[{"text": "a", "score": NAN}]), 2, ("asr_nbest", None),
         TEXT_FORMATS),
    # format 1.1: word posteriors, one per word of asr_text ("what is the weather in boston": 6 words)
    Case("word_confidence_too_few", two_turns(asr_word_confidence=[0.9] * 5), 2, "asr_word_confidence",
         fragment="has 5 values but asr_text has 6 words"),
    Case("word_confidence_too_many", two_turns(asr_word_confidence=[0.9] * 7), 2, "asr_word_confidence",
         fragment="has 7 values but asr_text has 6 words"),
    Case("word_confidence_above_1", two_turns(asr_word_confidence=[0.9] * 5 + [1.2]), 2, "asr_word_confidence",
         fragment="1.2 is outside 0..1"),
    Case("word_confidence_negative", two_turns(asr_word_confidence=[-0.5] + [0.9] * 5), 2,
         "asr_word_confidence", fragment="-0.5 is outside 0..1"),
    Case("word_confidence_nan", two_turns(asr_word_confidence=[NAN] + [0.9] * 5), 2,
         ("asr_word_confidence", None)),
    Case("word_confidence_strings", two_turns(asr_word_confidence=["high"] * 6), 2, "asr_word_confidence",
         TEXT_FORMATS, fragment="expected a list of numbers"),
    Case("word_confidence_null_item", two_turns(asr_word_confidence=[None] + [0.9] * 5), 2,
         "asr_word_confidence"),
]

PARAMS = [p for case in CASES for p in case.params()]


@pytest.mark.parametrize("case,fmt", PARAMS)
def test_malformed_input_is_refused_and_nothing_written(seeded, tmp_path, case: Case, fmt: str):
    conn, before = seeded
    path = write(fmt, tmp_path / case.id, case.records, parquet=case.parquet)
    exc = refuse(conn, [path])
    problem = first_problem(exc, path, case.field)
    if fmt == "parquet" and case.parquet_type:
        assert problem.line in (None, case.row), str(problem)
        assert str(case.field) in str(problem), str(problem)
    else:
        assert problem.line == expected_line(fmt, case.row), f"expected line {expected_line(fmt, case.row)}: {problem}"
    if case.fragment:
        assert case.fragment in str(problem), str(problem)
    assert state(conn) == before


# ------------------------------------------------------------------------------------ long lines


SIZES = {"0.9MB": 900_000, "1.5MB": 1_500_000, "10MB": 10_000_000}


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """Two-turn logs whose second asr_text is 0.9 MB, 1.5 MB or 10 MB, in each format; built once."""
    root = tmp_path_factory.mktemp("big")
    out = {}
    for label, size in SIZES.items():
        records = [make_turn("big", 0), make_turn("big", 1, asr_text="x" * size)]
        for fmt in FORMATS:
            if fmt == "parquet" and label != "0.9MB":
                continue
            out[label, fmt] = write(fmt, root / f"big-{label}", records)
    return out


@pytest.mark.parametrize("label", ["1.5MB", "10MB"])
@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_line_over_the_limit_is_refused(seeded, big_files, fmt, label):
    conn, before = seeded
    path = big_files[label, fmt]
    exc = refuse(conn, [path])
    problem = first_problem(exc, path, ANY)
    assert problem.line == expected_line(fmt, 2), str(problem)[:300]
    assert "over the limit" in str(problem), str(problem)[:300]  # the line-limit message, not a csv error
    assert state(conn) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_line_under_the_limit_is_accepted(seeded, big_files, fmt):
    conn, (turns, imports) = seeded
    try:
        result, _ = ingest_files(conn, [str(big_files["0.9MB", fmt])], dataset="t")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"0.9 MB asr_text refused: {type(exc).__name__}: {str(exc)[:300]}")
    assert result.rows_added == 2
    assert state(conn) == (turns + 2, imports + 1)
    (length,) = conn.execute(
        "SELECT length(asr_text) FROM turns WHERE dialogue_id = 'big' AND turn_index = 1").fetchone()
    assert length == SIZES["0.9MB"]


# ------------------------------------------------------------------------------- format-specific


@pytest.mark.parametrize("column", ["middle_column", "last_column"])
def test_csv_unterminated_quote_is_refused_naming_the_line(seeded, tmp_path, column):
    conn, before = seeded
    # No other quote in the file, so the one opened on line 3 is never closed.
    rows = [f"d1,{i},2026-01-05T10:00:0{i}Z,turn {i},n{i}\n" for i in range(4)]
    rows[1] = rows[1].replace(",turn 1,", ',"turn 1,') if column == "middle_column" \
        else rows[1].replace(",n1", ',"n1')  # last column: the swallowed rows would keep the width
    path = tmp_path / "quote.csv"
    path.write_text("dialogue_id,turn_index,timestamp,asr_text,note\n" + "".join(rows), encoding="utf-8",
                    newline="")
    exc = refuse(conn, [path])
    problem = first_problem(exc, path, ANY)
    assert problem.line == 3, str(problem)
    assert state(conn) == before


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
def test_invalid_utf8_inside_a_string_is_refused_naming_the_line(seeded, tmp_path, fmt):
    conn, before = seeded
    good = _jsonl_bytes([make_turn("d1", 0)])
    bad = json.dumps(make_turn("d1", 1, asr_text="cafe")).encode().replace(b'"cafe"', b'"caf\xe9 \xff\xfe"')
    data = good + bad + b"\n" + _jsonl_bytes([make_turn("d1", 2)])
    path = tmp_path / ("utf8" + SUFFIX[fmt])
    path.write_bytes(gzip.compress(data) if fmt == "gz" else data)
    exc = refuse(conn, [path])
    assert first_problem(exc, path, ANY).line == 2, str(exc)[:300]
    assert state(conn) == before


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
def test_two_objects_on_one_line_are_refused(seeded, tmp_path, fmt):
    conn, before = seeded
    one_line = json.dumps(make_turn("d1", 1)) + " " + json.dumps(make_turn("d1", 2))
    path = write(fmt, tmp_path / "two", [make_turn("d1", 0), one_line, make_turn("d1", 3)])
    exc = refuse(conn, [path])
    assert first_problem(exc, path, ANY).line == 2, str(exc)[:300]
    assert state(conn) == before


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
def test_pretty_printed_records_are_refused_naming_a_line(seeded, tmp_path, fmt):
    conn, before = seeded
    pretty = [json.dumps(make_turn("d1", 0), indent=2), json.dumps(make_turn("d1", 1), indent=2)]
    path = write(fmt, tmp_path / "pretty", pretty)
    exc = refuse(conn, [path])
    assert first_problem(exc, path, ANY).line is not None, str(exc)[:300]
    assert state(conn) == before


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_cr_only_line_endings_are_read_correctly_or_refused_cleanly(seeded, tmp_path, fmt):
    conn, (turns, imports) = seeded
    recs = [make_turn("cr", 0), make_turn("cr", 1, asr_text="second turn")]
    path = tmp_path / ("cr" + SUFFIX[fmt])
    if fmt == "csv":
        path.write_text(_csv_text(recs, lineterminator="\r"), encoding="utf-8", newline="")
    else:
        data = _jsonl_bytes(recs, sep="\r")
        path.write_bytes(gzip.compress(data) if fmt == "gz" else data)
    try:
        ingest_files(conn, [str(path)], dataset="t")
    except LogFormatError:
        assert state(conn) == (turns, imports)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"expected acceptance or LogFormatError, got {type(exc).__name__}: {str(exc)[:300]}")
    assert state(conn) == (turns + 2, imports + 1)
    rows = conn.execute("SELECT turn_index, asr_text FROM turns WHERE dialogue_id = 'cr' ORDER BY 1").fetchall()
    assert rows == [(0, "what is the weather in boston"), (1, "second turn")]


def _extras(conn, dialogue: str) -> list[dict | None]:
    rows = conn.execute("SELECT extras FROM turns WHERE dialogue_id = ? ORDER BY turn_index", [dialogue]).fetchall()
    return [None if r[0] is None else json.loads(r[0]) for r in rows]


def _typed(value):
    """value with its JSON types made explicit, so 1 != 1.0 and "2026-01-05" != a timestamp string."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_field_named_like_the_internal_prefix_is_kept(seeded, tmp_path, fmt):
    conn, (turns, imports) = seeded
    recs = [make_turn("px", 0, __extra__foo="bar"), make_turn("px", 1, __extra__foo="baz")]
    path = write(fmt, tmp_path / "prefix", recs)
    try:
        _, unknown = ingest_files(conn, [str(path)], dataset="t")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{type(exc).__name__}: {str(exc)[:300]}")
    assert state(conn) == (turns + 2, imports + 1)
    assert _extras(conn, "px") == [{"__extra__foo": "bar"}, {"__extra__foo": "baz"}]
    assert unknown == {"__extra__foo": 2}


MIXED = [
    make_turn("mx", 0, x=1, when="2026-01-05", obj={"a": 1}),
    make_turn("mx", 1, x=1.5, when="2026-01-05T10:00:00Z", obj={"b": "two", "c": [1, None]}),
    make_turn("mx", 2, obj={"a": {"deep": True}}),  # sparse: no x, no when
]
_KNOWN = set(FIELD_BY_NAME)


def _unknown_of(rec: dict, fmt: str) -> dict | None:
    out = {k: v for k, v in rec.items() if k not in _KNOWN}
    if fmt == "csv":  # CSV cells are text: kept as the text that was written
        out = {k: _csv_cell(v) for k, v in out.items()}
    return out or None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_unknown_fields_of_mixed_types_are_kept_exactly_and_reingest_is_idempotent(seeded, tmp_path, fmt):
    conn, _ = seeded
    path = write(fmt, tmp_path / "mixed", MIXED)
    try:
        result, unknown = ingest_files(conn, [str(path)], dataset="t")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{type(exc).__name__}: {str(exc)[:300]}")
    assert result.rows_added == 3
    stored = _extras(conn, "mx")
    if fmt == "csv":
        # A CSV row cannot leave a column out: an empty cell is null, kept as null or dropped, either way.
        stored = [None if s is None else ({k: v for k, v in s.items() if v is not None} or None) for s in stored]
        assert unknown["obj"] == 3 and unknown["x"] in (2, 3) and unknown["when"] in (2, 3), unknown
    else:
        assert unknown == {"x": 2, "when": 2, "obj": 3}
    assert [_typed(s) for s in stored] == [_typed(_unknown_of(r, fmt)) for r in MIXED]

    # The first turn alone, in a file of its own: the same content, so nothing to add and no conflict.
    before = state(conn)
    first = write(fmt, tmp_path / "first_only", MIXED[:1])
    try:
        again, _ = ingest_files(conn, [str(first)], dataset="t")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"re-ingesting the first turn alone: {type(exc).__name__}: {str(exc)[:300]}")
    assert (again.rows_added, again.rows_already_present) == (0, 1)
    assert state(conn) == before


def test_parquet_unknown_columns_keep_their_values(seeded, tmp_path):
    """Parquet unknown columns: an int stays an int, a date-like string stays a string."""
    conn, _ = seeded
    recs = [make_turn("pq", 0, n=1, f=1.5, when="2026-01-05"),
            make_turn("pq", 1, n=2, f=2.5, when="2026-01-05T10:00:00Z")]
    path = write("parquet", tmp_path / "extras", recs)
    try:
        ingest_files(conn, [str(path)], dataset="t")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{type(exc).__name__}: {str(exc)[:300]}")
    assert [_typed(s) for s in _extras(conn, "pq")] == [_typed(_unknown_of(r, "parquet")) for r in recs]


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_turns_into_another_dataset_conflict(seeded, tmp_path, fmt):
    conn, _ = seeded
    path = write(fmt, tmp_path / "ds", [make_turn("c1", 0), make_turn("c1", 1)])
    ingest_files(conn, [str(path)], dataset="alpha")
    before = state(conn)
    exc = refuse(conn, [path], dataset="beta", exc_type=store.IngestConflictError)
    assert "alpha" in str(exc) or "beta" in str(exc), str(exc)
    assert state(conn) == before
    assert store.count_turns(conn, "beta") == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_300_duplicate_keys_are_counted(seeded, tmp_path, fmt):
    conn, before = seeded
    recs = [make_turn(f"dup{i}", 0) for i in range(300)] * 2
    path = write(fmt, tmp_path / "dups", recs)
    exc = refuse(conn, [path])
    dup = [p for p in exc.problems if p.field == "turn_index" and "duplicate" in p.message]
    assert dup, str(exc)[:300]
    assert len(exc.problems) == 300 or "(300 in all)" in str(exc), \
        f"{len(exc.problems)} problems, summary: {str(exc).splitlines()[-1]}"
    assert state(conn) == before


# ------------------------------------------------------------------------------------------------ CLI


def turnlens(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


def _assert_clean(out: subprocess.CompletedProcess, codes: tuple[int, ...]) -> None:
    assert "Traceback" not in out.stderr, out.stderr[-1500:]
    assert out.returncode in codes, f"exit {out.returncode}; stderr: {out.stderr[-500:]}"
    assert out.stderr.strip(), "no message on stderr"


@pytest.fixture
def log_file(tmp_path) -> Path:
    return write("jsonl", tmp_path / "f", [make_turn("d1", 0)])


def test_cli_empty_dataset_name_is_a_usage_error(tmp_path, log_file):
    out = turnlens("ingest", str(log_file), "--dataset", "", "--db", str(tmp_path / "t.duckdb"), "--quiet")
    _assert_clean(out, (2,))
    assert "dataset" in out.stderr.lower(), out.stderr


@pytest.mark.parametrize("kind", ["directory", "not_duckdb"])
def test_cli_db_that_is_not_a_database_fails_cleanly(tmp_path, log_file, kind):
    db = tmp_path / "db_here"
    if kind == "directory":
        db.mkdir()
    else:
        db.write_text("this is not a DuckDB file\n" * 100)
    out = turnlens("ingest", str(log_file), "--db", str(db), "--quiet")
    _assert_clean(out, (1, 2))
    assert "db_here" in out.stderr, out.stderr


def test_cli_bad_max_line_bytes_is_a_usage_error(tmp_path, log_file):
    out = turnlens("ingest", str(log_file), "--db", str(tmp_path / "t.duckdb"), "--quiet",
                   env={"TURNLENS_MAX_LINE_BYTES": "abc"})
    _assert_clean(out, (2,))
    assert "TURNLENS_MAX_LINE_BYTES" in out.stderr, out.stderr


# ----------------------------------------------------------------------------------------- format 1.1

NBEST_11 = [{"text": "what is the weather in boston", "score": -3120.5, "confidence": 0.8},
            {"text": "what is the weather in austin", "score": -3177.0}]
WORD_CONF = [0.99, 0.98, 0.97, 0.9, 0.95, 0.42]


def _v11_records() -> list[dict]:
    return [make_turn("v11", 0, asr_nbest=["what is the weather in boston", "what is the weather in austin"]),
            make_turn("v11", 1, audio="clips/v11/1.wav", audio_source="synthetic", asr_nbest=NBEST_11,
                      asr_word_confidence=WORD_CONF),
            make_turn("v11", 2, audio="https://audio.example.com/v11/2.flac?sig=abc", audio_source="recorded"),
            make_turn("v11", 3, asr_nbest=[{"text": "stop", "score": -10}], asr_text="stop",
                      asr_word_confidence=[0.5])]


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_1_1_records_are_read_with_their_parts_and_1_0_n_best_still_works(seeded, tmp_path, fmt):
    from analysis.logs import read_log

    conn, (turns, imports) = seeded
    records = _v11_records()
    if fmt == "parquet":  # one Arrow type per column: plain strings and structs cannot share one
        records[0]["asr_nbest"] = None
    path = write(fmt, tmp_path / "v11", records)
    table = read_log(path).table
    rows = table.to_pylist()
    assert [r["asr_nbest"] for r in rows] == [
        None if fmt == "parquet" else ["what is the weather in boston", "what is the weather in austin"],
        ["what is the weather in boston", "what is the weather in austin"], None, ["stop"]]
    assert [r["asr_nbest_score"] for r in rows] == [None, [-3120.5, -3177.0], None, [-10.0]]
    assert [r["asr_nbest_confidence"] for r in rows] == [None, [0.8, None], None, None]
    assert [r["audio"] for r in rows] == [None, "clips/v11/1.wav", "https://audio.example.com/v11/2.flac?sig=abc",
                                          None]
    assert [r["audio_source"] for r in rows] == [None, "synthetic", "recorded", None]
    assert rows[1]["asr_word_confidence"] == WORD_CONF and rows[3]["asr_word_confidence"] == [0.5]
    assert all(r["extras"] is None for r in rows)  # 1.1 fields are known fields, not extras
    # Stored since m008 (tests/test_audio_ingest.py checks the 1.1 columns); the audio file is checked at ingest,
    # so it is made under an audio root here.
    root = tmp_path / "audio-root"
    (root / "clips" / "v11").mkdir(parents=True)
    (root / "clips" / "v11" / "1.wav").write_bytes(b"RIFF")
    result, unknown = ingest_files(conn, [str(path)], dataset="t", audio_root=root)
    assert (result.rows_added, unknown) == (4, {})
    stored = conn.execute("SELECT asr_nbest FROM turns WHERE dialogue_id = 'v11' ORDER BY turn_index").fetchall()
    assert [r[0] for r in stored] == [r["asr_nbest"] for r in rows]
    assert state(conn) == (turns + 4, imports + 1)


def test_format_1_1_fast_and_exact_paths_agree(tmp_path, monkeypatch):
    import pyarrow as pa

    import analysis.logs as logs

    # Plain-string n-best, audio and word posteriors go through Arrow's reader; objects force the exact path.
    recs = [make_turn("f", i, audio=f"a/{i}.wav", asr_word_confidence=WORD_CONF, asr_nbest=["x", "y"])
            for i in range(5)]
    path = write("jsonl", tmp_path / "fast", recs)
    fast = logs.read_log(path).table

    def fail(*a, **k):
        raise pa.ArrowInvalid("forced")

    monkeypatch.setattr(logs.pj, "read_json", fail)
    assert logs.read_log(path).table.equals(fast)


def test_parquet_n_best_struct_values_are_checked(tmp_path):
    from analysis.logs import LogFormatError, read_log

    recs = [make_turn("pq", 0), make_turn("pq", 1)]
    bad = pa.array([None, [{"text": "a", "score": -1.0, "confidence": 2.0}]], NBEST_STRUCT)
    path = write("parquet", tmp_path / "conf", recs, parquet={"asr_nbest": bad})
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    problem = first_problem(info.value, path, "asr_nbest")
    assert problem.line == 2 and "2.0 is outside 0..1" in str(problem), str(problem)
    nan = pa.array([[{"text": "a", "score": float("nan"), "confidence": None}], None], NBEST_STRUCT)
    path = write("parquet", tmp_path / "nan", recs, parquet={"asr_nbest": nan})
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert first_problem(info.value, path, "asr_nbest").line == 1
    no_score = pa.array([[{"text": "a"}], None], pa.list_(pa.struct([("text", pa.string())])))
    path = write("parquet", tmp_path / "noscore", recs, parquet={"asr_nbest": no_score})
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert "asr_nbest" in str(first_problem(info.value, path, "asr_nbest"))


def test_json_schema_knows_format_1_1(tmp_path):
    import jsonschema

    from analysis.log_format import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    for rec in _v11_records():
        validator.validate(rec)
    for bad in [{"audio": "../x.wav"}, {"audio": "/etc/passwd"}, {"audio": "file:///etc/passwd"},
                {"audio": "a\\..\\x.wav"}, {"audio": "C:x.wav"}, {"audio": "https://u:p@h/x"},
                {"asr_nbest": [{"text": "a"}]}, {"asr_nbest": [{"text": "a", "score": 1, "prob": 1}]},
                {"asr_word_confidence": [1.5] * 6}, {"audio_source": "tts"}]:
        assert not validator.is_valid(make_turn("d1", 0, **bad)), bad


# ------------------------------------------------------------------------------- audio root resolution


@pytest.fixture
def audio_tree(tmp_path):
    """root/ with clips/a.wav, a link inside pointing inside, links pointing outside, and a loop."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "clips").mkdir(parents=True)
    outside.mkdir()
    (root / "clips" / "a.wav").write_bytes(b"RIFF")
    (outside / "secret.wav").write_bytes(b"secret")
    (root / "inner").symlink_to(root / "clips")
    (root / "escape").symlink_to(outside)
    (root / "clips" / "leak.wav").symlink_to(outside / "secret.wav")
    (root / "abs").symlink_to("/etc")
    (root / "loop").symlink_to(root / "loop")
    return root


def test_resolve_audio_stays_inside_the_root(audio_tree):
    from analysis.logs import AudioPathError, resolve_audio

    assert resolve_audio("clips/a.wav", audio_tree) == (audio_tree / "clips" / "a.wav").resolve()
    assert resolve_audio("inner/a.wav", audio_tree) == (audio_tree / "clips" / "a.wav").resolve()
    assert resolve_audio("./clips/missing.wav", audio_tree).name == "missing.wav"  # existence is not its question
    for value, fragment in [("escape/secret.wav", "outside the audio root"),
                            ("clips/leak.wav", "outside the audio root"),
                            ("abs/passwd", "outside the audio root"),
                            ("loop/x.wav", "cannot be resolved"),
                            ("../outside/secret.wav", "'..' segment"),
                            ("clips/../../outside/secret.wav", "'..' segment"),
                            (str(audio_tree / "clips" / "a.wav"), "absolute path"),
                            ("https://host/a.wav", "is a URL")]:
        with pytest.raises(AudioPathError, match=fragment.replace(".", r"\.")):
            resolve_audio(value, audio_tree)
    with pytest.raises(AudioPathError, match="cannot be used"):
        resolve_audio("clips/a.wav", audio_tree / "nope")


def test_audio_problems_name_file_and_line(audio_tree, tmp_path, monkeypatch):
    from analysis.logs import audio_problems, audio_root, read_log

    recs = [make_turn("au", 0, audio="clips/a.wav"), make_turn("au", 1, audio="clips/missing.wav"),
            make_turn("au", 2, audio="escape/secret.wav"), make_turn("au", 3, audio="https://h/x.wav"),
            make_turn("au", 4)]
    path = write("jsonl", tmp_path / "audio", recs)
    parsed = read_log(path)
    problems = audio_problems(parsed, audio_tree)
    assert [(p.line, p.field) for p in problems] == [(2, "audio"), (3, "audio")]
    assert "no such file" in problems[0].message and "outside the audio root" in problems[1].message
    assert [p.line for p in audio_problems(parsed, audio_tree, allow_missing=True)] == [3]
    (none,) = audio_problems(parsed, None)
    assert none.count == 3 and "TURNLENS_AUDIO_ROOT" in none.message
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(audio_tree))
    assert audio_root() == audio_tree
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", "")
    assert audio_root() is None
