"""The rewrite evaluation command: the committed report is what its numbers render to (the figures before
the #16 simulator and win-rule change side by side with the new ones), and a rerun reproduces the numbers (at
a reduced size here)."""

from __future__ import annotations

import json

import pytest

from analysis.rewrites import benchmark
from tests.helpers import ROOT, SLURP_DIR

REPORT = ROOT / "docs" / "results" / "rewrites.md"


def test_committed_report_is_rendered_from_its_committed_numbers():
    ev = benchmark
    results = json.loads(REPORT.with_suffix(".json").read_text())
    assert ev.render(results) == REPORT.read_text()
    assert set(results["evaluations"]) == {"time split", "evaluation split"}
    for e in results["evaluations"].values():
        assert set(e["reports"]) == {"chain", "chain_retiring_oracle", "online", "combined"} and e["rewrites"] > 0
        assert e["reports"]["chain"]["overall"]["n_boot"] == 1000
        # the rule's own count: a win needs a rephrase on top of the right reading
        assert all(r["overall"]["label_wins"] >= r["overall"]["wins"] for r in e["reports"].values())
        assert e["catch_all"]["from"] == "gold sentences" and "general_quirky" in e["catch_all"]["intents"]
    # before and after, side by side: the earlier run's figures as it reported them
    assert set(results["before"]["figures"]) == set(results["evaluations"])
    assert "## Before and after" in REPORT.read_text()


def test_before_figures_are_carried_as_reported(tmp_path):
    results = json.loads(REPORT.with_suffix(".json").read_text())
    path = tmp_path / "before.json"
    path.write_text(json.dumps(results))
    figures = benchmark.before_figures(benchmark.read_before(str(path)))
    for name, ev in results["evaluations"].items():
        assert figures[name]["rewrites"] == ev["rewrites"]
        for rewriter, rep in ev["reports"].items():
            kept = figures[name]["reports"][rewriter]
            assert kept["wins"] == rep["overall"]["wins"] and kept["losses"] == rep["overall"]["losses"]
            assert kept["win_loss_ratio_ci"] == rep["overall"]["win_loss_ratio_ci"]
    with pytest.raises(ValueError, match="neither a file nor a revision"):
        benchmark.read_before(str(tmp_path / "no-such-run"))


@pytest.mark.slow
@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason=f"SLURP files not found in {SLURP_DIR}")
def test_evaluation_command_reproduces_its_reported_metrics(tmp_path):
    ev = benchmark
    out = tmp_path / "rw.md"
    small = ["--turns", "20000", "--n-boot", "20", "--threads", "1", "--out", str(out),
             "--cache-dir", str(tmp_path / "cache"), "--before", str(REPORT.with_suffix(".json")),
             "--before-label", "the committed report"]
    assert ev.main(small) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == ev.render(results)
    assert results["before"]["label"] == "the committed report" and "before" not in results["args"]
    assert results["evaluations"]["time split"]["rewrites"] > 0
    assert ev.main(["--check", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    tampered = json.loads(json.dumps(results))
    tampered["evaluations"]["time split"]["reports"]["chain"]["overall"]["wins"] += 1
    assert len(ev.compare(tampered, results)) == 1
