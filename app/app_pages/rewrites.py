"""Query rewrites: the rewrites a mining run found in rephrase chains, how they fare when replayed on a
later held-out period (wins, losses, defect rate), how well rephrases were detected, each rewrite's chain and
evidence sessions, accepting or rejecting them, and the approved rewrite table to deploy."""

import json
import shlex

import pandas as pd
import streamlit as st

from analysis.rewrites import tables
from app import resources, store
from app.jobs import registry
from app.page import start
from app.review import decisions
from app.review import session as review_session
from components import charts, job_panel
from components.dialogue_view import render_dialogue
from components.exports import csv_download

REWRITERS = ("chain", "chain_retiring_oracle", "online", "combined")
# the rewriter comparison: (column, metric, format), each figure with its interval
COMPARED = (("rewritten", "rewritten", ",.0f"), ("wins", "wins", ",.0f"), ("losses", "losses", ",.0f"),
            ("ties", "ties", ",.0f"), ("win/loss", "win_loss_ratio", ".1f"), ("win rate", "win_rate", ".1%"),
            ("loss rate", "loss_rate", ".1%"), ("defect rate without", "defect_rate_without", ".1%"),
            ("defect rate with", "defect_rate_with", ".1%"), ("defect reduction", "defect_reduction", ".1%"))
MIN_TREND_WEEKS = 3  # fewer weeks are a table: a line through two points would look like a trend
MIN_DOMAIN_SUPPORT = 20  # rewritten turns a domain needs before its rates are shown (the default)
# the chain diagram: at most this many nodes above each other, this many pixels each, labels this long
CHAIN_COLUMN_NODES, CHAIN_NODE_PX, CHAIN_LABEL = 10, 44, 28

with_interval = tables.figure_text


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
names = {int(r.run_id): f"run {r.run_number} · {r.version} · {r.created_at:%Y-%m-%d %H:%M} ({r.n_rewrites:,} rewrites)"
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

    def stored(name: str, metric: str) -> tuple:
        """(value, ci_low, ci_high) of one overall metric of one rewriter; Nones when it was not stored."""
        row = overall[(overall["rewriter"] == name) & (overall["metric"] == metric)]
        return tuple(row[["value", "ci_low", "ci_high"]].iloc[0]) if len(row) else (None, None, None)

    def cell(name: str) -> tuple:
        return stored(rewriter, name)

    def figure(col, label: str, name: str, fmt: str, help: str) -> None:
        """A metric with its 95% interval underneath (an interval in the value itself would be cut off)."""
        text = tables.ratio_text if name == "win_loss_ratio" else tables.figure_text
        value, low, high = cell(name)
        alone = text(value, fmt=fmt)
        col.metric(label, alone, help=help)
        both = text(value, low, high, fmt=fmt)
        col.caption("95% interval " + both[len(alone):].strip() if "[" in both
                    else "undefined: no loss" if name == "win_loss_ratio" and alone == tables.DASH else "no interval")

    c1, c2, c3, c4, c5 = st.columns(5)
    figure(c1, "Win/loss ratio", "win_loss_ratio", ".1f", "Wins per loss; undefined (–) without a loss.")
    figure(c2, "Win rate", "win_rate", ".1%", "Share of rewritten turns won.")
    figure(c3, "Loss rate", "loss_rate", ".1%", "Share of rewritten turns lost.")
    figure(c4, "Rewritten turns", "rewrite_rate", ".1%",
           f"{with_interval(cell('rewritten')[0], fmt=',.0f')} of {with_interval(cell('turns')[0], fmt=',.0f')} "
           "held-out turns were rewritten.")
    figure(c5, "Defect rate with rewrites", "defect_rate_with", ".1%",
           f"Replayed defect rate, (defects - wins + losses on non-defective turns) / turns; without rewrites "
           f"{with_interval(*cell('defect_rate_without'), fmt='.1%')}.")
    n_boot, n_groups = cell("n_boot")[0], cell("n_groups")[0]
    st.caption("Per rewritten turn: a **win** when the turn was defective, its logged interpretation wrong, the "
               "rewrite's right **and** the rewrite a rephrase of what the user said (the same sentence, or a shared "
               "content word under an intent that is not catch-all); a **loss** when its logged interpretation was "
               "right and the rewrite's wrong; a **tie** otherwise (both wrong, both right, a right reading reached "
               "through a sentence that is no rephrase, or a defect a rewrite cannot fix). The replayed defect "
               "rate counts a win as a removed defect and a loss on a non-defective turn as a new one. Intervals: 95% "
               "percentile "
               f"intervals of a bootstrap resampling users ({with_interval(n_groups, fmt=',.0f')} users, "
               f"{with_interval(n_boot, fmt=',.0f')} replicates); \"–\": undefined.")

    def shown(name: str, metric: str, fmt: str) -> str:
        text = tables.ratio_text if metric == "win_loss_ratio" else tables.figure_text
        return text(*stored(name, metric), fmt=fmt)

    compare = pd.DataFrame([{"rewriter": name} | {column: shown(name, metric, fmt) for column, metric, fmt in COMPARED}
                            for name in present])
    st.dataframe(compare, hide_index=True, width="stretch", key="rw_compare")

    n_weeks = tables.count_groups(metrics, rewriter, "week")
    if n_weeks:
        st.markdown("**By week** (weeks of the held-out period)")
    if n_weeks >= MIN_TREND_WEEKS:
        st.plotly_chart(charts.rewrite_trend(metrics[(metrics["grouping"] == "week")
                                                     & (metrics["rewriter"] == rewriter)]), key="rw_trend")
    elif n_weeks:
        st.dataframe(tables.group_rows(metrics, rewriter, "week"), hide_index=True, width="stretch", key="rw_weeks")
        st.caption(f"{n_weeks} week{'s' if n_weeks != 1 else ''}: a table, not a trend line (a line needs at least "
                   f"{MIN_TREND_WEEKS} weeks). 95% intervals in brackets.")
    n_domains = tables.count_groups(metrics, rewriter, "domain")
    if n_domains:
        st.markdown("**By domain** (the scenario of the turn's gold intent)")
        min_support = st.number_input("Minimum rewritten turns per domain", min_value=0, value=MIN_DOMAIN_SUPPORT,
                                      step=5, key="rw_min_support",
                                      help="Domains with fewer rewritten turns are left out: their rates would "
                                           "rest on a handful of turns.")
        by_domain = tables.group_rows(metrics, rewriter, "domain", min_support=int(min_support))
        st.dataframe(by_domain, hide_index=True, width="stretch", key="rw_domains")
        st.caption(f"{len(by_domain)} of {n_domains} domains have at least {int(min_support):,} rewritten turns. "
                   "95% intervals in brackets; \"–\": undefined (a ratio without a loss, a rate without a "
                   "rewritten turn).")

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
catch_all = summary.get("catch_all")
rewrites = tables.rewrite_rows(store.list_rewrites(conn, run_id), (catch_all or {}).get("intents", ()))
if catch_all is None:
    hide = False
    st.caption("This run was mined before catch-all intents were derived; mine again to be able to hide them.")
else:
    hide = st.toggle("Hide catch-all intents", value=False, key="rw_hide_catch_all",
                     help="Catch-all intents hold requests that share a label, not a meaning: two requests the NLU "
                          "reads alike share a content word less than twice as often as requests of different "
                          "intents do. A rewrite into one is a guess.")
    # intent names come from the log: shown as text
    st.text(f"Catch-all intents of this run (from its {catch_all.get('from', 'data')}): "
            + (", ".join(catch_all["intents"]) or "none"))
listed = rewrites[~rewrites["catch_all"]] if hide else rewrites
shown = listed[["source", "target", "similarity", "source_support", "intent", "gain", "wins", "losses", "win_share",
                "retire_probability", "status"]].rename(columns={"target": "rewrite", "source_support": "support",
                                                                  "win_share": "win share"})
st.caption("Most support × gain first. Similarity: of the source and the rewrite, by characters (1: the same). "
           "Support: the source's turns in the mining period. Wins and losses: on the held-out period; win share: "
           "of wins among wins and losses, the mean and 95% interval of its Beta(1 + wins, 1 + losses) posterior "
           "(–: nothing decided). Click a row to see its chain, evidence and decide."
           + (f" {int(rewrites['catch_all'].sum()):,} rewrites into catch-all intents are hidden." if hide else ""))
picked = st.dataframe(shown, hide_index=True, width="stretch", key="rw_table", on_select="rerun",
                      selection_mode="single-row",
                      column_config={c: st.column_config.NumberColumn(format="%.2f")
                                     for c in ("similarity", "gain", "retire_probability")}
                      ).selection.rows
if listed.empty:
    st.stop()
index = picked[0] if picked and picked[0] < len(listed) else 0
chosen = listed.iloc[index]
source, candidate_id = chosen["source"], int(chosen["candidate_id"])

st.markdown("**The chosen rewrite**")
st.text(f"{source}  →  {chosen['target']}")  # log text: as text
st.text(f"similarity {chosen['similarity']:.2f} · support {int(chosen['source_support']):,} · "
        f"intent {chosen['intent']} · win share {chosen['win_share']}")
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
full_graph = store.list_rewrite_graph(conn, run_id, source)
for max_out in range(6, 0, -1):  # fewer moves per state until no column is crowded (labels would overlap)
    graph = charts.prune_chain(full_graph, source, str(chosen["target"]), max_out=max_out)
    if max(tables.chain_columns(graph, charts.REWRITE_END), default=0) <= CHAIN_COLUMN_NODES:
        break
st.caption("Where users went after this request, two moves deep: link width and label = the probability of the "
           "move from its state; node labels carry each state's probability of ending in success. Each state shows "
           f"its {max_out} most frequent move{'s' if max_out != 1 else ''}, the rewrite and the ends; the rest are "
           f"grouped. Requests longer than {CHAIN_LABEL} characters are cut (…); hover for the whole link.")
short_graph, short_source = tables.short_states(graph, source, width=CHAIN_LABEL)
chain_figure = charts.rewrite_chain(short_graph, short_source)
# room for every node of the busiest column, so labels never sit on each other
chain_figure.update_layout(height=max(320, CHAIN_NODE_PX * max(tables.chain_columns(graph, charts.REWRITE_END),
                                                                default=0)))
st.plotly_chart(chain_figure, key="rw_chain")

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
    render_dialogue(store.get_dialogue_turns(conn, dialogue_id, dataset), highlight_turn=turn_index,
                    audio_root=page.settings.audio_root)
    if str(ev["other_dialogue_id"]) != dialogue_id:
        st.text(f"The rewrite: dialogue {ev['other_dialogue_id']}, turn {int(ev['other_turn_index'])}")
        render_dialogue(store.get_dialogue_turns(conn, str(ev["other_dialogue_id"]), dataset),
                        highlight_turn=int(ev["other_turn_index"]), audio_root=page.settings.audio_root)

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
    d1.download_button(f"Download CSV ({len(approved):,} rows)", csv_download(approved),
                       file_name=f"rewrites-run{run_id}.csv", mime="text/csv", key="rw_csv")
    d2.download_button(f"Download JSON ({len(approved):,} rows)",
                       approved.to_json(orient="records", date_format="iso", force_ascii=False),
                       file_name=f"rewrites-run{run_id}.json", mime="application/json", key="rw_json")
