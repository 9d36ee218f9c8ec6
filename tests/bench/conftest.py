"""Benchmark fixtures (see harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.harness import RESULTS, TURNS


@pytest.fixture(scope="session")
def big_log(tmp_path_factory) -> Path:
    """TURNS generated turns as JSON Lines (cached between runs in bench-results/)."""
    from analysis.simulate import load_pool, simulate_turns, write_log

    path = RESULTS / f"demo-{TURNS}.jsonl"
    if not path.exists():
        RESULTS.mkdir(exist_ok=True)
        tmp = path.with_name(path.stem + ".partial.jsonl")
        write_log(simulate_turns(load_pool(), n_turns=TURNS, seed=1), tmp)
        tmp.rename(path)
    return path
