"""The rewrite evaluation command: the committed report is what its numbers render to, and a rerun
reproduces the numbers (at a reduced size here)."""

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


@pytest.mark.slow
@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason=f"SLURP files not found in {SLURP_DIR}")
def test_evaluation_command_reproduces_its_reported_metrics(tmp_path):
    ev = benchmark
    out = tmp_path / "rw.md"
    small = ["--turns", "20000", "--n-boot", "20", "--threads", "1", "--out", str(out),
             "--cache-dir", str(tmp_path / "cache")]
    assert ev.main(small) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == ev.render(results)
    assert results["evaluations"]["time split"]["rewrites"] > 0
    assert ev.main(["--check", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    tampered = json.loads(json.dumps(results))
    tampered["evaluations"]["time split"]["reports"]["chain"]["overall"]["wins"] += 1
    assert len(ev.compare(tampered, results)) == 1
