"""Training and scoring the label-generation model on a stored dataset; every scored label becomes a review
candidate (tasks intent, slots, goal_start, goal_success, defect) with its score and model run.

Shared by `turnlens train labels` and `turnlens score labels`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.label_model import BINARY_TASKS, TASKS, LabelConfig, LabelModel, build_dialogues, gold_targets
from app import store
from app.failure_jobs import embedder, load_evaluation, weights_version  # noqa: F401  (one reader for both models' checkpoints)

MODEL_NAME = "label-model"
TOP_INTENTS = 5  # an intent candidate keeps its top five intents and the rest as one "(other)" share


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: LabelConfig,
          with_reviewed: bool = False, embed: Callable | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on a dataset's gold labels (with_reviewed: labels people settled in review win over gold);
    save the checkpoint to out. Returns a summary."""
    turns = store.list_turn_records(conn, dataset)
    targets = gold_targets(turns)
    used = 0
    if with_reviewed:
        for task in TASKS:
            reviewed = store.list_reviewed_labels(conn, dataset, task)
            if task != "intent":  # the store gives the label's JSON text unquoted: '[...]' or 'true' / 'false'
                reviewed = {k: json.loads(v) for k, v in reviewed.items()}
            getattr(targets, task).update(reviewed)
            used += len(reviewed)
    n_intents = sum(v is not None for v in targets.intent.values())
    if n_intents < 20:
        raise ValueError(f"dataset {dataset!r} has {n_intents} turns with an intent label (gold_intent or a "
                         "reviewed label); at least 20 are needed to train")
    model = LabelModel(config).fit(build_dialogues(turns), targets, embed=embed or embedder(), progress=progress)
    model.save_pretrained(out)
    return {"turns": len(turns), "intent_labels": n_intents, "reviewed_labels_used": used,
            "history": model.history}


def _row(task: str, dialogue_id: str, turn_index: int, value: object, score: float, distribution: dict | None,
         run: tuple[str, str, str]) -> dict:
    kind, key = target_key(dialogue_id, turn_index)
    return {"task": task, "target_kind": kind, "dialogue_id": dialogue_id, "turn_index": turn_index,
            "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
            "value": canonical_json(value), "score": min(max(float(score), 0.0), 1.0),
            "distribution": None if distribution is None else canonical_json(distribution),
            "model_name": run[0], "model_version": run[1], "model_parameters": run[2], "run_at": None}


def intent_distribution(intents: list[str], proba: np.ndarray, top: int = TOP_INTENTS) -> dict[str, float]:
    """The top intents' probabilities and the remainder as "(other)" (omitted when zero); sums to 1."""
    order = np.argsort(-proba, kind="stable")[:top]
    out = {intents[i]: float(proba[i]) for i in order}
    rest = 1.0 - sum(out.values())
    if rest > 1e-12:
        out["(other)"] = rest
    return out


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, tasks: tuple[str, ...] = TASKS,
          embed: Callable | None = None, progress: Callable[[str, int, int], None] | None = None,
          timings: dict | None = None) -> store.CandidateImportResult:
    """Score every turn of a dataset and store one candidate per turn and task. Binary tasks propose the more
    likely answer with its probability as the score; intent keeps its top probabilities as the distribution."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"tasks must be among {', '.join(TASKS)}; got {', '.join(unknown) or 'none'}")
    spent = timings if timings is not None else {}
    clock = time.perf_counter
    model = LabelModel.from_pretrained(model_dir)
    start = clock()
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    dialogues = build_dialogues(turns)
    del turns
    spent["read"] = clock() - start
    start = clock()
    pred = model.predict(dialogues, embed=embed or embedder(), progress=progress)
    spent["model"] = clock() - start
    start = clock()
    run = (MODEL_NAME, weights_version(model.fingerprint, model_dir), canonical_json({
        "config": asdict(replace(model.config)), "data_fingerprint": model.fingerprint,
        "checkpoint": str(Path(model_dir).resolve())}))
    rows = []
    best = pred.intent_proba.argmax(axis=1)
    for i, (did, ti) in enumerate(pred.keys):
        if "intent" in tasks:
            dist = intent_distribution(pred.intents, pred.intent_proba[i])
            rows.append(_row("intent", did, ti, pred.intents[best[i]], dist[pred.intents[best[i]]], dist, run))
        if "slots" in tasks:
            rows.append(_row("slots", did, ti, pred.slots[i], pred.slot_confidence[i], None, run))
        for task in BINARY_TASKS:
            if task in tasks:
                p = float(pred.binary[task][i])
                rows.append(_row(task, did, ti, p >= 0.5, max(p, 1.0 - p), None, run))
    result = store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    spent["write"] = clock() - start
    return result

