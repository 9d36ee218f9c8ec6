"""The job runner: model jobs (train, score, evaluate) queued one at a time and run in the background.

The server process owns the database. For each job it reads the family's inputs from the store, hands them to
a child process (app/jobs/child.py, forked from the jobs' fork server: app/jobs/launch.py) that does the heavy
work without opening the database, and writes what comes back (a checkpoint moved into place, candidates in
one transaction, an evaluation row) only when the child succeeded. So a cancelled or failed job writes no
partial run, candidates or checkpoint; its message is kept in the jobs table.

Except a streamed score job (a family whose BatchScoring has read_batches): the server reads a batch of whole
dialogues, the child (started once, the model loaded once) scores it, the server stores its candidates in
their own transaction, then the next batch; memory stays flat in the size of the log (issue 22). A failure or a
cancel keeps the batches stored before it (the message says how many candidates) and scoring again with the
same checkpoint stores the rest: the import skips candidates already stored with the same value.

Progress (stage, done/total, elapsed, ETA) lives in memory, for every session to read; a job still queued or
running when the server stops is marked interrupted at the next start.

One job at a time: these machines have 2 cores, and a training job uses both.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from app import store
from app.jobs.child import TAG
from app.jobs.launch import ChildProcess
from app.jobs.registry import Family, get
from app.store import jobs as store_jobs


class JobRefusedError(ValueError):
    """A job that cannot be started (read-only mode, nothing trained yet, bad options); the message says why."""


@dataclass(frozen=True)
class JobView:
    """What a page shows of a live or just-finished job."""

    job_id: int
    family: str
    action: str
    dataset: str
    started_by: str | None
    status: str  # queued, running, done, failed, cancelled
    place: int = 0  # 1-based place in the queue while queued
    stage: str = ""
    done: int = 0
    total: int | None = None
    started: float | None = None  # time.monotonic() when it began running
    finished: float | None = None
    message: str | None = None
    result: dict | None = None  # what a finished job wrote (checkpoint, counts, ids), as kept in the jobs table

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left in the current stage, from its rate so far (None when unknown)."""
        if self.status != "running" or not self.total or not self.done or self.started is None:
            return None
        return self.elapsed * (self.total - self.done) / self.done


@dataclass
class _Job:
    view: JobView
    family: Family
    options: dict
    checkpoint: str | None
    out: Path | None = None  # where a train job's checkpoint goes, when not the default folder
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    proc: ChildProcess | None = None
    wrote: bool = False  # stored something although it did not finish (a streamed score job's batches)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:64] or "_"


class JobRunner:
    """One per server process (app/resources.py keeps it). Thread-safe."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, models_dir: str | Path, *, read_only: bool = False,
                 on_write: Callable[[], None] | None = None, keep_finished: int = 20):
        self._conn = conn
        self._models = Path(models_dir)
        self._read_only = read_only
        self._on_write = on_write or (lambda: None)
        self._lock = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._jobs: dict[int, _Job] = {}
        self._keep = keep_finished
        self._stopping = False
        if not read_only:
            store_jobs.mark_interrupted(conn)
        self._thread = threading.Thread(target=self._work, name="turnlens-jobs", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ for the pages

    def submit(self, family: str, action: str, dataset: str, options: dict | None = None, *,
               started_by: str | None = None, checkpoint: str | None = None, out: str | Path | None = None) -> int:
        """Queue a job; returns its id. JobRefusedError (a ValueError) says why one cannot start. checkpoint:
        the one a score or evaluate job uses (default: the newest trained on the dataset); out: the folder a
        train job writes its checkpoint to (default models/<dataset>/<family>/job-<id>; must not hold files)."""
        if self._read_only:
            raise JobRefusedError("this app runs read-only (TURNLENS_READ_ONLY): jobs are switched off")
        fam = get(family)
        try:
            act = fam.action(action)
        except ValueError as exc:
            raise JobRefusedError(str(exc)) from None
        if dataset not in store.list_datasets(self._conn):
            raise JobRefusedError(f"no dataset {dataset!r}")
        try:
            parsed = fam.parse_options(action, options or {})
        except ValueError as exc:
            raise JobRefusedError(str(exc)) from None
        if act.needs_checkpoint:
            checkpoint = checkpoint or store_jobs.get_latest_checkpoint(self._conn, fam.name, dataset)
            if not checkpoint or not Path(checkpoint).exists():
                raise JobRefusedError(f"no trained {fam.title} model for dataset {dataset!r} yet: train one first")
        else:
            checkpoint = None
        if out is not None:
            out = Path(out).resolve()
            if act.output != "checkpoint":
                raise JobRefusedError(f"{fam.name} {action} writes no checkpoint: out applies to train only")
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise JobRefusedError(f"{out} already exists and is not an empty folder: choose a new one")
        job_id = store_jobs.insert_job(self._conn, family=fam.name, action=action, dataset=dataset,
                                       config={**parsed, **({"checkpoint": checkpoint} if checkpoint else {})},
                                       started_by=started_by)
        view = JobView(job_id, fam.name, action, dataset, started_by, "queued")
        with self._lock:
            job = _Job(view, fam, parsed, checkpoint, out)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._renumber()
            self._lock.notify_all()
        return job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; False if it had already finished."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.view.status not in ("queued", "running"):
                return False
            job.cancel.set()
            if job in self._queue:
                self._queue.remove(job)
                self._renumber()
                self._finish(job, "cancelled", "cancelled before it started")
            elif job.proc is not None and job.proc.poll() is None:
                job.proc.terminate()
        return True

    def checkpoints(self, family: str) -> list[tuple[str, int, str]]:
        """(dataset, job id, checkpoint) of the family's newest model trained on each dataset, newest first."""
        return store_jobs.list_latest_checkpoints(self._conn, family)

    def views(self) -> list[JobView]:
        """The jobs this process knows of (live first, then the latest finished), newest first."""
        with self._lock:
            return sorted((j.view for j in self._jobs.values()), key=lambda v: -v.job_id)

    def view(self, job_id: int) -> JobView | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.view

    def wait(self, job_id: int, timeout: float | None = None) -> JobView:
        """Block until the job has finished (for the CLI, `make run` and tests)."""
        with self._lock:
            job = self._jobs[job_id]
        if not job.finished.wait(timeout):
            raise TimeoutError(f"job {job_id} still {job.view.status} after {timeout} s")
        return job.view

    def stop(self) -> None:
        """Cancel everything and end the worker thread (tests; the server just exits)."""
        with self._lock:
            self._stopping = True
            for job in list(self._queue):
                self._queue.remove(job)
                self._finish(job, "cancelled", "the runner stopped")
            running = [j for j in self._jobs.values() if j.view.status == "running"]
            self._lock.notify_all()
        for job in running:
            self.cancel(job.view.job_id)
        self._thread.join(timeout=60)

    # ----------------------------------------------------------------------------------------- worker

    def _renumber(self) -> None:
        for place, job in enumerate(self._queue, start=1):
            job.view = replace(job.view, place=place)

    def _update(self, job: _Job, **changes) -> None:
        with self._lock:
            job.view = replace(job.view, **changes)

    def _finish(self, job: _Job, status: str, message: str | None = None, result: dict | None = None) -> None:
        store_jobs.insert_job_event(self._conn, job.view.job_id, status, message=message, result=result)
        job.view = replace(job.view, status=status, message=message, finished=time.monotonic(), place=0,
                           result=result)
        job.finished.set()
        finished = [j for j in self._jobs.values() if j.finished.is_set()]
        for old in sorted(finished, key=lambda j: j.view.job_id)[:-self._keep]:
            del self._jobs[old.view.job_id]

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                self._renumber()
                job.view = replace(job.view, status="running", started=time.monotonic(), place=0,
                                   stage="reading the data")
            store_jobs.insert_job_event(self._conn, job.view.job_id, "running")
            try:
                status, message, result = self._run(job)
            except Exception as exc:  # noqa: BLE001 - a job's failure must never end the worker
                status, message, result = "failed", f"{type(exc).__name__}: {exc}", None
            with self._lock:
                self._finish(job, status, message, result)
            if status == "done" or job.wrote:  # the pages' caches must see what was stored
                self._on_write()

    def _run(self, job: _Job) -> tuple[str, str | None, dict | None]:
        fam, view = job.family, job.view
        act = fam.action(view.action)
        if act.name == "score" and fam.batch is not None and fam.batch.read_batches is not None:
            return self._run_streamed(job)
        try:
            inputs = act.read(self._conn, view.dataset, job.options)
        except ValueError as exc:
            return "failed", str(exc), None
        folder = self._models / _slug(view.dataset) / fam.name
        folder.mkdir(parents=True, exist_ok=True)
        final = job.out or folder / f"job-{view.job_id}"
        with tempfile.TemporaryDirectory(prefix=f".job-{view.job_id}-", dir=folder) as work:
            partial = Path(work) / "checkpoint"
            path = partial if act.output == "checkpoint" else job.checkpoint
            request = {"family": fam.name, "module": fam.module, "action": view.action, "options": job.options,
                       "inputs": inputs, "result": str(Path(work) / "result.pickle"),
                       "path": None if path is None else str(path)}
            del inputs
            (Path(work) / "request.pickle").write_bytes(pickle.dumps(request))
            error = self._child(job, Path(work) / "request.pickle")
            if job.cancel.is_set():
                return "cancelled", "cancelled while running", None
            if error is not None:
                return "failed", error, None
            outcome = pickle.loads(Path(request["result"]).read_bytes())
            self._update(job, stage="writing")
            return "done", *self._write(job, act, outcome, partial, final)

    def _write(self, job: _Job, act, outcome, partial: Path, final: Path) -> tuple[str, dict]:
        """Write what a successful child returned; (message, result to keep in the jobs table)."""
        fam, view = job.family, job.view
        if act.output == "checkpoint":
            if final.is_dir():  # an empty --out folder: the checkpoint takes its place
                final.rmdir()
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(partial), str(final))  # in place only now: a failed job leaves no checkpoint
            return fam.describe(act.name, outcome), {"checkpoint": str(final.resolve()), "summary": outcome}
        if act.output == "candidates":
            written = store.insert_candidates(self._conn, outcome)
            return fam.describe(act.name, written.rows_added), {
                "checkpoint": job.checkpoint, "candidates_added": written.rows_added,
                "candidates_present": written.rows_already_present}
        if act.output == "evaluation":
            from app.store import evaluations as store_evaluations

            run_id = store_jobs.get_run_for_checkpoint(self._conn, job.checkpoint)
            evaluation_id = store_evaluations.insert_evaluation(self._conn, run_id, view.dataset, outcome)
            return fam.describe(act.name, outcome), {"checkpoint": job.checkpoint, "evaluation_id": evaluation_id}
        summary = act.write(self._conn, view.dataset, outcome)
        return fam.describe(act.name, summary), summary

    def _run_streamed(self, job: _Job) -> tuple[str, str | None, dict | None]:
        """A score job batch by batch (the module docstring says how, and what a failure keeps)."""
        fam, view = job.family, job.view
        try:
            total, batches = fam.batch.read_batches(self._conn, view.dataset, job.options)
        except ValueError as exc:
            return "failed", str(exc), None
        folder = self._models / _slug(view.dataset) / fam.name
        folder.mkdir(parents=True, exist_ok=True)
        added = present = done = 0
        k = -1
        completed = False  # every batch scored and stored (a cancel arriving after that changes nothing)
        failure: str | None = None

        def kept(message: str) -> str:
            stored = added + present
            return message + (f" ({stored:,} candidates of the batches before were stored; scoring again with the "
                              "same model stores the rest)" if stored else "")

        with tempfile.TemporaryDirectory(prefix=f".job-{view.job_id}-", dir=folder) as work:
            request = Path(work) / "request.pickle"
            request.write_bytes(pickle.dumps({"family": fam.name, "module": fam.module, "action": view.action,
                                              "options": job.options, "stream": True, "path": job.checkpoint}))
            errors = Path(work) / "errors.txt"  # the child's standard error
            proc = self._start_child(job, request, errors, stdin=True)
            try:
                for k, inputs in enumerate(batches):
                    if job.cancel.is_set():
                        break
                    order = {"batch": k, "inputs": str(Path(work) / "inputs.pickle"), "done": done,
                             "total": total, "result": str(Path(work) / "result.pickle")}
                    Path(order["inputs"]).write_bytes(pickle.dumps(inputs))
                    done += len(inputs)
                    del inputs
                    try:
                        proc.stdin.write(json.dumps(order) + "\n")
                        proc.stdin.flush()
                    except (BrokenPipeError, OSError):  # the child is gone: _follow says why
                        pass
                    reported = self._follow(job, proc, until="batch")
                    if job.cancel.is_set():
                        break
                    if reported is not None:
                        proc.wait()
                        failure = reported or self._stopped(proc, errors)
                        break
                    self._update(job, stage="writing")
                    written = store.insert_candidates(self._conn, pickle.loads(Path(order["result"]).read_bytes()))
                    added += written.rows_added
                    present += written.rows_already_present
                    job.wrote = job.wrote or written.rows_added > 0
                else:
                    completed = True
            except Exception as exc:  # noqa: BLE001 - the server's side (reading a batch, storing it) failed
                failure = f"{type(exc).__name__}: {exc}"
            finally:
                if proc.stdin and not proc.stdin.closed:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
                if not completed and proc.poll() is None:
                    proc.terminate()
                proc.wait()
                if proc.stdout:
                    proc.stdout.close()
        if failure is not None:
            return "failed", kept(failure), None
        if not completed:
            return "cancelled", kept("cancelled while running"), None
        return "done", fam.describe("score", added), {"checkpoint": job.checkpoint, "candidates_added": added,
                                                       "candidates_present": present, "batches": k + 1}

    def _start_child(self, job: _Job, request: Path, errors: Path, *, stdin: bool = False) -> ChildProcess:
        proc = ChildProcess(request, errors, stdin=stdin)  # forked from the jobs' fork server (app/jobs/launch.py)
        with self._lock:
            job.proc = proc
            if job.cancel.is_set():  # cancelled between reading the data and starting the child
                proc.terminate()
        self._update(job, stage="starting")
        return proc

    def _follow(self, job: _Job, proc: ChildProcess, until: str | None = None) -> str | None:
        """Follow the child's progress lines until one carrying `until` (then None) or the end of its output (then
        the error it reported, "" if none). With until None, read to the end."""
        reported = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(TAG):
                continue
            message = json.loads(line[len(TAG):])
            if "stage" in message:
                self._update(job, stage=message["stage"], done=message["done"], total=message["total"])
            elif "error" in message:
                reported = message["error"]
            elif until is not None and until in message:
                return None
        return reported

    @staticmethod
    def _stopped(proc: ChildProcess, errors: Path) -> str:
        text = errors.read_text(errors="replace") if errors.exists() else ""
        # A native crash: faulthandler's first line says what it was (its stack and module list follow).
        fatal = next((line for line in text.splitlines() if line.startswith("Fatal Python error")), None)
        tail = fatal or text[-1500:].strip()
        code = proc.wait()
        how = f"exit code {code}" if code != -1 else "killed, or a crash in a native library"
        return f"the job's process stopped ({how})" + (f": {tail}" if tail else "")

    def _child(self, job: _Job, request: Path) -> str | None:
        """Run the child and follow its progress; None on success, else the error to keep."""
        errors = request.parent / "errors.txt"  # the child's standard error
        proc = self._start_child(job, request, errors)
        reported = self._follow(job, proc)
        code = proc.wait()
        proc.stdout.close()  # a finished job's view keeps proc: not its socket
        if code == 0:
            return None
        return reported or self._stopped(proc, errors)
