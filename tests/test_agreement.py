"""Agreement statistics match textbook answers and independent brute-force / scikit-learn oracles."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from analysis.agreement import AgreementResult, agreement_by_task, cohens_kappa, krippendorff_alpha_nominal
from tests.helpers import ROOT

# --- oracles written independently of the module ------------------------------------------------------


def brute_force_alpha(units: dict) -> float:
    """alpha = 1 - D_o / D_e straight from the pairwise-disagreement definition (Krippendorff 2011).

    D_o: over every ordered pair of labels from different raters within an item, weighted 1 / (m_u - 1),
    the share that disagree. D_e: the same over every ordered pair of all pairable labels, ignoring items.
    """
    values = [[v for v in vs if v is not None] for vs in units.values()]
    values = [vs for vs in values if len(vs) >= 2]
    n = sum(len(vs) for vs in values)
    d_o = sum(sum(a != b for a, b in itertools.permutations(vs, 2)) / (len(vs) - 1) for vs in values) / n
    pooled = [v for vs in values for v in vs]
    d_e = sum(a != b for a, b in itertools.permutations(pooled, 2)) / (n * (n - 1))
    return 1.0 - d_o / d_e


def scotts_pi(a: list, b: list) -> float:
    p_o = np.mean([x == y for x, y in zip(a, b, strict=True)])
    pooled = pd.Series(a + b).value_counts(normalize=True)
    p_e = float((pooled**2).sum())
    return (p_o - p_e) / (1 - p_e)


def random_units(rng: np.random.Generator, *, n_items: int, n_raters: int, n_labels: int, p_missing: float):
    labels = [f"L{i}" for i in range(n_labels)]
    units = {}
    for item in range(n_items):
        truth = rng.integers(n_labels)
        row = []
        for _ in range(n_raters):
            if rng.random() < p_missing:
                row.append(None)
            # raters mostly agree with a hidden truth, so alpha lands well away from 0
            elif rng.random() < 0.7:
                row.append(labels[truth])
            else:
                row.append(labels[rng.integers(n_labels)])
        units[f"item{item}"] = row
    return units


# --- Cohen's kappa -----------------------------------------------------------------------------------


def test_kappa_wikipedia_example():
    # 50 items: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no. p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    result = cohens_kappa(a, b)
    assert result == AgreementResult(value=pytest.approx(0.4), observed=0.7, expected=0.5, n_items=50)


@pytest.mark.parametrize("seed", range(8))
def test_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    units = random_units(rng, n_items=60, n_raters=2, n_labels=int(rng.integers(2, 6)), p_missing=0.1)
    a, b = zip(*units.values(), strict=True)
    kept = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    expected = cohen_kappa_score([x for x, _ in kept], [y for _, y in kept])
    result = cohens_kappa(a, b)
    assert result.n_items == len(kept)
    assert result.value == pytest.approx(expected, abs=1e-12)
    assert cohens_kappa(b, a).value == pytest.approx(result.value, abs=1e-12)  # symmetric


def test_kappa_perfect_and_opposite():
    assert cohens_kappa(["a", "b", "c", "a"], ["a", "b", "c", "a"]).value == 1.0
    # Every item disagrees and both raters split 50/50: p_o = 0, p_e = 0.5 -> kappa = -1.
    assert cohens_kappa(["x", "y"] * 5, ["y", "x"] * 5).value == -1.0


def test_kappa_single_label_is_undefined_not_one():
    result = cohens_kappa(["<accepted>"] * 12, ["<accepted>"] * 12)
    assert math.isnan(result.value)
    assert (result.observed, result.expected, result.n_items) == (1.0, 1.0, 12)


def test_kappa_drops_missing_items():
    a = ["x", None, "y", "x", float("nan"), "y"]
    b = ["x", "y", "y", pd.NA, "x", "x"]
    assert cohens_kappa(a, b) == cohens_kappa(["x", "y", "y"], ["x", "y", "x"])
    assert cohens_kappa(a, b).n_items == 3


def test_kappa_no_items():
    for a, b in [([], []), ([None, "x"], ["y", None])]:
        result = cohens_kappa(a, b)
        assert result.n_items == 0
        assert all(math.isnan(v) for v in (result.value, result.observed, result.expected))


def test_kappa_accepts_arrays_and_series():
    a, b = np.array(["x", "y", "y", "x"]), pd.Series(["x", "y", "x", "x"])
    assert cohens_kappa(a, b) == cohens_kappa(list(a), list(b))


def test_kappa_rejects_bad_input():
    with pytest.raises(ValueError, match="same items"):
        cohens_kappa(["x", "y"], ["x"])
    with pytest.raises(ValueError, match="not a single str"):
        cohens_kappa("xy", "xy")
    with pytest.raises(ValueError, match="hashable"):
        cohens_kappa([["x"]], [["x"]])


# --- Krippendorff's alpha ----------------------------------------------------------------------------

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
# values 1-5, missing values; nominal alpha = 0.743. Unit 12 has a single value and is not pairable.
_ = None
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
}


def krippendorff_units() -> dict:
    return {u + 1: [KRIPPENDORFF_2011[o][u] for o in "ABCD"] for u in range(12)}


def test_alpha_krippendorff_2011_example():
    result = krippendorff_alpha_nominal(krippendorff_units())
    assert round(result.value, 3) == 0.743
    # The exact value: n = 40 pairable values, sum_{c!=k} o_ck = 8, sum_{c!=k} n_c n_k = 1600 - 384.
    assert result.value == pytest.approx(1 - 39 * 8 / 1216)
    assert result.n_items == 11
    assert result.observed == pytest.approx(1 - 8 / 40)
    assert result.value == pytest.approx(brute_force_alpha(krippendorff_units()))


@pytest.mark.parametrize("seed", range(12))
def test_alpha_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    units = random_units(
        rng,
        n_items=int(rng.integers(5, 40)),
        n_raters=int(rng.integers(2, 6)),
        n_labels=int(rng.integers(2, 6)),
        p_missing=float(rng.choice([0.0, 0.2, 0.5])),
    )
    expected = brute_force_alpha(units)
    result = krippendorff_alpha_nominal(units)
    assert result.value == pytest.approx(expected, abs=1e-12)
    assert result.n_items == sum(sum(v is not None for v in vs) >= 2 for vs in units.values())
    # alpha = (A_o - A_e) / (1 - A_e) ties the three reported figures together.
    assert result.value == pytest.approx((result.observed - result.expected) / (1 - result.expected), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_alpha_is_scotts_pi_with_small_sample_correction(seed):
    # Two raters, no missing values, N items: alpha = 1 - (2N - 1) / (2N) * (1 - pi).
    rng = np.random.default_rng(200 + seed)
    units = random_units(rng, n_items=25, n_raters=2, n_labels=3, p_missing=0.0)
    a, b = (list(x) for x in zip(*units.values(), strict=True))
    pi, n = scotts_pi(a, b), len(a)
    alpha = krippendorff_alpha_nominal(units).value
    assert alpha == pytest.approx(1 - (2 * n - 1) / (2 * n) * (1 - pi), abs=1e-12)
    assert alpha != pytest.approx(pi, abs=1e-6)


def test_alpha_perfect_agreement_is_one():
    units = {1: ["a", "a", None], 2: ["b", "b", "b"], 3: ["c", None, "c"], 4: ["a"]}
    assert krippendorff_alpha_nominal(units).value == 1.0


def test_alpha_single_category_is_undefined():
    result = krippendorff_alpha_nominal({1: ["ok", "ok"], 2: ["ok", "ok", "ok"], 3: ["other"]})
    assert math.isnan(result.value)
    assert (result.observed, result.expected, result.n_items) == (1.0, 1.0, 2)


def test_alpha_no_pairable_items():
    for units in [{}, {1: ["a"], 2: ["b", None], 3: []}]:
        result = krippendorff_alpha_nominal(units)
        assert result.n_items == 0 and math.isnan(result.value) and math.isnan(result.observed)


def test_alpha_ignores_unpairable_items_order_and_label_names():
    units = krippendorff_units()
    base = krippendorff_alpha_nominal(units).value
    with_singletons = {**units, "extra1": ["9"], "extra2": [None, None, 7]}
    assert krippendorff_alpha_nominal(with_singletons).value == pytest.approx(base, abs=1e-12)
    renamed = {k: [None if v is None else f"label-{v}" for v in vs] for k, vs in reversed(units.items())}
    assert krippendorff_alpha_nominal(renamed).value == pytest.approx(base, abs=1e-12)
    # Missing labels may be None or simply left out.
    compact = {k: [v for v in vs if v is not None] for k, vs in units.items()}
    assert krippendorff_alpha_nominal(compact).value == pytest.approx(base, abs=1e-12)


def test_alpha_rejects_bad_input():
    with pytest.raises(ValueError, match="mapping"):
        krippendorff_alpha_nominal([["a", "b"]])
    with pytest.raises(ValueError, match="not a single str"):
        krippendorff_alpha_nominal({1: "ab"})


# --- per task ----------------------------------------------------------------------------------------

BY_TASK_COLUMNS = ["task", "reviewers", "items", "statistic", "value", "observed_agreement"]


def decisions_frame() -> pd.DataFrame:
    rows = []
    # task "intent": two reviewers share 50 items (the Wikipedia kappa table); r3 rates only unshared items.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        rows += [("intent", i, "r1", x), ("intent", i, "r2", y)]
    rows += [("intent", 100, "r3", "yes"), ("intent", 101, "r1", "no")]
    # task "slots": the Krippendorff 2011 table, observers as reviewers, missing values as absent rows.
    for obs, labels in KRIPPENDORFF_2011.items():
        rows += [("slots", f"c{u}", obs, str(v)) for u, v in enumerate(labels) if v is not None]
    # task "solo": nobody shares an item.
    rows += [("solo", 1, "r1", "x"), ("solo", 2, "r2", "x")]
    return pd.DataFrame(rows, columns=["task", "item", "reviewer", "label"])


def test_agreement_by_task():
    out = agreement_by_task(decisions_frame())
    assert list(out.columns) == BY_TASK_COLUMNS
    assert out["task"].tolist() == ["intent", "slots", "solo"]
    rows = out.set_index("task")

    assert rows.loc["intent", "statistic"] == "cohen_kappa"
    assert (rows.loc["intent", "reviewers"], rows.loc["intent", "items"]) == (2, 50)
    assert rows.loc["intent", "value"] == pytest.approx(0.4)
    assert rows.loc["intent", "observed_agreement"] == pytest.approx(0.7)

    assert rows.loc["slots", "statistic"] == "krippendorff_alpha"
    assert (rows.loc["slots", "reviewers"], rows.loc["slots", "items"]) == (4, 11)
    assert rows.loc["slots", "value"] == pytest.approx(krippendorff_alpha_nominal(krippendorff_units()).value)
    # Raw pair share, counted by hand from the table: units 1-11 have 3,6,6,6,6,6,6,6,6,3,1 pairs, and
    # 3,3,6,6,6,0,6,3,6,3,1 of them agree -> 43 / 55.
    assert rows.loc["slots", "observed_agreement"] == pytest.approx(43 / 55)

    assert (rows.loc["solo", "reviewers"], rows.loc["solo", "items"]) == (0, 0)
    assert math.isnan(rows.loc["solo", "value"]) and math.isnan(rows.loc["solo", "observed_agreement"])
    assert out["reviewers"].dtype == np.int64 and out["value"].dtype == np.float64


def test_agreement_by_task_three_reviewers_matches_alpha():
    rng = np.random.default_rng(5)
    units = random_units(rng, n_items=30, n_raters=3, n_labels=4, p_missing=0.3)
    rows = [("t", item, f"r{j}", v) for item, vs in units.items() for j, v in enumerate(vs) if v is not None]
    frame = pd.DataFrame(rows, columns=["task", "item", "reviewer", "label"])
    row = agreement_by_task(frame).iloc[0]
    assert row["value"] == pytest.approx(krippendorff_alpha_nominal(units).value, abs=1e-12)
    assert row["items"] == krippendorff_alpha_nominal(units).n_items


def test_agreement_by_task_missing_labels_are_unrated():
    frame = pd.DataFrame(
        {"task": ["t"] * 4, "item": [1, 1, 2, 2], "reviewer": ["a", "b", "a", "b"], "label": ["x", "x", "y", None]}
    )
    frame.loc[4] = ["all-missing", 1, "a", None]
    out = agreement_by_task(frame)
    assert out["task"].tolist() == ["all-missing", "t"]
    assert out.iloc[0]["items"] == 0 and math.isnan(out.iloc[0]["value"])
    row = out.iloc[1]
    assert (row["items"], row["reviewers"]) == (1, 2)
    assert math.isnan(row["value"])  # one shared item, one label: kappa is undefined
    assert row["observed_agreement"] == 1.0


def test_agreement_by_task_empty_and_bad_input():
    empty = agreement_by_task(pd.DataFrame(columns=["task", "item", "reviewer", "label"]))
    assert empty.empty and list(empty.columns) == BY_TASK_COLUMNS
    with pytest.raises(ValueError, match="lacks column"):
        agreement_by_task(pd.DataFrame({"task": [], "item": [], "label": []}))
    duplicated = pd.DataFrame({"task": ["t", "t"], "item": [1, 1], "reviewer": ["a", "a"], "label": ["x", "y"]})
    with pytest.raises(ValueError, match="final label once"):
        agreement_by_task(duplicated)
    with pytest.raises(ValueError, match="reviewer has 1 missing"):
        agreement_by_task(pd.DataFrame({"task": ["t"], "item": [1], "reviewer": [None], "label": ["x"]}))


def test_analysis_module_imports_no_app_layers():
    code = (
        "import sys, analysis.agreement; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'duckdb', 'app', 'components')]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
