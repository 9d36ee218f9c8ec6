"""Model vs human parity: how often the model agrees with a reviewer, against how often reviewers agree with each
other, on the items two or more reviewers decided ("the model reaches X% of human agreement").

The model's proposal is one more annotator: a reviewer who accepted agrees with it; a correction to another value
or a rejection disagrees. Per item u with m_u >= 2 human labels:

* human-human agreement h_u = the share of the m_u (m_u - 1) / 2 unordered pairs of human labels that are equal;
* model-human agreement a_u = the share of the m_u human labels that equal the proposal.

Over a set of items, human agreement H = mean(h_u), model agreement M = mean(a_u) (every item weighs the same,
whatever its number of reviewers) and the parity ratio R = M / H; higher is better for both agreements, and R = 1
means the model agrees with a reviewer as often as two reviewers agree with each other (R > 1 is possible: a
model can agree with each reviewer more often than they agree with one another). R is NaN when H is 0.
These are raw agreements, not chance-corrected (the seeds' "% of human performance" is raw; kappa and alpha
between reviewers are in ``analysis.agreement``).

Intervals are percentile intervals of a bootstrap over items (``analysis.labels.evaluation.cluster_bootstrap_rows``
with every item its own group): each replicate draws as many items as there are, with replacement, and recomputes
H, M and R on the same draw, so R's interval carries the pairing of the two agreements on one item. Deterministic
for ``seed``; (NaN, NaN) with fewer than two items or ``n_boot`` 0.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from analysis.agreement import _is_missing
from analysis.labels.evaluation import cluster_bootstrap_rows
from analysis.simulated_reviewers import SIMULATED_MARK

ALL_LABELS = "(all)"  # the ``label`` of a task's overall row
COLUMNS = ["task", "label", "items", "reviewers", "human_labels", "simulated_labels", "human_agreement",
           "human_low", "human_high", "model_agreement", "model_low", "model_high", "ratio", "ratio_low", "ratio_high"]


def is_simulated(reviewer: str) -> bool:
    """Whether a reviewer name is a simulated reviewer's (it ends with " (simulated)")."""
    return str(reviewer).endswith(f" {SIMULATED_MARK}")


def _metrics(s: np.ndarray) -> dict[str, np.ndarray]:  # s[..., (sum h_u, sum a_u, items)]
    h, a, n = np.moveaxis(s, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"human": np.where(n > 0, h / n, np.nan), "model": np.where(n > 0, a / n, np.nan),
                "ratio": np.where(h > 0, a / h, np.nan)}


def parity_table(labels: pd.DataFrame, *, by_label: bool = True, min_items: int = 1, n_boot: int = 1000,
                 seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Human-human agreement, model-human agreement and their ratio, per task and per proposed value.

    Parameters
    ----------
    labels:
        One row per (task, item, reviewer) with columns ``task``, ``item`` (e.g. a candidate id), ``reviewer``,
        ``label`` (the reviewer's label: the accepted or corrected value, or e.g. "<rejected>"; a missing label is
        dropped) and ``proposal`` (the model's proposed value for the item, comparable with ``label``: an accept's
        label is the proposal). Items with fewer than two human labels are left out.
    by_label:
        Also one row per (task, proposed value) with at least ``min_items`` items (the task's overall row is
        always there).
    n_boot, seed, confidence:
        The bootstrap over items (module docstring).

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``: ``task``; ``label`` (ALL_LABELS for the task's row, else the proposed value);
        ``items`` (items with two or more human labels); ``reviewers`` (distinct reviewers among them);
        ``human_labels`` and ``simulated_labels`` (how many of those labels are by simulated reviewers, names
        ending " (simulated)"); ``human_agreement`` H, ``model_agreement`` M and ``ratio`` R, each in [0, 1]
        (R in [0, inf)) with its ``_low`` / ``_high`` interval (``human_low``, ``model_low``, ``ratio_low``, ...).
        Sorted by task, the overall row first, then by items (descending) and label. Empty (with these
        columns) when no item has two human labels.

    Raises
    ------
    ValueError
        If a column is missing, ``task``/``item``/``reviewer`` has missing values, a reviewer labels an item
        twice, or an item has more than one proposal.
    """
    if not isinstance(labels, pd.DataFrame):
        raise ValueError(f"labels must be a pandas DataFrame, got {type(labels).__name__}")
    missing = [c for c in ("task", "item", "reviewer", "label", "proposal") if c not in labels.columns]
    if missing:
        raise ValueError(f"labels lacks column(s) {missing}; needs task, item, reviewer, label, proposal")
    if min_items < 1:
        raise ValueError(f"min_items must be >= 1, got {min_items}")
    df = labels[["task", "item", "reviewer", "label", "proposal"]]
    for col in ("task", "item", "reviewer"):
        if df[col].isna().any():
            raise ValueError(f"labels.{col} has {int(df[col].isna().sum())} missing value(s)")
    if df.duplicated(["task", "item", "reviewer"]).any():
        raise ValueError("a reviewer labels the same (task, item) more than once; pass each final label once")
    if (df.groupby(["task", "item"])["proposal"].nunique(dropna=False) > 1).any():
        raise ValueError("an item has more than one proposal")
    df = df[np.array([not _is_missing(x) for x in df["label"]], dtype=bool)]  # a list would select columns

    # Per item, vectorised: m_u labels, the agreeing pairs sum_c n_uc (n_uc - 1) / 2, the labels equal to the proposal.
    df = df.assign(agrees=[x == p for x, p in zip(df["label"], df["proposal"], strict=True)],
                   simulated=df["reviewer"].map(is_simulated))
    keys = ["task", "item"]
    n_uc = df.groupby(keys + ["label"], sort=False).size().rename("n").reset_index()
    pairs = (n_uc["n"] * (n_uc["n"] - 1) / 2).groupby([n_uc["task"], n_uc["item"]], sort=False).sum()
    per_item = df.groupby(keys, sort=False).agg(m=("reviewer", "size"), agreeing=("agrees", "sum"),
                                                simulated=("simulated", "sum"), proposal=("proposal", "first"))
    per_item = per_item[per_item["m"] >= 2]
    m = per_item["m"].astype(np.float64)
    per_item = per_item.assign(h=pairs.reindex(per_item.index).to_numpy() / (m * (m - 1) / 2),
                               a=per_item["agreeing"] / m).reset_index()
    kept = df.merge(per_item[keys], on=keys)  # the labels of the items kept, for the reviewer counts

    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    rows = []
    for task, g in per_item.groupby("task", sort=True):
        reviewers = kept.loc[kept["task"] == task, ["item", "reviewer"]]
        rows.append(_row(task, ALL_LABELS, g, reviewers, **common))
        if by_label:
            groups = [(p, pg) for p, pg in g.groupby("proposal", sort=False) if len(pg) >= min_items]
            for p, pg in sorted(groups, key=lambda x: (-len(x[1]), str(x[0]))):
                rows.append(_row(task, p, pg, reviewers[reviewers["item"].isin(pg["item"])], **common))
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.astype({c: "int64" for c in ("items", "reviewers", "human_labels", "simulated_labels")})


def _row(task: str, label: Hashable, g: pd.DataFrame, reviewers: pd.DataFrame, **common) -> tuple:
    stats = np.column_stack([g["h"].to_numpy(), g["a"].to_numpy(), np.ones(len(g))])
    r = cluster_bootstrap_rows(stats, None, _metrics, **common)
    return (task, label, len(g), reviewers["reviewer"].nunique(), int(g["m"].sum()), int(g["simulated"].sum()),
            r["human"], *r["human_ci"], r["model"], *r["model_ci"], r["ratio"], *r["ratio_ci"])
