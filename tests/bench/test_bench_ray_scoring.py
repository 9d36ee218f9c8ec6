"""Scoring on Ray (app/engines/ray_scoring.py) against the local path, and its scaling from 1 to 2 workers, on the
same input: TURNLENS_BENCH_RAY_TURNS simulated turns (default 50,000) as 8 hive-partitioned Parquet parts, scored
for failure points (the family with the most turns to score; whole dialogues per batch, so Ray also regroups the
rows by dialogue).

- local: `turnlens score failure-points --dataset` as its job child runs it (read the stored turns, score, store
  the candidates), after ingesting the parts (timed apart: the Ray path validates the log itself);
- ray-1 / ray-2: `turnlens score failure-points --engine ray --workers N`, each starting its own local cluster of
  N CPUs (the start timed apart), writing candidate Parquet parts.

Scaling efficiency = time with 1 worker / (2 x time with 2 workers): 1.0 is perfect, 0.5 is no gain. The machine
has 2 cores, shared with whatever else runs: the figures are this run's, reported as measured.

A local Ray cluster listens on every interface, so the benchmark runs itself again inside a private network
namespace with loopback only (as tests/test_ray_private_network.py does for the tests), and skips, saying why,
where one cannot be made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.candidates import read_candidates
from analysis.failure_points.model import FailurePointConfig
from analysis.parquet_parts import list_parts, read_parts
from analysis.simulate import load_pool, simulate_turns
from app import store
from app.engines.ray_scoring import score_on_ray
from app.ingest import ingest_files
from app.jobs import failure_points as fp_jobs
from tests.bench.harness import ROOT, report
from tests.test_ray_private_network import PRIVATE, _can_unshare

TURNS = int(os.environ.get("TURNLENS_BENCH_RAY_TURNS", "50000"))
PARTS = 8


def _parts(root, turns: int):
    records = sorted(simulate_turns(load_pool(), n_turns=turns, seed=7),
                     key=lambda r: (r["timestamp"], r["dialogue_id"], r["turn_index"]))
    step = -(-len(records) // PARTS)
    for i in range(PARTS):
        folder = root / f"day=2026-12-{i + 1:02d}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(records[i * step:(i + 1) * step]), folder / "part-00000.parquet")
    return root


def test_ray_scoring_scaling_and_the_local_path(tmp_path):
    if os.environ.get(PRIVATE) == "1":
        _measure(tmp_path)
        return
    if not _can_unshare():
        pytest.skip("cannot make a private network namespace here (unshare --net needs root and iproute2's ip): "
                    "a local Ray cluster would listen on every interface, so the benchmark does not run")
    script = ('ip link set lo up && exec "$0" -m pytest -q -s -p no:cacheprovider '
              'tests/bench/test_bench_ray_scoring.py')
    run = subprocess.run(["unshare", "--net", "sh", "-c", script, sys.executable], cwd=ROOT,
                         env={**os.environ, PRIVATE: "1"}, capture_output=True, text=True, timeout=3600)
    out = run.stdout
    start = out.find("\n== ray_scoring")  # the child's report (harness.report), which ends at a blank line
    if start >= 0:
        print(out[start:out.find("\n\n", start + 1)])
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]


def _measure(tmp_path) -> None:
    parts = _parts(tmp_path / "parts", TURNS)
    conn = store.connect(tmp_path / "bench.duckdb")
    try:
        train = tmp_path / "train.jsonl"
        train.write_text("".join(json.dumps(r) + "\n" for r in simulate_turns(load_pool(), n_turns=3000, seed=5,
                                                                                id_prefix="T")))
        ingest_files(conn, [train], dataset="train")
        fp_jobs.train(conn, "train", tmp_path / "model", config=FailurePointConfig(epochs=2))
        start = time.perf_counter()
        ingest_files(conn, [p.path for p in list_parts(parts)], dataset="big")
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        local = fp_jobs.score(conn, "big", tmp_path / "model")
        local_s = time.perf_counter() - start
    finally:
        conn.close()
    assert local.rows_added == TURNS

    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}"
        start = time.perf_counter()
        runs[workers] = score_on_ray("failure-points", source=str(parts), output=str(out),
                                     checkpoint=tmp_path / "model", workers=workers)
        runs[workers] = (runs[workers], time.perf_counter() - start)
        assert runs[workers][0].candidates == TURNS
    scored = read_parts(list_parts(tmp_path / "out-2"), lambda path, name: read_candidates(path, name=name))
    assert scored.num_rows == TURNS

    one, two = runs[1][0], runs[2][0]
    report("ray_scoring", {
        "turns": TURNS, "parts": PARTS,
        "local_ingest_s": round(ingest_s, 2), "local_score_s": round(local_s, 2),
        "local_turns_per_s": round(TURNS / local_s),
        "ray1_startup_s": one.startup_seconds, "ray1_score_s": one.seconds, "ray1_total_s": round(runs[1][1], 2),
        "ray1_turns_per_s": round(TURNS / one.seconds), "ray1_actors_used": one.actors_used,
        "ray2_startup_s": two.startup_seconds, "ray2_score_s": two.seconds, "ray2_total_s": round(runs[2][1], 2),
        "ray2_turns_per_s": round(TURNS / two.seconds), "ray2_actors_used": two.actors_used,
        "ray_batches": two.batches,
        "scaling_efficiency_1_to_2": round(one.seconds / (2 * two.seconds), 3),
        "ray2_vs_local_score": round(local_s / two.seconds, 3),
        "ray2_vs_local_ingest_plus_score": round((ingest_s + local_s) / two.seconds, 3),
    })
