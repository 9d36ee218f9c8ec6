"""A fork server: a small process that has already imported what its children need and forks one child per
request, so a child starts in milliseconds instead of the seconds a new interpreter spends on its imports.

Two use it, each with a server of its own (their imports and environments differ): the log reader
(app/isolated_read.py: numpy and pyarrow, reading in a child so that a native crash cannot end the app) and
the model jobs (app/jobs/launch.py: torch, about 2 s a job saved).

The server runs no threads of its own when it forks, so forking it is safe (forking the app server, with its
threads, is not); the one thread a server may have is OpenBLAS's pool, once numpy is imported, and OpenBLAS
stops its threads before a fork (the log reader's server has none: it runs with OPENBLAS_NUM_THREADS=1).
Not multiprocessing's own fork server: its children re-import the parent's main script, and the parent may be
any script, Streamlit or a test runner.

`python -m <module> serve` runs a module's server: the module calls serve() with its child function. Requests
are JSON lines on the server's standard input; the child function runs in the forked child and must end the
process itself (os._exit), never return. Children are reaped by the kernel (no zombies), so a parent learns how
a child ended from what the child tells it, not from its exit status.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def serve(child: Callable[[dict], None], warm_up: Callable[[], object] | None = None) -> int:
    """The fork server's loop: one JSON request per line on standard input, one forked child per request
    (running child(request)). Ends when standard input closes, that is when the process that started it ends."""
    if warm_up is not None:
        warm_up()
    # After the warm-up (a subprocess it ran must keep its exit status): children are reaped by the kernel, so
    # no zombies. Ctrl-C in a terminal reaches this process too (same process group): it ends when its parent
    # does, not with a traceback; children get the default back.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: this request gets no child (its parent times out)
            print(f"fork server ({sys.argv[0]}): could not fork: {exc}", file=sys.stderr, flush=True)
            continue
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                child(request)
            finally:
                os._exit(1)  # child() ends the process itself; this only catches one that returned or raised
    return 0


class ChildNotStarted(OSError):
    """No child connected back: the fork server stopped, or none came in time (the message says which)."""


class ForkServer:
    """A process's fork server for one module (`python -m <module> serve`), started on first use and again if it
    has died (or if this process is a fork of the one that started it). env: variables set for the server on top
    of this process's environment at its start."""

    def __init__(self, module: str, env: dict[str, str] | None = None) -> None:
        self._module = module
        self._env = dict(env or {})
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = os.getpid()

    def running(self) -> bool:
        """Whether the server this process started is still up."""
        with self._lock:
            return self._proc is not None and self._proc.poll() is None and self._pid == os.getpid()

    def exit_code(self) -> int | None:
        with self._lock:
            return None if self._proc is None else self._proc.poll()

    def start_child(self, request: dict, address: str, timeout: float) -> socket.socket:
        """Ask for a child on request and return its connection: a Unix socket is bound at address (a path in a
        folder the caller owns and removes), the child gets it as request["address"] and connects there first.
        ChildNotStarted (an OSError) when none connects within timeout seconds, and at once when the server has
        stopped (it could not import, or died)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(address)
            listener.listen(1)
            self.submit({**request, "address": address})
            listener.settimeout(0.5)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    if not self.running():
                        raise ChildNotStarted(
                            f"the fork server (python -m {self._module} serve) stopped with exit code "
                            f"{self.exit_code()}; what it said is on this process's standard error") from None
                    if time.monotonic() > deadline:
                        raise ChildNotStarted(f"no child process started within {timeout:.0f} s") from None
                    continue
                conn.settimeout(None)
                return conn
        finally:
            listener.close()

    def submit(self, request: dict) -> None:
        """Ask the server for a child running on request (a JSON object)."""
        with self._lock:
            for attempt in range(2):
                if self._proc is None or self._proc.poll() is not None or self._pid != os.getpid():
                    self._start()
                assert self._proc is not None and self._proc.stdin is not None
                try:
                    self._proc.stdin.write(json.dumps(request) + "\n")
                    self._proc.stdin.flush()
                    return
                except (BrokenPipeError, OSError):
                    if attempt:
                        raise
                    self._proc = None

    def _start(self) -> None:
        env = {**os.environ, **self._env,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        self._pid = os.getpid()
        # Closing its standard input (our end goes when this process ends) is what stops the server.
        self._proc = subprocess.Popen([sys.executable, "-m", self._module, "serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, env=env, text=True, cwd=str(_ROOT))
