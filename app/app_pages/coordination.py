"""Coordination chunking: the item lists the chunker proposed for a run (one candidate per turn it splits into two
or more items), its accuracy by item count from the run's stored evaluation, the items it proposes most, and the
turns where it disagrees with the logged NLU slots. The full evaluation on SLURP's evaluation split is a separate,
longer command (scripts/evaluate_coordination.py, docs/results/coordination.md)."""

import json

import pandas as pd
import streamlit as st

from analysis.coordination.evaluate import by_item_count
from analysis.coordination.items import TASK, disagrees, top_items
from app import resources, store
from app.jobs import registry
from app.page import start
from app.review import session as review_session
from app.store import coordination as store_coordination
from app.store import evaluations as store_evaluations
from components import job_panel
from components.evaluation_view import show_evaluation

page = start("Coordination chunking")
conn, dataset = page.conn, page.dataset

runs = store_coordination.list_coordination_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(page.db), registry.get("coordination"), dataset, page.reviewer,
                      read_only=page.settings.read_only, expanded=runs.empty)
if runs.empty:
    st.info("The coordination chunker has not proposed item lists for this dataset yet: train and score it above (it "
            "runs in the background), or from the Models page.")
    st.stop()
names = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.candidates:,} candidates)"
         for r in runs.itertuples()}
run_id = st.selectbox("Model run", list(names), format_func=names.get, key="crd_run")

cands = store_coordination.list_item_candidates(conn, dataset, run_id)
values = [json.loads(v) for v in cands["value"]]
differ = [disagrees(v) for v in values]
m1, m2, m3 = st.columns(3)
m1.metric("Turns split into items", f"{len(cands):,}", help="Turns whose recognised words the chunker splits into "
                                                             "two or more items: one items candidate each.")
m2.metric("Disagree with the logged NLU", f"{sum(differ):,}", help="The proposed items differ from the logged NLU "
                                                                   "slot values over the same words.")
m3.metric("Undecided", f"{int(cands['verdict'].isna().sum()):,}", help="No settled review decision yet.")
st.page_link("app_pages/review.py", label="Review this run's item lists",
             query_params=review_session.spec_to_params(store.QueueSpec(dataset=dataset, task=TASK, run_id=run_id)))

st.subheader("Accuracy by item count")
evaluation = store_evaluations.get_latest_evaluation(conn, run_id)
rows = by_item_count(evaluation) if evaluation is not None else []
if rows:
    st.caption("Exact match of the whole item list on lists built from the held-out dialogues' gold slots (1: a "
               "single value, which must stay unsplit); 95% interval over dialogues.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="crd_by_count",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("exact_match", "low", "high", "chunk_f1")})
show_evaluation(evaluation, key="crd_evaluation", headline=("exact_match", "lists.exact_match", "gain_over_rule"))

st.subheader("Items the model proposes most")
st.dataframe(pd.DataFrame(top_items(values), columns=["item", "turns", "mean_chunk_score", "slot_types"]),
             hide_index=True, width="stretch", key="crd_top_items",
             column_config={"mean_chunk_score": st.column_config.NumberColumn(format="%.2f")})

st.subheader("Where the chunker and the logged NLU disagree")
st.caption("Turns whose proposed items differ from the logged NLU values over the same words (one value for the "
           "whole list, an item cut in two, or nothing logged there), most confident first (at most 100).")
odd = pd.DataFrame({
    "dialogue_id": cands["dialogue_id"], "turn_index": cands["turn_index"], "request": cands["request"],
    "proposed_items": [" | ".join(v["items"]) for v in values],
    "logged_values": [" | ".join(v.get("logged") or []) or "(none)" for v in values],
    "slot_type": [v.get("slot_type") or "(none logged)" for v in values], "score": cands["score"]})[differ].head(100)
st.dataframe(odd, hide_index=True, width="stretch", key="crd_disagreements",
             column_config={"score": st.column_config.NumberColumn("confidence", format="%.2f")})
if not odd.empty:
    keys = [f"{d} · turn {t}" for d, t in zip(odd["dialogue_id"], odd["turn_index"], strict=True)]
    pick = st.selectbox("Open", range(len(keys)), format_func=keys.__getitem__, key="crd_open")
    st.page_link("app_pages/dialogues.py", label="Open this dialogue turn by turn",
                 query_params={"dialogue": odd["dialogue_id"].iloc[pick]})
