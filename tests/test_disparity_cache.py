"""The process's disparity reports (app/resources.disparity_analysis): a report is computed once even when
several sessions ask for it at the same time, and a report computed across a write is not kept."""

from __future__ import annotations

import threading

import pytest

from analysis.disparity import report as dr
from app import resources


@pytest.fixture
def analysis(monkeypatch):
    """analyse() replaced by one that counts its calls and, while `hold` is clear, blocks until released."""
    calls: list[dr.Options] = []
    started, hold = threading.Event(), threading.Event()

    def analyse(table, options, progress=None):
        calls.append(options)
        started.set()
        assert hold.wait(30), "the test never released the analysis"
        return object()

    monkeypatch.setattr(resources.store, "list_speaker_turns", lambda conn, dataset: None)
    monkeypatch.setattr(dr, "speaker_table_from_turns", lambda turns: None)
    monkeypatch.setattr(dr, "analyse", analyse)
    resources.clear_reads()
    yield calls, started, hold
    resources.clear_reads()


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

    first, first_out = in_thread(resources.disparity_analysis, None, "db", "d", dr.Options())
    assert started.wait(10)
    second, second_out = in_thread(resources.disparity_analysis, None, "db", "d", dr.Options(), progress)
    assert waiting.wait(30)  # the second session says it waits, then blocks
    assert steps == ["waiting"]
    hold.set()
    first.join(10), second.join(10)
    assert len(calls) == 1
    assert first_out[0] is second_out[0]
    # other options are another report
    assert resources.disparity_analysis(None, "db", "d", dr.Options(k=7)) is not first_out[0]
    assert len(calls) == 2
    # and a later call is served from the kept reports
    assert resources.disparity_analysis(None, "db", "d", dr.Options()) is first_out[0]
    assert len(calls) == 2


def test_a_report_computed_across_a_write_is_not_kept(analysis):
    calls, started, hold = analysis
    thread, out = in_thread(resources.disparity_analysis, None, "db", "d", dr.Options())
    assert started.wait(10)
    resources.clear_reads()  # a write while the analysis runs
    hold.set()
    thread.join(10)
    assert out and len(calls) == 1
    again = resources.disparity_analysis(None, "db", "d", dr.Options())
    assert len(calls) == 2 and again is not out[0]


def test_a_failed_analysis_lets_the_next_session_try_again(analysis, monkeypatch):
    calls, _, hold = analysis
    hold.set()

    def fail(table, options, progress=None):
        calls.append(options)
        raise ValueError("no speakers")

    monkeypatch.setattr(dr, "analyse", fail)
    for _ in range(2):
        with pytest.raises(ValueError, match="no speakers"):
            resources.disparity_analysis(None, "db", "d", dr.Options())
    assert len(calls) == 2 and not resources._disparity_running
