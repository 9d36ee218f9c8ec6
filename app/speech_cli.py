"""`turnlens speech ...`: synthetic audio and real offline recognition for demo and evaluation logs.

    turnlens speech synthesize LOG --out OUT      espeak-ng renders each turn's reference text in its speaker's voice
    turnlens speech recognise LOG --out OUT       pocketsphinx decodes each turn's audio: 1-best, 10-best, posteriors
    turnlens speech lm --out LM.arpa ...          an in-domain 3-gram LM from TRAINING text only
    turnlens speech slurp-log --split dev|eval    a SLURP speech log: sentences -> voices -> audio -> recognition
    turnlens speech embed LOG --out OUT           resemblyzer's voice encoder: per-speaker mean speaker_embedding

They work on .jsonl / .jsonl.gz logs (format 1.1) and files, not on the database (so they run while the app holds
it); ingest their output like any log. Everything they synthesise is marked ``audio_source: "synthetic"``.
Each shows progress, resumes where an interrupted run stopped, and runs on ``--workers`` processes (2).
Exit codes: 0 done, 1 invalid input, 2 usage (a bad option, a missing tool or folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
_REPO = Path(__file__).resolve().parent.parent
_DEFAULT_SLURP = _REPO.parent / "shared" / "datasets" / "slurp"


def _default_audio_root() -> Path:
    from app.settings import audio_root  # one setting for the CLI, ingest and the pages

    return audio_root()


def _common(p: argparse.ArgumentParser, *, audio_root: bool = True) -> None:
    if audio_root:
        p.add_argument("--audio-root", type=Path, default=None,
                       help="the folder audio paths are relative to (default: $TURNLENS_AUDIO_ROOT or data/audio)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2: this machine's cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _synthesis_options(p: argparse.ArgumentParser, *, snr_default: float | None) -> None:
    p.add_argument("--format", dest="audio_format", choices=("wav", "flac", "ogg"), default="wav",
                   help="audio files: wav (default), flac (lossless, about half) or ogg (Vorbis, about a tenth)")
    p.add_argument("--snr-db", type=float, default=snr_default,
                   help="mix in white noise at this signal-to-noise ratio, dB "
                        f"(default {'none' if snr_default is None else f'{snr_default:g}'})")
    p.add_argument("--pad-seconds", type=float, default=0.4, help="silence before and after each turn (0.4)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")


def _lm_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--lm", default=default,
                   help="'default' (pocketsphinx's general en-us LM), or an ARPA LM file (turnlens speech lm)"
                   + (", or 'in-domain' (built from SLURP's dev text beside --out)" if default == "in-domain" else "")
                   + f" (default {default})")


def add_parser(sub: argparse._SubParsersAction, db_arg) -> None:
    """The `speech` subcommand and its own subcommands. db_arg is not used: these commands read and write log
    files and audio, never the database (so they run while the app holds it)."""
    del db_arg
    p = sub.add_parser("speech", help="synthetic speech (espeak-ng) and offline recognition (pocketsphinx) for logs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="speech_command", required=True, metavar="ACTION")

    s = ssub.add_parser("synthesize", aliases=["synthesise"],
                        help="render each turn's reference text in its speaker's voice; sets audio on each turn")
    s.add_argument("log", type=Path, help="a .jsonl or .jsonl.gz log (format 1.0 or 1.1)")
    s.add_argument("--out", type=Path, required=True, help="the log to write, with audio (.jsonl or .jsonl.gz)")
    _synthesis_options(s, snr_default=None)
    _common(s)

    r = ssub.add_parser("recognise", aliases=["recognize"],
                        help="decode each turn's audio with pocketsphinx: 1-best, 10-best with scores, posteriors")
    r.add_argument("log", type=Path, help="a .jsonl or .jsonl.gz log whose turns have audio")
    r.add_argument("--out", type=Path, required=True, help="the log to write (.jsonl or .jsonl.gz)")
    _lm_option(r, "default")
    r.add_argument("--nbest", type=int, default=10, help="distinct n-best hypotheses kept (default 10)")
    r.add_argument("--keep-nlu", action="store_true",
                   help="keep the NLU fields (computed from the previous transcript; dropped by default)")
    _common(r)

    m = ssub.add_parser("lm", help="build an in-domain 3-gram LM from training text (never evaluation text)")
    m.add_argument("--out", type=Path, required=True, help="the ARPA file to write (provenance goes to <out>.json)")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--slurp-dev", type=Path, metavar="SLURP_DIR",
                     help="SLURP's dev text: devel.jsonl and the test utterances outside the evaluation split")
    src.add_argument("--log", type=Path, help="the reference_text of a log's turns (evaluation-split turns refused)")
    src.add_argument("--text", type=Path, help="a UTF-8 text file, one sentence per line")
    m.add_argument("--slurp-dir", type=Path, default=None,
                   help="SLURP folder to check the text against its evaluation split (default: --slurp-dev, or "
                        "../shared/datasets/slurp when it exists)")

    g = ssub.add_parser("slurp-log", help="a speech log from a SLURP split: simulated voices, synthetic audio, "
                                          "real recognition")
    g.add_argument("--split", choices=("dev", "eval"), required=True,
                   help="dev (for training) or eval (slurp_id %% 5 == 0: for measuring only, never for training)")
    g.add_argument("--utterances", type=int, default=400, help="sentences, a seeded sample (default 400)")
    g.add_argument("--speakers-per-accent", type=int, default=8, help="simulated speakers per accent (default 8)")
    g.add_argument("--slurp-dir", type=Path, default=_DEFAULT_SLURP, help="the SLURP folder")
    g.add_argument("--out", type=Path, required=True, help="the log to write (.jsonl or .jsonl.gz)")
    _lm_option(g, "in-domain")
    _synthesis_options(g, snr_default=30.0)
    _common(g)

    e = ssub.add_parser("embed", help="embed each turn's audio with resemblyzer's pretrained voice encoder and write "
                                      "each speaker's mean (256-d, unit norm) as speaker_embedding")
    e.add_argument("log", type=Path, help="a .jsonl or .jsonl.gz log whose turns have audio and a speaker_id")
    e.add_argument("--out", type=Path, required=True, help="the log to write (.jsonl or .jsonl.gz)")
    _common(e)


# ---------------------------------------------------------------------------------------------- running


def _fail(message: str, code: int) -> int:
    print(f"turnlens speech: {message}", file=sys.stderr)
    return code


def _bars(args: argparse.Namespace):
    from app.stage_bars import StageBars

    return StageBars(labels={"synthesize": "synthesising", "recognise": "recognising", "embed": "embedding"},
                     unit=" turns", disable=args.quiet)


def _check_out(path: Path) -> str | None:
    from analysis.logs import file_kind

    if file_kind(path) not in ("jsonl", "jsonl.gz"):
        return f"{path}: the output must be a .jsonl or .jsonl.gz file"
    return None


def run(args: argparse.Namespace) -> int:
    """Run one `turnlens speech` action; returns the exit code."""
    from analysis.logs import LogFormatError, format_problems
    from analysis.speech.audio import SpeechToolError
    from analysis.speech.embeddings import EmbeddingError
    from analysis.speech.lm import EvaluationTextError
    from analysis.speech.recognition import RecognitionError

    if getattr(args, "workers", 1) < 1:
        return _fail("--workers must be at least 1", EXIT_USAGE)
    action = {"synthesize": _synthesize, "synthesise": _synthesize, "recognise": _recognise,
              "recognize": _recognise, "lm": _lm, "slurp-log": _slurp_log, "embed": _embed}[args.speech_command]
    try:
        return action(args)
    except LogFormatError as exc:
        return _fail(f"{exc.total:,} problem(s):\n" + format_problems(exc.problems), EXIT_INVALID)
    except EvaluationTextError as exc:
        return _fail(str(exc), EXIT_INVALID)
    except (SpeechToolError, RecognitionError, EmbeddingError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ValueError as exc:  # an option out of range (the config dataclasses say which)
        return _fail(str(exc), EXIT_USAGE)


def _synthesis_config(args: argparse.Namespace):
    from analysis.speech.synthesis import SynthesisConfig

    return SynthesisConfig(audio_format=args.audio_format, snr_db=args.snr_db, pad_seconds=args.pad_seconds,
                           seed=args.seed, workers=args.workers)


def _write(records: list[dict], out: Path) -> None:
    from analysis.logs import read_log
    from analysis.speech.logio import write_records

    write_records(records, out)
    read_log(out)  # what we write is a valid format 1.1 log, or this says exactly where it is not


def _synthesize(args: argparse.Namespace) -> int:
    from analysis.speech.logio import read_records
    from analysis.speech.synthesis import synthesize_records

    if (bad := _check_out(args.out)) is not None:
        return _fail(bad, EXIT_USAGE)
    config = _synthesis_config(args)
    root = args.audio_root or _default_audio_root()
    records = read_records(args.log)
    started = time.perf_counter()
    with _bars(args) as bars:
        result = synthesize_records(records, root, config=config,
                                    progress=lambda done, total: bars.update("synthesize", done, total))
    _write(result.records, args.out)
    print(f"{len(records):,} turns: {result.rendered:,} audio files rendered, {result.reused:,} turns reused audio "
          f"from an earlier run, {result.no_text:,} without a reference text (no audio); {len(result.voices):,} "
          f"voices; audio under {root}; wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _recogniser_config(args: argparse.Namespace, lm: str | None):
    from analysis.speech.recognition import RecogniserConfig

    return RecogniserConfig(lm=lm, nbest=getattr(args, "nbest", 10), nbest_scan=max(200, getattr(args, "nbest", 10)),
                            workers=args.workers)


def _recognise(args: argparse.Namespace) -> int:
    from analysis.speech.logio import read_records

    if (bad := _check_out(args.out)) is not None:
        return _fail(bad, EXIT_USAGE)
    lm = None if args.lm == "default" else args.lm
    if lm is not None and not Path(lm).is_file():
        return _fail(f"--lm {lm}: no such file (build one with 'turnlens speech lm', or use --lm default)",
                     EXIT_USAGE)
    config = _recogniser_config(args, lm)
    records = read_records(args.log)
    return _decode_and_write(args, records, config, args.audio_root or _default_audio_root())


def _decode_and_write(args: argparse.Namespace, records: list[dict], config, root: Path) -> int:
    from analysis.speech.recognition import recognise_records

    partial = args.out.with_name(args.out.name + ".partial.jsonl")
    started = time.perf_counter()
    with _bars(args) as bars:
        result = recognise_records(records, root, config=config, partial=partial, keep_nlu=args.keep_nlu,
                                   progress=lambda done, total: bars.update("recognise", done, total))
    _write(result.records, args.out)
    partial.unlink(missing_ok=True)  # only once the output is written: a failure before keeps the work done
    print(f"{len(records):,} turns: {result.decoded:,} decoded, {result.reused:,} taken from an interrupted run, "
          f"{result.no_audio:,} without audio, {result.remote:,} with a URL (not fetched), "
          f"{result.words_unmatched:,} without word posteriors; LM {config.lm or 'pocketsphinx default'}; "
          f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _lm(args: argparse.Namespace) -> int:
    from analysis.speech import lm as speech_lm
    from analysis.speech.logio import read_records

    check_dir = args.slurp_dir or args.slurp_dev or (_DEFAULT_SLURP if _DEFAULT_SLURP.is_dir() else None)
    if check_dir is not None and not (Path(check_dir) / "test.jsonl").is_file():
        return _fail(f"{check_dir}: not a SLURP folder (no test.jsonl)", EXIT_USAGE)
    forbidden = speech_lm.evaluation_sentences(check_dir) if check_dir is not None else None
    if args.slurp_dev is not None:
        sentences = speech_lm.slurp_training_sentences(args.slurp_dev)
        sources = [f"SLURP devel.jsonl and test.jsonl (slurp_id % 5 != 0) in {args.slurp_dev}"]
    elif args.log is not None:
        records = read_records(args.log)
        held = [r for r in records if r.get("slurp_split") == "eval" or str(r["dialogue_id"]).startswith("eval-")]
        if held:
            return _fail(f"{args.log}: {len(held):,} turns are from an evaluation split (slurp_split \"eval\" or an "
                         f"eval- dialogue id, e.g. {held[0]['dialogue_id']!r}); an LM is never built from "
                         "evaluation text", EXIT_INVALID)
        sentences = [r["reference_text"] for r in records if isinstance(r.get("reference_text"), str)]
        sources = [f"reference_text of {args.log}"]
    else:
        try:
            sentences = args.text.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"{args.text}: cannot be read as UTF-8 text ({exc})", EXIT_USAGE)
        sources = [f"text file {args.text}"]
    info = speech_lm.build_lm(sentences, args.out, sources=sources, forbidden=forbidden)
    print(f"wrote {args.out} ({info.sentences:,} sentences, {info.unique_sentences:,} distinct); evaluation check "
          f"{info.evaluation_check}; provenance in {args.out}.json")
    return EXIT_OK


def _slurp_log(args: argparse.Namespace) -> int:
    from analysis.speech import lm as speech_lm
    from analysis.speech.slurp_log import slurp_speech_records
    from analysis.speech.synthesis import synthesize_records

    if (bad := _check_out(args.out)) is not None:
        return _fail(bad, EXIT_USAGE)
    if not (args.slurp_dir / "test.jsonl").is_file():
        return _fail(f"{args.slurp_dir}: SLURP folder not found (give --slurp-dir)", EXIT_USAGE)
    if args.split == "eval" and args.out.resolve().is_relative_to((_REPO / "sample_data").resolve()):
        return _fail("evaluation-split data never goes into sample_data/ (it would be committed)", EXIT_USAGE)
    if args.utterances < 1 or args.speakers_per_accent < 1:
        return _fail("--utterances and --speakers-per-accent must be at least 1", EXIT_USAGE)
    config = _synthesis_config(args)
    lm: str | None
    if args.lm == "in-domain":
        lm_path = args.out.with_name("slurp-dev-3gram.arpa")
        speech_lm.build_lm(speech_lm.slurp_training_sentences(args.slurp_dir), lm_path,
                           sources=["SLURP devel.jsonl", "SLURP test.jsonl, slurp_id % 5 != 0"],
                           forbidden=speech_lm.evaluation_sentences(args.slurp_dir))
        lm = str(lm_path)
    else:
        lm = None if args.lm == "default" else args.lm
        if lm is not None and not Path(lm).is_file():
            return _fail(f"--lm {lm}: no such file", EXIT_USAGE)
    root = args.audio_root or _default_audio_root()
    records = slurp_speech_records(args.slurp_dir, split=args.split, utterances=args.utterances, seed=args.seed,
                                   speakers_per_accent=args.speakers_per_accent)
    with _bars(args) as bars:
        synthesized = synthesize_records(records, root, config=config,
                                         progress=lambda done, total: bars.update("synthesize", done, total))
    args.keep_nlu = True  # SLURP-built turns have no NLU output to drop
    code = _decode_and_write(args, synthesized.records, _recogniser_config(args, lm), root)
    if code == EXIT_OK and args.split == "dev":
        print("note: the in-domain LM was built from dev text that includes these sentences, so this log's WER is "
              "optimistic: train on it, measure on the eval split")
    return code


def _embed(args: argparse.Namespace) -> int:
    from analysis.speech.embeddings import EmbeddingConfig, available, embed_records
    from analysis.speech.logio import read_records

    if (bad := _check_out(args.out)) is not None:
        return _fail(bad, EXIT_USAGE)
    if (why := available()) is not None:
        return _fail(why, EXIT_USAGE)
    config = EmbeddingConfig(workers=args.workers)
    root = args.audio_root or _default_audio_root()
    records = read_records(args.log)
    partial = args.out.with_name(args.out.name + ".partial.jsonl")
    started = time.perf_counter()
    with _bars(args) as bars:
        result = embed_records(records, root, config=config, partial=partial,
                               progress=lambda done, total: bars.update("embed", done, total))
    _write(result.records, args.out)
    partial.unlink(missing_ok=True)  # only once the output is written: a failure before keeps the work done
    print(f"{len(records):,} turns: {result.embedded:,} audio files embedded, {result.reused:,} taken from an "
          f"interrupted run, {result.no_audio:,} turns without audio, {result.remote:,} with a URL (not fetched), "
          f"{result.no_voice:,} with no voice found, {result.no_speaker:,} without a speaker_id; {result.speakers:,} "
          f"speakers given their mean voice embedding, {result.speakers_without:,} left without one"
          + (f"; {result.replaced:,} turns had another speaker_embedding (replaced or removed: one encoder per file)"
             if result.replaced else "")
          + f"; wrote {args.out} in {time.perf_counter() - started:.1f} s")
    if not result.speakers:
        print("note: no speaker got an embedding: the turns need local audio (turnlens speech synthesize) and a "
              "speaker_id", file=sys.stderr)
    return EXIT_OK
