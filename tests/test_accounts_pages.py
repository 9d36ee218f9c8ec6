"""Accounts mode in the app (AppTest): sign-in, the identity every decision is stored under, role-gated actions,
and attempts to act as somebody else."""

from __future__ import annotations

import uuid

import pytest
from streamlit.testing.v1 import AppTest

from app import accounts, store
from app.review import decisions
from tests.helpers import ROOT, app_db, intent_turns, read_db, stored_decisions, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_db(tmp_path, monkeypatch):
    """Three intent candidates; alice (reviewer), carol (adjudicator), dave (admin, SSO-only); and a conflict:
    ana accepted and bob rejected the first candidate."""
    path = app_db(tmp_path / "acc.duckdb", write_jsonl(tmp_path / "log.jsonl", intent_turns()), monkeypatch,
                  candidates=True)
    conn = store.connect(path)
    try:
        accounts.add_account(conn, "alice", role="reviewer", password=PASSWORD, actor="t")
        accounts.add_account(conn, "carol", role="adjudicator", password=PASSWORD, actor="t")
        accounts.add_account(conn, "dave@example.org", role="admin", password=None, actor="t")
        first = int(conn.execute("SELECT min(candidate_id) FROM candidates").fetchone()[0])
        for who, verdict in (("ana", "accept"), ("bob", "reject")):
            decisions.decide(conn, decision_id=str(uuid.uuid4()), candidate_id=first, reviewer=who, verdict=verdict,
                             queue=store.QueueSpec(dataset="demo", task="intent", overlap=2))
    finally:
        conn.close()
    monkeypatch.setenv("TURNLENS_AUTH", "accounts")
    return path


def sign_in(name: str, password: str = PASSWORD, *, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.text_input(key="login_name").set_value(name)
    at.text_input(key="login_password").set_value(password)
    at.button[0].click().run()  # the form's Log in
    return at


def test_accounts_mode_asks_to_sign_in_and_shows_nothing_else(accounts_db):
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert not at.get("selectbox")  # no dataset picker, no page content before signing in
    at = sign_in("alice", "wrong password")
    assert at.error[0].value == "Wrong name or password, or the account is disabled."
    assert "identity" not in at.session_state


def test_no_account_yet_says_how_to_make_one(tmp_path, monkeypatch):
    app_db(tmp_path / "e.duckdb", write_jsonl(tmp_path / "log.jsonl", intent_turns()), monkeypatch)
    monkeypatch.setenv("TURNLENS_AUTH", "accounts")
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert "no account yet" in at.warning[0].value
    assert "turnlens users add <name> --role admin" in at.text[0].value
    assert "TURNLENS_AUTH=none" in at.text[0].value


def test_signed_in_reviewer_decides_as_herself_whatever_name_is_in_the_session(accounts_db):
    # An attempt to act as bob: a name in the session (as the no-account box would set it) counts for nothing.
    at = sign_in("alice", state={"reviewer": "bob", "reviewer_box": "bob"})
    assert not at.exception
    assert "alice · reviewer" in [t.value for t in at.sidebar.text]
    assert not [t for t in at.text_input if t.key == "reviewer_box"]  # no box to type another name into
    at.switch_page("app_pages/review.py").run()
    next(b for b in at.button if b.label == "Accept").click().run()
    assert stored_decisions(accounts_db)[-1][1:] == ("alice", "accept", None, "review")


def test_a_reviewer_cannot_bulk_accept_or_settle(accounts_db):
    at = sign_in("alice")
    at.switch_page("app_pages/bulk.py").run()
    assert not at.exception
    assert "needs the adjudicator role" in at.warning[0].value
    assert "turnlens users set-role alice adjudicator" in at.text[0].value
    assert not [b for b in at.button if b.key == "bulk_go"]
    at.switch_page("app_pages/agreement.py").run()
    assert "1 candidate(s) whose reviewers disagree" in " ".join(c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "settle"]
    assert any("needs the adjudicator role" in w.value for w in at.warning)


def test_an_adjudicator_bulk_accepts_and_settles_under_her_name(accounts_db):
    at = sign_in("carol")
    at.switch_page("app_pages/agreement.py").run()
    next(r for r in at.selectbox if r.label == "Adjudicated label").set_value('"weather_query"')
    at.button(key="settle").click().run()
    assert at.success[0].value.startswith("Settled candidate")
    assert stored_decisions(accounts_db)[-1][1:] == ("carol", "accept", None, "adjudicate")
    at.switch_page("app_pages/bulk.py").run()
    at.slider(key="bulk_threshold").set_value(0.4).run()
    at.button(key="bulk_go").click().run()
    assert at.success[0].value.startswith("Bulk accept #1")
    assert read_db(accounts_db, lambda c: c.execute("SELECT DISTINCT reviewer FROM bulk_actions").fetchall()) \
        == [("carol",)]


def test_a_role_taken_away_counts_at_the_next_click(accounts_db):
    at = sign_in("carol")
    at.switch_page("app_pages/agreement.py").run()
    conn = store.connect(accounts_db)
    try:
        accounts.set_role(conn, "carol", "reviewer", actor="t")  # while her page shows the Settle button
    finally:
        conn.close()
    n_before = len(stored_decisions(accounts_db))
    at.button(key="settle").click().run()
    assert len(stored_decisions(accounts_db)) == n_before
    assert any("needs the adjudicator role" in e.value for e in at.error)


def test_a_disabled_account_is_signed_out(accounts_db):
    at = sign_in("alice")
    conn = store.connect(accounts_db)
    try:
        accounts.disable_account(conn, "alice", actor="t")
    finally:
        conn.close()
    at.run()
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert "identity" not in at.session_state


def test_single_sign_on_is_offered_where_configured(accounts_db):
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button if b.key == "sso_login"] == ["Log in with single sign-on"]


def test_no_account_mode_is_said_in_the_sidebar(accounts_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_AUTH", "none")
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.session_state["reviewer"] = "ana"
    at.run()
    assert any("No-account mode (TURNLENS_AUTH=none)" in c.value for c in at.sidebar.caption)
    assert [t.key for t in at.sidebar.text_input] == ["reviewer_box"]


def test_read_only_needs_no_sign_in(accounts_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "login_name"]
    assert any("no sign-in needed" in c.value for c in at.sidebar.caption)
