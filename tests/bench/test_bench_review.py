"""Review: the server-side time from a decision to the next card at 10k and 1M candidates, and export
throughput against DuckDB's plain COPY of the candidates table.

Databases. The large one ingests the `big_log` fixture (TURNS turns, 1M by default) and keeps exactly the
first 1,000,000 of the ~1.6M candidates `candidates_from_logged_nlu` proposes for it (intent and slots of
the turns in dialogue order); the small one ingests a 7,000-turn generated log and keeps exactly 10,000
candidates. Both are built with the app's own code (ingest_files, insert_candidates) and cached in
bench-results/ (delete review-*.duckdb there to rebuild); each run works on a fresh copy.

A step, timed as one: the decision on the card shown (review_session.decide: insert_decision, committed),
the next card exactly as the Review page fetches it (review_session.current_card: list_queue refill every
20, is_open check, get_candidate), and the card's context queries (list_proposals, list_current_decisions,
get_dialogue_turns). The page also runs review_session.progress (three counts) on every render: it is
timed separately and reported as "page" = step + progress. Verdicts cycle accept, reject, correct, accept,
skip; 300 consecutive steps by one reviewer per queue order (score_asc, random).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import pytest

from app import store
from app.review import session as review_session
from app.review.claims import ClaimRegistry
from tests.bench.harness import RESULTS, report, timed

DATASET = "bench"
SMALL = 10_000
LARGE = 1_000_000
SMALL_TURNS = 7_000
STEPS = 300
VERDICTS = ("accept", "reject", "correct", "accept", "skip")


# ------------------------------------------------------------------------------------ databases


def build(path: Path, log: Path, n_candidates: int) -> int:
    """Ingest log and store its first n_candidates logged-NLU candidates (all, if fewer) into path."""
    from analysis.candidates import candidates_from_logged_nlu
    from app.ingest import ingest_files

    partial = path.with_name(path.stem + ".partial.duckdb")
    partial.unlink(missing_ok=True)
    conn = store.connect(partial)
    try:
        ingest_files(conn, [log], dataset=DATASET, imported_by="bench")
        cands = candidates_from_logged_nlu(store.list_nlu_outputs(conn, DATASET))
        cands = cands.slice(0, min(n_candidates, cands.num_rows))
        store.insert_candidates(conn, cands)
        n = store.count_candidates(conn)
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    partial.rename(path)
    return n


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    from analysis.simulate import load_pool, simulate_turns, write_log

    path = RESULTS / f"review-{SMALL}.duckdb"
    if not path.exists():
        RESULTS.mkdir(exist_ok=True)
        log = tmp_path_factory.mktemp("review") / "small.jsonl"
        write_log(simulate_turns(load_pool(), n_turns=SMALL_TURNS, seed=2), log)
        assert build(path, log, SMALL) == SMALL, f"{SMALL_TURNS} turns give fewer than {SMALL} candidates"
    return path


@pytest.fixture(scope="module")
def large_db(big_log) -> Path:
    path = RESULTS / f"review-{big_log.stem}-{LARGE}.duckdb"  # TURNLENS_BENCH_TURNS gives another file
    if not path.exists():
        start = time.perf_counter()
        n = build(path, big_log, LARGE)
        print(f"\n   built {path.name}: {n:,} candidates in {time.perf_counter() - start:.0f} s")
    return path


def fresh_copy(cached: Path, tmp_path: Path) -> Path:
    copy = tmp_path / cached.name
    shutil.copyfile(cached, copy)
    return copy


# ------------------------------------------------------------------------------- decision -> card


def pct(values: list[float], q: float) -> float:
    """q-th percentile (0-100), nearest rank, in ms."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def size_label(n: int) -> str:
    """10000 -> '10k', 1000000 -> '1M' (the sizes in the report's keys are the measured counts)."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{round(n / 1000)}k"


def review_run(conn, monkeypatch, reviewer: str, order: str) -> dict[str, list[float]]:
    """STEPS consecutive decisions of one reviewer through the app's review session code; seconds per part."""
    session = review_session.ReviewState()
    monkeypatch.setattr(review_session, "state", lambda: session)  # no Streamlit session needed
    spec = store.QueueSpec(dataset=DATASET, order=order, seed=7)
    claims = ClaimRegistry()
    times: dict[str, list[float]] = {k: [] for k in ("decide", "next_card", "context", "step", "progress")}
    card = review_session.current_card(conn, reviewer, spec, claims)  # the first card, before any decision
    for i in range(STEPS):
        assert card is not None, "the queue ran dry"
        verdict = VERDICTS[i % len(VERDICTS)]
        t0 = time.perf_counter()
        review_session.decide(conn, reviewer, spec, claims, card["candidate_id"], card["decision_id"], verdict,
                              '"bench-corrected"' if verdict == "correct" else None)
        t1 = time.perf_counter()
        card = review_session.current_card(conn, reviewer, spec, claims)
        t2 = time.perf_counter()
        store.list_proposals(conn, card["task"], card["target_key"], card["dialogue_id"])
        store.list_current_decisions(conn, card["candidate_id"])
        turns = store.get_dialogue_turns(conn, card["dialogue_id"], DATASET)
        t3 = time.perf_counter()
        review_session.progress(conn, reviewer, spec)
        t4 = time.perf_counter()
        assert turns
        for key, value in (("decide", t1 - t0), ("next_card", t2 - t1), ("context", t3 - t2), ("step", t3 - t0),
                           ("progress", t4 - t3)):
            times[key].append(value)
    assert store.count_decisions(conn, reviewer=reviewer) == STEPS
    times["page"] = [s + p for s, p in zip(times["step"], times["progress"], strict=True)]
    return times


def test_decision_to_next_card(small_db, large_db, tmp_path, monkeypatch):
    rows: dict = {}
    p95: dict[tuple[str, str], float] = {}
    labels = []
    for cached in (small_db, large_db):
        conn = store.connect(fresh_copy(cached, tmp_path))
        try:
            n = store.count_candidates(conn)
            label = size_label(n)
            labels.append(label)
            rows[f"candidates_{label}"] = n
            rows[f"turns_{label}"] = store.count_turns(conn)
            for order in ("score_asc", "random"):
                t = review_run(conn, monkeypatch, f"bench-{order}", order)
                tag = f"{label}_{order}"
                rows[f"step_p50_ms_{tag}"] = pct(t["step"], 50)
                rows[f"step_p95_ms_{tag}"] = pct(t["step"], 95)
                rows[f"step_max_ms_{tag}"] = max(t["step"]) * 1000
                rows[f"page_p50_ms_{tag}"] = pct(t["page"], 50)
                rows[f"page_p95_ms_{tag}"] = pct(t["page"], 95)
                rows[f"parts_p50_ms_{tag}"] = " / ".join(f"{k} {pct(t[k], 50):.1f}" for k in
                                                         ("decide", "next_card", "context", "progress"))
                rows[f"parts_p95_ms_{tag}"] = " / ".join(f"{k} {pct(t[k], 95):.1f}" for k in
                                                         ("decide", "next_card", "context", "progress"))
                p95[label, order] = rows[f"step_p95_ms_{tag}"]
                rows[f"mean_ms_{tag}"] = statistics.fmean(t["step"]) * 1000
        finally:
            conn.close()
    small, large = labels
    for order in ("score_asc", "random"):
        rows[f"ratio_p95_{large}_to_{small}_{order}"] = p95[large, order] / p95[small, order]
    rows["steps_per_order"] = STEPS
    rows["target"] = "step p95 < 100 ms at 1M candidates"
    report("review_next_card", rows)


def test_decision_to_next_card_with_a_long_decision_log(large_db, tmp_path, monkeypatch):
    """The same at 1M candidates once the decision log is long: a bulk accept of every intent candidate
    scoring 0.8 or more (several hundred thousand decisions), then reviewers working the rest, in each order.
    Measured three times in the same run on the same database: the queue as it was before issue 22 (every refill
    aggregates the decision log: tests/bench/legacy_queue.py, and runs in the run that needs it), the baseline;
    the state tables with refills still in the foreground; then as it is (review_state and candidate_state, kept
    on write; the next batch fetched in the background while the reviewer reads: app/review/session.py). p99 is
    what the refills (every BATCH-th card) decide.
    Steps follow each other with no reading pause, so a background refill has BATCH - REFILL_AHEAD steps
    (about a second) to finish: a faster pace than any reviewer's."""
    from app.store import review as store_review
    from app.store import sql as store_sql
    from tests.bench.legacy_queue import legacy_open_slots, legacy_queue_sql

    conn = store.connect(fresh_copy(large_db, tmp_path))
    rows: dict = {}
    try:
        bulk = store.bulk_accept(conn, "bulker", store.QueueSpec(dataset=DATASET, task="intent"), 0.8,
                                 audit_size=lambda n: 30)
        rows["decisions_in_log"] = store.count_decisions(conn)
        rows["bulk_accepted"] = bulk.accepted
        # log_scan: as before issue 22; state_foreground: the state tables, refills still in the run that needs
        # them (what the background refill adds is the difference to state_table)
        for variant in ("log_scan", "state_foreground", "state_table"):
            with monkeypatch.context() as patch:
                if variant != "state_table":
                    patch.setattr(review_session, "REFILL_AHEAD", 0)  # no background refill: as before
                if variant == "log_scan":
                    patch.setattr(store_sql, "queue_sql", legacy_queue_sql)
                    patch.setattr(store_review, "open_slots", legacy_open_slots)
                    patch.setattr(store, "open_slots", legacy_open_slots)
                for order in ("score_asc", "random", "disagreement"):
                    t = review_run(conn, patch, f"late-{variant}-{order}", order)
                    for q in (50, 95, 99):
                        rows[f"page_p{q}_ms_{order}_{variant}"] = pct(t["page"], q)
                    rows[f"decide_p50_ms_{order}_{variant}"] = pct(t["decide"], 50)
        for order in ("score_asc", "random", "disagreement"):
            rows[f"ratio_p99_state_to_scan_{order}"] = (rows[f"page_p99_ms_{order}_state_table"]
                                                        / rows[f"page_p99_ms_{order}_log_scan"])
    finally:
        conn.close()
    rows["target"] = "p99 < 100 ms with a 400k-decision log, every order (issue 22)"
    report("review_next_card_long_log", rows)


# ------------------------------------------------------------------------------------------ export


COPY_OPTIONS = {"jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet"}


def plain_copy(conn, path: Path, options: str) -> int:
    quoted = "'" + str(path).replace("'", "''") + "'"
    cur = conn.cursor()
    try:
        cur.execute(f"COPY (SELECT * FROM candidates) TO {quoted} ({options})")
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def test_export_throughput(large_db, tmp_path):
    """store.export_labels(kind='candidates') at 1M: rows/s per format, against DuckDB's COPY of the bare
    candidates table to the same format (export adds the model run, the resolved label and the turn's text)."""
    conn = store.connect(fresh_copy(large_db, tmp_path))
    rows: dict = {}
    try:
        n = store.count_candidates(conn)
        rows["candidates"] = n
        for fmt in store.EXPORT_FORMATS:
            out = tmp_path / f"export.{fmt}"
            base = tmp_path / f"copy.{fmt}"
            export_s, exported = timed(store.export_labels, conn, out, dataset=DATASET, kind="candidates", fmt=fmt)
            copy_s, copied = timed(plain_copy, conn, base, COPY_OPTIONS[fmt])
            assert exported == copied == n
            rows[f"{fmt}_export_s"] = export_s
            rows[f"{fmt}_export_rows_per_s"] = int(n / export_s)
            rows[f"{fmt}_copy_s"] = copy_s
            rows[f"{fmt}_copy_rows_per_s"] = int(n / copy_s)
            rows[f"{fmt}_ratio_export_to_copy"] = export_s / copy_s
            rows[f"{fmt}_file_mb"] = round(out.stat().st_size / 1e6, 1)
            out.unlink()
            base.unlink()
    finally:
        conn.close()
    report("review_export", rows)



def test_review_page_rerun_through_apptest(small_db, large_db, tmp_path, monkeypatch):
    """The whole Review page script, as Streamlit reruns it after a key press (AppTest, no browser): what
    a reviewer waits for on the server, Streamlit's own work included. Compared with AppTest running a
    page that only draws a title (the harness floor), and at 10k against 1M."""
    from streamlit.testing.v1 import AppTest

    from tests.bench.harness import ROOT

    def rerun_times(db: Path, n: int = 60) -> list[float]:
        monkeypatch.setenv("TURNLENS_DB", str(db))
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
        at.session_state["reviewer"] = "bench"
        at.run()
        at.switch_page("app_pages/review.py").run()
        times = []
        for i in range(n):
            label = "Accept" if i % 2 else "Reject"
            button = next(b for b in at.button if b.label == label)
            start = time.perf_counter()
            button.click().run()
            times.append(time.perf_counter() - start)
            assert not at.exception
        return times

    def floor() -> list[float]:
        at = AppTest.from_string("import streamlit as st\nst.title('x')", default_timeout=60)
        at.run()
        out = []
        for _ in range(30):
            start = time.perf_counter()
            at.run()
            out.append(time.perf_counter() - start)
        return out

    (tmp_path / "s").mkdir()
    (tmp_path / "l").mkdir()
    small = rerun_times(fresh_copy(small_db, tmp_path / "s"))
    large = rerun_times(fresh_copy(large_db, tmp_path / "l"))
    base = floor()
    report("review_page_rerun", {
        "rerun_p50_ms_10k": pct(small, 50), "rerun_p95_ms_10k": pct(small, 95),
        "rerun_p50_ms_1M": pct(large, 50), "rerun_p95_ms_1M": pct(large, 95),
        "apptest_floor_p50_ms": pct(base, 50),
        "ratio_p95_1M_to_10k": pct(large, 95) / pct(small, 95),
        "target": "decision to next card p95 < 100 ms at 1M candidates",
    })


# --------------------------------------------------------------------------- in a real browser

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "turns.jsonl.gz"
BROWSER_DECISIONS = 100
BROWSER_KEYS = ("a", "x", "a", " ")  # accept, reject, accept, skip, in turn
READ_MS = 150  # a reviewer reads the card before the next key (pacing only; nothing is asserted on time)

# Installed in the page: at each keydown (window, capturing: before the card's own listener) note the card on
# screen and the event's time; then, frame by frame, when another card is on screen ("card": at the start of the
# frame after the one that drew it, so it has been painted) and when the page has caught up (no busy state,
# Streamlit's script idle: "settled").
MEASURE = """() => {
  const shown = () => { const c = document.querySelector('.tl-slot:not([hidden]) .tl-card');
                        return c ? c.dataset.cardId : null; };
  const idle = () => !document.documentElement.hasAttribute('data-tl-busy') &&
      document.querySelector("[data-testid='stApp']").dataset.testScriptState === 'notRunning';
  window.__bench = [];
  window.addEventListener('keydown', (e) => {
    const row = {from: shown(), t0: e.timeStamp, card: null, settled: null};
    window.__bench.push(row);
    const frame = () => {
      const now = performance.now();
      if (row.card === null && shown() !== null && shown() !== row.from) {
        requestAnimationFrame(() => { row.card = performance.now() - row.t0; });
      }
      if (row.card !== null && idle()) { row.settled = now - row.t0; return; }
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }, true);
}"""


@pytest.fixture(scope="module")
def sample_db() -> Path:
    """The bundled sample (3,000 turns) with the logged NLU's intent and slot candidates."""
    from analysis.candidates import candidates_from_logged_nlu
    from app.ingest import ingest_files

    path = RESULTS / "review-sample.duckdb"
    if not path.exists():
        RESULTS.mkdir(exist_ok=True)
        partial = path.with_name(path.stem + ".partial.duckdb")
        partial.unlink(missing_ok=True)
        conn = store.connect(partial)
        try:
            ingest_files(conn, [SAMPLE], dataset="sample", imported_by="bench")
            store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "sample")))
            conn.execute("CHECKPOINT")
        finally:
            conn.close()
        partial.rename(path)
    return path


def test_browser_key_to_next_card(sample_db, tmp_path):
    """From a key press to the next card on screen, in headless chromium against the real server (`app.serve`),
    on the bundled sample: BROWSER_DECISIONS decisions by key in the intent queue (random order), each after the
    page has caught up with the one before. "card": from the keydown event until the frame that drew another card
    (the one the page had prefetched) has been painted; "settled": until the busy state is gone and Streamlit's
    run is over (the buttons and the context below the card are this card's). The load average is reported:
    run it on an idle machine."""
    import os

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM_ARGS
    from tests.e2e.server import AppServer, sign_in, wait_idle

    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian chromium is not installed (scripts/ensure_chromium.sh)")
    db = fresh_copy(sample_db, tmp_path)
    conn = store.connect(db)
    try:
        n_candidates = store.count_candidates(conn)
    finally:
        conn.close()
    load_before = os.getloadavg()
    with AppServer(db, env={"TURNLENS_DATASET": "sample"}) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, f"{server.url}/review?task=intent&order=random&seed=7", "bench")
        page.wait_for_selector(".tl-slot:not([hidden]) .tl-card", timeout=60_000)
        wait_idle(page)
        page.locator("h1").first.click()  # focus the page, not the name box
        page.evaluate(MEASURE)
        for i in range(BROWSER_DECISIONS):
            page.keyboard.press(BROWSER_KEYS[i % len(BROWSER_KEYS)])
            page.wait_for_function(f"() => window.__bench.length === {i + 1} && window.__bench[{i}].settled !== null",
                                   timeout=30_000)
            page.wait_for_timeout(READ_MS)
        rows = page.evaluate("window.__bench")
        browser.close()
    load_after = os.getloadavg()
    card = [r["card"] / 1000 for r in rows]
    settled = [r["settled"] / 1000 for r in rows]
    report("review_browser", {
        "decisions": len(rows), "candidates": n_candidates,
        "card_p50_ms": pct(card, 50), "card_p95_ms": pct(card, 95), "card_max_ms": max(card) * 1000,
        "settled_p50_ms": pct(settled, 50), "settled_p95_ms": pct(settled, 95), "settled_max_ms": max(settled) * 1000,
        "load_avg_1min_before_after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
        "target": "key to next card p95 < 300 ms in the browser",
    })
    from tests.e2e.server import query

    assert query(db, "SELECT count(*) FROM decisions")[0][0] == BROWSER_DECISIONS  # each key decided a card
