"""Test helpers shared by the test modules: hand-made turns and small logs."""

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


def one_turn_app_db(tmp_path: Path, monkeypatch) -> Path:
    """A database with one turn in dataset "demo", made the app's (TURNLENS_DB): a page with nothing to show."""
    from app import store
    from app.ingest import ingest_files

    path = tmp_path / "empty.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("x", 0)])], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def simulated_db(path: Path, *, n_turns: int, seed: int, dataset: str = "t") -> Path:
    """A database at ``path`` holding ``n_turns`` simulated turns (analysis.simulate) as ``dataset``."""
    from analysis.simulate import load_pool, simulate_turns, write_log
    from app import store
    from app.ingest import ingest_files

    log = path.with_suffix(".jsonl")
    write_log(simulate_turns(load_pool(), n_turns=n_turns, seed=seed), log)
    conn = store.connect(path)
    ingest_files(conn, [log], dataset=dataset)
    conn.close()
    return path
