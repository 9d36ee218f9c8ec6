"""Query rewrites: the rewrites a mining run found in rephrase chains, how they fare when replayed on a
later held-out period (wins, losses, defect rate), how well rephrases were detected, each rewrite's chain and
evidence sessions, accepting or rejecting them, and the approved rewrite table to deploy."""

import json
import math
import shlex

import pandas as pd
import streamlit as st

from app import resources, store
from app.jobs import registry
from app.page import start
from app.review import decisions
from app.review import session as review_session
from components import charts, job_panel
from components.dialogue_view import render_dialogue
from components.exports import csv_safe

REWRITERS = ("chain", "chain_retiring_oracle", "online", "combined")
COMPARED = ("rewritten", "wins", "losses", "ties", "win_rate", "loss_rate", "win_loss_ratio",
            "defect_rate_without", "defect_rate_with", "defect_reduction")
PERCENT = ("rewrite_rate", "win_rate", "loss_rate", "defect_rate_without", "defect_rate_with", "defect_reduction")


def with_interval(value: float | None, low: float | None = None, high: float | None = None, *,
                  fmt: str = ".1f") -> str:
    """A figure with its 95% interval, e.g. "8.8 [6.1, 13.0]"; "–" for a missing value, the value alone
    without an interval."""
    def missing(x: object) -> bool:
        return x is None or (isinstance(x, float) and math.isnan(x))

    def show(x: float) -> str:
        return "∞" if math.isinf(x) else format(x, fmt)

    if missing(value):
        return "–"
    return show(value) if missing(low) or missing(high) else f"{show(value)} [{show(low)}, {show(high)}]"


def decide(conn, candidate_id: int, reviewer: str, verdict: str, decision_id: str) -> None:
    """Button callback: store this reviewer's decision (it replaces their earlier one), before the page draws.
    decision_id was bound into the button when it was drawn: a double click stores one decision."""
    try:
        result = decisions.decide(conn, decision_id=decision_id, candidate_id=candidate_id, reviewer=reviewer,
                                  verdict=verdict, tokens=tokens())
    except decisions.DecisionRefused as exc:
        st.session_state["rw_saved"] = ("error", str(exc))
        return
    if not result.saved:  # not slot-limited here: the only other outcome is a candidate that is gone
        st.session_state["rw_saved"] = ("error", f"Not saved: candidate #{candidate_id} does not exist.")
        return
    review_session.reset_queue()  # the review queue's fetched batch may hold this candidate
    st.session_state["rw_saved"] = ("success", f"Saved: {verdict} #{candidate_id}")


def tokens() -> decisions.Tokens:
    """This session's decision ids of the Accept and Reject buttons, per (candidate, verdict)."""
    return st.session_state.setdefault("rw_tokens", decisions.Tokens())


page = start("Query rewrites")
conn, dataset, reviewer = page.conn, page.dataset, page.reviewer

runs = store.list_rewrite_runs(conn, dataset)
job_panel.family_jobs(resources.job_runner(page.db), registry.get("rewrites"), dataset, reviewer,
                      read_only=page.settings.read_only, expanded=runs.empty)
if runs.empty:
    st.info("No rewrites have been mined for this dataset yet: mine them above (it runs in the background), "
            "from the Models page, or from the command line with this:")
    # The dataset name as code (text, never Markdown), quoted for the shell
    st.code(f"turnlens mine rewrites --dataset {shlex.quote(dataset)}", language="bash")
    st.stop()
names = {int(r.run_id): f"#{r.run_id} {r.version} · {r.created_at:%Y-%m-%d %H:%M} ({r.n_rewrites:,} rewrites)"
         for r in runs.itertuples()}
run_id = st.selectbox("Mining run", list(names), format_func=names.get, key="rw_run")
run = runs.set_index("run_id").loc[run_id]
summary = json.loads(run["summary"] or "{}")
held_out = "" if pd.isna(run["evaluate_from"]) else f" from {run['evaluate_from']:%Y-%m-%d}"
st.caption(f"States: {run['states']}. Mined {int(run['n_mining_turns']):,} turns ({int(run['n_chains']):,} "
           f"chains, {int(run['n_rephrases']):,} rephrases); replayed on {int(run['n_eval_turns']):,} held-out "
           f"turns{held_out}.")

# --- win/loss --------------------------------------------------------------------------------------------
st.subheader("Win/loss on the held-out period")
metrics = store.list_rewrite_metrics(conn, run_id)
present = [r for r in REWRITERS if r in set(metrics["rewriter"])]
if not present:
    st.caption("This run has no held-out period (its log has no gold interpretations): there is no win/loss.")
else:
    rewriter = st.radio("Rewriter", present, horizontal=True, key="rw_rewriter",
                        help="chain: the mined rewrite table; chain_retiring_oracle: the same, each rewrite retired "
                             "once its Beta posterior says it is probably worse than the original, fed with the "
                             "replay's own gold-judged outcomes (an oracle: what retirement could save with perfect "
                             "feedback); online: the nearest successful request of the user's own and everyone's "
                             "history, when the trigger fires; combined: chain first, then online.")
    overall = metrics[metrics["grouping"] == "overall"]
    mine = overall[overall["rewriter"] == rewriter].set_index("metric")

    def cell(name: str) -> tuple:
        if name not in mine.index:
            return None, None, None
        row = mine.loc[name]
        return row["value"], row["ci_low"], row["ci_high"]

    def figure(col, label: str, name: str, fmt: str, help: str) -> None:
        """A metric with its 95% interval underneath (an interval in the value itself would be cut off)."""
        value, low, high = cell(name)
        col.metric(label, with_interval(value, fmt=fmt), help=help)
        both = with_interval(value, low, high, fmt=fmt)
        col.caption("95% interval " + both[len(with_interval(value, fmt=fmt)):].strip() if "[" in both
                    else "no interval")

    c1, c2, c3, c4, c5 = st.columns(5)
    figure(c1, "Win/loss ratio", "win_loss_ratio", ".1f", "Wins per loss.")
    figure(c2, "Win rate", "win_rate", ".1%", "Share of rewritten turns won.")
    figure(c3, "Loss rate", "loss_rate", ".1%", "Share of rewritten turns lost.")
    figure(c4, "Rewritten turns", "rewrite_rate", ".1%",
           f"{with_interval(cell('rewritten')[0], fmt=',.0f')} of {with_interval(cell('turns')[0], fmt=',.0f')} "
           "held-out turns were rewritten.")
    figure(c5, "Defect rate with rewrites", "defect_rate_with", ".1%",
           f"Replayed defect rate, (defects - wins + losses on non-defective turns) / turns; without rewrites "
           f"{with_interval(*cell('defect_rate_without'), fmt='.1%')}.")
    n_boot, n_groups = cell("n_boot")[0], cell("n_groups")[0]
    st.caption("Per rewritten turn: a **win** when the turn was defective, its logged interpretation wrong and the "
               "rewrite's right; a **loss** when its logged interpretation was right and the rewrite's wrong; a "
               "**tie** otherwise (both wrong, both right, or a defect a rewrite cannot fix). The replayed defect "
               "rate counts a win as a removed defect and a loss on a non-defective turn as a new one. Intervals: 95% "
               "percentile "
               f"intervals of a bootstrap resampling users ({with_interval(n_groups, fmt=',.0f')} users, "
               f"{with_interval(n_boot, fmt=',.0f')} replicates).")

    compare = overall.pivot_table(index="rewriter", columns="metric", values="value", aggfunc="first", dropna=False)
    compare = compare.reindex(index=present, columns=[c for c in COMPARED if c in compare.columns]).reset_index()
    st.dataframe(compare, hide_index=True, width="stretch", key="rw_compare",
                 column_config={c: st.column_config.NumberColumn(format="percent") for c in PERCENT}
                 | {"win_loss_ratio": st.column_config.NumberColumn(format="%.2f")})

    weekly = metrics[(metrics["grouping"] == "week") & (metrics["rewriter"] == rewriter)]
    if not weekly.empty:
        st.markdown("**By week** (weeks of the held-out period)")
        st.plotly_chart(charts.rewrite_trend(weekly), key="rw_trend")
    domains = metrics[(metrics["grouping"] == "domain") & (metrics["rewriter"] == rewriter)]
    if not domains.empty:
        st.markdown("**By domain** (the scenario of the turn's gold intent)")
        by_domain = domains.pivot_table(index="grp", columns="metric", values="value", aggfunc="first",
                                        dropna=False)
        by_domain = by_domain[[c for c in ("turns", *COMPARED) if c in by_domain.columns]]
        by_domain = by_domain.sort_values("turns", ascending=False).rename_axis("domain").reset_index()
        st.dataframe(by_domain, hide_index=True, width="stretch", key="rw_domains",
                     column_config={c: st.column_config.NumberColumn(format="percent") for c in PERCENT}
                     | {"win_loss_ratio": st.column_config.NumberColumn(format="%.2f")})

# --- rephrase detection ----------------------------------------------------------------------------------
detection = summary.get("detection")
if detection:
    st.subheader("Rephrase detection")
    rows = []
    for name, label in (("contextual", "contextual detector"), ("text_similarity", "text-similarity baseline")):
        rep = detection.get(name)
        if rep:
            rows.append({"detector": label, **{m: with_interval(rep.get(m), *(rep.get(f"{m}_ci") or (None, None)),
                                                                fmt=".3f")
                                               for m in ("precision", "recall", "f1")}, "pairs": rep.get("n")})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="rw_detection")
    st.caption("Is a turn a rephrase of the previous one in its session? Against the goal structure of the "
               "held-out turns; both detectors were fitted on the mining period. 95% intervals of a bootstrap "
               "resampling users.")

# --- the rewrite table -----------------------------------------------------------------------------------
st.subheader("Rewrites")
rewrites = store.list_rewrites(conn, run_id)
shown = rewrites[["source", "target", "source_support", "source_success", "target_success", "gain", "wins",
                  "losses", "retire_probability", "status"]].rename(columns={"target": "rewrite",
                                                                            "source_support": "support"})
st.caption("Most support × gain first. Success: the probability that a chain through the state ends in success. "
           "Wins and losses: on the held-out period. Click a row to see its chain, evidence and decide.")
picked = st.dataframe(shown, hide_index=True, width="stretch", key="rw_table", on_select="rerun",
                      selection_mode="single-row",
                      column_config={c: st.column_config.NumberColumn(format="%.2f")
                                     for c in ("source_success", "target_success", "gain", "retire_probability")}
                      ).selection.rows
if rewrites.empty:
    st.stop()
index = picked[0] if picked and picked[0] < len(rewrites) else 0
chosen = rewrites.iloc[index]
source, candidate_id = chosen["source"], int(chosen["candidate_id"])

st.markdown("**The chosen rewrite**")
st.text(f"{source}  →  {chosen['target']}")  # log text: as text
if isinstance(chosen["reviewed_rewrite"], str) and chosen["reviewed_rewrite"] != chosen["target"]:
    st.text(f"corrected by reviewers to: {chosen['reviewed_rewrite']}")
a, b, c = st.columns([1, 1, 3])
a.metric("Status", chosen["status"])
disabled = not reviewer or page.settings.read_only
for verdict, label, kind in (("accept", "Accept", "primary"), ("reject", "Reject", "secondary")):
    b.button(label, type=kind, key=f"rw_{verdict}", disabled=disabled, on_click=decide,
             args=(conn, candidate_id, reviewer, verdict, tokens().bind((candidate_id, verdict))))
if not reviewer:
    c.warning("Enter your name as Reviewer in the sidebar to accept or reject.")
if "rw_saved" in st.session_state:
    level, said = st.session_state.pop("rw_saved")
    (c.success if level == "success" else c.error)(said)
c.page_link("app_pages/review.py", label="Review this run's rewrites in the queue",
            query_params=review_session.spec_to_params(store.QueueSpec(dataset=dataset, task="rewrite",
                                                                       run_id=run_id)))

st.markdown("**Its chain**")
graph = charts.prune_chain(store.list_rewrite_graph(conn, run_id, source), source, str(chosen["target"]))
st.caption("Where users went after this request, two moves deep: link width and label = the probability of the "
           "move from its state; node labels carry each state's probability of ending in success. Each state shows "
           "its six most frequent moves, the rewrite and the ends; the rest are grouped.")
st.plotly_chart(charts.rewrite_chain(graph, source), key="rw_chain")

st.markdown("**Evidence sessions**")
evidence = store.list_rewrite_evidence(conn, run_id, source)
st.caption("The source turn and the later turn of the same chain with the rewrite. Click a row to show the "
           "dialogue.")
ev_rows = st.dataframe(evidence, hide_index=True, width="stretch", key=f"rw_evidence_{candidate_id}",
                       on_select="rerun", selection_mode="single-row").selection.rows
if ev_rows and ev_rows[0] < len(evidence):
    ev = evidence.iloc[ev_rows[0]]
    dialogue_id, turn_index = str(ev["dialogue_id"]), int(ev["turn_index"])
    st.text(f"Dialogue {dialogue_id}, turn {turn_index}")
    render_dialogue(store.get_dialogue_turns(conn, dialogue_id, dataset), highlight_turn=turn_index)
    if str(ev["other_dialogue_id"]) != dialogue_id:
        st.text(f"The rewrite: dialogue {ev['other_dialogue_id']}, turn {int(ev['other_turn_index'])}")
        render_dialogue(store.get_dialogue_turns(conn, str(ev["other_dialogue_id"]), dataset),
                        highlight_turn=int(ev["other_turn_index"]))

# --- export ----------------------------------------------------------------------------------------------
st.subheader("Export the approved rewrites")
approved = store.list_approved_rewrites(conn, run_id)
if approved.empty:
    st.caption("No rewrite of this run is approved yet: accept some above or in the review queue.")
else:
    st.caption(f"{len(approved):,} approved rewrites (accepted or corrected, agreed or adjudicated); rewrite = the "
               "text reviewers settled on.")
    st.dataframe(approved, hide_index=True, width="stretch", key="rw_approved")
    d1, d2 = st.columns(2)
    d1.download_button(f"Download CSV ({len(approved):,} rows)", csv_safe(approved).to_csv(index=False),
                       file_name=f"rewrites-run{run_id}.csv", mime="text/csv", key="rw_csv")
    d2.download_button(f"Download JSON ({len(approved):,} rows)",
                       approved.to_json(orient="records", date_format="iso", force_ascii=False),
                       file_name=f"rewrites-run{run_id}.json", mime="application/json", key="rw_json")
