"""The Query rewrites page in a real browser, offline: the chain diagram draws, and accepting a rewrite is
stored for the reviewer and shows in the export."""

from __future__ import annotations

import pytest

from tests.e2e.server import query, serving, wait_idle
from tests.helpers import first_rewrite

pytestmark = pytest.mark.e2e


def test_chain_diagram_and_accepting_a_rewrite(rewrite_db, page):
    source, candidate_id = first_rewrite(rewrite_db)
    with serving(page, rewrite_db, "/rewrites?dataset=t", "zoe"):
        # the Sankey of the first rewrite's chain: its nodes and links are SVG in the page (no map tiles, no CDN)
        sankey = page.locator(".js-plotly-plot g.sankey")
        sankey.first.wait_for(state="attached", timeout=30_000)
        assert page.locator(".js-plotly-plot g.sankey-node").count() >= 3
        assert page.locator(".js-plotly-plot path.sankey-link").count() >= 2
        assert page.get_by_text(source, exact=False).count() >= 1  # the chosen rewrite, shown as text
        page.get_by_role("button", name="Accept").click()
        wait_idle(page)
        page.get_by_text(f"Saved: accept #{candidate_id}").wait_for(timeout=30_000)
        page.get_by_role("button", name="Download CSV (1 rows)").wait_for(timeout=30_000)
        assert page.outside_requests == []
    rows = query(rewrite_db, "SELECT candidate_id, reviewer, verdict FROM decisions")
    assert rows == [(candidate_id, "zoe", "accept")]
