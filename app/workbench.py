"""Build the database `make run` opens: a full workbench on the bundled sample, every page with real content.

    python -m app.workbench --db data/turnlens.duckdb.partial [--rewrites-turns 30000] [--disparity-turns 200000]

Each step is a `turnlens` command, run as a user would run it (so it shows its own progress bar and no step
is silent for long), in this order:
- the sample (3,000 simulated turns over real SLURP utterances): ingest, the logged NLU's proposals as
  candidates, then every action of every registered family, through the same job runner as the app's Models
  page: for the models, train (a fifth of the dialogues held out), score (their proposals become candidates)
  and a quick evaluation on those held-out dialogues of the sample itself; a rewrite run mined from the
  sample; a stored disparity analysis. The full evaluations on SLURP's evaluation split are separate, longer
  commands (scripts/evaluate_*.py);
- decisions by two *simulated* reviewers (answering from the log's gold fields with a stated error rate), so
  Agreement and Calibration draw;
- rewrites-demo (simulated users who rephrase keeping the meaning: rewrites need many repeats) and
  disparity-demo (enough speakers to find the simulator's planted worse-served regions), with its disparity
  report and voices layout stored by the analyse job, so the Disparity page draws it without computing.

The time of every step is printed at the end and written to <db>.build.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from app.jobs.registry import built_in

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "turns.jsonl.gz"
# Two simulated reviewers, 10% errors each, both deciding the same quarter of the sample's candidates (the
# logged NLU's and the models'), so Agreement has pairs and the Review queue still has work.
SIMULATED_REVIEWS = ("--dataset", "sample", "--reviewers", "2", "--error-rate", "0.1", "--share", "0.25",
                     "--overlap-share", "1.0", "--seed", "7")


def steps(db: Path, *, rewrites_turns: int, disparity_turns: int, data_dir: Path) -> list[tuple[str, list[str]]]:
    """(name, turnlens arguments) of every step."""
    d = ["--db", str(db)]
    out: list[tuple[str, list[str]]] = [
        ("ingest the sample", ["ingest", str(SAMPLE), "--dataset", "sample", "--by", "make", *d]),
        ("logged NLU proposals", ["candidates", "from-logs", "--dataset", "sample", *d]),
    ]
    for family in built_in():
        for action in family.actions():
            out.append((f"{family.name}: {action}", [action, family.name, "--dataset", "sample", *d]))
    out.append(("simulated reviewers", ["simulate-reviews", *SIMULATED_REVIEWS, *d]))
    if rewrites_turns:
        log = data_dir / "rewrites-demo.parquet"
        out += [
            ("rewrites-demo: simulate", ["demo-data", "--turns", str(rewrites_turns), "--seed", "7", "--id-prefix",
                                         "rw-", "--rephrase", "meaning", "--out", str(log)]),
            ("rewrites-demo: ingest", ["ingest", str(log), "--dataset", "rewrites-demo", "--by", "make", *d]),
            ("rewrites-demo: mine", ["mine", "rewrites", "--dataset", "rewrites-demo", *d]),
        ]
    if disparity_turns:
        log = data_dir / "disparity-demo.parquet"
        out += [
            ("disparity-demo: simulate", ["demo-data", "--turns", str(disparity_turns), "--seed", "7", "--id-prefix",
                                          "dp-", "--out", str(log)]),
            ("disparity-demo: ingest", ["ingest", str(log), "--dataset", "disparity-demo", "--by", "make", *d]),
            # The report and the voices' layout the Disparity page draws, stored so the page opens at once.
            ("disparity-demo: analyse", ["analyse", "disparity", "--dataset", "disparity-demo", *d]),
        ]
    return out


def build(db: Path, *, rewrites_turns: int = 30_000, disparity_turns: int = 200_000) -> dict[str, float]:
    """Run every step; returns the seconds each took. Raises CalledProcessError at the first failing step."""
    plan = steps(db, rewrites_turns=rewrites_turns, disparity_turns=disparity_turns, data_dir=db.parent)
    times: dict[str, float] = {}
    for i, (name, args) in enumerate(plan, start=1):
        print(f"[{i}/{len(plan)}] {name}", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "app.cli", *args], check=True)
        times[name] = round(time.perf_counter() - started, 1)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.workbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--rewrites-turns", type=int, default=30_000)
    parser.add_argument("--disparity-turns", type=int, default=200_000)
    args = parser.parse_args(argv)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        times = build(args.db, rewrites_turns=args.rewrites_turns, disparity_turns=args.disparity_turns)
    except subprocess.CalledProcessError as exc:
        print(f"workbench: a step failed (exit code {exc.returncode}); nothing more was built", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    width = max(len(name) for name in times)
    print(f"\nbuilt in {total:.0f} s:")
    for name, seconds in times.items():
        print(f"  {name:<{width}}  {seconds:6.1f} s")
    Path(str(args.db) + ".build.json").write_text(json.dumps({"total_s": round(total, 1), "steps_s": times},
                                                             indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
