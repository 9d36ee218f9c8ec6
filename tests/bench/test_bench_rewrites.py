"""Rewrite mining on 2 cores: rephrase chains -> absorbing Markov chain -> query rewrites, end to end from an
in-memory Arrow table of generated turns, phase by phase, with the solver's share of the time and the peak
memory of the process while mining.

Target (issue): mining rewrites from 1M generated turns in under 30 s on 2 cores, memory under 4 GB.

Run with the others by `make bench`, or alone:

    TURNLENS_BENCH_TURNS=1000000 .venv/bin/python -m pytest -q -s tests/bench/test_bench_rewrites.py

What is timed. Not mining, reported separately: generating the TURNLENS_BENCH_TURNS turns (default 1,000,000;
`simulate_turns` with seed 1, the shared bench log's seed, -> `records_to_table`), and fitting the contextual
`RephraseDetector` on a separate labelled log of FIT_TURNS turns (another seed; labels from gold_goal_start
via `gold_rephrase`). Mining, timed as one and per phase: `Turns.from_table`, `session_ids`, `features`,
`RephraseDetector.detect` and `rewrites.mine`, whose own timings split it into transitions, solve (sparse LU
of I - Q, the absorption solve and the transposed solves for reachability), select and evidence. The
detector's fit already imported SciPy, scikit-learn and rapidfuzz, so mining pays no import. BLAS/OpenMP
pools are capped at 2 threads while mining (SuperLU itself is single-threaded).

Memory. Just before mining the process's peak-RSS high-water mark (VmHWM, and with it ru_maxrss) is reset
through /proc/self/clear_refs (Linux), so the peak read afterwards is the peak *during mining*: the turn
table already in memory counts, and so it is reported both absolute (the figure for the 4 GB target) and as
the growth over the RSS just before mining. Where the reset is unavailable, the peak is ru_maxrss, a
lifetime high-water mark that also covers generation: an upper bound, flagged in the table. (tracemalloc
would slow the measured code down several times, so it is not used.)

Figures are reported as the target divided by the measured value (above 1 = target met with that margin).
The test asserts only that the result is sane, never a time.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from analysis.rewrites import mining as rewrites
from analysis.rewrites import rephrase
from analysis.simulate import load_pool, records_to_table, simulate_turns
from tests.bench.harness import TURNS, peak_rss_mb, report, reset_peak_rss, rss_mb, ru_maxrss_mb

pytestmark = pytest.mark.bench

SEED = 1  # the shared bench log's seed (conftest.big_log): the same turns, here straight into Arrow
FIT_TURNS = 50_000  # the labelled log the detector is fitted on
FIT_SEED = 11
TARGET_SECONDS = 30.0
TARGET_MB = 4_000.0  # 4 GB, in MB of 10^6 bytes
THREADS = 2
B_TOLERANCE = 1e-9  # the LU solve may overshoot [0, 1] by rounding

# ----------------------------------------------------------------------------------------- memory

# ----------------------------------------------------------------------------------------- phases


def fit_detector(n_turns: int, seed: int) -> tuple[rephrase.RephraseDetector, int]:
    """The contextual detector fitted on a fresh labelled log; also the number of labelled turns."""
    table = records_to_table(simulate_turns(load_pool(), n_turns=n_turns, seed=seed, id_prefix="fit",
                                            rephrase="meaning"))
    turns = rephrase.Turns.from_table(table)
    sessions = rephrase.session_ids(turns)
    x, pred = rephrase.features(turns, sessions)
    goal_start = table.column("gold_goal_start").to_numpy(zero_copy_only=False)[turns.order]
    gold = rephrase.gold_rephrase(turns, sessions, goal_start)
    return rephrase.RephraseDetector.fit(x[pred], gold[pred]), int(pred.sum())


def mine_timed(table, detector: rephrase.RephraseDetector) -> tuple[dict, dict[str, float]]:
    """Mining end to end; its intermediate results and the seconds of each phase."""
    seconds: dict[str, float] = {}

    def phase(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        seconds[name] = time.perf_counter() - start
        return out

    turns = phase("from_table", rephrase.Turns.from_table, table)
    sessions = phase("session_ids", rephrase.session_ids, turns)
    x, pred = phase("features", rephrase.features, turns, sessions)
    is_rephrase = phase("detect", detector.detect, x, pred)
    result = phase("mine", rewrites.mine, turns, is_rephrase)
    return {"turns": turns, "sessions": sessions, "pred": pred, "is_rephrase": is_rephrase,
            "result": result}, seconds


def check(mined: dict, n_turns: int, config: rewrites.MiningConfig) -> None:
    """Correctness sanity of a mining run (not its quality: that is the evaluation's job)."""
    turns, pred, is_rephrase = mined["turns"], mined["pred"], mined["is_rephrase"]
    result: rewrites.MiningResult = mined["result"]
    assert len(turns) == n_turns
    assert is_rephrase.any(), "no rephrase detected"
    assert not (is_rephrase & ~pred).any(), "a rephrase without a predecessor in its session"
    assert int(result.support.sum()) == n_turns
    assert result.n_chains == n_turns - int(is_rephrase.sum())  # every chain ends exactly once
    assert set(result.timings) == {"transitions", "solve", "reach", "select", "evidence"}
    present = result.support > 0
    b = result.success[present]
    assert np.isfinite(b).all()
    assert b.min() >= -B_TOLERANCE and b.max() <= 1 + B_TOLERANCE, f"B outside [0, 1]: {b.min()}, {b.max()}"
    assert result.rewrites, "no rewrite found"
    for r in result.rewrites:
        assert r.source != r.target and r.source and r.target
        assert r.source_support >= config.min_support and r.target_support >= config.min_target_support
        assert r.gain >= config.min_gain
        assert -B_TOLERANCE <= r.source_success <= r.target_success <= 1 + B_TOLERANCE
        assert r.reach >= config.min_reach


def versus(target: float, measured: float, unit: str) -> str:
    ratio = target / measured
    return (f"{ratio:.1f}x under the {target:g} {unit} target" if ratio >= 1
            else f"{1 / ratio:.1f}x over the {target:g} {unit} target")


# ------------------------------------------------------------------------------------------ bench


def test_rewrite_mining_time_and_memory():
    start = time.perf_counter()
    table = records_to_table(simulate_turns(load_pool(), n_turns=TURNS, seed=SEED, rephrase="meaning"))
    generate_s = time.perf_counter() - start

    start = time.perf_counter()
    detector, fit_rows = fit_detector(FIT_TURNS, FIT_SEED)
    fit_s = time.perf_counter() - start

    gc.collect()  # leave generation's and fitting's garbage out of the mining figures
    ru_before_mb = ru_maxrss_mb()  # lifetime high-water mark so far (generation, fitting)
    reset = reset_peak_rss()
    rss_before = rss_mb()
    with threadpool_limits(limits=THREADS):
        start = time.perf_counter()
        mined, seconds = mine_timed(table, detector)
        total = time.perf_counter() - start
    peak = peak_rss_mb() if reset else ru_maxrss_mb()
    ru_after_mb = ru_maxrss_mb()

    config = rewrites.MiningConfig()
    check(mined, TURNS, config)
    result: rewrites.MiningResult = mined["result"]
    turns, sessions, is_rephrase = mined["turns"], mined["sessions"], mined["is_rephrase"]
    # The detector against the mined log's own gold labels: a sanity figure, untimed.
    gold = rephrase.gold_rephrase(turns, sessions,
                                  table.column("gold_goal_start").to_numpy(zero_copy_only=False)[turns.order])
    hits = int((is_rephrase & gold).sum())
    precision, recall = hits / max(int(is_rephrase.sum()), 1), hits / max(int(gold.sum()), 1)
    assert precision > 0.5 and recall > 0.5, f"detector precision {precision:.3f}, recall {recall:.3f}"

    mine_s = seconds["mine"]
    mine_parts = {f"mine.{k}": v for k, v in result.timings.items()}
    mine_parts["mine.other"] = max(mine_s - sum(result.timings.values()), 0.0)
    phases = {k: v for k, v in seconds.items() if k != "mine"} | {"mine": mine_s} | mine_parts
    solve_share = result.timings["solve"] / total
    rows = {
        "turns": len(turns), "table_mb": table.nbytes / 1e6,
        "generate_seconds (not mining)": generate_s,
        "detector_fit_turns": FIT_TURNS, "detector_fit_rows": fit_rows,
        "detector_fit_seconds incl. its log (not mining)": fit_s,
        "detector_precision_on_mined_log": precision, "detector_recall_on_mined_log": recall,
        "sessions": int(sessions[-1]) + 1 if len(sessions) else 0,
        "rephrases": int(is_rephrase.sum()), "chains": result.n_chains,
        "states": int((result.support > 0).sum()), "rewrites": len(result.rewrites),
        "mining_seconds_total": total,
        **{f"seconds_{k}": v for k, v in phases.items()},
        **{f"share_{k}": v / total for k, v in phases.items()},
        "solver_share (mine.solve / total)": solve_share,
        "mining_turns_per_s": len(turns) / total,
        "rss_before_mining_mb": rss_before if rss_before is not None else "n/a",
        "peak_rss_mining_mb": peak,
        "peak_rss_growth_mining_mb": peak - rss_before if rss_before is not None else "n/a",
        "peak_rss_source": ("VmHWM reset before mining" if reset
                            else "ru_maxrss lifetime peak (upper bound, includes generation)"),
        "ru_maxrss_before_mining_mb (generation, fit)": ru_before_mb,
        "ru_maxrss_after_mining_mb": ru_after_mb,
        "threads": THREADS, "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "time_target_ratio (30 s / measured)": TARGET_SECONDS / total,
        "time_vs_target": versus(TARGET_SECONDS, total, "s"),
        "memory_target_ratio (4 GB / peak RSS)": TARGET_MB / peak,
        "memory_vs_target": versus(TARGET_MB / 1000, peak / 1000, "GB"),
    }
    if TURNS != 1_000_000:
        rows["note"] = f"targets are for 1,000,000 turns; this run mined {TURNS:,}"
    report("rewrites", rows)
