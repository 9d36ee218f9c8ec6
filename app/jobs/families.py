"""The built-in model families: failure points, labels and skills, each as one registry entry over its job
module (app/failure_jobs.py, app/label_jobs.py, app/skill_jobs.py hold the store <-> analysis code).

Training from the app (and `make run`) holds out a fifth of the dataset's dialogues (analysis.holdout), so
the quick evaluation that follows measures the model on dialogues it never saw.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import replace
from pathlib import Path

from app.jobs.registry import Family, Option, register

_REVIEWED = Option("with_reviewed", bool, False, "also train on labels people accepted or corrected in review "
                                                 "(they win over gold)")
_HOLD_OUT = Option("hold_out", bool, True, "keep a fifth of the dialogues out of training, for the quick "
                                          "evaluation (off: train on everything, as `turnlens train` does)")


def _train_part(turns: list[dict], hold_out: bool) -> list[dict]:
    if not hold_out:
        return turns
    from analysis.holdout import split_turns

    return split_turns(turns)[0]


def _heldout_part(turns: list[dict]) -> list[dict]:
    from analysis.holdout import split_turns

    held = split_turns(turns)[1]
    if not held:
        raise ValueError("the dataset has no held-out dialogues to evaluate on (too few dialogues)")
    return held


_MARKER = "heldout.json"  # in a checkpoint trained without the held-out dialogues


def _mark_held_out(out: Path, hold_out: bool) -> None:
    """Say in the checkpoint that it never saw the held-out dialogues: only then may the quick evaluation run."""
    if hold_out:
        from analysis.holdout import HELDOUT_SHARE

        (out / _MARKER).write_text(json.dumps({"held_out_share": HELDOUT_SHARE}))


def _require_held_out(checkpoint: Path) -> None:
    if not (checkpoint / _MARKER).exists():
        raise ValueError("this checkpoint was trained on every dialogue (hold out was off): a held-out evaluation "
                         "would measure it on its own training data. Train it again with hold out on.")


def _read_heldout(conn, dataset: str, options: dict) -> list[dict]:
    """Evaluation reads the held-out dialogues with their gold fields (gold only as the target)."""
    from app import store

    return _heldout_part(store.list_turn_records(conn, dataset))


def _evaluate_with(evaluator: str, loader: str):
    """evaluate(turns, options, checkpoint, progress) for a family: load the checkpoint with loader
    ('module:Class'), measure it with evaluator ('module:function')."""
    def evaluate(turns: list[dict], options: dict, checkpoint: Path, progress):
        import importlib

        from app.failure_jobs import embedder

        _require_held_out(checkpoint)
        module, name = loader.split(":")
        model = getattr(importlib.import_module(module), name).from_pretrained(checkpoint)
        progress("evaluating", 0, None)
        module, name = evaluator.split(":")
        return getattr(importlib.import_module(module), name)(turns, model, embedder())
    return evaluate


def _reads(jobs_module: str):
    """(read_train, read_score) for a family whose app/<x>_jobs.py has train_inputs and score_inputs: training
    reads the dataset without its held-out dialogues (when hold_out), scoring reads every turn."""
    def read_train(conn, dataset: str, options: dict) -> dict:
        module = importlib.import_module(jobs_module)
        inputs = module.train_inputs(conn, dataset, with_reviewed=options["with_reviewed"])
        return {**inputs, "turns": _train_part(inputs["turns"], options["hold_out"])}

    def read_score(conn, dataset: str, options: dict) -> list[dict]:
        return importlib.import_module(jobs_module).score_inputs(conn, dataset)

    return read_train, read_score


_fp_read_train, _fp_read_score = _reads("app.failure_jobs")
_lb_read_train, _lb_read_score = _reads("app.label_jobs")


def _stages(progress):
    """A family's (done, total) or (stage, done, total) callback as progress(stage, done, total)."""
    def forward(*event):
        stage, done, total = event if len(event) == 3 else ("training", *event)
        progress(stage, done, total)
    return forward


# ------------------------------------------------------------------------------------ failure points


def _fp_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.failure_points.model import FailurePointConfig
    from app import failure_jobs

    config = FailurePointConfig(epochs=options["epochs"])
    if options["with_text"]:
        config = replace(config, use_text=True, text_dropout=0.3)  # 0.3: the best text dropout on validation
    summary = failure_jobs.fit(inputs, out, config=config, progress=_stages(progress))
    _mark_held_out(out, options["hold_out"])
    return summary


def _fp_score(turns: list[dict], options: dict, checkpoint: Path, progress):
    from app import failure_jobs

    return failure_jobs.candidates(turns, checkpoint, progress=progress)


register(Family(
    name="failure-points", title="Failure points", page="failures",
    description="Where a defective turn failed first and irrecoverably (ASR, NLU, entity resolution, skill, "
                "TTS, ...): a dialogue Transformer over production fields, trained on gold_failure_point.",
    options=(Option("epochs", int, 12, "training epochs", low=1, high=200),
             Option("with_text", bool, False, "also read the texts (MiniLM vectors); off by default: on dev-split "
                                              "validation the text-reading models scored lower"),
             _REVIEWED, _HOLD_OUT),
    read_train=_fp_read_train, train=_fp_train, read_score=_fp_read_score, score=_fp_score,
    read_evaluate=_read_heldout,
    evaluate=_evaluate_with("analysis.failure_points.evaluation:evaluate_heldout",
                            "analysis.failure_points.model:FailurePointClassifier"),
    describe=lambda action, result: _describe(action, result, "failure_point"),
))


# --------------------------------------------------------------------------------------------- labels


def _lb_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.labels.model import LabelConfig
    from app import label_jobs

    config = LabelConfig(epochs=options["epochs"], pretrain_epochs=options["pretrain_epochs"])
    summary = label_jobs.fit(inputs, out, config=config, progress=_stages(progress))
    _mark_held_out(out, options["hold_out"])
    return summary


def _lb_score(turns: list[dict], options: dict, checkpoint: Path, progress):
    from app import label_jobs

    return label_jobs.candidates(turns, checkpoint, progress=_stages(progress))


register(Family(
    name="labels", title="Label generation", page="labels",
    description="Intent, slots, goal start, goal success and defect for every turn: a dialogue Transformer "
                "with swapped-response pretraining, trained on the log's gold labels.",
    options=(Option("epochs", int, 10, "fine-tuning epochs", low=1, high=200),
             Option("pretrain_epochs", int, 3, "swapped-response pretraining epochs (0: none)", low=0, high=100),
             _REVIEWED, _HOLD_OUT),
    read_train=_lb_read_train, train=_lb_train, read_score=_lb_read_score, score=_lb_score,
    read_evaluate=_read_heldout,
    evaluate=_evaluate_with("analysis.labels.evaluation:evaluate_heldout", "analysis.labels.model:LabelModel"),
    describe=lambda action, result: _describe(action, result, "label"),
))


# --------------------------------------------------------------------------------------------- skills


def _sk_read(conn, dataset: str, options: dict) -> dict:
    """The router learns from, and proposes pseudo-labels for, the same turns (its training dynamics are the
    proposals): with hold out, both are the dataset without its held-out dialogues."""
    from app import skill_jobs

    inputs = skill_jobs.inputs(conn, dataset)
    return {**inputs, "turns": _train_part(inputs["turns"], options.get("hold_out", True))}


def _sk_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.skills.model import RoutingConfig
    from app import skill_jobs

    config = RoutingConfig(epochs=options["epochs"], pseudo_labels=options["pseudo_labels"],
                           negative_feedback=options["negative_feedback"], self_distill=options["self_distill"])
    summary = skill_jobs.fit(inputs, out, config=config, progress=_stages(progress))
    _mark_held_out(out, options["hold_out"])
    return summary


def _sk_score(inputs: dict, options: dict, checkpoint: Path, progress):
    from app import skill_jobs

    progress("proposing", 0, None)
    return skill_jobs.candidates(inputs, checkpoint)


register(Family(
    name="skills", title="Skill routing", page="skills",
    description="A skill router that learns from logged routings: pseudo-labels from its training dynamics, "
                "negative feedback from failed turns, self-distillation; its pseudo-labels become candidates.",
    options=(Option("epochs", int, 8, "shortlister and re-ranker epochs", low=1, high=200),
             Option("pseudo_labels", bool, True, "train with the pseudo-labels the dynamics propose"),
             Option("negative_feedback", bool, True, "penalise failed (request, skill) pairs"),
             Option("self_distill", bool, False, "moving averages of earlier epochs as soft targets"),
             replace(_HOLD_OUT, actions=("train", "score"),
                     help="keep a fifth of the dialogues out of training (and so out of the pseudo-labels, "
                          "which come from training), for the quick evaluation; score with the same setting")),
    read_train=_sk_read, train=_sk_train, read_score=_sk_read, score=_sk_score,
    read_evaluate=_read_heldout,
    evaluate=_evaluate_with("analysis.skills.evaluation:evaluate_heldout", "analysis.skills.model:SkillRouter"),
    describe=lambda action, result: _describe(action, result, "skill"),
))


def _describe(action: str, result, what: str) -> str:
    if action == "train":
        return f"trained on {result.get('turns', result.get('examples', 0)):,} turns"
    if action == "score":
        return f"{result:,} {what} candidates"
    name, metric = next(iter(result.metrics.items()), ("", None))
    shown = f": {name} {metric.value:.3f} [{metric.low:.3f}, {metric.high:.3f}]" if metric is not None else ""
    return f"evaluated on {result.n_items:,} held-out items{shown}"
