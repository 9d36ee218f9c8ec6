"""The real app server on a free 127.0.0.1 port, started as `make run` starts it, for the browser tests;
stop() ends it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """The app on a free loopback port, through app/serve.py (which opens the database before the server
    starts, so it holds the DuckDB lock from then on), or `streamlit run script` for another script;
    stop() ends it."""

    def __init__(self, db_path: Path, env: dict | None = None, script: Path | None = None):
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
            cwd=ROOT, env={**os.environ, "TURNLENS_DB": str(db_path), **(env or {})},
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
