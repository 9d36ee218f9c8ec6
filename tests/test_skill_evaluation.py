"""The skill-routing ablation command: the committed report is what its numbers render to, and a rerun
reproduces the numbers (at a reduced size here)."""

from __future__ import annotations

import json

import pytest

from analysis.skills import benchmark
from tests.helpers import ROOT, SLURP_DIR

REPORT = ROOT / "docs" / "results" / "skill-routing.md"


def test_committed_report_is_rendered_from_its_committed_numbers():
    ev = benchmark
    results = json.loads(REPORT.with_suffix(".json").read_text())
    assert ev.render(results) == REPORT.read_text()
    assert sorted({r["variant"] for r in results["rows"]}) == sorted(ev.VARIANTS)
    assert all(sum(r["variant"] == v for r in results["rows"]) >= 3 for v in ev.VARIANTS)  # at least 3 seeds


@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason=f"SLURP files not found in {SLURP_DIR}")
def test_evaluation_command_reproduces_its_reported_metrics(tmp_path):
    ev = benchmark
    out = tmp_path / "sk.md"
    small = ["--train-turns", "600", "--eval-turns", "200", "--seeds", "2", "--epochs", "2", "--threads", "1",
             "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert ev.main(small) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == ev.render(results)
    assert len(results["rows"]) == 2 * len(ev.VARIANTS)
    assert ev.main(["--check", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    tampered = json.loads(json.dumps(results))
    tampered["rows"][0]["f1"] += 0.01
    assert len(ev.compare(tampered, results)) == 1
