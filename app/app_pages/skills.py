"""Skill routing: the pseudo-labels a skill-router run proposed (with the rank history behind each), how many
were accepted, the run's stored evaluation, and how precision changes with p and r (from the checkpoint's stored
training dynamics, without retraining). The ablation of the training switches on SLURP's evaluation split is a
separate, longer command (scripts/evaluate_skills.py, docs/results/skill-routing.md)."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from analysis.skills import model as sr
from app import resources, store
from app.jobs import registry
from app.page import start
from app.review import session as review_session
from app.store import evaluations as store_evaluations
from components import charts, job_panel
from components.evaluation_view import show_evaluation
from components.markdown import escape_markdown

page = start("Skill routing")
conn, dataset = page.conn, page.dataset

runs = store.list_skill_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(page.db), registry.get("skills"), dataset, page.reviewer,
                      read_only=page.settings.read_only, expanded=runs.empty)
if runs.empty:
    st.info("The skill router has not proposed pseudo-labels for this dataset yet: train and score it above (it "
            "runs in the background), or from the Models page.")
    st.stop()
names = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.candidates:,} candidates)"
         for r in runs.itertuples()}
run_id = st.selectbox("Model run", list(names), format_func=names.get, key="skl_run")
params = json.loads(runs.set_index("run_id").loc[run_id, "parameters"] or "{}")
run_p, run_r = params.get("p"), params.get("r")

counts = store.count_skill_review(conn, dataset, run_id)
cols = st.columns(4)
for col, (name, help_text) in zip(cols, (("proposed", "Pseudo-label candidates of this run (one per turn)."),
                                         ("accepted", "Reviewers settled on the proposed skill."),
                                         ("rejected", "Reviewers rejected it or corrected it to another skill."),
                                         ("undecided", "No settled decision yet (or a conflict).")), strict=True):
    col.metric(name.capitalize(), f"{counts[name]:,}", help=help_text)
st.page_link("app_pages/review.py", label=f"Review this run's skill candidates ({counts['undecided']:,} undecided)",
             query_params=review_session.spec_to_params(store.QueueSpec(dataset=dataset, task="skill",
                                                                        run_id=run_id)))

st.subheader("This router's evaluation")
show_evaluation(store_evaluations.get_latest_evaluation(conn, run_id), key="skl_evaluation",
                headline=("routing.top1_accuracy", "baseline.logged_routing.top1_accuracy", "routing.recall_at_k"))

# The checkpoint's training dynamics: example index = position of the turn among the dataset's examples.
checkpoint = params.get("checkpoint")
router = examples = None
if not checkpoint or not Path(checkpoint).is_dir():
    # the folder comes from the run's stored parameters (a candidate file can carry any): escaped
    st.warning(f"The checkpoint folder of this run ({escape_markdown(checkpoint or 'not recorded')}) is missing: "
               "there is no rank history nor p and r table to show.")
else:
    router, examples, same_data = resources.skill_checkpoint(conn, page.db, dataset, checkpoint)
    if not same_data:
        st.warning("The checkpoint was not trained on this dataset as it is now: its training dynamics do not "
                   "index these turns, so there is no rank history nor p and r table to show.")
        router = None

st.subheader("Pseudo-label candidates")
cands = store.list_skill_candidates(conn, dataset, run_id, limit=200)
st.caption(f"Most confident first (at most 200); p = {escape_markdown(run_p)}, r = {escape_markdown(run_r)}: skills "
           "among the top p ranked above "
           "the logged skill for r consecutive epochs. Score: the proposed skill's score when its streak completed.")
st.dataframe(cands.drop(columns=["candidate_id"]), hide_index=True, width="stretch", key="skl_candidates",
             column_config={"score": st.column_config.NumberColumn(format="%.3f")})
if not cands.empty and router is not None:
    keys = [f"{d} · turn {t}: {s}" for d, t, s in zip(cands["dialogue_id"], cands["turn_index"],
                                                       cands["proposed_skill"], strict=True)]
    pick = st.selectbox("Rank history of", range(len(keys)), format_func=keys.__getitem__, key="skl_pick")
    row = cands.iloc[pick]
    index = {e.key: i for i, e in enumerate(examples)}.get((row["dialogue_id"], int(row["turn_index"])))
    # skill names are log text: shown as text
    st.text(f"Epoch by epoch: the rank of {row['proposed_skill']} (proposed) and of {row['logged_skill']} "
            "(logged) on this turn; a gap: the proposed skill was below the recorded ranks.")
    if index is None or row["proposed_skill"] not in router.skills:
        st.info("This turn is not in the checkpoint's training dynamics.")
    else:
        history = sr.rank_history(router.dynamics, index, router.skills.index(row["proposed_skill"]))
        st.plotly_chart(charts.rank_history(history), key="skl_history")

if router is not None:
    st.subheader("Precision by p and r")
    gold = store.list_gold_skills(conn, dataset)
    gold_sets = [gold.get(e.key) for e in examples]
    grid = sr.pseudo_label_grid(router.dynamics, router.skills, gold_sets, range(1, 4), range(1, 7))
    if not any(g is not None for g in gold_sets):
        st.info("This dataset's log has no gold_skills: the table shows how many pseudo-labels each p and r "
                "propose, without precision.")
    st.caption(f"From the checkpoint's stored dynamics (depth {router.dynamics.depth}), without retraining: "
               "every (turn, skill) pseudo-label (a turn can have several; the candidates keep the most "
               "confident one), how many are on turns with gold_skills, and the share of those in gold_skills. "
               f"This run used p = {escape_markdown(run_p)}, r = {escape_markdown(run_r)}.")
    st.dataframe(grid, hide_index=True, width="stretch", key="skl_grid",
                 column_config={"precision": st.column_config.NumberColumn(format="percent")})
    mine = grid[(grid["p"] == run_p) & (grid["r"] == run_r)]
    if not mine.empty and not np.isnan(mine["precision"].iloc[0]):
        st.metric("Precision at this run's p and r", f"{mine['precision'].iloc[0]:.1%}",
                  help=f"Over the {int(mine['with_gold'].iloc[0]):,} pseudo-labels on turns with gold_skills.")
