"""A double click on the Query rewrites page's Accept, in a real browser, stores one decision
(app/review/decisions.py)."""

from __future__ import annotations

import pytest

from tests.e2e.server import query, serving, wait_idle
from tests.helpers import first_rewrite

pytestmark = pytest.mark.e2e


def test_a_double_click_on_accept_stores_one_decision(rewrite_db, page):
    _, candidate_id = first_rewrite(rewrite_db)
    with serving(page, rewrite_db, "/rewrites?dataset=t", "zoe"):
        accept = page.get_by_role("button", name="Accept")
        accept.wait_for(timeout=30_000)
        # A person's double click: 150 ms between the clicks (Playwright's delay is between each press and
        # release). Two clicks at once are merged into one rerun by Streamlit and never reached the callback
        # twice; at this pace the second one arrives while or after the page is drawn again, as it does for
        # a person, and the old page stored a second decision.
        accept.dblclick(delay=150)
        page.get_by_text(f"Saved: accept #{candidate_id}").wait_for(timeout=30_000)
        wait_idle(page)
        # A later click, sent after both clicks on the same connection, so the server has handled both by the
        # time its acknowledgement shows (no waiting on a clock): a deliberate decision, stored as usual.
        page.get_by_role("button", name="Reject").click()
        page.get_by_text(f"Saved: reject #{candidate_id}").wait_for(timeout=30_000)
        wait_idle(page)
        assert page.outside_requests == []
    rows = query(rewrite_db, "SELECT candidate_id, reviewer, verdict FROM decisions ORDER BY seq")
    accepts = [r for r in rows if r[2] == "accept"]
    assert accepts == [(candidate_id, "zoe", "accept")], f"the double click stored {len(accepts)} decisions"
    assert rows == [(candidate_id, "zoe", "accept"), (candidate_id, "zoe", "reject")]
