"""In a real browser: clicking a bar of the failure-share chart lists the turns behind it."""

from __future__ import annotations

import pytest

from tests.e2e.server import AppServer
from tests.test_failure_page import build_fp_db

pytestmark = pytest.mark.e2e


def test_clicking_a_bar_drills_down_to_its_turns(tmp_path, page):
    server = AppServer(build_fp_db(tmp_path))
    try:
        page.goto(f"{server.url}/failures")
        charts = page.locator(".js-plotly-plot")
        # the share chart has drawn (its first trace may be all zero-height bars, so attached, not visible)
        charts.nth(1).locator("g.trace.bars").first.wait_for(state="attached", timeout=30_000)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=20_000)
        # Before the click the menus show every group and the most frequent failure point (ASR).
        def menu(name: str) -> str:
            return page.get_by_role("combobox", name=name).input_value()

        assert menu("Domain") == "(all)" and menu("Predicted failure point") == "ASR"
        # The ASR bar of the "alarm" domain: alarm has 2 turns, one of them predicted ASR (f7).
        shares = charts.nth(1)
        traces = shares.locator("g.trace.bars")
        names = page.evaluate("el => el.data.map(t => t.name)", shares.element_handle())
        xs = page.evaluate("el => el.data[0].x", shares.element_handle())
        bar = traces.nth(names.index("ASR")).locator("g.point").nth(xs.index("alarm")).locator("path")
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        # Plotly's drag layer lies over the bars and turns a click at the bar's position into a point click
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)  # the hover must register first, as a person's pointer would
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function("() => document.querySelector('input[aria-label=\"Domain\"]').value === 'alarm'",
                               timeout=30_000)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=20_000)
        assert menu("Predicted failure point") == "ASR" and menu("Gold failure point") == "(any)"
        assert menu("Evidence for turn") == "f7 · turn 0"  # the only ASR turn in alarm
        assert page.outside_requests == []
    finally:
        server.stop()
