"""Reviewing while a model trains: decision-to-next-card p95 with a training job running in the background
against the same reviewer's p95 with the server idle, measured in the same run on the same database.

Target (issue 15): at most 2x. The job's heavy work runs in a child process (two threads of torch on this
2-core machine); the server thread that follows it only reads progress lines."""

from __future__ import annotations

import shutil
import time

import pytest

from app import store
from app.jobs.runner import JobRunner
from tests.bench.harness import RESULTS, report
from tests.bench.test_bench_review import SMALL, SMALL_TURNS, build, pct, review_run

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def review_db(tmp_path_factory):
    from analysis.simulate import load_pool, simulate_turns, write_log

    path = RESULTS / f"jobs-review-{SMALL}.duckdb"
    if not path.exists():
        RESULTS.mkdir(exist_ok=True)
        log = tmp_path_factory.mktemp("jobs") / "small.jsonl"
        write_log(simulate_turns(load_pool(), n_turns=SMALL_TURNS, seed=2), log)
        build(path, log, SMALL)
    return path


def test_review_while_a_job_trains(review_db, tmp_path, monkeypatch):
    copy = tmp_path / review_db.name
    shutil.copyfile(review_db, copy)
    conn = store.connect(copy)
    runner = JobRunner(conn, tmp_path / "models")
    try:
        idle = review_run(conn, monkeypatch, "idle-reviewer", "score_asc")
        job = runner.submit("failure-points", "train", "bench", {"epochs": 200}, started_by="bench")
        while runner.view(job).stage != "training":  # measure once the child is really training
            assert runner.view(job).status in ("queued", "running"), runner.view(job).message
            time.sleep(0.2)
        busy = review_run(conn, monkeypatch, "busy-reviewer", "score_asc")
        still = runner.view(job).status
        runner.cancel(job)
        runner.wait(job, timeout=120)
    finally:
        runner.stop()
        conn.close()
    assert still == "running", "the job ended before the measurement did: raise its epochs"
    rows = {"idle_step_p95_ms": pct(idle["step"], 95), "busy_step_p95_ms": pct(busy["step"], 95),
            "idle_page_p95_ms": pct(idle["page"], 95), "busy_page_p95_ms": pct(busy["page"], 95)}
    rows["ratio_step_p95_busy_to_idle"] = rows["busy_step_p95_ms"] / rows["idle_step_p95_ms"]
    rows["ratio_page_p95_busy_to_idle"] = rows["busy_page_p95_ms"] / rows["idle_page_p95_ms"]
    rows["target"] = "busy / idle p95 <= 2"
    report("review-while-training", rows)
