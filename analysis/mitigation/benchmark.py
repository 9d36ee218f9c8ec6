"""The mitigation study (issue 20 item 1): adapt the rescoring LM to the worst-served group, plainly and with EWC,
and measure per-group WER on the evaluation split. Source (a) of the rescoring study (real pocketsphinx n-best lists
of SLURP sentences said by synthesised voices, analysis/rescoring/sources.py, read from its cache). Groups: the
speaker's espeak-ng accent (the "regional" grouping) and an automatic voice cohort (k-means over resemblyzer
embeddings of each speaker's audio, fitted on the tuning-side speakers). Per seed: fit the rescoring LM on SLURP's
training text, tune lam and beta on the tuning lists, find each grouping's worst group by the rescored WER of the
TUNING lists, adapt on that group's tuning lists ("finetune", "ewc": analysis/mitigation/adapt.py), and choose on
the evaluation lists with every model. Reports per-group WER, the mean, maximum and variance across groups and the
overall WER, each with speaker-bootstrap intervals, paired differences, and the seed spread. Writes the report
(Markdown) and its numbers (JSON, beside it); the Markdown is a pure function of the JSON.

    python scripts/evaluate_mitigation.py            # writes docs/results/mitigation.{md,json}
    python scripts/evaluate_mitigation.py --check    # reruns (the cached recognitions) and compares

Nothing is tuned, selected, adapted or fitted on the evaluation split: ``leak_check`` asserts it on every input.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis import report_cli
from analysis.mitigation.adapt import AdaptConfig, adapt
from analysis.mitigation.ewc import fisher_diagonal
from analysis.mitigation.groups import FIGURES, group_wer_errors
from analysis.rescoring import benchmark as rescoring_benchmark
from analysis.rescoring import evaluate as ev
from analysis.rescoring import sources as src
from analysis.rescoring.benchmark import (  # source (a)'s audio and recognitions: the rescoring study's cache
    DEFAULT_CACHE,
    DEFAULT_SLURP_DIR,
    REPO,
    EvaluationLeak,
    _isnan,
)
from analysis.rescoring.config import RescoringConfig
from analysis.rescoring.rescore import NBest
from analysis.rescoring.text import (
    NLUExample,
    evaluation_sentences,
    is_tune_utterance,
    sentence_key,
    slurp_training_text,
)
from analysis.slurp import is_eval_utterance

DEFAULT_OUT = REPO / "docs" / "results" / "mitigation.md"
DEFAULT_EMBEDDINGS = REPO / "data" / "cache" / "mitigation"  # resemblyzer results per audio file (resumable)

GROUPINGS = ("accent", "cohort")
GROUPING_NAMES = {"accent": "accent (espeak-ng; the regional grouping)",
                  "cohort": "automatic voice cohort (k-means on resemblyzer embeddings)"}
METHODS = ("finetune", "ewc")
METHOD_NAMES = {"finetune": "plain fine-tuning", "ewc": "fine-tuning with EWC"}
NONE = "none"
SYSTEMS = (NONE, *(f"{m}@{g}" for g in GROUPINGS for m in METHODS))
MIN_TARGET_SPEAKERS = 4  # a target group needs speakers to split off a dev set and still train on several
COHORT_K_RANGE = range(2, 9)  # the Disparity page's scan
PUBLISHED = "lower mean, maximum and variance of regional WER, and lower overall WER (EWC fine-tuning on the " \
            "highest-WER regions)"


def system_name(system: str) -> str:
    if system == NONE:
        return "no adaptation"
    method, grouping = system.split("@")
    return f"{METHOD_NAMES[method]}, {'accent' if grouping == 'accent' else 'cohort'} target"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="training seeds 0..n-1 (default 5)")
    p.add_argument("--pretrain-epochs", type=int, default=RescoringConfig.pretrain_epochs)
    p.add_argument("--finetune-epochs", type=int, default=RescoringConfig.finetune_epochs)
    p.add_argument("--adapt-epochs", type=int, default=AdaptConfig.epochs)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--quick", action="store_true",
                   help="a small run for trying things: 1 seed, 2+1 LM epochs, 3 adaptation epochs, 200 replicates")
    p.add_argument("--threads", type=int, default=2, help="torch threads for LM scoring (training uses 1)")
    p.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR, help="directory with the SLURP files")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                   help="source (a)'s audio and recognised logs (default data/cache/rescoring, git-ignored)")
    p.add_argument("--embedding-cache", type=Path, default=DEFAULT_EMBEDDINGS,
                   help="voice embeddings per audio file (default data/cache/mitigation, git-ignored)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--check", action="store_true",
                   help="rerun and compare the figures with the JSON beside --out; exit 1 if they differ")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any figure (default 0)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.pretrain_epochs, args.finetune_epochs, args.adapt_epochs, args.n_boot = 1, 2, 1, 3, 200
    return args


# ---------------------------------------------------------------------------------------------- inputs

@dataclass
class MitigationInputs:
    """sentences / nlu: the rescoring LM's training text (also the Fisher's general text); tune / eval: source
    (a)'s n-best lists; group_of: grouping -> speaker -> group name; info: what built them."""

    sentences: list[str]
    nlu: list[NLUExample]
    tune: list[NBest]
    eval: list[NBest]
    group_of: dict[str, dict[str, str]]
    info: dict = field(default_factory=dict)

    def groups(self, grouping: str, lists: Sequence[NBest]) -> list[str]:
        return [self.group_of[grouping][str(nb.speaker)] for nb in lists]


def accent_groups(speakers: Sequence[str]) -> dict[str, str]:
    """speaker -> espeak-ng accent of its simulated voice (analysis/speech/voices.py voice_for)."""
    from analysis.speech.voices import voice_for

    return {s: voice_for(s).accent for s in speakers}


def voice_cohorts(tune_embeddings: dict[str, np.ndarray], eval_embeddings: dict[str, np.ndarray], *, seed: int = 0
                  ) -> tuple[dict[str, str], dict]:
    """Automatic cohorts: k-means (analysis/disparity/cohorts.kmeans_cohorts, k by silhouette over 2..8) fitted
    on the TUNING-side speakers' mean voice embeddings only; each evaluation speaker joins the nearest centroid
    (Euclidean, the k-means rule). Features only: no WER enters the clustering. Returns (speaker -> "cohort i",
    info: k, silhouettes, speakers per cohort on each side)."""
    from analysis.disparity.cohorts import kmeans_cohorts

    tune_speakers = sorted(tune_embeddings)
    fit = kmeans_cohorts(np.stack([tune_embeddings[s] for s in tune_speakers]), k_range=COHORT_K_RANGE, seed=seed)
    out = {s: f"cohort {int(c)}" for s, c in zip(tune_speakers, fit.labels, strict=True)}
    eval_speakers = sorted(eval_embeddings)
    if eval_speakers:
        x = np.stack([eval_embeddings[s] for s in eval_speakers])
        nearest = ((x[:, None, :] - fit.centroids[None]) ** 2).sum(-1).argmin(1)
        out.update({s: f"cohort {int(c)}" for s, c in zip(eval_speakers, nearest, strict=True)})
    sizes = {side: {f"cohort {i}": sum(out[s] == f"cohort {i}" for s in spk) for i in range(fit.k)}
             for side, spk in (("tune", tune_speakers), ("eval", eval_speakers))}
    return out, {"k": int(fit.k), "silhouette": {str(k): round(float(v), 6) for k, v in fit.silhouette.items()},
                 "speakers": sizes}


def _speaker_embeddings(records: Sequence[dict], audio_root: Path, cache: Path, progress=None) -> dict:
    from analysis.speech.embeddings import EmbeddingConfig, embed_records

    cache.mkdir(parents=True, exist_ok=True)
    res = embed_records(records, audio_root, config=EmbeddingConfig(workers=2),
                        partial=cache / "voice-embeddings.partial.jsonl",  # kept: the per-file cache of reruns
                        progress=(lambda d, n: progress("embedding voices", d, n)) if progress else None)
    return {s: np.asarray(v, dtype=np.float64) for s, v in res.speaker_embeddings.items()}


def build_inputs(slurp_dir: Path, cache_dir: Path, embedding_cache: Path, *, progress=None) -> MitigationInputs:
    """Source (a)'s lists (the rescoring study's cache; built there if missing, ~6 min), the LM's training text,
    accents, and voice cohorts from the speakers' audio."""
    sentences, nlu = slurp_training_text(slurp_dir, exclude=is_tune_utterance)
    lists, info = src.speech_lists(slurp_dir, cache_dir, src.SpeechSourceConfig(), progress=progress)
    src.check_subsets(lists)
    root = cache_dir / "speech" / info["fingerprint"]
    records = {sub: [json.loads(line) for line in (root / f"{sub}.jsonl").read_text().splitlines() if line.strip()]
               for sub in ("tune", "eval")}
    emb = _speaker_embeddings(records["tune"] + records["eval"], cache_dir / "audio", embedding_cache, progress)
    tune_spk = sorted({str(nb.speaker) for nb in lists["tune"]})
    eval_spk = sorted({str(nb.speaker) for nb in lists["eval"]})
    missing = [s for s in tune_spk + eval_spk if s not in emb]
    if missing:
        raise RuntimeError(f"{len(missing)} speakers have no voice embedding (e.g. {missing[0]})")
    cohorts, cohort_info = voice_cohorts({s: emb[s] for s in tune_spk}, {s: emb[s] for s in eval_spk})
    group_of = {"accent": accent_groups(tune_spk + eval_spk), "cohort": cohorts}
    return MitigationInputs(sentences, nlu, lists["tune"], lists["eval"], group_of,
                            {"source_fingerprint": info["fingerprint"], "cohorts": cohort_info,
                             "cohort_fit_speakers": tune_spk})


def leak_check(slurp_dir: Path, inputs: MitigationInputs, *, adaptation: Sequence[NBest] | None = None,
               fisher_sentences: Sequence[str] | None = None) -> dict:
    """Raise EvaluationLeak if any evaluation-split utterance or speaker reaches an input that trains, tunes,
    selects or adapts: the tuning lists (lam and beta, the worst group, the adaptation and EWC dev lists are all
    drawn from them), the adaptation lists (default: all tuning lists, a superset of any target group's), the LM's
    training text and the Fisher's general sentences (default: the LM's training text), and the speakers the
    cohorts were fitted on. By id (slurp_id % 5 == 0), by text (the evaluation sentences), by speaker and by list
    key. Returns what was checked, for the report."""
    forbidden = evaluation_sentences(slurp_dir)
    eval_speakers = {str(nb.speaker) for nb in inputs.eval}
    eval_keys = {nb.key for nb in inputs.eval}
    problems = []
    list_inputs = {"tuning lists": inputs.tune,
                   "adaptation lists": list(inputs.tune if adaptation is None else adaptation)}
    for name, lists in list_inputs.items():
        ids = [nb.key for nb in lists if is_eval_utterance(int(nb.extra["slurp_id"]))]
        texts = [nb.key for nb in lists if sentence_key(nb.reference or "") in forbidden]
        speakers = sorted({str(nb.speaker) for nb in lists} & eval_speakers)
        keys = sorted({nb.key for nb in lists} & eval_keys)
        for what, bad in (("evaluation-split utterances", ids), ("evaluation sentences", texts),
                          ("evaluation speakers", speakers), ("evaluation lists", keys)):
            if bad:
                problems.append(f"{name}: {len(bad)} {what}, e.g. {bad[0]}")
    text_inputs = {"LM training text": inputs.sentences,
                   "Fisher sentences": list(inputs.sentences if fisher_sentences is None else fisher_sentences)}
    for name, texts in text_inputs.items():
        leaked = sorted({sentence_key(t) for t in texts} & forbidden)
        if leaked:
            problems.append(f"{name}: {len(leaked)} evaluation sentences, e.g. {leaked[0]!r}")
    fit = sorted(set(inputs.info.get("cohort_fit_speakers", ())) & eval_speakers)
    if fit:
        problems.append(f"cohort fit: {len(fit)} evaluation speakers, e.g. {fit[0]}")
    if problems:
        raise EvaluationLeak("; ".join(problems))
    return {"evaluation_lists": len(inputs.eval), "evaluation_speakers": len(eval_speakers),
            "evaluation_sentences": len(forbidden),
            "inputs": {**{k: len(v) for k, v in list_inputs.items()}, **{k: len(v) for k, v in text_inputs.items()},
                       "cohort fit speakers": len(inputs.info.get("cohort_fit_speakers", ()))},
            "result": "passed: no evaluation-split utterance, sentence, speaker or list in any tuning, selection, "
                      "adaptation, Fisher or cohort-fitting input"}


# ---------------------------------------------------------------------------------------------- the run

def tune_side_table(lists: Sequence[NBest], texts: dict[str, list[str]], groups: Sequence[str]) -> dict:
    """Per group of the tuning lists: lists, speakers, and the pooled WER of each system's texts (no intervals:
    this only picks the target)."""
    out: dict = {}
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        sub = [lists[i] for i in idx]
        row = {"lists": len(idx), "speakers": len({nb.speaker for nb in sub})}
        for name, t in texts.items():
            e, n = ev.list_errors(sub, [t[i] for i in idx])
            row[name] = float(e.sum() / max(int(n.sum()), 1))
        out[g] = row
    return out


def worst_group(table: dict, *, by: str = "rescored") -> str:
    """The group with the highest tuning-side WER (``by``) among those with MIN_TARGET_SPEAKERS speakers (ties:
    the first by name)."""
    eligible = {g: r for g, r in table.items() if r["speakers"] >= MIN_TARGET_SPEAKERS}
    if not eligible:
        raise ValueError(f"no group has {MIN_TARGET_SPEAKERS} tuning speakers to adapt on")
    return max(sorted(eligible), key=lambda g: eligible[g][by])


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    t_start = time.time()
    import torch

    from analysis.rescoring.model import RescoringModel
    from analysis.rescoring.rescore import choose, lm_scores, tune

    torch.set_num_threads(args.threads)
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.time() - last[0] > 30 or done == total:
            last[0] = time.time()
            print(f"  {stage}: {done}/{total}", flush=True)

    t0 = time.time()
    inputs = build_inputs(args.slurp_dir, args.cache_dir, args.embedding_cache, progress=progress)
    inputs_seconds = time.time() - t0
    leaks = leak_check(args.slurp_dir, inputs)  # before any training: every tuning list could be adapted on
    el = inputs.eval
    first_errors, ref_words = ev.list_errors(el, ev.first_pass_texts(el))
    errors: dict[str, list[np.ndarray]] = {s: [] for s in SYSTEMS}
    seeds_out = []
    adapt_cfg = {"epochs": args.adapt_epochs}
    for seed in range(args.seeds):
        t1 = time.time()
        cfg = RescoringConfig(seed=seed, pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs)
        model = RescoringModel(cfg).fit(inputs.sentences, inputs.nlu)
        lam, beta, tune_wer = tune(inputs.tune, lm_scores(model, inputs.tune))
        tune_texts = {"first_pass": ev.first_pass_texts(inputs.tune),
                      "rescored": [c.text for c in choose(inputs.tune, lm_scores(model, inputs.tune), lam=lam,
                                                          beta=beta)]}
        base_texts = [c.text for c in choose(el, lm_scores(model, el), lam=lam, beta=beta)]
        errors[NONE].append(ev.list_errors(el, base_texts)[0])
        fisher = fisher_diagonal(model, inputs.sentences, max_sentences=AdaptConfig().fisher_sentences, seed=seed,
                                 progress=progress)  # the same general text for both targets: estimated once
        record: dict = {"seed": seed, "lam": lam, "beta": beta, "tune_wer": tune_wer, "targets": {},
                        "tune_groups": {}, "adapt": {}, "changed": {}}
        for grouping in GROUPINGS:
            table = tune_side_table(inputs.tune, tune_texts, inputs.groups(grouping, inputs.tune))
            target = worst_group(table)
            record["tune_groups"][grouping], record["targets"][grouping] = table, target
            group_lists = [nb for nb, g in zip(inputs.tune, inputs.groups(grouping, inputs.tune), strict=True)
                           if g == target]
            leak_check(args.slurp_dir, inputs, adaptation=group_lists)
            for method in METHODS:
                system = f"{method}@{grouping}"
                adapted, summary = adapt(model, lam, beta, group_lists, inputs.sentences, method=method,
                                         config=AdaptConfig(seed=seed, **adapt_cfg), fisher=fisher,
                                         progress=progress)
                texts = [c.text for c in choose(el, lm_scores(adapted, el), lam=lam, beta=beta)]
                errors[system].append(ev.list_errors(el, texts)[0])
                record["changed"][system] = int(sum(a != b for a, b in zip(texts, base_texts, strict=True)))
                record["adapt"][system] = {k: summary[k] for k in ("lists", "speakers", "ewc_lam", "dev",
                                                                    "fisher_sentences", "seconds")}
                record["adapt"][system]["final_epoch"] = summary["history"][-1] if summary["history"] else None
        record["seconds"] = time.time() - t1
        seeds_out.append(record)
        print(f"  seed {seed} done in {record['seconds']:.0f} s", flush=True)

    units = ev.units_of(el, "speaker")
    mean_err = {s: np.mean(v, axis=0) for s, v in errors.items()}
    mean_err["first_pass"] = first_errors
    pairs = [(s, NONE) for s in SYSTEMS if s != NONE]
    pairs += [(f"ewc@{g}", f"finetune@{g}") for g in GROUPINGS]
    pairs += [(f"{m}@cohort", f"{m}@accent") for m in METHODS]
    tables = {}
    per_seed = {}
    for grouping in GROUPINGS:
        groups = inputs.groups(grouping, el)
        tables[grouping] = group_wer_errors(mean_err, ref_words, groups, units, pairs=pairs,
                                            resamples=args.n_boot, seed=0)
        per_seed[grouping] = []
        for i in range(args.seeds):
            pt = group_wer_errors({s: v[i] for s, v in errors.items()}, ref_words, groups, units, resamples=0)
            per_seed[grouping].append({s: {f: pt["systems"][s][f]["value"] for f in FIGURES} for s in SYSTEMS})
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_mitigation.py", *argv]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                 if k not in ("slurp_dir", "cache_dir", "embedding_cache", "out", "check", "tolerance")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start, "inputs_seconds": inputs_seconds,
        "rescoring_config": RescoringConfig(pretrain_epochs=args.pretrain_epochs,
                                            finetune_epochs=args.finetune_epochs).to_dict(),
        "adapt_config": AdaptConfig(**adapt_cfg).to_dict(), "min_target_speakers": MIN_TARGET_SPEAKERS,
        "lists": {"tune": len(inputs.tune), "eval": len(el),
                  "tune_speakers": len({nb.speaker for nb in inputs.tune}),
                  "eval_speakers": len({nb.speaker for nb in el}), "training_sentences": len(inputs.sentences)},
        "source_fingerprint": inputs.info["source_fingerprint"], "cohorts": inputs.info["cohorts"],
        "published": PUBLISHED, "leak_check": leaks, "tables": tables, "per_seed": per_seed, "seeds": seeds_out,
    }


# ---------------------------------------------------------------------------------------------- checking

# The rescoring study's: every figure of the JSON flattened, timings, command and machine left out, and the same
# comparison (the JSON here has no field those names would hide wrongly).
metrics = rescoring_benchmark.metrics
compare = rescoring_benchmark.compare


# ---------------------------------------------------------------------------------------------- the report

def _f(m: dict | None, *, signed: bool = False, scale: float = 1.0, digits: int = 3) -> str:
    if m is None:
        return "—"
    v, (lo, hi) = m["value"] * scale, m["ci"]
    if _isnan(v):
        return "–"
    fmt = (lambda x: f"{x:+.{digits}f}") if signed else (lambda x: f"{x:.{digits}f}")
    return fmt(v) if _isnan(lo) else f"{fmt(v)} [{fmt(lo * scale)}, {fmt(hi * scale)}]"


def _verdict(m: dict) -> str:
    lo, hi = m["ci"]
    if _isnan(lo):
        return "no interval"
    return "lower" if hi < 0 else "higher" if lo > 0 else "not distinguishable"


def _figure_name(fig: str) -> str:
    return {"overall": "overall WER", "mean": "mean group WER", "max": "maximum group WER",
            "variance": "variance across groups"}[fig]


def _summary_table(t: dict) -> list[str]:
    L = ["| system | overall WER | mean across groups | maximum | variance (×1000) |",
         "| --- | --- | --- | --- | --- |"]
    for s in ("first_pass", *SYSTEMS):
        b = t["systems"][s]
        name = "first pass (logged 1-best)" if s == "first_pass" else system_name(s)
        L.append(f"| {name} | {_f(b['overall'])} | {_f(b['mean'])} | {_f(b['max'])} | "
                 f"{_f(b['variance'], scale=1000, digits=2)} |")
    L += ["", "Differences (system minus other; negative: lower WER, better), paired over the same speaker draws:", "",
          "| system vs other | overall WER | mean across groups | maximum | variance (×1000) |",
          "| --- | --- | --- | --- | --- |"]
    for key, d in t["differences"].items():
        a, b = key.split(" vs ")
        L.append(f"| {system_name(a)} vs {system_name(b)} | {_f(d['overall'], signed=True, digits=4)} | "
                 f"{_f(d['mean'], signed=True, digits=4)} | {_f(d['max'], signed=True, digits=4)} | "
                 f"{_f(d['variance'], signed=True, scale=1000, digits=2)} |")
    return L


def _group_table(t: dict, targets: list[str]) -> list[str]:
    shown = ("first_pass", *SYSTEMS)
    L = ["| group | speakers | lists | target in seeds | " + " | ".join(
        "first pass" if s == "first_pass" else system_name(s) for s in shown) + " |",
         "| --- | --- | --- | --- | " + " | ".join("---" for _ in shown) + " |"]
    for g in t["groups"]:
        c = t["counts"][g]
        L.append(f"| {g} | {c['speakers']} | {c['lists']} | {targets.count(g)} | "
                 + " | ".join(_f(t["systems"][s]["per_group"][g]) for s in shown) + " |")
    return L


def render(res: dict) -> str:
    a, lc, co = res["args"], res["leak_check"], res["cohorts"]
    ac = res["adapt_config"]
    n_seeds = len(res["seeds"])
    L = ["# Mitigation: adapting the rescoring LM to the worst-served group, with and without EWC", "",
         "Issue 20 item 1. The recognition stack's trainable part here is the second-pass rescoring LM "
         "(docs/rescoring.md); it is adapted to the worst-served group's training-side n-best lists, plainly or with "
         "an EWC penalty, and every model rescores the evaluation split. Source: (a) of the rescoring study, real "
         f"pocketsphinx 10-best lists of SLURP sentences said by synthesised voices ({res['lists']['tune']:,} tuning "
         f"lists of {res['lists']['tune_speakers']} speakers; {res['lists']['eval']:,} evaluation lists of "
         f"{res['lists']['eval_speakers']} other speakers). Figures are means over {n_seeds} training seed"
         f"{'s' if n_seeds != 1 else ''} (word errors averaged per list), with 95% speaker-bootstrap intervals "
         f"({a['n_boot']} replicates, all systems on the same draws).", "",
         "Speaker verification with adversarial reweighting: see [verification.md](verification.md).", "",
         f"Produced by `{res['command']}` in {res['runtime_seconds'] / 60:.1f} min on 2 CPU cores (voice embeddings "
         "and recognitions read from the cache); `--check` reruns it and compares every figure.", "",
         "## Method", "",
         "- **Groups.** Accent: the espeak-ng accent of the speaker's simulated voice (8 accents, 8 speakers each per "
         "split; the regional grouping). Cohort: k-means over each speaker's mean resemblyzer voice embedding "
         "(analysis/disparity/cohorts.kmeans_cohorts, k by the highest silhouette over 2..8), fitted on the tuning-"
         f"side speakers only; evaluation speakers join the nearest centroid. k = {co['k']} (silhouettes "
         + ", ".join(f"{k}: {v:.3f}" for k, v in co["silhouette"].items()) + "); speakers per cohort, tuning side "
         + ", ".join(f"{g} {n}" for g, n in co["speakers"]["tune"].items()) + "; evaluation side "
         + ", ".join(f"{g} {n}" for g, n in co["speakers"]["eval"].items()) + ".",
         "- **The rescorer.** Per seed, the rescoring LM with its default config (RWM multitask; "
         f"{res['rescoring_config']['pretrain_epochs']} + {res['rescoring_config']['finetune_epochs']} epochs) on "
         f"SLURP's training text ({res['lists']['training_sentences']:,} sentences, no tuning or evaluation "
         "sentence); lam and beta tuned on all tuning lists (rescore.py `tune`) and kept for every adapted model.",
         "- **The target.** Per grouping, the group with the highest rescored WER on the TUNING lists (at least "
         f"{res['min_target_speakers']} speakers); never chosen with evaluation figures.",
         "- **Adaptation** (analysis/mitigation/adapt.py). Loss per batch of lists: LM loss on the references plus "
         "an MWER loss: the expected word errors under the list's posterior P(h) ∝ exp(total(h) / lam), total = "
         "first pass + lam · LM + beta · words, errors centred on the list's mean. Why: the LM is text-only and a "
         "group differs from the rest in how it is misheard, not in what it says; its n-best lists carry that. "
         f"Adam at {ac['lr']:g}, {ac['epochs']} epochs, {ac['batch_lists']} lists per batch, over the LM parameters "
         "only (the NLU heads are not part of the score). The epochs and the rate were set on the tuning side (the "
         "worst accent's tuning lists split by speaker, seed 0: 4 epochs left the held-out speakers' WER unchanged, "
         "3e-3 raised the other accents' tuning WER). In honesty: a first trial at 4 epochs had been scored on the "
         "evaluation split while the study was built (a change of under half a point for the target); the move to 10 "
         "epochs rests on the tuning-side figures alone.",
         "- **EWC** (analysis/mitigation/ewc.py). Penalty (λ_EWC / 2) Σ F_i (θ_i − θ*_i)², θ* the LM before "
         f"adaptation, F the diagonal empirical Fisher: per-sentence squared gradients of the log-likelihood of "
         f"{ac['fisher_sentences']} sentences sampled from the LM's training text (general data). λ_EWC from "
         + ", ".join(f"{x:g}" for x in ac["ewc_lams"]) + f", chosen by the pooled WER of a dev split of the target "
         f"group's tuning lists ({ac['dev_share']:.0%} of its speakers held out; ties to the larger), then trained "
         "on all the group's tuning lists as plain fine-tuning is.", ""]
    for grouping in GROUPINGS:
        t = res["tables"][grouping]
        targets = [s["targets"][grouping] for s in res["seeds"]]
        L += [f"## By {GROUPING_NAMES[grouping]}", "",
              f"Targets per seed: {', '.join(targets)}. {t['lists']:,} evaluation lists, {t['units']} speakers.", "",
              *_summary_table(t), "", "Per group (WER [interval]):", "", *_group_table(t, targets), ""]
    L += ["## Beside the published direction", "",
          f"The EWC paper reports {PUBLISHED}. Here, by accent (the regional grouping), each figure of fine-tuning "
          "with EWC on the accent target against no adaptation (interval of the paired difference):", "",
          "| figure | published | EWC − none | ours |", "| --- | --- | --- | --- |"]
    d = res["tables"]["accent"]["differences"]["ewc@accent vs none"]
    for fig in FIGURES:
        sc = 1000 if fig == "variance" else 1
        L.append(f"| {_figure_name(fig)}{' (×1000)' if sc > 1 else ''} | lower | "
                 f"{_f(d[fig], signed=True, scale=sc, digits=4 if sc == 1 else 2)} | {_verdict(d[fig])} |")
    L += ["", "## Seeds", "", "Point figures per seed (no intervals):", "",
          "| grouping | system | figure | " + " | ".join(f"seed {s['seed']}" for s in res["seeds"]) + " |",
          "| --- | --- | --- | " + " | ".join("---" for _ in res["seeds"]) + " |"]
    for grouping in GROUPINGS:
        for s in SYSTEMS:
            for fig in ("overall", "max"):
                L.append(f"| {grouping} | {system_name(s)} | {_figure_name(fig)} | "
                         + " | ".join(f"{x[s][fig]:.4f}" for x in res["per_seed"][grouping]) + " |")
    L += ["", "## Adaptation details", "",
          "| seed | lam | beta | system | target lists (speakers) | λ_EWC chosen | dev WER: unadapted; per λ_EWC | "
          "evaluation lists changed |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in res["seeds"]:
        for system, x in s["adapt"].items():
            dev = x["dev"]
            dev_text = ("—" if dev is None else f"{dev['unadapted_wer']:.3f}; "
                        + ", ".join(f"{k}: {v:.3f}" for k, v in dev["wer"].items()))
            chosen = "—" if x["ewc_lam"] is None else f"{x['ewc_lam']:g}"
            L.append(f"| {s['seed']} | {s['lam']:g} | {s['beta']:g} | {system_name(system)} | {x['lists']} "
                     f"({x['speakers']}) | {chosen} | {dev_text} | {s['changed'][system]} |")
    L += ["", "## The tuning side (how the targets were found)", "",
          "Seed 0's tuning-list WER per group, first pass and rescored (no intervals; only the ranking is used):", ""]
    s0 = res["seeds"][0]
    for grouping in GROUPINGS:
        L += [f"| {grouping} | speakers | lists | first pass | rescored |", "| --- | --- | --- | --- | --- |"]
        for g, r in s0["tune_groups"][grouping].items():
            L.append(f"| {g} | {r['speakers']} | {r['lists']} | {r['first_pass']:.3f} | {r['rescored']:.3f} |")
        L.append("")
    L += ["## The leak guard", "",
          f"`leak_check` ran before training and again on each target group's lists: {lc['result']}. Checked: "
          + ", ".join(f"{k} ({v:,})" for k, v in lc["inputs"].items())
          + f", against the {lc['evaluation_lists']:,} evaluation lists, their {lc['evaluation_speakers']} speakers "
          f"and the {lc['evaluation_sentences']:,} evaluation sentences (tests/test_mitigation_study.py fails if it "
          "would not).", "",
          "## What limits the comparison", "",
          "- **Synthetic voices.** The groups are espeak-ng accents and clusters of synthetic voices recognised by "
          "pocketsphinx, not people from regions; an accent here is a rule set, and its errors are a robot's.",
          "- **A second-pass text LM, not the acoustic model.** The published work adapts the recogniser itself; here "
          "only the rescorer's LM changes, and it can only reorder the 10 hypotheses the first pass gave. The n-best "
          "oracle bounds any gain (docs/results/rescoring.md: the rescorer already takes about 40% of that headroom).",
          "- **Small groups.** 8 speakers per accent on each side, about 70-90 lists per group: a target group's "
          "adaptation data is a few hundred words, and group WERs have intervals several points wide.",
          "- **Selection on the tuning side.** The target is the worst group on the tuning lists; with groups this "
          "close, it need not be the worst on the evaluation split (the per-group tables show both).",
          *_findings(res), ""]
    return "\n".join(L)


def _diff(m: dict, fig: str) -> str:
    """A difference of a figure, the variance in thousandths (its values are of order 1e-3)."""
    return _f(m, signed=True, scale=1000, digits=2) if fig == "variance" else _f(m, signed=True, digits=4)


def _findings(res: dict) -> list[str]:
    """Statements that follow from the numbers (so they stay true when a rerun changes them)."""
    out = ["", "## What the numbers say", ""]
    for grouping in GROUPINGS:
        t = res["tables"][grouping]
        for system in (f"{m}@{grouping}" for m in METHODS):
            d = t["differences"][f"{system} vs none"]
            parts = [f"{_figure_name(f)}{' (×1000)' if f == 'variance' else ''} {_verdict(d[f])} ({_diff(d[f], f)})"
                     for f in FIGURES]
            out.append(f"- By {grouping}, {system_name(system)} against no adaptation: " + "; ".join(parts) + ".")
        targets = [s["targets"][grouping] for s in res["seeds"]]
        for tg in sorted(set(targets)):
            rows = [t["differences"][f"{m}@{grouping} vs none"]["per_group"][tg] for m in METHODS]
            out.append(f"- By {grouping}, the target {tg} (chosen in {targets.count(tg)} of {len(targets)} seeds), its "
                       "evaluation WER against no adaptation: "
                       + "; ".join(f"{METHOD_NAMES[m]} {_f(r, signed=True, digits=4)} ({_verdict(r)})"
                                   for m, r in zip(METHODS, rows, strict=True)) + ".")
        worst_eval = max(t["groups"], key=lambda g: t["systems"][NONE]["per_group"][g]["value"])
        same = sum(tg == worst_eval for tg in targets)
        out.append(f"- By {grouping}, the evaluation split's worst group without adaptation is {worst_eval}: the "
                   f"tuning-side target in {same} of {len(targets)} seeds.")
        e = t["differences"][f"ewc@{grouping} vs finetune@{grouping}"]
        out.append(f"- By {grouping}, EWC against plain fine-tuning: overall WER {_verdict(e['overall'])} "
                   f"({_f(e['overall'], signed=True, digits=4)}), maximum {_verdict(e['max'])} "
                   f"({_f(e['max'], signed=True, digits=4)}).")
    runs = [x for s in res["seeds"] for sys, x in s["adapt"].items() if sys.startswith("ewc@") and x["dev"]]
    flat = [x for x in runs if len(set(x["dev"]["wer"].values())) == 1]
    if runs:
        out.append(f"- In {len(flat)} of {len(runs)} EWC runs the dev split (a quarter of the target's speakers) "
                   "could not tell the strengths apart, and the tie rule took the largest, which leaves the model "
                   "almost unadapted (see the lists changed above): the EWC figures mix adapted and nearly unadapted "
                   "models, and the dev split is too small to choose the strength reliably.")
    for m in METHODS:
        for grouping in GROUPINGS:
            c = res["tables"][grouping]["differences"][f"{m}@cohort vs {m}@accent"]
            name = METHOD_NAMES[m][0].upper() + METHOD_NAMES[m][1:]
            out.append(f"- {name}, cohort target against accent target, measured by "
                       f"{grouping}: maximum {_verdict(c['max'])} ({_f(c['max'], signed=True, digits=4)}), overall "
                       f"{_verdict(c['overall'])} ({_f(c['overall'], signed=True, digits=4)}).")
    return out


def main(argv: list[str] | None = None) -> int:
    def headline(results: dict) -> str:
        d = results["tables"]["accent"]["differences"]["ewc@accent vs none"]
        return (f"by accent, EWC vs none: overall {d['overall']['value']:+.4f}, max {d['max']['value']:+.4f}, "
                f"variance {d['variance']['value']:+.5f}")

    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare, headline=headline)


if __name__ == "__main__":
    raise SystemExit(main())
