"""Train the failure-point model on a log simulated from the DEV pool, evaluate it, its baselines and its
ablations on a log simulated from the held-out SLURP EVALUATION split, and write a Markdown report.

Nothing is trained, tuned or thresholded on the evaluation log: every model and every rule threshold is
fitted on the dev-pool log only; the evaluation log is scored once per model.

    python scripts/evaluate_failure_points.py [--train-turns N] [--slurp-dir DIR] [--out docs/results/failure-points.md]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis import failure_points as fp  # noqa: E402
from analysis.failure_eval import Report, evaluate  # noqa: E402
from analysis.simulate import load_eval_pool, load_pool, simulate_turns  # noqa: E402
from analysis.text_encoder import EmbeddingCache, TextEncoder  # noqa: E402

DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
REAL = ("NO_FAILURE", "ASR", "NLU")  # real SLURP labels on the evaluation split
SIMULATED = ("WAKEWORD", "ENTITY_RESOLUTION", "RESPONSE", "TTS")  # injected by analysis.simulate
REAL_IDX = [fp.LABEL_INDEX[c] for c in REAL]
SIM_IDX = [fp.LABEL_INDEX[c] for c in SIMULATED]
TARGET = 0.70


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-turns", type=int, default=20_000, help="turns simulated from the dev pool (default 20000)")
    p.add_argument("--eval-turns", type=int, default=4_000, help="turns simulated from the eval pool (default 4000)")
    p.add_argument("--train-seed", type=int, default=0, help="simulation seed of the training log")
    p.add_argument("--eval-seed", type=int, default=1, help="simulation seed of the evaluation log")
    p.add_argument("--model-seed", type=int, default=0, help="torch seed of the model")
    p.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR, help="directory with the SLURP files")
    p.add_argument("--cache-dir", type=Path, default=REPO / "data" / "cache" / "embeddings",
                   help="text-embedding cache (default data/cache/embeddings, git-ignored)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "failure-points.md")
    p.add_argument("--save-model", type=Path, default=None, help="also save the main model's checkpoint here")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (dialogues resampled)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return p.parse_args(argv)


def _fmt_ci(x: float, ci: tuple[float, float]) -> str:
    return f"{x:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _class_table(report: Report) -> list[str]:
    rows = ["| class | support | precision | recall | F1 |", "| --- | ---: | --- | --- | --- |"]
    for c in report.classes:
        rows.append(f"| {c.label} | {c.support} | {_fmt_ci(c.precision, c.precision_ci)} | "
                    f"{_fmt_ci(c.recall, c.recall_ci)} | {_fmt_ci(c.f1, c.f1_ci)} |")
    return rows


def _confusion_table(conf: np.ndarray, rows_idx: list[int]) -> list[str]:
    names = [n.replace("ENTITY_RESOLUTION", "ER") for n in fp.LABELS]
    out = ["| gold \\ predicted | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for g in rows_idx:
        out.append(f"| {names[g]} | " + " | ".join(str(int(v)) for v in conf[g]) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    import torch

    torch.set_num_threads(args.threads)

    # --- data: train on the dev pool only, evaluate on the held-out eval split
    train_turns = list(simulate_turns(load_pool(), n_turns=args.train_turns, seed=args.train_seed))
    eval_turns = list(simulate_turns(load_eval_pool(args.slurp_dir), n_turns=args.eval_turns,
                                     seed=args.eval_seed, id_prefix="eval-"))
    train_ex, eval_ex = fp.build_examples(train_turns), fp.build_examples(eval_turns)
    y_train, y_eval = fp.gold_labels(train_turns, train_ex), fp.gold_labels(eval_turns, eval_ex)
    groups = np.array([ex.dialogue_id for ex in eval_ex])

    encoder = TextEncoder.load(threads=args.threads)
    cache = EmbeddingCache(args.cache_dir)

    def embed(texts: list[str]) -> np.ndarray:
        return cache.encode(encoder, texts)

    # Encode every distinct text once up front, with a progress bar; later calls hit the cache.
    distinct = sorted({t for ex in train_ex + eval_ex for t in ex.texts if t})
    t0 = time.time()
    with tqdm(total=len(distinct), desc="encoding texts", unit=" texts", file=sys.stderr) as bar:
        embed_all = cache.encode(encoder, distinct, progress=lambda n: bar.update(n - bar.n))
    del embed_all
    t_encode = time.time() - t0

    base_cfg = fp.FailurePointConfig(seed=args.model_seed)
    variants = {
        "mixing encoder (full)": base_cfg,
        "ablation: no following turns": replace(base_cfg, use_following=False),
        "ablation: no metadata": replace(base_cfg, use_metadata=False),
        "ablation: no text": replace(base_cfg, use_text=False),
        "ablation: no ASR/NLU confidences": replace(base_cfg, use_confidences=False),
    }
    probs: dict[str, np.ndarray] = {}
    fit_seconds: dict[str, float] = {}
    main_model = None
    for name, cfg in variants.items():
        t0 = time.time()
        with tqdm(desc=f"training {name}", unit=" batches", file=sys.stderr) as bar:
            def progress(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            clf = fp.FailurePointClassifier().fit(train_ex, y_train, embed=embed, config=cfg, progress=progress)
        fit_seconds[name] = time.time() - t0
        probs[name] = clf.predict_proba(eval_ex, embed=embed)
        if main_model is None:
            main_model = clf
    baselines = {
        "baseline: majority class": fp.MajorityBaseline(),
        "baseline: text-only logistic regression (request vector + logged intent)": fp.TextLinearBaseline(),
        "baseline: rule cascade over metadata": fp.RuleCascadeBaseline(),
    }
    for name, model in baselines.items():
        t0 = time.time()
        model.fit(train_ex, y_train, embed=embed)
        fit_seconds[name] = time.time() - t0
        probs[name] = model.predict_proba(eval_ex, embed=embed)
    if args.save_model:
        main_model.save_pretrained(args.save_model)

    # --- evaluation
    real_rows = np.isin(y_eval, REAL_IDX)
    reports_real: dict[str, Report] = {}
    reports_sim: dict[str, Report] = {}
    reports_all: dict[str, Report] = {}
    for name, p in probs.items():
        pred = p.argmax(axis=1)
        common = dict(label_names=fp.LABELS, n_boot=args.n_boot, seed=0)
        reports_real[name] = evaluate(y_eval[real_rows], pred[real_rows], labels=REAL_IDX,
                                      groups=groups[real_rows], **common)
        reports_sim[name] = evaluate(y_eval, pred, labels=SIM_IDX, groups=groups, **common)
        reports_all[name] = evaluate(y_eval, pred, groups=groups, **common)
    runtime = time.time() - t_start

    # --- report
    main_name = "mixing encoder (full)"
    main_r = reports_real[main_name]
    if args.save_model:
        # The checkpoint carries its own evaluation: the Failure analysis page shows it for runs it scored.
        evaluation = {"report": str(args.out), "metric": "macro-F1 over the real classes on the evaluation split",
                      "macro_f1": main_r.macro_f1, "macro_f1_ci": list(main_r.macro_f1_ci),
                      "accuracy": main_r.accuracy, "n": main_r.n,
                      "classes": [{"label": c.label, "support": c.support, "precision": c.precision,
                                   "recall": c.recall, "f1": c.f1, "f1_ci": list(c.f1_ci)} for c in main_r.classes],
                      "confusion_labels": list(fp.LABELS),
                      "confusion": reports_all[main_name].confusion.tolist()}
        (Path(args.save_model) / "evaluation.json").write_text(json.dumps(evaluation, indent=1) + "\n")
    best_baseline = max((n for n in baselines), key=lambda n: reports_real[n].macro_f1)
    cmd = "python " + " ".join(shlex.quote(a) for a in [
        "scripts/evaluate_failure_points.py", *(argv if argv is not None else sys.argv[1:])])
    train_counts = collections.Counter(fp.LABELS[i] for i in y_train)
    eval_counts = collections.Counter(fp.LABELS[i] for i in y_eval)
    n_dlg = lambda ex: len({e.dialogue_id for e in ex})  # noqa: E731
    reached = main_r.macro_f1 >= TARGET
    above = main_r.macro_f1_ci[0] > reports_real[best_baseline].macro_f1_ci[1]
    L: list[str] = []
    no_conf = reports_real["ablation: no ASR/NLU confidences"]
    L += ["# Failure-point isolation: evaluation on the SLURP evaluation split", "",
          f"Generated by `{cmd}` (run time {runtime / 60:.1f} min on {args.threads} CPU threads, "
          f"{platform.machine()}; text encoding {t_encode:.0f} s of it, the rest training and scoring).", "",
          "## Headline", "",
          f"Main metric: macro-F1 over the **real** classes {{{', '.join(REAL)}}} on evaluation turns whose gold "
          f"label is one of them: **{_fmt_ci(main_r.macro_f1, main_r.macro_f1_ci)}** "
          f"(95% bootstrap interval, {args.n_boot} replicates resampling dialogues). Target {TARGET:.2f}: "
          f"{'reached' if reached else 'NOT reached'}. Best baseline ({best_baseline.split(': ', 1)[1]}): "
          f"{_fmt_ci(reports_real[best_baseline].macro_f1, reports_real[best_baseline].macro_f1_ci)}; the "
          f"intervals {'do not overlap' if above else 'overlap'}.", "",
          "**Caveat.** In these logs the ASR and NLU confidences are simulated from the real word errors and the "
          "real intent correctness (`analysis/simulate.py`), so they carry the real label more directly than a "
          "production recogniser's confidence may. Without them the model reaches "
          f"{_fmt_ci(no_conf.macro_f1, no_conf.macro_f1_ci)}: that is the figure resting only on real "
          "evidence (texts, the second recogniser's intent) and the "
          "simulated dialogue behaviour. Read the headline with this in mind.", "",
          "## Data", "",
          f"- Training: {len(train_ex):,} turns in {n_dlg(train_ex):,} dialogues simulated by "
          f"`simulate_turns(load_pool(), n_turns={args.train_turns}, seed={args.train_seed})`: the bundled "
          "dev-split pool only (SLURP test recordings whose slurp_id % 5 != 0; devel has no recognition "
          "output). Gold labels: "
          + ", ".join(f"{k} {train_counts[k]:,}" for k in fp.LABELS) + ".",
          f"- Evaluation: {len(eval_ex):,} turns in {n_dlg(eval_ex):,} dialogues simulated by "
          f"`simulate_turns(load_eval_pool(slurp_dir), n_turns={args.eval_turns}, seed={args.eval_seed}, "
          f"id_prefix=\"eval-\")` over the {len(load_eval_pool(args.slurp_dir)):,} held-out recordings "
          "(slurp_id % 5 == 0). Gold labels: " + ", ".join(f"{k} {eval_counts[k]:,}" for k in fp.LABELS) + ".",
          f"  {int(real_rows.sum()):,} evaluation turns carry a real label (NO_FAILURE / ASR / NLU). Recordings "
          "are drawn with replacement, so some recur in several dialogues; the bootstrap resamples dialogues "
          "and does not account for that, so the intervals are somewhat narrow.",
          "- Real vs simulated: the request texts, NLU intents, the second recogniser's intent and the "
          "NO_FAILURE / ASR / NLU labels are real SLURP data; responses, statuses, confidences (simulated from "
          "the real WER and intent correctness), timings, barge-ins, feedback, dialogues and the WAKEWORD / "
          "ENTITY_RESOLUTION / RESPONSE / TTS failures are SIMULATED by `analysis.simulate`.",
          f"- Seeds: training log {args.train_seed}, evaluation log {args.eval_seed}, model {args.model_seed}, "
          "bootstrap 0.",
          f"- Model inputs: `analysis.failure_points.build_examples` (production fields only; never "
          f"reference_text or gold_*). Config: `{asdict(base_cfg)}`. Version {fp.VERSION}; training-data "
          f"fingerprint {main_model.fingerprint}.",
          "", "## Real classes (main metric)", "",
          "Macro-F1 over NO_FAILURE / ASR / NLU, on the evaluation turns whose gold label is real. Predictions "
          "are the argmax over all seven labels, so a real turn predicted as a simulated class counts as an error.",
          "", "| model | macro-F1 (real) [95% CI] | accuracy (real rows) | training time |",
          "| --- | --- | ---: | ---: |"]
    for name in probs:
        r = reports_real[name]
        L.append(f"| {name} | {_fmt_ci(r.macro_f1, r.macro_f1_ci)} | {r.accuracy:.3f} | {fit_seconds[name]:.0f} s |")
    L += ["", f"### Per class: {main_name}", ""] + _class_table(main_r)
    for name in probs:
        if name != main_name:
            L += ["", f"<details><summary>Per class: {name}</summary>", ""] + _class_table(reports_real[name])
            L += ["", "</details>"]
    L += ["", "## Simulated classes (SIMULATED failures, reported separately)", "",
          "Per-class scores over all evaluation turns for the failure points that `analysis.simulate` injects. "
          "Their symptoms are written into the records by the simulator, so these numbers measure how well a "
          "model reads the simulator's symptoms, not real-world performance.", "",
          "| model | macro-F1 (simulated classes) [95% CI] | macro-F1 (all 7, all turns) |", "| --- | --- | --- |"]
    for name in probs:
        r, a = reports_sim[name], reports_all[name]
        L.append(f"| {name} | {_fmt_ci(r.macro_f1, r.macro_f1_ci)} | {_fmt_ci(a.macro_f1, a.macro_f1_ci)} |")
    L += ["", f"### Per class (simulated): {main_name}", ""] + _class_table(reports_sim[main_name])
    L += ["", f"## Confusion matrix: {main_name}, all evaluation turns", "",
          "Rows gold, columns predicted; ER = ENTITY_RESOLUTION.", ""]
    L += _confusion_table(reports_all[main_name].confusion, list(range(len(fp.LABELS))))
    rb = baselines["baseline: rule cascade over metadata"]
    L += ["", "## Notes", "",
          f"- Rule cascade thresholds, chosen on the training log only: ASR confidence < {rb.asr_threshold}, "
          f"or second-recogniser disagreement and ASR confidence < {rb.asr_alt_threshold}, -> ASR; NLU "
          f"confidence < {rb.nlu_threshold} or disagreement -> NLU; false wake if ASR confidence < "
          f"{rb.wake_asr_threshold} on a barged-in one-turn dialogue.",
          "- What limits the real-class score: ASR vs NLU failures both produce a wrong intent; what tells them "
          "apart here is the recogniser confidence (simulated from the real WER), the second recogniser's "
          "intent (real) and the request text. An NLU failure on a misrecognised request looks like an ASR "
          "failure in every input the model sees.",
          *[f"- The ablation '{n.split(': ', 1)[1]}' scores "
            f"{_fmt_ci(reports_real[n].macro_f1, reports_real[n].macro_f1_ci)} "
            "on the real classes, above the full model: the text slots let the model fit utterances of the dev "
            "pool that do not recur in the evaluation split (overfitting to text). This was seen on the "
            "evaluation log and is reported, not acted on: choosing the configuration here would tune on the "
            "evaluation split. A dev-split validation run (text dropout, fewer epochs) is the next step."
            for n in variants if n == "ablation: no text" and reports_real[n].macro_f1 > main_r.macro_f1],
          "- The text-only logistic regression here is trained on all seven labels with balanced class weights "
          "and predicts over all seven, so it scores below the README's ~0.41 (measured as a three-class "
          "problem); either way it is far below the metadata-aware models.",
          f"- Evaluation set size: {int(real_rows.sum()):,} real-label turns; the ASR and NLU classes have "
          f"{eval_counts['ASR']} and {eval_counts['NLU']} turns, hence the width of their intervals.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(L))
    print(f"wrote {args.out}: real-class macro-F1 {_fmt_ci(main_r.macro_f1, main_r.macro_f1_ci)}; "
          f"run time {runtime:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
