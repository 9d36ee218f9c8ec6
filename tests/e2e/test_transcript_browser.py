"""A reviewer corrects a rescorer's transcript (task transcript, #19) in a real browser: the card shows the n-best
list as the rescorer scored it (first pass, LM, total) with the proposal marked and its changed word highlighted,
`c` opens the transcript, and the saved correction keeps the list with the reviewer's words; then the database is
checked after the server stopped."""

from __future__ import annotations

import json

import pytest

from analysis.candidates import read_candidates
from analysis.rescoring.transcripts import candidate_value
from app import store
from app.ingest import ingest_files
from tests.e2e.server import query, serving, wait_idle
from tests.helpers import make_turn, write_jsonl

pytestmark = pytest.mark.e2e

LOGGED = "play jaz by miles"


def test_correct_a_transcript_with_the_keyboard(tmp_path, page):
    db = tmp_path / "transcript.duckdb"
    conn = store.connect(db)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("r-1", 0, asr_text=LOGGED)])],
                 dataset="demo")
    value = candidate_value(LOGGED, [LOGGED, "play jazz by miles", "play jars by miles"], [-1.0, -1.1, -1.3],
                            [-20.0, -15.0, -24.0], [-3.0, -2.6, -3.7], 1, lam=0.1, beta=0.0)
    store.insert_candidates(conn, read_candidates(write_jsonl(tmp_path / "c.jsonl", [{
        "task": "transcript", "dialogue_id": "r-1", "turn_index": 0, "value": value, "score": 0.6,
        "model_name": "nlu-rescorer", "model_version": "1"}])))
    conn.close()
    with serving(page, db, "/review?dataset=demo", "ana"):
        page.get_by_role("button", name="Accept").wait_for(timeout=30_000)
        page.locator(".tl-card .tl-rescored").first.wait_for(state="attached", timeout=20_000)
        assert page.locator(".tl-card .tl-rescored tr.tl-hyp").count() == 3
        chosen = page.locator(".tl-card .tl-rescored tr.tl-chosen")
        assert chosen.locator("mark.tl-diff").all_text_contents() == ["jazz"]  # the word that differs
        assert "proposed" in chosen.inner_text() and "-2.60" in chosen.inner_text()
        wait_idle(page)
        page.locator("h1").first.click()  # focus the page, not an input: keys go to the shortcuts
        page.keyboard.press("c")
        box = page.get_by_role("textbox", name="Correct transcript")
        box.wait_for(timeout=20_000)
        assert box.input_value() == "play jazz by miles"
        box.fill("play jazz by miles davis")
        box.press("Enter")  # a text input takes its value on enter
        wait_idle(page)
        page.get_by_role("button", name="Save correction").click()
        page.get_by_text("Saved: correct").first.wait_for(timeout=20_000)
    (verdict, corrected), = query(db, "SELECT verdict, corrected_value FROM decisions WHERE verdict = 'correct'")
    fixed = json.loads(corrected)
    assert fixed["text"] == "play jazz by miles davis" and fixed["corrected"] is True
    assert [h["text"] for h in fixed["hypotheses"]] == [LOGGED, "play jazz by miles", "play jars by miles"]
