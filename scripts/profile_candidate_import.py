"""Where the "write" phase of failure-point scoring goes: each SQL statement of the candidate import, summed over
the batches of a whole scoring (issue 22's 10,000 turns/s target; docs/benchmarks.md).

    .venv/bin/python scripts/profile_candidate_import.py setup N    # about 1 min at N = 1,000,000
    .venv/bin/python scripts/profile_candidate_import.py run N

setup simulates a log of N turns (or reuses bench-results/demo-N.jsonl, the bench's log), ingests it into
WORK/db-N.pristine.duckdb and trains a small metadata-only failure-point model (1 epoch on 3,000 other turns:
its quality does not matter here, its cost per turn is the default model's). run copies the pristine database,
scores it with `app.jobs.failure_points.score` and prints the phase timings, then the seconds and calls of every
statement `_insert_candidates` runs. WORK is $TURNLENS_PROFILE_DIR, default /tmp/turnlens-profile.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = Path(os.environ.get("TURNLENS_PROFILE_DIR", "/tmp/turnlens-profile"))


class TimedCursor:
    """A DuckDB cursor that adds each statement's seconds (execute and its fetch) to `spent`, keyed by its start."""

    def __init__(self, cursor, spent: dict, calls: dict):
        self._cursor, self._spent, self._calls, self._key = cursor, spent, calls, None

    def execute(self, query: str, *args):
        self._key = " ".join(query.split())[:72]
        start = time.perf_counter()
        self._cursor.execute(query, *args)
        self._spent[self._key] += time.perf_counter() - start
        self._calls[self._key] += 1
        return self

    def _fetch(self, name: str):
        start = time.perf_counter()
        rows = getattr(self._cursor, name)()
        self._spent[self._key] += time.perf_counter() - start
        return rows

    def fetchone(self):
        return self._fetch("fetchone")

    def fetchall(self):
        return self._fetch("fetchall")

    def __getattr__(self, name: str):
        return getattr(self._cursor, name)


def setup(n: int) -> None:
    from analysis.failure_points.model import FailurePointClassifier, FailurePointConfig, build_examples, gold_labels
    from analysis.simulate import load_pool, simulate_turns, write_log
    from app import store
    from app.ingest import ingest_files

    WORK.mkdir(parents=True, exist_ok=True)
    log = ROOT / "bench-results" / f"demo-{n}.jsonl"
    if not log.exists():
        log = WORK / f"log-{n}.jsonl"
        if not log.exists():
            write_log(simulate_turns(load_pool(), n_turns=n, seed=1), log)
    pristine = WORK / f"db-{n}.pristine.duckdb"
    pristine.unlink(missing_ok=True)
    conn = store.connect(pristine)
    ingest_files(conn, [log], dataset="large")
    conn.close()
    train = list(simulate_turns(load_pool(), n_turns=3000, seed=5, id_prefix="T"))
    examples = build_examples(train)
    shutil.rmtree(WORK / "checkpoint", ignore_errors=True)
    FailurePointClassifier(FailurePointConfig(epochs=1)).fit(
        examples, gold_labels(train, examples), embed=None).save_pretrained(WORK / "checkpoint")
    print(f"{WORK}: db-{n}.pristine.duckdb and checkpoint/")


def run(n: int) -> None:
    import app.store.candidates as store_candidates
    from app import store
    from app.jobs import failure_points as failure_jobs

    db = WORK / f"db-{n}.duckdb"
    shutil.copy(WORK / f"db-{n}.pristine.duckdb", db)
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    insert = store_candidates._insert_candidates
    store_candidates._insert_candidates = lambda cur, table: insert(TimedCursor(cur, spent, calls), table)
    conn = store.connect(db)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    result = failure_jobs.score(conn, "large", WORK / "checkpoint", timings=timings)
    seconds = time.perf_counter() - start
    conn.close()
    print(json.dumps({"turns": result.rows_read, "seconds": round(seconds, 1),
                      "turns_per_s": round(result.rows_read / seconds),
                      **{phase: round(s, 1) for phase, s in timings.items()}}))
    print(f"{sum(spent.values()):8.2f} s in the import's statements:")
    for key, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{s:8.2f} s {calls[key]:5d} x  {key}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("setup", "run"):
        sys.exit(__doc__)
    {"setup": setup, "run": run}[sys.argv[1]](int(sys.argv[2]))
