"""Rebuild sample_data/ from SLURP: the dev-split recording pool and about 3,000 simulated turns.

    python scripts/build_sample_data.py [--slurp-dir DIR] [--out-dir DIR]

Deterministic: inputs are sorted, the seed is fixed and gzip headers carry no time or name, so a rerun
gives byte-identical files. Only dev-split recordings (slurp_id % 5 != 0) are written; the evaluation
split never enters sample data.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from analysis.simulate import load_pool, simulate_turns, write_jsonl, write_log
from analysis.slurp import is_eval_utterance, load_recordings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
DEFAULT_OUT_DIR = REPO / "sample_data"
POOL_FILE = "slurp_pool.jsonl.gz"
TURNS_FILE = "turns.jsonl.gz"
LICENSE_FILE = "LICENSE-SLURP.txt"
N_TURNS = 3000
SEED = 0


def build(slurp_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the pool, the turns and the SLURP licence into out_dir; return {file name: size in bytes}."""
    pool = [dict(r) for r in load_recordings(slurp_dir, "dev")]
    leaked = [r["slurp_id"] for r in pool if is_eval_utterance(r["slurp_id"])]
    if leaked:  # the loader guarantees this; checked again because a leak could not be undone once committed
        raise SystemExit(f"refusing to write evaluation-split utterances into sample data: {leaked[:5]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(pool, out_dir / POOL_FILE)
    # Simulate from the file as written, so the turns are exactly what load_pool() users regenerate.
    turns = simulate_turns(load_pool(out_dir / POOL_FILE), n_turns=N_TURNS, seed=SEED)
    write_log(turns, out_dir / TURNS_FILE)
    shutil.copyfile(slurp_dir / "LICENSE.txt", out_dir / LICENSE_FILE)
    return {name: (out_dir / name).stat().st_size for name in (POOL_FILE, TURNS_FILE, LICENSE_FILE)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR,
                        help=f"directory with the SLURP files (default: {DEFAULT_SLURP_DIR})")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"where to write (default: {DEFAULT_OUT_DIR})")
    args = parser.parse_args(argv)
    try:
        sizes = build(args.slurp_dir, args.out_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"{args.out_dir / name}: {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
