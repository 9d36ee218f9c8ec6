"""The ``turnlens`` command: ingest logs, generate demo data, inspect a database, serve the app."""

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


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help="DuckDB file (default: $TURNLENS_DB or data/turnlens.duckdb)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnlens", description=__doc__)
    parser.add_argument("--version", action="version", version=f"turnlens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="validate dialogue logs and add them to the database (all or nothing)")
    p.add_argument("paths", nargs="+", type=Path, help=".jsonl, .jsonl.gz, .parquet or .csv files")
    p.add_argument("--dataset", default="default", help="dataset name the turns are filed under")
    p.add_argument("--by", default=os.environ.get("USER"), help="who is importing (kept in the import log)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
    c = csub.add_parser("import", help="validate a candidate file (.jsonl, .jsonl.gz, .parquet) and store it")
    c.add_argument("path", type=Path)
    _db_arg(c)
    c = csub.add_parser("from-logs", help="the logged NLU intent and slots of every turn, scored by its confidence")
    c.add_argument("--dataset", required=True)
    _db_arg(c)

    p = sub.add_parser("export", help="reviewed labels (or all candidates) with provenance, streamed to a file")
    p.add_argument("--out", type=Path, required=True, help=".jsonl, .csv or .parquet")
    p.add_argument("--what", choices=["accepted", "resolved", "candidates"], default="accepted",
                   help="accepted: accepted or corrected labels (training data); resolved: also rejections; "
                        "candidates: every candidate with its score and resolution")
    p.add_argument("--dataset", required=True)
    p.add_argument("--task", default=None)
    _db_arg(p)

    p = sub.add_parser("train", help="train a model on a stored dataset")
    tsub = p.add_subparsers(dest="model", required=True)
    t = tsub.add_parser("failure-points", help="the failure-point model (docs/results/failure-points.md)")
    t.add_argument("--dataset", required=True, help="turns with gold_failure_point (or reviewed labels)")
    t.add_argument("--out", type=Path, default=Path("models/failure-points"), help="checkpoint folder")
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default: the evaluated configuration's)")
    t.add_argument("--with-text", action="store_true",
                   help="also read the texts (MiniLM vectors of request, response and following requests); off by "
                        "default: on dev-split validation the text-reading models scored lower")
    t.add_argument("--text-dropout", type=float, default=None,
                   help="probability of blanking each text input while training, in [0, 1) (default: the "
                        "evaluated configuration's)")
    t.add_argument("--with-reviewed", action="store_true",
                   help="use failure points people accepted or corrected in review (they win over gold)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(t)

    t = tsub.add_parser("labels", help="the label-generation model (docs/results/label-generation.md)")
    t.add_argument("--dataset", required=True, help="turns with gold intents (or reviewed labels)")
    t.add_argument("--out", type=Path, default=Path("models/labels"), help="checkpoint folder")
    t.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default 10)")
    t.add_argument("--pretrain-epochs", type=int, default=None,
                   help="swapped-response pretraining epochs before fine-tuning (default 3; 0: none)")
    t.add_argument("--no-context", action="store_true", help="each turn sees only itself (the ablation)")
    t.add_argument("--finetune-encoder", action="store_true",
                   help="train the sentence encoder too instead of reading frozen cached vectors (much slower)")
    t.add_argument("--with-reviewed", action="store_true",
                   help="use labels people accepted or corrected in review (they win over gold)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(t)

    t = tsub.add_parser("skills", help="the skill router (docs/results/skill-routing.md)")
    t.add_argument("--dataset", required=True, help="turns with a routed skill (response_skill)")
    t.add_argument("--out", type=Path, default=Path("models/skills"), help="checkpoint folder")
    t.add_argument("--epochs", type=int, default=None, help="shortlister and re-ranker epochs (default 8)")
    t.add_argument("--pseudo-labels", action="store_true", help="train with the pseudo-labels the dynamics propose")
    t.add_argument("--negative-feedback", action="store_true", help="penalise failed (request, skill) pairs")
    t.add_argument("--self-distill", action="store_true", help="moving averages of earlier epochs as soft targets")
    t.add_argument("--p", type=int, default=None, help="pseudo-labels: among the top p (default 2)")
    t.add_argument("--r", type=int, default=None, help="pseudo-labels: for r consecutive epochs (default 4)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(t)

    p = sub.add_parser("score", help="score a stored dataset with a trained model; scores become candidates")
    ssub = p.add_subparsers(dest="model", required=True)
    t = ssub.add_parser("failure-points", help="each turn's most likely failure point, as a review candidate")
    t.add_argument("--dataset", required=True)
    t.add_argument("--model-dir", type=Path, default=Path("models/failure-points"))
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(t)
    t = ssub.add_parser("skills", help="the router's pseudo-labels on its training dataset, as `skill` candidates")
    t.add_argument("--dataset", required=True, help="the dataset the router was trained on")
    t.add_argument("--model-dir", type=Path, default=Path("models/skills"))
    t.add_argument("--p", type=int, default=None, help="among the top p (default: the training config's)")
    t.add_argument("--r", type=int, default=None, help="for r consecutive epochs (default: the training config's)")
    _db_arg(t)
    t = ssub.add_parser("labels", help="intent, slots, goal start, goal success and defect per turn, as candidates")
    t.add_argument("--dataset", required=True)
    t.add_argument("--model-dir", type=Path, default=Path("models/labels"))
    t.add_argument("--tasks", default="intent,slots,goal_start,goal_success,defect",
                   help="comma-separated tasks to write candidates for (default: all)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _db_arg(t)

    p = sub.add_parser("mine", help="mine a stored dataset for something to review")
    msub = p.add_subparsers(dest="what", required=True)
    t = msub.add_parser("rewrites", help="query rewrites from rephrase chains, replayed on a later period "
                                         "(docs/rewrites.md)")
    t.add_argument("--dataset", required=True)
    t.add_argument("--evaluate-from", type=_iso_time, default=None,
                   help="start of the held-out evaluation period (ISO 8601); default: the last --evaluate-days")
    t.add_argument("--evaluate-days", type=float, default=14.0,
                   help="days held out at the end when the log has gold labels (default 14; 0: mine everything)")
    t.add_argument("--states", choices=("utterance", "interpretation"), default="utterance")
    t.add_argument("--min-support", type=int, default=None)
    t.add_argument("--min-failure-rate", type=float, default=None)
    t.add_argument("--min-target-support", type=int, default=None)
    t.add_argument("--min-gain", type=float, default=None)
    t.add_argument("--min-reach", type=float, default=None)
    t.add_argument("--session-gap", type=float, default=None, help="seconds between sessions (default 180)")
    t.add_argument("--no-online", action="store_true", help="skip the online (retrieval) rewriter")
    t.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    t.add_argument("--quiet", action="store_true", help="no progress messages")
    _db_arg(t)

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

    from app.jobs.cli import add_parser as add_job_parser

    add_job_parser(sub, _db_arg)

    p = sub.add_parser("info", help="what a database holds")
    _db_arg(p)

    p = sub.add_parser("serve", help="run the app (streamlit) on 127.0.0.1, holding the database from the start")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    _db_arg(p)
    return parser


def _iso_time(text: str):
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_mine(args: argparse.Namespace) -> int:
    from analysis.rewrites.mining import MiningConfig
    from analysis.rewrites.pipeline import PipelineConfig
    from app import store
    from app.jobs import rewrites as rewrite_jobs

    overrides = {k: v for k, v in (("min_support", args.min_support), ("min_failure_rate", args.min_failure_rate),
                                   ("min_target_support", args.min_target_support), ("min_gain", args.min_gain),
                                   ("min_reach", args.min_reach)) if v is not None}
    try:
        mining = MiningConfig(states=args.states, **overrides)
        if args.n_boot < 0:
            raise ValueError(f"--n-boot must be >= 0, got {args.n_boot}")
        if not args.evaluate_days >= 0:
            raise ValueError(f"--evaluate-days must be >= 0, got {args.evaluate_days}")
        config = PipelineConfig(mining=mining, with_online=not args.no_online, n_boot=args.n_boot,
                                **({"session_gap": args.session_gap} if args.session_gap is not None else {}))
        if config.session_gap <= 0:
            raise ValueError(f"--session-gap must be positive, got {config.session_gap}")
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    conn, _db, code = _open(args, must_exist=True)
    if conn is None:
        return code
    started = time.perf_counter()

    def say(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr)

    try:
        if args.dataset not in store.list_datasets(conn):
            return _fail(f"no dataset {args.dataset!r} in the database", EXIT_USAGE)
        out = rewrite_jobs.mine(conn, args.dataset, config=config, evaluate_from=args.evaluate_from,
                                evaluate_days=args.evaluate_days, progress=say)
    except (ValueError, store.IngestConflictError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    finally:
        conn.close()
    print(f"run {out['run_id']}: {out['rewrites']:,} rewrites mined from {out['mining_turns']:,} turns "
          f"({out['rephrases']:,} rephrases) in {time.perf_counter() - started:.0f} s; stored as `rewrite` "
          "candidates for review")
    if out["evaluate_from"]:
        print(f"  replayed on {out['eval_turns']:,} turns from {out['evaluate_from']}:")
        for name, rep in out["overall"].items():
            ratio = rep["win_loss_ratio"]
            print(f"  {name:>22}: {rep['rewritten']:,} rewritten, {rep['wins']:,} wins, {rep['losses']:,} losses, "
                  f"win/loss {'n/a' if ratio != ratio else f'{ratio:.1f}'}; defect rate "
                  f"{rep['defect_rate_without']:.1%} -> {rep['defect_rate_with']:.1%}")
        print(f"  {out['retired']} rewrite(s) retired by their Beta posterior")
    else:
        print("  no evaluation period (no gold labels, or --evaluate-days 0)")
    return EXIT_OK


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
        if getattr(args, "command", None) in ("train", "score", "job"):
            # The app holds the file: it runs the same jobs itself, in the background, without stopping.
            return None, db, _fail(f"{exc}\nWhile the app runs, train, score and evaluate from its Models page.",
                                   EXIT_LOCKED)
        return None, db, _fail(str(exc), EXIT_LOCKED)
    except (duckdb.IOException, duckdb.SerializationException, duckdb.InvalidInputException,
            duckdb.CatalogException) as exc:
        return None, db, _fail(f"{db} cannot be opened as a turnlens database: {str(exc).splitlines()[0]}",
                               EXIT_USAGE)


def cmd_ingest(args: argparse.Namespace) -> int:
    from analysis.logs import LogFormatError, format_problems
    from app import store
    from app.ingest import ingest_files

    if not args.dataset.strip():
        return _fail("--dataset must not be empty", EXIT_USAGE)
    conn, db, code = _open(args)
    if conn is None:
        return code
    labels = {"read": "reading and checking", "wer": "word error counts", "write": "writing"}
    bar = None if args.quiet else tqdm(desc=labels["read"], unit=" turns", file=sys.stderr)
    stage_now = ["read"]

    def progress(stage: str, done: int, total: int | None) -> None:
        if bar is None:
            return
        if stage != stage_now[0]:  # one bar, reset for each stage
            stage_now[0] = stage
            bar.reset(total=total)
            bar.set_description(labels[stage])
        bar.update(done - bar.n)

    started = time.perf_counter()
    try:
        result, unknown = ingest_files(conn, [str(p) for p in args.paths], dataset=args.dataset,
                                       imported_by=args.by, progress=progress)
    except LogFormatError as exc:
        return _fail(f"nothing was written; {exc.total:,} problem(s):\n"
                     + format_problems(exc.problems), EXIT_INVALID)
    except store.IngestConflictError as exc:
        return _fail("nothing was written; the input contradicts the database:\n" + str(exc), EXIT_INVALID)
    finally:
        if bar is not None:
            bar.close()
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
    from analysis.candidates import candidates_from_logged_nlu, read_candidates
    from analysis.logs import LogFormatError, format_problems
    from app import store

    conn, db, code = _open(args)
    if conn is None:
        return code
    try:
        if args.action == "import":
            table = read_candidates(args.path)
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
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from app import store

    fmt = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(args.out.suffix.lower())
    if fmt is None:
        return _fail(f"{args.out}: unsupported output type; use .jsonl, .csv or .parquet", EXIT_USAGE)
    conn, db, code = _open(args, must_exist=True)
    if conn is None:
        return code
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with conn:
        n = store.export_labels(conn, args.out, dataset=args.dataset, kind=args.what, fmt=fmt, task=args.task)
    print(f"wrote {n:,} rows ({args.what}) to {args.out} in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    # No fallback: argparse only lets the families below through, and a new one must say what it runs.
    return {"labels": _train_labels, "skills": _train_skills, "failure-points": _train_failure_points}[args.model](args)


def cmd_score(args: argparse.Namespace) -> int:
    return {"labels": _score_labels, "skills": _score_skills, "failure-points": _score_failure_points}[args.model](args)


def cmd_job(args: argparse.Namespace) -> int:
    from app.jobs.cli import run

    return run(args, _open)


def _train_with_bar(args: argparse.Namespace, train) -> tuple[dict, float] | int:
    """Open the database and run train(conn, progress) under a progress bar (one per stage: progress is
    called as (done, total) or (stage, done, total)); (summary, seconds), or an exit code on failure."""
    conn, db, code = _open(args)
    if conn is None:
        return code
    bar = tqdm(desc="training", unit=" batches", file=sys.stderr, disable=args.quiet)
    current = ["training"]

    def progress(*event) -> None:
        stage, done, total = event if len(event) == 3 else ("training", *event)
        if current[0] != stage:  # e.g. pretraining, then training: one bar each
            current[0] = stage
            bar.set_description(stage)
            bar.reset(total=total)
        bar.total = total
        bar.update(done - bar.n)

    started = time.perf_counter()
    try:
        summary = train(conn, progress)
    except ValueError as exc:
        return _fail(str(exc), EXIT_INVALID)
    finally:
        bar.close()
        conn.close()
    return summary, time.perf_counter() - started


def _score_with_bar(args: argparse.Namespace, model: str, unit: str, score, *, show_bar: bool = True
                    ) -> tuple[object, float] | int:
    """Open the database and run score(conn, progress) under a progress bar (progress(stage, done, total));
    (result, seconds), or an exit code: no checkpoint in --model-dir, a locked database, or invalid input."""
    from app import store

    if not (args.model_dir / "config.json").exists():
        return _fail(f"{args.model_dir}: no checkpoint (train one with 'turnlens train {model}')", EXIT_USAGE)
    conn, db, code = _open(args)
    if conn is None:
        return code
    started = time.perf_counter()
    bar = tqdm(desc="scoring", unit=unit, file=sys.stderr, disable=not show_bar or args.quiet)

    def progress(stage: str, done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = score(conn, progress)
    except (ValueError, store.IngestConflictError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    finally:
        bar.close()
        conn.close()
    return result, time.perf_counter() - started


def _train_skills(args: argparse.Namespace) -> int:
    from analysis.skills.model import RoutingConfig
    from app.jobs import skills as skill_jobs

    overrides = {k: v for k, v in (("epochs", args.epochs), ("p", args.p), ("r", args.r)) if v is not None}
    try:
        config = RoutingConfig(pseudo_labels=args.pseudo_labels, negative_feedback=args.negative_feedback,
                               self_distill=args.self_distill, **overrides)
    except ValueError as exc:
        return _fail(f"--epochs / --p / --r: {exc}", EXIT_USAGE)
    done = _train_with_bar(args, lambda conn, progress: skill_jobs.train(conn, args.dataset, args.out, config=config,
                                                                         progress=progress))
    if isinstance(done, int):
        return done
    summary, seconds = done
    print(f"trained on {summary['examples']:,} routed turns ({summary['failed']:,} failed) over "
          f"{summary['skills']:,} skills in {seconds:.0f} s; checkpoint in {args.out}")
    return EXIT_OK


def _score_skills(args: argparse.Namespace) -> int:
    from app.jobs import skills as skill_jobs

    if (args.p is not None and args.p < 1) or (args.r is not None and args.r < 1):
        return _fail("--p and --r must be at least 1", EXIT_USAGE)
    # proposing reads the stored dynamics: nothing long enough for a bar
    done = _score_with_bar(args, "skills", " turns", lambda conn, progress: skill_jobs.propose(
        conn, args.dataset, args.model_dir, p=args.p, r=args.r), show_bar=False)
    if isinstance(done, int):
        return done
    result, _ = done
    print(f"{result.rows_added:,} skill candidates (pseudo-labels) added, {result.rows_already_present:,} already "
          "present")
    return EXIT_OK


def _train_labels(args: argparse.Namespace) -> int:
    from analysis.labels.model import LabelConfig
    from app.jobs import labels as label_jobs

    overrides = {k: v for k, v in (("epochs", args.epochs), ("pretrain_epochs", args.pretrain_epochs))
                 if v is not None}
    if args.no_context:
        overrides["use_context"] = False
    if args.finetune_encoder:
        overrides["finetune_encoder"] = True
    try:
        config = LabelConfig(**overrides)
    except ValueError as exc:
        return _fail(f"--epochs / --pretrain-epochs: {exc}", EXIT_USAGE)
    done = _train_with_bar(args, lambda conn, progress: label_jobs.train(
        conn, args.dataset, args.out, config=config, with_reviewed=args.with_reviewed, progress=progress))
    if isinstance(done, int):
        return done
    summary, seconds = done
    print(f"trained on {summary['turns']:,} turns ({summary['intent_labels']:,} intent labels, "
          f"{summary['reviewed_labels_used']:,} reviewed labels) in {seconds:.0f} s; checkpoint in {args.out}")
    return EXIT_OK


def _score_labels(args: argparse.Namespace) -> int:
    from analysis.labels.model import TASKS
    from app.jobs import labels as label_jobs

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if not tasks or set(tasks) - set(TASKS):
        return _fail(f"--tasks: choose among {', '.join(TASKS)}; got {args.tasks!r}", EXIT_USAGE)
    done = _score_with_bar(args, "labels", " dialogues", lambda conn, progress: label_jobs.score(
        conn, args.dataset, args.model_dir, tasks=tasks, progress=progress))
    if isinstance(done, int):
        return done
    result, took = done
    print(f"scored in {took:.0f} s: {result.rows_added:,} candidates added ({', '.join(tasks)}), "
          f"{result.rows_already_present:,} already present")
    return EXIT_OK


def _train_failure_points(args: argparse.Namespace) -> int:
    from analysis.failure_points.model import FailurePointConfig
    from app.jobs import failure_points as failure_jobs

    overrides = {k: v for k, v in (("epochs", args.epochs), ("text_dropout", args.text_dropout)) if v is not None}
    if args.text_dropout is not None and not args.with_text:
        return _fail("--text-dropout applies only with --with-text", EXIT_USAGE)
    if args.with_text:
        overrides = {"use_text": True, "text_dropout": 0.3, **overrides}  # 0.3: the best text dropout on validation
    if args.epochs is not None and args.epochs < 1:
        return _fail(f"--epochs must be at least 1, got {args.epochs}", EXIT_USAGE)
    try:
        config = FailurePointConfig(**overrides)
    except ValueError as exc:
        return _fail(f"--text-dropout: {exc}", EXIT_USAGE)
    done = _train_with_bar(args, lambda conn, progress: failure_jobs.train(
        conn, args.dataset, args.out, config=config, with_reviewed=args.with_reviewed, progress=progress))
    if isinstance(done, int):
        return done
    summary, seconds = done
    print(f"trained on {summary['turns']:,} turns ({summary['reviewed_labels_used']:,} reviewed labels) in "
          f"{seconds:.0f} s; checkpoint in {args.out}")
    return EXIT_OK


def _score_failure_points(args: argparse.Namespace) -> int:
    from app.jobs import failure_points as failure_jobs

    timings: dict[str, float] = {}
    done = _score_with_bar(args, "failure-points", " turns", lambda conn, progress: failure_jobs.score(
        conn, args.dataset, args.model_dir, progress=progress, timings=timings))
    if isinstance(done, int):
        return done
    result, took = done
    print(f"scored {result.rows_read:,} turns in {took:.0f} s ({result.rows_read / max(took, 1e-9):,.0f} turns/s; "
          f"text encoder {timings['text_encoder']:.0f} s, model {timings['model']:.0f} s, writing "
          f"{timings['write']:.0f} s): {result.rows_added:,} failure_point candidates added, "
          f"{result.rows_already_present:,} already present")
    return EXIT_OK


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
                  f"pooled WER {wer} over {c.ref_words:,} reference words")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from app import serve

    if args.db:
        os.environ["TURNLENS_DB"] = str(args.db)  # the app reads its settings from the environment, in this process
    # app/serve.py opens the database before the server starts (exit 2 or 3 if it cannot), then runs streamlit
    return serve.main(["--server.address", args.address, "--server.port", str(args.port)])


def main(argv: list[str] | None = None) -> int:
    from analysis.logs import max_line_bytes

    args = build_parser().parse_args(argv)
    try:
        max_line_bytes()  # a bad setting is a usage error, said once, before any work
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    handler = {"ingest": cmd_ingest, "demo-data": cmd_demo_data, "info": cmd_info, "serve": cmd_serve,
               "candidates": cmd_candidates, "export": cmd_export, "train": cmd_train, "score": cmd_score,
               "mine": cmd_mine, "simulate-reviews": cmd_simulate_reviews, "job": cmd_job}
    return handler[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
