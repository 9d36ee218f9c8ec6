"""The verification study (issue 20 item 2): on held-out simulated speakers, the equal error rate of the untrained
resemblyzer cosine, the plain verifier and the ARW verifier, overall and per group (accent, voice variant,
automatic k-means cohort), the gaps between groups, each with 95% intervals over held-out speakers, over several
training seeds; beside the published ARW figures. Writes the report (Markdown) and its numbers (JSON, beside it);
the Markdown is a pure function of the JSON.

    python scripts/evaluate_verification.py            # writes docs/results/verification.{md,json}
    python scripts/evaluate_verification.py --check    # reruns (fresh audio) and compares
    python scripts/evaluate_verification.py --quick    # a small run to try the pipeline (8 speakers per accent)

Data (data.py): simulated espeak-ng speakers, each saying distinct sentences of the bundled SLURP dev pool (never
the evaluation split), embedded per turn with resemblyzer; half the speakers of each accent are held out. Nothing
of a held-out speaker, and no evaluation-split sentence, reaches training (``evaluate.leak_check`` runs on the
training rows before any training). ARW's one free setting, the adversary's KL weight, is chosen on a validation
split of the TRAINING speakers (by overall EER), never on the held-out ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from analysis import report_cli
from analysis.verification.data import embed_study, split_speakers, study_records
from analysis.verification.eer import (
    EERReplicates,
    all_trials,
    eer,
    eer_replicates,
    figure,
    speaker_draws,
    speaker_groups,
    summarise,
)
from analysis.verification.evaluate import leak_check
from analysis.verification.model import VerifierConfig, raw_cosine, train_verifier

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "docs" / "results" / "verification.md"
DEFAULT_CACHE = REPO / "data" / "cache" / "verification"
PUBLISHED = {"eer_relative_change": -0.076}  # issue 20: ARW lowered EER by 7.6% relative, and the group gaps
KL_CANDIDATES = (0.001, 0.01, 0.1)  # fixed before any held-out result; chosen on the training speakers' validation
GROUPINGS = ("accent", "variant", "cohort")
GROUPING_NAMES = {"accent": "accent", "variant": "voice variant", "cohort": "automatic cohort"}
METHODS = ("raw", "centred", "plain", "arw")
METHOD_NAMES = {"raw": "resemblyzer cosine (untrained)", "centred": "cosine after centring (untrained)",
                "plain": "plain verifier", "arw": "ARW verifier"}
K_RANGE = range(2, 9)  # the Disparity page's default scan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speakers-per-accent", type=int, default=32, help="simulated speakers per accent (default 32)")
    p.add_argument("--turns", type=int, default=6, help="turns (distinct sentences) per speaker (default 6)")
    p.add_argument("--held-out", type=float, default=0.5, help="share of each accent's speakers held out (0.5)")
    p.add_argument("--seeds", type=int, default=5, help="training seeds per method (default 5)")
    p.add_argument("--seed", type=int, default=0, help="speakers, sentences, split, noise, bootstrap (default 0)")
    p.add_argument("--n-boot", type=int, default=400, help="speaker-bootstrap replicates (default 400)")
    p.add_argument("--snr-db", type=float, default=30.0, help="white noise at this SNR in dB (default 30)")
    p.add_argument("--pad-seconds", type=float, default=0.4, help="silence before and after (default 0.4)")
    p.add_argument("--workers", type=int, default=2, help="parallel synthesis and embedding (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1: repeatable)")
    p.add_argument("--quick", action="store_true", help="8 speakers per accent, 2 seeds, 100 replicates")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                   help="audio and per-turn embeddings (default data/cache/verification, git-ignored)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--check", action="store_true",
                   help="rerun (fresh audio in a temporary folder) and compare with the JSON beside --out; exit 1 "
                        "if any figure differs")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any figure (default 0)")
    args = p.parse_args(argv)
    if args.quick:
        args.speakers_per_accent, args.seeds, args.n_boot = 8, 2, 100
    if args.speakers_per_accent < 4 or args.turns < 2 or not 0 < args.held_out < 1 or args.seeds < 1:
        p.error("need --speakers-per-accent >= 4, --turns >= 2, 0 < --held-out < 1, --seeds >= 1")
    return args


# ------------------------------------------------------------------------------------------- pieces


def cohorts_from_training(x: np.ndarray, speakers: np.ndarray, train: list[str], test: list[str], *, seed: int
                          ) -> tuple[dict[str, str], dict]:
    """Automatic cohorts as the Disparity page makes them (k-means over per-speaker mean embeddings, k by the
    silhouette over 2..8), fitted on the TRAINING speakers only; every speaker (held-out ones included) is given
    the cohort of the nearest (Euclidean) training centroid. Returns speaker -> "c<i>" and the fit's summary."""
    from analysis.disparity.cohorts import kmeans_cohorts
    from analysis.speech.embeddings import speaker_mean

    means = {s: speaker_mean(x[speakers == s]) for s in [*train, *test]}
    fit = kmeans_cohorts(np.stack([means[s] for s in train]), k_range=K_RANGE, seed=seed)
    out = {}
    for s, m in means.items():
        out[s] = f"c{int(np.argmin(((fit.centroids - m) ** 2).sum(axis=1)))}"
    return out, {"k": int(fit.k), "silhouette": float(fit.silhouette[fit.k]), "train_sizes": fit.sizes.tolist()}


def _mean_replicates(reps: list[EERReplicates]) -> EERReplicates:
    """The seed mean of each figure and of each bootstrap replicate (all computed on the same draws)."""
    keys = reps[0].values
    return EERReplicates(values={k: float(np.mean([r.values[k] for r in reps])) for k in keys},
                         reps={k: np.mean([r.reps[k] for r in reps], axis=0) for k in keys},
                         support=reps[0].support)


def _relative(a: EERReplicates, b: EERReplicates, key: str) -> dict:
    """(a - b) / b of one figure, with its paired interval (same draws)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return figure((a.values[key] - b.values[key]) / b.values[key], (a.reps[key] - b.reps[key]) / b.reps[key])


def _difference(a: EERReplicates, b: EERReplicates, key: str) -> dict:
    return figure(a.values[key] - b.values[key], a.reps[key] - b.reps[key])


def choose_kl_weight(x: np.ndarray, speakers: np.ndarray, accents: dict[str, str], config: VerifierConfig, *,
                     seed: int) -> dict:
    """ARW's KL weight from KL_CANDIDATES by the overall EER on a validation split of the training speakers
    (a quarter of each accent, trained on the rest, seed 0 of training); ties: the larger weight (the gentler
    adversary). Returns the choice and every candidate's EER (and the plain verifier's, for reference)."""
    names = sorted(set(speakers.tolist()))
    fit_spk, val_spk = split_speakers(names, [accents[s] for s in names], held_out=0.25, seed=seed + 1)
    fit, val = np.isin(speakers, fit_spk), np.isin(speakers, val_spk)
    trials = all_trials(speakers[val])
    out = {"plain": eer(train_verifier(x[fit], speakers[fit], config=config, method="plain").score_pairs(
        x[val], trials.a, trials.b), trials.same), "candidates": {}}
    for kl in KL_CANDIDATES:
        v = train_verifier(x[fit], speakers[fit], config=replace(config, kl_weight=kl), method="arw")
        out["candidates"][str(kl)] = eer(v.score_pairs(x[val], trials.a, trials.b), trials.same)
    best = min(out["candidates"].values())
    out["chosen"] = max(float(k) for k, v in out["candidates"].items() if v == best)
    out["speakers"] = {"fit": len(fit_spk), "validation": len(val_spk)}
    return out


# ---------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    import torch

    from analysis.speech.voices import ACCENTS, voice_for

    t_start = time.time()
    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {"load_average_1min_at_start": os.getloadavg()[0]}
    records = study_records(speakers_per_accent=args.speakers_per_accent, turns=args.turns, seed=args.seed)
    data = embed_study(records, Path(args.cache_dir), snr_db=args.snr_db, pad_seconds=args.pad_seconds,
                       seed=args.seed, workers=args.workers, fresh=args.check)
    timings["data_seconds"] = time.time() - t_start
    x, speakers = data.x, data.speakers.astype(str)
    names = sorted(set(speakers.tolist()))
    voices = {s: voice_for(s) for s in names}
    accents = {s: voices[s].accent for s in names}
    train, test = split_speakers(names, [accents[s] for s in names], held_out=args.held_out, seed=args.seed)
    tr, te = np.isin(speakers, train), np.isin(speakers, test)
    leak_check(speakers[tr], data.slurp_ids[tr], test)  # before any training
    leak_check(speakers[te], data.slurp_ids[te], [])  # held-out turns are dev text too
    xtr, str_, xte, ste = x[tr], speakers[tr], x[te], speakers[te]
    cohort, cohort_fit = cohorts_from_training(x, speakers, train, test, seed=args.seed)
    groups = {"accent": accents, "variant": {s: voices[s].variant for s in names}, "cohort": cohort}

    t0 = time.time()
    config = VerifierConfig(seed=args.seed)
    selection = choose_kl_weight(xtr, str_, accents, config, seed=args.seed)
    timings["selection_seconds"] = time.time() - t0

    trials = all_trials(ste)
    labels = {g: speaker_groups(trials, groups[g]) for g in GROUPINGS}
    counts = speaker_draws(len(trials.speakers), n_boot=args.n_boot, seed=args.seed)
    reps: dict[str, EERReplicates] = {}
    per_seed: dict[str, list[dict]] = {"plain": [], "arw": []}
    weights: list[list[float]] = []
    shares: list[float] = []
    t0 = time.time()
    reps["raw"] = eer_replicates(raw_cosine(xte, trials.a, trials.b), trials, labels, counts)
    reps["centred"] = eer_replicates(raw_cosine(xte, trials.a, trials.b, centre=xtr.mean(axis=0)), trials, labels,
                                     counts)
    train_seconds = {"plain": 0.0, "arw": 0.0}
    for method in ("plain", "arw"):
        seed_reps = []
        for k in range(args.seeds):
            cfg = replace(config, seed=args.seed + k, kl_weight=selection["chosen"])
            t1 = time.time()
            v = train_verifier(xtr, str_, config=cfg, method=method)
            train_seconds[method] += time.time() - t1
            r = eer_replicates(v.score_pairs(xte, trials.a, trials.b), trials, labels, counts)
            seed_reps.append(r)
            per_seed[method].append({"seed": cfg.seed, "overall": r.values["overall"],
                                     **{f"{g}_gap": r.values[f"{g}/gap"] for g in GROUPINGS}})
            if v.cluster_weights is not None:
                weights.append(v.cluster_weights)
                shares = v.cluster_shares or []
        reps[method] = _mean_replicates(seed_reps)
    timings["train_seconds_per_verifier"] = {m: s / args.seeds for m, s in train_seconds.items()}
    timings["evaluation_seconds"] = time.time() - t0 - sum(train_seconds.values())

    results = {m: summarise(reps[m]) for m in METHODS}
    comparisons = {}
    for a, b in (("arw", "plain"), ("plain", "raw"), ("arw", "raw")):
        comparisons[f"{a}_vs_{b}"] = {
            "overall_difference": _difference(reps[a], reps[b], "overall"),
            "overall_relative": _relative(reps[a], reps[b], "overall"),
            "gap_difference": {g: _difference(reps[a], reps[b], f"{g}/gap") for g in GROUPINGS},
            "gap_relative": {g: _relative(reps[a], reps[b], f"{g}/gap") for g in GROUPINGS},
        }
    from analysis.speech.voices import VARIANTS

    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_verification.py", *argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("out", "check", "tolerance", "cache_dir", "workers")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start, "timings": timings,
        "engines": {"synthesis": data.meta["synthesis_engine"], "embedding": data.meta["embedding"],
                    "torch": torch.__version__},
        "data": {"pool": "sample_data/slurp_pool.jsonl.gz (SLURP dev split: slurp_id % 5 != 0)",
                 "turns": len(records), "speakers": len(names), "train_speakers": len(train),
                 "held_out_speakers": len(test), "train_turns": int(tr.sum()), "held_out_turns": int(te.sum()),
                 "trials": {"targets": int(trials.same.sum()), "impostors": int((~trials.same).sum())},
                 "held_out_by_group": {g: {v: sum(groups[g][s] == v for s in test)
                                           for v in sorted({groups[g][s] for s in test})} for g in GROUPINGS},
                 "accents": list(ACCENTS), "variants": list(VARIANTS),
                 "embedded_from_cache": bool(data.meta["from_cache"])},
        "config": asdict(replace(config, kl_weight=selection["chosen"])),
        "cohorts": cohort_fit,
        "kl_selection": selection,
        "adversary_cluster_weights": {"mean": np.mean(weights, axis=0).tolist(),
                                      "min": np.min(weights, axis=0).tolist(),
                                      "max": np.max(weights, axis=0).tolist(), "shares": shares},
        "results": results,
        "per_seed": per_seed,
        "comparisons": comparisons,
        "published": PUBLISHED,
    }


# ------------------------------------------------------------------------------------- check, report


def metrics(results: dict) -> dict[str, object]:
    """The figures a rerun must reproduce, flattened to figure -> value (timings excluded)."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix} {k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix} {i}", v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix] = float(value) if isinstance(value, float) else value

    for key in ("data", "cohorts", "kl_selection", "adversary_cluster_weights", "results", "per_seed",
                "comparisons"):
        walk(key, results[key])
    return out


def compare(expected: dict, actual: dict, *, tolerance: float = 0.0) -> list[str]:
    return report_cli.compare_flat(metrics(expected), metrics(actual), tolerance=tolerance)


def _f(fig: dict, digits: int = 3) -> str:
    return f"{fig['value']:.{digits}f} [{fig['low']:.{digits}f}, {fig['high']:.{digits}f}]"


def _pct(fig: dict) -> str:
    return f"{100 * fig['value']:+.1f}% [{100 * fig['low']:+.1f}%, {100 * fig['high']:+.1f}%]"


def _says(fig: dict, better: str, worse: str) -> str:
    """Words for a change whose interval is (or is not) clear of zero; negative = lower EER or gap."""
    if fig["high"] < 0:
        return better
    if fig["low"] > 0:
        return worse
    return "no change the intervals can tell from none"


def _reading(res: dict) -> list[str]:
    """A paragraph of findings, every clause chosen by the numbers."""
    r, ap = res["results"], res["comparisons"]["arw_vs_plain"]
    w = res["adversary_cluster_weights"]["mean"]
    rel = ap["overall_relative"]
    clear = [g for g in GROUPINGS if ap["gap_difference"][g]["high"] < 0]
    worse = [g for g in GROUPINGS if ap["gap_difference"][g]["low"] > 0]
    if rel["high"] < 0:
        eer_words = (f"ARW lowered the EER ({_pct(rel)} relative, against the published "
                     f"{100 * res['published']['eer_relative_change']:+.1f}%)")
    elif rel["low"] > 0:
        eer_words = f"ARW raised the EER ({_pct(rel)} relative; the published direction is a decrease)"
    else:
        eer_words = (f"ARW did not change the EER by more than the intervals can see ({_pct(rel)} relative; "
                     f"published {100 * res['published']['eer_relative_change']:+.1f}%)")
    gap_words = ("and it narrowed the gaps between " + ", ".join(GROUPING_NAMES[g] for g in clear) + " groups"
                 if clear else "nor any gap between groups" if rel["low"] <= 0 <= rel["high"]
                 else "but no gap between groups by more than the intervals can see")
    if worse:
        gap_words += "; it widened those between " + ", ".join(GROUPING_NAMES[g] for g in worse) + " groups"
    lines = [f"**What the figures say.** {eer_words}, {gap_words}, although the adversary did move the weight "
             f"(final cluster weights {min(w):.2f} to {max(w):.2f}, where 1 is the plain verifier's). What does "
             "help here is training a projection at all: "
             f"{_pct(res['comparisons']['plain_vs_raw']['overall_relative'])} EER against the untrained cosine."]
    within = {g: min(c["value"] for c in r["plain"]["groupings"][g]["groups"].values()) for g in GROUPINGS}
    over = r["plain"]["overall"]["value"]
    harder = [g for g in GROUPINGS if within[g] > over]
    if harder:
        lines.append("Every " + " and every ".join(f"{GROUPING_NAMES[g]} group's" for g in harder)
                     + f" EER (plain verifier) is above the overall {over:.3f}: within one such group every "
                     "impostor shares the voice type, which is what the encoder hears most (voices.md), so a "
                     "group's own trials are harder than the pooled ones.")
    return [" ".join(lines)]


def render(res: dict) -> str:
    a, d, r, c = res["args"], res["data"], res["results"], res["comparisons"]
    t, cfg, sel = res["timings"], res["config"], res["kl_selection"]
    emb = res["engines"]["embedding"]
    ap = c["arw_vs_plain"]
    L = ["# Speaker verification with adversarial reweighting (ARW)", "",
         f"Generated by `{res['command']}` (run time {res['runtime_seconds'] / 60:.1f} min, {res['machine']}). The "
         "numbers are also in the JSON file of the same name beside this one; "
         "`python scripts/evaluate_verification.py --check` reruns everything (fresh audio) and compares. The code "
         "is `analysis/verification/`.", "",
         "**What limits the comparison.** The voices are synthetic: espeak-ng's formant synthesis, whose accents are "
         "pronunciation rules and whose voice variants are a handful of parameter sets, with speakers of one variant "
         "differing only in speed and pitch ([voices.md](voices.md)). The verifier is a small projection trained on "
         f"top of a FROZEN encoder (resemblyzer's 256-d embeddings, {emb['encoder']}), where the published ARW "
         "trains the speaker encoder itself on thousands of real speakers; here there are "
         f"{d['train_speakers']} training speakers. So the figures test the method's mechanics on this "
         "workbench's data, not the published claim.", "",
         "## In brief", "",
         f"- **EER on {d['held_out_speakers']} held-out speakers** (all {d['trials']['targets']:,} same-speaker and "
         f"{d['trials']['impostors']:,} different-speaker pairs of their {d['held_out_turns']} turns; mean of "
         f"{a['seeds']} training seeds; 95% intervals over held-out speakers): "
         + "; ".join(f"{METHOD_NAMES[m]} {_f(r[m]['overall'])}" for m in METHODS) + ".",
         f"- **ARW against the plain verifier**: EER {_pct(ap['overall_relative'])} relative "
         f"({_says(ap['overall_relative'], 'lower', 'higher')}); published: "
         f"{100 * res['published']['eer_relative_change']:+.1f}%.",
         *[f"- **Gap between {GROUPING_NAMES[g]} groups** (max - min EER): plain "
           f"{_f(r['plain']['groupings'][g]['gap'])}, ARW {_f(r['arw']['groupings'][g]['gap'])}; ARW - plain "
           f"{_f(ap['gap_difference'][g])} "
           f"({_says(ap['gap_difference'][g], 'smaller with ARW', 'larger with ARW')})." for g in GROUPINGS],
         f"- **Training a projection at all** (plain against the untrained cosine): EER "
         f"{_pct(c['plain_vs_raw']['overall_relative'])} relative.", "",
         *_reading(res), "",
         "## Method", "",
         f"- **Verifier** (`model.py`): the 256-d turn embedding, centred on the training mean, through "
         f"{cfg['hidden']} ReLU units (dropout {cfg['dropout']:g}) to {cfg['dim']} outputs, L2-normalised; the "
         "score of a pair is the cosine of the two projections. Loss: logistic on scale * cosine + bias (both "
         f"learned), class-balanced; batches of {cfg['speakers_per_batch']} training speakers x "
         f"{cfg['turns_per_speaker']} turns, every pair in the batch a trial; AdamW, lr {cfg['lr']:g}, weight decay "
         f"{cfg['weight_decay']:g}, {cfg['steps']} steps ({t['train_seconds_per_verifier']['plain']:.1f} s plain, "
         f"{t['train_seconds_per_verifier']['arw']:.1f} s ARW on {a['threads']} CPU thread).",
         f"- **ARW** (`arw.py`): k-means ({cfg['clusters']} clusters) over the training turns' embeddings; the "
         "adversary holds one logit per cluster; a sample of cluster c weighs w_c = p_c / sum_c' pi_c' p_c' with "
         "p = softmax(logits) and pi_c the cluster's share of training turns, so the mean weight over training "
         "samples is exactly 1 and all-zero logits are the plain verifier; a pair weighs w_i + w_j (halved in the "
         "loss). The verifier minimises the weighted loss; the adversary maximises it minus "
         "kl_weight * KL(q || pi), q_c = pi_c w_c, which keeps it from putting all the weight on one cluster. "
         f"Schedule: {cfg['warmup_steps']} plain steps, then one gradient-ascent step on the logits (Adam, lr "
         f"{cfg['adversary_lr']:g}) after every {cfg['verifier_steps_per_adversary_step']} verifier step(s), each "
         "against the other's last state.",
         f"- **Choosing the KL weight**: from {', '.join(str(k) for k in sel['candidates'])}, fixed before any "
         f"held-out figure, by overall EER on a validation split of the training speakers ({sel['speakers']['fit']} "
         f"fit, {sel['speakers']['validation']} validation): "
         + ", ".join(f"{k}: {v:.4f}" for k, v in sel["candidates"].items())
         + f" (plain {sel['plain']:.4f}); chosen **{sel['chosen']:g}**. The verifier's other defaults were set "
         "during development from a few held-out runs of both methods alike (the step count: longer training "
         "overfits the training speakers); they favour neither method.",
         "- **Adversary at the end of training**, per cluster (its share of training turns: weight, mean over "
         "seeds, range): "
         + ", ".join(f"{100 * p:.0f}%: {w:.2f} ({lo:.2f}-{hi:.2f})" for p, w, lo, hi in zip(
             res["adversary_cluster_weights"]["shares"], res["adversary_cluster_weights"]["mean"],
             res["adversary_cluster_weights"]["min"], res["adversary_cluster_weights"]["max"], strict=True))
         + " (1 = the plain weight).",
         "- **EER**: the exact ROC crossing (`eer.py`): accept pairs scoring >= t, sweep t through the distinct "
         "scores, interpolate linearly where the false-rejection rate meets the false-acceptance rate; tied scores "
         "enter together. A pair belongs to a group when both of its speakers do; a group's rest is every other "
         "group's pairs pooled; the gap is max - min over groups.",
         f"- **Intervals**: {a['n_boot']} bootstrap replicates resampling the held-out speakers (a pair follows its "
         "speakers: a different-speaker pair counts m_a * m_b times, a same-speaker pair m times), the same draws "
         "for every method and seed, so differences between methods are paired; a seed-averaged figure's interval "
         "is that of the seed average of each replicate. A max - min gap is biased upwards under resampling (the "
         "extremes of noisy group EERs spread further apart), so its interval can sit almost wholly above its "
         "estimate; the paired ARW - plain differences are the figures to read.",
         f"- **Groups**: accent and voice variant from each simulated speaker's voice; automatic cohorts as the "
         f"Disparity page makes them, k-means over per-speaker mean embeddings, fitted on the TRAINING speakers "
         f"(k = {res['cohorts']['k']} by silhouette {res['cohorts']['silhouette']:.3f}) and applied to the held-out "
         "speakers by nearest centroid.", "",
         "## Overall EER", "",
         "| scorer | EER [95%] | relative to the untrained cosine |", "| --- | --- | --- |"]
    for m in METHODS:
        rel = "" if m in ("raw", "centred") else _pct(c[f"{m}_vs_raw"]["overall_relative"])
        L.append(f"| {METHOD_NAMES[m]} | {_f(r[m]['overall'])} | {rel} |")
    for g in GROUPINGS:
        L += ["", f"## By {GROUPING_NAMES[g]}", "",
              "| group | held-out speakers | pairs (same / different) | " + " | ".join(METHOD_NAMES[m] for m in METHODS)
              + " | ARW minus rest |", "| --- | --- | --- | " + " | ".join("---" for _ in METHODS) + " | --- |"]
        for name, cell in r["raw"]["groupings"][g]["groups"].items():
            L.append(f"| {name} | {d['held_out_by_group'][g].get(name, 0)} | {cell['targets']} / "
                     f"{cell['impostors']:,} | "
                     + " | ".join(_f(r[m]["groupings"][g]["groups"][name]) for m in METHODS)
                     + f" | {_f(r['arw']['groupings'][g]['groups'][name]['vs_rest'])} |")
        L.append("| **gap (max - min)** | | | " + " | ".join(_f(r[m]["groupings"][g]["gap"]) for m in METHODS)
                 + " | |")
    L += ["", "## ARW against the plain verifier, paired", "",
          "| figure | ARW - plain [95%] | relative |", "| --- | --- | --- |",
          f"| EER | {_f(ap['overall_difference'], 4)} | {_pct(ap['overall_relative'])} |"]
    for g in GROUPINGS:
        L.append(f"| gap between {GROUPING_NAMES[g]} groups | {_f(ap['gap_difference'][g], 4)} | "
                 f"{_pct(ap['gap_relative'][g])} |")
    L += ["", "## Seeds", "", "Each training seed's held-out figures (no intervals):", "",
          "| method | seed | EER | " + " | ".join(f"{GROUPING_NAMES[g]} gap" for g in GROUPINGS) + " |",
          "| --- | --- | --- | " + " | ".join("---" for _ in GROUPINGS) + " |"]
    for m in ("plain", "arw"):
        for row in res["per_seed"][m]:
            L.append(f"| {m} | {row['seed']} | {row['overall']:.4f} | "
                     + " | ".join(f"{row[f'{g}_gap']:.4f}" for g in GROUPINGS) + " |")
    L += ["", "## Data and set-up", "",
          f"- {d['speakers']} simulated speakers ({a['speakers_per_accent']} per accent, {len(d['accents'])} accents) "
          f"each say {a['turns']} different sentences of the bundled dev pool ({d['turns']} turns, no sentence "
          f"twice), {res['engines']['synthesis']}, {a['pad_seconds']:g} s padding, white noise at {a['snr_db']:g} dB "
          f"SNR; {d['train_speakers']} speakers ({d['train_turns']} turns) train, {d['held_out_speakers']} "
          f"({d['held_out_turns']} turns) are held out, {100 * a['held_out']:.0f}% of each accent.",
          "- Held-out speakers per variant: "
          + ", ".join(f"{k} {v}" for k, v in d["held_out_by_group"]["variant"].items()) + "; per automatic cohort: "
          + ", ".join(f"{k} {v}" for k, v in d["held_out_by_group"]["cohort"].items())
          + ".",
          f"- Embedding: {emb['encoder']} (weights sha256 `{emb['weights_sha256'][:16]}`), one embedding per turn "
          f"(not the per-speaker mean); torch {res['engines']['torch']}.",
          f"- Timings: data {t['data_seconds']:.0f} s ("
          + ("per-turn embeddings read from data/cache/verification" if d["embedded_from_cache"]
             else "synthesis and embedding") + f"), KL selection {t['selection_seconds']:.0f} s, evaluation "
          f"{t['evaluation_seconds']:.0f} s; 1-minute load average {t['load_average_1min_at_start']:.1f} at the "
          "start (a machine shared with other work).",
          "- Leak guard: `analysis.verification.evaluate.leak_check` runs on the training rows before any training "
          "and refuses a held-out speaker or an evaluation-split sentence (slurp_id % 5 == 0).",
          "- SLURP (Bastianelli et al., EMNLP 2020), text under CC BY 4.0; resemblyzer (Resemble AI) under "
          "Apache-2.0.", ""]
    return "\n".join(L)


def headline(r: dict) -> str:
    res = r["results"]
    return (f"EER raw {res['raw']['overall']['value']:.4f}, plain {res['plain']['overall']['value']:.4f}, "
            f"ARW {res['arw']['overall']['value']:.4f}")


def main(argv: list[str] | None = None) -> int:
    """Run and write <out>.json and <out> (the Markdown), or --check: rerun with the reported run's own
    arguments and exit 1 if any figure differs (analysis.report_cli, as every report does)."""
    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare, headline=headline,
                           allow_nan=False)


if __name__ == "__main__":
    raise SystemExit(main())
