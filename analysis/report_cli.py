"""What every evaluation script shares: the results are one JSON of numbers with the Markdown report rendered
from it beside it, and ``--check`` reruns the evaluation with the reported run's own arguments and lists every
figure that differs."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path


def add_common_args(p: argparse.ArgumentParser, *, repo: Path, default_out: Path, slurp_dir: Path) -> None:
    """The options every evaluation command shares: where SLURP and the embedding cache are, the report,
    torch threads, and --check with its tolerance."""
    p.add_argument("--slurp-dir", type=Path, default=slurp_dir, help="directory with the SLURP files")
    p.add_argument("--cache-dir", type=Path, default=repo / "data" / "cache" / "embeddings",
                   help="text-embedding cache (default data/cache/embeddings, git-ignored)")
    p.add_argument("--out", type=Path, default=default_out, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--check", action="store_true",
                   help="rerun and compare the metrics with the JSON beside --out instead of writing; exit 1 if "
                        "they differ")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any metric (default 0)")


def compare_flat(expected: dict[str, object], actual: dict[str, object], *, tolerance: float = 0.0) -> list[str]:
    """Differences between two flat {figure: value} maps: floats within tolerance (NaN equals NaN), anything
    else exactly; one line per figure, "<figure>: reported X, reproduced Y"."""
    diffs = []
    for key in sorted(set(expected) | set(actual)):
        x, y = expected.get(key), actual.get(key)
        if isinstance(x, float) and isinstance(y, float):
            same = (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tolerance + 1e-12
            if not same:
                diffs.append(f"{key}: reported {x:.6f}, reproduced {y:.6f}")
        elif x != y:
            diffs.append(f"{key}: reported {x!r}, reproduced {y!r}")
    return diffs


def main(argv: list[str] | None, *, parse_args: Callable, run: Callable, render: Callable, compare: Callable,
         headline: Callable[[dict], str], allow_nan: bool = True) -> int:
    """The whole command: parse, check the SLURP folder, then either --check (exit 1 if any figure differs) or
    run and write <out>.json and <out> (the Markdown); headline(results) is printed when done."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if getattr(args, "slurp_dir", None) is not None and not args.slurp_dir.is_dir():  # a report may not read SLURP
        print(f"error: {args.slurp_dir}: SLURP directory not found (give --slurp-dir)", file=sys.stderr)
        return 2
    out_json = args.out.with_suffix(".json")
    if args.check:
        try:
            reported = json.loads(out_json.read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {out_json}: cannot read the reported results: {exc}", file=sys.stderr)
            return 2
        # rerun with the reported run's own arguments, so --check needs no others
        keep = {k: v for k, v in vars(args).items() if k not in reported["args"]}
        args = argparse.Namespace(**{**reported["args"], **keep})
        diffs = compare(reported, run(args, argv), tolerance=args.tolerance)
        for line in diffs:
            print(line)
        print(f"{out_json}: {'reproduced' if not diffs else f'{len(diffs)} figures differ'}", file=sys.stderr)
        return 1 if diffs else 0
    results = run(args, argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=1, allow_nan=allow_nan) + "\n")
    args.out.write_text(render(results))
    print(f"wrote {args.out} and {out_json.name}: {headline(results)}; run time {results['runtime_seconds']:.0f} s",
          file=sys.stderr)
    return 0
