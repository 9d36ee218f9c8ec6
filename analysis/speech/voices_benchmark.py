"""The voice-embedding benchmark: how well resemblyzer's speaker embeddings of SYNTHETIC speech separate the
simulated speakers' accents and voice variants, per turn and per speaker mean, next to the same measures for the
simulator's 16-d simulated embeddings (analysis/simulate.py) and its latent voice cohorts.

Data: sentences of the bundled DEV pool (sample_data/slurp_pool.jsonl.gz: SLURP test utterances with
slurp_id % 5 != 0; the evaluation split is never read), said by simulated speakers (``slurp_log.simulated_speakers``:
as many per accent; variant, speed and pitch from each id) with espeak-ng at a stated SNR. Each speaker says
``turns`` sentences; every sentence is said by exactly two speakers drawn at random, so the sentence's pull on an
embedding can be measured against the voice's. Embedded with ``analysis.speech.embeddings`` (as
``turnlens speech embed`` does).

Measures, for each set of labels (accent, variant, the variant's sex; the simulator's latent cohort):
- k-means ARI: ``analysis.disparity.cohorts.kmeans_cohorts`` (what the Disparity page runs) with k = the number
  of labels, adjusted Rand index against the labels (1 = the labels recovered, 0 = chance); also the k the page
  would choose by silhouette, and that clustering's ARI;
- silhouette of the true labels (Euclidean on unit vectors; -1..1, higher = labels better separated);
- nearest-centroid accuracy, leave one speaker out: each point's label predicted by the nearest (cosine) label
  centroid of the OTHER speakers' points; 95% speaker-bootstrap interval; chance = the largest label's share.
Plus, per turn: how often a turn's nearest other turn is the same speaker or the other speaker of the same
sentence, mean cosine similarities by relation, and speaker identification among all speakers.

    python scripts/evaluate_voices.py            # writes docs/results/voices.{md,json} (a few minutes on 2 cores)
    python scripts/evaluate_voices.py --check    # reruns everything (fresh audio) and compares
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis import report_cli
from analysis.disparity.cohorts import kmeans_cohorts, mean_silhouettes
from analysis.slurp import is_eval_utterance
from analysis.speech.embeddings import EmbeddingConfig, describe, embed_records, speaker_mean
from analysis.speech.slurp_log import simulated_speakers
from analysis.speech.synthesis import SYNTHESIS_FIELD, SynthesisConfig, synthesize_records
from analysis.speech.voices import ACCENTS, VARIANTS, voice_for

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "docs" / "results" / "voices.md"
DEFAULT_WORK = REPO / "data" / "speech"
START = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
K_RANGE = range(2, 9)  # the Disparity page's default scan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speakers-per-accent", type=int, default=16, help="simulated speakers per accent (16: 128)")
    p.add_argument("--turns", type=int, default=6, help="turns (distinct sentences) per speaker (default 6)")
    p.add_argument("--seed", type=int, default=0, help="speakers, sentences, noise, k-means (default 0)")
    p.add_argument("--snr-db", type=float, default=30.0, help="white noise at this SNR in dB (default 30)")
    p.add_argument("--pad-seconds", type=float, default=0.4, help="silence before and after (default 0.4)")
    p.add_argument("--sim-turns", type=int, default=6000,
                   help="turns of the simulated log the simulator's embeddings come from (default 6000)")
    p.add_argument("--n-boot", type=int, default=1000, help="speaker-bootstrap replicates (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="parallel synthesis and embedding (default 2)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                   help="where the audio and the embedded log go (default data/speech, git-ignored)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report; its JSON goes beside it")
    p.add_argument("--check", action="store_true",
                   help="rerun (fresh audio in a temporary folder) and compare with the JSON beside --out; exit 1 "
                        "if any figure differs")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="with --check: the largest absolute difference accepted in any figure (default 0)")
    args = p.parse_args(argv)
    if args.speakers_per_accent < 2 or args.turns < 2:
        p.error("--speakers-per-accent and --turns must be at least 2")
    return args


# ------------------------------------------------------------------------------------------------ data


def dev_sentences() -> list[tuple[int, str]]:
    """The distinct (slurp_id, sentence) pairs of the bundled dev pool, by slurp_id; refuses any evaluation-split
    utterance (the pool never holds one: scripts/build_sample_data.py refuses them too)."""
    from analysis.simulate import load_pool

    seen: dict[int, str] = {}
    for rec in load_pool():
        sid = int(rec["slurp_id"])
        if is_eval_utterance(sid):
            raise ValueError(f"slurp_id {sid} is in the evaluation split: the voices benchmark reads dev text only")
        seen.setdefault(sid, str(rec["reference_text"]))
    return sorted(seen.items())


def voice_records(*, speakers_per_accent: int, turns: int, seed: int) -> list[dict]:
    """Text-only turns: ``turns`` per simulated speaker (as many per accent), each sentence said by exactly two
    speakers (for each turn slot the speakers are shuffled and paired), a seeded sample of distinct dev
    sentences. One turn per dialogue, ids ``voices-<sentence>-<a|b>``."""
    speakers = simulated_speakers(speakers_per_accent, split="dev", seed=seed)
    rng = random.Random(f"turnlens-voices-{seed}")  # a str seed hashes with sha512: stable across runs
    pool = dev_sentences()
    n_sentences = len(speakers) * turns // 2
    if n_sentences > len(pool):
        raise ValueError(f"{n_sentences} sentences needed, the dev pool has {len(pool)}")
    chosen = rng.sample(pool, n_sentences)
    out: list[dict] = []
    k = 0
    for _ in range(turns):
        order = list(speakers)
        rng.shuffle(order)
        for a, b in zip(order[0::2], order[1::2], strict=True):
            slurp_id, sentence = chosen[k]
            for side, sid in (("a", a), ("b", b)):
                out.append({"dialogue_id": f"voices-{k:05d}-{side}", "turn_index": 0,
                            "timestamp": (START + timedelta(seconds=30 * len(out))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "asr_text": "", "reference_text": sentence, "user_id": sid, "speaker_id": sid,
                            "locale": "en-US", "slurp_id": slurp_id, "slurp_split": "dev", "sentence_index": k})
            k += 1
    return out


def simulator_embeddings(*, n_turns: int, turns: int, n_speakers: int, seed: int) -> dict:
    """The simulator's 16-d embeddings as its logs carry them: a log of n_turns turns (bundled dev pool), its
    speakers with at least ``turns`` turns, ``n_speakers`` of them drawn at random, their first ``turns`` turns;
    with each speaker's latent cohort (ground truth the records never carry)."""
    from analysis.simulate import build_population, load_pool, n_users_for, simulate_turns

    cohort = {s.speaker_id: s.cohort for u in build_population(n_users=n_users_for(n_turns), seed=seed)
              for s in u.speakers}
    by_speaker: dict[str, list[list[float]]] = {}
    for rec in simulate_turns(load_pool(), n_turns=n_turns, seed=seed):
        by_speaker.setdefault(rec["speaker_id"], []).append(rec["speaker_embedding"])
    eligible = sorted(s for s, v in by_speaker.items() if len(v) >= turns)
    if len(eligible) < n_speakers:
        raise ValueError(f"only {len(eligible)} simulated speakers have {turns} turns; raise --sim-turns")
    picked = sorted(random.Random(f"turnlens-voices-sim-{seed}").sample(eligible, n_speakers))
    speakers = [s for s in picked for _ in range(turns)]
    x = np.array([v for s in picked for v in by_speaker[s][:turns]], dtype=np.float64)
    return {"speakers": np.array(speakers, dtype=object), "turn_x": x,
            "labels": {"cohort": np.array([cohort[s] for s in speakers])}, "eligible": len(eligible),
            "speaker_count": len(by_speaker)}


# --------------------------------------------------------------------------------------------- measures


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(a).astype(str), np.asarray(b).astype(str)))


def loso_nearest_centroid(x: np.ndarray, labels: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Per point: whether the nearest (cosine) label centroid of the other speakers' points has its label."""
    u = _unit(np.asarray(x, dtype=np.float64))
    groups = sorted(set(labels.tolist()))
    lab = np.array([groups.index(v) for v in labels])
    spk_names, spk = np.unique(speakers.astype(str), return_inverse=True)
    sums = np.zeros((len(groups), u.shape[1]))
    np.add.at(sums, lab, u)
    per_spk = np.zeros((len(spk_names), u.shape[1]))
    np.add.at(per_spk, spk, u)
    spk_label = np.zeros(len(spk_names), dtype=np.int64)
    spk_label[spk] = lab
    correct = np.zeros(len(u), dtype=bool)
    for s in range(len(spk_names)):
        rows = spk == s
        c = sums.copy()
        c[spk_label[s]] -= per_spk[s]  # the speaker's own points left out of its label's centroid
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        correct[rows] = np.argmax(u[rows] @ c.T, axis=1) == lab[rows]
    return correct


def speaker_bootstrap_mean(values: np.ndarray, speakers: np.ndarray, *, n_boot: int, seed: int) -> tuple[float,
                                                                                                      float]:
    """95% percentile interval of the mean of per-point values, speakers resampled with replacement (all their
    points with them)."""
    names, spk = np.unique(speakers.astype(str), return_inverse=True)
    sums = np.bincount(spk, weights=values.astype(np.float64), minlength=len(names))
    counts = np.bincount(spk, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    reps = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(reps, [0.025, 0.975])
    return float(low), float(high)


def separation(x: np.ndarray, labels: np.ndarray, speakers: np.ndarray, *, n_boot: int, seed: int,
               fits: dict | None = None) -> dict:
    """Every separation figure of one set of points (unit vectors or raw) against one set of labels. fits: a
    cache of this x's k-means fits by k (None for the silhouette scan), shared between label sets."""
    fits = {} if fits is None else fits
    groups, counts = np.unique(labels.astype(str), return_counts=True)
    k = len(groups)
    if k not in fits:
        fits[k] = kmeans_cohorts(x, k=k, seed=seed)
    if None not in fits:
        fits[None] = kmeans_cohorts(x, k_range=K_RANGE, seed=seed)
    fit, scan = fits[k], fits[None]
    correct = loso_nearest_centroid(x, labels, speakers)
    low, high = speaker_bootstrap_mean(correct, speakers, n_boot=n_boot, seed=seed)
    return {"groups": int(k), "points": int(len(x)),
            "kmeans_ari": adjusted_rand(fit.labels, labels),
            "silhouette_true": float(mean_silhouettes(x, [labels.astype(str)])[0]),
            "scan_k": int(scan.k), "scan_ari": adjusted_rand(scan.labels, labels),
            "scan_silhouette": float(scan.silhouette[scan.k]),
            "nearest_centroid": {"accuracy": float(correct.mean()), "low": low, "high": high,
                                 "chance": float(counts.max() / counts.sum())}}


def turn_relations(u: np.ndarray, speakers: np.ndarray, sentences: np.ndarray, accents: np.ndarray) -> dict:
    """Per turn (unit vectors u): mean cosine similarity to other turns by relation, and what its nearest other
    turn is (the same speaker, the other speaker of the same sentence, another speaker of the same accent,
    anyone else)."""
    sim = u @ u.T
    n = len(u)
    eye = np.eye(n, dtype=bool)
    same_spk = (speakers[:, None] == speakers[None, :]) & ~eye
    same_sent = (sentences[:, None] == sentences[None, :]) & ~eye & ~same_spk
    same_acc = (accents[:, None] == accents[None, :]) & ~eye & ~same_spk & ~same_sent
    other = ~eye & ~same_spk & ~same_sent & ~same_acc
    s = np.where(eye, -np.inf, sim)
    nn = np.argmax(s, axis=1)
    rows = np.arange(n)
    nn_same_spk = same_spk[rows, nn]
    nn_same_sent = same_sent[rows, nn]
    nn_same_acc = same_acc[rows, nn]
    return {
        "cosine": {"same_speaker": float(sim[same_spk].mean()),
                   "same_sentence_other_speaker": float(sim[same_sent].mean()),
                   "same_accent_other_speaker_and_sentence": float(sim[same_acc].mean()),
                   "other_accent_other_sentence": float(sim[other].mean())},
        "nearest_turn": {"same_speaker": float(nn_same_spk.mean()), "same_sentence": float(nn_same_sent.mean()),
                         "same_accent": float(nn_same_acc.mean()),
                         "other": float(1 - nn_same_spk.mean() - nn_same_sent.mean() - nn_same_acc.mean()),
                         "chance_same_speaker": float(same_spk.sum(axis=1).mean() / (n - 1)),
                         "chance_same_sentence": float(same_sent.sum(axis=1).mean() / (n - 1))},
    }


def speaker_identification(u: np.ndarray, speakers: np.ndarray) -> dict:
    """Each turn given to the speaker whose mean of the OTHER turns (their own turn left out of its speaker's
    mean) is nearest by cosine: accuracy and chance (1 / speakers)."""
    names, spk = np.unique(speakers.astype(str), return_inverse=True)
    sums = np.zeros((len(names), u.shape[1]))
    np.add.at(sums, spk, u)
    correct = np.zeros(len(u), dtype=bool)
    for i in range(len(u)):
        c = sums.copy()
        c[spk[i]] -= u[i]
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        correct[i] = int(np.argmax(c @ u[i])) == spk[i]
    return {"accuracy": float(correct.mean()), "chance": 1.0 / len(names), "speakers": int(len(names))}


def means_of_first(x: np.ndarray, speakers: np.ndarray, m: int, *, normalise: bool) -> tuple[np.ndarray,
                                                                                             np.ndarray]:
    """Per speaker (in order of first appearance): the mean of its first m points (L2-normalised if asked, the
    rule `turnlens speech embed` writes)."""
    order = list(dict.fromkeys(speakers.tolist()))
    out = []
    for s in order:
        rows = x[speakers == s][:m]
        out.append(speaker_mean(rows) if normalise else rows.mean(axis=0))
    return np.array(out), np.array(order, dtype=object)


def embedding_report(x: np.ndarray, speakers: np.ndarray, labels: dict[str, np.ndarray], *, turns: int,
                     normalise: bool, n_boot: int, seed: int) -> dict:
    """Per-turn and per-speaker-mean separation for every label set, and per-speaker means of 1..turns turns."""
    first_label = {name: {s: lab[list(speakers).index(s)] for s in dict.fromkeys(speakers.tolist())}
                   for name, lab in labels.items()}
    means, order = means_of_first(x, speakers, turns, normalise=normalise)
    out: dict = {"per_turn": {}, "per_speaker": {}, "by_turns_averaged": {}}
    turn_fits: dict = {}
    speaker_fits: dict = {}
    for name, lab in labels.items():
        out["per_turn"][name] = separation(x, lab, speakers, n_boot=n_boot, seed=seed, fits=turn_fits)
        spk_lab = np.array([first_label[name][s] for s in order])
        out["per_speaker"][name] = separation(means, spk_lab, order, n_boot=n_boot, seed=seed, fits=speaker_fits)
    for m in sorted({1, 2, max(2, turns // 2), turns}):
        mm, _ = means_of_first(x, speakers, m, normalise=normalise)
        fits: dict[int, np.ndarray] = {}
        cells = out["by_turns_averaged"][str(m)] = {}
        for name in labels:
            spk_lab = np.array([first_label[name][s] for s in order])
            k = len(set(spk_lab.tolist()))
            if k not in fits:
                fits[k] = kmeans_cohorts(mm, k=k, seed=seed).labels
            cells[name] = {"kmeans_ari": adjusted_rand(fits[k], spk_lab),
                           "nearest_centroid": float(loso_nearest_centroid(mm, spk_lab, order).mean()),
                           "silhouette_true": float(mean_silhouettes(mm, [spk_lab.astype(str)])[0])}
    return out


# ------------------------------------------------------------------------------------------------ run


def _bar(desc: str):
    bar = tqdm(desc=desc, unit=" turns", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    t_start = time.time()
    records = voice_records(speakers_per_accent=args.speakers_per_accent, turns=args.turns, seed=args.seed)
    synth = SynthesisConfig(snr_db=args.snr_db, pad_seconds=args.pad_seconds, seed=args.seed, workers=args.workers,
                            audio_format="flac")
    work = Path(args.work_dir)
    scratch = tempfile.TemporaryDirectory(prefix="turnlens-voices-check-") if args.check else None
    audio_root = Path(scratch.name) if scratch else work / "audio"
    timings: dict[str, float] = {"load_average_1min_at_start": os.getloadavg()[0]}
    try:
        bar, progress = _bar("synthesising")
        t0 = time.time()
        synthesized = synthesize_records(records, audio_root, config=synth, progress=progress)
        bar.close()
        timings["synthesis_seconds"] = time.time() - t0
        timings["synthesis_rendered"] = synthesized.rendered  # the rest were on disk from an earlier run
        bar, progress = _bar("embedding")
        t0 = time.time()
        result = embed_records(synthesized.records, audio_root, config=EmbeddingConfig(workers=args.workers),
                               progress=progress)
        bar.close()
        timings["embedding_seconds"] = time.time() - t0
        timings["load_average_1min_at_end"] = os.getloadavg()[0]
        # CPU per turn, in this process on one worker and one torch thread (a child's CPU is not counted here);
        # after the parallel run, so the workers were forked from a process that had run no torch
        probe = synthesized.records[:48]
        c0 = time.process_time()
        embed_records(probe, audio_root, config=EmbeddingConfig(workers=1))
        timings["embedding_cpu_seconds_per_turn"] = (time.process_time() - c0) / len(probe)
        if not args.check:
            from analysis.speech.logio import write_records

            write_records(result.records, work / "voices-dev-embedded.jsonl.gz")
    finally:
        if scratch:
            scratch.cleanup()
    recs = result.records
    if len(result.turn_embeddings) != len(recs):
        raise RuntimeError(f"{len(recs) - len(result.turn_embeddings)} turns got no embedding (no voice found)")
    speakers = np.array([r["speaker_id"] for r in recs], dtype=object)
    voices = {s: voice_for(s) for s in dict.fromkeys(speakers.tolist())}
    labels = {"accent": np.array([voices[s].accent for s in speakers]),
              "variant": np.array([voices[s].variant for s in speakers]),
              "variant_sex": np.array([voices[s].variant[0] for s in speakers])}
    # records are in sentence-pair order; each speaker's turns in the order said (first m turns = first m slots)
    x = np.array([result.turn_embeddings[i] for i in range(len(recs))], dtype=np.float64)
    t0 = time.time()
    res = embedding_report(x, speakers, labels, turns=args.turns, normalise=True, n_boot=args.n_boot, seed=args.seed)
    res["relations"] = turn_relations(_unit(x), speakers, np.array([r["sentence_index"] for r in recs]),
                                      labels["accent"])
    res["speaker_identification"] = speaker_identification(_unit(x), speakers)
    sim = simulator_embeddings(n_turns=args.sim_turns, turns=args.turns, n_speakers=len(voices), seed=args.seed)
    sim_res = embedding_report(sim["turn_x"], sim["speakers"], sim["labels"], turns=args.turns, normalise=False,
                               n_boot=args.n_boot, seed=args.seed)
    sim_res["speaker_identification"] = speaker_identification(_unit(sim["turn_x"]), sim["speakers"])
    timings["measures_seconds"] = time.time() - t0
    sim_cohorts = sim["labels"]["cohort"][:: args.turns]
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_voices.py", *argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("out", "check", "tolerance", "work_dir")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start, "timings": timings,
        "engines": {"synthesis": synthesized.records[0][SYNTHESIS_FIELD]["engine"], "embedding": describe()},
        "data": {"pool": "sample_data/slurp_pool.jsonl.gz (SLURP dev split: slurp_id % 5 != 0)",
                 "turns": len(recs), "speakers": len(voices), "sentences": len(recs) // 2,
                 "speakers_by_accent": {a: sum(v.accent == a for v in voices.values()) for a in ACCENTS},
                 "speakers_by_variant": {x_: sum(v.variant == x_ for v in voices.values()) for x_ in VARIANTS},
                 "simulator": {"log_turns": args.sim_turns, "speakers_in_log": sim["speaker_count"],
                               "speakers_with_enough_turns": sim["eligible"], "speakers": len(voices),
                               "speakers_by_cohort": {str(c): int((sim_cohorts == c).sum())
                                                      for c in sorted(set(sim_cohorts.tolist()))}}},
        "resemblyzer": res,
        "simulator": sim_res,
    }


# ------------------------------------------------------------------------------------- check, report


def metrics(results: dict) -> dict[str, object]:
    """The figures a rerun must reproduce, flattened to figure -> value (timings excluded)."""
    out: dict[str, object] = {"turns": results["data"]["turns"], "speakers": results["data"]["speakers"]}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix} {k}", v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix] = float(value) if isinstance(value, float) else value

    walk("resemblyzer", results["resemblyzer"])
    walk("simulator", results["simulator"])
    return out


def compare(expected: dict, actual: dict, *, tolerance: float = 0.0) -> list[str]:
    return report_cli.compare_flat(metrics(expected), metrics(actual), tolerance=tolerance)


LABEL_NAMES = {"accent": "accent", "variant": "variant", "variant_sex": "variant m/f", "cohort": "latent cohort"}


def _acc(c: dict) -> str:
    return f"{c['accuracy']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"


def _row(name: str, level: str, label: str, s: dict) -> str:
    nc = s["nearest_centroid"]
    return (f"| {name} | {level} | {LABEL_NAMES[label]} ({s['groups']}) | {s['points']} | {s['kmeans_ari']:.3f} | "
            f"{s['silhouette_true']:.3f} | {_acc(nc)} | {nc['chance']:.3f} | {s['scan_k']} ({s['scan_ari']:.3f}) |")


def verdict(s: dict) -> str:
    """Words for one separation cell, from its numbers: k-means recovers the labels (ARI >= 0.5), or not but
    the nearest-centroid accuracy's interval lies above chance (weak), or neither."""
    nc = s["nearest_centroid"]
    if s["kmeans_ari"] >= 0.5:
        return "separated: k-means recovers them"
    if nc["low"] > nc["chance"]:
        return "weakly: above chance for a nearest-centroid rule, not recovered by k-means"
    return "not separated"


def render(res: dict) -> str:
    a, d, t = res["args"], res["data"], res["timings"]
    rz, sim = res["resemblyzer"], res["simulator"]
    emb = res["engines"]["embedding"]
    L = ["# Voice embeddings from audio: do they separate accents and voices?", "",
         f"Generated by `{res['command']}` (run time {res['runtime_seconds'] / 60:.1f} min on {a['workers']} "
         f"workers, {res['machine']}). The numbers are also in the JSON file of the same name beside this one; "
         "`python scripts/evaluate_voices.py --check` reruns everything (fresh audio) and compares.", "",
         "**What is synthetic.** Everything acoustic: the sentences are SLURP's (the bundled dev pool, "
         f"`slurp_id % 5 != 0`; the evaluation split is never read), the {d['speakers']} speakers are simulated "
         f"voices of {res['engines']['synthesis']} ({a['speakers_per_accent']} per accent; variant, speed and pitch "
         "from each speaker's id, `analysis/speech/voices.py`), with "
         f"{a['pad_seconds']:g} s of silence around each sentence and white noise at {a['snr_db']:g} dB SNR. Each "
         f"speaker says {a['turns']} sentences, and each sentence is said by exactly two speakers drawn at random "
         f"({d['sentences']} sentences, {d['turns']} turns), so the sentence's pull on an embedding can be told "
         f"from the voice's. The encoder is real: {emb['encoder']} (weights sha256 `{emb['weights_sha256'][:16]}`, "
         f"torch {emb['torch']}, {emb['threads']} thread), a speaker encoder trained on recordings of people; "
         "here it hears espeak-ng's formant synthesis, whose accents are rule sets and whose voice variants are a "
         "handful of parameter sets. None of this says how it would separate people.", "",
         "**The comparison.** The simulator's 16-d embeddings (`analysis/simulate.py`, what the bundled demo "
         f"data carries) are not from audio at all: a latent cohort centre plus speaker and turn noise. They come "
         f"from a simulated log of {d['simulator']['log_turns']:,} turns: {d['simulator']['speakers']} of its "
         f"{d['simulator']['speakers_with_enough_turns']} speakers with at least {a['turns']} turns, their first "
         f"{a['turns']} turns, labelled with their latent cohort (5 cohorts, the simulator's ground truth). It has "
         "no accents or variants; the cohort plays their part.", "",
         "## In brief", "",
         *[f"- **{LABEL_NAMES[label]}** ({name}, per-speaker means): {verdict(c)} (ARI {c['kmeans_ari']:.3f}, "
           f"nearest centroid {c['nearest_centroid']['accuracy']:.3f} against chance "
           f"{c['nearest_centroid']['chance']:.3f})."
           for name, r in (("resemblyzer", rz), ("simulator", sim)) for label, c in r["per_speaker"].items()],
         f"- The Disparity page's own choice of k on the resemblyzer means is {rz['per_speaker']['accent']['scan_k']}"
         f": ARI {rz['per_speaker']['accent']['scan_ari']:.3f} against accent, "
         f"{rz['per_speaker']['variant']['scan_ari']:.3f} against variant.",
         f"- The sentence or the voice (mean cosine of two turns): two speakers saying the same sentence "
         f"{rz['relations']['cosine']['same_sentence_other_speaker']:.3f}, two saying different ones (across "
         f"accents) {rz['relations']['cosine']['other_accent_other_sentence']:.3f}, one speaker's two sentences "
         f"{rz['relations']['cosine']['same_speaker']:.3f}.", "",
         "## Measures", "",
         "- **k-means ARI**: `analysis.disparity.cohorts.kmeans_cohorts` (what the Disparity page runs) with k = "
         "the number of labels; adjusted Rand index against the labels (1 = recovered exactly, 0 = chance).",
         "- **silhouette**: of the true labels, Euclidean (-1..1; above 0.25 or so, clusters one can see).",
         "- **nearest centroid**: each point's label predicted by the nearest (cosine) label centroid of the *other* "
         "speakers' points (leave one speaker out); 95% speaker-bootstrap interval; chance = the largest label's "
         "share.",
         "- **page's k**: the k the Disparity page would choose (highest silhouette over k = 2..8) and that "
         "clustering's ARI against the row's labels.",
         "- Per turn: each turn's own embedding. Per speaker: the mean of the speaker's turns, L2-normalised "
         "(what `turnlens speech embed` writes; the simulator's means are not normalised, as its vectors are not "
         "unit vectors).", "",
         "## Separation", "",
         "| embedding | points | labels | n | k-means ARI | silhouette | nearest centroid [95%] | chance | "
         "page's k (ARI) |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for level, key in (("per turn", "per_turn"), ("per speaker", "per_speaker")):
        for label, s in rz[key].items():
            L.append(_row("resemblyzer 256-d", level, label, s))
    for level, key in (("per turn", "per_turn"), ("per speaker", "per_speaker")):
        for label, s in sim[key].items():
            L.append(_row("simulator 16-d", level, label, s))
    L += ["", "## More turns per speaker", "",
          "Per-speaker means of each speaker's first m turns (m = 1 is one turn per speaker).", "",
          "| embedding | labels | turns averaged | k-means ARI | silhouette | nearest centroid |",
          "| --- | --- | --- | --- | --- | --- |"]
    for name, r in (("resemblyzer 256-d", rz), ("simulator 16-d", sim)):
        for label in r["per_speaker"]:
            for m, cells in r["by_turns_averaged"].items():
                c = cells[label]
                L.append(f"| {name} | {LABEL_NAMES[label]} | {m} | {c['kmeans_ari']:.3f} | "
                         f"{c['silhouette_true']:.3f} | {c['nearest_centroid']:.3f} |")
    rel = rz["relations"]
    cos, nn = rel["cosine"], rel["nearest_turn"]
    sid, sim_sid = rz["speaker_identification"], sim["speaker_identification"]
    L += ["", "## The sentence or the voice?", "",
          "Mean cosine similarity between two turns' resemblyzer embeddings, by how they are related:", "",
          "| same speaker, other sentence | same sentence, other speaker | same accent, other speaker and sentence | "
          "other accent and sentence |", "| --- | --- | --- | --- |",
          f"| {cos['same_speaker']:.3f} | {cos['same_sentence_other_speaker']:.3f} | "
          f"{cos['same_accent_other_speaker_and_sentence']:.3f} | {cos['other_accent_other_sentence']:.3f} |", "",
          "What a turn's nearest other turn (cosine) is:", "",
          "| the same speaker | the other speaker of the same sentence | another speaker of the same accent | "
          "anyone else |", "| --- | --- | --- | --- |",
          f"| {nn['same_speaker']:.3f} (chance {nn['chance_same_speaker']:.3f}) | {nn['same_sentence']:.3f} (chance "
          f"{nn['chance_same_sentence']:.3f}) | {nn['same_accent']:.3f} | {nn['other']:.3f} |", "",
          f"Speaker identification (each turn given to the nearest speaker mean of the other turns, among "
          f"{sid['speakers']} speakers): {sid['accuracy']:.3f} for resemblyzer, {sim_sid['accuracy']:.3f} for the "
          f"simulator's vectors (chance {sid['chance']:.4f}).", "",
          "## Data and set-up", "",
          "- Speakers per accent: " + ", ".join(f"{k} {v}" for k, v in d["speakers_by_accent"].items())
          + "; per variant: " + ", ".join(f"{k} {v}" for k, v in d["speakers_by_variant"].items())
          + " (variants are drawn per speaker, independently of accents).",
          "- Simulator speakers per latent cohort: "
          + ", ".join(f"{k} {v}" for k, v in d["simulator"]["speakers_by_cohort"].items()) + ".",
          f"- Timings on this run: synthesis {t['synthesis_seconds']:.0f} s ({t['synthesis_rendered']} files "
          f"rendered, {d['turns'] - t['synthesis_rendered']} on disk from an earlier run), embedding "
          f"{t['embedding_seconds']:.0f} s "
          f"for {d['turns']} turns on {a['workers']} workers ({t['embedding_cpu_seconds_per_turn']:.3f} s of CPU per "
          f"turn on one worker and one torch thread), measures {t['measures_seconds']:.0f} s; 1-minute load average "
          f"{t['load_average_1min_at_start']:.1f} at the start, {t['load_average_1min_at_end']:.1f} after "
          "embedding (a machine shared with other work).",
          "- The embedded log (format 1.1) goes to `data/speech/voices-dev-embedded.jsonl.gz` and its audio to "
          "`data/speech/audio/`, both git-ignored.",
          "- SLURP (Bastianelli et al., EMNLP 2020), text under CC BY 4.0; resemblyzer (Resemble AI) under "
          "Apache-2.0, its weights in its wheel.", ""]
    return "\n".join(L)


def headline(r: dict) -> str:
    rz = r["resemblyzer"]["per_speaker"]["accent"]
    return (f"per-speaker accent ARI {rz['kmeans_ari']:.3f}, nearest-centroid accuracy "
            f"{rz['nearest_centroid']['accuracy']:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Run and write <out>.json and <out> (the Markdown), or --check: rerun with the reported run's own
    arguments and exit 1 if any figure differs (analysis.report_cli, as every report does)."""
    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare, headline=headline,
                           allow_nan=False)


if __name__ == "__main__":
    raise SystemExit(main())

