"""The real app server on a free 127.0.0.1 port, started as `make run` starts it, for the browser tests;
stop() ends it (or use it as a context manager). Also what the browser tests do on its pages: sign in as a
reviewer, wait for the script to finish its run, and read the database before or after the server holds it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]

# The app's script has finished its run: the page is drawn and waits for the next event.
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """The app on a free loopback port, through app/serve.py (which opens the database before the server
    starts, so it holds the DuckDB lock from then on), or `streamlit run script` for another script;
    stop() ends it."""

    def __init__(self, db_path: Path, env: dict | None = None, script: Path | None = None, cwd: Path = ROOT):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The server's output goes to a file, not a pipe: nobody reads a pipe while the test runs, and a full
        # one (about 64 KB of logs) would block streamlit mid-test.
        self.log = tempfile.TemporaryFile("w+")
        start = [sys.executable, "-m", "app.serve"] if script is None else \
            [sys.executable, "-m", "streamlit", "run", str(script)]
        self.proc = subprocess.Popen(
            [*start, "--server.address", "127.0.0.1", "--server.port", str(self.port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=cwd, env={**os.environ, "TURNLENS_DB": str(db_path), **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("streamlit exited:\n" + self.output())
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not become healthy within 60 s:\n" + self.output())

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        """What the server printed so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or close anything."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_idle(page, timeout: int = 30_000) -> None:
    """Wait until the app's script has finished its run (IDLE)."""
    page.wait_for_selector(IDLE, timeout=timeout)


def sign_in(page, url: str, reviewer: str) -> None:
    """Open ``url`` and enter ``reviewer`` as the Reviewer name in the sidebar (Enter submits it)."""
    page.goto(url)
    name = page.get_by_placeholder("your name")
    name.fill(reviewer)
    name.press("Enter")


@contextmanager
def serving(page, db: Path, path: str, reviewer: str) -> Iterator[AppServer]:
    """The app on ``db`` (AppServer) with ``page`` open at ``path`` (e.g. "/rewrites?dataset=t"), signed in as
    ``reviewer`` and idle; the server is stopped on leaving."""
    with AppServer(db) as server:
        sign_in(page, f"{server.url}{path}", reviewer)
        wait_idle(page)
        yield server


def query(db: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` in the database at ``db``, through a read-only connection: for after the server has
    stopped (it holds the DuckDB lock while it runs)."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
