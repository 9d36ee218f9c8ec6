"""Export: reviewed labels, or every candidate, with provenance, as JSON Lines, CSV or Parquet, or in a labelling tool's
shape (Label Studio, Argilla, Prodigy; docs/interop.md)."""

import re
import tempfile
from pathlib import Path

import streamlit as st

from app import resources, store
from app.page import start
from app.store.export import INTEROP_FORMATS, export_interop, interop_suffix
from components.exports import FORMAT_TITLES, zip_files

page = start("Export")
conn, db, dataset = page.conn, page.db, page.dataset

kinds = {"accepted": "accepted labels (accepted or corrected, agreed or adjudicated): training data",
         "resolved": "resolved labels, rejections included",
         "candidates": "every candidate with its score, and its resolution if any"}
kind = st.radio("What", list(kinds), format_func=kinds.get, key="export_kind")
c1, c2 = st.columns(2)
fmt = c1.selectbox("Format", [*store.EXPORT_FORMATS, *INTEROP_FORMATS], key="export_format",
                   format_func=lambda f: FORMAT_TITLES.get(f, f),
                   help="Parquet loads as is with Hugging Face datasets: load_dataset('parquet', data_files=...). "
                        "The labelling tools' shapes hold one item per candidate of a turn (docs/interop.md).")
tasks = resources.tasks(conn, db, dataset)
task = c2.selectbox("Task", ["(all)"] + tasks, key="export_task")
st.caption("Each row carries its provenance: model run (name, version, parameters, time), reviewers, the roles "
           "that decided (review, audit, bulk), adjudicator and decision time. Values and labels are typed: JSON "
           "values in JSON Lines; in Parquet a struct with one typed field per task, with a dataset card "
           "(README.md: schema, provenance, licence) beside it; JSON text in CSV. In CSV, text a spreadsheet "
           "would run as a formula (starting with =, +, -, @, a tab or a carriage return) gets a leading "
           "apostrophe; JSON Lines and Parquet hold the exact values. "
           "`turnlens export` writes the same files from the command line.")
options = (dataset, kind, fmt, task)
if st.session_state.get("export_file", {}).get("options") != options:
    st.session_state.pop("export_file", None)  # other options: the prepared file no longer matches
if st.button("Prepare file", type="primary", key="export_go"):
    # DuckDB writes the file itself (COPY, streamed); the download then reads it from disk when clicked.
    folder = Path(tempfile.mkdtemp(prefix="turnlens-export-"))
    tool = fmt in INTEROP_FORMATS
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"turnlens-{dataset}-{kind}" + (f"-{fmt}" if tool else ""))
    name = stem + (interop_suffix(fmt) if tool else f".{fmt}")
    chosen = None if task == "(all)" else task
    if tool:
        n, left_out = export_interop(conn, folder / name, dataset=dataset, kind=kind, fmt=fmt, task=chosen)
    else:
        n, left_out = store.export_labels(conn, folder / name, dataset=dataset, kind=kind, fmt=fmt, task=chosen), 0
    card = store.write_dataset_card(conn, folder / name, dataset=dataset, kind=kind,
                                    task=chosen) if fmt == "parquet" else None
    st.session_state["export_file"] = {"options": options, "path": str(folder / name), "rows": n,
                                       "left_out": left_out, "card": str(card) if card else None}
prepared = st.session_state.get("export_file")
if prepared:
    path = Path(prepared["path"])
    st.success(f"{prepared['rows']:,} {'items' if fmt in INTEROP_FORMATS else 'rows'} ready.")
    if prepared["left_out"]:
        st.warning(f"{prepared['left_out']:,} rows left out: their target is a whole dialogue or a pair of turns, "
                   "which these tools' items (one utterance each) cannot hold. The JSON Lines and Parquet exports "
                   "hold them.")
    st.text(f"{path.name} · {path.stat().st_size / 1e6:,.1f} MB")
    d1, d2, d3 = st.columns(3)
    d1.download_button("Download file", data=lambda: path.open("rb"), file_name=path.name, key="export_download")
    if prepared["card"]:
        card = Path(prepared["card"])
        d2.download_button("Download dataset card (README.md)", data=lambda: card.read_bytes(),
                           file_name=store.CARD_NAME, mime="text/markdown", key="export_card")
        d3.download_button("Download both (zip)", data=lambda: zip_files([path, card]).open("rb"),
                           file_name=path.with_suffix(".zip").name, mime="application/zip", key="export_zip")
