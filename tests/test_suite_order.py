"""`make test` runs the suite on two pytest-xdist workers with the longest files first (tests/conftest.py,
LONGEST_FIRST), each worker's libraries on one thread (ONE_THREAD_EACH): these checks keep the ordering and the
thread limit from quietly stopping working, either of which adds minutes to the run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests.conftest import LONGEST_FIRST, ONE_THREAD_EACH, ROOT, pytest_configure


def test_every_file_named_longest_first_exists():
    missing = [name for name in LONGEST_FIRST if not (ROOT / name).is_file()]
    assert not missing, f"renamed or removed, update tests/conftest.py LONGEST_FIRST: {missing}"
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_make_test_hands_files_out_in_that_order():
    # xdist's default (--loadscope-reorder) sorts files by their number of tests, which undoes LONGEST_FIRST
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "the Makefile has no test target"
    pytest_line = next(line for line in recipe.group(1).splitlines() if "pytest" in line)
    for flag in ("-n 2", "--dist loadfile", "--no-loadscope-reorder"):
        assert flag in pytest_line, (flag, pytest_line)


def test_collection_puts_the_longest_files_first(pytestconfig):
    from tests.conftest import pytest_collection_modifyitems

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    items = [Item("tests/test_a.py::t"), Item(f"{LONGEST_FIRST[1]}::t"), Item("tests/test_b.py::t"),
             Item(f"{LONGEST_FIRST[0]}::t1"), Item(f"{LONGEST_FIRST[0]}::t2")]
    pytest_collection_modifyitems(pytestconfig, items)
    assert [i.nodeid for i in items] == [f"{LONGEST_FIRST[0]}::t1", f"{LONGEST_FIRST[0]}::t2",
                                         f"{LONGEST_FIRST[1]}::t", "tests/test_a.py::t", "tests/test_b.py::t"]


def _environment(monkeypatch, **extra: str) -> dict:
    """A copy of the environment without the thread variables, in place of os.environ for one test."""
    env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD_EACH and k != "PYTEST_XDIST_WORKER"}
    env.update(extra)
    monkeypatch.setattr(os, "environ", env)
    return env


@pytest.mark.parametrize(("workers", "in_worker", "limited"), [(2, False, True), (None, False, False),
                                                                (1, False, False), (2, True, False)])
def test_a_parallel_run_gives_each_library_one_thread(monkeypatch, workers, in_worker, limited):
    # a worker inherits the controller's environment; it never sets its own
    env = _environment(monkeypatch, **({"PYTEST_XDIST_WORKER": "gw0"} if in_worker else {}))
    pytest_configure(SimpleNamespace(option=SimpleNamespace(numprocesses=workers)))
    assert {name: env.get(name) for name in ONE_THREAD_EACH} == {
        name: "1" if limited else None for name in ONE_THREAD_EACH}


def test_a_thread_count_the_user_set_is_kept(monkeypatch):
    env = _environment(monkeypatch, OMP_NUM_THREADS="3")
    pytest_configure(SimpleNamespace(option=SimpleNamespace(numprocesses=2)))
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "1"


def test_under_make_test_a_process_a_test_starts_runs_torch_on_one_thread():
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) < 2:
        pytest.skip("only in a parallel run (make test: pytest -n 2)")
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "1"
