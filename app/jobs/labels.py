"""Training and scoring the label-generation model on a stored dataset; every scored label becomes a review
candidate (tasks intent, slots, goal_start, goal_success, defect) with its score and model run.

The label-generation family's job module and registry entry."""

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
from analysis.labels.model import BINARY_TASKS, TASKS, LabelConfig, LabelModel, build_dialogues, gold_targets
from app import store
from app.jobs.common import (
    HOLD_OUT,
    REVIEWED,
    LoadedModel,
    describe,
    embedder,
    evaluate_with,
    mark_held_out,
    read_heldout,
    reads,
    stages,
    turn_batches,
    weights_version,
)
from app.jobs.registry import BatchScoring, Family, Option, register

MODEL_NAME = "label-model"
TOP_INTENTS = 5  # an intent candidate keeps its top five intents and the rest as one "(other)" share


def train_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_reviewed: bool = False) -> dict:
    """What training reads from the store: the dataset's turns and, with_reviewed, the settled labels per task."""
    reviewed = {}
    if with_reviewed:
        for task in TASKS:
            labels = store.list_reviewed_labels(conn, dataset, task)
            if task != "intent":  # the store gives the label's JSON text unquoted: '[...]' or 'true' / 'false'
                labels = {k: json.loads(v) for k, v in labels.items()}
            reviewed[task] = labels
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset), "reviewed": reviewed}


def fit(inputs: dict, out: Path, *, config: LabelConfig, embed: Callable | None = None,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on the inputs' gold labels (reviewed labels win over gold); save the checkpoint to out. Pure."""
    turns, dataset = inputs["turns"], inputs["dataset"]
    targets = gold_targets(turns)
    used = 0
    for task, labels in inputs["reviewed"].items():
        getattr(targets, task).update(labels)
        used += len(labels)
    n_intents = sum(v is not None for v in targets.intent.values())
    if n_intents < 20:
        raise ValueError(f"dataset {dataset!r} has {n_intents} turns with an intent label (gold_intent or a "
                         "reviewed label); at least 20 are needed to train")
    model = LabelModel(config).fit(build_dialogues(turns), targets, embed=embed or embedder(), progress=progress)
    model.save_pretrained(out)
    return {"turns": len(turns), "intent_labels": n_intents, "reviewed_labels_used": used,
            "history": model.history}


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: LabelConfig,
          with_reviewed: bool = False, embed: Callable | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on a dataset's gold labels (with_reviewed: labels people settled in review win over gold);
    save the checkpoint to out. Returns a summary."""
    return fit(train_inputs(conn, dataset, with_reviewed=with_reviewed), out, config=config, embed=embed,
               progress=progress)


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


def score_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """What scoring reads from the store: the dataset's turns, production fields only."""
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    return turns


def candidates(turns: list[dict], model_dir: Path, *, tasks: tuple[str, ...] = TASKS, embed: Callable | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> pa.Table:
    """One candidate per turn and task (CANDIDATE_SCHEMA). Binary tasks propose the more likely answer with its
    probability as the score; intent keeps its top probabilities as the distribution. Pure: no database."""
    return candidates_from(load(model_dir), turns, tasks=tasks, embed=embed, progress=progress)


def load(model_dir: Path, options: dict | None = None) -> LoadedModel:
    """The checkpoint's model and its model run, for scoring batch after batch (registry.BatchScoring)."""
    model = LabelModel.from_pretrained(model_dir)
    return LoadedModel(model, (MODEL_NAME, weights_version(model.fingerprint, model_dir), canonical_json({
        "config": asdict(replace(model.config)), "data_fingerprint": model.fingerprint,
        "checkpoint": str(Path(model_dir).resolve())})))


def candidates_from(loaded: LoadedModel, turns: list[dict], *, tasks: tuple[str, ...] = TASKS,
                    embed: Callable | None = None, progress: Callable[[str, int, int], None] | None = None
                    ) -> pa.Table:
    """candidates() with the model already loaded (load()). turns must hold whole dialogues: the model reads each
    turn's dialogue context."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"tasks must be among {', '.join(TASKS)}; got {', '.join(unknown) or 'none'}")
    pred = loaded.model.predict(build_dialogues(turns), embed=embed or loaded.embed, progress=progress)
    run = loaded.run
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
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, tasks: tuple[str, ...] = TASKS,
          embed: Callable | None = None, progress: Callable[[str, int, int], None] | None = None,
          timings: dict | None = None) -> store.CandidateImportResult:
    """Score every turn of a dataset and store one candidate per turn and task (see candidates())."""
    spent = timings if timings is not None else {}
    clock = time.perf_counter
    start = clock()
    turns = score_inputs(conn, dataset)
    spent["read"] = clock() - start
    start = clock()
    table = candidates(turns, model_dir, tasks=tasks, embed=embed, progress=progress)
    spent["model"] = clock() - start
    start = clock()
    result = store.insert_candidates(conn, table)
    spent["write"] = clock() - start
    return result


# --------------------------------------------------------------------- the registry entry

_read_train, _read_score = reads(__name__)


def _lb_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    config = LabelConfig(epochs=options["epochs"], pretrain_epochs=options["pretrain_epochs"],
                         use_context=options["context"], finetune_encoder=options["finetune_encoder"])
    summary = fit(inputs, out, config=config, progress=stages(progress))
    mark_held_out(out, options["hold_out"])
    return summary


def _lb_score(loaded: LoadedModel, turns: list[dict], options: dict, progress=None):
    return candidates_from(loaded, turns, tasks=_tasks(options["tasks"]), progress=progress and stages(progress))


BATCH = BatchScoring(load=load, score=_lb_score, whole_dialogues=True, read_batches=turn_batches)


def _tasks(text: str) -> tuple[str, ...]:
    """The comma-separated tasks of the score option; ValueError names the known ones."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tasks or set(tasks) - set(TASKS):
        raise ValueError(f"choose among {', '.join(TASKS)}; got {text!r}")
    return tasks


register(Family(
    name="labels", title="Label generation", page="labels",
    description="Intent, slots, goal start, goal success and defect for every turn: a dialogue Transformer "
                "with swapped-response pretraining, trained on the log's gold labels.",
    options=(Option("epochs", int, 10, "fine-tuning epochs", low=1, high=200),
             Option("pretrain_epochs", int, 3, "swapped-response pretraining epochs (0: none)", low=0, high=100),
             Option("context", bool, True, "turns see the rest of their dialogue (off: each turn only itself, the "
                                           "ablation)"),
             Option("finetune_encoder", bool, False, "train the sentence encoder too instead of reading frozen "
                                                     "cached vectors (much slower)"),
             REVIEWED, HOLD_OUT,
             Option("tasks", str, ",".join(TASKS), "comma-separated tasks to write candidates for", ("score",),
                    check=_tasks)),
    read_train=_read_train, train=_lb_train, read_score=_read_score, score=BATCH.local, batch=BATCH,
    read_evaluate=read_heldout,
    evaluate=evaluate_with("analysis.labels.evaluation:evaluate_heldout", "analysis.labels.model:LabelModel"),
    describe=lambda action, result: describe(action, result, "label"),
))
