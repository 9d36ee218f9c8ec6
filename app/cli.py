"""The ``turnlens`` command: ingest logs, generate demo data, run model jobs, export, inspect a database, serve the
app."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import duckdb
from tqdm import tqdm

from app import __version__

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
# The labelling tools' formats (analysis/interop); fixed here so building the parser imports nothing heavy.
CANDIDATE_TOOL_FORMATS = ("labelstudio", "argilla", "prodigy")
EXPORT_FILE_FORMATS = ("jsonl", "csv", "parquet")
EXPORT_TOOL_FORMATS = ("labelstudio", "labelstudio-min", "labelstudio-csv", "argilla", "prodigy")


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help="DuckDB file (default: $TURNLENS_DB or data/turnlens.duckdb)")


# Spelled out here, not imported: building the parser must stay light (analysis.wer_normalise imports the
# normaliser package); tests/test_wer_cli.py checks these equal analysis.wer_normalise's.
WER_NORMALISERS = ("raw", "english-v1")
DEFAULT_WER_NORMALISER = "english-v1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnlens", description=__doc__)
    parser.add_argument("--version", action="version", version=f"turnlens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="validate dialogue logs and add them to the database (all or nothing)")
    p.add_argument("paths", nargs="+", type=str,
                   help=".jsonl, .jsonl.gz, .parquet or .csv files, or folders or globs of Parquet parts (hive-"
                        "partitioned folders too: logs/day=2026-12-01/part-0.parquet)")
    p.add_argument("--dataset", default="default", help="dataset name the turns are filed under")
    p.add_argument("--by", default=os.environ.get("USER"), help="who is importing (kept in the import log)")
    p.add_argument("--wer-normaliser", choices=WER_NORMALISERS, default=DEFAULT_WER_NORMALISER,
                   help="the WER normaliser a NEW dataset's figures use by default (every normaliser's counts are "
                        f"stored either way; docs/wer.md); default {DEFAULT_WER_NORMALISER}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--allow-missing-audio", action="store_true",
                   help="accept turns whose audio file does not exist under the audio root ($TURNLENS_AUDIO_ROOT, "
                        "else data/audio); a path leading outside the root is refused all the same")
    _db_arg(p)

    p = sub.add_parser("demo-data", help="generate a simulated log built on real SLURP utterances")
    p.add_argument("--turns", type=int, required=True, help="number of turns (up to millions)")
    p.add_argument("--out", type=Path, required=True, help="output file: .jsonl, .jsonl.gz, .parquet or .csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=["dev", "eval"], default="dev",
                   help="dev: the bundled pool (never the evaluation split); eval: build from SLURP's "
                        "evaluation split, for model evaluation only (needs --slurp-dir)")
    p.add_argument("--slurp-dir", type=Path, default=None, help="SLURP folder, for --split eval")
    p.add_argument("--id-prefix", default=None,
                   help="start of every dialogue id (default 'd', or 'eval-' for --split eval); give each log its "
                        "own prefix to store several in one database")
    p.add_argument("--rephrase", choices=["intent", "meaning"], default="intent",
                   help="how simulated users rephrase after a failure: another sentence of the same intent "
                        "(default), or keeping the meaning (the same sentence again, or the same intent and slots), "
                        "which rewrite mining needs")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("candidates", help="label candidates: import a file, or propose from the logged NLU")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("import", help="validate a candidate file (.jsonl, .jsonl.gz, .parquet), or a folder or glob "
                                       "of Parquet parts, and store it all or nothing")
    c.add_argument("path", type=Path)
    c.add_argument("--format", choices=["turnlens", *CANDIDATE_TOOL_FORMATS], default="turnlens",
                   help="turnlens: the candidate file format (docs/review.md); labelstudio: Label Studio tasks with "
                        "predictions (and annotations); argilla: Argilla records with suggestions (and responses); "
                        "prodigy: Prodigy JSONL tasks (.json arrays or .jsonl; docs/interop.md)")
    _db_arg(c)
    c = csub.add_parser("from-logs", help="the logged NLU intent and slots of every turn, scored by its confidence")
    c.add_argument("--dataset", required=True)
    _db_arg(c)

    p = sub.add_parser("export", help="reviewed labels (or all candidates) with provenance, streamed to a file")
    p.add_argument("--out", type=Path, required=True,
                   help=".jsonl, .csv or .parquet (Parquet: a dataset card, README.md, is written beside it)")
    p.add_argument("--format", choices=[*EXPORT_FILE_FORMATS, *EXPORT_TOOL_FORMATS], default=None,
                   help="default: from --out's suffix (jsonl, csv, parquet); or a labelling tool's shape: "
                        "labelstudio (tasks with annotations), labelstudio-min (JSON-MIN), labelstudio-csv, "
                        "argilla (records with responses), prodigy (db-out JSONL; docs/interop.md)")
    p.add_argument("--what", choices=["accepted", "resolved", "candidates"], default="accepted",
                   help="accepted: accepted or corrected labels (training data); resolved: also rejections; "
                        "candidates: every candidate with its score and resolution")
    p.add_argument("--dataset", required=True)
    p.add_argument("--task", default=None)
    _db_arg(p)

    p = sub.add_parser("simulate-reviews",
                       help="SIMULATED review decisions answered from the log's gold fields, with a stated error "
                            "rate, so the Agreement and Calibration pages have data (analysis/simulated_reviewers.py)")
    p.add_argument("--dataset", required=True, help="a stored dataset whose turns have gold fields")
    p.add_argument("--reviewers", type=int, default=2,
                   help="how many simulated reviewers, 1 to 8, named 'sim-reviewer-a (simulated)', ... (default 2)")
    p.add_argument("--error-rate", type=float, default=0.1,
                   help="each reviewer's chance of misjudging a proposal (rejecting a right one, accepting a wrong "
                        "one), 0 to 0.5 (default 0.1)")
    p.add_argument("--share", type=float, default=0.25,
                   help="share of the candidates with gold that are decided, in (0, 1] (default 0.25: the others "
                        "stay in the review queue for people)")
    p.add_argument("--overlap-share", type=float, default=1.0,
                   help="share of the decided candidates that every reviewer decides (the others get one reviewer "
                        "each), 0 to 1 (default 1: every decided candidate is a pair for the agreement figures)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same decisions (default 0)")
    _db_arg(p)

    from app.jobs.cli import add_parsers as add_job_parsers

    # train, score, evaluate, mine, analyse: one subcommand per family action, from the registry
    add_job_parsers(sub, _db_arg)

    from app import speech_cli

    # speech synthesize / recognise / lm / slurp-log: log files and audio, never the database
    speech_cli.add_parser(sub, _db_arg)

    from app import users_cli

    # users add / list / disable / enable / set-role / set-password: reviewer accounts
    users_cli.add_parser(sub, _db_arg)

    p = sub.add_parser("info", help="what a database holds")
    _db_arg(p)

    p = sub.add_parser("serve", help="run the app (streamlit) on 127.0.0.1, holding the database from the start")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    _db_arg(p)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"turnlens: {message}", file=sys.stderr)
    return code


def _open(args: argparse.Namespace, *, must_exist: bool = False, read_only: bool = False):
    """Open the database named by --db (or the default): (connection, path, exit code). The connection is
    None, after saying plainly what is wrong, when it cannot be opened."""
    from app import store

    db = Path(args.db or store.default_db_path())
    if must_exist and not db.exists():
        return None, db, _fail(f"{db}: no such database (create one with 'turnlens ingest')", EXIT_USAGE)
    if db.exists() and db.is_dir():
        return None, db, _fail(f"{db} is a directory; --db takes a DuckDB file", EXIT_USAGE)
    try:
        return store.connect(db, read_only=read_only), db, EXIT_OK
    except store.StoreLockedError as exc:
        if getattr(args, "command", None) == "job":
            # The app holds the file: it runs the same jobs itself, in the background, without stopping.
            return None, db, _fail(f"{exc}\nWhile the app runs, start the job ({args.action} {args.family}) "
                                   "from its Models page.", EXIT_LOCKED)
        return None, db, _fail(str(exc), EXIT_LOCKED)
    except (duckdb.IOException, duckdb.SerializationException, duckdb.InvalidInputException,
            duckdb.CatalogException) as exc:
        return None, db, _fail(f"{db} cannot be opened as a turnlens database: {str(exc).splitlines()[0]}",
                               EXIT_USAGE)


def cmd_ingest(args: argparse.Namespace) -> int:
    from analysis.logs import LogFormatError, format_problems
    from app import store
    from app.ingest import AudioFilesError, ingest_files

    if not args.dataset.strip():
        return _fail("--dataset must not be empty", EXIT_USAGE)
    conn, db, code = _open(args)
    if conn is None:
        return code
    from app.stage_bars import StageBars

    bars = StageBars(labels={"read": "reading and checking", "wer": "word error counts", "write": "writing"},
                     unit=" turns", disable=args.quiet)
    started = time.perf_counter()
    completed = False
    try:
        result, unknown = ingest_files(conn, [str(p) for p in args.paths], dataset=args.dataset,
                                       imported_by=args.by, progress=bars.update,
                                       allow_missing_audio=args.allow_missing_audio,
                                       wer_normaliser=args.wer_normaliser)
        completed = True
    except AudioFilesError as exc:
        hint = "" if args.allow_missing_audio else \
            "; to accept turns whose audio file is missing, pass --allow-missing-audio"
        return _fail(f"nothing was written; {exc.total:,} problem(s) with audio files:\n"
                     + format_problems(exc.problems)
                     + f"\naudio paths are relative to the audio root {str(exc.root)!r} ($TURNLENS_AUDIO_ROOT); "
                       f"a path leading outside it is never accepted{hint}", EXIT_INVALID)
    except LogFormatError as exc:
        return _fail(f"nothing was written; {exc.total:,} problem(s):\n"
                     + format_problems(exc.problems), EXIT_INVALID)
    except store.IngestConflictError as exc:
        return _fail("nothing was written; the input contradicts the database:\n" + str(exc), EXIT_INVALID)
    finally:
        bars.close(completed=completed)
        conn.close()
    seconds = time.perf_counter() - started
    print(f"{result.rows_read:,} turns read, {result.rows_added:,} added, "
          f"{result.rows_already_present:,} already present, into {db} (dataset {args.dataset!r}) "
          f"in {seconds:.1f} s")
    if unknown:
        print("unknown fields kept in extras: " + ", ".join(f"{k} ({v:,} rows)" for k, v in sorted(unknown.items())))
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from analysis.logs import file_kind
    from analysis.simulate import load_eval_pool, load_pool, simulate_turns, write_log

    if args.turns < 1:
        return _fail("--turns must be at least 1", EXIT_USAGE)
    if file_kind(args.out) is None:
        return _fail(f"{args.out}: unsupported output type; use .jsonl, .jsonl.gz, .parquet or .csv", EXIT_USAGE)
    if args.id_prefix is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", args.id_prefix):
        return _fail(f"--id-prefix: 1 to 32 letters, digits, '_', '.' or '-', got {args.id_prefix!r}", EXIT_USAGE)
    if args.split == "eval":
        if args.slurp_dir is None:
            return _fail("--split eval needs --slurp-dir (the SLURP folder)", EXIT_USAGE)
        pool, prefix = load_eval_pool(args.slurp_dir), args.id_prefix or "eval-"
    else:
        pool, prefix = load_pool(), args.id_prefix or "d"
    bar = None if args.quiet else tqdm(total=args.turns, desc="generating", unit=" turns", file=sys.stderr)

    def progress(done: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n = write_log(simulate_turns(pool, n_turns=args.turns, seed=args.seed, id_prefix=prefix,
                                 rephrase=args.rephrase), args.out,
                  progress=progress)
    if bar is not None:
        bar.close()
    print(f"wrote {n:,} turns to {args.out} in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def cmd_candidates(args: argparse.Namespace) -> int:
    from analysis.candidates import candidates_from_logged_nlu
    from analysis.logs import LogFormatError, format_problems
    from app import store

    conn, db, code = _open(args)
    if conn is None:
        return code
    skipped: dict[str, int] = {}
    try:
        if args.action == "import":
            from analysis.interop import read_candidate_file
            from app.store.candidates import get_turn_texts

            # a tool's adapter checks each item's turn and text against the stored turns, naming file, item, field
            read = read_candidate_file(args.path, fmt=args.format, name=str(args.path),
                                       turn_texts=lambda k: get_turn_texts(conn, k))
            table, skipped = read.table, read.skipped
        else:
            if args.dataset not in store.list_datasets(conn):
                return _fail(f"no dataset {args.dataset!r} in {db}", EXIT_USAGE)
            table = candidates_from_logged_nlu(store.list_nlu_outputs(conn, args.dataset))
        result = store.insert_candidates(conn, table)
    except LogFormatError as exc:
        return _fail(f"nothing was written; {exc.total:,} problem(s):\n" + format_problems(exc.problems),
                     EXIT_INVALID)
    except store.IngestConflictError as exc:
        return _fail("nothing was written; the candidates contradict the database:\n" + str(exc), EXIT_INVALID)
    finally:
        conn.close()
    print(f"{result.rows_read:,} candidates read, {result.rows_added:,} added, "
          f"{result.rows_already_present:,} already present")
    if skipped:  # items that propose nothing are said, not dropped
        print("not imported: " + ", ".join(f"{n:,} {why}" for why, n in skipped.items()))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from app import store

    by_suffix = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
    fmt = args.format or by_suffix.get(args.out.suffix.lower())
    if fmt is None:
        return _fail(f"{args.out}: unsupported output type; use .jsonl, .csv or .parquet, or give --format",
                     EXIT_USAGE)
    if args.format in EXPORT_TOOL_FORMATS:
        from app.store.export import interop_suffix

        suffix = interop_suffix(args.format)
    else:
        suffix = {v: k for k, v in by_suffix.items()}[fmt]
    if args.out.suffix.lower() != suffix:  # a file named for one format holding another would mislead its reader
        return _fail(f"{args.out}: --format {fmt} writes a {suffix} file; name it so", EXIT_USAGE)
    conn, db, code = _open(args, must_exist=True)
    if conn is None:
        return code
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if fmt in EXPORT_TOOL_FORMATS:
        from app.store.export import export_interop

        with conn:
            n, left_out = export_interop(conn, args.out, dataset=args.dataset, kind=args.what, fmt=fmt,
                                         task=args.task)
        print(f"wrote {n:,} items ({args.what}, {fmt}) to {args.out} in {time.perf_counter() - started:.1f} s"
              + (f"; {left_out:,} rows left out: their target is a dialogue or a pair of turns, not one utterance "
                 "(the jsonl and parquet exports hold them)" if left_out else ""))
        return EXIT_OK
    with conn:
        n = store.export_labels(conn, args.out, dataset=args.dataset, kind=args.what, fmt=fmt, task=args.task)
        # Parquet is the Hugging Face format: its dataset card (schema, provenance, licence) goes beside it
        card = store.write_dataset_card(conn, args.out, dataset=args.dataset, kind=args.what,
                                        task=args.task) if fmt == "parquet" else None
    print(f"wrote {n:,} rows ({args.what}) to {args.out} in {time.perf_counter() - started:.1f} s"
          + (f"; its dataset card to {card}" if card else ""))
    return EXIT_OK


def cmd_job(args: argparse.Namespace) -> int:
    """train / score / evaluate / mine / analyse FAMILY (the subcommands app/jobs/cli.py builds)."""
    from app.jobs.cli import run

    return run(args, lambda a: _open(a, must_exist=True))


def cmd_simulate_reviews(args: argparse.Namespace) -> int:
    from analysis.simulated_reviewers import MAX_ERROR_RATE, MAX_REVIEWERS, SimulationConfig, simulate_reviews
    from app import store

    if not 1 <= args.reviewers <= MAX_REVIEWERS:
        return _fail(f"--reviewers must be from 1 to {MAX_REVIEWERS}, got {args.reviewers}", EXIT_USAGE)
    if not 0.0 <= args.error_rate <= MAX_ERROR_RATE:
        return _fail(f"--error-rate must be between 0 and {MAX_ERROR_RATE}, got {args.error_rate}", EXIT_USAGE)
    if not 0.0 < args.share <= 1.0:
        return _fail(f"--share must be above 0 and at most 1, got {args.share}", EXIT_USAGE)
    if not 0.0 <= args.overlap_share <= 1.0:
        return _fail(f"--overlap-share must be between 0 and 1, got {args.overlap_share}", EXIT_USAGE)
    config = SimulationConfig(reviewers=args.reviewers, error_rate=args.error_rate, share=args.share,
                              overlap_share=args.overlap_share, seed=args.seed)
    conn, db, code = _open(args, must_exist=True)
    if conn is None:
        return code
    started = time.perf_counter()
    try:
        if args.dataset not in store.list_datasets(conn):
            return _fail(f"no dataset {args.dataset!r} in {db}", EXIT_USAGE)
        candidates = store.list_candidate_targets(conn, args.dataset).to_pylist()
        if not candidates:
            return _fail(f"dataset {args.dataset!r} has no candidates to decide (propose some first, e.g. "
                         f"'turnlens candidates from-logs --dataset {args.dataset}')", EXIT_USAGE)
        sim = simulate_reviews(candidates, store.list_turn_gold(conn, args.dataset).to_pylist(), config)
        if not sim.decisions:
            return _fail(f"none of the {sim.candidates:,} candidates of {args.dataset!r} was decided: "
                         + ("none has a gold value in the log" if not sim.with_gold else
                            f"--share {args.share} drew none of the {sim.with_gold:,} with gold"), EXIT_INVALID)
        result = store.insert_simulated_decisions(conn, sim.table())
    except store.IngestConflictError as exc:
        return _fail("nothing was written; the simulation contradicts the database:\n" + str(exc), EXIT_INVALID)
    except ValueError as exc:
        return _fail(f"nothing was written: {exc}", EXIT_INVALID)
    finally:
        conn.close()
    skipped = ", ".join(f"{task} {n:,}" for task, n in sim.without_gold.items())
    print(f"SIMULATED reviews (not people's decisions) of dataset {args.dataset!r}, answered from the log's gold "
          f"fields with error rate {args.error_rate:g}, seed {args.seed}:")
    print(f"  {sim.candidates:,} candidates; {sum(sim.without_gold.values()):,} without a gold value skipped"
          + (f" ({skipped})" if skipped else "") + f"; {sim.decided:,} of the {sim.with_gold:,} with gold decided "
          f"(share {args.share:g}), {sim.shared:,} of them by every reviewer")
    for name, (made, erred) in sim.errors().items():
        print(f"  {name}: {made:,} decisions, {erred:,} of them deliberate errors ({erred / max(made, 1):.1%})")
    print("  verdicts: " + ", ".join(f"{v} {n:,}" for v, n in sim.verdicts().items()))
    print(f"{result.rows_added:,} decisions added, {result.rows_already_present:,} already present, into {db} in "
          f"{time.perf_counter() - started:.1f} s")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from app import store

    conn, db, code = _open(args, must_exist=True, read_only=True)
    if conn is None:
        return code
    with conn:
        print(f"{db}: schema version {store.get_schema_version(conn)}")
        for ds in store.list_datasets(conn):
            c = store.get_overview_counts(conn, ds)
            wer = f"{c.pooled_wer:.1%}" if c.pooled_wer is not None else "n/a"
            print(f"  dataset {ds!r}: {c.turns:,} turns, {c.dialogues:,} dialogues, {c.users:,} users, "
                  f"pooled WER {wer} ({store.get_wer_normaliser(conn, ds)} normaliser) over {c.ref_words:,} "
                  "reference words")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from app import serve

    if args.db:
        os.environ["TURNLENS_DB"] = str(args.db)  # the app reads its settings from the environment, in this process
    # app/serve.py opens the database before the server starts (exit 2 or 3 if it cannot), then runs streamlit
    return serve.main(["--server.address", args.address, "--server.port", str(args.port)])


def cmd_speech(args: argparse.Namespace) -> int:
    from app import speech_cli

    return speech_cli.run(args)


def cmd_users(args: argparse.Namespace) -> int:
    from app import users_cli

    return users_cli.run(args, _open)


def main(argv: list[str] | None = None) -> int:
    from analysis.logs import max_line_bytes

    args = build_parser().parse_args(argv)
    try:
        max_line_bytes()  # a bad setting is a usage error, said once, before any work
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    handler = {"ingest": cmd_ingest, "demo-data": cmd_demo_data, "info": cmd_info, "serve": cmd_serve,
               "candidates": cmd_candidates, "export": cmd_export, "simulate-reviews": cmd_simulate_reviews,
               "job": cmd_job, "speech": cmd_speech, "users": cmd_users}
    return handler[args.command](args)


def run_in_process(argv: list[str]) -> int:
    """`turnlens ARGV` in this process, ending as the script would: its exit code; argparse's exits give theirs
    (a usage error 2, --help 0); an exception that escapes is printed with its traceback on standard error and
    is exit code 1, as the interpreter would end it. What make run's build and the CLI tests call."""
    import traceback

    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 - reported as the interpreter would report it
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
