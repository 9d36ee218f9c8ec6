"""The review card: the proposal under review, the other sources' proposals and the other reviewers'
decisions, and the correction editor. Values are JSON text; they are shown as text, never as Markdown."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from analysis.candidates import canonical_json
from analysis.log_format import FAILURE_POINTS
from components.markdown import escape_markdown

BOOL_TASKS = ("goal_start", "goal_success")
CHOICE_TASKS = ("intent", "skill", "failure_point", "domain")


def link_warnings(warnings: list[str]) -> None:
    """Queue settings a link carried that could not be used. They quote the link, so: as text."""
    if warnings:
        st.warning("Some queue settings in the link were ignored:")
        st.text("\n".join(warnings))


def show_value(value_json: str) -> str:
    """A proposed value for display: strings bare, everything else as compact JSON."""
    value = json.loads(value_json)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) and {"type", "value"} <= set(v) for v in value):
        return "; ".join(f"{v['type']} = {v['value']}" for v in value) or "(no slots)"
    return json.dumps(value, ensure_ascii=False)


def render_proposal(card: dict) -> None:
    st.caption(f"Task · {escape_markdown(card['task'])}  —  candidate #{card['candidate_id']}")
    st.code(show_value(card["value"]), language=None)
    st.metric("Score", f"{card['score']:.2f}")
    st.text(f"proposed by {card['model_name']} {card['model_version']}")  # model names come from files


def render_distribution(vector: dict[str, float] | None, *, top: int = 5) -> None:
    """The model's probability for its other choices (most likely first): where a correction most often lies."""
    if not vector or len(vector) < 2:
        return
    st.caption("The model's probabilities" + (f" (top {top} of {len(vector)})" if len(vector) > top else ""))
    shown = list(vector.items())[:top]
    st.dataframe(pd.DataFrame({"label": [k for k, _ in shown], "probability": [v for _, v in shown]}),
                 hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
                     "probability", format="%.3f", min_value=0.0, max_value=1.0)})


def render_sources(proposals: pd.DataFrame, candidate_id: int) -> None:
    if len(proposals) < 2:
        return
    st.caption("All sources for this target")
    table = proposals.assign(value=proposals["value"].map(show_value),
                             shown=proposals["candidate_id"] == candidate_id)
    st.dataframe(table[["shown", "model", "version", "value", "score"]], hide_index=True, width="stretch")


def render_decisions(decisions: pd.DataFrame) -> None:
    if decisions.empty:
        return
    st.caption("Reviewers' current decisions")
    table = decisions.assign(corrected_value=decisions["corrected_value"].map(
        lambda v: show_value(v) if isinstance(v, str) else ""))
    st.dataframe(table, hide_index=True, width="stretch")


def correction_editor(card: dict, known_values: list[str], key: str) -> str | None:
    """Widgets for a corrected value of the card's task; returns its canonical JSON, or None if invalid."""
    task, proposed = card["task"], json.loads(card["value"])
    if task in BOOL_TASKS:
        picked = st.radio("Correct value", [True, False], index=0 if proposed is False else 1, key=key,
                          horizontal=True)
        return canonical_json(picked)
    if task == "slots":
        rows = proposed if isinstance(proposed, list) else []
        edited = st.data_editor(pd.DataFrame(rows, columns=["type", "value"]), num_rows="dynamic", key=key,
                                hide_index=True, width="stretch")
        slots = [{"type": str(r["type"]).strip(), "value": str(r["value"]).strip()}
                 for r in edited.to_dict("records")
                 if isinstance(r["type"], str) and isinstance(r["value"], str) and r["type"].strip()]
        return canonical_json(slots)
    if task == "rewrite" and isinstance(proposed, dict) and "source" in proposed:
        # the source is what was mined; only the rewrite text is the reviewer's to change
        st.text(f"Source: {proposed['source']}")
        text = st.text_input("Correct rewrite", value=str(proposed.get("rewrite", "")), key=key)
        cleaned = " ".join(text.split())
        if not cleaned:
            st.error("The rewrite cannot be empty.")
            return None
        return canonical_json({"source": proposed["source"], "rewrite": cleaned})
    if task in CHOICE_TASKS or isinstance(proposed, str):
        options = sorted({json.loads(v) for v in known_values if isinstance(json.loads(v), str)}
                         | (set(FAILURE_POINTS) if task == "failure_point" else set()))
        options = [o for o in options if o != proposed]
        picked = st.selectbox("Correct value", options, index=None, key=key, accept_new_options=True,
                              placeholder="choose or type a value")
        return canonical_json(picked) if picked else None
    text = st.text_area("Correct value (JSON)", value=json.dumps(proposed), key=key)
    try:
        return canonical_json(json.loads(text))
    except json.JSONDecodeError:
        st.error("Not valid JSON.")
        return None
