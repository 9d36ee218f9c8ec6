"""How the app opens its database: at start, through app/serve.py (holding the lock before anyone visits),
read-only in read-only mode, and with a plain message and exit code when it cannot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from app import migrations, resources, store
from app.ingest import ingest_files
from tests.e2e.server import AppServer, _free_port
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
LATEST = max(version for version, _name, _fn in migrations.MIGRATIONS)


def app_db(tmp_path, name: str = "app.duckdb"):
    path = tmp_path / name
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0)])], dataset="demo")
    conn.close()
    return path


def old_db(tmp_path, monkeypatch):
    """A database made by a turnlens that knew only the first migration."""
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        store.connect(path).close()
    return path


def schema_version(path) -> int:
    conn = store.connect(path, read_only=True)
    try:
        return store.get_schema_version(conn)
    finally:
        conn.close()


def start(command: list[str], env: dict) -> tuple[int, str]:
    """Run a start command that must refuse to start: (exit code, stderr). A server that starts instead is
    killed with its children (a whole process group) and fails the test."""
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{command} started a server instead of refusing to")
    return proc.returncode, err


def launcher(**env) -> tuple[int, str]:
    return start([sys.executable, "-m", "app.serve", "--server.port", str(_free_port())], env)


def turnlens_serve(db, **env) -> tuple[int, str]:
    return start([sys.executable, "-m", "app.cli", "serve", "--db", str(db), "--port", str(_free_port())], env)


# ------------------------------------------------------------------------------- refusing to start


@pytest.mark.parametrize("run", [launcher, lambda **env: turnlens_serve(env.pop("TURNLENS_DB"), **env)],
                         ids=["python -m app.serve", "turnlens serve"])
def test_a_bad_setting_stops_the_start_with_exit_2(tmp_path, run):
    db = tmp_path / "app.duckdb"
    code, err = run(TURNLENS_DB=str(db), TURNLENS_READ_ONLY="on please")
    assert code == 2, err
    assert "TURNLENS_READ_ONLY='on please' is not a yes/no value" in err and "Traceback" not in err
    assert not db.exists()


def test_a_database_held_by_another_process_stops_the_start_with_exit_3(tmp_path):
    db = app_db(tmp_path)
    holder = store.connect(db)
    try:
        code, err = launcher(TURNLENS_DB=str(db))
    finally:
        holder.close()
    assert code == 3, err
    assert f"is in use by process {os.getpid()}" in err and "Traceback" not in err


def test_read_only_start_on_a_missing_database_says_so(tmp_path):
    db = tmp_path / "missing.duckdb"
    code, err = launcher(TURNLENS_DB=str(db), TURNLENS_READ_ONLY="1")
    assert code == 2, err
    assert "no such database" in err and "without TURNLENS_READ_ONLY" in err
    assert not db.exists()


def test_read_only_start_on_an_old_database_says_how_to_upgrade_it_and_leaves_it_alone(tmp_path, monkeypatch):
    db = old_db(tmp_path, monkeypatch)
    code, err = launcher(TURNLENS_DB=str(db), TURNLENS_READ_ONLY="yes")
    assert code == 2, err
    assert f"schema version 1; this version of turnlens needs version {LATEST}" in err
    assert "Open it once without TURNLENS_READ_ONLY to upgrade it" in err
    assert schema_version(db) == 1


# ------------------------------------------------------------------------------------- read-only mode


def test_read_only_mode_opens_the_database_read_only(tmp_path, monkeypatch):
    db = app_db(tmp_path)
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    conn = resources.get_connection(str(db))
    assert store.count_turns(conn) == 1  # it reads
    with pytest.raises(duckdb.Error, match="read-only"):
        ingest_files(conn, [write_jsonl(tmp_path / "more.jsonl", [make_turn("d2", 0)])], dataset="demo")
    assert store.count_turns(conn) == 1


def test_read_only_mode_does_not_migrate_an_old_database(tmp_path, monkeypatch):
    db = old_db(tmp_path, monkeypatch)
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    with pytest.raises(resources.DatabaseUnavailableError, match="upgrade it"):
        resources.get_connection(str(db))
    assert schema_version(db) == 1


def test_the_app_in_read_only_mode_shows_its_data_and_says_when_there_is_no_database(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    monkeypatch.setenv("TURNLENS_DB", str(app_db(tmp_path)))
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert next(m.value for m in at.metric if m.label == "Turns") == "1"

    missing = tmp_path / "missing.duckdb"
    monkeypatch.setenv("TURNLENS_DB", str(missing))
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["The database cannot be opened."]
    assert "no such database" in at.text[0].value and not missing.exists()


# ------------------------------------------------------------------------------- the lock, from the start


def test_the_server_holds_the_database_before_anyone_visits(tmp_path):
    db = app_db(tmp_path)
    server = AppServer(db)  # returns once /_stcore/health answers; no browser, no session has run the script
    try:
        with pytest.raises(store.StoreLockedError):
            store.connect(db)
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(db), read_only=True)
    finally:
        server.stop()
    store.connect(db).close()  # and lets go of it when it stops


def test_started_from_another_folder_the_server_uses_the_repositorys_streamlit_config(tmp_path):
    """Streamlit reads .streamlit/config.toml from the current folder only: from elsewhere the launcher passes the
    repository's settings, so static serving (the audio player's files) is on."""
    import urllib.request

    from app.serve import config_flags

    assert "--server.enableStaticServing=true" in config_flags(tmp_path)
    assert config_flags(ROOT) == []  # the repository's own folder: Streamlit reads the file itself
    (tmp_path / "own" / ".streamlit").mkdir(parents=True)
    (tmp_path / "own" / ".streamlit" / "config.toml").write_text("[server]\nheadless = true\n")
    assert config_flags(tmp_path / "own") == []  # a deployment's own config is left to it
    db = app_db(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = AppServer(db, cwd=elsewhere)
    try:
        with urllib.request.urlopen(f"{server.url}/app/static/favicon.png", timeout=10) as r:
            assert r.status == 200 and r.read()[:4] == b"\x89PNG"
    finally:
        server.stop()
