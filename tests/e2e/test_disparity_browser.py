"""The Disparity page in a real browser with every outside request blocked: the regions map draws from the
app's own map files, and a lasso on the UMAP of speaker voices lists the selected speakers (linked selection)."""

from __future__ import annotations

import re

import pytest

from analysis.disparity import report as dr
from app import store
from tests.e2e.server import AppServer
from tests.test_disparity_page import build_disparity_db

pytestmark = pytest.mark.e2e

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def test_map_draws_offline_and_a_lasso_on_the_voices_lists_speakers(tmp_path, page):
    db = build_disparity_db(tmp_path)
    conn = store.connect(db)
    table = dr.speaker_table_from_turns(store.list_speaker_turns(conn, "t"))
    conn.close()
    n_regions = len(dr.region_frame(dr.analyse(table)))
    topojson: list[str] = []
    page.on("request", lambda r: topojson.append(r.url) if r.url.endswith("_110m.json") else None)
    # The real start-up path: UMAP compiles in the background as soon as the server runs its first script.
    server = AppServer(db, env={"TURNLENS_UMAP_WARMUP": "1"})
    try:
        page.goto(f"{server.url}/disparity?dataset=t")
        chart = page.locator(".js-plotly-plot").first
        chart.locator(".geo .layer.subunits path").first.wait_for(state="attached", timeout=60_000)
        outline = chart.locator(".geo .layer.subunits path").first.get_attribute("d")
        assert outline and len(outline) > 1_000  # the state outlines, loaded from the app
        fills = page.evaluate("""el => Array.from(el.querySelectorAll('g.trace.scattergeo path.js-line'))
            .filter(p => getComputedStyle(p).fill !== 'none').length""", chart.element_handle())
        assert fills == n_regions
        assert topojson and all(u.startswith(server.url) for u in topojson)
        # every region numbered on the map, as the tables name them (1 = worst served)
        numbers = chart.locator("g.trace.scattergeo text").all_text_contents()
        assert sorted(numbers, key=int) == [str(i) for i in range(1, n_regions + 1)]
        page.get_by_text("Stored as report #1").wait_for(timeout=30_000)  # computed on this first open, and stored

        # the voices: wait for the background projection (the first fit in a process compiles for ~45 s)
        umap = page.locator(".js-plotly-plot").last  # the voices are the page's last chart
        page.get_by_text("Colour by").wait_for(timeout=240_000)
        umap.locator(".nsewdrag").first.wait_for(state="attached", timeout=30_000)
        umap.scroll_into_view_if_needed()
        page.wait_for_selector(IDLE, timeout=30_000)
        # Where the speakers are along x, in pixels of the plot area, from plotly's own axis and traces, measured
        # until two readings agree (plotly redraws while streamlit sizes the chart). The lasso's right edge goes
        # through the widest empty gap of the middle half. With a thousand speakers that gap can be under a pixel
        # wide, and a point that close to the edge may fall either way, so the count must lie between the points
        # clearly left of the edge and those up to 3 px right of it.
        def measure() -> tuple[dict, list[float]]:
            return umap.locator(".nsewdrag").first.bounding_box(), sorted(page.evaluate(
                """el => { const gd = el.closest('.js-plotly-plot'), xa = gd._fullLayout.xaxis;
                return gd._fullData.flatMap(tr => Array.from(tr.x).map(x => xa.l2p(x))); }""",
                umap.element_handle()))

        box, px = measure()
        for _ in range(20):
            page.wait_for_timeout(500)
            again = measure()
            if again == (box, px):
                break
            box, px = again
        assert len(px) == len(table)
        middle = [(b - a, a, b) for a, b in zip(px, px[1:], strict=False)
                  if box["width"] * 0.2 < a and b < box["width"] * 0.8]
        assert middle, "no two neighbouring speakers in the middle of the plot"
        _, left, right = max(middle)
        cut = (left + right) / 2
        surely = sum(p < cut - 3 for p in px)
        maybe = sum(p < cut + 3 for p in px)
        assert 0 < surely <= maybe < len(table)
        x0, y0, y1 = box["x"] + 1, box["y"] + 1, box["y"] + box["height"] - 1
        xm = box["x"] + cut
        page.mouse.move(x0, y0)
        page.mouse.down()
        for x, y in ((xm, y0), (xm, y1), (x0, y1), (x0, y0 + 1)):
            page.mouse.move(x, y, steps=8)
        page.mouse.up()
        selected = page.get_by_text(re.compile(r"^[\d,]+ speakers selected"))
        selected.first.wait_for(timeout=60_000)
        count = int(re.match(r"[\d,]+", selected.first.inner_text()).group().replace(",", ""))
        assert surely <= count <= maybe
        page.get_by_text("Their utterances (newest first, at most 500").wait_for(timeout=30_000)
        assert page.outside_requests == []
    finally:
        server.stop()

    # A new server process: the report and the voices' layout come from the store, nothing is computed.
    server = AppServer(db)
    try:
        page.goto(f"{server.url}/disparity?dataset=t")
        page.get_by_text("Drawn from stored report #1, computed by this page").wait_for(timeout=60_000)
        page.get_by_text("Colour by").wait_for(timeout=30_000)  # no projection to wait for
        page.get_by_text("Layout read from the store.", exact=False).wait_for(timeout=30_000)
        assert page.get_by_text("Computing the UMAP projection").count() == 0
        assert page.outside_requests == []
    finally:
        server.stop()
