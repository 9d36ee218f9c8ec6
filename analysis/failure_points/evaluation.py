"""Metrics for failure-point attribution: confusion matrix, per-class precision/recall/F1, macro-F1 over a
chosen label subset, and cluster-bootstrap confidence intervals.

Conventions (those of sklearn with zero_division=0): rows of a confusion matrix are gold labels, columns
predictions; a precision, recall or F1 with a zero denominator is 0. Bootstrap intervals are percentile
intervals over ``n_boot`` replicates that resample whole groups (``groups``: e.g. dialogue ids, because the
turns of a dialogue are not independent: a failed turn is followed by a rephrase) with replacement; without
groups every row is its own group, i.e. turns are resampled.

``evaluate_heldout`` is the quick evaluation of a trained model on a dataset's held-out dialogues
(analysis/holdout.py), returned as an ``analysis.evaluation.Evaluation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from analysis.evaluation import (
    HELDOUT,
    Evaluation,
    Metric,
    heldout_header,
    metric_table,
    production_view,
    require_turns,
    turns_fingerprint,
)
from analysis.failure_points.model import LABEL_INDEX, LABELS, build_examples


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], *, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) int64 counts; entry [g, p] = rows with gold g predicted p."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of equal length, got {t.shape} and {p.shape}")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_labels):
        raise ValueError(f"labels must be in 0..{n_labels - 1}")
    return np.bincount(t * n_labels + p, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def prf_from_confusion(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (precision, recall, f1, support) from a confusion matrix (..., k, k); leading axes (e.g.
    bootstrap replicates) are kept. Zero denominators give 0."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    pred, gold = conf.sum(axis=-2), conf.sum(axis=-1)
    precision, recall = _safe_div(tp, pred), _safe_div(tp, gold)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return precision, recall, f1, gold


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], *, labels: Sequence[int]) -> float:
    """Unweighted mean F1 over ``labels`` (label indices), in [0, 1]; higher is better. Predictions of a
    label outside ``labels`` still count as errors (they lower the gold class's recall)."""
    labels = list(labels)
    if not labels:
        raise ValueError("labels must not be empty")
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n = int(max(t.max(initial=0), p.max(initial=0), max(labels))) + 1
    _, _, f1, _ = prf_from_confusion(confusion_matrix(t, p, n_labels=n))
    return float(f1[labels].mean())


@dataclass(frozen=True)
class ClassScore:
    """One class: point estimates and (low, high) bootstrap intervals."""

    label: str
    support: int
    precision: float
    recall: float
    f1: float
    precision_ci: tuple[float, float]
    recall_ci: tuple[float, float]
    f1_ci: tuple[float, float]


@dataclass(frozen=True)
class Report:
    """Per-class scores over ``labels``, their macro-F1 with an interval, and the full confusion matrix."""

    classes: tuple[ClassScore, ...]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    accuracy: float
    confusion: np.ndarray  # over all label_names, rows gold, columns predicted
    n: int
    n_groups: int
    n_boot: int
    resampled: str  # "dialogues" (groups given) or "turns"
    accuracy_ci: tuple[float, float] = (float("nan"), float("nan"))


def evaluate(y_true: Sequence[int], y_pred: Sequence[int], *, label_names: Sequence[str],
             labels: Sequence[int] | None = None, groups: Sequence[object] | None = None,
             n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Report:
    """Per-class P/R/F1 and macro-F1 over ``labels`` (default: all), with cluster-bootstrap intervals.

    y_true, y_pred: label indices into ``label_names`` (predictions over the full label set; restrict the
    ROWS beforehand, e.g. to turns whose gold label is real). groups: one cluster id per row (dialogue id);
    replicates resample clusters with replacement (None: resample rows). Deterministic for ``seed``.
    """
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    k = len(label_names)
    labels = list(range(k)) if labels is None else list(labels)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    conf = confusion_matrix(t, p, n_labels=k)
    precision, recall, f1, support = prf_from_confusion(conf)
    if groups is None:
        group_idx, resampled = np.arange(len(t)), "turns"
    else:
        if len(groups) != len(t):
            raise ValueError(f"groups must have one entry per row ({len(t)}), got {len(groups)}")
        _, group_idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        resampled = "dialogues"
    n_groups = int(group_idx.max()) + 1 if len(t) else 0
    # One small confusion matrix per group; a replicate's matrix is the count-weighted sum over groups.
    per_group = np.zeros((n_groups, k * k))
    np.add.at(per_group, (group_idx, t * k + p), 1.0)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    nan2 = (float("nan"), float("nan"))
    if n_boot and n_groups:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(np.float64)
        boot = (counts @ per_group).reshape(n_boot, k, k)
        bp, br, bf, _ = prf_from_confusion(boot)
        bmacro = bf[:, labels].mean(axis=1)
        # a replicate of whole dialogues has its own number of turns (every group has at least one)
        bacc = np.trace(boot, axis1=1, axis2=2) / boot.sum(axis=(1, 2))

        def ci(a: np.ndarray) -> tuple[float, float]:
            return (float(np.quantile(a, lo_q)), float(np.quantile(a, hi_q)))
    else:
        bp = br = bf = np.zeros((0, k))
        bmacro = bacc = np.zeros(0)

        def ci(a: np.ndarray) -> tuple[float, float]:
            return nan2
    classes = tuple(ClassScore(label=label_names[c], support=int(support[c]), precision=float(precision[c]),
                               recall=float(recall[c]), f1=float(f1[c]), precision_ci=ci(bp[:, c]),
                               recall_ci=ci(br[:, c]), f1_ci=ci(bf[:, c])) for c in labels)
    return Report(classes=classes, macro_f1=float(f1[labels].mean()), macro_f1_ci=ci(bmacro),
                  accuracy=float(np.trace(conf) / max(len(t), 1)), confusion=conf, n=len(t),
                  n_groups=n_groups, n_boot=n_boot, resampled=resampled, accuracy_ci=ci(bacc))


# ---------------------------------------------------------------- the quick evaluation of a trained model

def evaluate_heldout(turns: Sequence[dict], model, embed, *, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95, kind: str = HELDOUT) -> Evaluation:
    """The failure-point model (a loaded ``FailurePointClassifier``) measured on held-out turns.

    turns: v1 turn dicts with their gold fields (``store.list_turn_records``), e.g. the held-out dialogues of
    ``analysis.holdout.split_turns``. The model reads ``production_view`` of them only; gold_failure_point is
    the target, and turns without one (or with one outside LABELS) are not scored. embed: the texts' vector
    function (``list[str] -> (n, d)``). Returns accuracy and macro-F1 (over the failure points present in
    these turns' gold labels, sklearn's zero_division=0 per class) with dialogue-bootstrap intervals, per-class
    F1, and the same two figures for the majority-class baseline: always predicting the most frequent gold
    label of these turns, the best any constant prediction can do on them (so it flatters the baseline).
    Higher is better. ValueError when there are no turns or none has a gold failure point."""
    turns = require_turns(turns, "the failure-point model")
    gold = {(str(t["dialogue_id"]), int(t["turn_index"])): t.get("gold_failure_point") for t in turns}
    examples = [ex for ex in build_examples(production_view(turns)) if gold[ex.key] in LABEL_INDEX]
    if not examples:
        raise ValueError(f"none of the {len(turns):,} held-out turns has a gold_failure_point to evaluate against")
    y = np.array([LABEL_INDEX[gold[ex.key]] for ex in examples], dtype=np.int64)
    pred = model.predict_proba(examples, embed=embed).argmax(axis=1)
    groups = [ex.dialogue_id for ex in examples]
    present = sorted(set(y.tolist()))
    majority = int(np.bincount(y).argmax())
    # the same seed draws the same replicates for the model and the baseline (paired resamples)
    report, base = (evaluate(y, p, label_names=LABELS, labels=present, groups=groups, n_boot=n_boot,
                             confidence=confidence, seed=seed) for p in (pred, np.full_like(y, majority)))
    metrics = {"accuracy": Metric(report.accuracy, *report.accuracy_ci),
               "macro_f1": Metric(report.macro_f1, *report.macro_f1_ci),
               "baseline.majority.accuracy": Metric(base.accuracy, *base.accuracy_ci),
               "baseline.majority.macro_f1": Metric(base.macro_f1, *base.macro_f1_ci)}
    metrics.update({f"f1.{c.label}": Metric(c.f1, *c.f1_ci) for c in report.classes})
    lines = heldout_header("Failure points: quick evaluation", n_items=len(y), n_dialogues=report.n_groups,
                           item="turns with a gold failure point", n_boot=n_boot, confidence=confidence, kind=kind)
    lines += [f"Macro-F1 is over the {len(present)} failure points present in these turns' gold labels. The "
              f"baseline always predicts {LABELS[majority]}, the most frequent of them (the best any constant "
              "prediction can do on these turns).", "", *metric_table(metrics, confidence=confidence), "",
              "| failure point | support | precision | recall | F1 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c.label} | {c.support:,} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |"
              for c in report.classes]
    config = {"model": asdict(model.config), "trained_on": model.fingerprint, "n_boot": n_boot, "seed": seed,
              "confidence": confidence, "labels": [LABELS[i] for i in present], "baseline": LABELS[majority]}
    return Evaluation(family="failure-points", kind=kind, metrics=metrics, markdown="\n".join(lines) + "\n",
                      data_fingerprint=turns_fingerprint(turns), config=config, n_items=len(y))
