"""How well model scores predict reviewer acceptance: reliability bins, thresholds, audited precision.

Everything here is estimated from reviewer decisions made so far, so it inherits their selection effects:
reviewers only decide what the queue showed them (often the most or least confident candidates first),
and an acceptance rate measured there need not hold for the items nobody looked at. Intervals are Wilson
score intervals, which stay inside [0, 1] and behave at 0% and 100% where the normal approximation does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Real
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

_BIN_COLUMNS = ["bin_low", "bin_high", "n", "mean_score", "acceptance_rate", "ci_low", "ci_high"]


def _check_count(value: Any, name: str) -> int:
    # bool is an Integral too, and True as a sample size is always a bug.
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion successes / n.

    Parameters
    ----------
    successes, n:
        Integers with 0 <= successes <= n.
    confidence:
        Two-sided coverage in (0, 1); 0.95 gives the usual 95% interval (z = 1.95996...).

    Returns
    -------
    (low, high)
        Bounds in [0, 1] with low <= successes / n <= high; narrower is more certain. (nan, nan) when
        n == 0: there is nothing to estimate. low is exactly 0 when successes == 0 and high exactly 1 when
        successes == n.

    Raises
    ------
    ValueError
        If a count is not a non-negative integer, successes > n, or confidence is outside (0, 1).
    """
    successes, n = _check_count(successes, "successes"), _check_count(n, "n")
    confidence = _check_confidence(confidence)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    if n == 0:
        return (math.nan, math.nan)
    # The standard library's inverse normal CDF is exact to double precision; no SciPy needed.
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    # At p = 0 or 1 the bound is exactly 0 or 1 in exact arithmetic; pin it so rounding cannot leave
    # a -1e-17 or a 0.9999999999999999 behind.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _as_scores(scores: Any) -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("scores must be numbers in [0, 1]") from None
    if arr.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {arr.shape}")
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN, which fails both comparisons
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"scores must be in [0, 1] and not NaN; {int(bad.sum())} are not, e.g. scores[{i}] = {arr[i]}")
    return arr


def _as_decisions(accepted: Any, n: int, *, allow_undecided: bool) -> np.ndarray:
    """Float array, 1.0 accepted, 0.0 rejected, NaN undecided (only if allow_undecided)."""
    # Plain bool/0-1/float arrays take the vectorised paths below; lists with None, nullable pandas
    # dtypes (pd.NA) and anything odd arrive as object arrays and are checked one by one.
    values = accepted.to_numpy() if isinstance(accepted, pd.Series | pd.Index) else np.asarray(accepted)
    if values.ndim != 1:
        raise ValueError(f"accepted must be one-dimensional, got shape {values.shape}")
    if values.shape[0] != n:
        raise ValueError(f"{n} scores but {values.shape[0]} accepted flags; one flag per score")
    if values.dtype == np.bool_:
        return values.astype(np.float64)
    if values.dtype.kind in "iuf":  # fast path for numeric arrays: 0/1 with NaN as undecided
        out = values.astype(np.float64)
        missing = np.isnan(out)
        if missing.any() and not allow_undecided:
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"accepted[{i}] is missing; pass decided items only (True = accepted, False = rejected)")
        bad = ~(np.isin(out, (0.0, 1.0)) | missing)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"accepted[{i}] = {values[i]!r}; expected True/False (or 1/0)")
        return out
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values.tolist()):
        if v is None or v is pd.NA or (isinstance(v, float | np.floating) and math.isnan(v)):
            if not allow_undecided:
                raise ValueError(
                    f"accepted[{i}] is missing; pass decided items only (True = accepted, False = rejected)"
                )
            out[i] = math.nan
        elif isinstance(v, bool | int | float | np.bool_ | np.integer | np.floating) and v in (0, 1):
            # 0/1 integers come straight from SQL booleans; anything else is probably a wrong column.
            out[i] = float(v)
        else:
            raise ValueError(f"accepted[{i}] = {v!r}; expected True/False (or 1/0)")
    return out


def reliability_bins(scores: Any, accepted: Any, *, n_bins: int = 10) -> pd.DataFrame:
    """Acceptance rate by score bin: the data behind a reliability diagram.

    Parameters
    ----------
    scores:
        Array-like of shape (N,): one model score per decided item, in [0, 1] (NaN is an error).
    accepted:
        Array-like of shape (N,): True if the reviewer accepted the item, False if not (1/0 allowed).
        Undecided items must be filtered out first; a missing value is an error.
    n_bins:
        Number of equal-width bins over [0, 1], >= 1. Bin i covers [i / n_bins, (i + 1) / n_bins); the
        last bin also includes 1.0.

    Returns
    -------
    pandas.DataFrame
        Exactly ``n_bins`` rows in score order, empty bins kept, with columns ``bin_low``, ``bin_high``,
        ``n`` (items in the bin, int), ``mean_score``, ``acceptance_rate`` (share accepted), and ``ci_low``,
        ``ci_high`` (Wilson 95% interval for the acceptance rate). The last four are NaN where n == 0.
        A well-calibrated model has acceptance_rate close to mean_score in every bin; acceptance below
        mean_score means the scores are overconfident there.

    Raises
    ------
    ValueError
        If scores are outside [0, 1] or NaN, accepted has missing or non-boolean values, the lengths
        differ, or n_bins is not a positive integer.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    s = _as_scores(scores)
    y = _as_decisions(accepted, s.size, allow_undecided=False)
    # i / n_bins (not linspace) makes each edge the double nearest the decimal edge, so a score of 0.3
    # lands in [0.3, 0.4), as a reader expects; linspace(0, 1, 11)[3] is 0.30000000000000004.
    edges = np.arange(n_bins + 1) / n_bins
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    score_sum = np.bincount(idx, weights=s, minlength=n_bins)
    acc = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.where(n > 0, score_sum / n, np.nan)
        rate = np.where(n > 0, acc / n, np.nan)
    # acc holds sums of 0.0/1.0, exact integers in float64 up to 2^53.
    intervals = [wilson_interval(int(round(a)), int(k)) for a, k in zip(acc, n, strict=True)]
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "n": n.astype(np.int64),
            "mean_score": mean_score,
            "acceptance_rate": rate,
            "ci_low": [lo for lo, _ in intervals],
            "ci_high": [hi for _, hi in intervals],
        },
        columns=_BIN_COLUMNS,
    )


@dataclass(frozen=True)
class ThresholdResult:
    """The lowest score threshold whose decided items reach a precision target, or why there is none.

    threshold: score t in [0, 1] (items with score >= t qualify), or None if no observed score qualifies.
    precision: acceptance rate among decided items with score >= t, in [0, 1]; >= target whenever
        threshold is not None. NaN when threshold is None.
    ci_low, ci_high: Wilson 95% interval for that precision (NaN when threshold is None). The point
        estimate meets the target; ci_low usually does not, so treat a threshold close to the edge of its
        support with care.
    support: decided items with score >= t (>= min_support); 0 when threshold is None.
    coverage: share of all given items (decided or not) with score >= t, in [0, 1]; higher means more
        items clear the threshold. NaN when threshold is None.
    reason: None when a threshold was found, else a sentence saying why not (for display).
    """

    threshold: float | None
    precision: float
    ci_low: float
    ci_high: float
    support: int
    coverage: float
    reason: str | None


def _no_threshold(reason: str) -> ThresholdResult:
    return ThresholdResult(None, math.nan, math.nan, math.nan, 0, math.nan, reason)


def threshold_for_precision(
    scores: Any, accepted: Any, *, target: float = 0.95, min_support: int = 30
) -> ThresholdResult:
    """Lowest score threshold at which reviewers' acceptance rate reaches ``target``, with enough support.

    Among the distinct scores of decided items, picks the lowest t such that the decided items with
    score >= t number at least ``min_support`` and at least ``target`` of them were accepted. The lowest
    qualifying t is the one that lets the most items through (highest coverage). Precision is not
    monotone in t, so a higher t can fail where a lower one passes; only qualifying thresholds are ever
    returned.

    This is estimated on the decisions so far, not on a random sample: reviewers decided what the queue
    showed them, so the precision of undecided items above t may differ. Audit bulk acceptances made with
    the threshold (``audit_sample_size``, ``estimate_precision``) rather than trusting this figure.

    Parameters
    ----------
    scores:
        Array-like of shape (N,): model scores in [0, 1] of every item the threshold would apply to
        (NaN is an error).
    accepted:
        Array-like of shape (N,): True accepted, False rejected, None/NaN not decided yet (1/0 allowed).
        Undecided items count toward coverage only.
    target:
        Required precision, in (0, 1].
    min_support:
        Minimum number of decided items at or above the threshold, >= 1.

    Returns
    -------
    ThresholdResult
        See its docstring; ``threshold`` is None with a ``reason`` when nothing qualifies.

    Raises
    ------
    ValueError
        If scores are outside [0, 1] or NaN, accepted has values other than True/False/1/0/missing, the
        lengths differ, target is outside (0, 1], or min_support is not a positive integer.
    """
    if isinstance(target, bool) or not isinstance(target, Real) or not 0.0 < target <= 1.0:
        raise ValueError(f"target must be a number in (0, 1], got {target!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, Integral) or min_support < 1:
        raise ValueError(f"min_support must be a positive integer, got {min_support!r}")
    s = _as_scores(scores)
    y = _as_decisions(accepted, s.size, allow_undecided=True)
    decided = ~np.isnan(y)
    ds, dy = s[decided], y[decided]
    if ds.size < min_support:
        return _no_threshold(f"only {ds.size} decided item(s); at least {min_support} are needed")

    order = np.argsort(ds, kind="stable")
    ds, dy = ds[order], dy[order]
    candidates = np.unique(ds)  # ascending
    first = np.searchsorted(ds, candidates, side="left")  # ties share one threshold: all of them are >= t
    support = ds.size - first
    accepted_above = np.cumsum(dy[::-1])[::-1][first]  # accepted among items with score >= candidate
    precision = accepted_above / support
    # precision is a correctly rounded division, so e.g. 19/20 compares equal to a target of 0.95.
    ok = (support >= min_support) & (precision >= target)
    if not ok.any():
        enough = support >= min_support
        best = int(np.argmax(np.where(enough, precision, -1.0)))
        return _no_threshold(
            f"no threshold with at least {min_support} decided items reaches precision {target:g}; "
            f"the best is {precision[best]:.3f} at score >= {candidates[best]:g} ({int(support[best])} items)"
        )
    i = int(np.flatnonzero(ok)[0])
    t = float(candidates[i])
    k, n = int(round(accepted_above[i])), int(support[i])
    low, high = wilson_interval(k, n)
    return ThresholdResult(
        threshold=t,
        precision=k / n,
        ci_low=low,
        ci_high=high,
        support=n,
        coverage=float(np.count_nonzero(s >= t)) / s.size,
        reason=None,
    )


@dataclass(frozen=True)
class PrecisionEstimate:
    """Precision of a bulk-accepted set, estimated from a simple random audit sample.

    precision: n_correct / n_audited in [0, 1], higher is better; NaN when n_audited == 0.
    ci_low, ci_high: Wilson interval at ``confidence`` (NaN when n_audited == 0).
    n_audited, n_correct: the audit counts the estimate rests on.
    confidence: the interval's two-sided coverage.
    """

    precision: float
    ci_low: float
    ci_high: float
    n_audited: int
    n_correct: int
    confidence: float


def estimate_precision(n_audited: int, n_correct: int, *, confidence: float = 0.95) -> PrecisionEstimate:
    """Precision of a bulk-accepted set from an audit of a simple random sample of it.

    Parameters
    ----------
    n_audited:
        Items in the audit sample, drawn uniformly at random without replacement from the bulk set; >= 0.
    n_correct:
        Audited items the auditor found correct, 0 <= n_correct <= n_audited.
    confidence:
        Two-sided coverage of the interval, in (0, 1).

    Returns
    -------
    PrecisionEstimate
        Point estimate and Wilson interval. No finite-population correction is applied, so when the
        sample is a large share of the bulk set the interval is conservative (wider than needed). The
        estimate only holds for the set the sample was drawn from, and only if the sample was random.

    Raises
    ------
    ValueError
        If a count is not a non-negative integer, n_correct > n_audited, or confidence is outside (0, 1).
    """
    low, high = wilson_interval(n_correct, n_audited, confidence=confidence)
    precision = n_correct / n_audited if n_audited else math.nan
    return PrecisionEstimate(precision, low, high, int(n_audited), int(n_correct), float(confidence))


def audit_sample_size(n_bulk: int, *, share: float = 0.05, minimum: int = 30) -> int:
    """How many items of a bulk-accepted set of ``n_bulk`` to audit: min(n_bulk, max(minimum, ceil(share * n_bulk))).

    Parameters
    ----------
    n_bulk:
        Size of the bulk-accepted set, >= 0.
    share:
        Fraction of the set to audit, in (0, 1].
    minimum:
        Floor on the sample size (a handful of items says little about precision), >= 0.

    Returns
    -------
    int
        Sample size in [0, n_bulk]: never more than the set itself.

    Raises
    ------
    ValueError
        If n_bulk or minimum is not a non-negative integer, or share is outside (0, 1].
    """
    n_bulk, minimum = _check_count(n_bulk, "n_bulk"), _check_count(minimum, "minimum")
    if isinstance(share, bool) or not isinstance(share, Real) or not 0.0 < share <= 1.0:
        raise ValueError(f"share must be a number in (0, 1], got {share!r}")
    # Take share as the decimal it was written as: 0.07 * 100 is 7.000000000000001 in floats, and its
    # ceiling would audit 8 items instead of 7.
    wanted = math.ceil(Fraction(repr(float(share))) * n_bulk)
    return min(n_bulk, max(minimum, wanted))
