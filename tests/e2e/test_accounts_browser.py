"""Accounts mode in a real browser: sign in, a role-gated action refused to a reviewer, sign out, and the same
action done by an adjudicator, stored under her verified name."""

from __future__ import annotations

import pytest

from analysis.candidates import candidates_from_logged_nlu
from app import accounts, store
from app.ingest import ingest_files
from tests.e2e.server import AppServer, query, wait_idle
from tests.helpers import make_turn, write_jsonl

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_server(tmp_path):
    db_path = tmp_path / "acc.duckdb"
    turns = [make_turn(f"dlg-{i}", 0, nlu_intent=intent, nlu_confidence=score, nlu_slots=[],
                       timestamp=f"2026-01-0{i + 1}T10:00:00Z")
             for i, (intent, score) in enumerate([("weather_query", 0.2), ("play_radio", 0.97),
                                                  ("iot_hue_lightoff", 0.98)])]
    conn = store.connect(db_path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    accounts.add_account(conn, "alice", role="reviewer", password=PASSWORD, actor="test")
    accounts.add_account(conn, "carol", role="adjudicator", password=PASSWORD, actor="test")
    conn.close()
    server = AppServer(db_path, env={"TURNLENS_AUTH": "accounts"})
    yield server, db_path
    server.stop()


def log_in(page, name: str, password: str = PASSWORD) -> None:
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_sign_in_and_role_gated_bulk_accept(accounts_server, page):
    server, db_path = accounts_server
    page.goto(server.url)
    log_in(page, "alice", "not her password")
    page.get_by_text("Wrong name or password").wait_for(timeout=30_000)
    log_in(page, "alice")
    page.get_by_test_id("stSidebar").get_by_text("alice · reviewer").wait_for(timeout=30_000)

    # A reviewer sees why she cannot bulk-accept, and no button to do it.
    page.get_by_test_id("stSidebarNav").get_by_text("Bulk accept").click()
    page.get_by_text("needs the adjudicator role").first.wait_for(timeout=30_000)
    wait_idle(page)
    assert page.get_by_role("button", name="Bulk accept 2 candidates").count() == 0

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    log_in(page, "carol")
    page.get_by_test_id("stSidebar").get_by_text("carol · adjudicator").wait_for(timeout=30_000)
    page.get_by_test_id("stSidebarNav").get_by_text("Bulk accept").click()
    page.get_by_role("button", name="Bulk accept 2 candidates").click()
    page.get_by_text("Bulk accept #1: 2 accepted").wait_for(timeout=30_000)
    assert page.outside_requests == []
    server.stop()

    assert query(db_path, "SELECT reviewer, n_accepted FROM bulk_actions") == [("carol", 2)]
    assert {r[0] for r in query(db_path, "SELECT reviewer FROM decisions")} == {"carol"}
