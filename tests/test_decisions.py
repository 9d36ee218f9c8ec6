"""The one decision writer (app/review/decisions.py): one decision per button shown, the slot re-check of
overlap queues, normalised names, read-only refusal; every page decides through it, and a double click on the
Review, Query rewrites or Agreement page stores one decision."""

from __future__ import annotations

import ast
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from app import store
from app.review import decisions
from app.review.claims import ClaimRegistry
from tests.helpers import (
    ROOT,
    app_db,
    app_db_copy,
    build_rewrite_db,
    decision_rows,
    ingest_log,
    intent_turns,
    open_app_page,
    read_db,
    stored_decisions,
    write_jsonl,
)

# ------------------------------------------------------------------------------------- the writer


@pytest.fixture
def cdb(db, tmp_path):
    """Three intent candidates (weather_query, music_play, alarm_set), one per dialogue, in dataset "demo"."""
    ingest_log(db, write_jsonl(tmp_path / "log.jsonl", intent_turns()), "demo", candidates=True)
    return db


def intent_candidates(conn) -> list[int]:
    """Lowest score first: weather_query, music_play, alarm_set."""
    return [cid for (cid,) in conn.execute(
        "SELECT candidate_id FROM candidates WHERE task = 'intent' ORDER BY score").fetchall()]


@pytest.mark.parametrize("verdict", ["accept", "skip"])
def test_a_decision_id_is_stored_once(cdb, verdict):
    cid = intent_candidates(cdb)[0]
    did = decisions.new_id()
    first = decisions.decide(cdb, decision_id=did, candidate_id=cid, reviewer="ana", verdict=verdict)
    again = decisions.decide(cdb, decision_id=did, candidate_id=cid, reviewer="ana", verdict=verdict)
    assert first.outcome is decisions.Outcome.STORED and first.saved
    assert again.saved and decision_rows(cdb) == [(cid, "ana", verdict, None, "review")]  # saved, by the first click
    # a skip leaves no standing decision to compare with: the primary key refuses the repeat
    assert again.outcome is (decisions.Outcome.ALREADY_STORED if verdict == "skip" else decisions.Outcome.UNCHANGED)


def test_tokens_bind_one_id_per_button_until_it_is_spent(cdb):
    cid = intent_candidates(cdb)[0]
    tokens = decisions.Tokens()
    shown = tokens.bind((cid, "accept"))
    assert tokens.bind((cid, "accept")) == shown  # every run draws the same button with the same id
    assert tokens.bind((cid, "reject")) != shown
    decisions.decide(cdb, decision_id=shown, candidate_id=cid, reviewer="ana", verdict="accept", tokens=tokens)
    assert (cid, "accept") not in tokens and (cid, "reject") in tokens
    assert tokens.bind((cid, "accept")) != shown  # drawn again after the decision: a new decision can be made
    decisions.decide(cdb, decision_id=shown, candidate_id=cid, reviewer="ana", verdict="accept", tokens=tokens)
    assert len(decision_rows(cdb)) == 1


def test_reviewer_names_are_stored_normalised_and_unusable_ones_refused(cdb):
    cid = intent_candidates(cdb)[0]
    result = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer=" ana\u200b ",
                              verdict="reject")
    assert result.reviewer == "ana" and decision_rows(cdb) == [(cid, "ana", "reject", None, "review")]
    with pytest.raises(decisions.DecisionRefused, match="reviewer name"):
        decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="\u200b", verdict="accept")
    assert len(decision_rows(cdb)) == 1


def test_read_only_mode_refuses_with_a_clear_error(cdb, monkeypatch):
    cid = intent_candidates(cdb)[0]
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    tokens = decisions.Tokens()
    did = tokens.bind(cid)
    with pytest.raises(decisions.ReadOnlyError, match="Read-only mode .*nothing was stored"):
        decisions.decide(cdb, decision_id=did, candidate_id=cid, reviewer="ana", verdict="accept", tokens=tokens)
    with pytest.raises(decisions.ReadOnlyError):
        decisions.retract(cdb, decision_id=did, candidate_id=cid, reviewer="ana")
    assert decision_rows(cdb) == []


def test_a_correction_to_the_proposal_is_an_accept(cdb):
    cid = intent_candidates(cdb)[0]  # proposes "weather_query"
    same = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="ana",
                            verdict="correct", corrected_value='"weather_query"', role="adjudicate")
    other = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="bob",
                             verdict="correct", corrected_value='"music_play"')
    assert (same.verdict, other.verdict) == ("accept", "correct")
    assert decision_rows(cdb) == [(cid, "ana", "accept", None, "adjudicate"),
                                  (cid, "bob", "correct", '"music_play"', "review")]


def test_an_unknown_candidate_stores_nothing_and_says_so(cdb):
    result = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=10**9, reviewer="ana",
                              verdict="accept")
    assert result.outcome is decisions.Outcome.NO_CANDIDATE and not result.saved and decision_rows(cdb) == []


def test_an_overlap_queue_rechecks_the_slots_and_releases_the_claim(cdb):
    cid = intent_candidates(cdb)[0]
    queue = store.QueueSpec(dataset="demo", task="intent")  # overlap 1
    claims = ClaimRegistry()
    assert claims.try_claim(cid, "bob", slots=1)
    first = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="ana",
                             verdict="accept", queue=queue, claims=claims)
    late = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="bob",
                            verdict="reject", queue=queue, claims=claims)  # bob's claim is all he had
    assert first.outcome is decisions.Outcome.STORED and late.outcome is decisions.Outcome.SLOT_TAKEN
    assert claims.holders(cid) == [] and decision_rows(cdb) == [(cid, "ana", "accept", None, "review")]
    audit = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="carl",
                             verdict="accept", queue=store.QueueSpec(dataset="demo", status="all"))
    assert audit.outcome is decisions.Outcome.STORED  # decided/all queues revisit candidates on purpose


def test_outside_a_queue_a_decision_that_repeats_the_standing_one_is_not_stored_again(cdb):
    """What a double click's second click does on the Query rewrites page when the page was drawn again in
    between: it carries the new id of the redrawn button, but the reviewer's decision already says the same."""
    cid = intent_candidates(cdb)[0]
    first, again = (decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="ana",
                                     verdict="correct", corrected_value='"music_play"') for _ in range(2))
    assert first.outcome is decisions.Outcome.STORED
    assert again.outcome is decisions.Outcome.UNCHANGED and again.saved
    assert len(decision_rows(cdb)) == 1
    # anything else is a new decision: another value, another role, a skip, and the same again after a change
    for verdict, value, role in (("correct", '"alarm_set"', "review"), ("correct", '"alarm_set"', "audit"),
                                 ("skip", None, "review"), ("skip", None, "review"), ("reject", None, "review"),
                                 ("correct", '"music_play"', "review")):
        result = decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="ana",
                                  verdict=verdict, corrected_value=value, role=role)
        assert result.outcome is decisions.Outcome.STORED, (verdict, value, role)
    assert decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="bob",
                            verdict="correct", corrected_value='"music_play"').outcome is decisions.Outcome.STORED
    # in a queue the card moves on after a decision: a repeat there (a decided/all queue) is stored, as it was
    revisit = store.QueueSpec(dataset="demo", task="intent", status="all")
    assert decisions.decide(cdb, decision_id=decisions.new_id(), candidate_id=cid, reviewer="ana",
                            verdict="correct", corrected_value='"music_play"',
                            queue=revisit).outcome is decisions.Outcome.STORED
    assert len(decision_rows(cdb)) == 9


def test_undoing_one_decision_twice_stores_one_retraction(cdb):
    cid = intent_candidates(cdb)[0]
    did = decisions.new_id()
    decisions.decide(cdb, decision_id=did, candidate_id=cid, reviewer="ana", verdict="accept")
    once = decisions.retract(cdb, decision_id=did, candidate_id=cid, reviewer="ana")
    twice = decisions.retract(cdb, decision_id=did, candidate_id=cid, reviewer="ana")
    assert once.outcome is decisions.Outcome.STORED and twice.outcome is decisions.Outcome.ALREADY_STORED
    assert [r[2] for r in decision_rows(cdb)] == ["accept", "retract"]


# ------------------------------------------------------------------- every write goes through it


WRITER = ROOT / "app" / "review" / "decisions.py"


STORE = ROOT / "app" / "store"


def holds_the_sql(path) -> bool:
    """A module of the store package, app/store/ (one module per concern; the decision SQL is in review.py)."""
    return STORE in path.parents


def test_the_store_is_what_the_check_below_leaves_out():
    """The exemption covers the store's modules and nothing else, and the decision INSERT is among them: were
    the store moved or renamed, the check below would not silently skip the new place."""
    modules = sorted(STORE.rglob("*.py"))
    assert len(modules) > 1 and all(holds_the_sql(path) for path in modules)
    assert not holds_the_sql(WRITER) and not holds_the_sql(ROOT / "app" / "store_jobs.py")
    assert any("insert into decisions" in " ".join(path.read_text(encoding="utf-8").lower().split())
               for path in modules)


def test_every_decision_write_in_the_app_goes_through_the_one_writer():
    """No module of app/ or components/ but the writer (and the store, which holds the SQL) calls or imports
    store.insert_decision, and no module but the store holds an INSERT into decisions."""
    offenders = []
    for path in sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "components").rglob("*.py")]):
        if path == WRITER or holds_the_sql(path):
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Attribute) and node.attr == "insert_decision") or \
                    (isinstance(node, ast.Name) and node.id == "insert_decision") or \
                    (isinstance(node, ast.ImportFrom) and any(a.name == "insert_decision" for a in node.names))
            spliced = isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "insert into decisions" in " ".join(node.value.lower().split())
            if named or spliced:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "decisions written around app/review/decisions.py: " + ", ".join(offenders)


def test_the_writer_is_the_module_the_pages_decide_through():
    """The three deciding pages name the writer (directly or through the review session) and no uuid4."""
    pages = ROOT / "app" / "app_pages"
    for name in ("rewrites.py", "agreement.py"):
        source = (pages / name).read_text(encoding="utf-8")
        assert "decisions.decide(" in source and "uuid" not in source, name
    assert "decisions.decide(" in (ROOT / "app" / "review" / "session.py").read_text(encoding="utf-8")


# ------------------------------------------------------------------ double clicks on the pages


def metadata(at: AppTest, button):
    """What Streamlit calls when `button` is clicked: its callback with the arguments bound at the last run that
    drew it (the widget's metadata in the session state)."""
    return at._session_state._state._new_widget_state.widget_metadata[button.id]


def double_click(at: AppTest, find) -> None:
    """A double click (or a double key press, or a resubmitted request) on the button find(at) returns.

    Both clicks are on the render the person saw. The first runs the button's callback and the page is drawn
    again; the second arrives before that redraw has reached the button, so Streamlit runs the callback with
    the arguments bound at the render that was clicked (the run the first click started is cut short, leaving
    the button's metadata as it was). Putting that metadata back before the second click reproduces it."""
    seen = metadata(at, find(at))
    find(at).click().run()
    assert not at.exception, at.exception
    at._session_state._state._new_widget_state.widget_metadata[seen.id] = seen
    find(at).click().run()
    assert not at.exception, at.exception


@pytest.fixture(scope="module")
def rewrite_db(tmp_path_factory):
    return build_rewrite_db(tmp_path_factory.mktemp("rewrites"))


@pytest.fixture
def rewrites_app(rewrite_db, tmp_path, monkeypatch):
    return app_db_copy(rewrite_db, tmp_path, monkeypatch)


@pytest.mark.parametrize("verdict", ["accept", "reject"])
def test_a_double_click_on_the_rewrites_page_stores_one_decision(rewrites_app, verdict):
    at = open_app_page("app_pages/rewrites.py", reviewer="zoe")
    run_id = int(read_db(rewrites_app, store.list_rewrite_runs, "t")["run_id"].iloc[0])
    cid = int(read_db(rewrites_app, store.list_rewrites, run_id)["candidate_id"].iloc[0])
    double_click(at, lambda at: at.button(key=f"rw_{verdict}"))
    assert stored_decisions(rewrites_app) == [(cid, "zoe", verdict, None, "review")]
    assert f"Saved: {verdict} #{cid}" in [s.value for s in at.success]
    # a slower double click, whose second click comes after the page was drawn again: still one decision
    at.button(key=f"rw_{verdict}").click().run()
    assert len(stored_decisions(rewrites_app)) == 1 and f"Saved: {verdict} #{cid}" in [s.value for s in at.success]
    # a change of mind is a new decision, and so is changing it back
    other = "reject" if verdict == "accept" else "accept"
    at.button(key=f"rw_{other}").click().run()
    at.button(key=f"rw_{verdict}").click().run()
    assert [r[2] for r in stored_decisions(rewrites_app)] == [verdict, other, verdict]


def test_the_writer_refuses_in_read_only_mode_whatever_a_page_shows(rewrites_app, monkeypatch):
    """A button a page forgot to switch off (here: every page believes the app is writable, only the writer
    reads read-only) stores nothing, and the page says why."""
    at = open_app_page("app_pages/rewrites.py", reviewer="zoe")
    assert not at.button(key="rw_accept").disabled
    real = decisions.Settings.from_env

    class ReadOnly:
        @staticmethod
        def from_env():
            return replace(real(), read_only=True)

    monkeypatch.setattr(decisions, "Settings", ReadOnly)
    at.button(key="rw_accept").click().run()
    assert not at.exception, at.exception
    assert stored_decisions(rewrites_app) == []
    assert any("Read-only mode" in e.value for e in at.error)


@pytest.fixture
def review_app(tmp_path, monkeypatch):
    return app_db(tmp_path / "review.duckdb", write_jsonl(tmp_path / "log.jsonl", intent_turns()), monkeypatch,
                  candidates=True)


def review_page(reviewer: str, **params) -> AppTest:
    return open_app_page("app_pages/review.py", reviewer=reviewer, params={"task": "intent", **params})


def conflict_caption(at) -> str:
    """The Agreement page's caption counting the conflicts."""
    return next(c.value for c in at.caption if "whose reviewers disagree" in c.value)


def button(label: str):
    return lambda at: next(b for b in at.button if b.label.startswith(label))


def test_a_double_click_on_settle_stores_one_adjudication(review_app):
    # ana accepts and bob rejects two candidates: two conflicts to settle
    for reviewer, verdict in (("ana", "Accept"), ("bob", "Reject")):
        at = review_page(reviewer, overlap="2")
        for _ in range(2):
            button(verdict)(at).click().run()
    at = open_app_page("app_pages/agreement.py", reviewer="carl")
    assert "2 candidate(s) whose reviewers disagree" in conflict_caption(at)
    picked = at.selectbox(key="conflict_pick").value
    next(s for s in at.selectbox if s.label == "Adjudicated label").set_value('"weather_query"').run()
    double_click(at, lambda at: at.button(key="settle"))
    settled = [r for r in stored_decisions(review_app) if r[4] == "adjudicate"]
    assert settled == [(picked, "carl", "accept", None, "adjudicate")]
    assert at.success[0].value == f"Settled candidate #{picked}: accept."
    assert "1 candidate(s) whose reviewers disagree" in conflict_caption(at)  # the other one is still to settle


def test_a_double_key_press_on_the_review_page_stores_one_decision(review_app):
    at = review_page("ana")
    first = at.code[0].value
    double_click(at, button("Accept"))
    assert [r[2] for r in stored_decisions(review_app)] == ["accept"]
    assert at.code[0].value != first  # the next card, not decided by the repeat
    assert any(c.value.startswith("Saved: accept #") for c in at.caption)


def test_a_double_undo_takes_back_one_decision(review_app):
    at = review_page("ana")
    shown = []
    for _ in range(2):
        shown.append(at.code[0].value)
        button("Accept")(at).click().run()
    double_click(at, button("Undo"))
    assert [r[2] for r in stored_decisions(review_app)] == ["accept", "accept", "retract"]
    assert at.code[0].value == shown[1]  # the card of the decision taken back, shown again
    button("Undo")(at).click().run()  # a deliberate second undo takes back the first decision
    assert [r[2] for r in stored_decisions(review_app)] == ["accept", "accept", "retract", "retract"]
    assert at.code[0].value == shown[0]


def test_the_review_page_still_decides_after_a_repeat(review_app):
    """The repeat leaves the session's queue and history alone: the next card decides and undoes as usual."""
    at = review_page("ana")
    double_click(at, button("Reject"))
    button("Accept")(at).click().run()
    log = stored_decisions(review_app)
    assert [r[2] for r in log] == ["reject", "accept"] and len({r[0] for r in log}) == 2
    button("Undo")(at).click().run()
    assert [r[2] for r in stored_decisions(review_app)] == ["reject", "accept", "retract"]
