"""The model-job panel: a family's settings, buttons to train, score and evaluate on the current dataset, and
the live jobs with progress and a Cancel button. Shared by the Models page and each family's own page."""

from __future__ import annotations

import streamlit as st

from app.jobs.registry import Family
from app.jobs.runner import JobRefusedError, JobRunner, JobView


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def options_form(family: Family, action: str, key: str) -> dict:
    """Widgets for the action's options, defaults filled in; returns the values."""
    values = {}
    for option in family.options:
        if action not in option.actions:
            continue
        wkey = f"{key}_{action}_{option.name}"
        label = option.name.replace("_", " ")
        if option.type is bool:
            values[option.name] = st.checkbox(label, value=option.default, help=option.help, key=wkey)
        elif option.type in (int, float):
            values[option.name] = st.number_input(
                label, value=option.type(option.default), help=option.help, key=wkey,
                min_value=None if option.low is None else option.type(option.low),
                max_value=None if option.high is None else option.type(option.high),
                step=1 if option.type is int else None)
        elif option.choices:
            values[option.name] = st.selectbox(label, option.choices, index=option.choices.index(option.default),
                                               help=option.help, key=wkey)
        else:
            values[option.name] = st.text_input(label, value=str(option.default), help=option.help, key=wkey)
    return values


def model_choice(runner: JobRunner, family: Family, act, dataset: str, *, key: str) -> str | None:
    """For an action that uses a trained model, of a family whose models score other datasets: which model, when
    one trained on another dataset exists (e.g. the rescorer trained on the sample's transcripts, scoring the
    speech demo's n-best lists). Default: this dataset's newest, else the newest of all. None: the runner's
    default (this dataset's newest)."""
    if not act.needs_checkpoint or not family.scores_other_datasets:
        return None
    models = runner.checkpoints(family.name)
    if not models or all(ds == dataset for ds, _, _ in models):
        return None
    own = next((i for i, (ds, _, _) in enumerate(models) if ds == dataset), 0)
    chosen = st.selectbox("model", range(len(models)), index=own, key=key,
                          format_func=lambda i: f"trained on {models[i][0]} (job #{models[i][1]})",
                          help="A model trained on another dataset can score this one.")
    return models[chosen][2]


def start_buttons(runner: JobRunner, family: Family, dataset: str, reviewer: str, *, read_only: bool,
                  key: str) -> None:
    """One expander per action: its options and a start button. Starting queues a job (see job_list)."""
    for act in family.all_actions():
        action = act.name
        with st.expander(f"{act.verb} · {family.title}", expanded=False):
            values = options_form(family, action, key)
            checkpoint = model_choice(runner, family, act, dataset, key=f"{key}_{action}_model")
            if st.button(f"{act.verb} on this dataset", key=f"{key}_{action}_go", type="primary",
                         disabled=read_only, help="Runs in the background; you can keep working."):
                try:
                    job_id = runner.submit(family.name, action, dataset, values, started_by=reviewer or None,
                                           checkpoint=checkpoint)
                except (JobRefusedError, KeyError) as exc:
                    st.error("The job was not started.")
                    st.text(str(exc))
                else:
                    st.success(f"Job #{job_id} queued.")


def _line(view: JobView) -> str:
    head = f"#{view.job_id} {view.family} {view.action} on {view.dataset}"
    if view.status == "queued":
        return f"{head}: queued, place {view.place}"
    if view.status == "running":
        done = f"{view.done:,}/{view.total:,}" if view.total else f"{view.done:,}"
        return (f"{head}: {view.stage} {done} · elapsed {_duration(view.elapsed)} · ETA {_duration(view.eta)}")
    return f"{head}: {view.status}" + (f" — {view.message}" if view.message else "")


def job_list(runner: JobRunner, *, family: str | None = None, key: str) -> None:
    """The jobs of this server process, live ones with a progress bar and a Cancel button, refreshed every
    second while any is live (a fragment: the rest of the page does not rerun)."""

    @st.fragment(run_every=1.0)
    def live() -> None:
        views = [v for v in runner.views() if family is None or v.family == family]
        if not views:
            st.caption("No jobs started since the server started.")
            return
        for view in views:
            text_col, button_col = st.columns([6, 1])
            text_col.text(_line(view))  # names come from data: shown as text
            if view.status == "running":
                share = view.done / view.total if view.total else 0.0
                text_col.progress(min(max(share, 0.0), 1.0))
            if view.status in ("queued", "running") and button_col.button(
                    "Cancel", key=f"{key}_cancel_{view.job_id}"):
                runner.cancel(view.job_id)

    live()


def family_jobs(runner: JobRunner, family: Family, dataset: str, reviewer: str, *, read_only: bool,
                expanded: bool = False) -> None:
    """A family page's own job section: the same start buttons and live jobs as the Models page, for this
    family only."""
    what = "model" if family.trains else "analysis"
    with st.expander(f"Run the {family.title.lower()} {what} on this dataset", expanded=expanded):
        if read_only:
            st.caption("This app runs read-only: jobs are switched off.")
        start_buttons(runner, family, dataset, reviewer, read_only=read_only, key=f"fam_{family.name}")
        job_list(runner, family=family.name, key=f"fam_{family.name}")
