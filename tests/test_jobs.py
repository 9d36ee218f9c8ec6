"""The registry of model families and the job runner: a family added in a test runs end to end (train, score,
candidates in the review queue), job states (queued, running, done, failed, cancelled, interrupted after a
restart), and no partial writes after a failure or a cancel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import store
from app.ingest import ingest_files
from app.jobs import child, registry
from app.jobs.runner import JobRefusedError, JobRunner
from app.store import jobs as store_jobs
from tests import jobs_family
from tests.helpers import make_turn, write_jsonl


@pytest.fixture
def sample(db, tmp_path):
    turns = [make_turn(f"d{i}", 0, gold_intent="weather_query" if i % 3 else "play_music") for i in range(30)]
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="s")
    return db


@pytest.fixture
def runner(sample, tmp_path):
    r = JobRunner(sample, tmp_path / "models")
    yield r
    r.stop()


def wait_for(predicate, what: str, seconds: float = 60):
    """Poll until predicate() holds (a deadline, not a timing assertion: slow machines only wait longer)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"still waiting for {what}")


def test_an_unknown_family_is_an_error_listing_the_known_ones():
    with pytest.raises(registry.UnknownFamilyError) as info:
        registry.get("failure-pointz")
    assert "unknown model family 'failure-pointz'; known:" in str(info.value)
    for name in ("failure-points", "labels", "skills"):
        assert name in str(info.value)


def test_built_in_families_declare_documented_options():
    families = registry.load_built_in()
    for name in ("failure-points", "labels", "skills"):
        family = families[name]
        assert family.options and all(o.help for o in family.options)
        assert family.parse_options("train", {})  # every default is valid
    with pytest.raises(ValueError, match="epochs: 0 is below the minimum 1"):
        families["labels"].parse_options("train", {"epochs": 0})
    with pytest.raises(ValueError, match="unknown option"):
        families["labels"].parse_options("train", {"epochz": 3})


def test_a_family_added_in_a_test_trains_scores_and_fills_the_queue(runner, sample, tmp_path):
    assert registry.get("toy-majority") is jobs_family.TOY
    job = runner.submit("toy-majority", "train", "s", {"steps": 2}, started_by="alice")
    view = runner.wait(job, timeout=120)
    assert view.status == "done", view.message
    stored = store_jobs.get_job(sample, job)
    assert stored["status"] == "done" and stored["started_by"] == "alice"
    checkpoint = store_jobs.get_latest_checkpoint(sample, "toy-majority", "s")
    model = tmp_path / "models" / "s" / "toy-majority" / f"job-{job}" / "model.json"
    assert checkpoint and model.exists()
    # the heavy work ran below the server's priority (niceness caps at 19)
    assert json.loads(model.read_text())["niceness"] >= min(os.nice(0) + child.NICENESS, 19)

    scored = runner.wait(runner.submit("toy-majority", "score", "s"), timeout=120)
    assert scored.status == "done", scored.message
    queue = store.list_queue(sample, "bob", store.QueueSpec(dataset="s", task="intent"), limit=100)
    assert len(queue) == 30
    card = store.get_candidate(sample, queue[0])
    assert card["model_name"] == "toy-majority" and card["value"] == '"weather_query"'
    assert abs(card["score"] - 20 / 30) < 1e-9


def test_scoring_before_training_is_refused(runner):
    with pytest.raises(JobRefusedError, match="train one first"):
        runner.submit("toy-majority", "score", "s")
    with pytest.raises(JobRefusedError, match="no dataset 'nope'"):
        runner.submit("toy-majority", "train", "nope")
    with pytest.raises(registry.UnknownFamilyError):
        runner.submit("nope", "train", "s")


def test_a_failed_job_keeps_its_message_and_writes_nothing(runner, sample, tmp_path):
    view = runner.wait(runner.submit("toy-majority", "train", "s", {"fail": True}), timeout=120)
    assert view.status == "failed" and view.message == "asked to fail"
    assert store_jobs.list_jobs(sample)["message"].tolist() == ["asked to fail"]
    assert store_jobs.get_latest_checkpoint(sample, "toy-majority", "s") is None
    assert not list((tmp_path / "models" / "s" / "toy-majority").iterdir())  # no checkpoint, no leftovers

    runner.wait(runner.submit("toy-majority", "train", "s"), timeout=120)
    before = (store.count_candidates(sample, "s"), len(store.list_model_runs(sample)))
    failed = runner.wait(runner.submit("toy-majority", "score", "s", {"fail_after": True}), timeout=120)
    assert failed.status == "failed" and "failed after computing every candidate" in failed.message
    assert (store.count_candidates(sample, "s"), len(store.list_model_runs(sample))) == before


def test_job_children_are_forked_from_a_server_with_torch_imported_and_get_the_environment_of_now(
        runner, monkeypatch):
    """A job's child is a fork of the jobs' fork server (app/jobs/launch.py), not a new interpreter importing
    torch again; it still runs with the environment and working folder of the process that asked, as it is
    when the job starts (the server was started with the environment of the first job)."""
    first = runner.wait(runner.submit("toy-majority", "train", "s"), timeout=120)
    monkeypatch.setenv("TURNLENS_TEST_MARK", "second")
    second = runner.wait(runner.submit("toy-majority", "train", "s"), timeout=120)
    models = [json.loads((Path(v.result["checkpoint"]) / "model.json").read_text()) for v in (first, second)]
    assert [m["torch_loaded"] for m in models] == [True, True]  # the toy family never imports torch
    assert models[0]["parent"] == models[1]["parent"] != os.getpid()  # one server forked both
    assert [m["mark"] for m in models] == [None, "second"]
    assert {m["cwd"] for m in models} == {str(Path(registry.__file__).resolve().parents[2])}
    # torch's thread count is a new interpreter's: the server passes no thread limit to its children (the log
    # reader's server runs with OMP_NUM_THREADS=1)
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    assert [m["torch_threads"] for m in models] == [int(fresh.stdout)] * 2


def test_a_job_whose_process_crashes_fails_with_what_the_crash_said_and_writes_nothing(runner, sample, tmp_path):
    view = runner.wait(runner.submit("toy-majority", "train", "s", {"crash": True}), timeout=120)
    assert view.status == "failed"
    assert view.message.startswith("the job's process stopped (killed, or a crash in a native library): ")
    assert "Segmentation fault" in view.message  # the child's faulthandler, on its standard error
    assert store_jobs.get_latest_checkpoint(sample, "toy-majority", "s") is None
    assert not list((tmp_path / "models" / "s" / "toy-majority").iterdir())


def test_a_job_reading_its_input_or_leaving_a_line_open_still_ends_done(runner):
    """Standard input of a job that is not streamed is closed (a read ends at once, not in a wait), and output
    that does not end its line does not hide the child's exit line."""
    view = runner.wait(runner.submit("toy-majority", "train", "s", {"untidy": True}), timeout=120)
    assert (view.status, view.message) == ("done", "train: {'turns': 30}")


def test_a_fork_server_that_cannot_start_fails_the_job_at_once_saying_so(runner, monkeypatch):
    from app import forkserver
    from app.jobs import launch

    monkeypatch.setattr(launch, "_SERVER", forkserver.ForkServer("app.no_such_module"))
    started = time.monotonic()
    view = runner.wait(runner.submit("toy-majority", "train", "s"), timeout=120)
    assert view.status == "failed"
    assert "the fork server (python -m app.no_such_module serve) stopped with exit code 1" in view.message
    assert time.monotonic() - started < launch._CONNECT_SECONDS  # not the whole wait for a child


def test_jobs_queue_one_at_a_time_and_can_be_cancelled(runner, sample, tmp_path):
    slow = runner.submit("toy-majority", "train", "s", {"steps": 10_000, "pause": 0.01})
    queued = runner.submit("toy-majority", "train", "s")
    wait_for(lambda: runner.view(slow).status == "running" and runner.view(slow).stage == "working",
             "the slow job to run")
    assert runner.view(queued).status == "queued" and runner.view(queued).place == 1
    wait_for(lambda: runner.view(slow).done > 0, "progress")
    assert runner.view(slow).total == 10_000 and runner.view(slow).eta is not None

    assert runner.cancel(queued)
    assert runner.view(queued).status == "cancelled"
    assert runner.cancel(slow)
    view = runner.wait(slow, timeout=60)
    assert view.status == "cancelled"
    assert store_jobs.get_job(sample, slow)["status"] == "cancelled"
    assert store_jobs.get_latest_checkpoint(sample, "toy-majority", "s") is None
    assert not list((tmp_path / "models" / "s" / "toy-majority").iterdir())
    assert not runner.cancel(slow)  # already finished


def test_jobs_left_running_by_a_stopped_server_are_marked_interrupted(sample, tmp_path):
    left = store_jobs.insert_job(sample, family="toy-majority", action="train", dataset="s", config={},
                                 started_by=None)
    store_jobs.insert_job_event(sample, left, "running")
    runner = JobRunner(sample, tmp_path / "models")
    try:
        job = store_jobs.get_job(sample, left)
        assert job["status"] == "interrupted" and "server stopped" in job["message"]
    finally:
        runner.stop()


def test_read_only_refuses_jobs(sample, tmp_path):
    runner = JobRunner(sample, tmp_path / "models", read_only=True)
    try:
        with pytest.raises(JobRefusedError, match="read-only"):
            runner.submit("toy-majority", "train", "s")
    finally:
        runner.stop()


# ------------------------------------------------------------------------------------------------- CLI


def test_the_job_command_is_built_from_the_registry(sample, tmp_path, capsys):
    from app import cli

    db_path = tmp_path / "cli.duckdb"
    conn = store.connect(db_path)
    turns = [make_turn(f"d{i}", 0, gold_intent="greet") for i in range(5)]
    ingest_files(conn, [write_jsonl(tmp_path / "c.jsonl", turns)], dataset="c")
    conn.close()
    # toy-majority is registered by this test module only: the command knows it all the same.
    assert cli.main(["train", "toy-majority", "--dataset", "c", "--steps", "2", "--quiet",
                     "--db", str(db_path)]) == 0
    assert "job #1 toy-majority train on 'c': train: {'turns': 5}" in capsys.readouterr().out
    assert cli.main(["score", "toy-majority", "--dataset", "c", "--quiet", "--db", str(db_path)]) == 0
    conn = store.connect(db_path, read_only=True)
    assert store.count_candidates(conn, "c") == 5
    conn.close()
    assert cli.main(["train", "toy-majority", "--dataset", "c", "--fail", "--quiet",
                     "--db", str(db_path)]) == 1
    assert "job #3 failed: asked to fail" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "toy-majorty", "--dataset", "c"])
    assert info.value.code == 2
    assert "invalid choice: 'toy-majorty'" in capsys.readouterr().err


def test_training_from_the_command_line_while_the_app_holds_the_file_points_to_the_models_page(tmp_path):
    import subprocess
    import sys

    db_path = tmp_path / "held.duckdb"
    store.connect(db_path).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); sys.stdin.read()", str(db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = subprocess.run([sys.executable, "-m", "app.cli", "train", "failure-points", "--dataset", "x",
                              "--db", str(db_path)], capture_output=True, text=True, timeout=120)
    finally:
        holder.communicate("", timeout=30)
    assert out.returncode == 3, out.stderr
    assert "While the app runs, start the job (train failure-points) from its Models page." in out.stderr


def test_every_shipped_family_is_registered_with_its_actions():
    shipped = {f.name: f.actions() for f in registry.built_in()}
    assert shipped == {"failure-points": ("train", "score", "evaluate"), "labels": ("train", "score", "evaluate"),
                       "skills": ("train", "score", "evaluate"), "rewrites": ("mine",), "disparity": ("analyse",),
                       "coordination": ("train", "score", "evaluate"), "rescoring": ("train", "score", "evaluate"),
                       "ewc-adaptation": ("mitigate",), "verification": ("mitigate",)}
    # only the skill router's checkpoints cannot score a dataset they were not trained on (the make run speech demo)
    assert [f.name for f in registry.built_in() if not f.scores_other_datasets] == ["skills"]
    assert "toy-majority" not in shipped  # registered by a test: not something `make run` builds
    # only the rescorer has make-run steps of its own: it trains on the sample and tunes on the speech demo
    assert [f.name for f in registry.built_in() if f.make_run is not None] == ["rescoring", "ewc-adaptation",
                                                                                "verification"]


def test_an_unknown_action_or_a_bad_option_is_refused(runner):
    with pytest.raises(JobRefusedError, match="toy-majority has no 'mine' action; it has train, score"):
        runner.submit("toy-majority", "mine", "s")
    with pytest.raises(JobRefusedError, match="steps: -1 is below the minimum 0"):
        runner.submit("toy-majority", "train", "s", {"steps": -1})
    with pytest.raises(JobRefusedError, match="out applies to train only"):
        runner.submit("disparity", "analyse", "s", out="x")


def test_the_disparity_analysis_runs_as_a_job_and_is_stored(tmp_path):
    """An analysis family: its own action, run in the child, its summary written by the server."""
    from app.store import evaluations as store_evaluations
    from tests.helpers import simulated_db

    conn = store.connect(simulated_db(tmp_path / "dp.duckdb", n_turns=600, seed=2, dataset="dp"))
    runner = JobRunner(conn, tmp_path / "models")
    try:
        view = runner.wait(runner.submit("disparity", "analyse", "dp", {"n_boot": 20}, started_by="ana"),
                           timeout=600)
        assert view.status == "done", view.message
        stored = store_evaluations.get_latest_analysis(conn, "disparity", "dp")
        assert stored["analysis_id"] == view.result["analysis_id"]
        assert stored["options"]["n_boot"] == 20 and stored["summary"]["overall"]["speakers"] > 0
        assert "Pooled WER" in stored["markdown"] and f"analysis #{stored['analysis_id']}" in view.message
        jobs = store_jobs.list_jobs(conn, family="disparity")
        assert jobs[["action", "status", "started_by"]].values.tolist() == [["analyse", "done", "ana"]]
    finally:
        runner.stop()
        conn.close()


def test_the_install_compiles_umap_into_the_cache_the_disparity_jobs_read(monkeypatch, tmp_path):
    """`make install` runs app.jobs.disparity.warm_up, which compiles UMAP with NUMBA_CACHE_DIR set as the
    analysis jobs set it (app.settings), so make run's first analysis loads the compiled code."""
    from app.jobs import disparity
    from app.settings import Settings

    monkeypatch.setenv("NUMBA_CACHE_DIR", "set")  # so monkeypatch restores it (or its absence) afterwards:
    monkeypatch.delenv("NUMBA_CACHE_DIR")  # warm_up sets it in this process
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    seen = []
    monkeypatch.setattr(disparity.cohorts, "warm_up_umap", lambda: seen.append(os.environ["NUMBA_CACHE_DIR"]))
    disparity.warm_up()
    assert seen == [str(Settings.from_env().numba_cache)] == [str(tmp_path / "turnlens" / "numba")]
    install = (Path(registry.__file__).resolve().parents[2] / "Makefile").read_text()
    assert "python -c 'from app.jobs.disparity import warm_up; warm_up()'" in install
