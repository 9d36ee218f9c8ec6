"""The README's list of pages is the app's navigation: the same sections, the same pages, in the same order."""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT


def navigation() -> list[tuple[str, list[str]]]:
    """(section, page titles) as app/streamlit_app.py declares them, read from its source."""
    tree = ast.parse((ROOT / "app" / "streamlit_app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and node.keys and all(isinstance(k, ast.Constant) for k in node.keys):
            sections = []
            for key, value in zip(node.keys, node.values, strict=True):
                if not isinstance(value, ast.List):
                    break
                titles = [kw.value.value for call in value.elts if isinstance(call, ast.Call)
                          for kw in call.keywords if kw.arg == "title"]
                sections.append((key.value, titles))
            else:
                if sections and all(titles for _, titles in sections):
                    return sections
    raise AssertionError("no navigation found in app/streamlit_app.py")


def readme_pages() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## What is in the app"):text.index("All text from logs is shown as text")]
    sections: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if m := re.fullmatch(r"\*(\w[\w ]*)\*", line.strip()):
            sections.append((m.group(1), []))
        elif m := re.match(r"- \*\*(.+?)\*\*:", line):
            sections[-1][1].append(m.group(1))
    return sections


def test_the_readme_lists_the_pages_of_the_navigation_in_order():
    nav = navigation()
    assert [s for s, _ in nav] == ["Review", "Models", "Analysis", "Data"]
    assert readme_pages() == nav
