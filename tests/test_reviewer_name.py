"""The sidebar's Reviewer box: a name is normalised, and one that looks like another stored name is refused."""

from __future__ import annotations

import uuid

import pytest
from streamlit.testing.v1 import AppTest

from analysis.candidates import candidates_from_logged_nlu
from app import state, store
from app.ingest import ingest_files
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
CYRILLIC_A = "\u0430"


@pytest.fixture
def review_db(tmp_path, monkeypatch):
    """Two turns with logged-NLU candidates; alice has accepted the first one's intent."""
    path = tmp_path / "names.duckdb"
    conn = store.connect(path)
    turns = [make_turn("d1", 0), make_turn("d2", 0, nlu_intent="alarm_set", nlu_domain="alarm")]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    first = store.list_label_candidates(conn, "demo", 1, "intent").sort_values("dialogue_id").iloc[0]
    store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(first["candidate_id"]),
                          reviewer="alice", verdict="accept")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def reviewers(path) -> list[str]:
    conn = store.connect(path)  # as the app's (DuckDB refuses a second connection in one process in another mode)
    try:
        return store.list_reviewers(conn)
    finally:
        conn.close()


def type_name(name: str, page: str = "app_pages/review.py") -> AppTest:
    """Open ``page`` and type ``name`` in the sidebar's Reviewer box."""
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["task"] = "intent"
    at.run()
    at.switch_page(page).run()
    next(t for t in at.sidebar.text_input if t.label == "Reviewer").set_value(name).run()
    assert not at.exception, at.exception
    return at


def refused(at: AppTest) -> str:
    """The refusal's explanation, after checking it is shown as an error with the reason as text."""
    assert [e.value for e in at.sidebar.error] == ["This reviewer name cannot be used."]
    return at.sidebar.text[0].value


def test_a_lookalike_of_a_stored_name_is_refused_and_leaves_no_reviewer(review_db):
    at = type_name(f"{CYRILLIC_A}lice")
    reason = refused(at)
    assert "looks like the existing reviewer name 'alice'" in reason
    assert at.session_state[state.REVIEWER] is None
    # the review page waits for a name, as with none typed, and nothing can be stored under the look-alike
    assert at.warning[0].value.startswith("Enter your name as Reviewer in the sidebar")
    assert not [b for b in at.button if b.label == "Accept"]
    assert reviewers(review_db) == ["alice"]


def test_invisible_characters_and_spaces_are_dropped_so_the_name_is_the_stored_one(review_db):
    at = type_name("alice\u200b ")
    assert not at.sidebar.error
    assert at.session_state[state.REVIEWER] == "alice"
    next(b for b in at.button if b.label == "Accept").click().run()
    assert not at.exception, at.exception
    assert reviewers(review_db) == ["alice"]  # not a second, invisible "alice\u200b"


@pytest.mark.parametrize("typed, name", [("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # full-width letters: NFKC
                                         ("  bob\u00a0 smith\t", "bob smith")])
def test_names_are_normalised(review_db, typed, name):
    at = type_name(typed, page="app_pages/overview.py")
    assert not at.sidebar.error and at.session_state[state.REVIEWER] == name


@pytest.mark.parametrize("typed", ["ALICE", "a1ice", "al\u0456ce", "\u200b\u200b"])
def test_other_lookalikes_and_invisible_names_are_refused(review_db, typed):
    at = type_name(typed, page="app_pages/overview.py")
    refused(at)
    assert at.session_state[state.REVIEWER] is None


def test_a_name_set_before_the_box_exists_is_checked_too(review_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.session_state[state.REVIEWER] = f"{CYRILLIC_A}lice"
    at.run()
    assert "looks like the existing reviewer name 'alice'" in refused(at)
    assert at.session_state[state.REVIEWER] is None


def test_an_exact_stored_name_is_accepted_even_beside_an_older_lookalike(review_db):
    conn = store.connect(review_db)
    second = store.list_label_candidates(conn, "demo", 1, "intent").sort_values("dialogue_id").iloc[1]
    # stored before names were checked: both must still be able to sign in as themselves
    store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(second["candidate_id"]),
                          reviewer=f"{CYRILLIC_A}lice", verdict="reject")
    conn.close()
    for name in ("alice", f"{CYRILLIC_A}lice"):
        at = type_name(name, page="app_pages/overview.py")
        assert not at.sidebar.error and at.session_state[state.REVIEWER] == name
