"""`make run` opens a full workbench: the database app/workbench.py builds (the same steps; here without the two
large demo datasets, which only add datasets) shows real content on every page, for the default dataset, and
no page falls back to an empty-state info box; the speech demo is its own dataset, with its audio under the
audio root and candidates from the sample's models. Slow: it runs every action of every shipped family (three
models trained, scored and evaluated).

The two mitigation families (issue 20) are checked here, end to end, on what the build made of the speech demo:
`turnlens mitigate ewc-adaptation` adapted the rescorer to the worst-served automatic cohort and measured every
cohort before and after on held-out dialogues, `turnlens mitigate verification` trained plain and ARW verifiers on
some speakers and measured the others, both stored as analyses and drawn by the Disparity page's Mitigation
section. (They had a file of their own that built the same thing again, 75-95 s of the suite.)"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.holdout import is_heldout
from app import store
from app import workbench as wb
from app.jobs import ewc_adaptation, registry
from app.jobs.groups import report_groups
from app.jobs.registry import built_in
from app.store import evaluations as store_evaluations
from app.store import jobs as store_jobs
from app.workbench import SPEECH_DEMO_DATASET, StepFailed, build, run_turnlens
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


def test_a_failing_step_stops_the_build_says_so_and_leaves_the_environment_as_it_was(tmp_path, monkeypatch, capsys):
    """The steps run in this process (app.cli.main): a usage error or a failed command is a StepFailed with its
    exit code, `python -m app.workbench` exits 1 saying so and writes no timings, and the audio root it set for
    the steps is undone."""
    with pytest.raises(StepFailed) as failed:
        run_turnlens(["no-such-command"])
    assert failed.value.code == 2
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(StepFailed) as failed:
        run_turnlens(["info", "--db", str(missing)])
    assert failed.value.code != 0 and "no such database" in capsys.readouterr().err
    import app.cli

    def crash(argv):
        raise KeyError("a bug in a command")

    with monkeypatch.context() as m:  # an exception a command raises: its traceback, as the interpreter prints it
        m.setattr(app.cli, "main", crash)
        with pytest.raises(StepFailed) as failed:
            run_turnlens(["info"])
    assert failed.value.code == 1
    said = capsys.readouterr().err
    assert "Traceback" in said and "a bug in a command" in said
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", "/the/users/own")
    seen = []
    monkeypatch.setattr(wb, "steps", lambda db, **kw: [
        ("look", lambda: seen.append(os.environ["TURNLENS_AUDIO_ROOT"])),
        ("fail", ["info", "--db", str(missing)]),
        ("never", lambda: seen.append("ran on"))])
    db = tmp_path / "w.duckdb"
    assert wb.main(["--db", str(db), "--audio-root", str(tmp_path / "audio")]) == 1
    assert "a step failed (exit code" in capsys.readouterr().err
    assert seen == [str((tmp_path / "audio").resolve())]
    assert os.environ["TURNLENS_AUDIO_ROOT"] == "/the/users/own"
    assert not Path(str(db) + ".build.json").exists()


def test_background_steps_start_with_the_build_are_waited_for_in_place_and_a_failure_stops_it(tmp_path, capsys):
    """The demo logs are simulated in the background (InBackground): started at once, waited for where they
    stand in the plan, so the step after one finds its file; one that fails is a StepFailed with its exit code
    and what it printed, and the steps after it do not run."""
    out = tmp_path / "demo.parquet"
    seen = []
    times = wb.run_plan(tmp_path / "unused.duckdb", [
        ("first", lambda: seen.append(("first", out.exists()))),
        ("simulate", wb.InBackground(("demo-data", "--turns", "40", "--seed", "3", "--out", str(out)))),
        ("after", lambda: seen.append(("after", out.exists())))])
    assert seen[1] == ("after", True) and list(times) == ["first", "simulate", "after"]
    assert pq.read_metadata(out).num_rows == 40
    assert "(running in the background since the start)" in capsys.readouterr().out
    with pytest.raises(StepFailed) as failed:
        wb.run_plan(tmp_path / "unused.duckdb", [
            ("simulate", wb.InBackground(("demo-data", "--turns", "0", "--out", str(tmp_path / "x.parquet")))),
            ("never", lambda: seen.append("ran on"))])
    assert failed.value.code == 2 and "ran on" not in seen
    assert "--turns" in capsys.readouterr().err  # what the command said


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


# ------------------------------------------------------------------ the mitigation families on the speech demo

SPEECH = SPEECH_DEMO_DATASET
AUTOMATIC = {"cohorting": "automatic cohorts", "group": "", "report_id": 0}


@pytest.fixture(scope="module")
def page_copy(workbench, tmp_path_factory):
    """A copy of the built database for the mitigation page tests, made before any page opened the build (the
    app keeps its connection open, and DuckDB refuses a second one with another configuration in the process)."""
    db, _ = workbench
    copy = tmp_path_factory.mktemp("pages") / "copy.duckdb"
    copy.write_bytes(db.read_bytes())
    return copy


def test_ewc_adaptation_targets_the_worst_group_and_measures_every_group_before_and_after(workbench):
    db, _ = workbench
    conn = store.connect(db, read_only=True)
    try:
        stored = store_evaluations.get_latest_analysis(conn, "ewc-adaptation", SPEECH)
        inputs = ewc_adaptation.read(conn, SPEECH, AUTOMATIC)
    finally:
        conn.close()
    s = stored["summary"]
    # the target is the report's worst shown cohort, and every shown cohort is measured
    assert s["target"] == s["report_summary"][0]["group"] == inputs["target"]
    assert s["report_summary"][0]["wer"] >= max(r["wer"] for r in s["report_summary"])
    t = s["table"]
    assert set(t["groups"]) <= {r["group"] for r in s["report_summary"]} and len(t["groups"]) >= 2
    assert set(t["systems"]) == set(ewc_adaptation.SYSTEMS) and "ewc vs none" in t["differences"]
    for fig in ("overall", "mean", "max", "variance"):
        m = t["systems"]["ewc"][fig]
        assert m["ci"][0] <= m["value"] + 1e-9 or fig == "max"  # percentile intervals of a max may sit above it
    # the adaptation read training-side dialogues only; the measure held-out ones only
    assert inputs["train"] and inputs["held"]
    assert not any(is_heldout(x["dialogue_id"]) for x in inputs["train"])
    assert all(is_heldout(x["dialogue_id"]) for x in inputs["held"])
    assert s["adapt_lists"] == sum(inputs["groups"].get(x["speaker_id"]) == s["target"] for x in inputs["train"])
    assert s["adaptation"]["ewc"]["ewc_lam"] in s["adaptation"]["ewc"]["config"]["ewc_lams"]
    for row in s["changed"]:
        assert is_heldout(row["dialogue_id"]) and len({row["before"], row["finetune"], row["ewc"]}) > 1
    assert "EWC adaptation to automatic cohorts" in stored["markdown"]


def test_verification_holds_out_whole_speakers_and_measures_three_scorers(workbench):
    db, _ = workbench
    conn = store.connect(db, read_only=True)
    try:
        s = store_evaluations.get_latest_analysis(conn, "verification", SPEECH)["summary"]
    finally:
        conn.close()
    assert s["train_speakers"] >= 4 and s["held_out_speakers"] >= 4
    assert s["train_turns"] + s["held_out_turns"] == s["turns"]
    for name in ("cosine", "plain", "arw"):
        m = s["scorers"][name]
        assert 0 <= m["overall"]["value"] <= 0.5 and m["overall"]["targets"] > 0
        assert set(m["groupings"]) == {"automatic cohorts"}
    # trained verifiers separate voices better than chance
    assert s["scorers"]["plain"]["overall"]["value"] < 0.4


def test_mitigation_group_choice_errors_are_clear(workbench):
    db, _ = workbench
    conn = store.connect(db, read_only=True)
    try:
        with pytest.raises(ValueError, match="has no shown group 'nope'; shown: "):
            report_groups(conn, SPEECH, {**AUTOMATIC, "group": "nope"})
        with pytest.raises(ValueError, match="no stored disparity report #999"):
            report_groups(conn, SPEECH, {**AUTOMATIC, "report_id": 999})
        with pytest.raises(ValueError, match="no stored disparity report for its current data"):
            report_groups(conn, SPEECH, {**AUTOMATIC, "normaliser": "raw"})  # stored: the default normaliser's
        with pytest.raises(ValueError, match="no rescorer has scored dataset 'sample'"):  # it scored the speech demo
            ewc_adaptation.base_checkpoint(conn, "sample")
    finally:
        conn.close()
    with pytest.raises(ValueError, match="cohorting: choose one of"):
        registry.get("ewc-adaptation").parse_options("mitigate", {"cohorting": "continents"})


def test_the_disparity_page_shows_both_mitigations_and_their_start_button(workbench, page_copy, monkeypatch):
    db, _ = workbench
    monkeypatch.setenv("TURNLENS_DB", str(page_copy))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(db.parent / "audio"))
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")  # drawn, not started: the button is there and disabled
    at = open_app_page("app_pages/disparity.py", state={"dataset": SPEECH}, timeout=300)
    assert "Mitigation" in [h.value for h in at.subheader]
    frames = [d.value for d in at.dataframe]
    across = next(f for f in frames if "system" in f.columns)
    assert list(across["system"])[:4] == ["first pass (logged)", "rescorer before", "plain fine-tuning",
                                         "fine-tuning with EWC"]
    groups = next(f for f in frames if "EWC − before" in f.columns and "group" in f.columns)
    assert groups["target"].sum() == 1
    eer = next(f for f in frames if "scorer" in f.columns)
    assert list(eer["scorer"]) == ["untrained cosine", "plain verifier", "ARW verifier"]
    assert {"Grouping", "Target group (worst first)", "Method"} <= {s.label for s in at.selectbox}
    start = next(b for b in at.button if b.label == "Start the mitigation job")
    assert start.disabled


def test_the_disparity_drill_down_plays_the_utterances_audio(workbench, page_copy, monkeypatch):
    """A region's worst utterance opens its dialogue with the turns' audio players (the speech demo has audio)."""
    db, _ = workbench
    monkeypatch.setenv("TURNLENS_DB", str(page_copy))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(db.parent / "audio"))
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_app_page("app_pages/disparity.py", state={"dataset": SPEECH}, timeout=300)
    assert not at.get("audio")
    at.session_state["dp_regions"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    worst = next(d.key for d in at.dataframe if str(d.key).startswith("dp_regions_worst_"))
    at.session_state[worst] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.get("audio"), "the opened dialogue plays its turns' audio"


# ------------------------------------------------------------------ every page on the build

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
    # a model the build trained (with hold out, the default) is one the pages can read back
    stale = [w.value for w in at.warning if "not trained on this dataset" in w.value]
    assert not stale, stale
    content = (len(at.metric) + len(at.dataframe) + len(at.get("plotly_chart")) + len(at.button)
               + len(at.get("arrow_data_frame")))
    assert content > 0, f"{page} shows nothing"
