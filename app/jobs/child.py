"""The child process of a model job: main(REQUEST) runs one family action on inputs the server read from the
database, and never opens the database itself. The runner forks it from the jobs' fork server, torch already
imported (app/jobs/launch.py); `python -m app.jobs.child REQUEST` runs the same in a new interpreter.

REQUEST is a pickle (written by app/jobs/runner.py into the job's own folder) holding the family's name and
module, the action, its options, the inputs and where to write. Progress goes to standard output as JSON
lines; the result (a summary, candidates or an evaluation) is pickled next to the request. A failure is
reported as a message, with exit code 1. A streamed score job (request["stream"]) stays up and scores batch
after batch as the server hands them over (_stream).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import traceback
from pathlib import Path

TAG = "turnlens-job "  # marks our lines: anything a library prints to standard output is passed over


def _say(message: dict) -> None:
    sys.stdout.write(TAG + json.dumps(message) + "\n")
    sys.stdout.flush()


NICENESS = 10  # below the server: on 2 cores a training job must not slow the pages people review on


def main(path: str) -> int:
    try:
        os.nice(NICENESS)
    except OSError:  # not allowed here: run at the normal priority
        pass
    request = pickle.loads(Path(path).read_bytes())
    from app.jobs.registry import get

    last = [0.0]

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or (total is not None and done >= total):  # at most 4 lines a second
            last[0] = now
            _say({"stage": stage, "done": int(done), "total": None if total is None else int(total)})

    if request.get("stream"):
        return _stream(request, progress)
    try:
        action = get(request["family"], request["module"]).action(request["action"])
        path = None if request["path"] is None else Path(request["path"])
        result = action.run(request["inputs"], request["options"], path, progress)
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the server, which keeps it
        _say({"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc),
              "trace": traceback.format_exc(limit=20)})
        return 1
    Path(request["result"]).write_bytes(pickle.dumps(result))
    _say({"finished": True})
    return 0


def _stream(request: dict, progress) -> int:
    """A streamed score job: load the family's scorer once, then score the batches the server names on standard
    input, one JSON line each ({"batch", "inputs", "result", "done", "total"}), answering {"batch": k} when batch
    k's candidates are written; ends when standard input closes. Progress counts over the whole job (done: the
    turns of the batches before)."""
    from app.jobs.registry import get

    try:
        batch = get(request["family"], request["module"]).batch
        options = request["options"]
        scorer = batch.load(Path(request["path"]), options)
        for line in sys.stdin:
            order = json.loads(line)
            inputs = pickle.loads(Path(order["inputs"]).read_bytes())
            result = batch.score(scorer, inputs, options, lambda stage, done, total, o=order:
                                 progress(stage, o["done"] + done, o["total"]))
            Path(order["result"]).write_bytes(pickle.dumps(result))
            _say({"batch": order["batch"]})
    except Exception as exc:  # noqa: BLE001 - as in main
        _say({"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc),
              "trace": traceback.format_exc(limit=20)})
        return 1
    _say({"finished": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
