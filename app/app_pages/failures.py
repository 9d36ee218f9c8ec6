"""Failure analysis: where turns fail first and irrecoverably, by group and over time, for one model run."""

import pandas as pd
import streamlit as st

from analysis.failure_points.model import TEXT_SLOTS, build_examples
from analysis.failure_points.report import COMPONENTS, cascade, shares_by_group, what_if_perfect
from analysis.log_format import FAILURE_POINTS
from app import resources, store
from app.jobs import registry
from app.page import start
from app.store import evaluations as store_evaluations
from components import charts, job_panel
from components.evaluation_view import show_evaluation

ALL, ANY = "(all)", "(any)"


def follow_click(source: str, pick: tuple[str, str] | None, menus: dict | None) -> None:
    """Point the drill-down menus at a clicked bar or cell, once per new click: the chart keeps its selection
    across reruns, and re-applying it every run would undo the reader's own menu choices."""
    if pick is not None and st.session_state.get(f"fp_clicked_{source}") != pick:
        st.session_state[f"fp_clicked_{source}"] = pick
        st.session_state.update(menus)


page = start("Failure analysis")
conn, dataset = page.conn, page.dataset

runs = store.list_failure_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(page.db), registry.get("failure-points"), dataset, page.reviewer,
                      read_only=page.settings.read_only, expanded=runs.empty)
if runs.empty:
    st.info("No failure-point model has scored this dataset yet: train and score one above (it runs in the "
            "background), or from the Models page.")
    st.stop()
labels = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.turns:,} turns)" for r in runs.itertuples()}
run_id = st.selectbox("Model run", list(labels), format_func=labels.get, key="fp_run")

by_label = store.list_failure_shares(conn, dataset, run_id, "domain")
totals = cascade(by_label)
c1, c2, c3 = st.columns(3)
c1.metric("Turns scored", f"{totals['turns']:,}")
c2.metric("Defective", f"{totals['defective'] / max(totals['turns'], 1):.1%}",
          help="Turns whose predicted failure point is not NO_FAILURE.")
worst = max(COMPONENTS, key=lambda c: totals[c])
c3.metric("Most frequent failure point", worst, f"{totals[worst] / max(totals['defective'], 1):.0%} of defects",
          delta_color="off")

st.subheader("The cascade")
st.caption("Every turn flows to the FIRST component that failed and was not recovered: an NLU error caused by "
           "a recognition error counts as ASR.")
st.plotly_chart(charts.failure_cascade(totals), key="fp_cascade")

st.subheader("If one component were perfect")
st.caption("Click a row to list its turns below.")
what_if = what_if_perfect(by_label)
rows = st.dataframe(what_if, hide_index=True, width="stretch", key="fp_whatif", on_select="rerun",
                    selection_mode="single-row",
                    column_config={c: st.column_config.NumberColumn(format="percent")
                                   for c in ("share_of_defects", "defect_rate_now", "defect_rate_if_perfect")}
                    ).selection.rows
component = (str(what_if["component"].iloc[rows[0]]),) if rows and rows[0] < len(what_if) else None
follow_click("row", component, component and {"fp_label": component[0], "fp_group": ALL, "fp_gold": ANY})

st.subheader("By group")
by = st.segmented_control("Group by", list(store.FAILURE_GROUPS), default="domain", key="fp_by") or "domain"
table = shares_by_group(store.list_failure_shares(conn, dataset, run_id, by))
st.caption("Click a bar to list the turns behind it below.")
bars = st.plotly_chart(charts.failure_shares(table), key="fp_shares", on_select="rerun", selection_mode="points")
clicked = charts.clicked_bar(bars.selection)
follow_click("bar", clicked, clicked and {"fp_label": clicked[0], "fp_group": clicked[1], "fp_gold": ANY})

gold = store.list_failure_vs_gold(conn, dataset, run_id)
if not gold.empty:
    st.subheader("Against the gold labels in the log")
    matrix = gold.pivot_table(index="gold", columns="predicted", values="turns", aggfunc="sum", fill_value=0)
    order = [label for label in FAILURE_POINTS if label in matrix.index or label in matrix.columns]
    matrix = matrix.reindex(index=[o for o in order if o in matrix.index],
                            columns=[o for o in order if o in matrix.columns], fill_value=0)
    correct = sum(matrix.loc[i, i] for i in matrix.index if i in matrix.columns)
    st.caption(f"Rows: gold failure point; columns: predicted. {correct:,} of {int(matrix.values.sum()):,} turns "
               "agree. (SLURP-based logs: NO_FAILURE, ASR and NLU are real labels; the others are simulated.) "
               "Click a cell to list its turns below.")
    cells = st.dataframe(matrix, width="stretch", key="fp_gold_matrix", on_select="rerun",
                         selection_mode="single-cell").selection.cells
    # a selection kept from another run's matrix may point outside this one: ignore it
    cell = (str(matrix.index[cells[0][0]]), str(cells[0][1])) if cells and cells[0][0] < len(matrix) \
        and cells[0][1] in matrix.columns else None
    follow_click("cell", cell, cell and {"fp_label": cell[1], "fp_group": ALL, "fp_gold": cell[0]})

st.subheader("This model's evaluation")
show_evaluation(store_evaluations.get_latest_evaluation(conn, run_id), key="fp_evaluation",
                headline=("macro_f1", "accuracy", "baseline.majority.macro_f1"))

st.subheader("The turns behind a bar or cell")
d1, d2, d3 = st.columns(3)
st.session_state.setdefault("fp_label", worst)  # not index=: the menus are also set by clicks (session state)
label = d1.selectbox("Predicted failure point", list(FAILURE_POINTS), key="fp_label")
groups = [ALL] + table["grp"].astype(str).tolist()
if st.session_state.get("fp_group", ALL) not in groups:  # a group of another "Group by"
    st.session_state["fp_group"] = ALL
group = d2.selectbox(f"{by.capitalize()}", groups, key="fp_group")
gold_label = d3.selectbox("Gold failure point", [ANY, *FAILURE_POINTS, "(none)"], key="fp_gold")
turns = store.list_failure_turns(conn, dataset, run_id, label, by=None if group == ALL else by,
                                 group=None if group == ALL else group, gold=None if gold_label == ANY else gold_label)
st.dataframe(turns, hide_index=True, width="stretch",
             column_config={"score": st.column_config.NumberColumn("confidence", format="%.2f"),
                            "candidate_id": None})
if not turns.empty:
    keys = [f"{d} · turn {t}" for d, t in zip(turns["dialogue_id"], turns["turn_index"], strict=True)]
    pick = st.selectbox("Evidence for turn", range(len(keys)), format_func=keys.__getitem__, key="fp_open")
    dialogue_id, turn_index = turns["dialogue_id"].iloc[pick], int(turns["turn_index"].iloc[pick])
    # The model's whole probability vector for this turn, most likely first (the store sorts it)
    vector = store.get_candidate_distribution(conn, int(turns["candidate_id"].iloc[pick]))
    if vector is None:
        st.caption("This run stored only the most likely failure point, not the full probability vector.")
    else:
        st.dataframe(pd.DataFrame({"failure_point": list(vector), "probability": list(vector.values())}),
                     hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="%.3f", min_value=0.0, max_value=1.0)})
    dialogue = store.get_dialogue_turns(conn, dialogue_id, dataset)
    # What the model read for this turn: its texts and metadata tokens (build_examples, the model's own view)
    example = next(ex for ex in build_examples(dialogue) if ex.turn_index == turn_index)
    st.dataframe(pd.DataFrame({"input": [*TEXT_SLOTS, *(name for name, _ in example.tokens)],
                               "value": [*example.texts, *(value for _, value in example.tokens)]}),
                 hide_index=True, width="stretch")
    st.page_link("app_pages/dialogues.py", label="Open this dialogue turn by turn",
                 query_params={"dialogue": dialogue_id})
