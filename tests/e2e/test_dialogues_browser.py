"""In a real browser: log text that looks like HTML or Markdown shows literally and no script runs."""

from __future__ import annotations

import json

import pytest

from app import store
from app.ingest import ingest_files
from tests.e2e.server import AppServer

pytestmark = pytest.mark.e2e

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
LINK = "[click me](http://evil.example/steal)"
DOMAIN = '<a href="https://evil.example/d">domain link</a><b>BOLD</b>'  # reaches Plotly axis labels

LINKS_TO_EVIL = """() => Array.from(document.querySelectorAll('a')).filter(a =>
    ((a.getAttribute('href') || '') + (a.getAttribute('xlink:href') || '')).includes('evil.example')).length"""


def write_log(path):
    base = {"dialogue_id": "xss-1", "user_id": "u1", "device_type": "speaker", "nlu_domain": DOMAIN,
            "nlu_intent": "general_quirky", "response_status": "success", "tts_status": "ok"}
    turns = [
        {**base, "turn_index": 0, "timestamp": "2026-01-05T10:00:00Z", "asr_text": f"say {SCRIPT} now",
         "reference_text": "say hello now", "response_text": f"here {IMG} and {LINK}"},
        {**base, "turn_index": 1, "timestamp": "2026-01-05T10:00:09Z", "asr_text": "**not bold** _nor italic_",
         "response_text": "<b>not bold either</b>"},
    ]
    path.write_text("\n".join(json.dumps(t) for t in turns) + "\n")
    return path


def test_markup_in_logs_is_literal_text(tmp_path, page):
    db_path = tmp_path / "xss.duckdb"
    conn = store.connect(db_path)
    ingest_files(conn, [write_log(tmp_path / "xss.jsonl")], dataset="xss")
    conn.close()

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    server = AppServer(db_path)
    try:
        page.goto(f"{server.url}/dialogues?dialogue=xss-1")
        page.get_by_text("REF: say").first.wait_for(timeout=30_000)  # the alignment block has rendered
        body = page.inner_text("body")
        # The alignment block shows the recognised words exactly as logged.
        assert SCRIPT in body
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("a[href*='evil.example']").count() == 0
        assert page.locator("b", has_text="not bold either").count() == 0
        # Table cells (canvas-drawn data grid) are not in the DOM text; the grid's copy of the data is checked
        # through Streamlit's own rendering: nothing executed and nothing was fetched from outside.
        page.wait_for_timeout(1500)
        assert dialogs == []
        # The Overview charts put the domain on their axes: Plotly must show it as text, not as a link.
        page.goto(f"{server.url}/")
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        assert page.evaluate(LINKS_TO_EVIL) == 0
        assert page.outside_requests == [], page.outside_requests
    finally:
        server.stop()
