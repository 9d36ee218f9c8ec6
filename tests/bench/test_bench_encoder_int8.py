"""Does an int8 MiniLM (torch.ao dynamic quantisation of the same all-MiniLM-L6-v2) keep the failure-point
family's quality? Issue 22 accepts a faster encoder only if its quality loss on the family's own evaluation is
under 1 point. Measured like scripts/evaluate_failure_points.py (train on a log simulated from the SLURP dev
pool, macro-F1 over the real classes NO_FAILURE / ASR / NLU on a log simulated from the held-out evaluation
split, intervals by a bootstrap over dialogues), at a reduced size, for the two models of the family that read
text: the mixing encoder with text (the with_text option, text dropout 0.3) and the text-only logistic
regression baseline. Also each encoder's speed on the same texts and the cosine between their vectors.

Sizes: TURNLENS_BENCH_INT8_TRAIN (default 6000) and TURNLENS_BENCH_INT8_EVAL (default 3000) turns."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from analysis.failure_points import model as fp
from analysis.failure_points.benchmark import DEFAULT_SLURP_DIR, REAL_IDX
from analysis.failure_points.evaluation import evaluate
from analysis.simulate import load_eval_pool, load_pool, simulate_turns
from analysis.text_encoder import EmbeddingCache, TextEncoder
from tests.bench.harness import report

pytestmark = pytest.mark.bench

TRAIN = int(os.environ.get("TURNLENS_BENCH_INT8_TRAIN", "6000"))
EVAL = int(os.environ.get("TURNLENS_BENCH_INT8_EVAL", "3000"))


def test_int8_encoder_quality_on_failure_points(tmp_path):
    if not DEFAULT_SLURP_DIR.exists():
        pytest.skip(f"the SLURP evaluation split is not at {DEFAULT_SLURP_DIR}")
    logs = {"train": list(simulate_turns(load_pool(), n_turns=TRAIN, seed=0)),
            "eval": list(simulate_turns(load_eval_pool(DEFAULT_SLURP_DIR), n_turns=EVAL, seed=1, id_prefix="eval-"))}
    ex = {k: fp.build_examples(v) for k, v in logs.items()}
    y = {k: fp.gold_labels(logs[k], ex[k]) for k in logs}
    groups = np.array([e.dialogue_id for e in ex["eval"]])
    real = np.isin(y["eval"], REAL_IDX)
    distinct = sorted({t for part in ex.values() for e in part for t in e.texts if t})

    rows: dict[str, object] = {"train_turns": TRAIN, "eval_turns": EVAL, "distinct_texts": len(distinct)}
    vectors = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        encoder = TextEncoder.load(threads=2, int8=int8)
        cache = EmbeddingCache(tmp_path / name)
        start = time.perf_counter()
        vectors[name] = cache.encode(encoder, distinct)
        rows[f"{name}_texts_per_s"] = len(distinct) / (time.perf_counter() - start)

        def embed(texts, cache=cache, encoder=encoder):
            return cache.encode(encoder, texts)

        with_text = fp.FailurePointConfig(use_text=True, text_dropout=0.3, layers=2)  # what docs/scale.md measured
        models = {"with_text": fp.FailurePointClassifier(with_text),
                  "text_baseline": fp.TextLinearBaseline()}
        for model_name, model in models.items():
            model.fit(ex["train"], y["train"], embed=embed)
            pred = model.predict_proba(ex["eval"], embed=embed).argmax(axis=1)
            r = evaluate(y["eval"][real], pred[real], labels=REAL_IDX, groups=groups[real], label_names=fp.LABELS,
                         n_boot=200, seed=0)
            rows[f"{name}_{model_name}_macro_f1"] = r.macro_f1
            rows[f"{name}_{model_name}_macro_f1_ci"] = f"{r.macro_f1_ci[0]:.3f}-{r.macro_f1_ci[1]:.3f}"
    cos = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    rows.update({"cosine_fp32_int8_mean": float(cos.mean()), "cosine_fp32_int8_min": float(cos.min()),
                 "speedup_int8": rows["int8_texts_per_s"] / rows["fp32_texts_per_s"]})
    for model_name in ("with_text", "text_baseline"):
        rows[f"loss_points_{model_name} (fp32 - int8, macro-F1 x 100)"] = 100 * (
            rows[f"fp32_{model_name}_macro_f1"] - rows[f"int8_{model_name}_macro_f1"])
    report("encoder_int8_quality", rows)
    assert vectors["fp32"].shape == vectors["int8"].shape == (len(distinct), 384)
