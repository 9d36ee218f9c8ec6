"""Coordination chunker on 2 cores: tagging throughput (utterances/s: words in, BIO tags and item spans out, CRF
Viterbi; the model tags on one thread, see analysis/coordination/model.py), with and without the chunk
probabilities, against the rule splitter's rate in the same run (pure Python over the gold extent; it measures how
fast this machine runs plain Python right now).

Target (issue 18): tagging at least 5,000 utterances/s on 2 cores. The assertion scales the target down by how
much slower the rule splitter ran here than on a quiet machine (RULE_QUIET, measured when the target was set),
so a machine busy with other work does not fail it, and a real slowdown of the chunker still does."""

from __future__ import annotations

import time

import torch

from analysis.coordination import examples as cx
from analysis.coordination.baselines import rule_split
from analysis.coordination.config import CoordinationConfig
from analysis.coordination.model import CoordinationModel
from analysis.simulate import load_pool
from tests.bench.harness import report

TARGET = 5_000  # utterances/s, tagging, 2 cores
RULE_QUIET = 1_800_000  # rule splits/s: the fastest seen on this kind of machine (2026-12), the quiet reference


def _rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def test_chunker_tagging_rate_against_the_rule_splitter():
    torch.set_num_threads(2)
    pool = load_pool()
    turns = [{"dialogue_id": str(i), "turn_index": 0, "reference_text": r["reference_text"],
              "asr_text": r["asr_text"], "gold_slots": r["gold_slots"]} for i, r in enumerate(pool)]
    utts = cx.utterances_from_turns(turns, dedupe=True)
    cfg = CoordinationConfig(epochs=1)
    types = cfg.slot_types
    pools = cx.value_pools(utts, types)
    train = cx.build_examples(utts, types=types, pools=pools, seed=0, variants=2).examples
    model = CoordinationModel(cfg).fit(train, pools=pools)  # one epoch: the speed does not depend on the weights
    test, _ = cx.evaluation_examples(utts, types=types, pools=pools, seed=1)
    rows = [ex.tokens for ex in test]
    while len(rows) < 20_000:
        rows = rows + rows
    extents = [ex.extent for ex in test] * (len(rows) // len(test) + 1)
    model.predict(rows[:2000], scores=False)  # warm
    tagging = _rate(lambda: model.predict(rows, scores=False), len(rows))
    with_scores = _rate(lambda: model.predict(rows), len(rows), repeat=1)
    rule = _rate(lambda: [rule_split(r, e) for r, e in zip(rows, extents, strict=False)], len(rows))
    load = min(1.0, rule / RULE_QUIET)
    report("coordination", {
        "utterances": len(rows), "mean_words": sum(map(len, rows)) / len(rows),
        "tagging_per_s": tagging, "tagging_with_chunk_scores_per_s": with_scores, "rule_splitter_per_s": rule,
        "tagging_over_rule": tagging / rule, "machine_speed_vs_quiet": load, "target_per_s": TARGET,
        "target_scaled_per_s": TARGET * load,
    })
    assert tagging >= TARGET * load, f"tagging {tagging:,.0f}/s < {TARGET * load:,.0f}/s (target scaled by {load:.2f})"
