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


def _new_interpreter_child(self, job, request, errors, *, stdin=False):
    """The baseline: how the runner started a job's child before the jobs' fork server (8726232), a new
    interpreter per job importing torch itself."""
    import os
    import subprocess
    import sys

    from tests.bench.harness import ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(errors, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "app.jobs.child", str(request)], cwd=str(ROOT), env=env,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    with self._lock:
        job.proc = proc
    self._update(job, stage="starting")
    return proc


def test_job_start_forked_against_a_new_interpreter(tmp_path, monkeypatch):
    """Wall time of short jobs (score, then evaluate, of failure-points on 400 turns) with the child forked from
    the jobs' fork server (app/jobs/launch.py) against a new interpreter per child, alternated in the same run.
    The training job before them started the server (a new interpreter's imports, once per process)."""
    import statistics

    from tests.helpers import simulated_db

    conn = store.connect(simulated_db(tmp_path / "start.duckdb", n_turns=400, seed=5, dataset="bench"))
    runner = JobRunner(conn, tmp_path / "models")
    forked_start = JobRunner._start_child
    seconds: dict[str, list[float]] = {"forked": [], "new_interpreter": []}
    try:
        trained = runner.wait(runner.submit("failure-points", "train", "bench", {"epochs": 2}), timeout=600)
        assert trained.status == "done", trained.message
        for _ in range(4):
            for way in ("forked", "new_interpreter"):
                monkeypatch.setattr(JobRunner, "_start_child",
                                    forked_start if way == "forked" else _new_interpreter_child)
                for action in ("score", "evaluate"):
                    started = time.perf_counter()
                    view = runner.wait(runner.submit("failure-points", action, "bench"), timeout=600)
                    assert view.status == "done", view.message
                    seconds[way].append(time.perf_counter() - started)
    finally:
        runner.stop()
        conn.close()
    rows = {"jobs_each_way": len(seconds["forked"]),
            "new_interpreter_median_s": statistics.median(seconds["new_interpreter"]),
            "forked_median_s": statistics.median(seconds["forked"])}
    rows["ratio_forked_to_new_interpreter"] = rows["forked_median_s"] / rows["new_interpreter_median_s"]
    rows["target"] = "none set: make run's build and jobs started from a page wait less (issue 15, 4 minutes)"
    report("job-start", rows)
