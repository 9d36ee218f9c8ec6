"""Dialogues: search and filter dialogues (the filters live in the URL, so the Overview's bars link here), then
read one turn by turn with every component's output."""

import math

import streamlit as st

from analysis.wer_normalise import label
from app import resources, state, store
from app.page import start
from components.charts import NO_DOMAIN
from components.dialogue_view import render_dialogue
from components.wer_choice import wer_normaliser

PAGE_SIZE = 25
ORDERS = {"newest": "newest first", "wer": "highest WER first"}
page = start("Dialogues")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer


def choice(label: str, column: str, param: str, container, extra: tuple[str, ...] = ()) -> str | None:
    """A filter menu whose value also lives in the URL; an unknown value in the URL is ignored, visibly.
    extra: options beyond the column's values (a value of the data wins over one of the same name)."""
    values = resources.values(conn, db, dataset, column)
    options = ["(any)", *values, *(e for e in extra if e not in values)]
    wanted = st.query_params.get(param)
    if wanted and wanted not in options[1:]:
        st.warning(f"Ignoring the link's {param} filter: no such value in this dataset.")
        wanted = None
    picked = container.selectbox(label, options, index=options.index(wanted) if wanted else 0, key=f"flt_{param}")
    return None if picked == "(any)" else picked


def flag(label: str, param: str, container) -> bool:
    """A checkbox whose value also lives in the URL (param=1)."""
    return container.checkbox(label, key=f"flt_{param}", value=st.query_params.get(param) == "1")


with st.container(border=True):
    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 2, 2])
    text = c1.text_input("Search request or response text", value=st.query_params.get("q", ""), key="flt_q")
    domain = choice("Domain", "nlu_domain", "domain", c2, extra=(NO_DOMAIN,))
    intent = choice("Intent", "nlu_intent", "intent", c3)
    status = choice("Response status", "response_status", "status", c4)
    feedback = choice("User feedback", "user_feedback", "feedback", c5)
    c1, c2, c3, c4 = st.columns([2, 2, 3, 2])
    barge = flag("Only dialogues with a barge-in", "barge", c1)
    failed = flag("Only dialogues with a failure", "failed", c2)
    with c4:
        normaliser = wer_normaliser(conn, dataset, key="dl_wer_normaliser")
    wanted_order = st.query_params.get("sort", "newest")
    if wanted_order not in ORDERS:
        st.warning("Ignoring the link's sort order: no such order.")
    order = c3.segmented_control("Order", list(ORDERS), format_func=ORDERS.get, key="flt_sort", required=True,
                                 default=wanted_order if wanted_order in ORDERS else "newest")

no_domain = domain == NO_DOMAIN and NO_DOMAIN not in resources.values(conn, db, dataset, "nlu_domain")
flt = store.DialogueFilter(text=text.strip() or None, domain=None if no_domain else domain, no_domain=no_domain,
                           intent=intent, response_status=status, user_feedback=feedback, barge_in_only=barge,
                           failure_only=failed)
for param, value in (("q", flt.text), ("domain", domain), ("intent", intent), ("status", status),
                     ("feedback", feedback), ("barge", "1" if barge else None), ("failed", "1" if failed else None),
                     ("sort", None if order == "newest" else order)):
    if value:
        st.query_params[param] = value
    elif param in st.query_params:
        del st.query_params[param]

listing, view = st.columns([2, 3], gap="large")
with listing:
    page_no = st.session_state.get(state.DIALOGUE_PAGE, 1)
    rows, total = store.list_dialogues(conn, dataset, flt, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE,
                                       order=order, normaliser=normaliser)
    total_pages = max(1, math.ceil(total / PAGE_SIZE))
    if page_no > total_pages:  # the filter narrowed the result: back to its first page
        page_no = st.session_state[state.DIALOGUE_PAGE] = 1
        rows, total = store.list_dialogues(conn, dataset, flt, limit=PAGE_SIZE, offset=0, order=order,
                                           normaliser=normaliser)
    st.caption(f"{total:,} dialogues match · page {page_no} of {total_pages} · select a row to open it. A failure "
               "is an unhandled or failed response, an unresolved entity or failed speech synthesis; a barge-in "
               "(the user interrupting) is counted apart, not as a failure.")
    event = st.dataframe(
        rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="dialogue_table",
        # the short columns first, so WER, failure and barge-ins show without scrolling the narrow list
        column_order=["dialogue_id", "pooled_wer", "has_failure", "barge_ins", "first_request", "turns",
                      "failed_turns", "pooled_cer", "started", "user_id", "device"],
        column_config={
            "dialogue_id": "dialogue", "user_id": "user",
            "first_request": st.column_config.TextColumn("first request", width="medium"),
            "pooled_wer": st.column_config.NumberColumn(
                label(normaliser), format="percent",
                help=f"Pooled over the turns with a reference transcript, both normalised by {normaliser}"),
            "pooled_cer": st.column_config.NumberColumn(
                label(normaliser, "CER"), format="percent",
                help=f"Character edits over reference characters, both normalised by {normaliser}"),
            "has_failure": st.column_config.CheckboxColumn("failure", help="A turn with a component failure"),
            "failed_turns": st.column_config.NumberColumn("failed turns"),
            "barge_ins": st.column_config.NumberColumn("barge-ins", help="Turns the user interrupted: not failures"),
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
               "I(nserted) words of the recognised text against the reference, as logged (raw, not normalised). "
               "Audio plays from the audio root; "
               "synthetic voices are labelled as such.")
    render_dialogue(turns, audio_root=settings.audio_root)
