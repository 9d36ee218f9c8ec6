"""Bulk accept: accept every candidate of a queue above a score, then audit a random sample of them."""

import streamlit as st

from analysis.calibration import audit_sample_size, estimate_precision
from app import resources, store
from app.page import start
from app.review import session as review_session
from components import review_card
from components.permissions import allowed

page = start("Bulk accept")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

spec, warnings = review_session.spec_from_params(dict(st.query_params), dataset)
review_card.link_warnings(warnings)
tasks = resources.tasks(conn, db, dataset)
runs = {int(r.run_id): f"#{r.run_id} {r.name} {r.version}" for r in store.list_model_runs(conn).itertuples()}
domains = resources.values(conn, db, dataset, "nlu_domain")
c1, c2, c3 = st.columns(3)
task = c1.selectbox("Task", ["(any)"] + tasks, index=tasks.index(spec.task) + 1 if spec.task in tasks else 0,
                    key="bulk_task")
run = c2.selectbox("Model run", [None, *runs], format_func=lambda r: "(any)" if r is None else runs[r],
                   index=list(runs).index(spec.run_id) + 1 if spec.run_id in runs else 0, key="bulk_run")
domain = c3.selectbox("Domain", ["(any)"] + domains,
                      index=domains.index(spec.domain) + 1 if spec.domain in domains else 0, key="bulk_domain")
threshold = st.slider("Accept candidates scoring at least", 0.0, 1.0, 0.95, step=0.01, key="bulk_threshold")
spec = store.QueueSpec(dataset=dataset, task=None if task == "(any)" else task, run_id=run,
                       domain=None if domain == "(any)" else domain, value=spec.value)
review_session.sync_url(spec)
who = reviewer or "(you)"
n = store.count_bulk_preview(conn, who, spec, threshold)
st.metric("Would be accepted", f"{n:,}", help="Undecided candidates of this queue with a score at or above the "
                                              "threshold.")
st.caption(f"A random audit sample of {audit_sample_size(n) if n else 0:,} of them (5%, at least 30) goes to a "
           "queue for people to check; once audited, the estimated precision of the whole bulk set is shown below.")
# an adjudicator's action (docs/accounts.md); allowed() says why not otherwise
if allowed(page, "bulk_accept") and st.button(f"Bulk accept {n:,} candidates", type="primary",
                                              disabled=n == 0 or settings.read_only, key="bulk_go"):
    result = store.bulk_accept(conn, reviewer, spec, threshold, audit_size=audit_sample_size)
    review_session.reset_queue()
    st.session_state["bulk_done"] = (result.bulk_id, result.accepted, result.audit_sample)
    st.rerun()
if "bulk_done" in st.session_state:
    bid, accepted, sample = st.session_state["bulk_done"]
    st.success(f"Bulk accept #{bid}: {accepted:,} accepted; {sample:,} drawn for audit.")

st.subheader("Bulk accepts and their audits")
actions = store.list_bulk_actions(conn, dataset)
if actions.empty:
    st.caption("No bulk accept yet.")  # the history section only: the page above has its content
    st.stop()
rows = []
for a in actions.itertuples():
    # Shown once the whole sample is audited: a partial audit follows the audit queue's order, not chance.
    est = estimate_precision(int(a.audited), int(a.confirmed)) if a.audited and a.audited == a.sampled else None
    rows.append({"bulk": int(a.bulk_id), "by": a.reviewer, "threshold": a.threshold, "accepted": int(a.n_accepted),
                 "audit sample": int(a.sampled), "audited": int(a.audited), "confirmed": int(a.confirmed),
                 "precision": None if est is None else est.precision,
                 "95% interval": "" if est is None else f"{est.ci_low:.1%} – {est.ci_high:.1%}",
                 "audit": "complete" if a.audited == a.sampled else f"{a.sampled - a.audited} to audit"})
st.dataframe(rows, hide_index=True, width="stretch",
             column_config={"precision": st.column_config.NumberColumn(format="percent")})
st.caption("Precision is estimated once the whole audit sample (a simple random sample of the bulk accept) is "
           "audited: the share of audited labels that were right, with a 95% Wilson interval.")
for a in actions.itertuples():
    if a.audited < a.sampled:
        st.page_link("app_pages/review.py", label=f"Audit bulk accept #{a.bulk_id} "
                     f"({a.sampled - a.audited} left)",
                     query_params={"audit": str(a.bulk_id), "order": "random", "seed": str(a.bulk_id)})
