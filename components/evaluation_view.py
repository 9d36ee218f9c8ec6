"""A model run's stored evaluation on a page: what it was measured on, its metrics with intervals, its report."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analysis.evaluation import Evaluation, describe_kind
from components.markdown import escape_markdown

NONE_YET = ("This run has no stored evaluation yet: evaluate it (an *evaluate* job on this page or the Models "
            "page, or `turnlens evaluate FAMILY`) to see its metrics here.")


def evaluation_table(evaluation: Evaluation) -> pd.DataFrame:
    """metric, value, low, high: one row per metric (NaN where undefined)."""
    return pd.DataFrame(evaluation.table(), columns=["metric", "value", "low", "high"]).astype(
        {"value": "float64", "low": "float64", "high": "float64"})


def show_evaluation(evaluation: Evaluation | None, *, key: str, headline: tuple[str, ...] = ()) -> None:
    """Draw the evaluation, or say plainly that the run has none. headline: metric names shown as big
    numbers above the table (those the evaluation has)."""
    if evaluation is None:
        st.info(NONE_YET)
        return
    level = evaluation.config.get("confidence", 0.95)
    level = f"{level:.0%}" if isinstance(level, (int, float)) else "95%"
    # the kind and metric names are stored text: escaped where Markdown would render them
    st.caption(f"Measured on {evaluation.n_items:,} items: {escape_markdown(describe_kind(evaluation.kind))}. "
               f"Intervals (low, high): {level} bootstrap over whole "
               f"{escape_markdown(str(evaluation.config.get('resampled', 'dialogues')))}.")
    shown = [name for name in headline if name in evaluation.metrics]
    for col, name in zip(st.columns(len(shown)) if shown else [], shown, strict=True):
        m = evaluation.metrics[name]
        col.metric(escape_markdown(name), "–" if math.isnan(m.value) else f"{m.value:.3f}",
                   help=None if math.isnan(m.low) else f"{level} interval {m.low:.3f} – {m.high:.3f}")
    st.dataframe(evaluation_table(evaluation), hide_index=True, width="stretch", key=key,
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("value", "low", "high")})
    with st.expander("The evaluation's report"):
        st.markdown(evaluation.markdown)  # our own Markdown: the evaluators put no names from data in it
