"""Skill router on 2 cores: shortlister epoch time (training plus the per-epoch scoring of every example that
the training dynamics need) on 20,000 simulated turns, and routing throughput (turns/s) of predict: the
shortlist and the re-ranked order, text vectors from a warm embedding cache."""

from __future__ import annotations

import time

from analysis.simulate import load_pool, simulate_turns
from analysis.skills.model import RoutingConfig, SkillRouter, build_examples
from analysis.text_encoder import EmbeddingCache, TextEncoder
from tests.bench.harness import report


def test_skill_router_training_and_routing(tmp_path):
    encoder = TextEncoder.load(threads=2)
    cache = EmbeddingCache(tmp_path / "cache")

    def embed(texts):
        return cache.encode(encoder, texts)

    train = build_examples(simulate_turns(load_pool(), n_turns=20_000, seed=0))
    routed = build_examples(simulate_turns(load_pool(), n_turns=100_000, seed=7, id_prefix="r"))
    start = time.perf_counter()
    embed(sorted({e.request for e in train + routed if e.request}))
    encode_s = time.perf_counter() - start
    rows = {}
    for name, cfg in (("baseline", RoutingConfig()),
                      ("all three", RoutingConfig(pseudo_labels=True, negative_feedback=True, self_distill=True))):
        router = SkillRouter(cfg).fit(train, embed=embed)
        epochs = [h["seconds"] for h in router.history if h.get("stage", "shortlister") == "shortlister"]
        rows[f"{name}_shortlister_seconds_per_epoch"] = sum(epochs) / max(len(epochs), 1)
    start = time.perf_counter()
    router.predict(routed, embed=embed)
    route_s = time.perf_counter() - start
    report("skill_router", {"train_examples": len(train), "encode_seconds": encode_s, **rows,
                            "routed_turns": len(routed), "routing_seconds_warm_cache": route_s,
                            "routing_turns_per_s": len(routed) / route_s})
