"""The two mitigation families end to end (issue 20): on the speech demo's scored n-best lists and audio, with the
rescorer of tests/rescoring_fixtures and a stored disparity report, `turnlens mitigate ewc-adaptation` adapts the
rescorer to the worst-served automatic cohort and measures every cohort before and after on held-out dialogues,
`turnlens mitigate verification` trains plain and ARW verifiers on some speakers and measures the others; both are
stored as analyses and drawn by the Disparity page's Mitigation section. Slow: both run real training."""

from __future__ import annotations

import pytest

from analysis.holdout import is_heldout
from app import store
from app.jobs import ewc_adaptation, registry
from app.jobs.groups import report_groups
from app.store import evaluations as store_evaluations
from app.workbench import copy_speech_demo_audio
from tests.helpers import open_app_page
from tests.rescoring_fixtures import rescoring_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mitigated(tmp_path_factory):
    """A copy of the rescoring run's database with the speech demo's audio in place, its disparity report and both
    mitigation analyses, made through the CLI."""
    from app.cli import main

    run = rescoring_run(tmp_path_factory)
    folder = tmp_path_factory.mktemp("mitigation")
    db = folder / "m.duckdb"
    db.write_bytes(run.db.read_bytes())
    copy_speech_demo_audio(run.folder / "audio")  # where the fixture ingested it from
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TURNLENS_DB", str(db))
        mp.setenv("TURNLENS_AUDIO_ROOT", str(run.folder / "audio"))
        assert main(["analyse", "disparity", "--dataset", "speech", "--n-boot", "100", "--quiet"]) == 0
        assert main(["mitigate", "ewc-adaptation", "--dataset", "speech", "--epochs", "3", "--n-boot", "100",
                     "--quiet"]) == 0
        assert main(["mitigate", "verification", "--dataset", "speech", "--n-boot", "100", "--quiet"]) == 0
    return db, run.folder / "audio"


def test_ewc_adaptation_targets_the_worst_group_and_measures_every_group_before_and_after(mitigated):
    db, _ = mitigated
    conn = store.connect(db, read_only=True)
    try:
        stored = store_evaluations.get_latest_analysis(conn, "ewc-adaptation", "speech")
        inputs = ewc_adaptation.read(conn, "speech", {"cohorting": "automatic cohorts", "group": "", "report_id": 0})
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


def test_verification_holds_out_whole_speakers_and_measures_three_scorers(mitigated):
    db, _ = mitigated
    conn = store.connect(db, read_only=True)
    try:
        s = store_evaluations.get_latest_analysis(conn, "verification", "speech")["summary"]
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


def test_group_choice_errors_are_clear(mitigated, tmp_path):
    db, _ = mitigated
    conn = store.connect(db, read_only=True)
    try:
        with pytest.raises(ValueError, match="has no shown group 'nope'; shown: "):
            report_groups(conn, "speech", {"cohorting": "automatic cohorts", "group": "nope", "report_id": 0})
        with pytest.raises(ValueError, match="no stored disparity report #999"):
            report_groups(conn, "speech", {"cohorting": "automatic cohorts", "group": "", "report_id": 999})
        with pytest.raises(ValueError, match="no stored disparity report for its current data"):
            report_groups(conn, "t", {"cohorting": "automatic cohorts", "group": "", "report_id": 0})
        with pytest.raises(ValueError, match="no rescorer has scored dataset 't'"):
            ewc_adaptation.base_checkpoint(conn, "t")
    finally:
        conn.close()
    family = registry.get("ewc-adaptation")
    with pytest.raises(ValueError, match="cohorting: choose one of"):
        family.parse_options("mitigate", {"cohorting": "continents"})


def test_the_disparity_page_shows_both_mitigations_and_starts_one(mitigated, tmp_path, monkeypatch):
    db, audio = mitigated
    copy = tmp_path / "page.duckdb"
    copy.write_bytes(db.read_bytes())
    monkeypatch.setenv("TURNLENS_DB", str(copy))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(audio))
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")  # drawn, not started: the button is there and disabled
    at = open_app_page("app_pages/disparity.py", state={"dataset": "speech"}, timeout=300)
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


def test_the_disparity_drill_down_plays_the_utterances_audio(mitigated, tmp_path, monkeypatch):
    """A region's worst utterance opens its dialogue with the turns' audio players (the speech demo has audio)."""
    db, audio = mitigated
    monkeypatch.setenv("TURNLENS_DB", str(db))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(audio))
    monkeypatch.setenv("TURNLENS_READ_ONLY", "1")
    at = open_app_page("app_pages/disparity.py", state={"dataset": "speech"}, timeout=300)
    assert not at.get("audio")
    at.session_state["dp_regions"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    worst = next(d.key for d in at.dataframe if str(d.key).startswith("dp_regions_worst_"))
    at.session_state[worst] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.get("audio"), "the opened dialogue plays its turns' audio"
