"""Compare runs: two model runs' proposals for the same turns, judged by reviewed or gold labels; accuracy overall,
per label and per slice with a paired bootstrap over dialogues for every difference; the turns where they disagree,
each one click from its dialogue."""

import streamlit as st

from analysis import compare_runs as cr
from app import store
from app.page import start
from app.store import compare_runs as store_compare
from components.dialogue_view import render_dialogue
from components.review_card import show_value

SLICES = {"nlu_domain": "domain", "device_type": "device", "locale": "locale"}
REFERENCES = {"reviewed": "reviewed labels", "gold": "the log's gold labels"}


def pct(x: float, fmt: str = ".1%") -> str:
    return "–" if x != x else format(x, fmt)  # NaN (nothing judged): a dash, not "nan%"


page = start("Compare runs")
conn, dataset = page.conn, page.dataset

runs = store_compare.list_run_tasks(conn, dataset)
default = cr.default_pair(runs)
if default is None:
    st.info("No two model runs have proposed values for the same task on this dataset yet: score another model on "
            "the Models page.")
    st.stop()
counts = runs.groupby("task")["run_id"].nunique()
tasks = sorted(counts[counts >= 2].index)
c1, c2, c3, c4 = st.columns(4)
task = c1.selectbox("Task", tasks, index=tasks.index(default[0]), key="cmp_task")
of_task = runs[runs["task"] == task]
names = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.candidates:,})" for r in of_task.itertuples()}
ids = list(names)  # newest first
a_id, b_id = default[1:] if task == default[0] else (ids[1], ids[0])
run_a = c2.selectbox("Run A", ids, index=ids.index(a_id), format_func=names.get, key=f"cmp_a_{task}")
run_b = c3.selectbox("Run B", ids, index=ids.index(b_id), format_func=names.get, key=f"cmp_b_{task}")
refs = [r for r in REFERENCES if r == "reviewed" or task in cr.GOLD_TASKS]
reference = c4.selectbox("Judged by", refs, format_func=REFERENCES.get, key=f"cmp_ref_{task}")
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()

judged = cr.judge_pairs(store_compare.list_run_pair(conn, dataset, task, run_a, run_b), task, reference)
overall = cr.compare_table(judged).iloc[0]
m = st.columns(5)
m[0].metric("Turns both proposed", f"{len(judged):,}")
m[1].metric("Judged for both", f"{overall['items']:,}", help="Turns where both proposals are known to be right or "
            "wrong: every figure below rests on these.")
m[2].metric("Accuracy A", pct(overall["accuracy_a"]))
m[3].metric("Accuracy B", pct(overall["accuracy_b"]))
m[4].metric("B − A", pct(overall["difference"], "+.1%"), help="no interval: fewer than two dialogues judged"
            if overall["low"] != overall["low"] else f"95% interval {overall['low']:+.1%} to {overall['high']:+.1%}, "
            "paired bootstrap over dialogues.")
st.caption("Reviewed labels: a run's proposal is right when its candidate's settled decision accepted it, wrong when "
           "it was corrected or rejected; without one, the other run's settled label decides (an accepted or "
           "corrected value is the truth; a rejected value is wrong). Gold: the log's gold label. Every difference "
           "is B − A with a 95% paired bootstrap interval over dialogues (both runs judged on the same draw). See "
           "README.md, Compare runs.")
simulated = cr.simulated_items(judged) if reference == "reviewed" else 0
if simulated:
    st.warning(f"These figures rest on simulated reviewers: {simulated:,} of the {overall['items']:,} judged turns "
               "were decided by reviewers whose names end in \"(simulated)\", not by people.")
if overall["items"] == 0:
    st.info("No turn of these runs has a settled label yet to judge both proposals by: review some, or judge by "
            "gold labels.")

fmt = {c: st.column_config.NumberColumn(format="percent") for c in ("accuracy_a", "accuracy_b", "difference", "low",
                                                                     "high")}
st.subheader("Per label")
by_label = cr.compare_table(judged, "reference", min_items=5)
by_label = by_label[by_label["group"] != cr.ALL]
by_label["group"] = [g if g == cr.NO_REFERENCE else show_value(g) for g in by_label["group"]]
st.caption("By the true label (where the reference names it), labels with at least 5 judged turns, most first.")
st.dataframe(by_label.rename(columns={"group": "label"}), hide_index=True, width="stretch", key="cmp_by_label",
             column_config=fmt)

st.subheader("Per slice")
slice_by = st.selectbox("Slice by", list(SLICES), format_func=SLICES.get, key="cmp_slice")
st.dataframe(cr.compare_table(judged, slice_by).rename(columns={"group": SLICES[slice_by]}), hide_index=True,
             width="stretch", key="cmp_by_slice", column_config=fmt)

st.subheader("Where the runs disagree")
odd = judged[judged["disagree"]].reset_index(drop=True)
st.caption(f"{len(odd):,} turn(s) where the two runs propose different values. Select a row to open its dialogue.")
shown = odd[["dialogue_id", "turn_index", "request"]].assign(
    run_a=[show_value(v) for v in odd["value_a"]], run_b=[show_value(v) for v in odd["value_b"]],
    reference=[r if r == cr.NO_REFERENCE else show_value(r) for r in odd["reference"]],
    right_a=odd["correct_a"].map({1.0: "right", 0.0: "wrong"}).fillna("?"),
    right_b=odd["correct_b"].map({1.0: "right", 0.0: "wrong"}).fillna("?"))
rows = st.dataframe(shown, hide_index=True, width="stretch", key="cmp_disagreements", on_select="rerun",
                    selection_mode="single-row").selection.rows
if rows and rows[0] < len(odd):
    dialogue_id, turn_index = str(odd["dialogue_id"].iloc[rows[0]]), int(odd["turn_index"].iloc[rows[0]])
    st.text(f"Dialogue {dialogue_id}, turn {turn_index}")  # ids come from logs: as text
    render_dialogue(store.get_dialogue_turns(conn, dialogue_id, dataset), highlight_turn=turn_index,
                    audio_root=page.settings.audio_root)
    st.page_link("app_pages/dialogues.py", label="Open it on the Dialogues page",
                 query_params={"dialogue": dialogue_id})
