"""Bulk accept: accept every candidate of a queue above a score, then audit a random sample of them."""

import streamlit as st

from analysis.calibration import audit_sample_size, estimate_precision
from app import review_session, store
from app.page import start

page = start("Bulk accept")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

spec, warnings = review_session.spec_from_params(dict(st.query_params), dataset)
for w in warnings:
    st.warning(f"The link's queue settings: {w}")
tasks = store.list_tasks(conn, dataset)
c1, c2 = st.columns(2)
task = c1.selectbox("Task", ["(any)"] + tasks, index=tasks.index(spec.task) + 1 if spec.task in tasks else 0,
                    key="bulk_task")
threshold = c2.slider("Accept candidates scoring at least", 0.0, 1.0, 0.95, step=0.01, key="bulk_threshold")
spec = store.QueueSpec(dataset=dataset, task=None if task == "(any)" else task, run_id=spec.run_id,
                       domain=spec.domain, value=spec.value, score_min=spec.score_min, score_max=spec.score_max)
review_session.sync_url(spec)
who = reviewer or "(you)"
n = store.count_bulk_preview(conn, who, spec, threshold)
st.metric("Would be accepted", f"{n:,}", help="Undecided candidates of this queue with a score at or above the "
                                              "threshold.")
st.caption(f"A random audit sample of {audit_sample_size(n) if n else 0:,} of them (5%, at least 30) goes to a "
           "queue for people to check; once audited, the estimated precision of the whole bulk set is shown below.")
if not reviewer:
    st.warning("Enter your name as Reviewer in the sidebar: bulk decisions are stored with it.")
elif st.button(f"Bulk accept {n:,} candidates", type="primary", disabled=n == 0 or settings.read_only,
               key="bulk_go"):
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
    st.info("No bulk accept yet.")
    st.stop()
rows = []
for a in actions.itertuples():
    est = estimate_precision(int(a.audited), int(a.confirmed)) if a.audited else None
    rows.append({"bulk": int(a.bulk_id), "by": a.reviewer, "threshold": a.threshold, "accepted": int(a.n_accepted),
                 "audit sample": int(a.sampled), "audited": int(a.audited), "confirmed": int(a.confirmed),
                 "precision": None if est is None else est.precision,
                 "95% interval": "" if est is None else f"{est.ci_low:.1%} – {est.ci_high:.1%}"})
st.dataframe(rows, hide_index=True, width="stretch",
             column_config={"precision": st.column_config.NumberColumn(format="percent")})
st.caption("Precision is estimated from the audited sample (simple random sample; Wilson interval).")
for a in actions.itertuples():
    if a.audited < a.sampled:
        st.page_link("app_pages/review.py", label=f"Audit bulk accept #{a.bulk_id} "
                     f"({a.sampled - a.audited} left)", query_params={"audit": str(a.bulk_id)})
