"""Failure-point scoring throughput on 2 cores, with the text encoder's share of the time; the bundled
sample (target: under 1 minute) and a large log with the embedding cache already warm (target: 1M turns
in under 1 hour). TURNLENS_BENCH_SCORE_TURNS sets the large size (default: 100,000, extrapolated to 1M)."""

from __future__ import annotations

import os
import time

from analysis.failure_points import FailurePointClassifier, FailurePointConfig, build_examples, gold_labels
from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.text_encoder import EmbeddingCache, TextEncoder
from app import store
from app.ingest import ingest_files
from tests.bench.harness import ROOT, report

LARGE = int(os.environ.get("TURNLENS_BENCH_SCORE_TURNS", "100000"))


class TimedEmbed:
    """The cached encoder, timing how long scoring spends in it."""

    def __init__(self, cache: EmbeddingCache, encoder: TextEncoder):
        self.cache, self.encoder, self.seconds = cache, encoder, 0.0

    def __call__(self, texts):
        start = time.perf_counter()
        try:
            return self.cache.encode(self.encoder, texts)
        finally:
            self.seconds += time.perf_counter() - start


def score_dataset(conn, dataset: str, clf, embed: TimedEmbed) -> dict:
    embed.seconds = 0.0
    start = time.perf_counter()
    turns = store.list_turn_records(conn, dataset)
    examples = build_examples(turns)
    probs = clf.predict_proba(examples, embed=embed)
    total = time.perf_counter() - start
    assert probs.shape == (len(turns), 7)
    return {"turns": len(turns), "seconds": total, "turns_per_s": len(turns) / total,
            "encoder_share": embed.seconds / total}


def test_scoring_throughput(tmp_path):
    encoder = TextEncoder.load(threads=2)
    train_log = tmp_path / "train.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=3000, seed=5, id_prefix="T"), train_log)
    conn = store.connect(tmp_path / "fp.duckdb")
    ingest_files(conn, [train_log], dataset="train")
    ingest_files(conn, [ROOT / "sample_data" / "turns.jsonl.gz"], dataset="sample")
    large_log = tmp_path / "large.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=LARGE, seed=6, id_prefix="L"), large_log)
    ingest_files(conn, [large_log], dataset="large")
    train_turns = store.list_turn_records(conn, "train")
    train_examples = build_examples(train_turns)
    warm = EmbeddingCache(tmp_path / "cache-train")
    clf = FailurePointClassifier(FailurePointConfig(epochs=2)).fit(
        train_examples, gold_labels(train_turns, train_examples), embed=lambda t: warm.encode(encoder, t))

    cold = score_dataset(conn, "sample", clf, TimedEmbed(EmbeddingCache(tmp_path / "cold"), encoder))
    cache = EmbeddingCache(tmp_path / "large-cache")
    first = score_dataset(conn, "large", clf, TimedEmbed(cache, encoder))
    again = score_dataset(conn, "large", clf, TimedEmbed(cache, encoder))  # cached embeddings reused
    conn.close()
    report("failure_points_scoring", {
        "sample_turns": cold["turns"], "sample_seconds_cold_cache": cold["seconds"],
        "sample_encoder_share": cold["encoder_share"],
        "large_turns": first["turns"], "large_seconds_cold_cache": first["seconds"],
        "large_encoder_share_cold": first["encoder_share"],
        "large_seconds_warm_cache": again["seconds"], "large_turns_per_s_warm": again["turns_per_s"],
        "large_encoder_share_warm": again["encoder_share"],
        "extrapolated_1M_minutes_warm": 1_000_000 / again["turns_per_s"] / 60,
        "target": "sample < 1 min; 1M turns < 60 min with cached embeddings",
    })
