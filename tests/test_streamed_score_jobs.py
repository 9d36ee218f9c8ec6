"""Score jobs of a family that scores batch by batch (BatchScoring.read_batches) stream through the job runner:
batches of whole dialogues read by the server, scored by one child process that loads the model once, stored
batch by batch. They store what scoring the whole dataset at once stores; a failure or a cancel keeps the
batches before it and says so, and scoring again stores the rest."""

from __future__ import annotations

import pytest

from analysis.failure_points.model import FIELDS_READ
from app import store
from app.ingest import ingest_files
from app.jobs import common
from app.jobs.runner import JobRunner
from app.store import jobs as store_jobs
from tests import jobs_family  # noqa: F401 - registers the toy families
from tests.helpers import make_turn, write_jsonl
from tests.test_jobs import wait_for

N_DIALOGUES = 30


@pytest.fixture
def sample(db, tmp_path):
    turns = [make_turn(f"d{i:02d}", j, gold_intent="weather_query" if i % 3 else "play_music")
             for i in range(N_DIALOGUES) for j in range(2)]
    ingest_files(db, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="s")
    return db


@pytest.fixture
def runner(sample, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "SCORE_BATCH_DIALOGUES", 7)  # 30 dialogues: 5 batches
    r = JobRunner(sample, tmp_path / "models")
    yield r
    r.stop()


def candidates(conn) -> list[tuple]:
    return conn.execute("""SELECT c.dialogue_id, c.turn_index, c.value, c.score, r.name, r.parameters
                           FROM candidates c JOIN model_runs r USING (run_id) ORDER BY ALL""").fetchall()


def trained(runner) -> str:
    view = runner.wait(runner.submit("toy-majority-streamed", "train", "s"), timeout=120)
    assert view.status == "done", view.message
    return store_jobs.get_latest_checkpoint(runner._conn, "toy-majority-streamed", "s")


def test_a_streamed_score_job_stores_what_scoring_at_once_stores(runner, sample):
    checkpoint = trained(runner)
    seen = []
    job = runner.submit("toy-majority-streamed", "score", "s")
    wait_for(lambda: seen.append((runner.view(job).done, runner.view(job).total)) or
             runner.view(job).status not in ("queued", "running"), "the streamed job")
    view = runner.view(job)
    assert view.status == "done", view.message
    row = store_jobs.get_job(sample, job)
    assert row["status"] == "done"
    streamed = candidates(sample)
    assert len(streamed) == 2 * N_DIALOGUES
    assert {t for t in seen if t[1] is not None} <= {(d, 2 * N_DIALOGUES) for d in range(2 * N_DIALOGUES + 1)}
    # the same family scoring the whole dataset in one child: the same rows (a second run changes nothing)
    sample.execute("DELETE FROM candidate_distributions; DELETE FROM candidates; DELETE FROM model_runs")
    whole = runner.wait(runner.submit("toy-majority", "score", "s", checkpoint=checkpoint), timeout=120)
    assert whole.status == "done", whole.message
    assert candidates(sample) == streamed


def test_a_failure_keeps_the_batches_before_it_and_a_rerun_stores_the_rest(runner, sample):
    trained(runner)
    failed = runner.wait(runner.submit("toy-majority-streamed", "score", "s", {"fail_at_turn": "d15"}), timeout=120)
    assert failed.status == "failed"
    assert "failed at d15" in failed.message
    kept = store.count_candidates(sample, "s")
    assert kept == 2 * 14  # batches d00-d06 and d07-d13 were stored; d14-d20 failed
    assert f"{kept:,} candidates of the batches before were stored" in failed.message
    again = runner.wait(runner.submit("toy-majority-streamed", "score", "s"), timeout=120)
    assert again.status == "done", again.message
    assert store.count_candidates(sample, "s") == 2 * N_DIALOGUES
    assert store_jobs.get_job(sample, again.job_id)["status"] == "done"


def test_a_failure_storing_a_batch_keeps_the_batches_before_it_stops_the_child_and_refreshes_the_pages(
        sample, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "SCORE_BATCH_DIALOGUES", 7)
    writes = []
    r = JobRunner(sample, tmp_path / "models", on_write=lambda: writes.append(1))
    try:
        trained(r)
        writes.clear()
        real = store.insert_candidates
        calls = []

        def insert(conn, table, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise OSError("disk full")
            return real(conn, table, *args, **kwargs)

        monkeypatch.setattr(store, "insert_candidates", insert)
        job = r.submit("toy-majority-streamed", "score", "s")
        view = r.wait(job, timeout=120)
        assert view.status == "failed"
        assert view.message.startswith("OSError: disk full (28 candidates of the batches before were stored")
        assert store.count_candidates(sample, "s") == 2 * 14
        assert r._jobs[job].proc.poll() is not None  # the child was stopped, not left waiting for orders
        assert writes  # the pages' caches are refreshed: two batches were stored
    finally:
        r.stop()


def test_a_streamed_job_can_be_cancelled_between_batches(runner, sample):
    trained(runner)
    job = runner.submit("toy-majority-streamed", "score", "s", {"batch_pause": 0.5})
    wait_for(lambda: store.count_candidates(sample, "s") > 0, "the first batch to be stored")
    assert runner.cancel(job)
    view = runner.wait(job, timeout=60)
    assert view.status == "cancelled"
    assert 0 < store.count_candidates(sample, "s") < 2 * N_DIALOGUES
    assert "candidates of the batches before were stored" in view.message


def test_a_dataset_without_turns_is_refused_with_a_message(sample):
    with pytest.raises(ValueError, match="dataset 'nope' has no turns to score"):
        common.turn_batches(sample, "nope", {})


@pytest.mark.parametrize("name", ["failure-points", "labels", "coordination"])
def test_the_turn_scoring_families_stream(name):
    from app.jobs import registry

    family = registry.get(name)
    read = family.batch.read_batches if family.batch is not None else None
    # failure points read only the fields their model reads (FIELDS_READ); the others every production field
    assert read is common.turn_batches or (name == "failure-points" and read.func is common.turn_batches
                                           and read.keywords == {"fields": FIELDS_READ})
