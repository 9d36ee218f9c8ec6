"""`turnlens job FAMILY ACTION --dataset NAME [options]`: a model job run from the command line through the
same runner the app uses (inputs read here, heavy work in a child process, results written on success), with
a progress bar per stage. Its subcommands and options are built from the registry: a new family appears here
by registering, and an unknown family is a usage error listing the known ones."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from app.jobs.registry import Option, load_built_in


def _flag(option: Option) -> str:
    return "--" + option.name.replace("_", "-")


def add_parser(sub: argparse._SubParsersAction, db_arg) -> None:
    """Add `job` with one subcommand per family and action, and one CLI option per family option."""
    p = sub.add_parser("job", help="train, score or evaluate a model family on a stored dataset, as the app's "
                                   "Models page does")
    fsub = p.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for family in load_built_in().values():
        f = fsub.add_parser(family.name, help=family.description)
        asub = f.add_subparsers(dest="action", required=True, metavar="ACTION")
        for action in family.actions():
            a = asub.add_parser(action, help=f"{action} {family.title}")
            a.add_argument("--dataset", required=True)
            a.add_argument("--checkpoint", default=None,
                           help="the checkpoint to use (default: the newest trained by a job on this dataset)"
                           if action != "train" else argparse.SUPPRESS)
            a.add_argument("--quiet", action="store_true", help="no progress bar")
            for option in family.options:
                if action not in option.actions:
                    continue
                if option.type is bool:
                    a.add_argument(_flag(option), dest=option.name, action=argparse.BooleanOptionalAction,
                                   default=None, help=f"{option.help} (default {'on' if option.default else 'off'})")
                else:
                    a.add_argument(_flag(option), dest=option.name, type=option.type, default=None,
                                   help=f"{option.help} (default {option.default})")
            db_arg(a)


def run(args: argparse.Namespace, open_db) -> int:
    """Run the job to its end; exit 0 when done, 1 when it failed, 2 when it was refused."""
    from app.jobs.registry import get
    from app.jobs.runner import JobRefusedError, JobRunner

    family = get(args.family)
    conn, db, code = open_db(args)
    if conn is None:
        return code
    options = {o.name: getattr(args, o.name) for o in family.options
               if args.action in o.actions and getattr(args, o.name, None) is not None}
    runner = JobRunner(conn, Path(db).resolve().parent / "models")
    bar = tqdm(desc=args.action, file=sys.stderr, disable=args.quiet)
    started = time.perf_counter()
    try:
        try:
            job_id = runner.submit(family.name, args.action, args.dataset, options, started_by="cli",
                                   checkpoint=getattr(args, "checkpoint", None))
        except JobRefusedError as exc:
            print(f"turnlens: {exc}", file=sys.stderr)
            return 2
        stage = ""
        while True:
            view = runner.view(job_id)
            if view.stage != stage:  # one bar per stage
                stage = view.stage
                bar.set_description(stage)
                bar.reset(total=view.total)
            bar.total = view.total
            bar.update(view.done - bar.n)
            if view.status not in ("queued", "running"):
                break
            time.sleep(0.2)
    finally:
        bar.close()
        runner.stop()
        conn.close()
    seconds = time.perf_counter() - started
    if view.status != "done":
        print(f"turnlens: job #{job_id} {view.status}: {view.message}", file=sys.stderr)
        return 1
    print(f"job #{job_id} {family.name} {args.action} on {args.dataset!r}: {view.message} in {seconds:.0f} s")
    return 0
