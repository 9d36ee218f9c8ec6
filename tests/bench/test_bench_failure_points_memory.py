"""Failure-point scoring of the bench log (TURNLENS_BENCH_TURNS turns) with an empty embedding cache: rate and
peak memory, this code against the code before issue 22 item 3 (streamed scoring, the Parquet-part cache),
measured in the same run on the same log, checkpoint and machine.

Each step runs in its own process (tests/bench/fp_score_child.py), so a peak is that step's alone: ingest into
a fresh database, then score it (torch, the text encoder and the model loaded first; the peak includes them).
The "before" code is `git archive` of TURNLENS_BENCH_FP_BASELINE (default: the commit before the change; set
it empty to measure this code only). Targets (issue 22, on 1M turns): peak under 2 GB; at least 10,000 turns/s
on 2 cores with a cold cache."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from analysis.failure_points.model import FailurePointClassifier, FailurePointConfig, build_examples, gold_labels
from analysis.simulate import load_pool, simulate_turns
from analysis.text_encoder import EmbeddingCache, TextEncoder
from tests.bench.harness import ROOT, TURNS, report

pytestmark = pytest.mark.bench

BASELINE = os.environ.get("TURNLENS_BENCH_FP_BASELINE", "bd443ee24f0e58b03266503c0deeeb0087d75fd5")
CHILD = ROOT / "tests" / "bench" / "fp_score_child.py"


def checkout(ref: str, into) -> None:
    """The packages the child imports (analysis/, app/) as they were at ref."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "analysis", "app"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def child(code_root, *args) -> dict | None:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    done = subprocess.run([sys.executable, str(CHILD), *map(str, args)], cwd=code_root, env=env, check=True,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A failure-point model trained with text and two encoder layers: the slowest configuration, the one that
    embeds every turn's texts (and the one every run of this bench since issue 22 measured)."""
    return _checkpoint(tmp_path_factory, FailurePointConfig(epochs=2, use_text=True, layers=2))


def _checkpoint(tmp_path_factory, config: FailurePointConfig):
    """A checkpoint of config trained for 2 epochs on 3,000 simulated turns (the rate does not depend on how
    well it learned)."""
    folder = tmp_path_factory.mktemp("fp-checkpoint")
    encoder = TextEncoder.load(threads=2)
    train = list(simulate_turns(load_pool(), n_turns=3000, seed=5, id_prefix="T"))
    examples = build_examples(train)
    cache = EmbeddingCache(folder / "cache-train")
    FailurePointClassifier(config).fit(
        examples, gold_labels(train, examples), embed=lambda t: cache.encode(encoder, t)
    ).save_pretrained(folder / "ckpt")
    return folder / "ckpt"


def runs(tmp_path, baseline: str, step: str, big_log, checkpoint):
    """(name, the step's JSON line) for the code at baseline ("before"; skipped when baseline is empty) and this
    code ("now"), each on a fresh database holding the log, with an empty cache of its own."""
    versions = {"now": ROOT}
    if baseline:
        checkout(baseline, tmp_path / "before")
        versions = {"before": tmp_path / "before", **versions}
    for name, code in versions.items():
        db = tmp_path / f"db-{name}" / "bench.duckdb"
        db.parent.mkdir()
        child(code, "ingest", "--db", db, "--log", big_log)
        run = child(code, step, "--db", db, "--ckpt", checkpoint, "--cache", tmp_path / f"cache-{name}")
        assert run["turns"] == TURNS
        yield name, run


def test_scoring_memory_and_rate_cold_cache(tmp_path, big_log, checkpoint):
    rows: dict[str, object] = {"baseline_ref": BASELINE or "none"}
    for name, run in runs(tmp_path, BASELINE, "score", big_log, checkpoint):
        rows.update({f"{name}_seconds": run["seconds"], f"{name}_turns_per_s": run["turns"] / run["seconds"],
                     f"{name}_peak_rss_gb": run["peak_rss_mb"] / 1e3,
                     f"{name}_rss_before_scoring_gb": run["rss_before_mb"] / 1e3,
                     **{f"{name}_share_{k}": v / run["seconds"] for k, v in run["timings"].items()}})
    rows["target_peak_ratio (2 GB / measured)"] = 2.0 / rows["now_peak_rss_gb"]
    rows["target_rate_ratio (measured / 10,000 turns/s)"] = rows["now_turns_per_s"] / 10_000
    report("failure_points_memory", rows)


def test_default_configuration_scoring_rate_cold_cache(tmp_path_factory, tmp_path, big_log):
    """The family's chosen configuration (FailurePointConfig(): no text, one encoder layer; chosen on dev-split
    validation, docs/results/failure-points.md) against the previous one (no text, two layers), both scored by
    this code in the same run, each into a fresh database with an empty cache."""
    default = FailurePointConfig(epochs=2)
    assert not default.use_text and default.layers == 1, "the bench measures the defaults the report chose"
    models = {"two_layers": FailurePointConfig(epochs=2, layers=2), "default": default}
    rows: dict[str, object] = {}
    for name, config in models.items():
        ckpt = _checkpoint(tmp_path_factory, config)
        db = tmp_path / f"db-{name}" / "bench.duckdb"
        db.parent.mkdir()
        child(ROOT, "ingest", "--db", db, "--log", big_log)
        run = child(ROOT, "score", "--db", db, "--ckpt", ckpt, "--cache", tmp_path / f"cache-{name}")
        assert run["turns"] == TURNS
        rows.update({f"{name}_seconds": run["seconds"], f"{name}_turns_per_s": run["turns"] / run["seconds"],
                     f"{name}_peak_rss_gb": run["peak_rss_mb"] / 1e3,
                     **{f"{name}_share_{k}": v / run["seconds"] for k, v in run["timings"].items()}})
    rows["default / two_layers time ratio"] = rows["default_seconds"] / rows["two_layers_seconds"]
    rows["target_rate_ratio (default / 10,000 turns/s)"] = rows["default_turns_per_s"] / 10_000
    rows["target_peak_ratio (2 GB / default peak)"] = 2.0 / rows["default_peak_rss_gb"]
    report("failure_points_default_rate", rows)


# The score job's code before it streamed (issue 22 item 3): the server read every turn, the child scored them as
# one batch and sent the whole candidate table back.
JOB_BASELINE = os.environ.get("TURNLENS_BENCH_JOB_BASELINE", "c7c655e612e29bbf16700a62658ad141201aebb4")


def test_score_job_memory_and_rate_cold_cache(tmp_path, big_log, checkpoint):
    """The same scoring as a score job of the job runner (the Models page, `turnlens score failure-points
    --dataset`): the server process's peak (it reads the turns and stores the candidates) and the job child's
    (it scores), before and after the job streamed. TURNLENS_BENCH_JOB_BASELINE empty: this code only."""
    rows: dict[str, object] = {"baseline_ref": JOB_BASELINE or "none"}
    for name, run in runs(tmp_path, JOB_BASELINE, "job", big_log, checkpoint):
        rows.update({f"{name}_seconds": run["seconds"], f"{name}_turns_per_s": run["turns"] / run["seconds"],
                     f"{name}_server_peak_rss_gb": run["peak_rss_mb"] / 1e3,
                     f"{name}_child_peak_rss_gb": run["child_peak_rss_mb"] / 1e3})
    rows["target_peak_ratio (2 GB / larger peak now)"] = 2.0 / max(rows["now_server_peak_rss_gb"],
                                                                   rows["now_child_peak_rss_gb"])
    report("failure_points_job_memory", rows)
