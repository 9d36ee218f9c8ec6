"""Test helpers shared by the test modules: hand-made turns and small logs, test databases, AppTest pages."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLURP_DIR = ROOT.parent / "shared" / "datasets" / "slurp"


def make_turn(dialogue: str = "d1", index: int = 0, **fields) -> dict:
    """A valid v1 record; keyword arguments override or add fields (None removes one)."""
    rec = {
        "dialogue_id": dialogue,
        "turn_index": index,
        "timestamp": f"2026-01-05T10:{index // 60:02d}:{index % 60:02d}Z",
        "asr_text": "what is the weather in boston",
        "reference_text": "what's the weather in boston",
        "user_id": "u1",
        "speaker_id": "s1",
        "device_type": "speaker",
        "locale": "en-US",
        "latitude": 42.36,
        "longitude": -71.06,
        "asr_confidence": 0.9,
        "nlu_domain": "weather",
        "nlu_intent": "weather_query",
        "nlu_slots": [{"type": "place_name", "value": "boston"}],
        "nlu_confidence": 0.8,
        "er_status": "resolved",
        "response_skill": "weather.basic",
        "response_text": "It is sunny in Boston.",
        "response_status": "success",
        "tts_status": "ok",
        "barge_in": False,
        "user_feedback": None,
        "speaker_embedding": [0.1, 0.2, 0.3],
        "gold_failure_point": "NO_FAILURE",
    }
    for key, value in fields.items():
        if value is None and key in rec:
            del rec[key]
        else:
            rec[key] = value
    return rec


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    """Write records (dicts as JSON, strings verbatim) one per line."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def open_app_page(page: str, *, reviewer: str | None = "ana", state: dict | None = None,
                  params: dict | None = None, timeout: int = 120):
    """The app in AppTest, switched to ``page`` (e.g. "app_pages/rewrites.py") with a reviewer's name,
    session state and query parameters set first; fails on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=timeout)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    if reviewer:
        at.session_state["reviewer"] = reviewer
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def ingest_log(conn, log: Path, dataset: str, *, candidates: bool = False) -> None:
    """Ingest the log at ``log`` as ``dataset``; with ``candidates``, also store the logged NLU's intent and slot
    candidates (analysis.candidates.candidates_from_logged_nlu)."""
    from analysis.candidates import candidates_from_logged_nlu
    from app import store
    from app.ingest import ingest_files

    ingest_files(conn, [log], dataset=dataset)
    if candidates:
        store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, dataset)))


def app_db(path: Path, log: Path, monkeypatch, *, dataset: str = "demo", candidates: bool = False) -> Path:
    """A database at ``path`` holding ``log`` as ``dataset`` (see ingest_log), made the app's (TURNLENS_DB)."""
    from app import store

    conn = store.connect(path)
    try:
        ingest_log(conn, log, dataset, candidates=candidates)
    finally:
        conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def app_db_copy(src: Path, tmp_path: Path, monkeypatch) -> Path:
    """A fresh copy of the database at ``src`` (one built once per module), made the app's (TURNLENS_DB): for
    tests that write to it."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(src.read_bytes())
    monkeypatch.setenv("TURNLENS_DB", str(copy))
    return copy


def one_turn_app_db(tmp_path: Path, monkeypatch) -> Path:
    """A database with one turn in dataset "demo", made the app's (TURNLENS_DB): a page with nothing to show."""
    return app_db(tmp_path / "empty.duckdb", write_jsonl(tmp_path / "log.jsonl", [make_turn("x", 0)]), monkeypatch)


def intent_turns() -> list[dict]:
    """Three turns, one per dialogue (dlg-0 to dlg-2, on 1 to 3 January), whose logged NLU proposes weather_query
    (confidence 0.2), music_play (0.5) and alarm_set (0.9): with ingest_log's candidates, three intent
    candidates, lowest score first in that order."""
    return [make_turn(f"dlg-{d}", 0, nlu_intent=intent, nlu_confidence=conf, nlu_domain=intent.split("_")[0],
                      timestamp=f"2026-01-0{d + 1}T10:00:00Z")
            for d, (intent, conf) in enumerate([("weather_query", 0.2), ("music_play", 0.5), ("alarm_set", 0.9)])]


def simulated_log(path: Path, *, n_turns: int, seed: int) -> Path:
    """A log at ``path`` of ``n_turns`` simulated turns (analysis.simulate)."""
    from analysis.simulate import load_pool, simulate_turns, write_log

    write_log(simulate_turns(load_pool(), n_turns=n_turns, seed=seed), path)
    return path


def simulated_db(path: Path, *, n_turns: int, seed: int, dataset: str = "t") -> Path:
    """A database at ``path`` holding ``n_turns`` simulated turns (analysis.simulate) as ``dataset``."""
    from app import store

    log = simulated_log(path.with_suffix(".jsonl"), n_turns=n_turns, seed=seed)
    conn = store.connect(path)
    ingest_log(conn, log, dataset)
    conn.close()
    return path


def build_rewrite_db(tmp: Path) -> Path:
    """A database with dataset "t" (20,000 simulated turns) and one mining run by `turnlens mine rewrites` with a
    fast fake embedder; returns its path."""
    from analysis.rewrites.pipeline import PipelineConfig
    from app import store
    from app.jobs import rewrites as rewrite_jobs
    from tests.test_label_model import random_embed

    path = simulated_db(tmp / "rewrites.duckdb", n_turns=20000, seed=3)
    conn = store.connect(path)
    rewrite_jobs.mine(conn, "t", config=PipelineConfig(n_boot=50), embed=random_embed(16))
    conn.close()
    return path


def first_rewrite(path: Path) -> tuple[str, int]:
    """The rewrite the Query rewrites page lists first (highest support × gain): its source and candidate id.
    Read through a read-only connection (no migration, no write), as before or after an app server holds it."""
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    try:
        (source, candidate_id), = conn.execute(
            "SELECT source, candidate_id FROM rewrites ORDER BY source_support * gain DESC, source LIMIT 1").fetchall()
    finally:
        conn.close()
    return source, candidate_id


def read_db(path: Path, fn, *args):
    """fn(conn, *args) on a connection to the database at ``path``, closed again."""
    from app import store

    conn = store.connect(path)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


def decision_rows(conn) -> list[tuple]:
    """Every stored decision, oldest first: (candidate_id, reviewer, verdict, corrected_value, role)."""
    return conn.execute("SELECT candidate_id, reviewer, verdict, corrected_value, role FROM decisions "
                        "ORDER BY seq").fetchall()


def stored_decisions(path: Path) -> list[tuple]:
    """decision_rows of the database at ``path``."""
    return read_db(path, decision_rows)


def speech_tools_or_skip() -> None:
    """Skip (fail in CI, where make install puts them) unless espeak-ng, sox and pocketsphinx are installed: the
    speech tests run them for real."""
    import os
    import shutil

    import pytest

    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        missing.append("pocketsphinx (Python)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing in CI: make install should have installed them")
        pytest.skip(f"{', '.join(missing)} not installed (make install)")
