"""Inter-reviewer agreement on nominal labels: Cohen's kappa, Krippendorff's alpha, and both per task.

All figures are chance-corrected agreement on *nominal* labels (any two different labels disagree
equally; "Paris" vs "paris" is as wrong as "Paris" vs "<rejected>"). Higher is better: 1 is perfect
agreement, 0 is what raters labelling at random with the same label frequencies would reach, negative is
systematic disagreement. A missing label (None, NaN, pd.NA) means "this rater did not label this item"
and is dropped, never counted as a label of its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_BY_TASK_COLUMNS = ["task", "reviewers", "items", "statistic", "value", "observed_agreement"]


@dataclass(frozen=True)
class AgreementResult:
    """One chance-corrected agreement figure and what it rests on.

    value: kappa or alpha, at most 1.0; higher is better (1 perfect, 0 chance level, < 0 worse than
        chance). NaN when it is undefined: no pairable items, or every pairable label is the same single
        category (then agreement cannot be told apart from chance; see ``observed`` for the raw figure).
    observed: observed agreement in [0, 1] (NaN when n_items == 0). For kappa, the share of items on
        which both raters agree; for alpha, Krippendorff's A_o = sum of the coincidence matrix diagonal
        over n (pairs within an item weighted 1 / (m_u - 1), so every pairable label weighs the same).
    expected: the agreement expected by chance in [0, 1], same conventions (NaN when n_items == 0).
    n_items: number of items the figure rests on (items with labels from at least two raters).
    """

    value: float
    observed: float
    expected: float
    n_items: int


_EMPTY = AgreementResult(value=math.nan, observed=math.nan, expected=math.nan, n_items=0)


def _is_missing(label: Any) -> bool:
    # NaN != NaN, so a NaN kept as a label would never even agree with itself.
    if label is None or label is pd.NA:
        return True
    return isinstance(label, float | np.floating) and math.isnan(label)


def _as_label_list(labels: Sequence[Hashable], name: str) -> list[Hashable]:
    # A str is a Sequence too: cohens_kappa("yes", "no") would silently compare characters.
    if isinstance(labels, str | bytes):
        raise ValueError(f"{name} must be a sequence of labels, not a single {type(labels).__name__}")
    try:
        out = list(labels)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of labels, got {type(labels).__name__}") from None
    for i, label in enumerate(out):
        if not isinstance(label, Hashable):
            raise ValueError(f"{name}[{i}] is not hashable ({type(label).__name__}); labels must be hashable")
    return out


def cohens_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> AgreementResult:
    """Cohen's kappa for two raters who labelled the same items.

    Parameters
    ----------
    a, b:
        Sequences of hashable labels of equal length N; ``a[i]`` and ``b[i]`` are the two raters' labels
        for item i. Items where either label is missing (None, NaN, pd.NA) are dropped.

    Returns
    -------
    AgreementResult
        ``value`` = (p_o - p_e) / (1 - p_e) in [-1, 1], higher is better, where p_o is the share of items
        with equal labels and p_e = sum over labels c of p_a(c) * p_b(c) (each rater's own label
        frequencies). ``n_items`` is the number of items kept.

        Degenerate cases, chosen so nothing is ever divided by zero:

        * no items left: every field NaN, ``n_items`` 0.
        * p_e == 1: both raters used one and the same label for every item (so p_o is 1 too). Kappa is
          0/0 here and ``value`` is NaN, not 1.0: two reviewers who accept everything have shown no
          ability to tell items apart, and a 1.0 would be indistinguishable from real agreement on
          varied data. ``observed`` and ``expected`` are 1.0, so callers can still show "100% raw
          agreement, one label only". (This matches scikit-learn's ``cohen_kappa_score``.)

    Raises
    ------
    ValueError
        If ``a`` or ``b`` is not a sequence of hashable labels, or their lengths differ.
    """
    a_list, b_list = _as_label_list(a, "a"), _as_label_list(b, "b")
    if len(a_list) != len(b_list):
        raise ValueError(f"a has {len(a_list)} labels but b has {len(b_list)}; both must label the same items")
    pairs = [(x, y) for x, y in zip(a_list, b_list, strict=True) if not (_is_missing(x) or _is_missing(y))]
    n = len(pairs)
    if n == 0:
        return _EMPTY
    agree = sum(x == y for x, y in pairs)
    count_a = Counter(x for x, _ in pairs)
    count_b = Counter(y for _, y in pairs)
    # Integer numerator and denominator (both scaled by N^2): exact, so the degenerate test is exact too.
    chance = sum(count_a[c] * count_b[c] for c in count_a.keys() & count_b.keys())
    observed, expected = agree / n, chance / (n * n)
    if chance == n * n:
        return AgreementResult(value=math.nan, observed=observed, expected=expected, n_items=n)
    value = (n * agree - chance) / (n * n - chance)
    return AgreementResult(value=value, observed=observed, expected=expected, n_items=n)


@dataclass(frozen=True)
class _Coincidence:
    result: AgreementResult
    pair_agreement: float  # share of unordered within-item label pairs that agree (unweighted)


def _alpha_from_long(units: np.ndarray, labels: np.ndarray) -> _Coincidence:
    """Nominal alpha from one row per (unit, label) value; units and labels are int codes, none missing.

    Only the coincidence matrix's diagonal and marginals are needed for nominal data, so the matrix itself
    (categories x categories, large when corrected values are free text) is never built.
    """
    m_u = np.bincount(units)
    pairable = m_u[units] >= 2
    units, labels = units[pairable], labels[pairable]
    if units.size == 0:
        return _Coincidence(_EMPTY, math.nan)
    n_labels = int(labels.max()) + 1
    # n_uc: how often label c occurs in unit u, one entry per (u, c) present.
    keys, n_uc = np.unique(units.astype(np.int64) * n_labels + labels, return_counts=True)
    unit_of_key = keys // n_labels
    n_uc = n_uc.astype(np.float64)
    n_items = int(np.unique(units).size)
    n = float(units.size)  # pairable values
    # Disagreeing ordered pairs in unit u are m_u^2 - sum_c n_uc^2; summing them directly (weighted
    # 1 / (m_u - 1)) rather than computing n - sum(o_cc) avoids cancellation when agreement is high.
    m_units = m_u[m_u >= 2].astype(np.float64)
    sum_sq_per_unit = np.bincount(unit_of_key, weights=n_uc * n_uc, minlength=m_u.size)[m_u >= 2]
    disagree = float(np.sum((m_units * m_units - sum_sq_per_unit) / (m_units - 1.0)))  # sum_{c!=k} o_ck
    n_c = np.bincount(labels).astype(np.float64)
    chance_disagree = n * n - float(np.sum(n_c * n_c))  # sum_{c!=k} n_c n_k
    observed = 1.0 - disagree / n
    expected = float(np.sum(n_c * (n_c - 1.0))) / (n * (n - 1.0))
    if chance_disagree == 0.0:
        # A single category among all pairable values: D_e = 0 and alpha is 0/0 (undefined).
        value = math.nan
    else:
        value = 1.0 - (n - 1.0) * disagree / chance_disagree
    agreeing_pairs = float(np.sum(n_uc * (n_uc - 1.0))) / 2.0
    all_pairs = float(np.sum(m_units * (m_units - 1.0))) / 2.0
    return _Coincidence(
        AgreementResult(value=value, observed=observed, expected=expected, n_items=n_items),
        agreeing_pairs / all_pairs,
    )


def krippendorff_alpha_nominal(units: Mapping[Hashable, Sequence[Hashable]]) -> AgreementResult:
    """Krippendorff's alpha for nominal labels, any number of raters, missing labels allowed.

    Parameters
    ----------
    units:
        Mapping from item id to the labels it received, one entry per rater (order and rater identity do
        not matter for nominal alpha; missing labels may be given as None/NaN or simply left out). Items
        with fewer than two non-missing labels are not pairable and are dropped.

    Returns
    -------
    AgreementResult
        ``value`` = 1 - D_o / D_e = 1 - (n - 1) * sum_{c!=k} o_ck / sum_{c!=k} n_c * n_k, from the
        coincidence matrix o_ck = sum over items u of (number of ordered pairs of labels (c, k) from
        different raters in u) / (m_u - 1), with n_c its marginals and n the number of pairable labels
        (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"). At most 1, higher is better;
        1 is perfect agreement, 0 chance level. ``observed`` is A_o = sum_c o_cc / n, ``expected`` is
        A_e = sum_c n_c (n_c - 1) / (n (n - 1)); ``n_items`` counts pairable items.

        Degenerate cases, nothing divided by zero: no pairable item -> every field NaN and ``n_items``
        0; a single category among all pairable labels -> D_e = 0, ``value`` NaN (undefined, as in
        Krippendorff: without variation reliability cannot be assessed), ``observed`` = ``expected`` = 1.

        With two raters and no missing labels on N items, alpha = 1 - (2N - 1) / (2N) * (1 - pi), where pi
        is Scott's pi: alpha corrects pi for small samples and is slightly lower when pi < 1.

    Raises
    ------
    ValueError
        If ``units`` is not a mapping, or an item's labels are not a sequence of hashable labels.
    """
    if not isinstance(units, Mapping):
        raise ValueError(f"units must be a mapping from item id to its labels, got {type(units).__name__}")
    unit_codes: list[int] = []
    label_codes: list[int] = []
    codes: dict[Hashable, int] = {}
    for u, (item, labels) in enumerate(units.items()):
        for label in _as_label_list(labels, f"units[{item!r}]"):
            if _is_missing(label):
                continue
            unit_codes.append(u)
            label_codes.append(codes.setdefault(label, len(codes)))
    return _alpha_from_long(np.asarray(unit_codes, dtype=np.int64), np.asarray(label_codes, dtype=np.int64)).result


def agreement_by_task(decisions: pd.DataFrame) -> pd.DataFrame:
    """Reviewer agreement per task, on the items that at least two reviewers labelled.

    Parameters
    ----------
    decisions:
        One row per (task, item, reviewer) with columns ``task``, ``item`` (any hashable id, e.g. a
        candidate id), ``reviewer`` and ``label``: the reviewer's final label as a string (the accepted
        value, the corrected value, or e.g. "<rejected>"). Rows with a missing label are dropped (not
        labelled). Other columns are ignored.

    Returns
    -------
    pandas.DataFrame
        One row per task, sorted by task, with columns:

        * ``task``
        * ``reviewers`` (int): distinct reviewers who labelled at least one item that another reviewer
          also labelled.
        * ``items`` (int): items labelled by at least two reviewers; the figure rests on these only.
        * ``statistic`` (str): "cohen_kappa" when exactly two reviewers labelled the shared items (then
          both labelled every one of them), else "krippendorff_alpha" (also when ``items`` is 0).
        * ``value`` (float): the statistic, higher is better (see ``cohens_kappa`` and
          ``krippendorff_alpha_nominal``); NaN when ``items`` is 0 or all shared labels are one value.
        * ``observed_agreement`` (float in [0, 1]): share of within-item pairs of reviewers' labels
          that agree, each unordered pair counted once (NaN when ``items`` is 0). With two reviewers it
          is the share of shared items they agree on; with more it can differ slightly from alpha's
          A_o, which weights pairs 1 / (m_u - 1).

    Raises
    ------
    ValueError
        If a column is missing, ``task``/``item``/``reviewer`` has missing values, or a reviewer has
        more than one row for the same (task, item): pass final labels, not the decision log.
    """
    if not isinstance(decisions, pd.DataFrame):
        raise ValueError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
    missing_cols = [c for c in ("task", "item", "reviewer", "label") if c not in decisions.columns]
    if missing_cols:
        raise ValueError(f"decisions lacks column(s) {missing_cols}; needs task, item, reviewer, label")
    df = decisions[["task", "item", "reviewer", "label"]]
    for col in ("task", "item", "reviewer"):
        n_na = int(df[col].isna().sum())
        if n_na:
            raise ValueError(f"decisions.{col} has {n_na} missing value(s)")
    dup = df.duplicated(["task", "item", "reviewer"], keep=False)
    if dup.any():
        example = df.loc[dup, ["task", "item", "reviewer"]].iloc[0].tolist()
        raise ValueError(
            f"{int(dup.sum())} rows repeat a (task, item, reviewer), e.g. {example}; "
            "pass each reviewer's final label once per item"
        )

    rows = []
    for task, g in df.groupby("task", sort=True):
        # Dropped inside the loop so a task whose labels are all missing still gets its (empty) row.
        g = g[g["label"].notna()]
        item_codes, _ = pd.factorize(g["item"])
        label_codes, _ = pd.factorize(g["label"])
        counts = np.bincount(item_codes)
        shared = counts[item_codes] >= 2
        reviewers = g["reviewer"][shared]
        n_reviewers = int(reviewers.nunique())
        if n_reviewers == 2:
            # Every shared item has two distinct reviewers and only two exist, so both labelled each.
            wide = g[shared].pivot(index="item", columns="reviewer", values="label")
            result = cohens_kappa(wide.iloc[:, 0].tolist(), wide.iloc[:, 1].tolist())
            statistic, observed = "cohen_kappa", result.observed
        else:
            coincidence = _alpha_from_long(item_codes.astype(np.int64), label_codes.astype(np.int64))
            result, observed = coincidence.result, coincidence.pair_agreement
            statistic = "krippendorff_alpha"
        rows.append((task, n_reviewers, result.n_items, statistic, float(result.value), float(observed)))

    out = pd.DataFrame(rows, columns=_BY_TASK_COLUMNS)
    return out.astype({"reviewers": "int64", "items": "int64", "value": "float64", "observed_agreement": "float64"})
