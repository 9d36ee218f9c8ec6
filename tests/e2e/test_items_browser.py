"""A reviewer corrects a coordination split (task items, #18) in a real browser: the card highlights each proposed
item in the utterance, `c` opens the item list, one item per line, and the saved correction is the corrected
split with its items found again in the recognised text; then the database is checked after the server stopped."""

from __future__ import annotations

import json

import pytest

from analysis.candidates import read_candidates
from app import store
from app.ingest import ingest_files
from tests.e2e.server import query, serving, wait_idle
from tests.helpers import make_turn, write_jsonl

pytestmark = pytest.mark.e2e

TEXT = "add bananas peanut butter and paper towels to my list"


def test_correct_a_split_with_the_keyboard(tmp_path, page):
    db = tmp_path / "items.duckdb"
    conn = store.connect(db)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("i-1", 0, asr_text=TEXT)])], dataset="demo")
    proposed = {"items": ["bananas peanut", "butter", "paper towels"], "spans": [[4, 18], [19, 25], [30, 42]],
                "chunk_scores": [0.6, 0.5, 0.9], "slot_type": "list_item", "logged": []}
    store.insert_candidates(conn, read_candidates(write_jsonl(tmp_path / "c.jsonl", [{
        "task": "items", "dialogue_id": "i-1", "turn_index": 0, "value": proposed, "score": 0.5,
        "model_name": "coordination-chunker", "model_version": "1"}])))
    conn.close()
    with serving(page, db, "/review?dataset=demo", "ana"):
        page.get_by_role("button", name="Accept").wait_for(timeout=30_000)
        # each proposed item is a highlighted span labelled with its place in the list
        page.locator(".tl-card .tl-span-label").first.wait_for(state="attached", timeout=20_000)
        labels = page.locator(".tl-card .tl-span-label").all_text_contents()  # as written, not as styled
        assert labels == ["item 1", "item 2", "item 3"]
        wait_idle(page)
        page.locator("h1").first.click()  # focus the page, not an input: keys go to the shortcuts
        page.keyboard.press("c")
        box = page.get_by_role("textbox", name="Correct items, one per line")
        box.wait_for(timeout=20_000)
        box.fill("bananas\npeanut butter\npaper towels")
        # Ctrl+Enter hands Streamlit the value at once (a blur alone raced with the Save click on a loaded
        # machine: the correction saved was the proposal); the box must still hold it after that rerun
        box.press("Control+Enter")
        wait_idle(page)
        page.wait_for_function("v => [...document.querySelectorAll('textarea')].some(t => t.value === v)",
                               arg="bananas\npeanut butter\npaper towels", timeout=20_000)
        page.get_by_role("button", name="Save correction").click()
        page.get_by_text("Saved: correct").first.wait_for(timeout=20_000)
    (verdict, corrected), = query(db, "SELECT verdict, corrected_value FROM decisions WHERE verdict = 'correct'")
    fixed = json.loads(corrected)
    assert verdict == "correct" and fixed["items"] == ["bananas", "peanut butter", "paper towels"]
    assert [TEXT[a:b] for a, b in fixed["spans"]] == fixed["items"]
