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


@pytest.fixture
def db(tmp_path):
    conn = store.connect(tmp_path / "test.duckdb")
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


# The longest files first (each takes a minute or more): under `make test` (pytest -n 2 --dist loadfile) they
# then run beside the rest of the suite instead of after it. Sorting is stable: the rest keep their order.
LONGEST_FIRST = ("tests/test_workbench.py", "tests/test_ray_private_network.py", "tests/e2e/test_disparity_browser.py",
                 "tests/test_reliability.py", "tests/test_cli.py", "tests/test_mitigation_jobs.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))
