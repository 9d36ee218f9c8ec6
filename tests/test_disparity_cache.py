"""The disparity reports of a server process (app/resources.disparity_analysis): a report is computed once even
when several sessions ask for it at the same time, and a report computed across a write is not kept. And the
stored reports (m007): a report is read from the store when one matches the data and the options, whatever the
process, computed and stored otherwise, computed again when the data change; the voices' layout likewise."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from analysis.disparity import report as dr
from analysis.disparity import snapshot as sn
from analysis.simulate import load_pool, simulate_turns, write_log
from app import resources, store
from app.store import disparity as store_disparity
from tests.helpers import ingest_log, simulated_db


@pytest.fixture
def analysis(monkeypatch):
    """The computation replaced by one that counts its calls and, while `hold` is clear, blocks until released;
    no report is stored."""
    calls: list[dr.Options] = []
    started, hold = threading.Event(), threading.Event()

    def compute(table, options, progress=None):
        calls.append(options)
        started.set()
        assert hold.wait(30), "the test never released the analysis"
        return object()

    monkeypatch.setattr(resources, "_read_speaker_table", lambda conn, dataset: (None, "fingerprint"))
    monkeypatch.setattr(store_disparity, "get_data_fingerprint", lambda conn, dataset: "fingerprint")
    monkeypatch.setattr(store_disparity, "get_report", lambda *args: None)
    monkeypatch.setattr(resources, "_compute", compute)
    resources.clear_reads()
    yield calls, started, hold
    resources.clear_reads()


def analyse(*args, **kwargs):
    return resources.disparity_analysis(*args, **kwargs, store_result=False)


def in_thread(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def test_sessions_asking_together_share_one_computation(analysis):
    calls, started, hold = analysis
    steps: list[str] = []
    waiting = threading.Event()

    def progress(step: str, share: float) -> None:
        steps.append(step)
        waiting.set()

    first, first_out = in_thread(analyse, None, "db", "d", dr.Options())
    assert started.wait(10)
    second, second_out = in_thread(analyse, None, "db", "d", dr.Options(), progress)
    assert waiting.wait(30)  # the second session says it waits, then blocks
    assert steps == ["waiting"]
    hold.set()
    first.join(10), second.join(10)
    assert len(calls) == 1
    assert first_out[0] is second_out[0]
    assert first_out[0].source == "computed" and first_out[0].not_stored == "read-only mode"
    # other options are another report
    assert analyse(None, "db", "d", dr.Options(k=7)) is not first_out[0]
    assert len(calls) == 2
    # and a later call is served from the kept reports
    assert analyse(None, "db", "d", dr.Options()) is first_out[0]
    assert len(calls) == 2


def test_a_report_computed_across_a_write_is_not_kept(analysis):
    calls, started, hold = analysis
    thread, out = in_thread(analyse, None, "db", "d", dr.Options())
    assert started.wait(10)
    resources.clear_reads()  # a write while the analysis runs
    hold.set()
    thread.join(10)
    assert out and len(calls) == 1
    again = analyse(None, "db", "d", dr.Options())
    assert len(calls) == 2 and again is not out[0]


def test_a_failed_analysis_lets_the_next_session_try_again(analysis, monkeypatch):
    calls, _, hold = analysis
    hold.set()

    def fail(table, options, progress=None):
        calls.append(options)
        raise ValueError("no speakers")

    monkeypatch.setattr(resources, "_compute", fail)
    for _ in range(2):
        with pytest.raises(ValueError, match="no speakers"):
            analyse(None, "db", "d", dr.Options())
    assert len(calls) == 2 and not resources._disparity_running


# ------------------------------------------------------------------------------------------ stored reports

FAST = dr.Options(n_boot=30, stability_refits=2)


@pytest.fixture
def counted(monkeypatch):
    """Every computation of a report, counted (the real one runs)."""
    calls: list[dr.Options] = []
    real = resources._compute

    def compute(table, options, progress=None):
        calls.append(options)
        return real(table, options, progress)

    monkeypatch.setattr(resources, "_compute", compute)
    resources.clear_reads()
    yield calls
    resources.clear_reads()


@pytest.fixture
def dp_db(tmp_path):
    return simulated_db(tmp_path / "dp.duckdb", n_turns=3000, seed=4)


def test_a_stored_report_is_reused_by_the_next_process_and_recomputed_when_the_data_change(dp_db, counted,
                                                                                           tmp_path):
    conn = store.connect(dp_db)
    try:
        first = resources.disparity_analysis(conn, str(dp_db), "t", FAST)
        assert first.source == "computed" and first.report_id is not None and first.computed_by == "page"
        assert len(counted) == 1
        # a new server process: nothing kept in memory, the stored report is read, nothing is computed
        resources.clear_reads()
        second = resources.disparity_analysis(conn, str(dp_db), "t", FAST)
        assert second.source == "stored" and second.report_id == first.report_id and len(counted) == 1
        assert second.snapshot.overall == pytest.approx(first.snapshot.overall)
        pd.testing.assert_frame_equal(second.snapshot.regions, first.snapshot.regions, check_dtype=False)
        # other options: not this report
        resources.clear_reads()
        other = resources.disparity_analysis(conn, str(dp_db), "t", dr.Options(n_boot=30, stability_refits=2, k=9))
        assert other.source == "computed" and other.report_id != first.report_id and len(counted) == 2
        # the data change (a new import): the stored report no longer matches, so it is computed and stored anew
        more = tmp_path / "more.jsonl"
        write_log(simulate_turns(load_pool(), n_turns=300, seed=99, id_prefix="more-"), more)
        ingest_log(conn, more, "t")
        resources.clear_reads()  # what the app does after any write
        third = resources.disparity_analysis(conn, str(dp_db), "t", FAST)
        assert third.source == "computed" and len(counted) == 3
        assert third.report_id not in (first.report_id, other.report_id)
        assert third.snapshot.table_fingerprint != first.snapshot.table_fingerprint
        assert third.snapshot.overall["utterances"] > first.snapshot.overall["utterances"]
        assert len(store_disparity.list_reports(conn, "t")) == 3
    finally:
        conn.close()


def test_read_only_computes_without_storing(dp_db, counted):
    conn = store.connect(dp_db)
    try:
        loaded = resources.disparity_analysis(conn, str(dp_db), "t", FAST, store_result=False)
        assert loaded.source == "computed" and loaded.report_id is None and loaded.not_stored == "read-only mode"
        assert store_disparity.list_reports(conn, "t").empty
    finally:
        conn.close()


def test_a_key_is_stored_once(dp_db):
    conn = store.connect(dp_db)
    try:
        table, _ = resources._read_speaker_table(conn, "t")
        fingerprint = store_disparity.get_data_fingerprint(conn, "t")
        snap = sn.snapshot(dr.analyse(table, FAST))
        meta, parts = sn.to_stored(snap)
        key = {"dataset": "t", "data_fingerprint": fingerprint, "options": sn.options_key(FAST), "format": sn.FORMAT,
               "meta": meta, "parts": parts}
        first = store_disparity.insert_report(conn, **key, computed_by="job", analysis_id=4, seconds=1.5)
        assert store_disparity.insert_report(conn, **key, computed_by="page") == first
        stored = store_disparity.get_report(conn, "t", fingerprint, sn.options_key(FAST), sn.FORMAT)
        assert (stored["computed_by"], stored["analysis_id"], stored["seconds"]) == ("job", 4, 1.5)
        assert set(stored["parts"]) == set(parts)
        assert store_disparity.get_report(conn, "t", "other data", sn.options_key(FAST), sn.FORMAT) is None
    finally:
        conn.close()


def test_the_data_fingerprint_follows_the_analysed_turns(dp_db, tmp_path):
    conn = store.connect(dp_db)
    try:
        before = store_disparity.get_data_fingerprint(conn, "t")
        assert before == store_disparity.get_data_fingerprint(conn, "t")
        assert store_disparity.get_data_fingerprint(conn, "no such dataset") == "turns:0:0"
        for prefix, dataset in (("other-", "other"), ("more-", "t")):
            log = tmp_path / f"{prefix}.jsonl"
            write_log(simulate_turns(load_pool(), n_turns=50, seed=98, id_prefix=prefix), log)
            ingest_log(conn, log, dataset)
            if dataset == "other":  # another dataset's import leaves this one's fingerprint be
                assert store_disparity.get_data_fingerprint(conn, "t") == before
        assert store_disparity.get_data_fingerprint(conn, "t") != before
    finally:
        conn.close()


def test_the_voices_layout_is_stored_once_and_read_back(dp_db, monkeypatch):
    fits: list[int] = []

    def fake_umap(x):
        fits.append(len(x))
        return np.column_stack([np.arange(len(x)), -np.arange(len(x))]).astype(float)

    monkeypatch.setattr("analysis.disparity.cohorts.umap_embedding", fake_umap)
    monkeypatch.setattr("analysis.disparity.cohorts.warm_up_umap", lambda: None)
    resources.clear_reads()
    conn = store.connect(dp_db)
    try:
        snap = resources.disparity_analysis(conn, str(dp_db), "t", FAST).snapshot
        first = resources.disparity_layout(conn, str(dp_db), "t", snap)
        if first.source == "computing":
            first.job.result(timeout=30)
            first = resources.disparity_layout(conn, str(dp_db), "t", snap)
        assert first.source == "computed" and fits == [len(snap.voice_rows)]
        assert store_disparity.list_layout_keys(conn, "t") == [snap.voices_key]
        # the next process reads it: no fit; and a report with other options has the same voices
        resources.clear_reads()
        other = resources.disparity_analysis(conn, str(dp_db), "t", dr.Options(n_boot=30, stability_refits=2, k=8))
        again = resources.disparity_layout(conn, str(dp_db), "t", other.snapshot)
        assert again.source == "stored" and fits == [len(snap.voice_rows)]
        np.testing.assert_array_equal(again.xy, first.xy)
    finally:
        resources.clear_reads()
        conn.close()
