"""Evaluation maths for the label-generation model (METHODS.md section 1): turn labels for intent, slots,
goal boundaries and goal success, predicted from dialogue context.

- Precision vs coverage: the labels whose confidence is at least a threshold are accepted automatically;
  the curve gives, for every threshold, how many labels are accepted and what fraction of them is correct.
- Slots are compared as sets of (type, normalised value) spans per turn; BIO helpers convert between slot
  lists and a token tagger's tags.
- ``evaluate_heldout`` is the quick evaluation of a trained label model on a dataset's held-out dialogues
  (analysis/holdout.py), returned as an ``analysis.evaluation.Evaluation``.
- Reports give point estimates with cluster-bootstrap percentile intervals that resample whole groups
  (dialogues) with replacement, as ``analysis.failure_points.evaluation`` does: per-group sufficient statistics (counts)
  times multinomial resample counts, so a replicate's totals are one matrix product. Without groups every
  row is its own group (turns are resampled). Deterministic for ``seed``.

Conventions (they differ from ``failure_eval``, which follows sklearn's zero_division=0): a ratio with a zero
denominator is undefined and is NaN, not 0: precision with no predicted positives, recall with no gold
positives. F1 is 2tp / (2tp + fp + fn), NaN only when there are no positives at all, gold or predicted.
Bootstrap replicates in which a metric is undefined are left out of its interval (the interval is then
conditional on the metric being defined). An interval is (NaN, NaN) when ``n_boot`` is 0, when there are
fewer than 2 groups (one cluster says nothing about between-dialogue variability) or when no replicate
defines the metric. A report on no rows raises ValueError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

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

Slot = Mapping[str, object]
Interval = tuple[float, float]
_NAN2: Interval = (float("nan"), float("nan"))
_BOOT_CELLS = 4_000_000  # resample counts (replicates x groups) held in memory at once


def _as_bool(x: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {a.shape}")
    if a.dtype != bool:
        if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1)")
        a = a.astype(bool)
    return a


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)


# --- precision vs coverage -------------------------------------------------------------------------------

def precision_coverage(correct: Sequence[bool] | np.ndarray, confidence: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """The precision-coverage curve: one row per distinct confidence value t, in descending order of t.

    For threshold t the accepted labels are those with confidence >= t (all labels sharing a confidence
    enter together): ``labelled`` = their count, ``coverage`` = labelled / n (n = all labels),
    ``precision`` = correct among them / labelled. Columns: threshold, labelled, coverage, precision.
    No labels give an empty frame; a NaN confidence raises ValueError.
    """
    ok = _as_bool(correct, "correct")
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.shape != ok.shape:
        raise ValueError(f"correct and confidence must have equal length, got {ok.shape} and {conf.shape}")
    if np.isnan(conf).any():
        raise ValueError("confidence must not be NaN")
    order = np.argsort(-conf, kind="stable")
    c, hits = conf[order], np.cumsum(ok[order])
    last = np.flatnonzero(np.append(c[1:] != c[:-1], True)) if len(c) else np.zeros(0, dtype=np.int64)
    labelled = last + 1
    return pd.DataFrame({"threshold": c[last], "labelled": labelled, "coverage": labelled / max(len(c), 1),
                         "precision": hits[last] / labelled})


def threshold_for_precision(curve: pd.DataFrame, target: float) -> pd.Series | None:
    """The row of ``curve`` (from ``precision_coverage``) with the LARGEST coverage, i.e. the lowest
    threshold, among rows whose precision is >= ``target``; None if no row reaches it. Precision need not
    fall monotonically as the threshold drops, so rows with higher thresholds may be below the target."""
    ok = curve[curve["precision"] >= target]
    return None if ok.empty else ok.loc[ok["coverage"].idxmax()]


def coverage_at_precision(correct: Sequence[bool] | np.ndarray, confidence: Sequence[float] | np.ndarray,
                          target: float) -> float:
    """The coverage of ``threshold_for_precision`` on the curve of these labels; 0.0 if none reaches it."""
    row = threshold_for_precision(precision_coverage(correct, confidence), target)
    return 0.0 if row is None else float(row["coverage"])


def split_at(confidence: Sequence[float] | np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(auto_accept, review) boolean masks: confidence >= threshold, and the rest (NaN goes to review)."""
    accept = np.asarray(confidence, dtype=np.float64) >= threshold
    return accept, ~accept


# --- slots -----------------------------------------------------------------------------------------------

def _norm(value: object) -> str:
    return " ".join(str(value).lower().split())


def slot_set(slots: Sequence[Slot]) -> frozenset[tuple[str, str]]:
    """The turn's slots as a set of (type, value) with the value lowercased, whitespace runs collapsed to
    one space and stripped; the type is kept as is. Duplicates collapse. A slot without type or value
    raises ValueError."""
    try:
        return frozenset((str(s["type"]), _norm(s["value"])) for s in slots)
    except KeyError as e:
        raise ValueError(f"every slot needs 'type' and 'value'; missing {e}") from None


def _slot_counts(gold: Sequence[Sequence[Slot]], pred: Sequence[Sequence[Slot]]) -> np.ndarray:
    """(n_turns, 3) float array of per-turn span tp, fp, fn."""
    if len(gold) != len(pred):
        raise ValueError(f"gold and pred must have one entry per turn, got {len(gold)} and {len(pred)}")
    out = np.zeros((len(gold), 3))
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        gs, ps = slot_set(g), slot_set(p)
        tp = len(gs & ps)
        out[i] = tp, len(ps) - tp, len(gs) - tp
    return out


def slot_prf(gold: Sequence[Sequence[Slot]], pred: Sequence[Sequence[Slot]]
             ) -> tuple[float, float, float, int, int, int]:
    """Span-level micro (precision, recall, f1, tp, fp, fn) over turns: per turn, a predicted (type, value)
    of ``slot_set`` is a tp if it is in the gold set, else an fp; gold spans not predicted are fns.
    Undefined ratios are NaN (module conventions)."""
    tp, fp, fn = _slot_counts(gold, pred).sum(axis=0)
    p, r, f1 = _prf(tp, fp, fn)
    return float(p), float(r), float(f1), int(tp), int(fp), int(fn)


def bio_tags(tokens: Sequence[str], slots: Sequence[Slot]) -> list[str]:
    """BIO tags ("O", "B-<type>", "I-<type>") for ``tokens``. Slots are placed in order: a slot's value,
    split on whitespace, is matched case-insensitively against the tokens at its first occurrence none of
    whose tokens is already tagged; a value with no such occurrence (not in the tokens, e.g. misrecognised
    by ASR, or overlapping an earlier slot everywhere) or an empty value is skipped."""
    low = [t.lower() for t in tokens]
    tags = ["O"] * len(tokens)
    for s in slots:
        words = str(s["value"]).lower().split()
        m = len(words)
        for i in range(len(low) - m + 1 if m else 0):
            if low[i:i + m] == words and all(t == "O" for t in tags[i:i + m]):
                tags[i:i + m] = [f"B-{s['type']}"] + [f"I-{s['type']}"] * (m - 1)
                break
    return tags


def spans_from_bio(tokens: Sequence[str], tags: Sequence[str]) -> list[dict[str, str]]:
    """Slots [{"type", "value"}] from BIO tags, in token order; value = the span's tokens joined by single
    spaces. "I-x" continues a span only directly after a "B-x"/"I-x" token; otherwise it starts a new span
    of type x. A tag that is not "O", "B-<type>" or "I-<type>" raises ValueError."""
    if len(tokens) != len(tags):
        raise ValueError(f"tokens and tags must have equal length, got {len(tokens)} and {len(tags)}")
    spans: list[dict[str, str]] = []
    current: str | None = None
    for tok, tag in zip(tokens, tags, strict=True):
        if tag == "O":
            current = None
            continue
        prefix, typ = tag[:2], tag[2:]
        if prefix not in ("B-", "I-") or not typ:
            raise ValueError(f"bad BIO tag {tag!r}")
        if prefix == "I-" and current == typ:
            spans[-1]["value"] += " " + tok
        else:
            spans.append({"type": typ, "value": tok})
            current = typ
    return spans


# --- goal boundaries ------------------------------------------------------------------------------------

def _boundary_rows(gold_start, pred_start, first_turn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g, p, f = (_as_bool(a, n) for a, n in ((gold_start, "gold_start"), (pred_start, "pred_start"),
                                            (first_turn, "first_turn")))
    if not len(g) == len(p) == len(f):
        raise ValueError(f"inputs must have equal length, got {len(g)}, {len(p)} and {len(f)}")
    return g[~f], p[~f], ~f


def boundary_prf(gold_start: Sequence[bool] | np.ndarray, pred_start: Sequence[bool] | np.ndarray,
                 first_turn: Sequence[bool] | np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, f1) of "this turn starts a new goal" over the turns that are NOT the first turn
    of their dialogue: a first turn always starts a goal, so counting it would only inflate the scores.
    Undefined ratios are NaN (module conventions)."""
    g, p, _ = _boundary_rows(gold_start, pred_start, first_turn)
    precision, recall, f1 = _prf(np.sum(g & p), np.sum(~g & p), np.sum(g & ~p))
    return float(precision), float(recall), float(f1)


# --- reports with cluster-bootstrap intervals ---------------------------------------------------------------

def _group_sums(idx: np.ndarray, n_groups: int, n_stats: int, cols: Sequence[np.ndarray],
                weights: Sequence[np.ndarray]) -> np.ndarray:
    """(n_groups, n_stats): row i adds weights[j][i] to statistic cols[j][i] of its group idx[i]."""
    flat = np.concatenate([idx * n_stats + c for c in cols])
    return np.bincount(flat, weights=np.concatenate(weights), minlength=n_groups * n_stats
                       ).reshape(n_groups, n_stats)


def _report(n: int, groups: Sequence[object] | None, stats: Callable[[np.ndarray, int], np.ndarray],
            metrics: Callable[[np.ndarray], dict[str, np.ndarray]], n_boot: int, seed: int,
            confidence: float) -> dict:
    """Point metrics of the summed statistics and percentile intervals over ``n_boot`` replicates, each
    drawing n_groups groups with replacement (multinomial counts) and summing their statistics."""
    if n == 0:
        raise ValueError("no rows to evaluate")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if groups is None:
        idx = np.arange(n)
    elif len(groups) != n:
        raise ValueError(f"groups must have one entry per row ({n}), got {len(groups)}")
    else:
        _, idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_groups = int(idx.max()) + 1
    per_group = stats(idx.ravel(), n_groups)
    point = metrics(per_group.sum(axis=0))
    reps = None
    if n_boot and n_groups >= 2:
        rng, step = np.random.default_rng(seed), max(1, _BOOT_CELLS // n_groups)
        pvals = np.full(n_groups, 1.0 / n_groups)
        reps = metrics(np.concatenate([rng.multinomial(n_groups, pvals, size=min(step, n_boot - s)) @ per_group
                                       for s in range(0, n_boot, step)]))
    lo_q = (1.0 - confidence) / 2
    out: dict = {}
    for name, value in point.items():
        out[name] = float(value)
        r = None if reps is None else reps[name][~np.isnan(reps[name])]
        out[f"{name}_ci"] = _NAN2 if r is None or not r.size else (float(np.quantile(r, lo_q)),
                                                                   float(np.quantile(r, 1.0 - lo_q)))
    out.update(n=n, n_groups=n_groups, n_boot=n_boot, resampled="turns" if groups is None else "dialogues")
    return out


def cluster_bootstrap(n: int, groups: Sequence[object] | None, stat_cols: Sequence[np.ndarray], n_stats: int,
                      metrics: Callable[[np.ndarray], dict[str, np.ndarray]], *, n_boot: int = 1000,
                      seed: int = 0, confidence: float = 0.95) -> dict:
    """Metrics of summed per-row statistics with a bootstrap over ``groups`` (None: rows), for callers
    outside this module. stat_cols: arrays of one statistic index (0..n_stats-1) per row, -1 adding
    nothing; each row adds 1 to each statistic it names. metrics maps (..., n_stats) sums to arrays."""
    cols = [np.asarray(c, dtype=np.int64) for c in stat_cols]

    def stats(idx: np.ndarray, n_groups: int) -> np.ndarray:
        flat = np.concatenate([idx[c >= 0] * n_stats + c[c >= 0] for c in cols])
        return np.bincount(flat, minlength=n_groups * n_stats).reshape(n_groups, n_stats).astype(np.float64)

    return _report(n, groups, stats, metrics, n_boot, seed, confidence)


def _binary_metrics(s: np.ndarray) -> dict[str, np.ndarray]:  # s[..., (tn, fp, fn, tp)]
    tn, fp, fn, tp = np.moveaxis(s, -1, 0)
    p, r, f1 = _prf(tp, fp, fn)
    return {"accuracy": _div(tp + tn, tn + fp + fn + tp), "precision": p, "recall": r, "f1": f1}


def binary_report(y_true: Sequence[bool] | np.ndarray, y_pred: Sequence[bool] | np.ndarray,
                  groups: Sequence[object] | None = None, *, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict:
    """Accuracy, precision, recall and F1 (positive class True), each with ``<name>_ci`` = (low, high)
    percentile interval from resampling ``groups`` (dialogue ids; None: turns); plus tp, fp, fn, tn, n,
    n_groups, n_boot, resampled. E.g. goal success per goal, or turn defect per turn."""
    t, p = _as_bool(y_true, "y_true"), _as_bool(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred must have equal length, got {len(t)} and {len(p)}")
    cell = 2 * t.astype(np.int64) + p  # 0 tn, 1 fp, 2 fn, 3 tp
    out = _report(len(t), groups, lambda idx, g: _group_sums(idx, g, 4, [cell], [np.ones(len(t))]),
                  _binary_metrics, n_boot, seed, confidence)
    out.update(zip(("tn", "fp", "fn", "tp"), (int(c) for c in np.bincount(cell, minlength=4)), strict=True))
    return out


def boundary_report(gold_start: Sequence[bool] | np.ndarray, pred_start: Sequence[bool] | np.ndarray,
                    first_turn: Sequence[bool] | np.ndarray, groups: Sequence[object] | None = None, *,
                    n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """``binary_report`` of goal starts over the turns that are not first in their dialogue (as
    ``boundary_prf``); groups are per turn (all turns) and filtered alike. Only first turns: ValueError."""
    g, p, keep = _boundary_rows(gold_start, pred_start, first_turn)
    if groups is not None:
        if len(groups) != len(keep):
            raise ValueError(f"groups must have one entry per turn ({len(keep)}), got {len(groups)}")
        groups = np.asarray(groups, dtype=object)[keep]
    return binary_report(g, p, groups, n_boot=n_boot, seed=seed, confidence=confidence)


def intent_report(y_true: Sequence[str], y_pred: Sequence[str], groups: Sequence[object] | None = None, *,
                  n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Accuracy and macro-F1 with intervals (as ``binary_report``). Macro-F1 is the unweighted mean of
    per-class F1 = 2tp / (gold + predicted) over the classes present in the gold labels (in a replicate:
    present in that replicate's gold); predictions of other classes count as errors. Labels compare as
    strings. Also n_classes (gold classes present)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must have equal length, got {len(y_true)} and {len(y_pred)}")
    labels = np.asarray(list(y_true) + list(y_pred), dtype=object).astype(str)
    classes, codes = np.unique(labels, return_inverse=True)
    t, p, k = codes[:len(y_true)], codes[len(y_true):], len(classes)
    eq, ones = (t == p).astype(np.float64), np.ones(len(t))

    def metrics(s: np.ndarray) -> dict[str, np.ndarray]:  # s[..., tp(k) gold(k) pred(k) correct]
        tp, gold, pred = s[..., :k], s[..., k:2 * k], s[..., 2 * k:3 * k]
        f1 = np.where(gold > 0, _div(2 * tp, gold + pred), 0.0)
        return {"accuracy": _div(s[..., -1], gold.sum(-1)), "macro_f1": _div(f1.sum(-1), (gold > 0).sum(-1))}

    out = _report(len(t), groups, lambda idx, g: _group_sums(
        idx, g, 3 * k + 1, [t, k + t, 2 * k + p, np.full(len(t), 3 * k)], [eq, ones, ones, eq]),
        metrics, n_boot, seed, confidence)
    out["n_classes"] = len(np.unique(t))
    return out


def slot_report(gold: Sequence[Sequence[Slot]], pred: Sequence[Sequence[Slot]],
                groups: Sequence[object] | None = None, *, n_boot: int = 1000, seed: int = 0,
                confidence: float = 0.95) -> dict:
    """``slot_prf``'s precision, recall and F1 with intervals (as ``binary_report``): each replicate sums the
    resampled dialogues' span tp, fp and fn. Also the totals tp, fp, fn."""
    c = _slot_counts(gold, pred)
    z = np.zeros(len(c), dtype=np.int64)
    out = _report(len(c), groups, lambda idx, g: _group_sums(idx, g, 3, [z, z + 1, z + 2], list(c.T)),
                  lambda s: dict(zip(("precision", "recall", "f1"), _prf(*np.moveaxis(s, -1, 0)), strict=True)),
                  n_boot, seed, confidence)
    out.update(zip(("tp", "fp", "fn"), (int(x) for x in c.sum(axis=0)), strict=True))
    return out


# --- candidates against the log's gold labels (the Label generation page) ------------------------------

def candidate_correct(task: str, value: str, gold: str | None) -> bool | None:
    """Whether a candidate's proposed ``value`` equals the ``gold`` label; None when there is no gold.

    Both are JSON texts (a candidate's value as stored; the log's gold field as JSON): for ``intent`` a
    string (compared exactly), for ``slots`` a list of {"type", "value"} (compared as ``slot_set``), for the
    binary tasks (goal_start, goal_success, defect) true/false. Another task raises ValueError."""
    if task not in ("intent", "slots", "goal_start", "goal_success", "defect"):
        raise ValueError(f"no gold comparison for task {task!r}")
    if gold is None:
        return None
    v, g = json.loads(value), json.loads(gold)
    if g is None:
        return None
    if task == "slots":
        return slot_set(v) == slot_set(g)
    if task == "intent":
        return str(v) == str(g)
    return bool(v) == bool(g)


def candidates_correct(task: str, values: Sequence[str], golds: Sequence[str | None]) -> np.ndarray:
    """``candidate_correct`` per candidate as a float array: 1.0 right, 0.0 wrong, NaN without gold."""
    if len(values) != len(golds):
        raise ValueError(f"values and golds must have equal length, got {len(values)} and {len(golds)}")
    out = [candidate_correct(task, v, g) for v, g in zip(values, golds, strict=True)]
    return np.array([np.nan if c is None else float(c) for c in out], dtype=np.float64)


def point_at(correct: Sequence[bool] | np.ndarray, confidence: Sequence[float] | np.ndarray,
             threshold: float) -> tuple[int, float, float]:
    """(labelled, coverage, precision) of the labels with confidence >= threshold (``split_at``): their
    count, its share of all labels (NaN with no labels) and the share of them that is correct (NaN when
    none is labelled). On the curve of ``precision_coverage`` this is the row of the lowest threshold
    that is >= ``threshold``."""
    ok = _as_bool(correct, "correct")
    accept, _ = split_at(confidence, threshold)
    if accept.shape != ok.shape:
        raise ValueError(f"correct and confidence must have equal length, got {ok.shape} and {accept.shape}")
    n = int(accept.sum())
    return n, float(_div(n, len(ok))), float(_div(ok[accept].sum(), n))


def per_intent_at(values: Sequence[str], golds: Sequence[str | None], confidence: Sequence[float] | np.ndarray,
                  threshold: float) -> pd.DataFrame:
    """Per intent, over the candidates that have a gold intent (JSON texts, as ``candidate_correct``), when
    the labels with confidence >= threshold are auto-accepted:

    - ``support``: turns whose gold intent is the class;
    - ``accepted``: auto-accepted labels proposing the class; ``correct``: those whose gold is the class;
    - ``precision`` = correct / accepted (NaN when none is accepted): how often an auto-accepted label of
      this class is right;
    - ``recall`` = correct / support (NaN without support): the share of the class's turns that end up
      auto-accepted with the right label.

    One row per class that is a gold or a proposed intent, by support then accepted (descending), then name."""
    if not len(values) == len(golds) == len(confidence):
        raise ValueError("values, golds and confidence must have equal length")
    keep = [i for i, g in enumerate(golds) if g is not None]
    pred = np.array([str(json.loads(values[i])) for i in keep], dtype=object)
    gold = np.array([str(json.loads(golds[i])) for i in keep], dtype=object)
    accept, _ = split_at(np.asarray(confidence, dtype=np.float64)[keep], threshold)
    frame = pd.DataFrame({"pred": pred, "gold": gold, "accept": accept, "hit": accept & (pred == gold)})
    support = frame.groupby("gold").size()
    accepted = frame[frame["accept"]].groupby("pred").size()
    correct = frame[frame["hit"]].groupby("gold").size()
    out = pd.DataFrame({"support": support, "accepted": accepted, "correct": correct}).fillna(0).astype(np.int64)
    out["precision"] = _div(out["correct"], out["accepted"])
    out["recall"] = _div(out["correct"], out["support"])
    out = out.rename_axis("intent").reset_index()
    return out.sort_values(["support", "accepted", "intent"], ascending=[False, False, True], ignore_index=True)


def flatten_metrics(metrics: Mapping[str, object], prefix: str = "") -> pd.DataFrame:
    """A nested metrics dict (one task of an evaluation report) as rows (metric, value, ci_low, ci_high):
    {"value", "ci": [low, high]} is one row; nested dicts give dotted names; other numbers one row each."""
    rows: list[dict] = []
    for key, item in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and "value" in item:
            low, high = (list(item.get("ci") or [None, None]) + [None, None])[:2]
            rows.append({"metric": name, "value": item["value"], "ci_low": low, "ci_high": high})
        elif isinstance(item, Mapping):
            rows += flatten_metrics(item, f"{name}.").to_dict("records")
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            rows.append({"metric": name, "value": item, "ci_low": None, "ci_high": None})
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high"]).astype(
        {"value": "float64", "ci_low": "float64", "ci_high": "float64"})


def cluster_bootstrap_rows(stats: np.ndarray, groups: Sequence[object] | None,
                           metrics: Callable[[np.ndarray], dict[str, np.ndarray]], *, n_boot: int = 1000,
                           seed: int = 0, confidence: float = 0.95) -> dict:
    """``cluster_bootstrap`` with any per-row statistics: ``stats`` is (n_rows, n_stats), summed per group
    (e.g. a recall share, or a row's tp, fp and fn counts); metrics maps (..., n_stats) sums to arrays."""
    s = np.asarray(stats, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"stats must be (n_rows, n_stats), got shape {s.shape}")

    def per_group(idx: np.ndarray, n_groups: int) -> np.ndarray:
        out = np.zeros((n_groups, s.shape[1]))
        np.add.at(out, idx, s)
        return out

    return _report(len(s), groups, per_group, metrics, n_boot, seed, confidence)


# --- the quick evaluation of a trained label model --------------------------------------------------------

def label_task_reports(records: Sequence[Mapping], pred: Mapping[tuple[str, int], Mapping], *,
                       n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, dict]:
    """Per label task, the report of ``pred`` against the records' gold fields (with intervals, dialogues
    resampled), over the turns whose gold label for the task is known.

    records: v1 turn dicts with gold fields (whole dialogues). pred: per (dialogue_id, turn_index) a dict with
    any of intent (str), slots (list of {"type", "value"}), goal_start, goal_success, defect (bool); a task
    absent from the first prediction is not reported. Reports: intent ``intent_report``; slots
    ``slot_report``; goal_start ``boundary_report`` (turns after the first of their dialogue); goal_success
    ``binary_report`` with one row per gold goal, at its last turn (the success of a goal shows once it is
    over; a goal ends before a turn whose gold_goal_start is true, or with its dialogue); defect
    ``binary_report`` (gold: gold_failure_point is not NO_FAILURE). Each report also has ``n`` (its rows)."""
    from analysis.labels.model import gold_targets  # label_model imports this module: import here, not above

    recs = sorted(records, key=lambda r: (str(r["dialogue_id"]), int(r["turn_index"])))
    keys = [(str(r["dialogue_id"]), int(r["turn_index"])) for r in recs]
    gold = gold_targets(recs)
    first = [i == 0 or keys[i - 1][0] != k[0] for i, k in enumerate(keys)]
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    p0 = pred[keys[0]] if keys else {}
    out: dict[str, dict] = {}

    def rows(task: str, among: Sequence[int] = range(len(keys))) -> list[int]:
        return [i for i in among if getattr(gold, task)[keys[i]] is not None]

    if p0.get("intent") is not None and (r := rows("intent")):
        out["intent"] = intent_report([gold.intent[keys[i]] for i in r], [pred[keys[i]]["intent"] for i in r],
                                      [keys[i][0] for i in r], **common)
    if p0.get("slots") is not None and (r := rows("slots")):
        out["slots"] = slot_report([gold.slots[keys[i]] for i in r], [pred[keys[i]]["slots"] for i in r],
                                   [keys[i][0] for i in r], **common)
    if p0.get("goal_start") is not None and (r := rows("goal_start")) and not all(first[i] for i in r):
        out["goal_start"] = boundary_report([bool(gold.goal_start[keys[i]]) for i in r],
                                            [bool(pred[keys[i]]["goal_start"]) for i in r], [first[i] for i in r],
                                            [keys[i][0] for i in r], **common)
    ends = [i for i in range(len(keys)) if i + 1 == len(keys) or first[i + 1] or gold.goal_start[keys[i + 1]]]
    if p0.get("goal_success") is not None and (r := rows("goal_success", ends)):
        out["goal_success"] = binary_report([bool(gold.goal_success[keys[i]]) for i in r],
                                            [bool(pred[keys[i]]["goal_success"]) for i in r],
                                            [keys[i][0] for i in r], **common)
    if p0.get("defect") is not None and (r := rows("defect")):
        out["defect"] = binary_report([bool(gold.defect[keys[i]]) for i in r],
                                      [bool(pred[keys[i]]["defect"]) for i in r], [keys[i][0] for i in r], **common)
    return out


# the figures each task contributes to the quick evaluation, in order
_TASK_METRICS = {"intent": ("accuracy", "macro_f1"), "slots": ("precision", "recall", "f1"),
                 "goal_start": ("precision", "recall", "f1"), "goal_success": ("accuracy", "f1"),
                 "defect": ("accuracy", "precision", "recall", "f1")}


def evaluate_heldout(turns: Sequence[dict], model, embed: Callable[[list[str]], np.ndarray], *,
                     n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, kind: str = HELDOUT) -> Evaluation:
    """The label model (a loaded ``LabelModel``) measured on held-out turns, as an ``Evaluation``.

    turns: v1 turn dicts with their gold fields (``store.list_turn_records``), whole dialogues, e.g. the
    held-out dialogues of ``analysis.holdout.split_turns``. The model reads ``production_view`` of them only;
    the gold fields are targets. A binary task is predicted True at probability >= 0.5 (as the candidates the
    label job stores). Metrics (``label_task_reports``), named ``<task>.<metric>``: intent accuracy and
    macro-F1, slot span precision / recall / F1, goal-start precision / recall / F1, goal-success accuracy
    and F1, defect accuracy, precision, recall and F1; and the logged NLU output as the baseline for intent
    and slots (``baseline.logged_nlu.*``: production fields, what the assistant already said). Higher is
    better. A task without gold labels in these turns is left out (the report says so). ValueError when
    there are no turns or no task has a gold label."""
    from analysis.labels.model import BINARY_TASKS, build_dialogues  # see label_task_reports

    turns = require_turns(turns, "the label model")
    p = model.predict(build_dialogues(production_view(turns)), embed=embed)
    intents = p.intent()
    pred = {k: {"intent": intents[i], "slots": p.slots[i], **{t: bool(p.binary[t][i] >= 0.5) for t in BINARY_TASKS}}
            for i, k in enumerate(p.keys)}
    logged = {(str(t["dialogue_id"]), int(t["turn_index"])): {
        "intent": str(t.get("nlu_intent")), "slots": [dict(s) for s in (t.get("nlu_slots") or [])]} for t in turns}
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    reports = label_task_reports(turns, pred, **common)
    if not reports:
        raise ValueError(f"none of the {len(turns):,} held-out turns has a gold label (gold_intent, gold_slots, "
                         "gold_goal_start, gold_goal_success or gold_failure_point) to evaluate against")
    base = label_task_reports(turns, logged, **common)
    metrics = {f"{task}.{m}": Metric.of(reports[task], m)
               for task, names in _TASK_METRICS.items() if task in reports for m in names}
    metrics.update({f"baseline.logged_nlu.{task}.{m}": Metric.of(base[task], m)
                    for task, m in (("intent", "accuracy"), ("intent", "macro_f1"), ("slots", "f1")) if task in base})
    missing = [t for t in _TASK_METRICS if t not in reports]
    n_dialogues = len({str(t["dialogue_id"]) for t in turns})
    lines = heldout_header("Label generation: quick evaluation", n_items=len(turns), n_dialogues=n_dialogues,
                           item="turns", n_boot=n_boot, confidence=confidence, kind=kind)
    lines += ["Each task is measured over the turns with its gold label: "
              + ", ".join(f"{t} {reports[t]['n']:,}" for t in reports) + " (goal start: turns after the first of "
              "their dialogue; goal success: one per gold goal, at its last turn). The baseline is the logged NLU "
              "output (its intent and slots, as the assistant recognised them)."
              + (f" Not measured, no gold labels here: {', '.join(missing)}." if missing else ""), "",
              *metric_table(metrics, confidence=confidence)]
    config = {"model": asdict(model.config), "trained_on": model.fingerprint, "n_boot": n_boot, "seed": seed,
              "confidence": confidence, "rows": {t: reports[t]["n"] for t in reports}}
    return Evaluation(family="labels", kind=kind, metrics=metrics, markdown="\n".join(lines) + "\n",
                      data_fingerprint=turns_fingerprint(turns), config=config, n_items=len(turns))
