"""`make run` opens a full workbench: the database app/workbench.py builds (the same steps; here without the two
large demo datasets, which only add datasets) shows real content on every page, for the default dataset, and
no page falls back to an empty-state info box; the speech demo is its own dataset, with its audio under the
audio root and candidates from the sample's models. Slow: it runs every action of every shipped family (three
models trained, scored and evaluated)."""

from __future__ import annotations

import pytest

from app import store
from app.jobs.registry import built_in
from app.store import evaluations as store_evaluations
from app.store import jobs as store_jobs
from app.workbench import SPEECH_DEMO_DATASET, build
from tests.helpers import open_app_page

PAGES = ("overview", "review", "agreement", "bulk", "calibration", "models", "compare_runs", "failures", "labels",
         "coordination", "rescoring", "skills", "rewrites", "disparity", "dialogues", "import_logs", "export")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workbench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workbench")
    db = folder / "turnlens.duckdb"
    times = build(db, rewrites_turns=0, disparity_turns=0, audio_root=folder / "audio")
    return db, times


def test_the_build_trains_scores_and_evaluates_every_family(workbench):
    db, times = workbench
    conn = store.connect(db, read_only=True)
    try:
        jobs = store_jobs.list_jobs(conn, dataset="sample")
        assert (jobs["status"] == "done").all(), jobs[["family", "action", "status", "message"]]
        done = set(zip(jobs["family"], jobs["action"], strict=True))
        # every action of every shipped family, through the job runner; a family with steps of its own, those
        own = {f.name: f for f in built_in() if f.make_run is not None}
        assert done == ({(f.name, action) for f in built_in() if f.name not in own for action in f.actions()}
                        | {(name, a) for name, f in own.items() for a, ds, _ in f.make_run if ds == "sample"}), done
        evaluated = set(store_evaluations.list_evaluations(conn, dataset="sample")["family"])
        assert evaluated == {f.name for f in built_in() if "evaluate" in f.actions() and f.name not in own}, evaluated
        assert store_evaluations.get_latest_analysis(conn, "disparity", "sample") is not None
        tasks = set(store.list_tasks(conn, "sample"))
        assert {"failure_point", "intent", "slots", "skill", "rewrite"} <= tasks
        assert store.count_decisions(conn) > 0
    finally:
        conn.close()
    assert all(seconds >= 0 for seconds in times.values())


def test_the_speech_demo_is_a_dataset_with_audio_and_candidates(workbench):
    from analysis.logs import resolve_audio

    db, times = workbench
    root = db.parent / "audio"
    conn = store.connect(db, read_only=True)
    try:
        dialogues = {t["dialogue_id"] for t in store.list_turn_records(conn, SPEECH_DEMO_DATASET)}
        turns = [t for d in sorted(dialogues) for t in store.get_dialogue_turns(conn, d, SPEECH_DEMO_DATASET)]
        assert len(turns) >= 200
        for t in turns:  # every turn plays a file the build put under the audio root
            assert t["audio_source"] == "synthetic"
            assert resolve_audio(t["audio"], root).is_file(), t["audio"]
        jobs = store_jobs.list_jobs(conn, dataset=SPEECH_DEMO_DATASET)
        assert (jobs["status"] == "done").all(), jobs[["family", "action", "status", "message"]]
        scorers = {f.name for f in built_in() if "score" in f.actions() and f.scores_other_datasets}
        # the scorers, the rescorer's evaluation, its disparity report and both mitigation jobs
        assert set(jobs["family"]) == scorers | {"disparity", "ewc-adaptation", "verification"}
        assert set(jobs["action"]) == {"score", "evaluate", "analyse", "mitigate"}
        for family in ("ewc-adaptation", "verification"):
            assert store_evaluations.get_latest_analysis(conn, family, SPEECH_DEMO_DATASET) is not None
        # the rescorer's transcripts and its held-out evaluation on the real n-best lists
        assert "transcript" in store.list_tasks(conn, SPEECH_DEMO_DATASET)
        evaluated = store_evaluations.list_evaluations(conn, dataset=SPEECH_DEMO_DATASET)
        assert set(evaluated["family"]) == {"rescoring"}
        # the Review page's queue for it: the logged NLU's proposals and the sample's models' ones
        assert {"failure_point", "intent", "slots"} <= set(store.list_tasks(conn, SPEECH_DEMO_DATASET))
        assert store.count_candidates(conn, SPEECH_DEMO_DATASET) > len(turns)
    finally:
        conn.close()
    speech_steps = {k: v for k, v in times.items() if k.startswith("speech-demo")}
    # audio, ingest, NLU proposals, disparity, each scorer but the rescorer (it scores in its own steps), simulated
    # reviewers
    assert len(speech_steps) == 4 + len(scorers) - 1 + 1
    assert {"rescoring: train", "rescoring: score (speech-demo)", "rescoring: evaluate (speech-demo)"} <= set(times)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_content_and_no_empty_state(workbench, monkeypatch, page):
    db, _ = workbench
    monkeypatch.setenv("TURNLENS_DB", str(db))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(db.parent / "audio"))
    at = open_app_page(f"app_pages/{page}.py", timeout=300)
    assert at.session_state["dataset"] == "sample"  # the default dataset
    # An empty state says what is missing "yet" (no data, no run, nothing scored); notes such as the privacy
    # rule or a projection still computing are content, not an empty page.
    empty = [i.value for i in at.info if "yet" in i.value.lower()]
    assert not empty, empty
    content = (len(at.metric) + len(at.dataframe) + len(at.get("plotly_chart")) + len(at.button)
               + len(at.get("arrow_data_frame")))
    assert content > 0, f"{page} shows nothing"
