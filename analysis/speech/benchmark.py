"""The speech benchmark: a speech log built from a seeded subset of SLURP's EVALUATION split, each sentence said
once by a simulated speaker (espeak-ng: 8 accents, 8 voice variants, speed and pitch per speaker, white noise at
a stated SNR) and recognised for real by pocketsphinx, with the in-domain 3-gram LM built from the DEV text only
(devel.jsonl and the test utterances outside the evaluation split; the build refuses any evaluation sentence)
and, on a stated part of the same turns, with pocketsphinx's general en-us LM. Reports the pooled WER per accent
and per variant with speaker-bootstrap intervals, the 10-best oracle WER, and whether the recogniser's
confidence separates good from bad recognitions. Writes the report (Markdown) and its numbers (JSON, beside
it); the Markdown is a pure function of the JSON (``render``).

    python scripts/evaluate_speech.py            # writes docs/results/speech.{md,json}: 2.5 min idle, 16 at load 12
    python scripts/evaluate_speech.py --check    # reruns everything (fresh audio too) and compares

The speech log (format 1.1, with audio paths) goes to data/speech/slurp-eval-speech.jsonl and its audio to
data/speech/audio/ (both git-ignored): evaluation-split data is never committed. Nothing is tuned on it: the
voice ranges, SNR, padding and LM are fixed before this runs (padding and light noise were chosen on dev
utterances in the feasibility trial of issue 17).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis import report_cli
from analysis.disparity.regions import speaker_bootstrap, speaker_table
from analysis.speech import lm as speech_lm
from analysis.speech.logio import write_records
from analysis.speech.recognition import RecogniserConfig, describe, package_version, recognise_records
from analysis.speech.slurp_log import slurp_speech_records
from analysis.speech.synthesis import SYNTHESIS_FIELD, SynthesisConfig, synthesize_records
from analysis.speech.voices import ACCENTS, VARIANTS, voice_for
from analysis.wer import error_counts

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
DEFAULT_OUT = REPO / "docs" / "results" / "speech.md"
DEFAULT_WORK = REPO / "data" / "speech"
SYSTEMS = ("in_domain", "default")
SYSTEM_NAMES = {"in_domain": "in-domain 3-gram LM (dev text)", "default": "pocketsphinx's general en-us LM"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=400,
                   help="evaluation-split sentences, a seeded sample of the 579 (default 400)")
    p.add_argument("--default-lm-utterances", type=int, default=200,
                   help="of those, how many are also recognised with the general LM (3x slower; default 200)")
    p.add_argument("--speakers-per-accent", type=int, default=8, help="simulated speakers per accent (default 8)")
    p.add_argument("--seed", type=int, default=0, help="sentence sample, speaker ids and noise (default 0)")
    p.add_argument("--snr-db", type=float, default=30.0, help="white noise at this SNR in dB (default 30)")
    p.add_argument("--pad-seconds", type=float, default=0.4, help="silence before and after (default 0.4)")
    p.add_argument("--n-boot", type=int, default=1000, help="speaker-bootstrap replicates (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="parallel synthesis and decoding (default 2)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                   help="where the LM, the audio and the speech log go (default data/speech, git-ignored)")
    p.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR, help="directory with the SLURP files")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--check", action="store_true",
                   help="rerun (fresh audio in a temporary folder) and compare with the JSON beside --out; exit 1 "
                        "if any figure differs")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any figure (default 0)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------- metrics


def _nbest_texts(rec: dict) -> list[str]:
    return [h["text"] for h in rec.get("asr_nbest") or []]


def utterance_counts(records: list[dict]) -> dict[str, np.ndarray]:
    """Per turn: errors and reference words of the 1-best, of the n-best's first entry, of the n-best's best
    entry (the oracle: fewest errors), and of the best of the n-best and the 1-best together."""
    refs = [r["reference_text"] for r in records]
    s, d, i, n = error_counts(refs, [r["asr_text"] for r in records])
    errors = (s + d + i).astype(np.int64)
    fs, fd, fi, _ = error_counts(refs, [(_nbest_texts(r) or [""])[0] for r in records])
    first = (fs + fd + fi).astype(np.int64)
    oracle = []
    for r, ref in zip(records, refs, strict=True):
        texts = _nbest_texts(r) or [""]
        s_, d_, i_, _ = error_counts([ref] * len(texts), texts)
        oracle.append(int((s_ + d_ + i_).min()))
    oracle_arr = np.array(oracle, dtype=np.int64)
    return {"errors": errors, "words": n.astype(np.int64), "nbest_first": first, "oracle": oracle_arr,
            "oracle_with_1best": np.minimum(oracle_arr, errors)}


def _wer_cells(speakers: list[str], errors: np.ndarray, words: np.ndarray, groups_of: dict[str, str] | None, *,
               n_boot: int, seed: int) -> dict[str, dict]:
    """Pooled WER with a speaker-bootstrap 95% interval, per group (groups_of: speaker -> group; None: one group
    "all"), with the group's speakers, turns and words."""
    zeros = np.zeros(len(errors), dtype=np.int64)
    table = speaker_table(np.array(speakers, dtype=object), errors, zeros, zeros, words)
    labels = np.array([groups_of[s] if groups_of else "all" for s in table.speaker], dtype=object)
    boot = speaker_bootstrap(table, labels, n_boot=n_boot, seed=seed)
    out = {}
    for j, g in enumerate(boot.groups):
        mine = labels == g
        out[str(g)] = {"wer": float(boot.estimate[j]), "low": float(boot.low[j]), "high": float(boot.high[j]),
                       "speakers": int(mine.sum()), "turns": int(table.utterances[mine].sum()),
                       "words": int(table.words[mine].sum())}
    return out


def system_report(records: list[dict], *, n_boot: int, seed: int) -> dict:
    """Every figure of one recogniser's run over records (turns with a recognition)."""
    c = utterance_counts(records)
    speakers = [r["speaker_id"] for r in records]
    accent_of = {s: voice_for(s).accent for s in speakers}
    variant_of = {s: voice_for(s).variant for s in speakers}

    def cells(key: str, groups: dict | None) -> dict:
        return _wer_cells(speakers, c[key], c["words"], groups, n_boot=n_boot, seed=seed)

    conf = np.array([r.get("asr_confidence") if r.get("asr_confidence") is not None else np.nan for r in records])
    has = np.isfinite(conf)
    confident = has & (conf >= np.nanmedian(conf)) if has.any() else has

    def pooled(mask: np.ndarray) -> float:
        w = c["words"][mask].sum()
        return float(c["errors"][mask].sum() / w) if w else float("nan")

    lengths = [len(r.get("asr_nbest") or []) for r in records]
    return {
        "turns": len(records), "words": int(c["words"].sum()), "speakers": len(set(speakers)),
        "overall": cells("errors", None)["all"],
        "by_accent": cells("errors", accent_of),
        "by_variant": cells("errors", variant_of),
        "nbest_first": cells("nbest_first", None)["all"],
        "oracle": cells("oracle", None)["all"],
        "oracle_with_1best": cells("oracle_with_1best", None)["all"],
        "oracle_by_accent": cells("oracle", accent_of),
        "nbest_mean_length": float(np.mean(lengths)) if lengths else float("nan"),
        "first_nbest_is_1best": float(np.mean([bool(r.get("asr_nbest")) and r["asr_nbest"][0]["text"] == r["asr_text"]
                                                for r in records])),
        "confidence": {"median": float(np.nanmedian(conf)) if has.any() else float("nan"),
                       "wer_confident_half": pooled(confident), "wer_other_half": pooled(has & ~confident)},
        "word_posteriors_missing": int(sum(r.get("asr_word_confidence") is None for r in records)),
    }


# ------------------------------------------------------------------------------------------------ run


def _bar(desc: str, unit: str):
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    t_start = time.time()
    work = Path(args.work_dir)
    records = slurp_speech_records(args.slurp_dir, split="eval", utterances=args.utterances, seed=args.seed,
                                   speakers_per_accent=args.speakers_per_accent)
    # The LM: dev text only, checked against every evaluation sentence before a single n-gram is counted.
    lm_path = work / "lm" / "slurp-dev-3gram.arpa"
    lm_info = speech_lm.build_lm(speech_lm.slurp_training_sentences(args.slurp_dir), lm_path,
                                 sources=["SLURP devel.jsonl", "SLURP test.jsonl, slurp_id % 5 != 0"],
                                 forbidden=speech_lm.evaluation_sentences(args.slurp_dir))
    synth = SynthesisConfig(snr_db=args.snr_db, pad_seconds=args.pad_seconds, seed=args.seed, workers=args.workers)
    scratch = tempfile.TemporaryDirectory(prefix="turnlens-speech-check-") if args.check else None
    audio_root = Path(scratch.name) if scratch else work / "audio"
    try:
        timings: dict[str, float] = {"load_average_1min_at_start": os.getloadavg()[0]}
        bar, progress = _bar("synthesising", " turns")
        t0 = time.time()
        synthesized = synthesize_records(records, audio_root, config=synth, progress=progress)
        bar.close()
        timings["synthesis_seconds"] = time.time() - t0
        runs: dict[str, list[dict]] = {}
        for system in SYSTEMS:
            todo = synthesized.records if system == "in_domain" else synthesized.records[:args.default_lm_utterances]
            cfg = RecogniserConfig(lm=str(lm_path) if system == "in_domain" else None, workers=args.workers)
            bar, progress = _bar(f"recognising ({system.replace('_', '-')} LM)", " turns")
            t0 = time.time()
            result = recognise_records(todo, audio_root, config=cfg, progress=progress)
            bar.close()
            timings[f"recognition_{system}_seconds"] = time.time() - t0
            timings[f"recognition_{system}_turns"] = result.decoded
            runs[system] = result.records
        timings["load_average_1min_at_end"] = os.getloadavg()[0]
        if not args.check:
            write_records(runs["in_domain"], work / "slurp-eval-speech.jsonl")
    finally:
        if scratch:
            scratch.cleanup()
    voices = {s: voice_for(s) for s in dict.fromkeys(r["speaker_id"] for r in records)}
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_speech.py", *argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("slurp_dir", "out", "check", "tolerance", "work_dir")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start, "timings": timings,
        "engines": {"synthesis": synthesized.records[0][SYNTHESIS_FIELD]["engine"],
                    "recognition": f"pocketsphinx {package_version()}"},
        "lm": {"sources": lm_info.sources, "sentences": lm_info.sentences,
               "unique_sentences": lm_info.unique_sentences, "corpus_sha256": lm_info.corpus_sha256,
               "evaluation_check": lm_info.evaluation_check, "builder": lm_info.builder,
               "sha256": describe(RecogniserConfig(lm=str(lm_path)))["lm"]["sha256"]},
        "data": {"split": "eval", "utterances": len(records), "speakers": len(voices),
                 "speakers_by_accent": {a: sum(v.accent == a for v in voices.values()) for a in ACCENTS},
                 "speakers_by_variant": {x: sum(v.variant == x for v in voices.values()) for x in VARIANTS},
                 "default_lm_utterances": len(runs["default"])},
        "systems": {s: system_report(runs[s], n_boot=args.n_boot, seed=args.seed) for s in SYSTEMS},
    }


# ------------------------------------------------------------------------------------- check, report


def metrics(results: dict) -> dict[str, object]:
    """The figures a rerun must reproduce, flattened to figure -> value (timings excluded)."""
    out: dict[str, object] = {"utterances": results["data"]["utterances"], "lm corpus": results["lm"]["corpus_sha256"]}
    for s, rep in results["systems"].items():
        for name in ("overall", "nbest_first", "oracle", "oracle_with_1best"):
            out[f"{s} {name} wer"] = rep[name]["wer"]
        for group in ("by_accent", "by_variant"):
            for g, cell in rep[group].items():
                out[f"{s} {group} {g} wer"] = cell["wer"]
                out[f"{s} {group} {g} low"] = cell["low"]
                out[f"{s} {group} {g} high"] = cell["high"]
    return out


def compare(expected: dict, actual: dict, *, tolerance: float = 0.0) -> list[str]:
    return report_cli.compare_flat(metrics(expected), metrics(actual), tolerance=tolerance)


def _cell(c: dict) -> str:
    return f"{c['wer']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"


def render(res: dict) -> str:
    a, d, t = res["args"], res["data"], res["timings"]
    ind, dft = res["systems"]["in_domain"], res["systems"]["default"]
    n_ind = t["recognition_in_domain_turns"]
    L = ["# Speech recognition of synthetic voices: WER per accent and variant", "",
         f"Generated by `{res['command']}` (run time {res['runtime_seconds'] / 60:.1f} min on {a['workers']} "
         f"workers, {res['machine']}). The numbers are also in the JSON file of the same name beside this one; "
         "`python scripts/evaluate_speech.py --check` reruns everything (fresh audio) and compares.", "",
         "**Everything acoustic here is synthetic.** The sentences, gold intents and slots are SLURP's "
         f"evaluation split (slurp_id % 5 == 0; a seeded sample of {d['utterances']} of its 579 sentences); the "
         f"speakers are {d['speakers']} simulated voices of {res['engines']['synthesis']} "
         f"({a['speakers_per_accent']} per accent; variant, speed and pitch from each speaker's id), with "
         f"{a['pad_seconds']:g} s of silence around each sentence and white noise at {a['snr_db']:g} dB SNR. "
         f"The recognition is real: {res['engines']['recognition']} with its en-us acoustic model. WER of "
         "synthetic speech says how the recogniser copes with espeak-ng's voices, not with people's.", "",
         "Intervals: 95% percentile intervals of a speaker bootstrap (speakers resampled with replacement within "
         f"each group, all their turns with them; {a['n_boot']} replicates). With {a['speakers_per_accent']} "
         "speakers per accent they are wide: read differences between groups through them.", "",
         "## Overall", "",
         "| recogniser | turns | 1-best WER | n-best first entry | 10-best oracle | oracle of 10-best + 1-best |",
         "| --- | --- | --- | --- | --- | --- |"]
    for s in SYSTEMS:
        rep = res["systems"][s]
        L.append(f"| {SYSTEM_NAMES[s]} | {rep['turns']} | {_cell(rep['overall'])} | {_cell(rep['nbest_first'])} | "
                 f"{_cell(rep['oracle'])} | {_cell(rep['oracle_with_1best'])} |")
    L += ["", f"The general LM ran on the first {d['default_lm_utterances']} of the {d['utterances']} turns (by "
          "slurp_id; it decodes about three times slower). The 10-best oracle WER is the WER if the best of "
          "the (up to) 10 distinct n-best hypotheses were always picked (mean list length "
          f"{ind['nbest_mean_length']:.1f} with the in-domain LM); pocketsphinx's first n-best entry equals its "
          f"1-best in {ind['first_nbest_is_1best'] * 100:.0f}% of turns (two different searches).", "",
          "## WER per accent (in-domain LM)", "",
          "| accent | speakers | turns | words | 1-best WER | 10-best oracle WER | general LM WER |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for acc in ACCENTS:
        c = ind["by_accent"].get(acc)
        if c is None:
            continue
        o = ind["oracle_by_accent"][acc]
        g = dft["by_accent"].get(acc)
        L.append(f"| {acc} | {c['speakers']} | {c['turns']} | {c['words']} | {_cell(c)} | {_cell(o)} | "
                 f"{_cell(g) if g else 'n/a'} |")
    L += ["", "## WER per voice variant (in-domain LM)", "",
          "Variants are drawn per speaker independently of accents, so a variant's figure mixes the accents of its "
          "speakers (the accent effect is the larger one above): compare variants with that in mind.", "",
          "| variant | speakers | turns | words | 1-best WER | general LM WER |",
          "| --- | --- | --- | --- | --- | --- |"]
    for var in VARIANTS:
        c = ind["by_variant"].get(var)
        if c is None:
            continue
        g = dft["by_variant"].get(var)
        L.append(f"| {var} | {c['speakers']} | {c['turns']} | {c['words']} | {_cell(c)} | "
                 f"{_cell(g) if g else 'n/a'} |")
    conf_i, conf_d = ind["confidence"], dft["confidence"]
    L += ["", "## Does the recogniser's confidence mean anything?", "",
          "Turns split at the median of `asr_confidence` (pocketsphinx's utterance posterior, `hyp().prob`): "
          "pooled WER of the more confident half against the other half.", "",
          "| recogniser | median confidence | WER, confident half | WER, other half |", "| --- | --- | --- | --- |",
          f"| {SYSTEM_NAMES['in_domain']} | {conf_i['median']:.2g} | {conf_i['wer_confident_half']:.3f} | "
          f"{conf_i['wer_other_half']:.3f} |",
          f"| {SYSTEM_NAMES['default']} | {conf_d['median']:.2g} | {conf_d['wer_confident_half']:.3f} | "
          f"{conf_d['wer_other_half']:.3f} |", "",
          "## Data and set-up", "",
          f"- In-domain LM: {res['lm']['builder']}, from {res['lm']['sentences']:,} sentences "
          f"({res['lm']['unique_sentences']:,} distinct) of {' and '.join(res['lm']['sources'])}; evaluation "
          f"check {res['lm']['evaluation_check']}. Corpus sha256 `{res['lm']['corpus_sha256'][:16]}`, LM sha256 "
          f"`{res['lm']['sha256'][:16]}`. The evaluation sentences' words that occur in no dev sentence are not in "
          "its vocabulary, so they cannot be recognised with it.",
          "- Speakers per accent: " + ", ".join(f"{k} {v}" for k, v in d["speakers_by_accent"].items())
          + "; per variant: " + ", ".join(f"{k} {v}" for k, v in d["speakers_by_variant"].items()) + ".",
          f"- Word posteriors missing (segmentation and 1-best disagreed): {ind['word_posteriors_missing']} turns.",
          f"- Timings on this run: synthesis {t['synthesis_seconds']:.0f} s for {d['utterances']} turns; "
          f"recognition {t['recognition_in_domain_seconds']:.0f} s for {n_ind} turns (in-domain LM), "
          f"{t['recognition_default_seconds']:.0f} s for {t['recognition_default_turns']} turns (general LM), "
          f"{a['workers']} workers on a machine shared with other work"
          + (f" (1-minute load average {t['load_average_1min_at_start']:.1f} at the start, "
             f"{t['load_average_1min_at_end']:.1f} at the end)" if "load_average_1min_at_start" in t else "")
          + ". `make bench` measures throughput (tests/bench/test_bench_speech.py).",
          "- The speech log (format 1.1: audio, 10-best with scores, word posteriors) is written to --work-dir, "
          "by default `data/speech/slurp-eval-speech.jsonl`, its audio to `data/speech/audio/`; both are git-ignored: "
          "evaluation-split data never enters the repository.",
          "- SLURP (Bastianelli et al., EMNLP 2020), text under CC BY 4.0.", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare,
                           headline=lambda r: f"in-domain WER {r['systems']['in_domain']['overall']['wer']:.3f}, "
                                              f"10-best oracle {r['systems']['in_domain']['oracle']['wer']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
