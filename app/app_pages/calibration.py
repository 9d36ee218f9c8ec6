"""Calibration: does a model's score predict what reviewers accept, and where to set a threshold."""

import streamlit as st

from analysis.calibration import reliability_bins, threshold_for_precision
from app import store
from app.page import start
from components import charts

page = start("Calibration")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

data = store.list_scored_verdicts(conn, dataset)
if data.empty:
    st.info("No candidate has a settled decision yet: review some first.")
    st.stop()
# The run id is part of the label: two runs may differ only in their parameters.
groups = sorted({(r.task, r.run_id, f"{r.task} · #{r.run_id} {r.model} {r.version}") for r in data.itertuples()})
label = st.selectbox("Task and model run", [g[2] for g in groups], key="calib_group")
task, run_id, _ = next(g for g in groups if g[2] == label)
subset = data[(data["task"] == task) & (data["run_id"] == run_id)]
bins = reliability_bins(subset["score"].to_numpy(), subset["accepted"].to_numpy(dtype=bool))
st.plotly_chart(charts.reliability(bins), key="reliability")
st.caption(f"{len(subset):,} decided candidates. Acceptance = the settled label is the proposal itself; "
           "rejections and corrections count against it. Bars: 95% Wilson intervals. Estimated on the decisions "
           "so far, which reflect what the review queues showed.")
target = st.slider("Target precision", 0.5, 0.999, 0.95, step=0.005, key="calib_target")
min_support = st.number_input("Minimum decisions above the threshold", 1, 10_000, 30, key="calib_support")
result = threshold_for_precision(subset["score"].to_numpy(), subset["accepted"].to_numpy(dtype=bool),
                                 target=target, min_support=int(min_support))
if result.threshold is None:
    st.warning(f"No threshold reaches {target:.1%}: {result.reason}")
else:
    c1, c2, c3 = st.columns(3)
    c1.metric("Lowest threshold", f"{result.threshold:.3f}")
    c2.metric("Precision above it", f"{result.precision:.1%}",
              help=f"95% interval {result.ci_low:.1%} – {result.ci_high:.1%}, over {result.support:,} decisions")
    c3.metric("Coverage", f"{result.coverage:.1%}", help="Share of the decided candidates at or above it.")
