"""In a real browser with every outside request blocked: the regions map draws from the app's own topojson."""

from __future__ import annotations

import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from components.maps import TOPOJSON_URL
from tests.e2e.server import ROOT, AppServer

pytestmark = pytest.mark.e2e

STATIC = ROOT / "app" / "static"
HEALTHY = "[data-testid='stApp'][data-test-script-state='notRunning']"


class MapAppServer(AppServer):
    """`streamlit run map_app.py` from a folder holding a copy of app/static/topojson as its static/.

    Streamlit serves the static/ folder next to the *main script*, so for the committed files to be the ones
    served, the throwaway script runs from a temporary folder laid out like app/. The working directory stays
    the repo root so the repo's .streamlit/config.toml (enableStaticServing) is the one in force.
    """

    def __init__(self, folder):
        shutil.copy(ROOT / "tests" / "e2e" / "map_app.py", folder / "map_app.py")
        shutil.copytree(STATIC / "topojson", folder / "static" / "topojson")
        super().__init__(folder / "unused.duckdb", env={"PYTHONPATH": str(ROOT)}, script=folder / "map_app.py")


@pytest.fixture(scope="module")
def map_server(tmp_path_factory):
    server = MapAppServer(tmp_path_factory.mktemp("map_app"))
    yield server
    server.stop()


def _topojson_requests(page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if r.url.endswith("_110m.json") else None)
    return urls


def test_map_draws_states_and_regions_with_no_internet(map_server, page):
    requested = _topojson_requests(page)
    page.goto(map_server.url)
    chart = page.locator(".js-plotly-plot").first
    # the state outlines are drawn only once usa_110m.json has loaded and parsed
    chart.locator(".geo .layer.subunits path").first.wait_for(state="attached", timeout=30_000)
    page.wait_for_selector(HEALTHY, timeout=20_000)

    assert set(requested) == {f"{map_server.url}/{TOPOJSON_URL}usa_110m.json"}
    outline = chart.locator(".geo .layer.subunits path").first.get_attribute("d")
    assert outline and len(outline) > 1_000  # 51 state outlines, not an empty path
    assert chart.locator(".geo .layer.land path").count() > 0

    # three regions, each a filled path much smaller than the map (a ring wound the wrong way fills the globe)
    fills = page.evaluate("""el => Array.from(el.querySelectorAll('g.trace.scattergeo path.js-line'))
        .filter(p => getComputedStyle(p).fill !== 'none')
        .map(p => { const b = p.getBoundingClientRect(); return b.width * b.height; })""", chart.element_handle())
    chart_box = chart.bounding_box()
    assert len(fills) == 3
    assert all(0 < area < 0.1 * chart_box["width"] * chart_box["height"] for area in fills)

    # each region's name is written on the map at its centre, as text, not markup
    centres = chart.locator("g.trace.scattergeo").nth(3).locator("path.point")
    assert centres.count() == 3
    names = chart.locator("g.trace.scattergeo").last.locator("text")
    assert names.all_text_contents() == ["west", "midwest", "<b>north</b>east"]  # the tags shown, not applied

    # hovering a region's centre shows its interval; the region id stays text, not markup
    box = centres.nth(2).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    label = chart.locator(".hoverlayer .hovertext")
    label.first.wait_for(timeout=10_000)
    text = label.first.text_content()
    assert "region <b>north</b>east" in text
    assert "95% CI 19.0% to 25.0%" in text and "45 speakers" in text

    # a drawn map, not a blank canvas: many pixels neither white nor the light land colour
    pixels = np.asarray(Image.open(io.BytesIO(chart.screenshot())).convert("RGB"))
    assert (pixels.min(axis=2) < 200).mean() > 0.02
    assert page.outside_requests == []


def test_without_the_config_the_map_goes_to_the_cdn(map_server, page):
    """The control: the same figure without PLOTLY_CONFIG asks the CDN (blocked here) and draws no states."""
    requested = _topojson_requests(page)
    page.goto(f"{map_server.url}/?config=none")
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    page.wait_for_selector(HEALTHY, timeout=20_000)
    deadline = time.monotonic() + 10
    while not page.outside_requests and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    # (plotly.js may ask more than once: the chart is drawn again as Streamlit sizes it)
    assert set(page.outside_requests) == {"https://cdn.plot.ly/un/usa_110m.json"}
    assert requested == page.outside_requests
    assert page.locator(".geo .layer.subunits path").count() == 0
