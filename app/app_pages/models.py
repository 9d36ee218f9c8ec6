"""Models: every registered family (models and analyses), its runs on the current dataset with their status,
configuration and latest evaluation or stored analysis, and jobs to run each action on the current dataset
(run in the background by the server; see app/jobs/)."""

import json

import pandas as pd
import streamlit as st

from app import resources
from app.jobs import registry
from app.page import start
from app.store import evaluations as store_evaluations
from app.store import jobs as store_jobs
from components import job_panel

page = start("Models")
conn, dataset = page.conn, page.dataset
runner = resources.job_runner(page.db)
families = registry.load_built_in()


def runs_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job of a family: what ran, on what, with which settings, by whom, when, and how it ended."""
    shown = jobs[["job_id", "action", "status", "message", "started_by", "created_at", "status_at"]].copy()
    shown["config"] = [", ".join(f"{k}={v}" for k, v in json.loads(c or "{}").items() if k != "checkpoint")
                       for c in jobs["config"]]
    return shown


st.caption("Jobs run one at a time in the background, in a separate process: reviewing goes on meanwhile, and "
           "a job survives a browser reload. A failed or cancelled job writes nothing.")
if page.settings.read_only:
    st.info("This app runs read-only (TURNLENS_READ_ONLY): jobs are switched off.")

st.subheader("Jobs")
job_panel.job_list(runner, key="models")

st.subheader("Families")
for name, family in families.items():
    with st.container(border=True):
        kind = "model" if family.trains else "analysis"
        st.markdown(f"**{family.title}** · `{family.name}` · {kind}")
        st.text(family.description)
        jobs = store_jobs.list_jobs(conn, family=name, dataset=dataset)
        if jobs.empty:
            st.caption("No job of this family has run on this dataset yet.")
        else:
            st.dataframe(runs_table(jobs), hide_index=True, width="stretch", key=f"models_runs_{name}")
        if family.trains:
            evaluations = store_evaluations.list_evaluations(conn, dataset=dataset, family=name)
            if not evaluations.empty:
                latest = evaluations.iloc[0]
                with st.expander(f"Latest evaluation: #{latest['evaluation_id']} of run {latest['run_id']} "
                                 f"({latest['created_at']:%Y-%m-%d %H:%M})"):
                    st.text(latest["markdown"])  # stored text: shown as text
        else:
            analysis = store_evaluations.get_latest_analysis(conn, name, dataset)
            if analysis is not None:
                with st.expander(f"Latest stored analysis: #{analysis['analysis_id']} "
                                 f"({analysis['created_at']:%Y-%m-%d %H:%M})"):
                    st.text(analysis["markdown"])
        job_panel.start_buttons(runner, family, dataset, page.reviewer, read_only=page.settings.read_only,
                                key=f"models_{name}")
