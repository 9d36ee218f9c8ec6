"""Calibration helpers: hand-computed Wilson intervals, reliability bins, thresholds and audit sizes."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import (
    PrecisionEstimate,
    ThresholdResult,
    audit_sample_size,
    estimate_precision,
    reliability_bins,
    threshold_for_precision,
    wilson_interval,
)
from tests.helpers import ROOT

# --- Wilson interval ---------------------------------------------------------------------------------


def wilson_by_roots(k: int, n: int, z: float) -> tuple[float, float]:
    """Independent oracle: the Wilson bounds are the roots p of (k/n - p)^2 = z^2 p (1 - p) / n."""
    p_hat = k / n
    # (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0
    roots = np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat])
    return float(min(roots.real)), float(max(roots.real))


def test_wilson_hand_computed():
    # 8/10 at 95%: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.7167, half-width 0.2266.
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    # 0/10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert wilson_interval(0, 10) == (0.0, pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + 1.959964**2), abs=1e-6), 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 3), (8, 10), (17, 40), (999, 1000), (3, 7)])
@pytest.mark.parametrize(("confidence", "z"), [(0.90, 1.6448536), (0.95, 1.9599640), (0.99, 2.5758293)])
def test_wilson_matches_quadratic_roots(k, n, confidence, z):
    low, high = wilson_interval(k, n, confidence=confidence)
    assert (low, high) == pytest.approx(wilson_by_roots(k, n, z), abs=1e-6)
    assert low <= k / n <= high


def test_wilson_monotone_and_nested():
    bounds = [wilson_interval(k, 20) for k in range(21)]
    lows, highs = zip(*bounds, strict=True)
    assert all(np.diff(lows) > 0) and all(np.diff(highs) > 0)
    # More confidence -> wider; more data at the same rate -> narrower.
    l90, h90 = wilson_interval(6, 20, confidence=0.90)
    l99, h99 = wilson_interval(6, 20, confidence=0.99)
    assert l99 < l90 and h90 < h99
    l_big, h_big = wilson_interval(60, 200)
    l_small, h_small = wilson_interval(6, 20)
    assert h_big - l_big < h_small - l_small


def test_wilson_no_data_and_bad_input():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
    assert wilson_interval(np.int64(8), np.int64(10)) == wilson_interval(8, 10)
    for args, kwargs in [
        ((11, 10), {}),
        ((-1, 10), {}),
        ((1.5, 10), {}),
        ((True, 10), {}),
        ((1, 2), {"confidence": 1.0}),
    ]:
        with pytest.raises(ValueError):
            wilson_interval(*args, **kwargs)


# --- reliability bins --------------------------------------------------------------------------------

BIN_COLUMNS = ["bin_low", "bin_high", "n", "mean_score", "acceptance_rate", "ci_low", "ci_high"]


def test_reliability_bins_hand_computed():
    scores = [0.05, 0.15, 0.12, 0.55, 0.95, 0.91, 1.0, 0.99]
    accepted = [False, False, True, True, True, True, True, False]
    out = reliability_bins(scores, accepted, n_bins=4)
    assert list(out.columns) == BIN_COLUMNS
    assert out["bin_low"].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert out["bin_high"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert out["n"].tolist() == [3, 0, 1, 4]
    assert out["mean_score"].iloc[0] == pytest.approx((0.05 + 0.15 + 0.12) / 3)
    assert out["mean_score"].iloc[3] == pytest.approx((0.95 + 0.91 + 1.0 + 0.99) / 4)
    assert out["acceptance_rate"].iloc[[0, 2, 3]].tolist() == pytest.approx([1 / 3, 1.0, 0.75])
    assert (out["ci_low"].iloc[3], out["ci_high"].iloc[3]) == wilson_interval(3, 4)
    empty_bin = out.iloc[1]
    assert all(math.isnan(empty_bin[c]) for c in ["mean_score", "acceptance_rate", "ci_low", "ci_high"])
    assert out["n"].dtype == np.int64


def test_reliability_bins_edges():
    # A score on an edge belongs to the bin above it; 1.0 belongs to the last bin.
    out = reliability_bins([0.0, 0.3, 0.7, 1.0], [True] * 4, n_bins=10)
    assert out["n"].tolist() == [1, 0, 0, 1, 0, 0, 0, 1, 0, 1]
    one = reliability_bins([0.0, 0.5, 1.0], [True, False, True], n_bins=1)
    assert one["n"].tolist() == [3]


@pytest.mark.parametrize("seed", range(4))
def test_reliability_bins_random(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(500)
    accepted = rng.random(500) < scores  # calibrated by construction
    out = reliability_bins(scores, accepted)
    assert out["n"].sum() == 500 and len(out) == 10
    filled = out[out["n"] > 0]
    assert ((filled["ci_low"] <= filled["acceptance_rate"]) & (filled["acceptance_rate"] <= filled["ci_high"])).all()
    assert ((filled["bin_low"] <= filled["mean_score"]) & (filled["mean_score"] <= filled["bin_high"])).all()
    # Same answer from a pandas Series of 0/1 integers.
    again = reliability_bins(pd.Series(scores), pd.Series(accepted.astype(int)))
    pd.testing.assert_frame_equal(out, again)


def test_reliability_bins_no_data():
    out = reliability_bins([], [], n_bins=5)
    assert len(out) == 5 and out["n"].tolist() == [0] * 5 and out["acceptance_rate"].isna().all()


def test_reliability_bins_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([0.5, 1.2], [True, False])
    with pytest.raises(ValueError, match="NaN"):
        reliability_bins([0.5, float("nan")], [True, False])
    with pytest.raises(ValueError, match="missing"):
        reliability_bins([0.5, 0.6], [True, None])
    with pytest.raises(ValueError, match="missing"):
        reliability_bins([0.5, 0.6], np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="expected True/False"):
        reliability_bins([0.5, 0.6], ["yes", "no"])
    with pytest.raises(ValueError, match="one flag per score"):
        reliability_bins([0.5, 0.6], [True])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins([0.5], [True], n_bins=0)


# --- threshold for precision -------------------------------------------------------------------------


def brute_force_threshold(scores, accepted, target, min_support):
    """The lowest observed decided score t with support >= min_support and precision >= target, or None."""
    decided = [(s, a) for s, a in zip(scores, accepted, strict=True) if a is not None]
    for t in sorted({s for s, _ in decided}):
        above = [a for s, a in decided if s >= t]
        if len(above) >= min_support and sum(above) / len(above) >= target:
            return t
    return None


def test_threshold_hand_computed():
    # Sorted by score: 0.1 R, 0.2 R, 0.3 A, 0.4 R, 0.5 A, 0.6 A, 0.7 A, 0.8 A.
    scores = [0.8, 0.1, 0.5, 0.3, 0.7, 0.2, 0.6, 0.4]
    accepted = [True, False, True, True, True, False, True, False]
    # >= 0.3: 5 of 6 accepted (0.833); >= 0.5: 4 of 4.
    result = threshold_for_precision(scores, accepted, target=0.8, min_support=3)
    assert result == ThresholdResult(
        threshold=0.3,
        precision=5 / 6,
        ci_low=wilson_interval(5, 6)[0],
        ci_high=wilson_interval(5, 6)[1],
        support=6,
        coverage=6 / 8,
        reason=None,
    )
    assert threshold_for_precision(scores, accepted, target=1.0, min_support=3).threshold == 0.5
    # min_support 5 rules out 0.5 (4 items); 0.4 has 4 of 5 = 0.8 < 1.0.
    none = threshold_for_precision(scores, accepted, target=1.0, min_support=5)
    assert none.threshold is None and none.support == 0 and math.isnan(none.precision)
    assert "best is 0.833 at score >= 0.3" in none.reason


def test_threshold_ties_move_together():
    # Three items tie at 0.9 (two accepted, one rejected): a threshold of 0.9 takes all three.
    scores = [0.9, 0.9, 0.9, 0.95, 0.5]
    accepted = [True, True, False, True, False]
    # >= 0.5: 3/5; >= 0.9: 3/4 (never 2/2 or 3/3 by splitting the tie); >= 0.95: 1/1.
    result = threshold_for_precision(scores, accepted, target=0.75, min_support=1)
    assert (result.threshold, result.support, result.precision) == (0.9, 4, 0.75)
    assert threshold_for_precision(scores, accepted, target=0.76, min_support=2).threshold is None
    result = threshold_for_precision(scores, accepted, target=0.76, min_support=1)
    assert (result.threshold, result.support, result.precision) == (0.95, 1, 1.0)


def test_threshold_undecided_items_count_toward_coverage_only():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    accepted = [True, None, True, float("nan"), True, None, False, None]
    result = threshold_for_precision(scores, accepted, target=1.0, min_support=3)
    assert (result.threshold, result.support, result.precision) == (0.5, 3, 1.0)
    assert result.coverage == 5 / 8
    # Same with a nullable boolean Series.
    series = pd.Series(accepted, dtype="boolean")
    assert threshold_for_precision(scores, series, target=1.0, min_support=3) == result


def test_threshold_exact_target_is_reached():
    # 19 of 20 is exactly 0.95: a float comparison must not reject it.
    scores = np.linspace(0.5, 1.0, 20)
    accepted = [False] + [True] * 19
    result = threshold_for_precision(scores, accepted, target=0.95, min_support=20)
    assert result.threshold == 0.5 and result.precision == 0.95


def test_threshold_all_accepted_all_rejected_no_data():
    scores = np.linspace(0.1, 0.9, 40)
    result = threshold_for_precision(scores, [True] * 40)
    assert (result.threshold, result.coverage, result.support, result.precision) == (0.1, 1.0, 40, 1.0)
    rejected = threshold_for_precision(scores, [False] * 40)
    assert rejected.threshold is None and "best is 0.000" in rejected.reason
    for s, a in [([], []), ([0.5] * 40, [None] * 40), (scores[:10], [True] * 10)]:
        empty = threshold_for_precision(s, a)
        assert empty.threshold is None and "decided item" in empty.reason and math.isnan(empty.coverage)


@pytest.mark.parametrize("seed", range(20))
def test_threshold_never_below_target_and_is_lowest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    # Rounded scores make ties common; acceptance rises with score, with noise.
    scores = np.round(rng.random(n), 2)
    decided = rng.random(n) < 0.8
    accepted = [bool(rng.random() < s**0.3) if d else None for s, d in zip(scores, decided, strict=True)]
    target = float(rng.choice([0.8, 0.9, 0.95]))
    min_support = int(rng.integers(1, 30))
    result = threshold_for_precision(scores, accepted, target=target, min_support=min_support)
    assert result.threshold == brute_force_threshold(scores.tolist(), accepted, target, min_support)
    if result.threshold is not None:
        above = [a for s, a in zip(scores, accepted, strict=True) if s >= result.threshold and a is not None]
        assert result.precision >= target and result.support >= min_support
        assert result.precision == sum(above) / len(above) and result.support == len(above)
        assert result.coverage == np.mean(scores >= result.threshold)
        assert result.ci_low <= result.precision <= result.ci_high


def test_threshold_bad_input():
    with pytest.raises(ValueError, match="target"):
        threshold_for_precision([0.5], [True], target=0.0)
    with pytest.raises(ValueError, match="target"):
        threshold_for_precision([0.5], [True], target=1.5)
    with pytest.raises(ValueError, match="min_support"):
        threshold_for_precision([0.5], [True], min_support=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_for_precision([-0.1], [True])
    with pytest.raises(ValueError, match="expected True/False"):
        threshold_for_precision([0.5], [2])


# --- audits ------------------------------------------------------------------------------------------


def test_estimate_precision():
    est = estimate_precision(10, 8)
    assert isinstance(est, PrecisionEstimate)
    assert est.precision == 0.8 and (round(est.ci_low, 3), round(est.ci_high, 3)) == (0.490, 0.943)
    assert (est.n_audited, est.n_correct, est.confidence) == (10, 8, 0.95)
    assert estimate_precision(10, 8, confidence=0.99).ci_low < est.ci_low
    none = estimate_precision(0, 0)
    assert math.isnan(none.precision) and math.isnan(none.ci_low) and math.isnan(none.ci_high)
    with pytest.raises(ValueError):
        estimate_precision(10, 11)
    with pytest.raises(ValueError):
        estimate_precision(-1, 0)


@pytest.mark.parametrize(
    ("n_bulk", "kwargs", "expected"),
    [
        (0, {}, 0),
        (12, {}, 12),  # never more than the set
        (100, {}, 30),  # the minimum
        (1000, {}, 50),  # 5%
        (601, {}, 31),  # ceil(30.05)
        (100, {"share": 0.07, "minimum": 0}, 7),  # 0.07 * 100 is 7.000000000000001 in floats
        (3, {"share": 0.5, "minimum": 0}, 2),
        (50, {"share": 1.0}, 50),
    ],
)
def test_audit_sample_size(n_bulk, kwargs, expected):
    assert audit_sample_size(n_bulk, **kwargs) == expected


def test_audit_sample_size_bad_input():
    for n_bulk, kwargs in [(-1, {}), (10.0, {}), (10, {"share": 0}), (10, {"share": 1.1}), (10, {"minimum": -1})]:
        with pytest.raises(ValueError):
            audit_sample_size(n_bulk, **kwargs)


def test_analysis_module_imports_no_app_layers():
    code = (
        "import sys, analysis.calibration; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'duckdb', 'app', 'components')]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
