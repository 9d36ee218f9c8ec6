"""The rescoring study (issue 19 items 2 and 3): train the rescoring LM on SLURP's training text (devel + the test
utterances outside the evaluation split, without the tuning subset), pretrain once per seed and fine-tune four ways
(LM-only, fixed, ramp, RWM task weights) from copies; for each n-best source (sources.py: (a) real pocketsphinx
lists on synthesised speech, (b) simulated lists around SLURP's real 1-best) tune lam and beta per rescorer on that
source's tuning lists only and evaluate on its evaluation-split lists. Reports WER of the first pass, the n-best
oracle and every rescorer, on all lists and on the rare-word set (a sweep of k), WERR between pairs with paired
bootstrap intervals, the intent accuracy of a simple NLU on first-pass and rescored text, and the seed spread.
Writes the report (Markdown) and its numbers (JSON, beside it); the Markdown is a pure function of the JSON.

    python scripts/evaluate_rescoring.py            # writes docs/results/rescoring.{md,json}
    python scripts/evaluate_rescoring.py --check    # reruns (the cached recognitions) and compares

Nothing is trained or tuned on the evaluation split (``leak_check`` asserts it on every input before training).
Source (a)'s audio and logs are cached under data/cache/rescoring/ (git-ignored; never commit evaluation audio).
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from analysis import report_cli
from analysis.rescoring import evaluate as ev
from analysis.rescoring import sources as src
from analysis.rescoring.config import WEIGHTINGS, RescoringConfig
from analysis.rescoring.rescore import NBest
from analysis.rescoring.text import (
    TUNE_RULE,
    NLUExample,
    evaluation_sentences,
    is_tune_utterance,
    sentence_key,
    slurp_training_text,
    words,
)
from analysis.slurp import is_eval_utterance

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
DEFAULT_OUT = REPO / "docs" / "results" / "rescoring.md"
DEFAULT_CACHE = REPO / "data" / "cache" / "rescoring"

# Fixed before any rescoring result: the rare-word threshold of the headline (a reference word seen fewer than 5
# times in the ~27,000 words of training text) and the sweep around it.
HEADLINE_K = 5
K_SWEEP = (1, 2, 5, 10, 20)
PUBLISHED = {"rare_vs_lm_only": 0.026, "vs_first_pass": 0.05}  # issue 19: 2.6% rare-word WERR; about 5%
RESCORERS = WEIGHTINGS  # ("lm_only", "fixed", "ramp", "rwm")
MULTITASK = tuple(w for w in WEIGHTINGS if w != "lm_only")
NBEST_TOP = "nbest_top"
SYSTEMS = (ev.FIRST_PASS, NBEST_TOP, ev.ORACLE, *RESCORERS)
PAIRS = ([(s, ev.FIRST_PASS) for s in (NBEST_TOP, ev.ORACLE, *RESCORERS)]
         + [(s, "lm_only") for s in MULTITASK])
NAMES = {ev.FIRST_PASS: "first pass (logged 1-best)", NBEST_TOP: "n-best top score (lam = beta = 0)",
         ev.ORACLE: "n-best oracle", "lm_only": "LM-only rescorer", "fixed": "multitask, fixed weights",
         "ramp": "multitask, linear ramp", "rwm": "multitask, RWM"}
SCHEME = {"lm_only": "LM-only", "fixed": "fixed", "ramp": "ramp", "rwm": "RWM"}
SOURCES = ("speech", "simulated")
SOURCE_NAMES = {"speech": "(a) real pocketsphinx n-best on synthesised speech",
                "simulated": "(b) simulated n-best around SLURP's real 1-best"}
SHORT = {"speech": "(a) speech", "simulated": "(b) simulated"}
UNITS = {"speech": "speaker", "simulated": "slurp_id"}
UNIT_NAMES = {"speaker": "simulated speakers", "slurp_id": "utterances (slurp_id, all its recordings together)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="training seeds 0..n-1 (default 5)")
    p.add_argument("--pretrain-epochs", type=int, default=RescoringConfig.pretrain_epochs)
    p.add_argument("--finetune-epochs", type=int, default=RescoringConfig.finetune_epochs)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--no-speech", action="store_true", help="leave out source (a) (no synthesis, no decoding)")
    p.add_argument("--speech-eval-utterances", type=int, default=None,
                   help="source (a): evaluation sentences, a seeded sample (default: all 579)")
    p.add_argument("--speech-tune-utterances", type=int, default=None,
                   help="source (a): tuning sentences, a seeded sample (default: all)")
    p.add_argument("--sim-eval-recordings", type=int, default=None,
                   help="source (b): evaluation recordings, a seeded sample (default: all)")
    p.add_argument("--sim-tune-recordings", type=int, default=None,
                   help="source (b): tuning recordings, a seeded sample (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="a small run for trying things: 1 seed, 2+1 epochs, 300 simulated and 24 spoken lists per "
                        "subset, 200 bootstrap replicates")
    p.add_argument("--workers", type=int, default=1, help="synthesis and decoding processes (default 1)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for LM scoring (training uses 1)")
    p.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR, help="directory with the SLURP files")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                   help="source (a)'s audio and recognised logs (default data/cache/rescoring, git-ignored)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--check", action="store_true",
                   help="rerun and compare the figures with the JSON beside --out instead of writing; exit 1 if "
                        "they differ")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any figure (default 0)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.pretrain_epochs, args.finetune_epochs, args.n_boot = 1, 2, 1, 200
        args.sim_eval_recordings = args.sim_eval_recordings or 300
        args.sim_tune_recordings = args.sim_tune_recordings or 300
        args.speech_eval_utterances = args.speech_eval_utterances or 24
        args.speech_tune_utterances = args.speech_tune_utterances or 24
    return args


# ---------------------------------------------------------------------------------------------- inputs

def _sample(rows: list, n: int | None, label: str) -> list:
    if n is None or n >= len(rows):
        return rows
    idx = sorted(random.Random(f"turnlens-rescoring-{label}").sample(range(len(rows)), n))
    return [rows[i] for i in idx]


@dataclass
class StudyInputs:
    """Everything the study trains, tunes and evaluates on. sentences / nlu: the rescoring LM's training text
    (``slurp_training_text(exclude=is_tune_utterance)``); lists: source -> {"tune", "eval"} -> NBest lists;
    first_pass_corpus: source (a)'s first-pass LM text; info: per source, what built it."""

    sentences: list[str]
    nlu: list[NLUExample]
    lists: dict[str, dict[str, list[NBest]]]
    first_pass_corpus: list[str]
    info: dict = field(default_factory=dict)


def study_inputs(slurp_dir: Path, *, speech: bool = True, speech_config: src.SpeechSourceConfig | None = None,
                 cache_dir: Path = DEFAULT_CACHE, sim_tune: int | None = None, sim_eval: int | None = None,
                 confusions: src.Confusions | None = None, progress=None) -> StudyInputs:
    """The study's inputs, built with the same functions whatever the size (the leak test builds them small)."""
    sentences, nlu = slurp_training_text(slurp_dir, exclude=is_tune_utterance)
    confusions = confusions or src.default_confusions()
    lists: dict[str, dict[str, list[NBest]]] = {}
    info: dict = {}
    sim = {}
    for subset, n in (("tune", sim_tune), ("eval", sim_eval)):
        recs = _sample(src.slurp_recordings(slurp_dir, subset), n, f"sim-{subset}")
        sim[subset] = src.simulated_lists(recs, confusions=confusions)
    lists["simulated"] = sim
    info["simulated"] = {"parameters": src.simulation_parameters(),
                         "confusable_vocabulary": len(confusions.vocabulary)}
    if speech:
        cfg = speech_config or src.SpeechSourceConfig()
        lists["speech"], info["speech"] = src.speech_lists(slurp_dir, cache_dir, cfg, progress=progress)
    for by_subset in lists.values():
        src.check_subsets(by_subset)
    return StudyInputs(sentences, nlu, lists, src.first_pass_corpus(slurp_dir) if speech else [], info)


class EvaluationLeak(AssertionError):
    """An evaluation-split utterance (or its text), or a tuning sentence, reached a training or tuning input."""


def leak_check(slurp_dir: Path, inputs: StudyInputs, *, nlu_training: Sequence[str] = ()) -> dict:
    """Raise EvaluationLeak if any training or tuning input holds an evaluation-split utterance: by text (the
    normalised sentences of slurp_id % 5 == 0) in the LM's training sentences, its NLU examples, source (a)'s
    first-pass LM corpus, the NLU's training text and every tuning list's reference; by id (slurp_id % 5 == 0) in
    every tuning list. Also raises if a tuning sentence is in the LM's or the first pass's training text (the
    tuning lists must be unseen text). Returns what was checked, for the report."""
    forbidden = evaluation_sentences(slurp_dir)
    tune_texts = {sentence_key(nb.reference) for by in inputs.lists.values() for nb in by.get("tune", ())}
    problems = []
    checked = {"training sentences": inputs.sentences,
               "NLU examples": [" ".join(ex.tokens) for ex in inputs.nlu],
               "first-pass LM corpus (a)": inputs.first_pass_corpus,
               "NLU training text": list(nlu_training)}
    for source, by in inputs.lists.items():
        checked[f"tuning lists ({source})"] = [nb.reference or "" for nb in by.get("tune", ())]
        bad_ids = [nb.key for nb in by.get("tune", ()) if is_eval_utterance(int(nb.extra["slurp_id"]))]
        if bad_ids:
            problems.append(f"tuning lists ({source}): {len(bad_ids)} evaluation-split utterances, e.g. {bad_ids[0]}")
    for name, texts in checked.items():
        keys = {sentence_key(t) for t in texts}
        leaked = sorted(keys & forbidden)
        if leaked:
            problems.append(f"{name}: {len(leaked)} evaluation-split sentences, e.g. {leaked[0]!r}")
        if not name.startswith("tuning") and name != "NLU training text":
            seen = sorted(keys & tune_texts)
            if seen:
                problems.append(f"{name}: {len(seen)} tuning-list sentences, e.g. {seen[0]!r}")
    if problems:
        raise EvaluationLeak("; ".join(problems))
    return {"evaluation_sentences": len(forbidden), "tuning_sentences": len(tune_texts),
            "inputs": {k: len(v) for k, v in checked.items()},
            "result": "passed: no evaluation-split utterance or text in any training or tuning input, and no "
                      "tuning sentence in any training text"}


# ---------------------------------------------------------------------------------------------- training

def train_models(sentences: Sequence[str], nlu: Sequence[NLUExample], *, seed: int, pretrain_epochs: int,
                 finetune_epochs: int) -> tuple[dict, dict]:
    """Pretrain once (seeded dev carve as fit() makes it), then fine-tune a copy per weighting. Returns
    ({weighting: model}, timings)."""
    from analysis.rescoring.model import RescoringModel, split_dev

    cfg = RescoringConfig(seed=seed, pretrain_epochs=pretrain_epochs, finetune_epochs=finetune_epochs)
    tr_s, tr_n, dev_s, dev_n = split_dev(sentences, nlu, share=cfg.dev_share, seed=seed)
    t0 = time.perf_counter()
    base = RescoringModel(cfg).pretrain(tr_s, dev_sentences=dev_s)
    timings = {"pretrain_seconds": time.perf_counter() - t0}
    models = {}
    for w in WEIGHTINGS:
        t0 = time.perf_counter()
        m = base.copy()
        m.config = replace(cfg, weighting=w)
        models[w] = m.finetune(tr_n, dev_nlu=dev_n, dev_sentences=dev_s)
        timings[f"finetune_{w}_seconds"] = time.perf_counter() - t0
    return models, timings


def _nlu_sentences(nlu: Sequence[NLUExample]):
    from analysis.speech.demo import Sentence

    return [Sentence(0, " ".join(ex.tokens), ex.intent, ()) for ex in nlu if ex.intent]


# ---------------------------------------------------------------------------------------------- the run

def _source_stats(lists: Sequence[NBest]) -> dict:
    fp, _ = ev.list_errors(lists, ev.first_pass_texts(lists))
    orc, ref_words = ev.list_errors(lists, ev.oracle_texts(lists))
    return {"lists": len(lists), "mean_length": float(np.mean([len(nb.hypotheses) for nb in lists])),
            "first_pass_wer": float(fp.sum() / ref_words.sum()), "oracle_wer": float(orc.sum() / ref_words.sum()),
            "first_pass_exact": float(np.mean(fp == 0)), "reference_in_list": float(np.mean(orc == 0)),
            "logged_inserted": int(sum(bool(nb.extra.get("logged_inserted")) for nb in lists)),
            "no_nbest": int(sum(bool(nb.extra.get("no_nbest")) for nb in lists)),
            "reference_inserted": (float(np.mean([bool(nb.extra["reference_inserted"]) for nb in lists]))
                                   if lists and "reference_inserted" in lists[0].extra else None),
            "utterances": len({nb.extra["slurp_id"] for nb in lists}),
            "speakers": len({nb.speaker for nb in lists if nb.speaker is not None})}


def _point(res: dict) -> dict:
    return {"wer": {s: v["value"] for s, v in res["wer"].items()},
            "werr": {k: v["value"] for k, v in res["werr"].items()}}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    t_start = time.time()
    import torch

    from analysis.rescoring.rescore import choose, lm_scores, tune
    from analysis.speech.demo import DemoNLU

    torch.set_num_threads(args.threads)
    speech_cfg = src.SpeechSourceConfig(eval_utterances=args.speech_eval_utterances,
                                        tune_utterances=args.speech_tune_utterances, workers=args.workers)
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.time() - last[0] > 30 or done == total:
            last[0] = time.time()
            print(f"  {stage}: {done}/{total}", flush=True)

    t0 = time.time()
    inputs = study_inputs(args.slurp_dir, speech=not args.no_speech, speech_config=speech_cfg,
                          cache_dir=args.cache_dir, sim_tune=args.sim_tune_recordings,
                          sim_eval=args.sim_eval_recordings, progress=progress)
    inputs_seconds = time.time() - t0
    nlu_train = _nlu_sentences(inputs.nlu)
    leaks = leak_check(args.slurp_dir, inputs, nlu_training=[s.text for s in nlu_train])
    nlu = DemoNLU(nlu_train)
    counts = Counter(w for s in inputs.sentences for w in words(s))
    sources = [s for s in SOURCES if s in inputs.lists]

    # per source: the evaluation lists' fixed figures
    ref_words: dict[str, np.ndarray] = {}
    errors: dict[str, dict[str, list[np.ndarray]]] = {s: {sys: [] for sys in SYSTEMS} for s in sources}
    correct: dict[str, dict[str, list[np.ndarray]]] = {s: {} for s in sources}
    intent_cache: dict[str, str | None] = {}

    def intents(texts: Sequence[str]) -> list[str | None]:
        todo = sorted({t for t in texts if t not in intent_cache})
        for t, r in zip(todo, nlu.predict(todo), strict=True):
            intent_cache[t] = r.intent
        return [intent_cache[t] for t in texts]

    def right(lists: Sequence[NBest], texts: Sequence[str]) -> np.ndarray:
        return np.array([i == nb.extra.get("gold_intent") for i, nb in zip(intents(texts), lists, strict=True)],
                        dtype=np.float64)

    fixed_texts: dict[str, dict[str, list[str]]] = {}
    for s in sources:
        lists = inputs.lists[s]["eval"]
        fixed_texts[s] = {ev.FIRST_PASS: ev.first_pass_texts(lists), NBEST_TOP: ev.top_scored_texts(lists),
                          ev.ORACLE: ev.oracle_texts(lists), "reference": [nb.reference for nb in lists]}
        for sys in (ev.FIRST_PASS, NBEST_TOP, ev.ORACLE):
            e, ref_words[s] = ev.list_errors(lists, fixed_texts[s][sys])
            errors[s][sys].append(e)
        for sys, texts in fixed_texts[s].items():
            correct[s][sys] = [right(lists, texts)]
        if s == "simulated":
            correct[s]["logged_nlu"] = [np.array([nb.extra["logged_intent"] == nb.extra["gold_intent"]
                                                  for nb in lists], dtype=np.float64)]
        for sys in RESCORERS:
            correct[s][sys] = []

    seeds_out = []
    for seed in range(args.seeds):
        t0 = time.time()
        models, timings = train_models(inputs.sentences, inputs.nlu, seed=seed,
                                       pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs)
        record: dict = {"seed": seed, "timings": timings, "sources": {s: {} for s in sources},
                        "rwm_final_weights": models["rwm"].history[-1].get("weights") if models["rwm"].history
                        else None}
        for w, m in models.items():
            for s in sources:
                tl, el = inputs.lists[s]["tune"], inputs.lists[s]["eval"]
                t1 = time.perf_counter()
                lam, beta, tune_wer = tune(tl, lm_scores(m, tl))
                choices = choose(el, lm_scores(m, el), lam=lam, beta=beta)
                texts = [c.text for c in choices]
                e, _ = ev.list_errors(el, texts)
                errors[s][w].append(e)
                correct[s][w].append(right(el, texts))
                record["sources"][s][w] = {"lam": lam, "beta": beta, "tune_wer": tune_wer,
                                           "changed": float(np.mean([c.index != nb.logged
                                                                     for c, nb in zip(choices, el, strict=True)])),
                                           "seconds": time.perf_counter() - t1}
        record["seconds"] = time.time() - t0
        seeds_out.append(record)
        print(f"  seed {seed} done in {record['seconds']:.0f} s", flush=True)

    out_sources = {}
    for s in sources:
        lists = inputs.lists[s]["eval"]
        groups = ev.units_of(lists, UNITS[s])
        mean_err = {sys: np.mean(v, axis=0) for sys, v in errors[s].items()}
        vocab = ev.reference_words(lists)
        masks = {k: ev.rare_mask(lists, ev.rare_vocabulary(counts, vocab, k=k)) for k in K_SWEEP}
        common = dict(pairs=PAIRS, resamples=args.n_boot, seed=0)
        headline_all = ev.evaluate_errors(mean_err, ref_words[s], groups, **common)
        headline_rare = ev.evaluate_errors(mean_err, ref_words[s], groups, mask=masks[HEADLINE_K], **common)
        sweep = {str(k): ev.evaluate_errors(mean_err, ref_words[s], groups, mask=masks[k], **common)
                 for k in K_SWEEP}
        per_seed = []
        for i in range(args.seeds):
            e_i = {sys: (v[i] if len(v) > 1 else v[0]) for sys, v in errors[s].items()}
            per_seed.append({"seed": i, "all": _point(ev.evaluate_errors(e_i, ref_words[s], groups, pairs=PAIRS,
                                                                         resamples=0)),
                             "rare": _point(ev.evaluate_errors(e_i, ref_words[s], groups, pairs=PAIRS,
                                                               resamples=0, mask=masks[HEADLINE_K]))})
        mean_correct = {sys: np.mean(v, axis=0) for sys, v in correct[s].items()}
        nlu_pairs = [(sys, ev.FIRST_PASS) for sys in (*RESCORERS, ev.ORACLE, "reference")]
        nlu_res = {"all": ev.evaluate_accuracy(mean_correct, groups, pairs=nlu_pairs, resamples=args.n_boot, seed=0),
                   "rare": ev.evaluate_accuracy(mean_correct, groups, pairs=nlu_pairs, resamples=args.n_boot,
                                                seed=0, mask=masks[HEADLINE_K])}
        out_sources[s] = {
            "name": SOURCE_NAMES[s], "unit": UNITS[s],
            "tune": _source_stats(inputs.lists[s]["tune"]), "eval": _source_stats(lists),
            "all": headline_all, "rare": headline_rare, "sweep": sweep,
            "rare_vocabulary": {str(k): len(ev.rare_vocabulary(counts, vocab, k=k)) for k in K_SWEEP},
            "reference_vocabulary": len(vocab),
            "per_seed": per_seed, "nlu": nlu_res,
            "tuned": {w: [r["sources"][s][w] for r in seeds_out] for w in RESCORERS},
        }
    from analysis.rescoring.model import VERSION, data_fingerprint

    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_rescoring.py", *argv]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                 if k not in ("slurp_dir", "cache_dir", "out", "check", "tolerance", "workers")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start, "inputs_seconds": inputs_seconds,
        "version": VERSION, "config": RescoringConfig(pretrain_epochs=args.pretrain_epochs,
                                                      finetune_epochs=args.finetune_epochs).to_dict(),
        "training": {"sentences": len(inputs.sentences), "nlu_examples": len(inputs.nlu),
                     "words": int(sum(counts.values())), "distinct_words": len(counts),
                     "fingerprint": data_fingerprint([tuple(words(s)) for s in inputs.sentences], inputs.nlu),
                     "tune_rule": TUNE_RULE, "nlu_training_sentences": len(nlu_train)},
        "headline_k": HEADLINE_K, "k_sweep": list(K_SWEEP), "published": PUBLISHED,
        "leak_check": leaks, "inputs_info": inputs.info, "sources": out_sources, "seeds": seeds_out,
    }


# ---------------------------------------------------------------------------------------------- checking

_VOLATILE = ("seconds", "timings", "inputs_info", "runtime_seconds", "inputs_seconds", "command", "machine")


def metrics(results: dict) -> dict:
    """Every figure of a results JSON as a flat {path: value} map, without timings and caching details."""
    out: dict = {}

    def walk(prefix: str, v: object) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in _VOLATILE:
                    walk(f"{prefix}/{k}", x)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        elif isinstance(v, int) and not isinstance(v, bool):
            out[prefix] = float(v)
        else:
            out[prefix] = v

    walk("", {k: v for k, v in results.items() if k not in _VOLATILE and k != "args"})
    return out


def compare(expected: dict, actual: dict, *, tolerance: float = 0.0) -> list[str]:
    return report_cli.compare_flat(metrics(expected), metrics(actual), tolerance=tolerance)


# ---------------------------------------------------------------------------------------------- the report

def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _f(m: dict | None, pct: bool = False, digits: int = 3) -> str:
    if m is None:
        return "—"
    v, (lo, hi) = m["value"], m["ci"]
    if _isnan(v):
        return "–"
    if pct:
        return f"{v:+.1%}" if _isnan(lo) else f"{v:+.1%} [{lo:+.1%}, {hi:+.1%}]"
    return f"{v:.{digits}f}" if _isnan(lo) else f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _spread(values: Sequence[float], pct: bool = False) -> str:
    v = [x for x in values if not _isnan(x)]
    if not v:
        return "–"
    fmt = (lambda x: f"{x:+.1%}") if pct else (lambda x: f"{x:.3f}")
    if len(v) == 1:
        return fmt(v[0])
    sd = float(np.std(v, ddof=1))
    sd_text = f"{sd * 100:.1f} points" if pct else f"{sd:.3f}"
    return f"{fmt(float(np.mean(v)))} (min {fmt(min(v))}, max {fmt(max(v))}, sd {sd_text})"


def _cell(v: float, pct: bool) -> str:
    return "–" if _isnan(v) else (f"{v:+.1%}" if pct else f"{v:.3f}")


def _headline_table(r: dict) -> list[str]:
    a, rare = r["all"], r["rare"]
    L = [f"| system | WER, all ({a['lists']:,} lists) | WERR vs first pass | WER, rare-word set "
         f"({rare['lists']:,} lists) | WERR vs first pass, rare | WERR vs LM-only, rare |",
         "| --- | --- | --- | --- | --- | --- |"]
    for sys in SYSTEMS:
        vs_fp = f"{sys} vs {ev.FIRST_PASS}"
        vs_lm = f"{sys} vs lm_only"
        L.append(f"| {NAMES[sys]} | {_f(a['wer'][sys])} | {_f(a['werr'].get(vs_fp), pct=True)} | "
                 f"{_f(rare['wer'][sys])} | {_f(rare['werr'].get(vs_fp), pct=True)} | "
                 f"{_f(rare['werr'].get(vs_lm), pct=True)} |")
    return L


def _rule(tr: dict) -> str:
    return tr["tune_rule"].split(" (")[0]


def _generation_note(res: dict) -> str:
    t = res["inputs_info"].get("speech", {}).get("timings") or {}
    secs = sum(v for k, v in t.items() if k.endswith(("synthesis_seconds", "recognition_seconds")))
    if not secs:
        return ""
    return (f"; source (a)'s speech was synthesised and recognised once before, in {secs / 60:.1f} min with 1 "
            "decoding worker, and is read from the cache since")


def render(res: dict) -> str:
    a = res["args"]
    k = res["headline_k"]
    tr = res["training"]
    L = ["# Rare-word rescoring: evaluation on two n-best sources", "",
         f"Generated by `{res['command']}` (run time {res['runtime_seconds'] / 60:.1f} min on a 2-core "
         f"{res['machine']} machine shared with other work, of which {res['inputs_seconds'] / 60:.1f} min building or "
         "reading the n-best lists" + _generation_note(res) + "). The numbers are also in the JSON file of the same "
         "name beside this one; "
         "`python scripts/evaluate_rescoring.py --check` reruns everything (source (a)'s recognitions from the "
         "cache, or afresh) and compares. Data: SLURP (Bastianelli et al., EMNLP 2020), text under CC BY 4.0. The "
         "method is documented in docs/rescoring.md.", "",
         "**Two sources, never pooled.** (a) is real recognition (pocketsphinx 5 with 10-best lists and first-pass "
         "scores) of *synthetic* speech (espeak-ng voices of simulated speakers). (b) is a **simulation**: n-best "
         "lists built around SLURP's real 1-best recognitions of real speech, with alternatives made of "
         "phonetically confusable words and the reference put in at a fixed rate; its parameters were fixed before "
         "any rescoring result was computed (below). Neither is production traffic.", "",
         f"Every figure is the mean over {a['seeds']} training seed{'s' if a['seeds'] != 1 else ''} "
         f"(0..{a['seeds'] - 1}; "
         "per list, errors are averaged over the seeds, so a pooled WER here is the mean of the seeds' pooled WERs); "
         f"intervals are 95% paired cluster-bootstrap intervals over {a['n_boot']:,} replicates of the units (source "
         "(a): simulated speakers; source (b): utterances, all recordings of one slurp_id together, since SLURP has "
         "no speaker ids). They cover the sampling of test units, not the seed; the seed spread is its own section. "
         "WERR = (WER of the baseline − WER of the system) / WER of the baseline: positive means fewer errors.",
         "", "## Headline", ""]
    for r in res["sources"].values():
        rw = r["rare"]["werr"]
        L += [f"### {r['name']}", "", *_headline_table(r), "",
              f"Rare-word set: evaluation lists whose reference holds a word seen fewer than {k} times in the "
              f"rescoring LM's training text ({r['rare_vocabulary'][str(k)]:,} of the {r['reference_vocabulary']:,} "
              f"distinct reference words; {r['rare']['lists']:,} lists, {r['rare']['units']:,} "
              f"{UNIT_NAMES[r['unit']].split(' (')[0]}). Published (issue 19): multitask vs LM-only on rare words "
              f"+{res['published']['rare_vs_lm_only']:.1%}; here RWM "
              f"{_f(rw.get('rwm vs lm_only'), pct=True)}, fixed {_f(rw.get('fixed vs lm_only'), pct=True)}, ramp "
              f"{_f(rw.get('ramp vs lm_only'), pct=True)}. Published over no rescoring: about "
              f"+{res['published']['vs_first_pass']:.0%}; here RWM on rare words "
              f"{_f(rw.get('rwm vs first_pass'), pct=True)}.", ""]
    L += ["## Beside the published figures", "",
          "| figure | published | " + " | ".join(SHORT[s] for s in res["sources"]) + " |",
          "| --- | --- | " + " | ".join("---" for _ in res["sources"]) + " |"]
    for w in MULTITASK:
        L.append(f"| rare words: multitask ({SCHEME[w]}) vs LM-only rescorer | "
                 f"+{res['published']['rare_vs_lm_only']:.1%} | "
                 + " | ".join(_f(r["rare"]["werr"][f"{w} vs lm_only"], pct=True) for r in res["sources"].values())
                 + " |")
    for setname in ("rare", "all"):
        L.append(f"| {'rare words' if setname == 'rare' else 'all lists'}: multitask (RWM) vs no rescoring "
                 f"(first pass) | about +{res['published']['vs_first_pass']:.0%} | "
                 + " | ".join(_f(r[setname]["werr"]["rwm vs first_pass"], pct=True) for r in res["sources"].values())
                 + " |")
    L += ["", "The published system's rare-word definition, test set and recogniser are its own; \"no rescoring\" is "
          "our first pass (the logged 1-best). The limits of the comparison are listed at the end.", "",
          "## The n-best sources", ""]
    for s, r in res["sources"].items():
        t, e = r["tune"], r["eval"]
        L += [f"### {r['name']}", "", "| lists | count | utterances | speakers | mean length | first-pass WER | "
              "oracle WER | reference in list | first pass exact |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, x in (("tuning", t), ("evaluation", e)):
            L.append(f"| {name} | {x['lists']:,} | {x['utterances']:,} | {x['speakers'] or '—'} | "
                     f"{x['mean_length']:.1f} | {x['first_pass_wer']:.3f} | {x['oracle_wer']:.3f} | "
                     f"{x['reference_in_list']:.1%} | {x['first_pass_exact']:.1%} |")
        L.append("")
        if s == "speech":
            info = res["inputs_info"].get("speech", {})
            spec = info.get("spec", {})
            c = spec.get("config", {})
            lm = info.get("lm") or {}
            L += [f"- Sentences: all of the evaluation split's {e['utterances']} sentences"
                  + (f" (a seeded sample of {c.get('eval_utterances')})" if c.get("eval_utterances") else "")
                  + f"; tuning: {t['utterances']} sentences of the tuning subset ({_rule(tr)}), leaving out "
                  "any equal to an evaluation sentence"
                  + (f" (a seeded sample of {c.get('tune_utterances')})" if c.get("tune_utterances") else "") + ".",
                  f"- Speakers: {c.get('speakers_per_accent', 8)} simulated speakers per espeak-ng accent (8 accents; "
                  "voice variant, speed and pitch from the speaker id: analysis/speech/voices.py), dealt round-robin "
                  "as `turnlens speech slurp-log` deals them (analysis/speech/slurp_log.py); different speakers for "
                  f"the two subsets. Audio: {spec.get('espeak', 'espeak-ng')}, 16 kHz, {c.get('pad_seconds')} s of "
                  "silence "
                  f"around, white noise at {c.get('snr_db')} dB SNR (as the speech benchmark and the speech demo).",
                  f"- Recognition: pocketsphinx {spec.get('pocketsphinx', '')} with its en-us acoustic model, "
                  f"{c.get('nbest')}-best lists of distinct hypotheses with their path scores (natural log). Its "
                  f"first-pass LM: {lm.get('builder', 'a 3-gram')} built from {lm.get('sentences', '?'):,} sentences: "
                  "the rescoring LM's own training text (SLURP devel and the test utterances outside the evaluation "
                  "split and outside the tuning subset), so neither the tuning nor the evaluation sentences are "
                  f"in it ({lm.get('evaluation_check', '')}). Both subsets are recognised with this one LM, so the "
                  "lists lam and beta are tuned on and the lists they are applied to come from the same recogniser.",
                  f"- Where pocketsphinx's 1-best (a separate search) is missing from its n-best, it is put first with "
                  f"the list's best score (docs/rescoring.md): {e['logged_inserted']} evaluation lists; "
                  f"{e['no_nbest']} had no n-best at all and stay as their 1-best alone. 'n-best top score' is the "
                  "best-scored hypothesis (what any rescorer picks at lam = beta = 0); it differs from the logged "
                  "1-best where the two searches disagree.",
                  f"- Cache: data/cache/rescoring/speech/{info.get('fingerprint', '?')}/ (git-ignored; audio under "
                  "data/cache/rescoring/audio/). Never commit it: it holds evaluation-split audio.", ""]
        else:
            p = res["inputs_info"]["simulated"]["parameters"]
            L += ["- **A simulation.** The 1-best is real: SLURP's recogniser on SLURP's real recordings "
                  "(multi_slurp_hermit_predictions.jsonl, one per test recording, joined to test.jsonl by file). "
                  "Everything else in a list is made up by these rules, all fixed in analysis/rescoring/sources.py "
                  "before any rescoring result was computed:",
                  f"  - up to N = {p['n']} hypotheses; the real 1-best first with first-pass score 0, the best of "
                  "the list (so lam = beta = 0 keeps it);",
                  f"  - when the 1-best is wrong, the reference is in the list with probability {p['p_reference']} "
                  f"(observed: {e['reference_inserted']:.1%} of the evaluation lists, {t['reference_inserted']:.1%} of "
                  "the tuning lists, counting all lists);",
                  "  - the other places go to alternatives, each the 1-best (or, in a list that holds the reference, "
                  f"with probability {p['p_alternative_from_reference']} the reference) with 1, 2 or 3 words "
                  "(probabilities " + ", ".join(f"{n}: {q}" for n, q in p["substitutions"].items()) + ") "
                  "replaced by a confusable word; distinct from every entry so far "
                  f"({p['attempts']} draws per place before the list is left shorter);",
                  f"  - confusable: a pronunciation within {p['max_phone_edits']} phone edit (substitution, "
                  "insertion, deletion; homophones too) of the word's, in pocketsphinx's cmudict-en-us.dict, among "
                  f"the {res['inputs_info']['simulated']['confusable_vocabulary']:,} dictionary words that are also in "
                  "pocketsphinx's general en-us LM; the replacement drawn with probability proportional to its "
                  "unigram probability in that general LM (general English, nothing of SLURP). Words without a "
                  "confusable neighbour (many names) are never replaced;",
                  f"  - first-pass score of every other entry: −({p['score_per_edit']} × its word edits from the "
                  f"1-best + {p['score_noise']} × an Exponential(1) draw); the list is sorted by score;",
                  f"  - seeded per recording (seed {p['seed']} and the file name): the same lists every run.",
                  "- Tuning lists: every recording of the tuning subset (" + _rule(tr) + ") except those whose "
                  "sentence equals an evaluation sentence; evaluation lists: every recording of the evaluation "
                  "split. The "
                  "logged NLU exists here (SLURP's HerMiT on the real 1-best) but not on rescored text, so the NLU "
                  "effect uses the same simple NLU for both (below).", ""]
    L += ["## Every pair (all lists and the rare-word set)", "",
          "| source | pair | WERR, all | WERR, rare-word set |", "| --- | --- | --- | --- |"]
    for s, r in res["sources"].items():
        for key in r["all"]["werr"]:
            sys, base = key.split(" vs ")
            L.append(f"| {SHORT[s]} | {NAMES[sys]} vs {NAMES[base]} | {_f(r['all']['werr'][key], pct=True)} | "
                     f"{_f(r['rare']['werr'][key], pct=True)} |")
    L += ["", "## The rare-word threshold k", "",
          f"The headline k = {k} was fixed before any result. Rare-word set at k: lists whose reference holds a word "
          "seen fewer than k times in the rescoring LM's training text (k = 1: a word it never saw).", ""]
    for r in res["sources"].values():
        L += [f"### {r['name']}", "",
              "| k | rare words | lists | units | first pass | oracle | LM-only | fixed | ramp | RWM |"
              " RWM vs first pass | RWM vs LM-only | fixed vs LM-only | ramp vs LM-only |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for kk in res["k_sweep"]:
            x = r["sweep"][str(kk)]
            L.append(f"| {kk} | {r['rare_vocabulary'][str(kk)]:,} | {x['lists']:,} | {x['units']:,} | "
                     + " | ".join(_f(x["wer"][sys]) for sys in (ev.FIRST_PASS, ev.ORACLE, *RESCORERS)) + " | "
                     + " | ".join(_f(x["werr"].get(p), pct=True) for p in ("rwm vs first_pass", "rwm vs lm_only",
                                                                           "fixed vs lm_only", "ramp vs lm_only"))
                     + " |")
        L.append("")
    L += ["## NLU effect", "",
          "Intent accuracy of one NLU on the first pass's text and on each rescorer's chosen text, against SLURP's "
          "gold intent. The NLU is the speech demo's `DemoNLU` (analysis/speech/demo.py: a linear SVM over TF-IDF "
          f"of words and characters), trained here on the rescoring LM's training text only "
          f"({tr['nlu_training_sentences']:,} sentences with SLURP's intents). For (a) it is the logged NLU of the "
          "speech demo; for (b) SLURP's own NLU (HerMiT) was run only on the 1-best, so the same DemoNLU reads both "
          "texts, and HerMiT's accuracy on the 1-best is shown for reference. Differences are in points (system "
          "minus first pass), with paired intervals.", "",
          "| source | set | first pass | LM-only | fixed | ramp | RWM | oracle text | reference text | "
          "RWM − first pass | LM-only − first pass | HerMiT on 1-best |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s, r in res["sources"].items():
        for setname in ("all", "rare"):
            x = r["nlu"][setname]
            acc = x["accuracy"]
            L.append(f"| {SHORT[s]} | {setname} ({x['lists']:,}) | "
                     + " | ".join(_f(acc[sys]) for sys in (ev.FIRST_PASS, *RESCORERS, ev.ORACLE, "reference"))
                     + f" | {_f(x['difference']['rwm vs first_pass'])} | {_f(x['difference']['lm_only vs first_pass'])}"
                     + f" | {_f(acc['logged_nlu']) if 'logged_nlu' in acc else '—'} |")
    L += ["", "## Seeds", "",
          "Each seed pretrains once and fine-tunes the four ways from copies; lam and beta are tuned per seed and "
          "rescorer. Mean over seeds (min, max, sample sd):", "",
          "| source | figure | " + " | ".join(f"seed {x['seed']}" for x in res["seeds"]) + " | mean (min, max, sd) |",
          "| --- | --- | " + " | ".join("---" for _ in res["seeds"]) + " | --- |"]
    for s, r in res["sources"].items():
        rows = [("WER all, LM-only", "all", "wer", "lm_only", False), ("WER all, RWM", "all", "wer", "rwm", False),
                ("WER rare, LM-only", "rare", "wer", "lm_only", False), ("WER rare, RWM", "rare", "wer", "rwm", False)]
        rows += [(f"WERR rare, {SCHEME[w]} vs LM-only", "rare", "werr", f"{w} vs lm_only", True) for w in MULTITASK]
        rows += [(f"WERR all, {SCHEME[w]} vs LM-only", "all", "werr", f"{w} vs lm_only", True) for w in MULTITASK]
        rows += [("WERR all, RWM vs first pass", "all", "werr", "rwm vs first_pass", True),
                 ("WERR rare, RWM vs first pass", "rare", "werr", "rwm vs first_pass", True)]
        for label, setname, kind, key, pct in rows:
            vals = [x[setname][kind][key] for x in r["per_seed"]]
            L.append(f"| {SHORT[s]} | {label} | " + " | ".join(_cell(v, pct) for v in vals)
                     + f" | {_spread(vals, pct)} |")
    L += ["", "## Tuning", "",
          "lam and beta chosen per seed and rescorer by grid search on the source's tuning lists (rescore.py "
          "`tune`: the default grids, lowest pooled WER, ties to the smallest |lam| then |beta|). Share: how many "
          "evaluation lists the rescorer changed from the logged 1-best.", "",
          "| source | rescorer | lam per seed | beta per seed | tuning WER per seed | changed, evaluation |",
          "| --- | --- | --- | --- | --- | --- |"]
    for s, r in res["sources"].items():
        for w in RESCORERS:
            t = r["tuned"][w]
            lams = ", ".join(f"{x['lam']:g}" for x in t)
            betas = ", ".join(f"{x['beta']:g}" for x in t)
            wers = ", ".join(f"{x['tune_wer']:.3f}" for x in t)
            changed = ", ".join(f"{x['changed']:.1%}" for x in t)
            L.append(f"| {SHORT[s]} | {NAMES[w]} | {lams} | {betas} | {wers} | {changed} |")
    rw = [x.get("rwm_final_weights") for x in res["seeds"]]
    if any(rw):
        L += ["", "RWM's task weights at the end of fine-tuning (lm, intent, slots), per seed: "
              + "; ".join("(" + ", ".join(f"{w[t]:.2f}" for t in ("lm", "intent", "slots")) + ")" for w in rw if w)
              + "."]
    lc = res["leak_check"]
    L += ["", "## Training text and the leak guard", "",
          f"- Rescoring LM: {tr['sentences']:,} sentences ({tr['words']:,} words, {tr['distinct_words']:,} distinct) "
          f"and {tr['nlu_examples']:,} NLU examples from `slurp_training_text(exclude=is_tune_utterance)`: SLURP "
          "devel and the test utterances outside the evaluation split and outside the tuning subset ("
          + _rule(tr) + "), any sentence equal to an evaluation or a tuning sentence left out wherever it "
          "appears. The default "
          f"RescoringConfig ({res['config']['pretrain_epochs']} pretraining epochs, {res['config']['finetune_epochs']} "
          "fine-tuning epochs, a seeded 10% of the sentences held out as the dev set that drives RWM); "
          f"data fingerprint `{tr['fingerprint']}`.",
          f"- Leak guard (`leak_check`, run before any training; tests/test_rescoring_evaluation.py fails if it "
          f"would): {lc['result']}. Checked: " + ", ".join(f"{k} ({v:,})" for k, v in lc["inputs"].items())
          + f" against the {lc['evaluation_sentences']:,} evaluation sentences (and, for the tuning lists, their "
          "slurp_ids).", "",
          "## What limits the comparison with the published figures", "",
          "- **Not the published system or data.** The published rescorer is a large LM trained on far more text "
          "than the NLU data, rescoring a production recogniser's n-best lists on real traffic where rare words "
          f"(names, titles, places) are common. Here a 1-layer LSTM learns from {tr['words']:,} words of SLURP, the "
          "same sentences in pretraining and fine-tuning.",
          "- **(a) is synthetic speech and a weak recogniser.** espeak-ng voices recognised by pocketsphinx: a first-"
          "pass WER several times a production system's, with errors of another kind (acoustic confusions of robotic "
          "voices, not the long tail of names). Its first-pass LM is in-domain already (a 3-gram over the very text "
          "the rescoring LM learns from), so the second pass adds less new knowledge than a rescorer over a general "
          "first pass would; and a word absent from that text cannot be in any hypothesis at all, so at k = 1 no "
          "rescorer can recover the rare word itself.",
          "- **(b) is a simulation.** Its 1-best is real, but the alternatives, the reference's presence and the "
          "first-pass scores follow the rules above; the size of any gain on (b) depends on them (above all on the "
          "reference rate, which sets the oracle). It says how the rescorers rank plausible text against confusable "
          "substitutes, not what they would do on a real recogniser's lists.",
          "- **No real rare-word-heavy traffic.** The rare-word set is SLURP's evaluation sentences with a word "
          f"seen fewer than {k} times in ~{tr['words'] // 1000}k training words: small sets, wide intervals.",
          "- **Tuning.** lam and beta are tuned per source on a few hundred (a) or a few thousand (b) lists of the "
          "tuning subset, whose sentences no LM saw; the same rule for every rescorer.",
          *_findings(res), ""]
    return "\n".join(L)


def _findings(res: dict) -> list[str]:
    """Statements that follow from the numbers (so they stay true when a rerun changes them)."""
    out = ["", "## What the numbers say", ""]
    pub = res["published"]["rare_vs_lm_only"]
    for s, r in res["sources"].items():
        for setname, label in (("rare", "On the rare-word set"), ("all", "On all lists")):
            verdicts: dict[str, list[str]] = {}
            for w in MULTITASK:
                m = r[setname]["werr"][f"{w} vs lm_only"]
                lo, hi = m["ci"]
                v = ("no interval" if _isnan(lo) else "better than" if lo > 0 else "worse than" if hi < 0
                     else "not distinguishable from")
                verdicts.setdefault(v, []).append(f"{SCHEME[w]} {_f(m, pct=True)}")
            text = "; ".join(f"{', '.join(ws)}: {v} the LM-only rescorer" for v, ws in verdicts.items())
            out.append(f"- {SHORT[s]}. {label}, multitask against LM-only (WERR): {text}.")
        rw = r["rare"]["werr"]["rwm vs lm_only"]
        if not _isnan(rw["ci"][1]):
            where = ("above" if pub > rw["ci"][1] else "below" if pub < rw["ci"][0] else "inside")
            out.append(f"- {SHORT[s]}. The published +{pub:.1%} (RWM over LM-only on rare words) lies {where} our "
                       f"interval {_f(rw, pct=True)}.")
        seeds = [x["rare"]["werr"]["rwm vs lm_only"] for x in r["per_seed"]]
        if len(seeds) > 1:
            out.append(f"- {SHORT[s]}. Across the {len(seeds)} seeds, RWM against LM-only on the rare-word set ranges "
                       f"from {min(seeds):+.1%} to {max(seeds):+.1%} (sd {float(np.std(seeds, ddof=1)) * 100:.1f} "
                       "points)" + ("; one seed alone could have shown either sign" if min(seeds) < 0 < max(seeds)
                                    else "") + ".")
        fp, orc = r["all"]["werr"]["lm_only vs first_pass"], r["all"]["werr"]["oracle vs first_pass"]
        if not _isnan(orc["value"]) and orc["value"] != 0:
            helps = "Rescoring itself helps: " if fp["ci"][0] > 0 else ""
            out.append(f"- {SHORT[s]}. {helps}the LM-only rescorer's WERR over the first pass is {_f(fp, pct=True)}, "
                       f"{fp['value'] / orc['value']:.0%} of the n-best oracle's headroom ({_f(orc, pct=True)}).")
        d = r["nlu"]["all"]["difference"]["rwm vs first_pass"]
        lo, hi = d["ci"]
        out.append(f"- {SHORT[s]}. Intent accuracy of the NLU on the RWM rescorer's text minus on the first pass: "
                   f"{d['value'] * 100:+.1f} points [{lo * 100:+.1f}, {hi * 100:+.1f}]"
                   + (" (the interval holds 0)." if lo <= 0 <= hi else "."))
    return out


def main(argv: list[str] | None = None) -> int:
    def headline(results: dict) -> str:
        parts = []
        for s, r in results["sources"].items():
            m = r["rare"]["werr"].get("rwm vs lm_only")
            parts.append(f"{s}: rare-word WERR RWM vs LM-only {m['value']:+.1%}" if m else s)
        return "; ".join(parts)

    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare, headline=headline)


if __name__ == "__main__":
    raise SystemExit(main())
