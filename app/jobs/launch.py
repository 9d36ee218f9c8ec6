"""Start a model job's child process: forked from the jobs' fork server (app/forkserver.py), which has torch
already imported, instead of a new interpreter per job.

A new `python -m app.jobs.child` spent 2-3 s importing torch (and, for a training job, torch._dynamo, which the
optimisers load) before doing any work: about 40 s of `make run`'s 20 jobs, and a wait before every job started
from a page. The server imports them once (`python -m app.jobs.launch serve`, started with the first job of a
process); each child is a fork of it.

The child is what `python -m app.jobs.child REQUEST` was (app/jobs/child.py: progress lines on standard
output, orders on standard input for a streamed score job, its own messages on standard error), in the
repository's folder, with the requesting process's environment as it is when the job starts. What is read only
when a library loads or the interpreter starts (OMP_NUM_THREADS, PYTHONPATH, PYTHONHASHSEED, ...) is the
server's: the environment of the process's first job. Its standard input and output are a Unix socket to the
runner (a job that is not streamed finds its input closed); its standard error goes to a file the runner names
(with Python's faulthandler, so a native crash says where). Its last line says its exit code: the server's
children are reaped by the kernel, so no one can wait for their status. The server only imports; it runs no
torch operation, so torch has started no thread pool when it forks.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from app import forkserver

_ROOT = Path(__file__).resolve().parents[2]
_CONNECT_SECONDS = 120.0  # the first child waits for the server's imports (a few seconds; more on a busy machine)
EXIT_TAG = "turnlens-exit "  # the child's last line: its exit code
PRELOAD = ("numpy", "torch", "torch._dynamo", "app.jobs.child", "app.jobs.registry")

_SERVER = forkserver.ForkServer("app.jobs.launch")


# ------------------------------------------------------------------------------------------ the child


def _child(request: dict) -> None:
    """In the forked child: connect back, take the socket as standard input and output, run the job. Never
    returns."""
    code = 1
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(request["address"])
        sock.sendall((json.dumps({"pid": os.getpid()}) + "\n").encode())
        errors = os.open(request["errors"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(sock.fileno(), 0)
        os.dup2(sock.fileno(), 1)
        os.dup2(errors, 2)
        os.close(errors)
        sock.close()
        # New stream objects: the inherited ones may hold the server's read-ahead of its request pipe.
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own streams
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
        faulthandler.enable(file=sys.stderr, all_threads=False)
        os.environ.clear()  # the requesting process's environment now, not the server's at its start
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        from app.jobs.child import main

        code = main(request["request"])
    except BaseException:  # noqa: BLE001 - reported on standard error, as the interpreter would
        import traceback

        traceback.print_exc()
    finally:
        try:  # on a line of its own, even after output that did not end its line
            sys.stdout.write(f"\n{EXIT_TAG}{code}\n")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _warm_up() -> None:
    for module in PRELOAD:
        __import__(module)


def serve() -> int:
    return forkserver.serve(_child, _warm_up)


# ----------------------------------------------------------------------------------------- the parent


class _Input:
    """The child's standard input: write, flush; closing it ends the child's input (the socket's write side),
    not the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("w", encoding="utf-8")
        self.closed = False

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:  # the child has gone already
            pass


class _Output:
    """The child's standard output, line by line; its exit line is taken out and kept (ChildProcess.returncode)."""

    def __init__(self, owner: ChildProcess, sock: socket.socket) -> None:
        self._owner = owner
        self._file = sock.makefile("r", encoding="utf-8", errors="replace")

    def __iter__(self):
        for line in self._file:
            if line.startswith(EXIT_TAG):
                self._owner.returncode = int(line[len(EXIT_TAG):])
                continue
            yield line
        self._owner._ended = True

    def close(self) -> None:
        self._file.close()
        self._owner._sock.close()  # closed for good once the input side is closed too


class ChildProcess:
    """A job's child process, with what the runner uses of subprocess.Popen: stdout (lines), stdin (for a
    streamed score job), poll, wait, terminate and returncode. returncode None after the end: the child died
    without saying its code (killed, or a native crash: its standard error says which)."""

    def __init__(self, request: Path, errors: Path, *, stdin: bool = False) -> None:
        self.returncode: int | None = None
        self._ended = False
        folder = tempfile.mkdtemp(prefix="turnlens-job-")  # short: a socket's path has a length limit
        try:
            sock = _SERVER.start_child({"request": str(request), "errors": str(errors), "env": dict(os.environ),
                                        "cwd": str(_ROOT)}, os.path.join(folder, "child.sock"), _CONNECT_SECONDS)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            self.pid = self._read_pid(sock)
            if not stdin:  # nothing to read: a library asking for input gets the end of it, not a wait
                sock.shutdown(socket.SHUT_WR)
        except BaseException:
            sock.close()
            raise
        # A handle on this very process (Linux): signals never reach another one that took its pid after it ended.
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        self._sock = sock
        self.stdout = _Output(self, sock)
        self.stdin = _Input(sock) if stdin else None

    @staticmethod
    def _read_pid(sock: socket.socket) -> int:
        first = b""
        while not first.endswith(b"\n"):  # the pid line, read byte by byte: what follows is the job's output
            byte = sock.recv(1)
            if not byte:
                raise OSError("the job process ended before it started")
            first += byte
        return int(json.loads(first)["pid"])

    def _alive(self) -> bool:
        if self._ended:
            return False
        if self._pidfd is not None:  # readable once the process has ended
            return not select.select([self._pidfd], [], [], 0)[0]
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (its pid may belong to another user's process now)
            return False
        return True

    def poll(self) -> int | None:
        """None while the child runs; then its exit code (-1 if it ended without saying it)."""
        if self._alive():
            return None
        return -1 if self.returncode is None else self.returncode

    def wait(self) -> int:
        """Read the child's output to its end (what is left of it; the caller follows the rest) and return
        its exit code (-1 if it ended without saying it)."""
        if not self._ended:
            for _ in self.stdout:
                pass
        return -1 if self.returncode is None else self.returncode

    def terminate(self) -> None:
        if not self._alive():
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
            else:
                os.kill(self.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    def __del__(self) -> None:
        if getattr(self, "_pidfd", None) is not None:
            os.close(self._pidfd)
            self._pidfd = None

if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["serve"] else 2)
