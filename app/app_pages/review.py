"""Review: one candidate at a time inside its dialogue, with its audio; accept, reject, skip, correct, undo and play
(p) by key."""

from functools import partial

import streamlit as st

from app import resources, store
from app.page import start
from app.review import session as review_session
from components import keys, review_card
from components.dialogue_view import render_dialogue

page = start("Review")
settings, conn, db, dataset, reviewer = page.settings, page.conn, page.db, page.dataset, page.reviewer

spec, warnings = review_session.spec_from_params(dict(st.query_params), dataset)
review_card.link_warnings(warnings)

with st.expander("Queue: filters and order", expanded=False):
    tasks = resources.tasks(conn, db, dataset)
    runs = store.list_model_runs(conn)
    c1, c2, c3, c4 = st.columns(4)
    task = c1.selectbox("Task", ["(any)"] + tasks, index=tasks.index(spec.task) + 1 if spec.task in tasks else 0)
    run_labels = {int(r.run_id): f"#{r.run_id} {r.name} {r.version}" for r in runs.itertuples()}
    run = c2.selectbox("Model run", [None] + list(run_labels), format_func=lambda r: "(any)" if r is None
                       else run_labels[r], index=list(run_labels).index(spec.run_id) + 1
                       if spec.run_id in run_labels else 0)
    domains = resources.values(conn, db, dataset, "nlu_domain")
    domain = c3.selectbox("Domain", ["(any)"] + domains,
                          index=domains.index(spec.domain) + 1 if spec.domain in domains else 0)
    value = c4.text_input("Proposed value (JSON)", value=spec.value or "", help='e.g. "weather_query"')
    c5, c6, c7, c8 = st.columns(4)
    smin, smax = c5.slider("Score range", 0.0, 1.0, (spec.score_min, spec.score_max), step=0.01)
    status = c6.selectbox("Status", store.STATUSES, index=store.STATUSES.index(spec.status))
    order_names = {"score_asc": "lowest score first", "score_desc": "highest score first",
                   "random": "random (seeded)", "disagreement": "disagreement first"}
    order = c7.selectbox("Order", store.ORDERS, index=store.ORDERS.index(spec.order), format_func=order_names.get)
    seed = c8.number_input("Seed", min_value=0, value=spec.seed, step=1)
    c9, c10 = st.columns(2)
    overlap = c9.number_input("Overlap: reviewers per candidate", min_value=1, max_value=10, value=spec.overlap)
    evaluation = c10.toggle("Evaluation view: show the ground truth", value=False, key="review_evaluation",
                            help="Off while reviewing: decide blind. The Dialogues page always shows it.")

unknown = [f"ignored {name}={wanted!r}: not in this dataset" for name, wanted, known in
           (("task", spec.task, tasks), ("domain", spec.domain, domains), ("run", spec.run_id, list(run_labels)))
           if wanted is not None and wanted not in known]
review_card.link_warnings(unknown)
try:
    typed_value = review_session.value_json(value) if value.strip() else None
except ValueError:  # typed as "\ud800": a lone surrogate, which no query can carry
    st.warning("The proposed value was ignored: it is not valid Unicode (it holds a lone surrogate).")
    typed_value = None
spec = store.QueueSpec(dataset=dataset, task=None if task == "(any)" else task, value=typed_value,
                       score_min=float(smin), score_max=float(smax), run_id=run,
                       domain=None if domain == "(any)" else domain, status=status, order=order, seed=int(seed),
                       overlap=int(overlap), audit_bulk_id=spec.audit_bulk_id)
review_session.sync_url(spec)
if spec.audit_bulk_id is not None:
    st.info(f"Auditing the random sample of bulk accept #{spec.audit_bulk_id}: accept what is right, reject "
            "or correct what is wrong.")

if not reviewer:
    st.warning("Enter your name as Reviewer in the sidebar to start reviewing: every decision is stored with it.")
    st.stop()
try:
    reviewer = store.reviewer_name(reviewer)  # the stored form, so the queue knows this reviewer's decisions
except ValueError as exc:
    st.error("This reviewer name cannot be used:")
    st.text(str(exc))
    st.stop()

claims = resources.claims(db)
shown = review_session.cards(conn, reviewer, spec, claims)  # the card on screen, then the prefetched ones
decided, remaining, rate = review_session.progress(conn, reviewer, spec)
s = review_session.state()
p1, p2, p3 = st.columns(3)
p1.metric("Decided by you in this queue", f"{decided:,}")
p2.metric("Remaining", f"{remaining:,}")
p3.metric("Your rate", f"{rate:,}/h", help="Your accept, reject and correct decisions in the last hour.")
for said in (s.last_saved, s.ignored):
    if said:
        st.caption(said)  # ours: verdicts and candidate numbers
if not shown:
    st.success("This queue is empty: nothing left to review with these filters.")
    st.button("Undo", shortcut="Backspace", on_click=review_session.undo,
              args=(conn, spec, review_session.last_decision_id(s)), disabled=not s.history or settings.read_only)
    st.stop()

card, ro = shown[0], settings.read_only
card_slot = st.container()  # the card is drawn into it last, so the browser has this whole run when it arrives
if ro:
    st.info("Read-only mode: decisions are switched off.")
args = (conn, reviewer, spec, claims, card["candidate_id"], card["decision_id"])
if s.correcting and not ro:
    with st.container(border=True, key="review_editor"):
        target = review_card.target_turn(card, review_session.card_turns(conn, card, dataset)[0])
        corrected = review_card.correction_editor(
            card, store.list_known_values(conn, dataset, card["task"]), key=f"fix_{card['candidate_id']}",
            text=str((target or {}).get("asr_text") or ""))
        k1, k2 = st.columns(2)
        # Decided here, with the value the editor holds in this run (the click's), not bound as on_click args:
        # args are the previous run's, so an edit followed at once by the click saved the value before the edit
        save = k1.button("Save correction", type="primary", disabled=corrected is None)
        k2.button("Cancel", on_click=review_session.stop_correcting, shortcut="Esc")
    if save and corrected is not None:
        review_session.decide(*args, "correct", corrected)
        st.rerun()
# Keys are the card's (components/keys.py), each bound to the card it was pressed on; these are for the mouse.
with st.container(horizontal=True, key=keys.BUTTONS_KEY):
    st.button("Accept", type="primary", on_click=review_session.decide, args=args + ("accept",), disabled=ro)
    st.button("Reject", on_click=review_session.decide, args=args + ("reject",), disabled=ro)
    st.button("Skip", on_click=review_session.decide, args=args + ("skip",), disabled=ro)
    st.button("Correct (c)", on_click=review_session.start_correcting, disabled=ro)
    # bound to the decision it takes back: a double press undoes one decision, not two
    st.button("Undo", on_click=review_session.undo,
              args=(conn, spec, review_session.last_decision_id(s)), disabled=ro or not s.history)
turns, other_turns = review_session.card_turns(conn, card, dataset)
with st.container(key=keys.CONTEXT_KEY):
    left, right = st.columns([1, 1], gap="large")
    with left:
        review_card.render_proposal(card)
        review_card.render_distribution(store.get_candidate_distribution(conn, card["candidate_id"]))
        review_card.render_sources(store.list_proposals(conn, card["task"], card["target_key"],
                                                        card["dialogue_id"]), card["candidate_id"])
        review_card.render_decisions(store.list_current_decisions(conn, card["candidate_id"]))
    with right:
        st.caption(f"The target turn is marked ▶ ({card['target_kind']} target).")
        render_dialogue(turns, highlight_turn=card["turn_index"], ground_truth=evaluation,
                        audio_root=settings.audio_root)
        if other_turns is not None:  # a pair target (e.g. a rewrite): its second utterance too
            st.caption("The pair's second utterance:")
            render_dialogue(other_turns, highlight_turn=card["other_turn_index"], ground_truth=evaluation,
                            audio_root=settings.audio_root)
s.runs += 1
with card_slot:
    keys.review_card(
        [review_card.card_entry(c, *review_session.card_turns(conn, c, dataset), ground_truth=evaluation,
                                audio_root=settings.audio_root) for c in shown],
        acked={"client": s.key_client, "seq": s.key_seq, "run": s.runs}, undo=review_session.last_decision_id(s),
        read_only=ro, on_keys=partial(review_session.keys_pressed, conn, reviewer, spec, claims))
