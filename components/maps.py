"""Offline maps: learned WER regions and speaker cells on a US map whose outlines are served by the app itself."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale, sequential

# plotly.js fetches `<topojsonURL>usa_110m.json` for geo.scope="usa" (default base: https://cdn.plot.ly/un/,
# so an offline map is blank). Streamlit serves app/static/ at app/static/ (server.enableStaticServing).
# Relative on purpose: it resolves against the page URL, so it also works under server.baseUrlPath.
TOPOJSON_URL = "app/static/topojson/"
# Pass to every geo chart: st.plotly_chart(fig, config=PLOTLY_CONFIG).
PLOTLY_CONFIG = {"topojsonURL": TOPOJSON_URL}

# Yellow (best) to dark red (worst): luminance falls monotonically as WER rises. YlOrRd's first, near-white
# step is dropped so the best region still stands out from the light land colour.
WER_COLORSCALE = sequential.YlOrRd[1:]
REGION_COLUMNS = ("region", "lat_min", "lat_max", "lon_min", "lon_max", "wer", "wer_low", "wer_high",
                  "speakers", "words")
POINT_COLUMNS = ("lat", "lon", "speakers", "wer")
# The contiguous US (lat_min, lat_max, lon_min, lon_max): region numbers are placed inside it.
CONTIGUOUS_US = (24.5, 49.5, -124.8, -66.9)
# Region fills are translucent so the state outlines under them stay readable.
FILL_OPACITY = 0.55
MAX_POINT_PX = 28


def _require(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; expected {list(columns)}")


def rectangle_ring(lat_min: float, lat_max: float, lon_min: float, lon_max: float, *,
                   step_deg: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The closed outline of a lon/lat box as (lon, lat) arrays, first point repeated last.

    plotly.js joins consecutive geo points by great-circle arcs, but a box's top and bottom edges are
    parallels (curves in the Albers projection), so every edge is densified to points at most `step_deg`
    degrees apart. The ring runs clockwise on a north-up map (SW, NW, NE, SE), which d3-geo reads as
    "the inside is the small box", not the rest of the globe.
    """
    if not (lat_min < lat_max and lon_min < lon_max):
        raise ValueError(f"empty box: lat {lat_min}..{lat_max}, lon {lon_min}..{lon_max}")

    def edge(a0: float, a1: float, b0: float, b1: float) -> tuple[np.ndarray, np.ndarray]:
        n = max(2, math.ceil(max(abs(a1 - a0), abs(b1 - b0)) / step_deg) + 1)
        return np.linspace(a0, a1, n)[:-1], np.linspace(b0, b1, n)[:-1]  # the next edge starts at the end

    corners = [(lon_min, lat_min), (lon_min, lat_max), (lon_max, lat_max), (lon_max, lat_min), (lon_min, lat_min)]
    parts = [edge(x0, x1, y0, y1) for (x0, y0), (x1, y1) in zip(corners, corners[1:], strict=False)]
    lon = np.concatenate([p[0] for p in parts] + [np.array([lon_min])])
    lat = np.concatenate([p[1] for p in parts] + [np.array([lat_min])])
    return lon, lat


def wer_colors(wer, *, cmin: float, cmax: float, colorscale=WER_COLORSCALE) -> list[str]:
    """One colour per WER value: positions (wer - cmin) / (cmax - cmin) clipped to [0, 1] on `colorscale`."""
    span = cmax - cmin if cmax > cmin else 1.0
    t = np.clip((np.asarray(wer, dtype=float) - cmin) / span, 0.0, 1.0)
    return list(sample_colorscale(colorscale, t.tolist()))


def _with_alpha(rgb: str, alpha: float) -> str:
    # sample_colorscale returns "rgb(r, g, b)"
    return rgb.replace("rgb(", "rgba(").replace(")", f", {alpha})")


def label_positions(regions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Where each region's marker and number go: the centre of the part of its box inside the contiguous US
    (a box reaching out to Alaska or Hawaii has its middle at sea, off the Albers USA map), or the box's own
    centre when none of it is inside. (lon, lat) arrays in ``regions`` order."""
    lat_lo, lat_hi, lon_lo, lon_hi = CONTIGUOUS_US
    lat_min, lat_max = regions["lat_min"].clip(lat_lo, lat_hi), regions["lat_max"].clip(lat_lo, lat_hi)
    lon_min, lon_max = regions["lon_min"].clip(lon_lo, lon_hi), regions["lon_max"].clip(lon_lo, lon_hi)
    inside = (lat_max > lat_min) & (lon_max > lon_min)
    lon = np.where(inside, (lon_min + lon_max) / 2, (regions["lon_min"] + regions["lon_max"]) / 2)
    lat = np.where(inside, (lat_min + lat_max) / 2, (regions["lat_min"] + regions["lat_max"]) / 2)
    return lon.astype(float), lat.astype(float)


def region_hover(row) -> str:
    """Hover label of one region: id, pooled WER with its 95% interval, speakers and words (escaped)."""
    interval = (f"95% CI {row.wer_low:.1%} to {row.wer_high:.1%}"
                if np.isfinite(row.wer_low) and np.isfinite(row.wer_high) else "no interval")
    return (f"<b>region {html.escape(str(row.region))}</b><br>"
            f"pooled WER {row.wer:.1%} ({interval})<br>"
            f"{int(row.speakers):,} speakers · {int(row.words):,} reference words")


def regions_map(regions: pd.DataFrame, points: pd.DataFrame | None = None, *,
                min_speakers: int | None = None, wer_range: tuple[float, float] | None = None,
                step_deg: float = 1.0, height: int = 520) -> go.Figure:
    """A map of the US with learned regions as boxes filled by pooled WER and speaker cells as points.

    regions: one row per region with columns `region` (id, shown as text), `lat_min`, `lat_max`,
        `lon_min`, `lon_max` (degrees), `wer`, `wer_low`, `wer_high` (pooled WER and its 95% interval, as
        fractions; higher is worse), `speakers` and `words` (reference words).
    points: optional aggregated speaker cells with `lat`, `lon`, `speakers`, `wer`; drawn as markers whose
        area is proportional to `speakers`. Rows without coordinates are dropped.
    min_speakers: if given, a region or point with fewer speakers raises ValueError (speaker locations
        are personal data: small groups must be merged or hidden by the caller, which says so on the page).
    wer_range: the (low, high) WER ends of the colour scale; default the span of the WER values shown.

    One trace per region (a closed, densified lon/lat ring filled with its colour, in `regions` order),
    then one marker trace of region centres (``label_positions``) carrying the hover text, the region ids as
    customdata and the colour bar, then the points, then the region ids written at the centres (a text trace
    named "region numbers", on top). Uses geo scope "usa" (Albers USA): anything outside the US is not drawn.
    Render with `st.plotly_chart(fig, config=PLOTLY_CONFIG)` so the outlines load from the app, not a CDN.
    """
    _require(regions, REGION_COLUMNS, "regions")
    if points is not None:
        _require(points, POINT_COLUMNS, "points")
        points = points.dropna(subset=["lat", "lon"])
    if min_speakers is not None:
        for what, df in (("region", regions), ("point", points)):
            if df is not None and len(df) and (df["speakers"] < min_speakers).any():
                raise ValueError(f"a {what} has fewer than {min_speakers} speakers: merge or hide it first")

    values = np.concatenate([regions["wer"].to_numpy(float)]
                            + ([points["wer"].to_numpy(float)] if points is not None else []))
    values = values[np.isfinite(values)]
    if wer_range is not None:
        cmin, cmax = wer_range
    elif len(values):
        cmin, cmax = float(values.min()), float(values.max())
    else:
        cmin, cmax = 0.0, 1.0
    if cmax <= cmin:  # a single value: give the scale some width so the colour bar draws
        cmin, cmax = max(0.0, cmin - 0.05), cmax + 0.05

    fig = go.Figure()
    colors = wer_colors(regions["wer"], cmin=cmin, cmax=cmax)
    hovers = [region_hover(row) for row in regions.itertuples(index=False)]
    for row, color, hover in zip(regions.itertuples(index=False), colors, hovers, strict=True):
        lon, lat = rectangle_ring(row.lat_min, row.lat_max, row.lon_min, row.lon_max, step_deg=step_deg)
        fig.add_trace(go.Scattergeo(
            lon=lon, lat=lat, mode="lines", fill="toself", fillcolor=_with_alpha(color, FILL_OPACITY),
            line=dict(color="rgba(60, 60, 60, 0.8)", width=1),
            name=f"region {html.escape(str(row.region))}", showlegend=False,
            hovertext=[hover] * len(lon), hoverinfo="text"))

    # A fill has no hover in geo charts: a marker at each box's centre (of its part in the contiguous US) carries
    # the label and the colour bar.
    coloraxis = dict(colorscale=WER_COLORSCALE, cmin=cmin, cmax=cmax,
                     colorbar=dict(title=dict(text="pooled WER"), tickformat=".0%", thickness=14))
    label_lon, label_lat = label_positions(regions)
    fig.add_trace(go.Scattergeo(
        lon=label_lon, lat=label_lat, mode="markers", name="regions", showlegend=False,
        marker=dict(symbol="square", size=9, color=regions["wer"], coloraxis="coloraxis",
                    line=dict(color="rgb(40, 40, 40)", width=1)),
        customdata=regions["region"].astype(str), hovertext=hovers, hoverinfo="text"))

    if points is not None and len(points):
        speakers = points["speakers"].to_numpy(float)
        # sizemode "area": a marker's area is proportional to its speakers, the largest MAX_POINT_PX across
        sizeref = 2.0 * speakers.max() / MAX_POINT_PX**2 if speakers.max() > 0 else 1.0
        point_hover = [f"{int(p.speakers):,} speakers · WER {p.wer:.1%}<br>{p.lat:.2f}°, {p.lon:.2f}°"
                       for p in points.itertuples(index=False)]
        fig.add_trace(go.Scattergeo(
            lon=points["lon"], lat=points["lat"], mode="markers", name="speakers", showlegend=False,
            marker=dict(size=speakers, sizemode="area", sizeref=sizeref, sizemin=3, color=points["wer"],
                        coloraxis="coloraxis", opacity=0.9, line=dict(color="rgb(40, 40, 40)", width=0.8)),
            hovertext=point_hover, hoverinfo="text"))

    # Each region's number (as the region table and the stability chart name it) beside its marker, drawn last
    # so no speaker cell covers it.
    fig.add_trace(go.Scattergeo(
        lon=label_lon, lat=label_lat, mode="text", name="region numbers", showlegend=False, hoverinfo="skip",
        text=[html.escape(str(r)) for r in regions["region"]], textposition="top center",
        textfont=dict(size=13, color="rgb(15, 15, 15)", family="Arial Black, Arial, sans-serif")))

    fig.update_layout(
        coloraxis=coloraxis, height=height, margin=dict(t=10, b=10, l=10, r=10),
        geo=dict(scope="usa", projection_type="albers usa", resolution=110, showland=True,
                 landcolor="rgb(245, 245, 242)", showsubunits=True, subunitcolor="rgb(170, 170, 170)",
                 showcountries=True, countrycolor="rgb(120, 120, 120)", showlakes=False, bgcolor="rgba(0,0,0,0)"))
    return fig
