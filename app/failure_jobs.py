"""Training and scoring the failure-point model on a stored dataset; scores become review candidates.

Shared by `turnlens train failure-points` and `turnlens score failure-points`."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.failure_points import (
    LABEL_INDEX,
    LABELS,
    FailurePointClassifier,
    FailurePointConfig,
    build_examples,
)
from analysis.text_encoder import EmbeddingCache, TextEncoder
from app import store

MODEL_NAME = "failure-points"


def embedder(progress: Callable[[int], None] | None = None) -> Callable[[list[str]], np.ndarray]:
    """MiniLM through the on-disk cache (TURNLENS_CACHE, default data/cache): each text is encoded once.
    The encoder loads on first use, so a model that reads no text never loads it."""
    cache = EmbeddingCache(Path(os.environ.get("TURNLENS_CACHE", "data/cache")) / "embeddings")
    encoder: list[TextEncoder] = []

    def embed(texts: list[str]) -> np.ndarray:
        if not encoder:
            encoder.append(TextEncoder.load())
        return cache.encode(encoder[0], texts, progress=progress)

    return embed


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: FailurePointConfig,
          with_reviewed: bool = False, embed: Callable | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on a dataset's gold failure points (and, with_reviewed, the labels people settled in review,
    which win over gold); save the checkpoint to out. Returns a summary."""
    turns = store.list_turn_records(conn, dataset)
    examples = build_examples(turns)
    gold = {(t["dialogue_id"], int(t["turn_index"])): t.get("gold_failure_point") for t in turns}
    reviewed = store.list_reviewed_labels(conn, dataset, "failure_point") if with_reviewed else {}
    labelled = [(ex, reviewed.get(ex.key) or gold.get(ex.key)) for ex in examples]
    labelled = [(ex, label) for ex, label in labelled if label in LABEL_INDEX]
    if len(labelled) < 20:
        raise ValueError(f"dataset {dataset!r} has {len(labelled)} turns with a failure-point label "
                         "(gold_failure_point or a reviewed label); at least 20 are needed to train")
    xs = [ex for ex, _ in labelled]
    ys = np.array([LABEL_INDEX[label] for _, label in labelled])
    clf = FailurePointClassifier(config).fit(xs, ys, embed=embed or embedder(), progress=progress)
    clf.save_pretrained(out)
    return {"turns": len(xs), "reviewed_labels_used": sum(1 for ex in xs if ex.key in reviewed),
            "labels": {LABELS[i]: int(n) for i, n in enumerate(np.bincount(ys, minlength=len(LABELS))) if n}}


def weights_version(fingerprint: str | None, model_dir: Path) -> str:
    """A model run's version: the training data's fingerprint and a hash of the weights, so a checkpoint
    retrained into the same folder is a new run rather than a conflicting one."""
    digest = hashlib.sha256((Path(model_dir) / "weights.pt").read_bytes()).hexdigest()[:12]
    return f"{fingerprint}-{digest}"


def load_evaluation(parameters: str) -> dict | None:
    """The evaluation a run's checkpoint carries (evaluation.json, written by
    scripts/evaluate_failure_points.py --save-model), from the run's stored parameters; None if absent."""
    try:
        folder = Path(json.loads(parameters)["checkpoint"])
        return json.loads((folder / "evaluation.json").read_text())
    except (KeyError, TypeError, ValueError, OSError):
        return None


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, embed: Callable | None = None,
          progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None
          ) -> store.CandidateImportResult:
    """Score every turn of a dataset; each turn's most likely failure point becomes a `failure_point`
    candidate with its probability as the score, the whole vector (every label of LABELS) as its
    distribution, and the checkpoint as the model run.

    progress(stage, done, total) with stage "scoring" (turns); timings, if given, receives the seconds spent
    reading turns, building inputs, in the text encoder (embed, cache hits included), in the model and
    writing candidates."""
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    spent.update(read=0.0, inputs=0.0, text_encoder=0.0, model=0.0, write=0.0)
    embed = embed or embedder()

    def timed_embed(texts: list[str]) -> np.ndarray:
        start = clock()
        try:
            return embed(texts)
        finally:
            spent["text_encoder"] += clock() - start

    clf = FailurePointClassifier.from_pretrained(model_dir)
    start = clock()
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    spent["read"] = clock() - start
    start = clock()
    examples = build_examples(turns)
    del turns
    spent["inputs"] = clock() - start
    start = clock()
    probs = clf.predict_proba(examples, embed=timed_embed,
                              progress=progress and (lambda done, total: progress("scoring", done, total)))
    spent["model"] = clock() - start - spent["text_encoder"]
    start = clock()
    params = canonical_json({"config": asdict(clf.config), "data_fingerprint": clf.fingerprint,
                             "checkpoint": str(Path(model_dir).resolve())})
    best = probs.argmax(axis=1)
    version = weights_version(clf.fingerprint, model_dir)
    rows = []
    for ex, p, b in zip(examples, probs.tolist(), best.tolist(), strict=True):
        kind, key = target_key(ex.dialogue_id, ex.turn_index)
        rows.append({"task": "failure_point", "target_kind": kind, "dialogue_id": ex.dialogue_id,
                     "turn_index": ex.turn_index, "other_dialogue_id": None, "other_turn_index": None,
                     "target_key": key, "value": json.dumps(LABELS[b]), "score": p[b],
                     "distribution": canonical_json(dict(zip(LABELS, p, strict=True))),
                     "model_name": MODEL_NAME, "model_version": version, "model_parameters": params,
                     "run_at": None})
    result = store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    spent["write"] = clock() - start
    return result
