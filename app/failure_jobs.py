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
from analysis.failure_points.model import (
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


def train_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_reviewed: bool = False) -> dict:
    """What training reads from the store: the dataset's turns and, with_reviewed, the settled labels."""
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset),
            "reviewed": store.list_reviewed_labels(conn, dataset, "failure_point") if with_reviewed else {}}


def fit(inputs: dict, out: Path, *, config: FailurePointConfig, embed: Callable | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on the inputs' gold failure points (reviewed labels win over gold) and save the checkpoint to out.
    Pure: no database (a job runs it in a child process)."""
    turns, reviewed, dataset = inputs["turns"], inputs["reviewed"], inputs["dataset"]
    examples = build_examples(turns)
    gold = {(t["dialogue_id"], int(t["turn_index"])): t.get("gold_failure_point") for t in turns}
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


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: FailurePointConfig,
          with_reviewed: bool = False, embed: Callable | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on a dataset's gold failure points (and, with_reviewed, the labels people settled in review,
    which win over gold); save the checkpoint to out. Returns a summary."""
    return fit(train_inputs(conn, dataset, with_reviewed=with_reviewed), out, config=config, embed=embed,
               progress=progress)


def weights_version(fingerprint: str | None, model_dir: Path) -> str:
    """A model run's version: the training data's fingerprint and a hash of the weights, so a checkpoint
    retrained into the same folder is a new run rather than a conflicting one."""
    digest = hashlib.sha256((Path(model_dir) / "weights.pt").read_bytes()).hexdigest()[:12]
    return f"{fingerprint}-{digest}"


def score_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """What scoring reads from the store: the dataset's turns, production fields only."""
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    return turns


def candidates(turns: list[dict], model_dir: Path, *, embed: Callable | None = None,
               progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None) -> pa.Table:
    """Each turn's most likely failure point as a `failure_point` candidate (CANDIDATE_SCHEMA): its probability
    is the score, the whole vector (every label of LABELS) the distribution, the checkpoint the model run.
    Pure: no database."""
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    spent.update(inputs=0.0, text_encoder=0.0, model=0.0)
    embed = embed or embedder()

    def timed_embed(texts: list[str]) -> np.ndarray:
        start = clock()
        try:
            return embed(texts)
        finally:
            spent["text_encoder"] += clock() - start

    clf = FailurePointClassifier.from_pretrained(model_dir)
    start = clock()
    examples = build_examples(turns)
    spent["inputs"] = clock() - start
    start = clock()
    probs = clf.predict_proba(examples, embed=timed_embed,
                              progress=progress and (lambda done, total: progress("scoring", done, total)))
    spent["model"] = clock() - start - spent["text_encoder"]
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
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, embed: Callable | None = None,
          progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None
          ) -> store.CandidateImportResult:
    """Score every turn of a dataset and store the candidates (see candidates()).

    progress(stage, done, total) with stage "scoring" (turns); timings, if given, receives the seconds spent
    reading turns, building inputs, in the text encoder (embed, cache hits included), in the model and
    writing candidates."""
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    start = clock()
    turns = score_inputs(conn, dataset)
    read = clock() - start
    table = candidates(turns, model_dir, embed=embed, progress=progress, timings=spent)
    spent["read"] = read
    start = clock()
    result = store.insert_candidates(conn, table)
    spent["write"] = clock() - start
    return result
