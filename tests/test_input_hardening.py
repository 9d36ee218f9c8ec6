"""Hostile and careless inputs (issue 14): none may crash, hang or exhaust the process; each is refused with
FILE:LINE: field: what, and nothing is written.

Inputs that used to crash the interpreter are read in a subprocess here, so the test run survives if the
reader regresses.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.logs import MAX_DEPTH, LogFormatError, read_log, strict_json
from app import store
from app.ingest import ingest_files
from app.isolated_read import read_logs_isolated
from tests.helpers import ROOT, make_turn, write_jsonl

GIB = 1 << 30


def read_in_subprocess(path: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """read_log(path) in a fresh interpreter: (its result, its peak resident memory in bytes). The child prints
    the LogFormatError's message, or OK and the number of rows."""
    code = ("import sys\n"
            "from analysis.logs import LogFormatError, read_log\n"
            "try:\n"
            f"    print('OK', read_log({str(path)!r}).table.num_rows)\n"
            "except LogFormatError as exc:\n"
            "    print(exc)\n"
            # VmHWM, not getrusage: ru_maxrss survives fork and exec, so it would report the test runner's own peak.
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print('PEAK', int(hwm.split()[1]) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    peak = int(out.stdout.rsplit("PEAK", 1)[1]) if "PEAK" in out.stdout else -1
    return out, peak


def assert_refused_and_nothing_written(db, path: Path, expected: str) -> None:
    before = (store.count_turns(db), len(store.list_imports(db)))
    with pytest.raises(LogFormatError) as info:
        ingest_files(db, [path], dataset="t")
    assert expected in str(info.value), str(info.value)
    assert (store.count_turns(db), len(store.list_imports(db))) == before


# ------------------------------------------------------------------------------- crashes and nesting


def test_a_log_whose_only_line_is_null_is_refused_not_a_crash(tmp_path, db):
    path = tmp_path / "null.jsonl"
    path.write_bytes(b"null\n")  # 5 bytes: Arrow's JSON reader ended the process with SIGSEGV on this
    out, _ = read_in_subprocess(path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{path}:1: expected a JSON object, got null" in out.stdout
    assert_refused_and_nothing_written(db, path, ":1: expected a JSON object, got null")


@pytest.mark.parametrize("depth", [10_000, 5_000, 1_000, MAX_DEPTH + 1])
def test_deep_nesting_is_refused_with_its_line(tmp_path, db, depth):
    # 10,000 nested arrays (20 KB) crashed the process; 1,000-9,000 gave a RecursionError traceback.
    record = make_turn("d1", 1)
    text = json.dumps(record)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    path = write_jsonl(tmp_path / "deep.jsonl", [make_turn("d1", 0), text])
    out, _ = read_in_subprocess(path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{path}:2: invalid JSON: nested more than {MAX_DEPTH} levels deep" in out.stdout
    assert_refused_and_nothing_written(db, path, f":2: invalid JSON: nested more than {MAX_DEPTH} levels deep")


def test_brackets_inside_strings_are_not_nesting(tmp_path, db):
    text = "[" * 10_000 + '\\"' + "]" * 3 + "{" * 100  # an escaped quote must not end the string early
    path = write_jsonl(tmp_path / "ok.jsonl", [make_turn("d1", 0, asr_text=text), make_turn("d1", 1)])
    result, _ = ingest_files(db, [path], dataset="t")
    assert result.rows_added == 2
    assert store.get_dialogue_turns(db, "d1")[0]["asr_text"] == text


def test_nesting_up_to_the_limit_is_kept_in_extras(tmp_path, db):
    deep = json.loads("[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1))  # the record object is level 1
    path = write_jsonl(tmp_path / "ok.jsonl", [make_turn("d1", 0, x=deep)])
    result, unknown = ingest_files(db, [path], dataset="t")
    assert result.rows_added == 1 and unknown == {"x": 1}


def test_a_reader_crash_is_retried_without_arrow_and_the_caller_survives(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [make_turn("d1", 0), make_turn("d1", 1)])
    work = tmp_path / "work"
    work.mkdir()
    parsed = read_logs_isolated([path], work, _crash="fast")  # the Arrow child dies on SIGSEGV
    assert parsed.table.num_rows == 2
    assert parsed.locate(1) == (str(path), 2)


def test_a_reader_that_crashes_twice_is_a_clear_error(tmp_path, db):
    path = write_jsonl(tmp_path / "ok.jsonl", [make_turn("d1", 0)])
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(LogFormatError) as info:
        read_logs_isolated([path], work, names=["upload.jsonl"], _crash="always")
    message = str(info.value)
    assert message.startswith("upload.jsonl: the file could not be read: the reader stopped")
    assert "Segmentation fault" in message and "Nothing was imported" in message


# ---------------------------------------------------------------------------------- bounded memory


def _gzip_stream(path: Path, block: bytes, repeats: int) -> Path:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    with open(path, "wb") as fh:
        for _ in range(repeats):
            fh.write(packer.compress(block))
        fh.write(packer.flush())
    return path


def test_a_gzip_bomb_of_zeros_is_refused_in_bounded_memory(tmp_path):
    # 2 GiB of zeros in ~2 MB: the old reader decompressed it all at once (4.1 GB peak for the 9 MB version).
    bomb = _gzip_stream(tmp_path / "zeros.jsonl.gz", bytes(64 << 20), 32)
    out, peak = read_in_subprocess(bomb)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{bomb}: decompresses to more than 268,435,456 bytes" in out.stdout
    assert "TURNLENS_MAX_DECOMPRESSED_BYTES" in out.stdout
    assert 0 < peak < GIB, f"peak {peak / 2**20:.0f} MiB"


def test_a_file_of_blank_lines_is_read_in_bounded_memory(tmp_path):
    # 100 MiB of newlines (~100 KB gzipped): the old reader kept ~26 bytes per newline (2.7 GB peak).
    bomb = _gzip_stream(tmp_path / "blank.jsonl.gz", b"\n" * (10 << 20), 10)
    out, peak = read_in_subprocess(bomb)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{bomb}: file is empty (no records)" in out.stdout
    assert 0 < peak < GIB, f"peak {peak / 2**20:.0f} MiB"


def test_records_among_many_blank_lines_keep_their_line_numbers(tmp_path):
    path = tmp_path / "sparse.jsonl"
    path.write_text("\n" * 3_000_000 + json.dumps(make_turn("d1", 0)) + "\n\n" + '{"dialogue_id": 5}' + "\n")
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert f"{path}:3000003: dialogue_id: expected a string" in str(info.value)


def test_the_decompression_limit_is_a_setting(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(2000):
            fh.write(json.dumps(make_turn("d1", i, timestamp=f"2026-01-05T10:00:00.{i:06d}Z")) + "\n")
    assert read_log(path).table.num_rows == 2000
    monkeypatch.setenv("TURNLENS_MAX_DECOMPRESSED_BYTES", str(1 << 20))
    with pytest.raises(LogFormatError, match="decompresses to more than 1,048,576 bytes"):
        read_log(path)
    monkeypatch.setenv("TURNLENS_MAX_DECOMPRESSED_BYTES", "lots")
    with pytest.raises(ValueError, match="TURNLENS_MAX_DECOMPRESSED_BYTES must be a whole number"):
        read_log(path)


# -------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("stamp", ["0000-01-01T00:00:00Z", "0001-01-01T00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_timestamps_outside_years_1_to_9999_in_utc_are_refused(tmp_path, db, stamp):
    path = write_jsonl(tmp_path / "ts.jsonl", [make_turn("d1", 0, timestamp=stamp)])
    assert_refused_and_nothing_written(db, path, f":1: timestamp: {stamp!r} is outside the years 0001-9999 "
                                                 "after conversion to UTC")


def test_timestamps_at_the_edges_of_the_range_are_kept(tmp_path, db):
    path = write_jsonl(tmp_path / "ts.jsonl", [make_turn("d1", 0, timestamp="0001-01-01T05:00:00+05:00"),
                                               make_turn("d1", 1, timestamp="9999-12-31T23:59:59Z")])
    assert ingest_files(db, [path], dataset="t")[0].rows_added == 2
    turns = store.get_dialogue_turns(db, "d1")
    assert [t["timestamp"].year for t in turns] == [1, 9999]


def test_a_mix_of_naive_and_zoned_timestamps_out_of_range_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "ts.jsonl", [make_turn("d1", 0, timestamp="2026-01-05T10:00:00"),
                                               make_turn("d1", 1, timestamp="0001-01-01T00:00+05:00")])
    with pytest.raises(LogFormatError, match=r":2: timestamp: .* outside the years 0001-9999"):
        read_log(path)


def test_parquet_timestamp_columns_out_of_range_name_their_row(tmp_path):
    seconds = [1_767_600_000, 300_000_000_000, -70_000_000_000]  # 2026, the year ~11476, the year ~-248
    records = [make_turn("d1", i) for i in range(3)]
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "timestamp"} for r in records])
    table = table.append_column("timestamp", pa.array(seconds, type=pa.timestamp("s")))
    path = tmp_path / "ts.parquet"
    pq.write_table(table, path)
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    message = str(info.value)
    # Parquet keeps seconds as milliseconds: the message quotes the stored value in its own unit.
    assert f"{path}:2: timestamp: 300000000000000 ms since 1970 is outside the years 0001-9999" in message
    assert f"{path}:3: timestamp:" in message and f"{path}:1:" not in message


# ----------------------------------------------------------------------- keys, numbers and Unicode


def test_duplicate_keys_are_refused_not_last_wins(tmp_path, db):
    text = json.dumps(make_turn("d1", 1))[:-1] + ', "dialogue_id": "d9"}'
    path = write_jsonl(tmp_path / "dup.jsonl", [make_turn("d1", 0), text])
    assert_refused_and_nothing_written(db, path, ":2: invalid JSON: duplicate key 'dialogue_id' in one object")


def test_duplicate_keys_inside_an_extra_are_refused(tmp_path):
    text = json.dumps(make_turn("d1", 0))[:-1] + ', "meta": {"a": 1, "a": 2}}'
    path = write_jsonl(tmp_path / "dup.jsonl", [text])
    with pytest.raises(LogFormatError, match=":1: invalid JSON: duplicate key 'a'"):
        read_log(path)


def test_a_number_that_overflows_to_infinity_is_refused_even_in_an_extra(tmp_path, db):
    text = json.dumps(make_turn("d1", 0))[:-1] + ', "score": 1e999}'
    path = write_jsonl(tmp_path / "inf.jsonl", [text])
    assert_refused_and_nothing_written(db, path, ":1: invalid JSON: 1e999 is not a finite number")


def test_non_finite_numbers_in_a_parquet_extra_column_are_refused(tmp_path):
    table = pa.Table.from_pylist([make_turn("d1", 0), make_turn("d1", 1)])
    table = table.append_column("score", pa.array([0.5, float("nan")]))
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path)
    with pytest.raises(LogFormatError, match=r":2: score: holds a number that is not finite"):
        read_log(path)


def test_a_utf32_line_inside_a_utf8_file_is_refused_with_its_line(tmp_path, db):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(json.dumps(make_turn("d1", 0)).encode() + b"\n"
                     + json.dumps(make_turn("d1", 1)).encode("utf-32") + b"\n")
    assert_refused_and_nothing_written(db, path, ":2: invalid JSON: not valid UTF-8")


def test_a_lone_surrogate_is_refused_with_its_line(tmp_path, db):
    text = json.dumps(make_turn("d1", 1, asr_text="x")).replace('"x"', '"\\ud800"')
    path = write_jsonl(tmp_path / "sur.jsonl", [make_turn("d1", 0), text])
    assert_refused_and_nothing_written(db, path, ":2: invalid JSON: holds a lone surrogate escape")
    # A proper pair is a real character and is kept.
    pair = json.dumps(make_turn("d2", 0, asr_text="x")).replace('"x"', '"\\ud83d\\ude00"')
    ok = write_jsonl(tmp_path / "pair.jsonl", [pair])
    assert ingest_files(db, [ok], dataset="t")[0].rows_added == 1
    assert store.get_dialogue_turns(db, "d2")[0]["asr_text"] == "\U0001F600"


def test_a_nul_outside_strings_is_refused_with_its_line(tmp_path):
    path = tmp_path / "nul.jsonl"
    path.write_bytes(json.dumps(make_turn("d1", 0)).encode()[:-1] + b",\x00\"a\": 1}\n")
    with pytest.raises(LogFormatError, match=r"nul.jsonl:1: invalid JSON: "):
        read_log(path)


def test_the_cli_refuses_a_lone_surrogate_without_a_traceback(tmp_path):
    text = json.dumps(make_turn("d1", 0, asr_text="x")).replace('"x"', '"\\udc00"')
    path = write_jsonl(tmp_path / "sur.jsonl", [text])
    out = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(path), "--db", str(tmp_path / "t.duckdb"),
                          "--quiet"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert f"{path}:1: invalid JSON: holds a lone surrogate escape" in out.stderr


def test_invalid_utf8_in_a_csv_names_the_line_not_a_byte_offset(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"dialogue_id,turn_index,timestamp,asr_text\n"
                     b"d1,0,2026-01-05T10:00:00Z,hello\n"
                     b"d1,1,2026-01-05T10:00:01Z,caf\xe9\n")
    with pytest.raises(LogFormatError) as info:
        read_log(path)
    assert str(info.value).startswith(f"{path}:3: not valid UTF-8")
    assert "at byte" not in str(info.value)


def test_deep_json_in_a_csv_list_cell_is_refused(tmp_path):
    path = tmp_path / "deep.csv"
    deep = "[" * 5000 + "]" * 5000
    path.write_text("dialogue_id,turn_index,timestamp,asr_text,asr_nbest\n"
                    f'd1,0,2026-01-05T10:00:00Z,hello,"{deep}"\n')
    with pytest.raises(LogFormatError, match=rf":2: asr_nbest: expected a JSON list, got invalid JSON \(nested "
                                             rf"more than {MAX_DEPTH} levels deep\)"):
        read_log(path)


def test_candidate_files_follow_the_same_rules(tmp_path):
    from analysis.candidates import read_candidates

    path = tmp_path / "cands.jsonl"
    path.write_text("null\n" + '{"task": "intent", "task": "x"}\n' + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(LogFormatError) as info:
        read_candidates(path)
    message = str(info.value)
    assert f"{path}:1: expected a JSON object, got null" in message
    assert f"{path}:2: invalid JSON: duplicate key 'task'" in message
    assert f"{path}:3: invalid JSON: nested more than {MAX_DEPTH} levels deep" in message


@pytest.mark.parametrize("text,message", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ("[1e400]", "not a finite number"),
    ('["\\udfff"]', "lone surrogate"),
    ("NaN", "numbers must be finite"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested more than"),
])
def test_strict_json_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        strict_json(text)


def test_strict_json_decodes_utf8_only():
    with pytest.raises(ValueError, match="not valid UTF-8"):
        strict_json('{"a": 1}'.encode("utf-16"))  # json.loads would have guessed UTF-16
    assert strict_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001F600"}
