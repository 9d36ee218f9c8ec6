"""One step of the failure-point memory benchmark in a fresh process, so its peak RSS is that step's alone:

    python tests/bench/fp_score_child.py ingest --db D --log L       # a database holding the log as "large"
    python tests/bench/fp_score_child.py score --db D --ckpt C --cache K
    python tests/bench/fp_score_child.py job --db D --ckpt C --cache K   # the same as a score job of the runner

`score` runs `app.jobs.failure_points.score` (the streamed scoring a score job also does, in the same batches,
without the job's child process) and prints one JSON
line: turns, seconds, the phase timings, the RSS before scoring (torch, the encoder and the model loaded) and
the process's peak RSS (VmHWM). `job` submits a failure-points score job to the job runner (what the Models page
and `turnlens score failure-points --dataset` run: the server reads, a child process scores) and prints the
server's peak RSS and the job child's (the largest waited-for child's maxrss). It imports the `app` and
`analysis` packages found first on PYTHONPATH, so the benchmark can run the same step on an older checkout of
the code (the "before" of a before/after)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=("ingest", "score", "job"))
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--log", type=Path)
    p.add_argument("--ckpt", type=Path)
    p.add_argument("--cache", type=Path)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    from app import store

    if args.step == "ingest":
        from app.ingest import ingest_files

        conn = store.connect(args.db)
        ingest_files(conn, [args.log], dataset="large")
        conn.close()
        return

    if args.step == "job":
        _job(args)
        return

    import torch

    from analysis.text_encoder import EmbeddingCache, TextEncoder
    from app.jobs import failure_points as failure_jobs

    torch.set_num_threads(args.threads)
    encoder = TextEncoder.load(threads=args.threads)
    cache = EmbeddingCache(args.cache)
    conn = store.connect(args.db)
    rss_before = _status_mb("VmRSS")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    result = failure_jobs.score(conn, "large", args.ckpt, embed=lambda texts: cache.encode(encoder, texts),
                                timings=timings)
    seconds = time.perf_counter() - start
    conn.close()
    assert result.rows_read == result.rows_added == result.distributions_added, result
    print(json.dumps({"turns": result.rows_read, "seconds": seconds, "timings": timings,
                      "rss_before_mb": rss_before, "peak_rss_mb": _status_mb("VmHWM")}))


def _job(args: argparse.Namespace) -> None:
    import os
    import resource

    os.environ["TURNLENS_CACHE"] = str(args.cache)  # the jobs' embedder reads <cache>/embeddings
    from app import store
    from app.jobs.runner import JobRunner

    conn = store.connect(args.db)
    runner = JobRunner(conn, args.db.parent / "models")
    rss_before = _status_mb("VmRSS")
    start = time.perf_counter()
    view = runner.wait(runner.submit("failure-points", "score", "large", checkpoint=str(args.ckpt)))
    seconds = time.perf_counter() - start
    runner.stop()
    assert view.status == "done", view.message
    turns, candidates = store.count_turns(conn, "large"), store.count_candidates(conn, "large")
    conn.close()
    assert turns == candidates, (turns, candidates)
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    print(json.dumps({"turns": turns, "seconds": seconds, "rss_before_mb": rss_before,
                      "peak_rss_mb": _status_mb("VmHWM"), "child_peak_rss_mb": child_kb * 1024 / 1e6}))


if __name__ == "__main__":
    main()
