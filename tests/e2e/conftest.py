"""Browser tests: a real `streamlit run` on 127.0.0.1 driven by Playwright in Debian's headless chromium."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.helpers import build_rewrite_db

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: scripts/ensure_chromium.sh should have installed it")
        pytest.skip("Debian chromium is not installed (run scripts/ensure_chromium.sh as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # Nothing may leave the machine: a demo must work offline, so any outside request fails the page.
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    pg = context.new_page()
    pg.outside_requests = outside
    yield pg
    context.close()


@pytest.fixture
def rewrite_db(tmp_path):
    """A database with one rewrite-mining run (tests.helpers.build_rewrite_db), for the Query rewrites page."""
    return build_rewrite_db(tmp_path)
