"""Shared fixtures: a migrated temporary database and the bundled sample log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app import store
from tests.helpers import ROOT

# The app compiles UMAP in the background when it starts (about 45 s of CPU once per process); tests that open
# pages do not want that competing with them. The Disparity page's tests start their projection themselves.
os.environ.setdefault("TURNLENS_UMAP_WARMUP", "0")
# Most page tests act as a reviewer named in the session, as on a single-user laptop; the tests of accounts
# (tests/test_accounts*.py, the login browser test) switch TURNLENS_AUTH to accounts themselves.
os.environ.setdefault("TURNLENS_AUTH", "none")


@pytest.fixture(scope="session")
def empty_db_file(tmp_path_factory) -> Path:
    """A new database with every migration applied, made once per test process: `db` copies it instead of
    migrating a new file for each of its 200-odd tests (about 0.1 s each, more with the disk busy)."""
    path = tmp_path_factory.mktemp("empty-db") / "empty.duckdb"
    conn = store.connect(path)
    conn.execute("CHECKPOINT")  # everything in the file itself, no write-ahead log beside it
    conn.close()
    return path


@pytest.fixture
def db(tmp_path, empty_db_file):
    target = tmp_path / "test.duckdb"
    target.write_bytes(empty_db_file.read_bytes())
    conn = store.connect(target)
    yield conn
    session = sys.modules.get("app.review.session")
    if session is not None:  # a review queue's background refill may still read this database
        session.settle()
    conn.close()


@pytest.fixture
def sample_log() -> Path:
    path = ROOT / "sample_data" / "turns.jsonl.gz"
    if not path.exists():
        pytest.fail(f"{path} is missing: run python scripts/build_sample_data.py")
    return path


# The longest files first, longest at the top (seconds each took in a `make test` of 2026-12-06, both workers
# busy): under `make test` (pytest -n 2 --dist loadfile --no-loadscope-reorder, so xdist hands files out in
# this order rather than by their number of tests) each worker takes the next file when it is free, so the
# long files run beside the rest of the suite instead of after it. Sorting is stable: the rest keep their order.
LONGEST_FIRST = (
    "tests/test_workbench.py",  # 601 s (413 s on 2026-12-07, its steps in-process)
    "tests/test_ray_private_network.py",  # 175
    "tests/test_cli.py",  # 159
    "tests/test_reliability.py",  # 125
    "tests/test_log_formats.py",  # 84
    "tests/e2e/test_disparity_browser.py",  # 82
    "tests/test_rewrite_evaluation.py",  # 57
    "tests/test_disparity_page.py",  # 50
    "tests/test_jobs.py",  # 44
    "tests/e2e/test_jobs_browser.py",  # 41
    "tests/test_failure_evaluation.py",  # 40
    "tests/test_rescoring_jobs.py",  # 38
    "tests/e2e/test_review_browser.py",  # 38
    "tests/test_interop_scale.py",  # 36
)


# Libraries that size their thread pools from these variables when they load (PyTorch's intra-op pool, OpenMP,
# MKL, OpenBLAS). A parallel run has one worker per core already: a worker whose torch also spreads over every
# core makes the workers fight for the cores, and OpenMP's waiting threads burn the time they fight over. On the
# 2-core machine the suite on two workers took 13:57 with one thread each against 15:10 without, the same morning
# (docs/benchmarks.md). Set in the controller, before the workers start, so every worker and every process a test
# starts (job children, servers) inherits them; a value the user set is kept.
ONE_THREAD_EACH = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pytest_configure(config):
    workers = getattr(config.option, "numprocesses", None)  # pytest-xdist's -n, an int by now ("auto" resolved)
    if isinstance(workers, int) and workers > 1 and "PYTEST_XDIST_WORKER" not in os.environ:
        for name in ONE_THREAD_EACH:
            os.environ.setdefault(name, "1")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))
