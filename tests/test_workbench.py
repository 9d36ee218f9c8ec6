"""`make run` opens a full workbench: the database app/workbench.py builds (the same steps; here without the two
large demo datasets, which only add datasets) shows real content on every page, for the default dataset, and
no page falls back to an empty-state info box. Slow: it runs every action of every shipped family (three models
trained, scored and evaluated)."""

from __future__ import annotations

import pytest

from app import store
from app.jobs.registry import built_in
from app.store import evaluations as store_evaluations
from app.store import jobs as store_jobs
from app.workbench import build
from tests.helpers import open_app_page

PAGES = ("overview", "review", "agreement", "bulk", "calibration", "models", "failures", "labels", "skills",
         "rewrites", "disparity", "dialogues", "import_logs", "export")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workbench(tmp_path_factory):
    db = tmp_path_factory.mktemp("workbench") / "turnlens.duckdb"
    times = build(db, rewrites_turns=0, disparity_turns=0)
    return db, times


def test_the_build_trains_scores_and_evaluates_every_family(workbench):
    db, times = workbench
    conn = store.connect(db, read_only=True)
    try:
        jobs = store_jobs.list_jobs(conn, dataset="sample")
        assert (jobs["status"] == "done").all(), jobs[["family", "action", "status", "message"]]
        done = set(zip(jobs["family"], jobs["action"], strict=True))
        # every action of every shipped family, through the job runner
        assert done == {(f.name, action) for f in built_in() for action in f.actions()}, done
        assert store_evaluations.list_evaluations(conn, dataset="sample")["family"].nunique() == 3
        assert store_evaluations.get_latest_analysis(conn, "disparity", "sample") is not None
        tasks = set(store.list_tasks(conn, "sample"))
        assert {"failure_point", "intent", "slots", "skill", "rewrite"} <= tasks
        assert store.count_decisions(conn) > 0
    finally:
        conn.close()
    assert all(seconds >= 0 for seconds in times.values())


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_content_and_no_empty_state(workbench, monkeypatch, page):
    db, _ = workbench
    monkeypatch.setenv("TURNLENS_DB", str(db))
    at = open_app_page(f"app_pages/{page}.py", timeout=300)
    assert at.session_state["dataset"] == "sample"  # the default dataset
    # An empty state says what is missing "yet" (no data, no run, nothing scored); notes such as the privacy
    # rule or a projection still computing are content, not an empty page.
    empty = [i.value for i in at.info if "yet" in i.value.lower()]
    assert not empty, empty
    content = (len(at.metric) + len(at.dataframe) + len(at.get("plotly_chart")) + len(at.button)
               + len(at.get("arrow_data_frame")))
    assert content > 0, f"{page} shows nothing"
