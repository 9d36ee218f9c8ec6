"""Training the skill router on a stored dataset and turning its pseudo-labels into review candidates (task
`skill`): the skills its training dynamics ranked above the logged skill for r consecutive epochs.

The skill-routing family's job module and registry entry. The router learns from logged routings only
(production fields); gold_skills is never read here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.skills.model import RoutingConfig, SkillRouter, build_examples, data_fingerprint
from app import store
from app.jobs.common import (
    HOLD_OUT,
    describe,
    embedder,
    evaluate_with,
    mark_held_out,
    read_heldout,
    stages,
    train_part,
    trained_with_hold_out,
    weights_version,
)
from app.jobs.registry import Family, Option, register

MODEL_NAME = "skill-router"


def inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> dict:
    """What training and proposing read from the store: the dataset's turns, production fields only."""
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset, production_only=True)}


def training_examples(conn: duckdb.DuckDBPyConnection, dataset: str, checkpoint: str | Path) -> list:
    """The routing examples a checkpoint's training dynamics index, in their order: the dataset's turns as its
    training job read them, so without the held-out dialogues when it was trained with hold out (the default)."""
    return build_examples(train_part(inputs(conn, dataset)["turns"], trained_with_hold_out(checkpoint)))


def _examples(inputs: dict):
    examples = build_examples(inputs["turns"])
    if not examples:
        raise ValueError(f"dataset {inputs['dataset']!r} has no turns with a routed skill (response_skill)")
    return examples


def fit(inputs: dict, out: Path, *, config: RoutingConfig, embed: Callable | None = None,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on the inputs' logged routings; save the checkpoint (with its training dynamics) to out. Pure."""
    examples = _examples(inputs)
    router = SkillRouter(config).fit(examples, embed=embed or embedder(), progress=progress)
    router.save_pretrained(out)
    return {"examples": len(examples), "failed": sum(e.failed for e in examples), "skills": len(router.skills),
            "epochs": config.epochs}


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: RoutingConfig,
          embed: Callable | None = None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on a dataset's logged routings; save the checkpoint (with its training dynamics) to out."""
    return fit(inputs(conn, dataset), out, config=config, embed=embed, progress=progress)


def candidates(inputs: dict, model_dir: Path, *, p: int | None = None, r: int | None = None) -> pa.Table:
    """The checkpoint's pseudo-labels for the dataset it was trained on (from its stored dynamics, for any p
    and r), as `skill` candidates: per turn, the pseudo-label with the highest score (one candidate per turn
    and run), scored by its score at the epoch its streak completed. Pure: no database."""
    router = SkillRouter.from_pretrained(model_dir)
    examples = _examples(inputs)
    if data_fingerprint(examples) != router.fingerprint:
        raise ValueError(f"{model_dir} was not trained on dataset {inputs['dataset']!r} as it is now: "
                         "pseudo-labels come from the training dynamics, so propose on the dataset the router "
                         "was trained on")
    p, r = p or router.config.p, r or router.config.r
    labels = router.pseudo_labels(p, r)
    params = canonical_json({"config": asdict(router.config), "p": p, "r": r,
                             "data_fingerprint": router.fingerprint, "checkpoint": str(Path(model_dir).resolve())})
    version = weights_version(router.fingerprint, model_dir)
    rows = []
    for i, found in labels.items():
        skill, _, score = max(found, key=lambda t: (t[2], -t[0]))
        ex = examples[i]
        kind, key = target_key(ex.dialogue_id, ex.turn_index)
        rows.append({"task": "skill", "target_kind": kind, "dialogue_id": ex.dialogue_id,
                     "turn_index": ex.turn_index, "other_dialogue_id": None, "other_turn_index": None,
                     "target_key": key, "value": canonical_json(router.skills[skill]),
                     "score": min(max(float(score), 0.0), 1.0), "distribution": None, "model_name": MODEL_NAME,
                     "model_version": version, "model_parameters": params, "run_at": None})
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def propose(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, p: int | None = None,
            r: int | None = None, timings: dict | None = None) -> store.CandidateImportResult:
    """Store the checkpoint's pseudo-labels for its training dataset as candidates (see candidates())."""
    start = time.perf_counter()
    result = store.insert_candidates(conn, candidates(inputs(conn, dataset), model_dir, p=p, r=r))
    if timings is not None:
        timings["seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------- the registry entry


def _sk_read(conn, dataset: str, options: dict) -> dict:
    """The router learns from, and proposes pseudo-labels for, the same turns (its training dynamics are the
    proposals): with hold out, both are the dataset without its held-out dialogues."""
    read = inputs(conn, dataset)
    return {**read, "turns": train_part(read["turns"], options.get("hold_out", True))}


def _sk_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    config = RoutingConfig(epochs=options["epochs"], pseudo_labels=options["pseudo_labels"],
                           negative_feedback=options["negative_feedback"], self_distill=options["self_distill"],
                           p=options["p"], r=options["r"])
    summary = fit(inputs, out, config=config, progress=stages(progress))
    mark_held_out(out, options["hold_out"])
    return summary


def _sk_score(inputs: dict, options: dict, checkpoint: Path, progress):
    progress("proposing", 0, None)
    return candidates(inputs, checkpoint, p=options["p"], r=options["r"])


register(Family(
    name="skills", title="Skill routing", page="skills", scores_other_datasets=False,
    description="A skill router that learns from logged routings: pseudo-labels from its training dynamics, "
                "negative feedback from failed turns, self-distillation; its pseudo-labels become candidates.",
    options=(Option("epochs", int, 8, "shortlister and re-ranker epochs", low=1, high=200),
             Option("pseudo_labels", bool, True, "train with the pseudo-labels the dynamics propose"),
             Option("negative_feedback", bool, True, "penalise failed (request, skill) pairs"),
             Option("self_distill", bool, False, "moving averages of earlier epochs as soft targets"),
             Option("p", int, 2, "pseudo-labels: skills among the top p ...", ("train", "score"), low=1, high=100),
             Option("r", int, 4, "... ranked above the logged skill for r consecutive epochs", ("train", "score"),
                    low=1, high=200),
             replace(HOLD_OUT, actions=("train", "score"),
                     help="keep a fifth of the dialogues out of training (and so out of the pseudo-labels, "
                          "which come from training), for the quick evaluation; score with the same setting")),
    read_train=_sk_read, train=_sk_train, read_score=_sk_read, score=_sk_score,
    read_evaluate=read_heldout,
    evaluate=evaluate_with("analysis.skills.evaluation:evaluate_heldout", "analysis.skills.model:SkillRouter"),
    describe=lambda action, result: describe(action, result, "skill"),
))
