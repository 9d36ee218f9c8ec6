"""Rare-word rescoring: the transcripts the second-pass rescorer proposed for a run (one candidate per turn whose
rescored best hypothesis says other words than the logged 1-best), its held-out evaluation, and the word error
rate measured against the transcripts reviewers settled. The study on SLURP (two n-best sources, the rare-word
set, every weighting scheme) is a separate, longer command (scripts/evaluate_rescoring.py,
docs/results/rescoring.md)."""

import json

import pandas as pd
import streamlit as st

from analysis.rescoring.transcripts import TASK, reviewed_wer, settled_row
from app import resources, state, store
from app.jobs import registry
from app.page import start
from app.review import session as review_session
from app.store import evaluations as store_evaluations
from app.store import rescoring as store_rescoring
from components import job_panel
from components.evaluation_view import show_evaluation
from components.markdown import escape_markdown

page = start("Rare-word rescoring")
conn, dataset = page.conn, page.dataset


def _switch(name: str) -> None:  # a callback: runs before the sidebar's dataset box is drawn again
    st.session_state[state.DATASET] = name


runs = store_rescoring.list_rescoring_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(page.db), registry.get("rescoring"), dataset, page.reviewer,
                      read_only=page.settings.read_only, expanded=runs.empty)
shown = dataset  # the dataset drawn below: this one, or one the rescorer has proposed transcripts for
if runs.empty:
    others = store_rescoring.list_rescored_datasets(conn)
    if not others:
        st.info("The rescorer has not proposed transcripts yet. It needs n-best lists with first-pass scores (log "
                "format 1.1, as `turnlens speech recognise` writes them) and a model trained on a dataset with "
                "reference transcripts: train it above (its tune dataset must have scored n-best lists), then "
                "score.")
        st.stop()
    shown = others[0]
    st.info(f"Dataset {escape_markdown(dataset)} has no transcripts proposed by the rescorer (it needs n-best lists "
            f"with first-pass scores). Shown below: dataset {escape_markdown(shown)}.")
    st.button(f"Switch the sidebar to {escape_markdown(shown)}", on_click=_switch, args=(shown,), key="rsc_switch")
    runs = store_rescoring.list_rescoring_runs(conn, shown)

names = {int(r.run_id): f"run {r.run_number} · {r.name} {r.version} ({r.candidates:,} candidates)"
         for r in runs.itertuples()}
run_id = st.selectbox("Model run", list(names), format_func=names.get, key="rsc_run")
cands = store_rescoring.list_transcript_candidates(conn, shown, run_id)
values = [json.loads(v) for v in cands["value"]]
m1, m2, m3 = st.columns(3)
m1.metric("Transcripts proposed", f"{len(cands):,}", help="Turns whose rescored best hypothesis says other words "
                                                           "than the logged 1-best: one transcript candidate each.")
m2.metric("Undecided", f"{int(cands['verdict'].isna().sum()):,}", help="No settled review decision yet.")
m3.metric("Accepted or corrected", f"{int(cands['verdict'].isin(['accept', 'correct']).sum()):,}")
if shown == dataset:  # the Review and Dialogues pages work on the sidebar's dataset
    st.page_link("app_pages/review.py", label="Review this run's transcripts (hear the audio, accept, reject or edit)",
                 query_params=review_session.spec_to_params(store.QueueSpec(dataset=dataset, task=TASK,
                                                                            run_id=run_id)))

st.subheader("Held-out evaluation")
show_evaluation(store_evaluations.get_latest_evaluation(conn, run_id), key="rsc_evaluation",
                headline=("wer_first_pass", "wer_rescored", "werr_rescored", "wer_oracle"))

st.subheader("Word error rate against reviewed transcripts")
st.caption("Here the reference is not the log's: it is the transcript reviewers settled for each turn (accepted or "
           "corrected, agreed or adjudicated), so only reviewed turns count. Logged: the recogniser's 1-best; "
           "proposed: the rescorer's choice. 95% intervals over speakers. The words are compared lower-cased and "
           "otherwise as logged (the rescorer's tokenisation: close to the raw normaliser, not english-v1; "
           "docs/wer.md).")
settled = store_rescoring.list_reviewed_transcripts(conn, shown)
wer = reviewed_wer([settled_row(json.loads(r.label), asr_text=r.asr_text, speaker_id=r.speaker_id,
                                reference_text=r.reference_text) for r in settled.itertuples()])
if not wer["turns"]:
    st.info("No transcript has been accepted or corrected yet: review some above, and their words become the "
            "reference here.")
else:
    w1, w2, w3 = st.columns(3)
    w1.metric("WER of the logged 1-best", f"{wer['wer_logged']:.3f}",
              help="interval {:.3f} – {:.3f}".format(*wer["wer_logged_ci"]))
    w2.metric("WER of the proposals", f"{wer['wer_proposed']:.3f}",
              help="interval {:.3f} – {:.3f}".format(*wer["wer_proposed_ci"]))
    w3.metric("Reviewed turns", f"{wer['turns']:,}", help=f"{wer['speakers']:,} speakers, {wer['reference_words']:,} "
                                                           f"reference words; {wer['edited']:,} edited by a reviewer")
    if wer["with_log_reference"]:
        st.caption(f"Check on the reviewers: on the {wer['with_log_reference']:,} reviewed turns whose log has its "
                   f"own reference transcript, the reviewed words differ from it at a WER of "
                   f"{wer['reviewed_vs_log_reference_wer']:.3f}.")

st.subheader("Proposed transcripts")
st.caption("Largest score first (the proposal's share of the n-best under the rescored scores); margin: its rescored "
           "total minus the logged 1-best's.")
table = pd.DataFrame({"dialogue_id": cands["dialogue_id"], "turn_index": cands["turn_index"],
                      "logged": cands["logged"], "proposed": [v["text"] for v in values],
                      "margin": [v.get("margin") for v in values], "score": cands["score"],
                      "decision": cands["verdict"].fillna("undecided")})
st.dataframe(table.head(200), hide_index=True, width="stretch", key="rsc_transcripts",
             column_config={"score": st.column_config.NumberColumn(format="%.2f"),
                            "margin": st.column_config.NumberColumn(format="%.3f")})
if shown == dataset:
    keys = [f"{d} · turn {t}" for d, t in zip(table["dialogue_id"].head(200), table["turn_index"].head(200),
                                              strict=True)]
    pick = st.selectbox("Open", range(len(keys)), format_func=keys.__getitem__, key="rsc_open")
    st.page_link("app_pages/dialogues.py", label="Open this dialogue turn by turn (its n-best list and audio)",
                 query_params={"dialogue": table["dialogue_id"].iloc[pick]})
