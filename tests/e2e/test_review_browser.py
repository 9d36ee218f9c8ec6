"""A reviewer in a real browser: accept, reject, skip, undo and correct with the keyboard, a bulk accept
and an export; then the database is checked after the server has stopped."""

from __future__ import annotations

import json

import pytest

from analysis.candidates import candidates_from_logged_nlu
from app import store
from app.ingest import ingest_files
from app.review import session as review_session
from tests.e2e.server import AppServer, query, serving, wait_idle
from tests.helpers import make_turn, write_jsonl

pytestmark = pytest.mark.e2e

INTENTS = [("weather_query", 0.10), ("music_play", 0.20), ("alarm_set", 0.30), ("news_query", 0.40),
           ("play_radio", 0.97), ("iot_hue_lightoff", 0.98)]


@pytest.fixture
def review_server(tmp_path):
    db_path = tmp_path / "review.duckdb"
    turns = [make_turn(f"dlg-{i}", 0, nlu_intent=intent, nlu_confidence=score, nlu_slots=[],
                       asr_text=f"request {i} <script>alert({i})</script>", nlu_domain=intent.split("_")[0],
                       timestamp=f"2026-01-0{i + 1}T10:00:00Z")
             for i, (intent, score) in enumerate(INTENTS)]
    conn = store.connect(db_path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    server = AppServer(db_path)
    yield server, db_path
    server.stop()


def wait_card(page, expected: str) -> None:
    """Until the card on screen proposes `expected` (a rerun replaces the old card progressively)."""
    page.wait_for_function(
        """v => { const e = document.querySelector("[data-testid='stCode']");
                  return e && e.innerText.trim() === v; }""", arg=expected, timeout=20_000)


def wait_saved(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=20_000)


def test_keyboard_review_bulk_accept_and_export(review_server, page, tmp_path):
    server, db_path = review_server
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server.url}/review?task=intent")
    name = page.get_by_placeholder("your name")
    name.fill("ana")
    name.press("Enter")
    page.get_by_role("button", name="Accept").wait_for(timeout=30_000)
    wait_card(page, "weather_query")

    def press(key: str) -> None:
        # Only once the previous rerun has finished: a key pressed mid-rerun may reach the old page.
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=20_000)
        page.locator("h1").first.click()  # focus the page, not an input: keys go to the shortcuts
        page.keyboard.press(key)

    press("a")
    wait_saved(page, "Saved: accept")
    wait_card(page, "music_play")
    press("x")
    wait_saved(page, "Saved: reject")
    wait_card(page, "alarm_set")
    press("Backspace")  # undo a real decision: a retraction is stored and the card comes back
    wait_saved(page, "Undone: reject")
    wait_card(page, "music_play")
    press("x")
    wait_saved(page, "Saved: reject")
    wait_card(page, "alarm_set")
    press(" ")
    wait_saved(page, "Saved: skip")
    wait_card(page, "news_query")
    press("Backspace")
    wait_saved(page, "Undone: skip")
    wait_card(page, "alarm_set")
    press("c")
    page.get_by_role("button", name="Save correction").wait_for(timeout=20_000)
    page.get_by_role("combobox", name="Correct value").click()
    page.keyboard.type("alarm_query")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Save correction").click()
    wait_saved(page, "Saved: correct")
    wait_card(page, "news_query")
    # Log text stays text on the card's dialogue view (rendered after the card: wait for it), no script ran.
    page.wait_for_function("() => document.body.innerText.includes('<script>alert(3)</script>')",
                           timeout=20_000)
    assert dialogs == []

    # Bulk accept the high-scoring rest (threshold 0.95): play_radio and iot_hue_lightoff.
    # Through the sidebar, so the session (and the reviewer's name) carries over.
    page.get_by_test_id("stSidebarNav").get_by_text("Bulk accept").click()
    page.get_by_role("button", name="Bulk accept 2 candidates").click()
    page.get_by_text("Bulk accept #1: 2 accepted").wait_for(timeout=20_000)

    # Export the accepted labels as JSON Lines through the browser's download.
    page.get_by_test_id("stSidebarNav").get_by_text("Export").click()
    page.get_by_role("button", name="Prepare file").click()
    page.get_by_text("rows ready.").wait_for(timeout=20_000)
    # The download buttons come after that line in the same run: click once the run is over, or the click can
    # land on a button the run is still replacing (no download; seen once with both cores busy).
    wait_idle(page)
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download file").click()
    exported = [json.loads(line) for line in open(info.value.path(), encoding="utf-8")]
    assert page.outside_requests == []
    # Every decision above was acknowledged on screen; the server now dies without any chance to flush,
    # and a new one starts on the same file.
    server.kill()
    AppServer(db_path).stop()

    labels = {row["dialogue_id"]: (row["verdict"], row["label"]) for row in exported}
    # labels are JSON values in JSON Lines (docs/review.md, Export), not JSON text
    assert labels == {"dlg-0": ("accept", "weather_query"), "dlg-2": ("correct", "alarm_query"),
                      "dlg-4": ("accept", "play_radio"), "dlg-5": ("accept", "iot_hue_lightoff")}
    conn = store.connect(db_path)
    try:
        rows = conn.execute("""SELECT c.dialogue_id, d.verdict, d.corrected_value, d.role, d.reviewer
                               FROM decisions d JOIN candidates c USING (candidate_id) ORDER BY d.seq""").fetchall()
    finally:
        conn.close()
    assert [r[:2] for r in rows[:6]] == [("dlg-0", "accept"), ("dlg-1", "reject"), ("dlg-1", "retract"),
                                         ("dlg-1", "reject"), ("dlg-2", "skip"), ("dlg-2", "correct")]
    assert rows[5][2] == '"alarm_query"'
    assert sorted(r[0] for r in rows[6:]) == ["dlg-4", "dlg-5"] and {r[3] for r in rows[6:]} == {"bulk"}


MARKUP = "**bold** [phish](https://evil.example/p) ![i](https://evil.example/i.png) <img src=x onerror=alert(9)>"
LINKS_TO_EVIL = """() => Array.from(document.querySelectorAll('a, img')).filter(e =>
    ((e.getAttribute('href') || '') + (e.getAttribute('src') || '') + (e.getAttribute('xlink:href') || ''))
      .includes('evil.example') || e.getAttribute('src') === 'x').length"""


def test_markup_in_candidate_values_and_links_stays_text(tmp_path, page):
    db_path = tmp_path / "markup.duckdb"
    conn = store.connect(db_path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("m-1", 0, nlu_intent=MARKUP,
                                                                       nlu_confidence=0.5, nlu_slots=[])])],
                 dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    server = AppServer(db_path)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        # a hostile link: its queue settings are quoted back as text, not rendered
        page.goto(f"{server.url}/review?order=" + "%5Bx%5D(https://evil.example/l)%20!%5Bp%5D(https://evil.example/p.png)")
        name = page.get_by_placeholder("your name")
        name.fill("ana")
        name.press("Enter")
        page.get_by_role("button", name="Accept").wait_for(timeout=30_000)
        shown = page.locator("[data-testid='stCode']").filter(has_text="phish").first
        shown.wait_for(timeout=30_000)
        assert shown.inner_text().strip() == MARKUP  # the proposed value, literally
        page.wait_for_timeout(1000)
        assert page.evaluate(LINKS_TO_EVIL) == 0
        assert page.locator("strong", has_text="bold").count() == 0
        assert dialogs == [] and page.outside_requests == []
    finally:
        server.stop()


# The card on screen (components/keys.py draws the prefetched ones hidden).
ON_SCREEN = ".tl-slot:not([hidden]) .tl-card"
# The test's own record of every key: which card was on screen when it was pressed, and whether the page was
# still catching up with an earlier key (busy). Window, capturing: it runs before the card's own listener.
RECORD_KEYS = """() => { window.__keys = [];
  window.addEventListener('keydown', (e) => { const c = document.querySelector(".tl-slot:not([hidden]) .tl-card");
    window.__keys.push([e.key, c ? Number(c.dataset.cardId) : null,
                        document.documentElement.hasAttribute('data-tl-busy')]); }, true); }"""
# Keys pressed within one task of the page: no run of the page can come back between them.
BURST = """(keys) => { for (const key of keys) document.body.dispatchEvent(
    new KeyboardEvent('keydown', {key, bubbles: true, cancelable: true}));
  const c = document.querySelector(".tl-slot:not([hidden]) .tl-card");
  return [c ? Number(c.dataset.cardId) : null, document.documentElement.hasAttribute('data-tl-busy')]; }"""
VERDICT = {"a": "accept", "x": "reject", " ": "skip"}


def settled(page) -> None:
    """Until the page has caught up with every key: no busy state, Streamlit's run over."""
    page.wait_for_function("() => !document.documentElement.hasAttribute('data-tl-busy')", timeout=30_000)
    wait_idle(page)


def test_keys_faster_than_the_page_land_on_the_card_they_were_pressed_on(tmp_path, page):
    db = tmp_path / "fast.duckdb"
    turns = [make_turn(f"f-{i:02d}", 0, nlu_intent=f"intent_{i:02d}", nlu_confidence=0.02 + i / 50, nlu_slots=[],
                       timestamp=f"2026-01-01T10:{i:02d}:00Z") for i in range(20)]
    conn = store.connect(db)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    with serving(page, db, "/review?task=intent", "ana"):
        page.wait_for_selector(ON_SCREEN, timeout=30_000)
        page.locator("h1").first.click()  # focus the page, not the name box
        page.evaluate(RECORD_KEYS)
        # Five keys in one task of the page: the card on screen and the PREFETCH cards after it take one each
        # (the next card shows at once, and the page is busy until the server has them), the rest find no card
        # on screen and are ignored.
        on_screen, busy = page.evaluate(BURST, ["a", "x", "a", "a", "x"])
        assert on_screen is None and busy
        settled(page)
        # Then real key presses as fast as the keyboard goes (how many land on a prefetched card, and how many
        # find none, depends on the machine: whichever it is, the database must agree with the record).
        for key in "axa xaxa":
            page.keyboard.press(key)
        settled(page)
        assert page.outside_requests == []
        pressed = page.evaluate("window.__keys")
    first = pressed[:5]
    assert [card is not None for _, card, _ in first] == [True] * (1 + review_session.PREFETCH) + [False] * 2
    assert len({card for _, card, _ in first[:3]}) == 3 and all(busy for _, _, busy in first[1:])
    landed = [(card, VERDICT[key]) for key, card, _ in pressed if card is not None]
    rows = query(db, "SELECT candidate_id, verdict FROM decisions ORDER BY seq")
    # every decision is the one pressed, on the card on screen when it was pressed, in the order pressed
    assert rows == landed
