"""The label-generation evaluation command: the committed report is what its numbers render to, a rerun
reproduces the numbers (at a reduced size here), and its baselines' rules and curve summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.labels import benchmark
from tests.helpers import ROOT, SLURP_DIR

REPORT = ROOT / "docs" / "results" / "label-generation.md"


def _script():
    return benchmark


def test_committed_report_is_rendered_from_its_committed_numbers():
    ev = _script()
    results = json.loads(REPORT.with_suffix(".json").read_text())
    assert ev.render(results) == REPORT.read_text()
    assert results["models"][0]["name"] == ev.MAIN
    assert {m["kind"] for m in results["models"]} == {"main", "ablation", "baseline"}
    # the validation choice is the library default (what `turnlens train labels` uses)
    from analysis.labels.model import LabelConfig

    assert results["config"]["slot_targets"] == LabelConfig().slot_targets
    assert results["config"]["slot_targets"] == max(results["selection"], key=lambda s: s["slot_f1"])["slot_targets"]


def test_goal_start_rule_and_curve_summary():
    ev = _script()
    base = {"response_status": "success", "barge_in": False, "user_feedback": None, "tts_status": "ok"}
    records = [
        {**base, "dialogue_id": "a", "turn_index": 0, "timestamp": "2026-01-01T10:00:00Z",
         "response_status": "unhandled"},
        {**base, "dialogue_id": "a", "turn_index": 1, "timestamp": "2026-01-01T10:00:10Z"},  # retry: continues
        {**base, "dialogue_id": "a", "turn_index": 2, "timestamp": "2026-01-01T10:00:20Z"},  # after a success
        {**base, "dialogue_id": "b", "turn_index": 0, "timestamp": "2026-01-01T11:00:00Z", "barge_in": True},
        {**base, "dialogue_id": "b", "turn_index": 1, "timestamp": "2026-01-01T11:01:00Z"},  # 60 s later: new
    ]
    assert ev.rule_goal_start(records) == {("a", 0): True, ("a", 1): False, ("a", 2): True, ("b", 0): True,
                                           ("b", 1): True}
    # 5 labels by confidence 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (right), 0.5 (wrong)
    s = ev.curve_summary(np.array([True, True, False, True, False]), np.array([0.9, 0.8, 0.7, 0.6, 0.5]))
    assert s["precision_at_coverage"]["60%"] == pytest.approx(2 / 3)  # top 3
    assert s["precision_at_coverage"]["100%"] == pytest.approx(3 / 5)
    assert s["coverage_at_precision"]["95%"] == pytest.approx(2 / 5)


@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason=f"SLURP files not found in {SLURP_DIR}")
def test_evaluation_command_reproduces_its_reported_metrics(tmp_path):
    ev = _script()
    out = tmp_path / "lg.md"
    small = ["--train-turns", "400", "--eval-turns", "200", "--epochs", "1", "--pretrain-epochs", "1",
             "--select-fit-turns", "300", "--select-val-turns", "150",
             "--n-boot", "30", "--threads", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
             "--save-model", str(tmp_path / "ckpt")]
    assert ev.main(small) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == ev.render(results)
    assert [s["slot_targets"] for s in results["selection"]] == ["all", "located"]
    best = max(results["selection"], key=lambda s: s["slot_f1"])["slot_targets"]
    assert results["config"]["slot_targets"] == best  # chosen on validation, not on the evaluation log
    names = [m["name"] for m in results["models"]]
    assert names == [ev.MAIN, "ablation: no pretraining", "ablation: no dialogue context",
                     "baseline: logged NLU output and rules"]
    for m in results["models"]:
        assert set(m["metrics"]) == {"intent", "slots", "goal_start", "goal_success", "defect"}
    evaluation = json.loads((tmp_path / "ckpt" / "evaluation.json").read_text())
    assert evaluation["metrics"] == results["models"][0]["metrics"]
    assert ev.main(["--check", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    tampered = json.loads(json.dumps(results))
    tampered["models"][0]["metrics"]["intent"]["accuracy"]["value"] += 0.01
    assert len(ev.compare(tampered, results)) == 1
