"""Read log files in a child process, so that no input can take the app's server down.

The reader uses Arrow's C++ JSON parser for speed. A native crash there (a segmentation fault, as on a file
whose first line is `null`) would end the whole process: for the app that is every reviewer's session. So
the reading runs in a child process, which never opens the database: it writes the validated table to an
Arrow file that the parent maps, and reports progress and problems as JSON lines over a Unix socket. The
server process alone writes to DuckDB.

Children are forked from a small fork server (app/forkserver.py; `python -m app.isolated_read serve`, started
once per process that reads logs): it has already imported numpy and pyarrow, so a child starts in
milliseconds instead of the 0.4 s a new interpreter takes.

If a child dies without a result, the same files are read again with Arrow's JSON reader switched off (the
exact per-line path is pure Python); if that dies too, the files are refused with a clear error. Nothing is
written either way.
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.ipc as ipc

from analysis.logs import LogFormatError, ParsedLog, Problem, read_logs
from app import forkserver

_ROOT = Path(__file__).resolve().parent.parent
_CONNECT_SECONDS = 60.0  # a forked child connects back at once; this only guards against a server gone wrong


# ------------------------------------------------------------------------------------------ the child


def _child(request: dict) -> None:
    """In the forked child: connect back, read, write the table, report. Never returns."""
    code = 1
    try:
        # The reader's settings as the requesting process has them now (the server started earlier).
        for key in [k for k in os.environ if k.startswith("TURNLENS_")]:
            del os.environ[key]
        os.environ.update(request["settings"])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(request["address"])
        out = sock.makefile("w", encoding="utf-8")
        # A native crash writes "Fatal Python error: Segmentation fault" here: the parent quotes it.
        crash = open(request["crash_file"], "w")  # noqa: SIM115 - must stay open until the process ends
        faulthandler.enable(file=crash, all_threads=False)
        if request["crash"] == "always" or (request["crash"] == "fast" and request["fast"]):
            os.kill(os.getpid(), signal.SIGSEGV)  # the tests' stand-in for a crash in a native library
        _read(request, lambda message: (out.write(json.dumps(message) + "\n"), out.flush()))
        out.close()
        sock.close()
        code = 0
    finally:
        os._exit(code)


def _read(request: dict, send: Callable[[dict], object]) -> None:
    target = Path(request["out"])
    try:
        parsed = read_logs(request["paths"], names=request["names"], fast=request["fast"],
                           progress=lambda done: send({"progress": done}))
        with pa.OSFile(str(target), "wb") as sink, ipc.new_file(sink, parsed.table.schema) as writer:
            writer.write_table(parsed.table)
        # The locator maps table rows back to file lines (numpy arrays): pickled into our own folder.
        target.with_suffix(".locate").write_bytes(pickle.dumps(parsed.locate))
        send({"ok": True, "files": parsed.files, "unknown": parsed.unknown_fields})
    except LogFormatError as exc:
        send({"invalid": [asdict(p) for p in exc.problems]})
    except ValueError as exc:  # a setting out of range (TURNLENS_MAX_LINE_BYTES, ...)
        send({"setting": str(exc)})
    except MemoryError:
        send({"invalid": [asdict(Problem(", ".join(request["names"]), None, None,
                                         "the file could not be read: it needs more memory than this machine "
                                         "has"))]})


def _warm_up() -> None:
    """Read one tiny log here, once: Arrow initialises its compute functions and time zones on first use
    (~0.15 s), and every child forked after this inherits them ready."""
    with tempfile.TemporaryDirectory(prefix="turnlens-warm-") as folder:
        path = Path(folder) / "warm.jsonl"
        path.write_text(json.dumps({"dialogue_id": "warm", "turn_index": 0, "timestamp": "2026-01-01T00:00:00+01:00",
                                    "asr_text": "hello", "nlu_slots": [{"type": "t", "value": "v"}]}) + "\n")
        read_logs([path])


def serve() -> int:
    """The fork server (app/forkserver.py): one forked child per request, with numpy and pyarrow ready."""
    return forkserver.serve(_child, _warm_up)


# ----------------------------------------------------------------------------------------- the parent


# No BLAS thread pool in the server (it needs none): fewer threads to think about at each fork.
_SERVER = forkserver.ForkServer("app.isolated_read", {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})


class _Died(Exception):
    def __init__(self, how: str):
        self.how = how


def _messages(sock: socket.socket) -> IO[str]:
    return sock.makefile("r", encoding="utf-8")


def _run_child(paths: list[str], names: list[str], fast: bool, workdir: Path,
               progress: Callable[[int], None] | None, crash: str | None) -> ParsedLog:
    tag = "fast" if fast else "exact"
    address, crash_file, out = workdir / f"{tag}.sock", workdir / f"{tag}.crash", workdir / f"{tag}.arrow"
    settings = {k: v for k, v in os.environ.items() if k.startswith("TURNLENS_")}
    try:
        conn = _SERVER.start_child({"paths": paths, "names": names, "fast": fast, "out": str(out),
                                    "crash_file": str(crash_file), "crash": crash, "settings": settings},
                                   str(address), _CONNECT_SECONDS)
    except forkserver.ChildNotStarted as exc:
        raise _Died(str(exc)) from None
    final = None
    with conn, _messages(conn) as lines:
        for line in lines:
            message = json.loads(line)
            if "progress" in message:
                if progress:
                    progress(message["progress"])
            else:
                final = message
    if final is None:
        said = crash_file.read_text(errors="replace").strip().splitlines() if crash_file.exists() else []
        raise _Died(said[0] if said else "it ended without a result")
    if "invalid" in final:
        raise LogFormatError([Problem(**p) for p in final["invalid"]])
    if "setting" in final:
        raise ValueError(final["setting"])
    table = ipc.open_file(pa.memory_map(str(out))).read_all()  # mapped, not copied
    locate = pickle.loads(out.with_suffix(".locate").read_bytes())
    return ParsedLog(table, final["files"], final["unknown"], locate=locate)


def read_logs_isolated(paths: Sequence[str | Path], workdir: str | Path, *, names: Sequence[str] | None = None,
                       progress: Callable[[int], None] | None = None, _crash: str | None = None
                       ) -> ParsedLog:
    """read_logs, in a child process. workdir (a private, empty folder) holds the child's output table: keep
    it until the returned table is no longer used (the table maps that file). Raises LogFormatError (also for
    a reader that died twice) or ValueError (a setting out of range). _crash is for the tests: "fast" makes the
    child reading with Arrow crash as a native library would, "always" every child."""
    str_paths = [str(p) for p in paths]
    shown = list(names) if names else str_paths
    workdir = Path(workdir)
    try:
        return _run_child(str_paths, shown, True, workdir, progress, _crash)
    except _Died as first:
        try:
            return _run_child(str_paths, shown, False, workdir, progress, _crash)
        except _Died as second:
            raise LogFormatError([Problem(
                ", ".join(shown), None, None,
                f"the file could not be read: the reader stopped ({first.how}; then, without Arrow's JSON "
                f"reader: {second.how}). Nothing was imported.")]) from None


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["serve"] else 2)
