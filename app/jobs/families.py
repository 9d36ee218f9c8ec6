"""The built-in model families: failure points, labels and skills, each as one registry entry over its job
module (app/failure_jobs.py, app/label_jobs.py, app/skill_jobs.py hold the store <-> analysis code).

Training from the app (and `make run`) holds out a fifth of the dataset's dialogues (analysis.holdout), so
the quick evaluation that follows measures the model on dialogues it never saw.
"""

from __future__ import annotations

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


def _stage(progress, stage: str):
    """A family's (done, total) callback as the registry's progress(stage, done, total)."""
    return lambda done, total: progress(stage, done, total)


def _stages(progress):
    """A family's (done, total) or (stage, done, total) callback as progress(stage, done, total)."""
    def forward(*event):
        stage, done, total = event if len(event) == 3 else ("training", *event)
        progress(stage, done, total)
    return forward


# ------------------------------------------------------------------------------------ failure points


def _fp_read_train(conn, dataset: str, options: dict) -> dict:
    from app import failure_jobs

    inputs = failure_jobs.train_inputs(conn, dataset, with_reviewed=options["with_reviewed"])
    return {**inputs, "turns": _train_part(inputs["turns"], options["hold_out"])}


def _fp_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.failure_points import FailurePointConfig
    from app import failure_jobs

    config = FailurePointConfig(epochs=options["epochs"])
    if options["with_text"]:
        config = replace(config, use_text=True, text_dropout=0.3)  # 0.3: the best text dropout on validation
    return failure_jobs.fit(inputs, out, config=config, progress=_stages(progress))


def _fp_read_score(conn, dataset: str, options: dict) -> list[dict]:
    from app import failure_jobs

    return failure_jobs.score_inputs(conn, dataset)


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
    describe=lambda action, result: (f"trained on {result['turns']:,} turns" if action == "train" else
                                     f"{result:,} failure_point candidates"),
))


# --------------------------------------------------------------------------------------------- labels


def _lb_read_train(conn, dataset: str, options: dict) -> dict:
    from app import label_jobs

    inputs = label_jobs.train_inputs(conn, dataset, with_reviewed=options["with_reviewed"])
    return {**inputs, "turns": _train_part(inputs["turns"], options["hold_out"])}


def _lb_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.label_model import LabelConfig
    from app import label_jobs

    config = LabelConfig(epochs=options["epochs"], pretrain_epochs=options["pretrain_epochs"])
    return label_jobs.fit(inputs, out, config=config, progress=_stages(progress))


def _lb_read_score(conn, dataset: str, options: dict) -> list[dict]:
    from app import label_jobs

    return label_jobs.score_inputs(conn, dataset)


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
    describe=lambda action, result: (f"trained on {result['turns']:,} turns" if action == "train" else
                                     f"{result:,} label candidates"),
))


# --------------------------------------------------------------------------------------------- skills


def _sk_read(conn, dataset: str, options: dict) -> dict:
    from app import skill_jobs

    return skill_jobs.inputs(conn, dataset)


def _sk_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    from analysis.skill_routing import RoutingConfig
    from app import skill_jobs

    config = RoutingConfig(epochs=options["epochs"], pseudo_labels=options["pseudo_labels"],
                           negative_feedback=options["negative_feedback"], self_distill=options["self_distill"])
    return skill_jobs.fit(inputs, out, config=config, progress=_stages(progress))


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
             Option("self_distill", bool, False, "moving averages of earlier epochs as soft targets")),
    # Pseudo-labels come from the training dynamics of the very dataset they label: no held-out part here.
    read_train=_sk_read, train=_sk_train, read_score=_sk_read, score=_sk_score,
    describe=lambda action, result: (f"trained on {result['examples']:,} routed turns" if action == "train" else
                                     f"{result:,} skill candidates"),
))
