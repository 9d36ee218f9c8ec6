"""The Query rewrites page in a real browser, offline: the chain diagram draws, and accepting a rewrite is
stored for the reviewer and shows in the export."""

from __future__ import annotations

import duckdb
import pytest

from tests.e2e.server import AppServer
from tests.test_rewrites_page import build_rewrite_db

pytestmark = pytest.mark.e2e

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def test_chain_diagram_and_accepting_a_rewrite(tmp_path, page):
    db = build_rewrite_db(tmp_path)
    conn = duckdb.connect(str(db), read_only=True)
    (source, candidate_id), = conn.execute(
        "SELECT source, candidate_id FROM rewrites ORDER BY source_support * gain DESC, source LIMIT 1").fetchall()
    conn.close()
    server = AppServer(db)
    try:
        page.goto(f"{server.url}/rewrites?dataset=t")
        name = page.get_by_placeholder("your name")
        name.fill("zoe")
        name.press("Enter")
        page.wait_for_selector(IDLE, timeout=30_000)
        # the Sankey of the first rewrite's chain: its nodes and links are SVG in the page (no map tiles, no CDN)
        sankey = page.locator(".js-plotly-plot g.sankey")
        sankey.first.wait_for(state="attached", timeout=30_000)
        assert page.locator(".js-plotly-plot g.sankey-node").count() >= 3
        assert page.locator(".js-plotly-plot path.sankey-link").count() >= 2
        assert page.get_by_text(source, exact=False).count() >= 1  # the chosen rewrite, shown as text
        page.get_by_role("button", name="Accept").click()
        page.wait_for_selector(IDLE, timeout=30_000)
        page.get_by_text(f"Saved: accept #{candidate_id}").wait_for(timeout=30_000)
        page.get_by_role("button", name="Download CSV (1 rows)").wait_for(timeout=30_000)
        assert page.outside_requests == []
    finally:
        server.stop()
    conn = duckdb.connect(str(db), read_only=True)
    rows = conn.execute("SELECT candidate_id, reviewer, verdict FROM decisions").fetchall()
    conn.close()
    assert rows == [(candidate_id, "zoe", "accept")]
