"""Agreement and conflicts: how far reviewers agree per task, how the model compares with them (parity), and settling
their disagreements."""

import streamlit as st

from analysis.agreement import agreement_by_task
from analysis.parity import ALL_LABELS, parity_table
from app import store
from app.page import identity, start
from app.review import decisions
from app.store import parity as store_parity
from components.permissions import allowed
from components.review_card import show_value

REJECTED = "<rejected>"  # decision_labels' label_key of a rejection


def settle(conn, candidate_id: int, reviewer: str, shown_choice: str, decision_id: str) -> None:
    """Settle button callback: store the label chosen in the menu as an adjudication, before the page draws.
    decision_id was bound into the button when it was drawn: a double click stores one adjudication."""
    # The menu as the click sent it (a label picked just before clicking, while the page was still redrawing,
    # is not in the arguments bound at the last render yet); the label shown then if that menu is gone.
    choice = st.session_state.get(f"adj_{candidate_id}", shown_choice)
    # The role again, as the database has it at the click: it may have been taken away since the page was drawn.
    who = identity(settings, conn)
    if who.name != reviewer or not who.may("adjudicate"):
        st.session_state["adjudicated"] = ("error", "Not settled: settling needs the adjudicator role.")
        return
    # a "correction" to the proposal itself is stored as an accept (decisions.decide)
    verdict, corrected = ("reject", None) if choice == REJECTED else ("correct", choice)
    try:
        result = decisions.decide(conn, decision_id=decision_id, candidate_id=candidate_id, reviewer=reviewer,
                                  verdict=verdict, corrected_value=corrected, role="adjudicate", tokens=tokens())
    except decisions.DecisionRefused as exc:
        st.session_state["adjudicated"] = ("error", str(exc))
        return
    st.session_state["adjudicated"] = (("success", f"Settled candidate #{candidate_id}: {result.verdict}.")
                                       if result.saved else
                                       ("error", f"Not settled: candidate #{candidate_id} does not exist."))


def tokens() -> decisions.Tokens:
    """This session's decision ids of the Settle button, per candidate."""
    return st.session_state.setdefault("adj_tokens", decisions.Tokens())


page = start("Agreement and conflicts")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

st.subheader("Agreement per task")
st.caption("Cohen's kappa where exactly two reviewers share items, Krippendorff's alpha (nominal) for more; "
           "'items' is how many candidates two or more reviewers decided: what the figure rests on. A reviewer's "
           "label is the value they accepted or corrected to, or a rejection. Bulk accepts are not counted.")
table = agreement_by_task(store.list_decision_labels(conn, dataset))
if table.empty:
    st.info("No candidate has been decided by two reviewers yet: set Overlap above 1 in the review queue.")
else:
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.3f"),
                                "observed_agreement": st.column_config.NumberColumn(format="percent")})

st.subheader("Model vs human parity")
st.caption("On the same candidates: how often two reviewers agree (human), how often a reviewer agrees with the "
           "model's proposal (model: an accept agrees, a correction or a rejection does not) and their ratio, the "
           "model's share of human agreement (1: as often as two reviewers agree with each other). Raw agreement, "
           "every candidate weighing the same; 95% intervals from a bootstrap over candidates. See docs/review.md.")
parity_labels = store_parity.list_parity_labels(conn, dataset)
parity = parity_table(parity_labels, by_label=False)
if parity.empty:
    st.info("No candidate has been decided by two reviewers yet: parity needs the same items as agreement.")
else:
    simulated, total = int(parity["simulated_labels"].sum()), int(parity["human_labels"].sum())
    if simulated:
        st.warning(f"These figures rest on simulated reviewers: {simulated:,} of the {total:,} reviewer labels "
                   "here are by reviewers whose names end in \"(simulated)\" (made up from the log's gold labels "
                   "with random errors), not by people.")
    shown = ["task", "items", "reviewers", "simulated_labels", "human_agreement", "model_agreement", "ratio",
             "ratio_low", "ratio_high", "human_low", "human_high", "model_low", "model_high"]
    fmt = {c: st.column_config.NumberColumn(format="percent") for c in shown if "human" in c or "model" in c}
    fmt |= {c: st.column_config.NumberColumn(format="%.3f") for c in ("ratio", "ratio_low", "ratio_high")}
    st.dataframe(parity[shown], hide_index=True, width="stretch", key="parity_tasks", column_config=fmt)
    parity_task = st.selectbox("Per proposed value, for task", parity["task"].tolist(), key="parity_task")
    per_label = parity_table(parity_labels[parity_labels["task"] == parity_task], min_items=5)
    per_label = per_label[per_label["label"] != ALL_LABELS].assign(label=lambda d: d["label"].map(show_value))
    st.caption(f"{len(per_label):,} proposed value(s) with at least 5 candidates, most candidates first.")
    st.dataframe(per_label[["label"] + shown[1:]], hide_index=True, width="stretch", key="parity_labels",
                 column_config=fmt)

st.subheader("Conflicts")
tasks = store.list_tasks(conn, dataset)
task = st.selectbox("Task", ["(any)"] + tasks, key="conflict_task")
conflicts = store.list_conflicts(conn, dataset, task=None if task == "(any)" else task)
st.caption(f"{len(conflicts):,} candidate(s) whose reviewers disagree and that nobody has settled.")
if "adjudicated" in st.session_state:
    level, said = st.session_state["adjudicated"]
    (st.success if level == "success" else st.error)(said)
if conflicts.empty:
    st.stop()

ids = conflicts["candidate_id"].tolist()
picked = st.selectbox("Settle candidate", ids, key="conflict_pick")
row = conflicts.set_index("candidate_id").loc[picked]
turns = store.get_dialogue_turns(conn, row["dialogue_id"], dataset)
target = next((t for t in turns if t["turn_index"] == row["turn_index"]), None)
st.text(f"{row['task']} · dialogue {row['dialogue_id']} turn {row['turn_index']} · score {row['score']:.2f}")
if target is not None:
    st.text(f"request: {target['asr_text']}")
st.text(f"proposed: {show_value(row['proposed_value'])}")
labels = [(entry["reviewer"], entry["label"]) for entry in row["labels"]]
st.dataframe({"reviewer": [r for r, _ in labels],
              "label": ["(rejected)" if v == REJECTED else show_value(v) for _, v in labels]},
             hide_index=True, width="stretch")
options = list(dict.fromkeys(v for _, v in labels))
# A selectbox, not a radio: radio options render Markdown, and labels come from files and reviewers.
choice = st.selectbox("Adjudicated label", options, key=f"adj_{picked}",
                      format_func=lambda v: "reject the proposal" if v == REJECTED else show_value(v))
if allowed(page, "adjudicate"):  # an adjudicator's action (docs/accounts.md); says why not otherwise
    st.button("Settle", type="primary", disabled=settings.read_only, key="settle", on_click=settle,
              args=(conn, int(picked), reviewer, choice, tokens().bind(int(picked))))
