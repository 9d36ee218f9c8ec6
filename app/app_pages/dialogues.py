"""Dialogues: search and filter dialogues, then read one turn by turn with every component's output."""

import math

import streamlit as st

from app import resources, state, store
from app.page import start
from components.dialogue_view import render_dialogue

PAGE_SIZE = 25
page = start("Dialogues")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer


def choice(label: str, column: str, param: str, container) -> str | None:
    """A filter menu whose value also lives in the URL; an unknown value in the URL is ignored, visibly."""
    options = resources.values(conn, db, dataset, column)
    wanted = st.query_params.get(param)
    if wanted and wanted not in options:
        st.warning(f"Ignoring the link's {param} filter: no such value in this dataset.")
        wanted = None
    picked = container.selectbox(label, ["(any)"] + options,
                                 index=0 if not wanted else options.index(wanted) + 1, key=f"flt_{param}")
    return None if picked == "(any)" else picked


with st.container(border=True):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    text = c1.text_input("Search request or response text", value=st.query_params.get("q", ""), key="flt_q")
    domain = choice("Domain", "nlu_domain", "domain", c2)
    intent = choice("Intent", "nlu_intent", "intent", c3)
    status = choice("Response status", "response_status", "status", c4)
    barge = st.checkbox("Only dialogues with a barge-in", key="flt_barge",
                        value=st.query_params.get("barge") == "1")

flt = store.DialogueFilter(text=text.strip() or None, domain=domain, intent=intent, response_status=status,
                           barge_in_only=barge)
for param, value in (("q", flt.text), ("domain", domain), ("intent", intent), ("status", status),
                     ("barge", "1" if barge else None)):
    if value:
        st.query_params[param] = value
    elif param in st.query_params:
        del st.query_params[param]

listing, view = st.columns([2, 3], gap="large")
with listing:
    page_no = st.session_state.get(state.DIALOGUE_PAGE, 1)
    rows, total = store.list_dialogues(conn, dataset, flt, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    total_pages = max(1, math.ceil(total / PAGE_SIZE))
    if page_no > total_pages:  # the filter narrowed the result: back to its first page
        page_no = st.session_state[state.DIALOGUE_PAGE] = 1
        rows, total = store.list_dialogues(conn, dataset, flt, limit=PAGE_SIZE, offset=0)
    st.caption(f"{total:,} dialogues match · page {page_no} of {total_pages} · select a row to open it")
    event = st.dataframe(
        rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="dialogue_table",
        column_order=["dialogue_id", "first_request", "turns", "failed_responses", "barge_ins", "started",
                      "pooled_wer", "user_id", "device"],
        column_config={
            "dialogue_id": "dialogue", "first_request": "first request", "failed_responses": "failed",
            "barge_ins": "barge-ins", "user_id": "user",
            "pooled_wer": st.column_config.NumberColumn("WER", format="percent"),
            "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm")})
    st.number_input("Page", min_value=1, max_value=total_pages, step=1, key=state.DIALOGUE_PAGE)

ids = rows["dialogue_id"].tolist()
selected = event.selection.rows if event is not None else []
if selected and selected[0] < len(ids) and ids[selected[0]] != st.session_state.get("_table_pick"):
    # A newly selected table row opens its dialogue (the menu below stays usable too).
    st.session_state["_table_pick"] = st.session_state["open_dialogue"] = ids[selected[0]]
if "open_dialogue" not in st.session_state:
    # First run of this session: a shared link (?dialogue=ID) opens its dialogue, even off this page.
    linked = st.query_params.get("dialogue")
    if linked and store.get_dialogue_turns(conn, linked, dataset):
        if linked not in ids:
            ids = [linked] + ids
        st.session_state["open_dialogue"] = linked
    elif linked:
        st.warning("The dialogue in the link is not in this database.")
if not ids:
    st.info("No dialogue matches these filters.")
    st.stop()
if st.session_state.get("open_dialogue") not in ids:
    st.session_state["open_dialogue"] = ids[0]  # the filter changed: open the first match

with view:
    picked = st.selectbox("Open dialogue", ids, key="open_dialogue")
    st.query_params["dialogue"] = picked
    turns = store.get_dialogue_turns(conn, picked, dataset)
    st.caption(f"{len(turns)} turn(s), in order; the alignment marks S(ubstituted), D(eleted) and "
               "I(nserted) words of the recognised text against the reference.")
    render_dialogue(turns)
