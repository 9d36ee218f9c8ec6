"""The disparity evaluation command: the committed report is what its numbers render to, and a rerun reproduces
the numbers (at a reduced size here: a small simulated log and few bootstrap replicates)."""

from __future__ import annotations

import json

from analysis.disparity import benchmark
from analysis.disparity import report as dr
from app.ingest import benchmark_database
from tests.helpers import ROOT

REPORT = ROOT / "docs" / "results" / "disparity.md"


def test_committed_report_is_rendered_from_its_committed_numbers():
    ev = benchmark
    results = json.loads(REPORT.with_suffix(".json").read_text())
    assert ev.render(results) == REPORT.read_text()
    # made with the default command and the page's default settings
    defaults = vars(ev.parse_args([]))
    assert {k: defaults[k] for k in results["args"]} == results["args"]
    assert results["options"] == json.loads(json.dumps(dr.plain(vars(dr.Options()))))
    assert set(results["datasets"]) == {"sample", "simulated"}
    assert results["datasets"]["sample"]["data"]["turns"] == 3000
    assert results["datasets"]["sample"]["overall"]["speakers"] == 191
    for d in results["datasets"].values():
        assert {c["cohorting"] for c in d["comparison"]} == set(dr.COHORTINGS)


def test_evaluation_command_reproduces_its_reported_metrics(tmp_path, capsys):
    ev = benchmark
    out = tmp_path / "dp.md"
    # Only bundled files are read; the shared command line insists on a SLURP folder, which is not opened.
    common = ["--out", str(out), "--slurp-dir", str(tmp_path)]
    assert ev.main(["--turns", "20000", "--n-boot", "50", "--threads", "1", *common], database=benchmark_database) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert out.read_text() == ev.render(results)
    sim = results["datasets"]["simulated"]
    assert sim["data"]["turns"] == 20000 and results["options"]["n_boot"] == 50
    assert sim["overall"]["speakers"] > 1000 and len(sim["regions"]) > 1
    # the planted structure is found even at this size: the voice cohorts, and the worse-served regions flagged
    rec = sim["recovery"]
    assert rec["cohorts"]["ari"] > 0.9 and rec["cohorts"]["worst_precision"] > 0.9
    assert rec["regions"]["precision"] > 3 * rec["regions"]["base_rate"]
    # a rerun from the JSON's own arguments reproduces every figure
    assert ev.main(["--check", *common], database=benchmark_database) == 0
    # ... timings are not figures ...
    retimed = json.loads(json.dumps(results))
    retimed["runtime_seconds"] += 1
    retimed["timings"]["simulated"]["analyse"] += 1
    assert ev.compare(retimed, results) == []
    # ... and --check notices a figure that is not what a rerun gives
    tampered = json.loads(json.dumps(results))
    i = next(i for i, c in enumerate(sim["comparison"]) if c["cohorting"] == dr.AUTOMATIC)
    tampered["datasets"]["simulated"]["comparison"][i]["wer_gap"] += 0.01
    assert len(ev.compare(tampered, results)) == 1
    assert ev.compare(tampered, results, tolerance=0.02) == []
    out.with_suffix(".json").write_text(json.dumps(tampered))
    capsys.readouterr()
    assert ev.main(["--check", *common], database=benchmark_database) == 1
    assert f"datasets/simulated/comparison/{i}/wer_gap: reported" in capsys.readouterr().out
