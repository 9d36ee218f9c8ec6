"""Ingest throughput against DuckDB's own read_json of the same file (no validation: the ceiling),
and the Overview page's server-side render on the resulting database."""

from __future__ import annotations

import duckdb

from app import store
from app.ingest import ingest_files
from tests.bench.harness import ROOT, TURNS, report, timed


def duckdb_read_json(path, db_path) -> int:
    conn = duckdb.connect(str(db_path))
    conn.execute("CREATE TABLE raw AS SELECT * FROM read_json(?, format = 'newline_delimited')", [str(path)])
    n = conn.execute("SELECT count(*) FROM raw").fetchone()[0]
    conn.close()
    return n


def turnlens_ingest(path, db_path) -> int:
    conn = store.connect(db_path)
    result, _ = ingest_files(conn, [path], dataset="bench")
    conn.close()
    return result.rows_added


def test_ingest_vs_duckdb_read_json(big_log, tmp_path):
    ceiling_s, n_raw = timed(duckdb_read_json, big_log, tmp_path / "ceiling.duckdb")
    ingest_s, n = timed(turnlens_ingest, big_log, tmp_path / "turnlens.duckdb")
    assert n == n_raw == TURNS
    report("ingest", {
        "file_mb": round(big_log.stat().st_size / 1e6, 1),
        "duckdb_read_json_s": ceiling_s,
        "duckdb_read_json_turns_per_s": int(TURNS / ceiling_s),
        "turnlens_ingest_s": ingest_s,
        "turnlens_ingest_turns_per_s": int(TURNS / ingest_s),
        "ratio_ingest_to_read_json": ingest_s / ceiling_s,
        "target": ">= 50,000 turns/s and ratio <= 3",
    })


def test_overview_render_at_scale(big_log, tmp_path, monkeypatch):
    """Server-side render of the Overview page (cold caches) on the ingested database, against the same
    harness running a page that only draws a title (the floor of AppTest itself)."""
    from streamlit.testing.v1 import AppTest

    db_path = tmp_path / "overview.duckdb"
    turnlens_ingest(big_log, db_path)
    monkeypatch.setenv("TURNLENS_DB", str(db_path))

    def render():
        from app import resources

        resources.clear_reads()  # cold: every query runs
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
        at.run()
        assert not at.exception and at.metric[0].value == f"{TURNS:,}"
        return at

    def floor():
        at = AppTest.from_string("import streamlit as st\nst.title('x')", default_timeout=60)
        at.run()
        return at

    render()  # first run opens the database and imports the page modules
    overview_s, _ = timed(render, repeat=5)
    floor_s, _ = timed(floor, repeat=5)
    report("overview", {
        "overview_render_s": overview_s,
        "apptest_floor_s": floor_s,
        "ratio_to_floor": overview_s / floor_s,
        "target": "overview render < 1 s",
    })
