"""`turnlens ACTION FAMILY --dataset NAME [options]` (train, score, evaluate, mine, analyse): a job run from
the command line through the same runner the app uses (inputs read here, heavy work in a child process,
results written on success), with a progress bar per stage.

The subcommands and their options are built from the registry: a new family, or a new action of one, appears
here by registering; an unknown family is a usage error listing the known ones (argparse's choices)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.jobs.registry import Family, Option, load_built_in
from app.stage_bars import StageBars

_HELP = {"train": "train a model family on a stored dataset (a fifth of its dialogues held out by default)",
         "score": "score a stored dataset with a family's newest trained model; its proposals become candidates",
         "evaluate": "evaluate a family's newest model on the dataset's held-out dialogues; stored with its run"}


def _flag(option: Option) -> str:
    return "--" + option.name.replace("_", "-")


def _add_option(a: argparse.ArgumentParser, option: Option) -> None:
    if option.type is bool:
        a.add_argument(_flag(option), dest=option.name, action=argparse.BooleanOptionalAction, default=None,
                       help=f"{option.help} (default {'on' if option.default else 'off'})")
    else:
        a.add_argument(_flag(option), dest=option.name, type=option.type, default=None,
                       choices=option.choices, help=f"{option.help} (default {option.default!r})")


def add_parsers(sub: argparse._SubParsersAction, db_arg) -> None:
    """One subcommand per action any family has, with one sub-subcommand per family that has it."""
    by_action: dict[str, list[Family]] = {}
    for family in load_built_in().values():
        for action in family.actions():
            by_action.setdefault(action, []).append(family)
    for action, families in by_action.items():
        helps = {f.action(action).help for f in families} - {""}
        p = sub.add_parser(action, help=_HELP.get(action) or "; ".join(sorted(helps)) or f"{action} a family")
        fsub = p.add_subparsers(dest="family", required=True, metavar="FAMILY",
                                title=f"families with a {action} action")
        for family in families:
            a = fsub.add_parser(family.name, help=family.description)
            a.set_defaults(action=action, command="job")
            engine = action == "score" and family.batch is not None
            # with --engine the turns come from --input, and --dataset only names whose newest model to use
            a.add_argument("--dataset", required=not engine)
            if family.action(action).output == "checkpoint":
                a.add_argument("--out", type=Path, default=None,
                               help="the folder to write the checkpoint to (default: models/<dataset>/<family>/"
                                    "job-<id> beside the database); must be new or empty")
            if family.action(action).needs_checkpoint:
                a.add_argument("--checkpoint", "--model-dir", dest="checkpoint", default=None,
                               help="the checkpoint folder to use (default: the newest trained by a job on this "
                                    "dataset)")
            a.add_argument("--quiet", action="store_true", help="no progress bar")
            if engine:
                _add_engine_options(a)
            for option in family.options:
                if action in option.actions:
                    _add_option(a, option)
            db_arg(a)


def _add_engine_options(a: argparse.ArgumentParser) -> None:
    g = a.add_argument_group("scoring on an engine (docs/scale.md), instead of a stored dataset")
    g.add_argument("--engine", choices=("ray",), default=None,
                   help="score the log's Parquet parts on Ray (needs the scale extra) and write candidate Parquet "
                        "parts for `turnlens candidates import`; the database is only read for --dataset's model")
    g.add_argument("--input", help="the log's Parquet parts: a folder (hive-partitioned is fine), a glob, or an "
                                   "fsspec URL of either (s3://bucket/logs/)")
    g.add_argument("--output", help="a new or empty folder (or fsspec URL) for the candidate parts")
    g.add_argument("--address", default=None, help="a running Ray cluster's HOST:PORT (default: start a local one)")
    g.add_argument("--workers", type=int, default=2, help="actors scoring at once, each holding the model (a local "
                                                          "cluster: a CPU for each, and one for reading); default 2")


def run(args: argparse.Namespace, open_db) -> int:
    """Run the job to its end; exit 0 when done, 1 when it failed, 2 when it was refused."""
    from app.jobs.registry import get
    from app.jobs.runner import JobRefusedError, JobRunner

    family = get(args.family)
    options = {o.name: getattr(args, o.name) for o in family.options
               if args.action in o.actions and getattr(args, o.name, None) is not None}
    try:
        family.parse_options(args.action, options)
    except ValueError as exc:  # before opening the database: a bad value is a usage error
        print(f"turnlens: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "engine", None):
        return _run_on_engine(args, family, options, open_db)
    if not args.dataset:
        print(f"turnlens: {args.action} {family.name}: --dataset is required (or --engine ray with --input and "
              "--output)", file=sys.stderr)
        return 2
    conn, db, code = open_db(args)
    if conn is None:
        return code
    runner = JobRunner(conn, Path(db).resolve().parent / "models")
    bars = StageBars(disable=args.quiet)
    started = time.perf_counter()
    view = None
    try:
        try:
            job_id = runner.submit(family.name, args.action, args.dataset, options, started_by="cli",
                                   checkpoint=getattr(args, "checkpoint", None), out=getattr(args, "out", None))
        except JobRefusedError as exc:
            print(f"turnlens: {exc}", file=sys.stderr)
            return 2
        while True:
            view = runner.view(job_id)
            if view.status not in ("queued", "running"):
                break
            if view.stage:
                bars.update(view.stage, view.done, view.total)
            time.sleep(0.2)
    finally:
        bars.close(completed=view is not None and view.status == "done")
        runner.stop()
        conn.close()
    seconds = time.perf_counter() - started
    if view.status != "done":
        print(f"turnlens: job #{job_id} {view.status}: {view.message}", file=sys.stderr)
        return 1
    print(f"job #{job_id} {family.name} {args.action} on {args.dataset!r}: {view.message} in {seconds:.0f} s")
    result = view.result or {}
    if result.get("checkpoint") and args.action == "train":
        print(f"checkpoint: {result['checkpoint']}")
    return 0


def _engine_checkpoint(args: argparse.Namespace, family: Family, open_db) -> tuple[str | None, int]:
    """(--checkpoint, or the newest model trained by a job on --dataset; exit code 0) or (None, exit code)."""
    if args.checkpoint:
        return args.checkpoint, 0
    if not args.dataset:
        print(f"turnlens: score {family.name} --engine: give --checkpoint FOLDER, or --dataset NAME to use the "
              "newest model trained on it", file=sys.stderr)
        return None, 2
    from app.store import jobs as store_jobs

    conn, _, code = open_db(args)
    if conn is None:
        return None, code
    try:
        checkpoint = store_jobs.get_latest_checkpoint(conn, family.name, args.dataset)
    finally:
        conn.close()  # a cluster run can take long: the database is not held meanwhile
    if not checkpoint:
        print(f"turnlens: no trained {family.title} model for dataset {args.dataset!r} yet: train one first",
              file=sys.stderr)
        return None, 2
    return checkpoint, 0


def _run_on_engine(args: argparse.Namespace, family: Family, options: dict, open_db) -> int:
    """`turnlens score FAMILY --engine ray`: exit 0 when done, 1 when the run failed, 2 when it was refused."""
    from app.engines.ray_scoring import EngineError, EngineRunError, score_on_ray

    if not args.input or not args.output:
        print("turnlens: --engine needs --input (the log's Parquet parts) and --output (a folder for the "
              "candidates)", file=sys.stderr)
        return 2
    checkpoint, code = _engine_checkpoint(args, family, open_db)
    if checkpoint is None:
        return code
    try:
        run = score_on_ray(family.name, source=args.input, output=args.output, checkpoint=checkpoint,
                           options=options, address=args.address, workers=args.workers)
    except EngineError as exc:
        print(f"turnlens: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, EngineRunError) else 2
    print(f"{family.name} on {run.engine} ({run.address}, {run.workers} workers): {run.turns:,} turns from "
          f"{run.parts_read} parts -> {run.candidates:,} candidates in {run.files} parts at {run.output} in "
          f"{run.seconds:.1f} s; load them with `turnlens candidates import {run.output}`")
    return 0
