"""Label-generation model on 2 cores: training time per epoch (pretraining and fine-tuning) on 20,000
simulated turns, and scoring throughput (turns/s) through `label_jobs.score` (reading turns, building
dialogues, text vectors through a warm embedding cache, the network, writing five candidates per turn).
TURNLENS_BENCH_LABEL_TURNS sets the scored log's size (default 100,000 turns of the shared bench log)."""

from __future__ import annotations

import itertools
import json
import os
import time

from analysis.labels.model import LabelConfig, LabelModel, build_dialogues, gold_targets
from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.text_encoder import EmbeddingCache, TextEncoder
from app import store
from app.ingest import ingest_files
from app.jobs import labels as label_jobs
from tests.bench.harness import report

SCORED = int(os.environ.get("TURNLENS_BENCH_LABEL_TURNS", "100000"))


def test_label_model_training_and_scoring(tmp_path, big_log):
    encoder = TextEncoder.load(threads=2)
    cache = EmbeddingCache(tmp_path / "cache")

    def embed(texts):
        return cache.encode(encoder, texts)

    train = list(simulate_turns(load_pool(), n_turns=20_000, seed=0))
    dialogues, targets = build_dialogues(train), gold_targets(train)
    start = time.perf_counter()
    embed(sorted({s for d in dialogues for t in d.turns for s in (t.request, t.response) if s}))
    encode_s = time.perf_counter() - start
    model = LabelModel(LabelConfig(epochs=2, pretrain_epochs=1)).fit(dialogues, targets, embed=embed)
    model.save_pretrained(tmp_path / "ckpt")
    pre = [h["seconds"] for h in model.history if h["stage"] == "pretraining"]
    fine = [h["seconds"] for h in model.history if h["stage"] == "training"]

    log = tmp_path / "scored.jsonl"
    with open(big_log) as f:
        write_log((json.loads(line) for line in itertools.islice(f, SCORED)), log)
    conn = store.connect(tmp_path / "labels.duckdb")
    ingest_files(conn, [log], dataset="big")
    timings: dict[str, float] = {}
    label_jobs.score(conn, "big", tmp_path / "ckpt", embed=embed)  # first pass fills the embedding cache
    conn.close()
    conn = store.connect(tmp_path / "labels2.duckdb")
    ingest_files(conn, [log], dataset="big")
    start = time.perf_counter()
    result = label_jobs.score(conn, "big", tmp_path / "ckpt", embed=embed, timings=timings)
    total = time.perf_counter() - start
    conn.close()
    turns = result.rows_read // 5
    report("label_model", {
        "train_turns": len(train), "train_dialogues": len(dialogues),
        "encode_seconds_train_texts": encode_s,
        "pretraining_seconds_per_epoch": sum(pre) / len(pre), "training_seconds_per_epoch": sum(fine) / len(fine),
        "scored_turns": turns, "scoring_seconds_warm_cache": total, "scoring_turns_per_s": turns / total,
        **{f"share_{k}": v / total for k, v in timings.items()},
        "1M_turns_minutes_at_this_rate": 1_000_000 / (turns / total) / 60,
    })
