"""Scoring on Ray: `turnlens score FAMILY --engine ray --input PARTS --output FOLDER`.

Ray Data reads the log's Parquet parts (a folder, glob or fsspec URL: analysis.parquet_parts), an actor pool scores
them batch by batch with the family's batch scorer (registry.BatchScoring, the function the local score action runs
on the whole dataset), and each actor writes its candidates as Parquet parts (app/engines/candidate_parts.py) that
`turnlens candidates import FOLDER` loads. The database is never opened: a cluster needs only the parts and the
model.

- The model is loaded once, in the driver, and shipped to the actors through Ray's object store: workers need no
  access to the checkpoint folder, only turnlens and its dependencies installed (docs/scale.md).
- A family whose model reads a turn's dialogue context (BatchScoring.whole_dialogues) gets whole dialogues per
  batch: the rows are grouped by a stable hash of dialogue_id into buckets of about batch_turns turns, so a dialogue
  split across parts (a day boundary) is still scored whole.
- Output is written into a hidden folder beside the final parts (`.partial-<id>/`, which readers skip) and moved
  into place only when every batch succeeded, then `_turnlens_scoring.json` (the run's provenance and counts) is
  written last: a failed run leaves no parts to import.

Ray is optional (the `scale` extra): only this module imports it, and only when called.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from analysis.logs import LogFormatError
from analysis.parquet_parts import Part, is_url, list_parts
from app import store
from app.engines import candidate_parts, log_batches
from app.jobs.registry import Family, get

MANIFEST = "_turnlens_scoring.json"
BATCH_TURNS = 4096  # turns per batch: large enough that the per-batch store (~65 ms) is small beside scoring
_BUCKET = "__turnlens_bucket"
_PATH = "__turnlens_path"


class EngineError(ValueError):
    """A run that cannot start or did not finish; the message says why and what to do."""


class EngineRunError(EngineError):
    """A run that started and failed on its input (an invalid row, values Parquet cannot hold); nothing was kept."""


class BatchError(Exception):
    """A batch an actor could not score because of its input (an invalid row, values Parquet cannot hold): one plain
    message, so Ray can carry it back to the driver (a LogFormatError's problems list does not deserialise)."""


@dataclass(frozen=True)
class RayRun:
    """What a finished run did (also written to the output's _turnlens_scoring.json)."""

    family: str
    input: str
    output: str
    checkpoint: str
    model_name: str
    model_version: str
    engine: str
    address: str  # the cluster's address, or "local" for one started for this run
    workers: int
    parts_read: int
    turns: int
    batches: int
    batches_with_nothing_to_score: int
    candidates: int
    files: int
    actors_used: int  # distinct actor processes that scored a batch
    startup_seconds: float  # connecting to the cluster (or starting the local one)
    seconds: float  # from connected to the last part in place
    started_at: str
    options: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ the actor

class _Scorer:
    """One actor of the pool: holds the family's loaded model and scores batch after batch."""

    def __init__(self, family: str, module: str, loaded: Any, options: dict, filesystem, folder: str,
                 provenance: dict):
        import ray

        self.family = get(family, module)
        # fetched from the object store once per actor (Ray Data passes constructor arguments as they are)
        self.loaded = ray.get(loaded) if isinstance(loaded, ray.ObjectRef) else loaded
        self.options = options
        self.filesystem = filesystem
        self.folder = folder
        self.provenance = provenance

    def __call__(self, batch: pa.Table) -> pa.Table:
        parts = sorted(set(batch.column(_PATH).to_pylist()))
        raw = batch.drop_columns([c for c in (_PATH, _BUCKET) if c in batch.column_names])
        try:
            inputs = log_batches.score_inputs(self.family, raw, self.options, parts)
        except log_batches.NothingToScore:
            return _summary(batch.num_rows, 0, [], empty=True)
        except (LogFormatError, store.IngestConflictError) as exc:
            raise BatchError(str(exc)) from None
        table = self.family.batch.score(self.loaded, inputs, self.options, None)
        try:
            written = candidate_parts.write_parts(table, self.filesystem, self.folder,
                                                  {**self.provenance, "input_parts": json.dumps(parts)})
        except candidate_parts.UnwritableValueError as exc:
            raise BatchError(str(exc)) from None
        return _summary(batch.num_rows, table.num_rows, [p for p, _ in written], empty=False)


def _summary(turns: int, candidates: int, files: list[str], *, empty: bool) -> pa.Table:
    return pa.table({"turns": [turns], "candidates": [candidates], "files": [files], "empty": [empty],
                     "pid": [os.getpid()]})


def _add_bucket(batch: pa.Table, buckets: int) -> pa.Table:
    # crc32, not hash(): the same dialogue must land in the same bucket in every worker process
    ids = batch.column("dialogue_id").to_pylist() if "dialogue_id" in batch.column_names else [None] * len(batch)
    return batch.append_column(_BUCKET, pa.array([zlib.crc32(str(d).encode()) % buckets for d in ids],
                                                 type=pa.int64()))


# ------------------------------------------------------------------------------------------------ the driver

def _family(name: str) -> Family:
    family = get(name)
    if family.batch is None:
        why = ("its proposals come from the training run of the dataset it was trained on, not from scoring turns"
               if not family.scores_other_datasets else "it has no batch scorer")
        raise EngineError(f"{family.name} cannot be scored on an engine: {why}. Use `turnlens score {family.name} "
                          "--dataset NAME` instead.")
    return family


def _filesystem(location: str):
    """(pyarrow filesystem, path on it) for a local path or an fsspec URL."""
    import fsspec
    from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

    if not is_url(location):
        return LocalFileSystem(), str(Path(location).resolve())
    fs, path = fsspec.core.url_to_fs(location)
    return PyFileSystem(FSSpecHandler(fs)), path


def _check_output(output: str):
    from pyarrow.fs import FileSelector, FileType

    filesystem, root = _filesystem(output)
    info = filesystem.get_file_info(root)
    if info.type == FileType.File:
        raise EngineError(f"--output {output} is a file: give a new or empty folder")
    if info.type == FileType.Directory and filesystem.get_file_info(FileSelector(root)):
        raise EngineError(f"--output {output} is not empty: give a new or empty folder (runs are not mixed)")
    return filesystem, root


def _check_address(address: str) -> None:
    """Fail fast, and clearly, on an address no cluster listens on (Ray itself retries for about a minute)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"--address {address!r}: expected HOST:PORT of a Ray cluster's head (e.g. 10.0.0.5:6379, "
                          "as `ray start --head` prints), or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise EngineError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with `ray start "
                          "--head` on that machine, or leave out --address to start a local one") from None


def _connect(ray, address: str | None, workers: int) -> bool:
    """Connect to the cluster (or start a local one); True when this call started the connection."""
    if address:
        _check_address(address)
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use that cluster
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # a local cluster without the dashboard: a CPU per scoring actor and one for the tasks that read and group
        # the rows (actors hold their CPU for the whole run: with none left, the reads never start). Ray 2.58's
        # servers listen on every interface whatever node address is given (docs/scale.md).
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
    return True


def score_on_ray(family: str, *, source: str, output: str, checkpoint: str | Path, options: dict | None = None,
                 address: str | None = None, workers: int = 2, batch_turns: int = BATCH_TURNS) -> RayRun:
    """Score the log's Parquet parts at source with the family's model at checkpoint, writing candidate Parquet
    parts to output (a new or empty folder, local or an fsspec URL). EngineError says why a run cannot start or
    failed; nothing is left to import then."""
    if workers < 1:
        raise EngineError("--workers must be at least 1")
    fam = _family(family)
    try:
        parsed = fam.parse_options("score", options or {})
        parts = list_parts(source)
    except (ValueError, LogFormatError) as exc:
        raise EngineError(str(exc)) from None
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise EngineError(f"no trained {fam.title} model at {checkpoint}: train one first (`turnlens train {fam.name} "
                          "--dataset NAME`) or pass --checkpoint")
    out_fs, out_root = _check_output(output)
    try:
        import ray
        from ray.data.context import DataContext, ShuffleStrategy
    except ImportError:
        raise EngineError("Ray is not installed: pip install 'turnlens[scale]' (make install does)") from None
    loaded = fam.batch.load(checkpoint, parsed)  # once, here: a broken checkpoint fails before any cluster starts
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    engine = f"ray {ray.__version__}"
    provenance = {"engine": engine, "family": fam.name, "input": source, "started_at": started_at,
                  "model_name": loaded.run[0], "model_version": loaded.run[1]}
    partial = f"{out_root.rstrip('/')}/.partial-{uuid.uuid4().hex[:12]}"
    clock = time.perf_counter()
    owns = _connect(ray, address, workers)
    startup, clock = time.perf_counter() - clock, time.perf_counter()
    try:
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        # sort-based shuffle: Ray's default hash shuffle starts aggregator actors that need CPUs of their own
        ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        summaries = _run(ray, fam, parts, parsed, loaded, out_fs, partial, provenance, workers, batch_turns, source,
                         fixed_pool=owns and not address)
        files = _publish(out_fs, partial, out_root)
    except BaseException:
        _remove(out_fs, partial)
        raise
    finally:
        if owns:
            ray.shutdown()
    run = RayRun(family=fam.name, input=source, output=output, checkpoint=str(checkpoint.resolve()),
                 model_name=loaded.run[0], model_version=loaded.run[1], engine=engine,
                 address=address or "local", workers=workers, parts_read=len(parts),
                 turns=sum(s["turns"] for s in summaries), batches=len(summaries),
                 batches_with_nothing_to_score=sum(s["empty"] for s in summaries),
                 candidates=sum(s["candidates"] for s in summaries), files=files,
                 actors_used=len({s["pid"] for s in summaries}), startup_seconds=round(startup, 3),
                 seconds=round(time.perf_counter() - clock, 3),
                 started_at=started_at, options=parsed)
    with out_fs.open_output_stream(f"{out_root.rstrip('/')}/{MANIFEST}") as f:
        f.write(json.dumps(asdict(run), indent=1).encode())
    return run


def _run(ray, fam: Family, parts: list[Part], options: dict, loaded, out_fs, partial: str, provenance: dict,
         workers: int, batch_turns: int, source: str, *, fixed_pool: bool) -> list[dict]:
    in_fs, _ = _filesystem(source) if is_url(source) else (None, None)
    paths = [p.path if not is_url(p.path) else p.path.split("://", 1)[1] for p in parts]
    # partitioning=None: the hive keys of a path are not log fields (analysis.parquet_parts)
    ds = ray.data.read_parquet(paths, filesystem=in_fs, partitioning=None, include_paths=True)
    ds = ds.rename_columns({"path": _PATH})
    scorer = dict(fn_constructor_args=(fam.name, fam.module, ray.put(loaded), options, out_fs, partial, provenance),
                  batch_format="pyarrow", num_cpus=1,
                  # on the local cluster started for this run (a CPU more than workers): all the actors from the
                  # start. On a cluster of unknown size, from one actor up to `workers`: a pool that took every CPU
                  # at the start would starve the tasks that read and group the rows.
                  concurrency=workers if fixed_pool else (1, workers))
    if fam.batch.whole_dialogues:
        buckets = max(workers, math.ceil(ds.count() / batch_turns))
        ds = ds.map_batches(_add_bucket, fn_kwargs={"buckets": buckets}, batch_format="pyarrow")
        out = ds.groupby(_BUCKET, num_partitions=buckets).map_groups(_Scorer, **scorer)
    else:
        out = ds.map_batches(_Scorer, batch_size=batch_turns, **scorer)
    try:
        return out.take_all()
    except Exception as exc:  # a worker's error arrives wrapped (by Ray Data, then Ray): find the batch's own
        found: BaseException | None = exc
        for _ in range(10):
            if found is None or isinstance(found, BatchError):
                break
            found = getattr(found, "cause", None) or found.__cause__ or found.__context__
        if isinstance(found, BatchError):
            raise EngineRunError(str(found.args[0]) if found.args else str(found)) from None
        raise


def _publish(filesystem, partial: str, root: str) -> int:
    """Move the parts from the hidden partial folder into place; returns how many."""
    from pyarrow.fs import FileSelector, FileType

    moved = 0
    for info in filesystem.get_file_info(FileSelector(partial, recursive=True)):
        if info.type != FileType.File:
            continue
        target = f"{root.rstrip('/')}/{info.path[len(partial.rstrip('/')) + 1:]}"
        filesystem.create_dir(target.rpartition("/")[0], recursive=True)
        filesystem.move(info.path, target)
        moved += 1
    _remove(filesystem, partial)
    return moved


def _remove(filesystem, folder: str) -> None:
    from pyarrow.fs import FileType

    if filesystem.get_file_info(folder).type == FileType.Directory:
        filesystem.delete_dir(folder)
