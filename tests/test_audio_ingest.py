"""Ingest checks a log's audio files under the audio root (app.ingest.check_audio): a missing file or a path leading
outside the root is refused with FILE:LINE: audio and nothing is written; --allow-missing-audio (and the Import
page's box) accepts missing files, never a way out of the root."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis.logs import LogFormatError
from app import store
from app.ingest import AudioFilesError, ingest_files
from app.settings import Settings
from tests.helpers import ROOT, make_turn, write_jsonl


def state(conn) -> tuple[int, int]:
    return (conn.execute("SELECT count(*) FROM turns").fetchone()[0],
            conn.execute("SELECT count(*) FROM imports").fetchone()[0])


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "audio"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "here.wav").write_bytes(b"RIFF")
    return root


def log_with(tmp_path, audio: str, name: str = "log.jsonl"):
    """Three turns: audio that exists, an http(s) URL (never fetched), and ``audio`` on line 3."""
    return write_jsonl(tmp_path / name, [make_turn("a", 0, audio="clips/here.wav", audio_source="synthetic"),
                                         make_turn("a", 1, audio="https://audio.example.com/a/1.mp3"),
                                         make_turn("a", 2, audio=audio)])


def test_audio_under_the_root_and_urls_are_stored(db, tmp_path, root):
    result, _ = ingest_files(db, [log_with(tmp_path, "clips/here.wav")], dataset="t", audio_root=root)
    assert result.rows_added == 3
    assert [t["audio"] for t in store.get_dialogue_turns(db, "a")] == [
        "clips/here.wav", "https://audio.example.com/a/1.mp3", "clips/here.wav"]


def test_a_missing_file_is_refused_with_file_line_and_field_and_nothing_is_written(db, tmp_path, root):
    ingest_files(db, [write_jsonl(tmp_path / "first.jsonl", [make_turn("z", 0)])], dataset="t", audio_root=root)
    before = state(db)
    log = log_with(tmp_path, "clips/gone.wav")
    with pytest.raises(AudioFilesError) as info:
        ingest_files(db, [log], dataset="t", audio_root=root)
    assert [str(p) for p in info.value.problems] == [
        f"{log}:3: audio: 'clips/gone.wav': no such file under the audio root"]
    assert info.value.root == root and isinstance(info.value, LogFormatError)
    assert state(db) == before
    # accepted when asked for: the turn keeps its path (the player says the file is missing)
    result, _ = ingest_files(db, [log], dataset="t", audio_root=root, allow_missing_audio=True)
    assert result.rows_added == 3 and state(db) == (before[0] + 3, before[1] + 1)


def test_a_symbolic_link_out_of_the_root_is_refused_even_when_missing_files_are_allowed(db, tmp_path, root):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    (root / "clips" / "escape.wav").symlink_to(secret)
    (root / "outside").symlink_to(tmp_path)
    for audio in ("clips/escape.wav", "outside/secret.wav", "outside/nothing-here.wav"):
        for allow in (False, True):
            with pytest.raises(AudioFilesError) as info:
                ingest_files(db, [log_with(tmp_path, audio)], dataset="t", audio_root=root, allow_missing_audio=allow)
            problem = info.value.problems[0]
            assert (problem.line, problem.field) == (3, "audio") and "outside the audio root" in problem.message
    assert state(db) == (0, 0)


@pytest.mark.parametrize("audio", ["../secret.wav", "clips/../../secret.wav", "/etc/passwd", "file:///etc/passwd",
                                   "clips\\..\\..\\secret.wav", "C:secret.wav"])
def test_a_path_that_tries_to_leave_the_root_is_refused_when_read(db, tmp_path, root, audio):
    for allow in (False, True):
        with pytest.raises(LogFormatError) as info:
            ingest_files(db, [log_with(tmp_path, audio)], dataset="t", audio_root=root, allow_missing_audio=allow)
        assert str(info.value.problems[0]).startswith(f"{tmp_path / 'log.jsonl'}:3: audio: "), info.value.problems
    assert state(db) == (0, 0)


def test_a_root_that_is_not_a_folder_is_one_problem_unless_missing_files_are_allowed(db, tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [make_turn("a", i, audio=f"clips/{i}.wav") for i in range(4)]
                      + [make_turn("a", 4, audio="https://audio.example.com/4.wav")])
    with pytest.raises(AudioFilesError) as info:
        ingest_files(db, [log], dataset="t", audio_root=tmp_path / "nowhere")
    assert [str(p) for p in info.value.problems] == [
        f"{log}:1: audio: 4 turns name an audio file under the audio root '{tmp_path / 'nowhere'}', which is not a "
        "folder"]
    assert state(db) == (0, 0)
    assert ingest_files(db, [log], dataset="t", audio_root=tmp_path / "nowhere",
                        allow_missing_audio=True)[0].rows_added == 5


def test_the_audio_root_is_one_setting(db, tmp_path, root, monkeypatch):
    monkeypatch.delenv("TURNLENS_AUDIO_ROOT", raising=False)
    assert Settings.from_env().audio_root == ROOT / "data" / "audio"
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(root))
    assert Settings.from_env().audio_root == root
    # ingest's default is the setting
    assert ingest_files(db, [log_with(tmp_path, "clips/here.wav")], dataset="t")[0].rows_added == 3
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(tmp_path / "elsewhere"))
    with pytest.raises(AudioFilesError):
        ingest_files(db, [log_with(tmp_path, "clips/here.wav", "other.jsonl")], dataset="t2")


def turnlens(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **env})


def test_cli_refuses_missing_audio_and_accepts_it_with_the_flag(tmp_path, root):
    db, log = tmp_path / "t.duckdb", log_with(tmp_path, "clips/gone.wav")
    env = {"TURNLENS_AUDIO_ROOT": str(root)}
    out = turnlens("ingest", str(log), "--db", str(db), "--quiet", env=env)
    assert out.returncode == 1, out.stderr
    assert f"{log}:3: audio: 'clips/gone.wav': no such file under the audio root" in out.stderr
    assert "--allow-missing-audio" in out.stderr and str(root) in out.stderr and "Traceback" not in out.stderr
    assert not db.exists() or store_turns(db) == 0
    out = turnlens("ingest", str(log), "--db", str(db), "--quiet", "--allow-missing-audio", env=env)
    assert out.returncode == 0, out.stderr
    assert store_turns(db) == 3
    # a way out of the root is refused with the flag too
    (root / "out").symlink_to(tmp_path)
    out = turnlens("ingest", str(log_with(tmp_path, "out/log.jsonl", "escape.jsonl")), "--db", str(db), "--quiet",
                   "--allow-missing-audio", env=env)
    assert out.returncode == 1 and "escape.jsonl:3: audio:" in out.stderr and "outside the audio root" in out.stderr
    assert store_turns(db) == 3


def store_turns(db_path) -> int:
    conn = store.connect(db_path)  # read-write: the same configuration as an AppTest app's own connection
    try:
        return store.count_turns(conn)
    finally:
        conn.close()


def test_import_page_refuses_missing_audio_and_accepts_it_when_ticked(tmp_path, monkeypatch, root):
    from tests.helpers import open_app_page

    path = tmp_path / "app.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "seed.jsonl", [make_turn("seed", 0)])], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(root))
    at = open_app_page("app_pages/import_logs.py", timeout=60)
    body = "\n".join(json.dumps(make_turn("up", i, audio=a))
                     for i, a in enumerate(["clips/here.wav", "clips/gone.wav"]))
    at.file_uploader[0].set_value(("up.jsonl", body.encode(), "application/json"))
    at.text_input(key="import_dataset").set_value("pilot")
    at.button[0].click().run()
    assert at.error[0].value.startswith("Nothing was imported: 1 problem(s) with audio files.")
    assert at.code[0].value == f"up.jsonl:2: audio: 'clips/gone.wav': no such file under the audio root\n" \
                               f"audio root: {root}"
    assert store_turns(path) == 1
    at.checkbox(key="import_allow_missing_audio").check()
    at.button[0].click().run()
    assert at.success[0].value == "2 turns read, 2 added, 0 already present."
    assert store_turns(path) == 3
