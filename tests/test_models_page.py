"""The Models page in AppTest: every family listed with its options, a job started from the page runs in the
background and its state shows, and read-only mode switches jobs off."""

from __future__ import annotations

from app import resources, store
from app.ingest import ingest_files
from app.store import jobs as store_jobs
from tests import jobs_family  # noqa: F401  (registers the test family the page then lists)
from tests.helpers import make_turn, open_app_page, write_jsonl


def _db(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    conn = store.connect(path)
    turns = [make_turn(f"d{i}", 0, gold_intent="weather_query") for i in range(25)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def _texts(at) -> str:
    return "\n".join(e.value for e in at.text) + "\n".join(e.value for e in at.caption)


def test_the_models_page_lists_families_and_runs_a_job(tmp_path, monkeypatch):
    db = _db(tmp_path, monkeypatch)
    at = open_app_page("app_pages/models.py")
    markdown = "\n".join(m.value for m in at.markdown)
    for title in ("Failure points", "Label generation", "Skill routing", "Query rewrites", "Disparity",
                  "Toy majority intent"):
        assert title in markdown
    assert any(e.label == "epochs" for e in at.number_input)  # a family's documented option, as a field
    assert "No jobs started since the server started." in _texts(at)

    at.button(key="models_toy-majority_train_go").click().run()
    assert not at.exception, at.exception
    assert any("queued" in s.value for s in at.success)
    runner = resources.job_runner(str(db))
    job_id = runner.views()[0].job_id
    assert runner.wait(job_id, timeout=120).status == "done"
    at.run()
    assert f"#{job_id} toy-majority train on demo: done" in _texts(at)
    history = at.dataframe[0].value
    assert history["status"].tolist() == ["done"] and history["started_by"].tolist() == ["ana"]
    assert store_jobs.get_latest_checkpoint(resources.get_connection(str(db)), "toy-majority", "demo")
    runner.stop()
    resources.job_runner.clear()


def test_a_refused_job_says_why_on_the_page(tmp_path, monkeypatch):
    db = _db(tmp_path, monkeypatch)
    at = open_app_page("app_pages/models.py")
    at.button(key="models_toy-majority_score_go").click().run()
    assert any(e.value == "The job was not started." for e in at.error)
    assert "no trained Toy majority intent model for dataset 'demo' yet: train one first" in _texts(at)
    resources.job_runner(str(db)).stop()
    resources.job_runner.clear()


def test_read_only_mode_switches_jobs_off(tmp_path, monkeypatch):
    db = _db(tmp_path, monkeypatch)
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_app_page("app_pages/models.py")
    assert any("jobs are switched off" in i.value for i in at.info)
    assert all(b.disabled for b in at.button if b.key and b.key.endswith("_go"))
    assert db.exists()
    resources.job_runner.clear()


def test_the_failure_analysis_page_trains_and_scores_its_own_family(tmp_path, monkeypatch):
    from tests.helpers import simulated_db

    db = simulated_db(tmp_path / "fp.duckdb", n_turns=400, seed=3, dataset="demo")
    monkeypatch.setenv("TURNLENS_DB", str(db))
    at = open_app_page("app_pages/failures.py")
    assert "No failure-point model has scored this dataset yet" in at.info[0].value
    at.number_input(key="fam_failure-points_train_epochs").set_value(1)
    at.button(key="fam_failure-points_train_go").click().run()
    runner = resources.job_runner(str(db))
    train = runner.views()[0]
    assert (train.family, train.action, train.started_by) == ("failure-points", "train", "ana")
    assert runner.wait(train.job_id, timeout=300).status == "done", runner.view(train.job_id).message
    at.button(key="fam_failure-points_score_go").click().run()
    score = runner.views()[0]
    assert runner.wait(score.job_id, timeout=300).status == "done", runner.view(score.job_id).message
    at.run()
    assert any("no stored evaluation yet" in i.value for i in at.info)
    at.button(key="fam_failure-points_evaluate_go").click().run()
    evaluate = runner.views()[0]
    assert runner.wait(evaluate.job_id, timeout=300).status == "done", runner.view(evaluate.job_id).message
    at.run()
    assert not at.info, [i.value for i in at.info]
    assert next(m for m in at.metric if m.label == "Turns scored").value == "400"
    runner.stop()
    resources.job_runner.clear()


def test_a_model_trained_on_another_dataset_scores_this_one_from_the_page(tmp_path, monkeypatch):
    """A dataset with no model of its own: the score action offers the models trained on other datasets (as the
    rescorer trained on the sample's transcripts scores the speech demo's n-best lists) and scores with the one
    chosen."""
    db = _db(tmp_path, monkeypatch)
    conn = store.connect(db)
    turns = [make_turn(f"o{i}", 0, gold_intent="play_music") for i in range(10)]
    ingest_files(conn, [write_jsonl(tmp_path / "other.jsonl", turns)], dataset="other")
    conn.close()
    at = open_app_page("app_pages/models.py")
    at.button(key="models_toy-majority_train_go").click().run()
    runner = resources.job_runner(str(db))
    try:
        assert runner.wait(runner.views()[0].job_id, timeout=120).status == "done"
        at.run()
        assert "models_toy-majority_score_model" not in [s.key for s in at.selectbox]  # only demo's own model
        at = open_app_page("app_pages/models.py", params={"dataset": "other"})
        choice = at.selectbox(key="models_toy-majority_score_model")
        assert choice.options == ["trained on demo (job #1)"]
        at.button(key="models_toy-majority_score_go").click().run()
        assert any("queued" in s.value for s in at.success), [e.value for e in at.error] + [t.value for t in at.text]
        job = runner.views()[0]
        assert runner.wait(job.job_id, timeout=120).status == "done"
        demo_model = store_jobs.get_latest_checkpoint(resources.get_connection(str(db)), "toy-majority", "demo")
        assert runner.view(job.job_id).result["checkpoint"] == demo_model
        assert store.count_candidates(resources.get_connection(str(db)), "other") == 10
    finally:
        runner.stop()
        resources.job_runner.clear()
