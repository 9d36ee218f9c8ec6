"""Label generation: how far the label model's candidates can be trusted (precision against the log's gold
labels as the threshold falls), and sending them to bulk accept above a threshold and to review below it."""

import numpy as np
import streamlit as st

from analysis.calibration import audit_sample_size
from analysis.labels import evaluation as lmx
from analysis.labels.model import BINARY_TASKS, TASKS
from app import resources, store
from app.jobs import registry
from app.page import start
from app.review import session as review_session
from app.store import evaluations as store_evaluations
from components import charts, job_panel
from components.evaluation_view import show_evaluation
from components.permissions import allowed

TARGET = 0.95  # the default threshold is the lowest one whose labels reach this precision
GOLD = {"intent": "gold_intent", "slots": "gold_slots", "goal_start": "gold_goal_start",
        "goal_success": "gold_goal_success", "defect": "gold_failure_point"}

page = start("Label generation")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

runs = store.list_label_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(db), registry.get("labels"), dataset, reviewer,
                      read_only=settings.read_only, expanded=runs.empty)
if runs.empty:
    st.info("The label-generation model has not scored this dataset yet: train and score it above (it runs in "
            "the background), or from the Models page.")
    st.stop()
names = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.candidates:,} candidates)"
         for r in runs.itertuples()}
c1, c2 = st.columns([2, 3])
run_id = c1.selectbox("Model run", list(names), format_func=names.get, key="lbl_run")
task = c2.segmented_control("Task", TASKS, default="intent", key="lbl_task") or "intent"

frame, correct = resources.label_candidates(conn, db, dataset, run_id, task)  # correct: 1.0 / 0.0 / NaN (no gold)
if frame.empty:
    st.info(f"This run proposed no {task} labels for this dataset.")
    st.stop()
gold = ~np.isnan(correct)
ok, scores = correct[gold].astype(bool), frame["score"].to_numpy()[gold]
curve = lmx.precision_coverage(ok, scores)
best = lmx.threshold_for_precision(curve, TARGET)
# A new run or task starts from its own default (so does a return to this page: Streamlit drops the state
# of widgets a page run did not draw)
if st.session_state.get("lbl_for") != (run_id, task) or "lbl_threshold" not in st.session_state:
    st.session_state["lbl_for"] = (run_id, task)
    st.session_state["lbl_threshold"] = 0.9 if best is None else float(best["threshold"])
threshold = st.slider("Auto-accept labels scoring at least", 0.5 if task in BINARY_TASKS else 0.0, 1.0,
                      step=0.01, key="lbl_threshold",
                      help=f"Starts at the lowest threshold whose labels reach {TARGET:.0%} precision against "
                           "the gold labels (0.9 when none does).")

# The two queues of this run and task: bulk accept takes score >= threshold; review the rest (disjoint).
above = store.QueueSpec(dataset=dataset, task=task, run_id=run_id, score_min=threshold)
below = store.below_threshold(store.QueueSpec(dataset=dataset, task=task, run_id=run_id), threshold)
who = reviewer or "(you)"
n_accept = store.count_bulk_preview(conn, who, above, threshold)
n_review = 0 if below is None else store.count_queue(conn, who, below)

m1, m2, m3, m4 = st.columns(4)
if gold.any():
    labelled, coverage, precision = lmx.point_at(ok, scores, threshold)
    m1.metric("Precision above the threshold", "–" if np.isnan(precision) else f"{precision:.1%}",
              help=f"Share of the {labelled:,} labels at or above the threshold that equal the gold label.")
    m2.metric("Coverage", f"{coverage:.1%}", help=f"Share of the {len(ok):,} labels with a gold label that score "
                                                  "at or above the threshold.")
else:
    st.info(f"This dataset's log has no {GOLD[task]}: there is no precision to show, only the counts.")
m3.metric("Auto-accepted", f"{n_accept:,}", help="Undecided candidates of this run and task scoring at or above "
                                                 "the threshold.")
m4.metric("To review", f"{n_review:,}", help="The other undecided candidates: scoring below the threshold.")
st.caption(f"{len(frame):,} {task} candidates in this run, {int(gold.sum()):,} of them on turns with a gold label "
           "(precision and coverage are over those). Undecided: no one has a standing decision on it.")

if gold.any():
    st.subheader("Precision against coverage")
    st.plotly_chart(charts.precision_coverage(curve, at=(coverage, precision)), key="lbl_curve")

if task == "intent" and gold.any():
    st.subheader("Per intent at this threshold")
    st.caption("Per gold class over the turns with a gold intent: support = its turns; accepted = auto-accepted "
               "labels proposing it; precision = the share of those that are right; recall = the share of its "
               "turns auto-accepted with the right label.")
    st.dataframe(lmx.per_intent_at(frame["value"][gold].tolist(), frame["gold"][gold].tolist(), scores, threshold),
                 hide_index=True, width="stretch", key="lbl_classes",
                 column_config={c: st.column_config.NumberColumn(format="percent") for c in ("precision", "recall")})

st.subheader("Send the split to review")
a, b = st.columns(2)
may_bulk = allowed(page, "bulk_accept", where=a)  # an adjudicator's action (docs/accounts.md); says why not
if a.button(f"Bulk-accept {n_accept:,} labels above the threshold", type="primary", key="lbl_bulk",
            disabled=not may_bulk or settings.read_only or n_accept == 0):
    result = store.bulk_accept(conn, reviewer, above, threshold, audit_size=audit_sample_size)
    review_session.reset_queue()
    st.session_state["lbl_bulk_done"] = (result.bulk_id, result.accepted, result.audit_sample)
    st.rerun()
a.caption(f"A random audit sample of {audit_sample_size(n_accept) if n_accept else 0:,} of them (5%, at least 30) "
          "goes to a queue for people to check.")
if "lbl_bulk_done" in st.session_state:
    bid, accepted, sample = st.session_state["lbl_bulk_done"]
    a.success(f"Bulk accept #{bid}: {accepted:,} accepted; {sample:,} drawn for audit.")
    a.page_link("app_pages/review.py", label=f"Audit bulk accept #{bid} ({sample:,} drawn)",
                query_params={"audit": str(bid), "order": "random", "seed": str(bid)})
if below is not None and n_review:
    b.page_link("app_pages/review.py", label=f"Review the {n_review:,} labels below the threshold",
                query_params=review_session.spec_to_params(below))
else:
    b.caption("No undecided label below the threshold.")

if task == "intent":
    st.subheader("Where the model and the logged NLU disagree")
    odd = store.list_intent_disagreements(conn, dataset, run_id)
    st.caption("Turns whose proposed intent differs from the intent the logged NLU chose, most confident "
               "first (at most 100); gold where the log has one.")
    st.dataframe(odd, hide_index=True, width="stretch", key="lbl_disagreements",
                 column_config={"score": st.column_config.NumberColumn("confidence", format="%.2f")})
    if not odd.empty:
        keys = [f"{d} · turn {t}" for d, t in zip(odd["dialogue_id"], odd["turn_index"], strict=True)]
        pick = st.selectbox("Open", range(len(keys)), format_func=keys.__getitem__, key="lbl_open")
        st.page_link("app_pages/dialogues.py", label="Open this dialogue turn by turn",
                     query_params={"dialogue": odd["dialogue_id"].iloc[pick]})

st.subheader("This model's evaluation")
show_evaluation(store_evaluations.get_latest_evaluation(conn, run_id), key="lbl_evaluation",
                headline=tuple(f"{task}.{m}" for m in ("accuracy", "f1")))
