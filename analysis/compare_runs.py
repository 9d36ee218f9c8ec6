"""Two model runs side by side: which proposals are right against reviewed or gold labels, and the difference in
accuracy between the runs with a paired bootstrap over dialogues, overall, per label and per slice.

An item is a turn both runs proposed a value for (one task). Run A's and run B's proposals are judged on the same
items, so their accuracies are compared *paired*: every bootstrap replicate draws dialogues with replacement and
recomputes both accuracies on the same draw (``analysis.labels.evaluation.cluster_bootstrap_rows``); the
difference's interval then reflects only how the runs differ on the same turns, not how hard the drawn turns are.
Items where either run's correctness is unknown are left out of the comparison, so both accuracies always rest on
the same items. Accuracy is higher-is-better; ``difference`` = accuracy of B - accuracy of A (positive: B better).
Intervals are percentile intervals, (NaN, NaN) with fewer than two dialogues or ``n_boot`` 0; deterministic for
``seed``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.labels.evaluation import candidate_correct, cluster_bootstrap_rows
from analysis.parity import is_simulated

GOLD_TASKS = ("intent", "slots", "goal_start", "goal_success", "defect")  # candidate_correct's tasks
REFERENCES = ("reviewed", "gold")
ALL = "(all)"  # the overall row of a comparison table
NO_REFERENCE = "(no reference value)"  # items judged by a rejection only: right or wrong is known, the truth is not
COLUMNS = ["group", "items", "dialogues", "accuracy_a", "accuracy_b", "difference", "low", "high"]


def same_value(task: str, a: str, b: str) -> bool:
    """Whether two proposed values (JSON texts, as candidates store them) say the same: slots as sets of (type,
    normalised value), intents exactly, the binary tasks as booleans (``candidate_correct``); other tasks as equal
    JSON values."""
    if task in GOLD_TASKS:
        return bool(candidate_correct(task, a, b))
    return json.loads(a) == json.loads(b)


def reviewed_correct(task: str, value: str, verdict: str | None, other_value: str, other_verdict: str | None,
                     other_label: str | None) -> float:
    """Whether a run's proposal is right by the settled review decisions on the two runs' candidates for its turn:
    1.0 right, 0.0 wrong, NaN unknown.

    Its own candidate's settled verdict decides first: accept -> right; correct or reject -> wrong. Without one,
    the other run's settled candidate: accepted or corrected, its label (``other_label``, the JSON text of the
    accepted or corrected value) is the truth and the proposal is right when it says the same (``same_value``);
    rejected, a proposal saying the same as the rejected one is wrong. Otherwise unknown."""
    if verdict == "accept":
        return 1.0
    if verdict in ("correct", "reject"):
        return 0.0
    if other_verdict in ("accept", "correct") and other_label is not None:
        return float(same_value(task, value, other_label))
    if other_verdict == "reject" and same_value(task, value, other_value):
        return 0.0
    return math.nan


def judge_pairs(pairs: pd.DataFrame, task: str, reference: str) -> pd.DataFrame:
    """Both runs' proposals judged on each item.

    pairs: one row per item with ``value_a``, ``value_b`` (JSON texts) and, for ``reference`` "reviewed",
    ``verdict_a``/``label_a`` and ``verdict_b``/``label_b`` (the settled verdict of each run's candidate, None while
    undecided, and the accepted or corrected value's JSON text); for "gold", ``gold`` (the log's gold label as
    JSON text, None where the log has none; tasks ``GOLD_TASKS`` only). Returns ``pairs`` with ``correct_a``,
    ``correct_b`` (1.0, 0.0 or NaN unknown), ``reference`` (the true value's JSON text where known, else
    NO_REFERENCE) and ``disagree`` (the runs propose different values, ``same_value``)."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    if reference == "gold" and task not in GOLD_TASKS:
        raise ValueError(f"the log has no gold label for task {task!r}; gold works for {', '.join(GOLD_TASKS)}")
    out = pairs.copy()
    a, b = out["value_a"].tolist(), out["value_b"].tolist()
    if reference == "gold":
        gold = [None if g is None or pd.isna(g) else g for g in out["gold"]]
        known = [g is not None and json.loads(g) is not None for g in gold]
        for side, values in (("a", a), ("b", b)):
            out[f"correct_{side}"] = [float(candidate_correct(task, v, g)) if k else math.nan
                                      for v, g, k in zip(values, gold, known, strict=True)]
        out["reference"] = [g if k else NO_REFERENCE for g, k in zip(gold, known, strict=True)]
    else:
        va, la, vb, lb = (out[c].where(out[c].notna(), None).tolist()
                          for c in ("verdict_a", "label_a", "verdict_b", "label_b"))
        out["correct_a"] = [reviewed_correct(task, *r) for r in zip(a, va, b, vb, lb, strict=True)]
        out["correct_b"] = [reviewed_correct(task, *r) for r in zip(b, vb, a, va, la, strict=True)]
        # the truth, where a settled accept or correction names it: run A's decision first, then run B's
        out["reference"] = [x if vx in ("accept", "correct") and x is not None else
                            y if vy in ("accept", "correct") and y is not None else NO_REFERENCE
                            for vx, x, vy, y in zip(va, la, vb, lb, strict=True)]
    out["disagree"] = [not same_value(task, x, y) for x, y in zip(a, b, strict=True)]
    return out


def paired_difference(correct_a: Sequence[float], correct_b: Sequence[float], dialogues: Sequence[object], *,
                      n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Accuracy of A and of B on the items where both are known, and B - A, each with a paired bootstrap interval
    over dialogues (module docstring). correct_a, correct_b: 1.0 right, 0.0 wrong, NaN unknown (the item is left
    out); dialogues: each item's dialogue id. Returns accuracy_a, accuracy_b, difference, each ``<name>_ci``
    (low, high), n (items compared) and n_groups (their dialogues); with no item compared the figures are NaN and
    n is 0."""
    ca, cb = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    groups = np.asarray(dialogues, dtype=object)
    if not len(ca) == len(cb) == len(groups):
        raise ValueError(f"correct_a, correct_b and dialogues must have equal length, got {len(ca)}, {len(cb)} "
                         f"and {len(groups)}")
    keep = ~(np.isnan(ca) | np.isnan(cb))
    if not keep.any():
        nan2 = (math.nan, math.nan)
        return {"accuracy_a": math.nan, "accuracy_a_ci": nan2, "accuracy_b": math.nan, "accuracy_b_ci": nan2,
                "difference": math.nan, "difference_ci": nan2, "n": 0, "n_groups": 0}
    stats = np.column_stack([ca[keep], cb[keep], np.ones(int(keep.sum()))])

    def metrics(s: np.ndarray) -> dict[str, np.ndarray]:  # s[..., (right A, right B, items)]
        acc_a, acc_b = s[..., 0] / s[..., 2], s[..., 1] / s[..., 2]
        return {"accuracy_a": acc_a, "accuracy_b": acc_b, "difference": acc_b - acc_a}

    r = cluster_bootstrap_rows(stats, list(groups[keep]), metrics, n_boot=n_boot, seed=seed, confidence=confidence)
    return {k: r[k] for k in ("accuracy_a", "accuracy_a_ci", "accuracy_b", "accuracy_b_ci", "difference",
                              "difference_ci", "n", "n_groups")}


def compare_table(judged: pd.DataFrame, by: str | None = None, *, min_items: int = 1, n_boot: int = 1000,
                  seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """The comparison overall and per value of column ``by`` (e.g. "reference" for per label, or a slice column
    such as "nlu_domain"; missing values are the group "(none)"), from ``judge_pairs`` output (columns
    dialogue_id, correct_a, correct_b and ``by``). One row per group with at least ``min_items`` compared items:
    columns ``COLUMNS`` (group, items compared, their dialogues, accuracy_a, accuracy_b, difference = B - A and
    its paired interval low/high); the overall row (group ALL) first, then by items (descending) and group."""
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    parts = [(ALL, judged)]
    if by is not None:
        keys = judged[by].astype(object).where(judged[by].notna(), "(none)").astype(str)
        parts += list(judged.groupby(keys, sort=False))
    rows = []
    for name, g in parts:
        r = paired_difference(g["correct_a"], g["correct_b"], g["dialogue_id"], **common)
        if r["n"] >= min_items or name == ALL:
            rows.append((name, r["n"], r["n_groups"], r["accuracy_a"], r["accuracy_b"], r["difference"],
                         *r["difference_ci"]))
    out = pd.DataFrame(rows, columns=COLUMNS).astype({"items": "int64", "dialogues": "int64"})
    head, rest = out.iloc[:1], out.iloc[1:].sort_values(["items", "group"], ascending=[False, True])
    return pd.concat([head, rest], ignore_index=True)


def default_pair(runs: pd.DataFrame) -> tuple[str, int, int] | None:
    """The pair of runs to compare first: of the tasks that two or more runs proposed (``runs``: one row per run
    and task, columns run_id, task), the task whose two newest runs (highest run_id) are the most recent (compared
    by the older of the two, then the newer); ties by task name. Returns (task, run A = the older of the two, run B
    = the newer), or None when no task has two runs."""
    best: tuple[tuple[int, int], str] | None = None
    for task, g in runs.groupby("task", sort=True):
        ids = sorted({int(r) for r in g["run_id"]}, reverse=True)
        if len(ids) >= 2 and (best is None or (ids[1], ids[0]) > best[0]):
            best = ((ids[1], ids[0]), str(task))
    return None if best is None else (best[1], best[0][0], best[0][1])


def simulated_items(judged: pd.DataFrame) -> int:
    """How many compared items (both runs judged) rest on a decision by a simulated reviewer (a name ending
    " (simulated)") among ``reviewers_a``/``reviewers_b`` (lists of names, or missing)."""
    compared = judged["correct_a"].notna() & judged["correct_b"].notna()

    def names(x: object) -> list[str]:
        return list(x) if isinstance(x, (list, tuple, np.ndarray)) else []  # a missing list reads as NA

    return int(sum(c and any(map(is_simulated, names(a) + names(b)))
                   for c, a, b in zip(compared, judged["reviewers_a"], judged["reviewers_b"], strict=True)))
