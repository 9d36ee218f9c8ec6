"""Export: reviewed labels, or every candidate, with provenance, as JSON Lines, CSV or Parquet."""

import tempfile
from pathlib import Path

import streamlit as st

from app import store
from app.page import start

page = start("Export")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

kinds = {"accepted": "accepted labels (accepted or corrected, agreed or adjudicated): training data",
         "resolved": "resolved labels, rejections included",
         "candidates": "every candidate with its score, and its resolution if any"}
kind = st.radio("What", list(kinds), format_func=kinds.get, key="export_kind")
c1, c2 = st.columns(2)
fmt = c1.selectbox("Format", store.EXPORT_FORMATS, key="export_format",
                   help="Parquet loads as is with Hugging Face datasets: load_dataset('parquet', data_files=...)")
tasks = store.list_tasks(conn, dataset)
task = c2.selectbox("Task", ["(all)"] + tasks, key="export_task")
st.caption("Each row carries its provenance: model run (name, version, parameters, time), reviewers, "
           "adjudicator and decision time. `turnlens export` writes the same file from the command line.")
if st.button("Prepare file", type="primary", key="export_go"):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"turnlens-{dataset}-{kind}.{fmt}"
        n = store.export_labels(conn, path, dataset=dataset, kind=kind, fmt=fmt,
                                task=None if task == "(all)" else task)
        st.session_state["export_file"] = (path.name, path.read_bytes(), n)
if "export_file" in st.session_state:
    name, data, n = st.session_state["export_file"]
    st.success(f"{n:,} rows ready.")
    st.download_button(f"Download {name}", data, file_name=name, key="export_download")
