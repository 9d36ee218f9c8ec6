"""Throwaway app for tests/e2e/test_map_offline.py: the regions map with synthetic regions, nothing else."""

import pandas as pd
import streamlit as st

from components.maps import PLOTLY_CONFIG, regions_map

regions = pd.DataFrame({
    "region": ["west", "midwest", "<b>north</b>east"],
    "lat_min": [32.0, 38.0, 39.0], "lat_max": [42.0, 46.0, 45.0],
    "lon_min": [-124.0, -100.0, -80.0], "lon_max": [-114.0, -88.0, -70.0],
    "wer": [0.08, 0.15, 0.22], "wer_low": [0.07, 0.13, 0.19], "wer_high": [0.09, 0.17, 0.25],
    "speakers": [120, 60, 45], "words": [30_000, 12_000, 9_000],
})
points = pd.DataFrame({
    "lat": [34.05, 41.88, 40.71, 29.76], "lon": [-118.24, -87.63, -74.01, -95.37],
    "speakers": [40, 25, 30, 12], "wer": [0.07, 0.16, 0.23, 0.12],
})
# ?config=none renders the same figure the plotly.js default way (topojson from the CDN): the test's control
config = None if st.query_params.get("config") == "none" else PLOTLY_CONFIG
st.plotly_chart(regions_map(regions, points), config=config, key="map")
