"""The Disparity page's Mitigation section: pick a group the analysis found and a method, start it as a job, and see
before and after side by side from the newest stored result of each mitigation family (app/jobs/ewc_adaptation.py:
per-group WER of the rescorer before and after adapting it; app/jobs/verification.py: per-group EER of the plain
and ARW verifiers). The table builders are pure (a stored summary in, a DataFrame out); ``mitigation_section``
draws. Group labels, ids and texts come from data: shown in dataframes and st.text, never as Markdown."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import streamlit as st

from app.jobs.runner import JobRefusedError, JobRunner
from components.job_panel import job_list

METHODS = {"ewc-adaptation": "Adapt the rescorer to the group (plain fine-tuning and EWC; WER)",
           "verification": "Speaker verification with adversarial reweighting (EER)"}
EWC_SYSTEMS = {"first pass": "first pass (logged)", "none": "rescorer before", "finetune": "plain fine-tuning",
               "ewc": "fine-tuning with EWC"}
FIGURES = {"overall": "overall WER", "mean": "mean across groups", "max": "worst group", "variance": "variance"}
SCORERS = {"cosine": "untrained cosine", "plain": "plain verifier", "arw": "ARW verifier"}


def _ci(m: dict, digits: int = 3) -> str:
    low, high = m["ci"] if "ci" in m else (m.get("low"), m.get("high"))
    shown = f"{m['value']:.{digits}f}"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return shown
    return f"{shown} [{low:.{digits}f}, {high:.{digits}f}]"


def ewc_across(summary: dict) -> pd.DataFrame:
    """One row per system: overall WER, mean, maximum and variance across groups, each with its interval; then the
    EWC-minus-before and EWC-minus-plain differences (negative: EWC lower, better)."""
    t = summary["table"]
    rows = [{"system": label, **{FIGURES[f]: _ci(t["systems"][name][f], 4 if f == "variance" else 3)
                                 for f in FIGURES}} for name, label in EWC_SYSTEMS.items()]
    for key, label in (("ewc vs none", "EWC − before"), ("ewc vs finetune", "EWC − plain fine-tuning")):
        if key in t["differences"]:
            d = t["differences"][key]
            rows.append({"system": label, **{FIGURES[f]: _ci(d[f], 4) for f in FIGURES}})
    return pd.DataFrame(rows)


def ewc_per_group(summary: dict) -> pd.DataFrame:
    """One row per group: its held-out lists and speakers, the WER of each system with intervals, and the EWC-minus-
    before difference; the target group marked."""
    t = summary["table"]
    rows = []
    for g in t["groups"]:
        row = {"group": g, "target": g == summary["target"], "speakers": t["counts"][g]["speakers"],
               "lists": t["counts"][g]["lists"]}
        row |= {label: _ci(t["systems"][name]["per_group"][g]) for name, label in EWC_SYSTEMS.items()}
        row["EWC − before"] = _ci(t["differences"]["ewc vs none"]["per_group"][g], 4)
        rows.append(row)
    return pd.DataFrame(rows)


def verification_table(summary: dict) -> pd.DataFrame:
    """One row per scorer: overall EER, the gap between groups, and each group's EER, with intervals."""
    cohorting = summary["cohorting"]
    rows = []
    for name, label in SCORERS.items():
        m = summary["scorers"][name]
        grouping = m["groupings"][cohorting]
        row = {"scorer": label, "EER": _ci(m["overall"]), "gap between groups": _ci(grouping["gap"])}
        row |= {f"group {g}": _ci(v) for g, v in sorted(grouping["groups"].items())}
        rows.append(row)
    return pd.DataFrame(rows)


def groupings(summaries: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """cohorting -> its shown groups (labels as text), worst first, for the cohortings with at least two."""
    out = {}
    for name, frame in summaries.items():
        shown = frame[frame["shown"].astype(bool)] if "shown" in frame.columns else frame
        shown = shown[[not (isinstance(g, int | float) and g < 0) for g in shown["group"]]]
        if len(shown) >= 2:
            out[name] = [str(g) for g in shown.sort_values("wer", ascending=False)["group"]]
    return out


def mitigation_section(runner: JobRunner, dataset: str, reviewer: str, *, read_only: bool,
                       summaries: dict[str, pd.DataFrame], report_id: int | None, results: dict[str, dict | None],
                       open_utterance: Callable[[pd.Series], None]) -> None:
    """The section: the start form (a grouping with two or more shown groups, one of its groups, a method) and
    the newest stored result of each method. results: family -> its newest stored analysis (or None)."""
    st.subheader("Mitigation")
    st.caption("From finding a disparity to reducing it: adapt a model to a group served worse, then compare every "
               "group before and after, on dialogues (or speakers) the adaptation never saw. The target is a group "
               "of the report above; the job runs in the background.")
    options = groupings(summaries)
    if not options:
        st.caption("The report shows fewer than two groups in every grouping: there is no gap to reduce.")
    else:
        c1, c2, c3 = st.columns([2, 2, 3])
        cohorting = c1.selectbox("Grouping", list(options), key="mit_cohorting")
        group = c2.selectbox("Target group (worst first)", options[cohorting], key="mit_group")
        family = c3.selectbox("Method", list(METHODS), format_func=METHODS.get, key="mit_method")
        if st.button("Start the mitigation job", key="mit_go", type="primary", disabled=read_only,
                     help="Runs in the background; you can keep working."):
            try:
                job_id = runner.submit(family, "mitigate", dataset, {"cohorting": cohorting, "group": group,
                                                                     "report_id": int(report_id or 0)},
                                       started_by=reviewer or None)
            except (JobRefusedError, KeyError) as exc:
                st.error("The job was not started.")
                st.text(str(exc))
            else:
                st.success(f"Job #{job_id} queued.")
        for name in METHODS:
            job_list(runner, family=name, key=f"mit_jobs_{name}")
    ewc = results.get("ewc-adaptation")
    if ewc is not None:
        s = ewc["summary"]
        st.markdown("**Rescorer adapted to one group: WER before and after**")
        st.text(f"Target: {s['cohorting']} {s['target']} · adapted on {s['adapt_lists']:,} training-side n-best lists "
                f"of {s['adapt_speakers']:,} speakers · measured on {s['table']['lists']:,} held-out lists of "
                f"{s['table']['units']:,} speakers · EWC strength {s['adaptation']['ewc']['ewc_lam']:g} (chosen on a "
                f"dev split of the group's speakers) · analysis #{ewc['analysis_id']}")
        st.dataframe(ewc_across(s), hide_index=True, width="stretch", key="mit_ewc_across")
        st.caption("Intervals: 95% speaker bootstrap, paired across systems. What happened to everyone else: the "
                   "rows of the other groups below. WER here is the rescorer's own: words lower-cased, otherwise as "
                   "logged (close to raw, not english-v1; docs/wer.md). The groups come from the disparity report "
                   + (f"made under {s['normaliser']}." if s.get("normaliser") else "under the dataset's default "
                      "normaliser."))
        st.dataframe(ewc_per_group(s), hide_index=True, width="stretch", key="mit_ewc_groups")
        changed = pd.DataFrame(s["changed"], columns=["dialogue_id", "turn_index", "speaker_id", "group", "reference",
                                                      "before", "finetune", "ewc"])
        st.caption(f"Held-out utterances whose rescored transcript changed: {s['changed_total']:,}"
                   + (f" (the first {len(changed):,} shown)" if len(changed) < s["changed_total"] else "")
                   + ". Click one for its dialogue.")
        picked = st.dataframe(changed, hide_index=True, width="stretch", key="mit_changed", on_select="rerun",
                              selection_mode="single-row").selection.rows
        if picked and picked[0] < len(changed):
            open_utterance(changed.iloc[picked[0]])
    v = results.get("verification")
    if v is not None:
        s = v["summary"]
        st.markdown("**Speaker verification: EER per group, plain and with adversarial reweighting**")
        st.text(f"Grouping: {s['cohorting']} · trained on {s['train_speakers']:,} speakers, measured on every pair "
                f"of {s['held_out_turns']:,} turns of {s['held_out_speakers']:,} held-out speakers · analysis "
                f"#{v['analysis_id']}")
        st.dataframe(verification_table(s), hide_index=True, width="stretch", key="mit_verification")
        st.caption("EER: equal error rate, lower is better; gap: the largest group EER minus the smallest. 95% "
                   "intervals from a bootstrap over held-out speakers (a max-minus-min gap leans upward).")
    if ewc is None and v is None:
        st.caption("No mitigation has run on this dataset: start one above (docs/results/mitigation.md and "
                   "docs/results/verification.md measure both methods on larger data).")
