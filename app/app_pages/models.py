"""Models: every model family, its runs and evaluations, and jobs to train, score and evaluate them on the
current dataset (run in the background by the server; see app/jobs/)."""

import streamlit as st

from app import resources, store_jobs
from app.jobs import registry
from app.page import start
from components import job_panel

page = start("Models")
conn, dataset = page.conn, page.dataset
runner = resources.job_runner(page.db)
families = registry.load_built_in()

st.caption("Jobs run one at a time in the background, in a separate process: reviewing goes on meanwhile, and "
           "a job survives a browser reload. A failed or cancelled job writes nothing.")
if page.settings.read_only:
    st.info("This app runs read-only (TURNLENS_READ_ONLY): jobs are switched off.")

st.subheader("Jobs")
job_panel.job_list(runner, key="models")

st.subheader("Families")
for name, family in families.items():
    with st.container(border=True):
        st.markdown(f"**{family.title}** · `{family.name}`")
        st.text(family.description)
        job_panel.start_buttons(runner, family, dataset, page.reviewer, read_only=page.settings.read_only,
                                key=f"models_{name}")

st.subheader("Job history")
history = store_jobs.list_jobs(conn, dataset=dataset)
if history.empty:
    st.caption("No job has run on this dataset yet.")
else:
    st.dataframe(history.drop(columns=["result"]), hide_index=True, width="stretch")
