"""`make test` runs the suite on two pytest-xdist workers with the longest files first (tests/conftest.py,
LONGEST_FIRST): these checks keep that ordering from quietly stopping working, which would put the long files
last and add minutes to the run."""

from __future__ import annotations

import re

from tests.conftest import LONGEST_FIRST, ROOT


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
