"""Model vs human parity (analysis.parity) against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.parity import ALL_LABELS, COLUMNS, parity_table


def rows(task: str, item: int, proposal: str, labels: dict[str, str | None]) -> list[dict]:
    return [{"task": task, "item": item, "reviewer": r, "label": v, "proposal": proposal} for r, v in labels.items()]


def hand_example() -> pd.DataFrame:
    """Five intent items proposed "p" or "q":
    1 (p): ana p, ben p              h = 1,  a = 1
    2 (p): ana p, ben x              h = 0,  a = 1/2
    3 (q): ana <rejected>, ben <rejected>   h = 1, a = 0
    4 (p): ana x, ben y, cy (simulated) p   h = 0 (0 of 3 pairs), a = 1/3
    5 (p): ana p only                left out (one human label)
    H = (1 + 0 + 1 + 0) / 4 = 1/2, M = (1 + 1/2 + 0 + 1/3) / 4 = 11/24, R = 11/12."""
    return pd.DataFrame(
        rows("intent", 1, "p", {"ana": "p", "ben": "p"}) + rows("intent", 2, "p", {"ana": "p", "ben": "x"})
        + rows("intent", 3, "q", {"ana": "<rejected>", "ben": "<rejected>"})
        + rows("intent", 4, "p", {"ana": "x", "ben": "y", "cy (simulated)": "p"})
        + rows("intent", 5, "p", {"ana": "p"}))


def test_three_reviewers_and_a_missing_label_by_hand():
    # item 1: a, a, b proposed b: pairs (a, a) agree, (a, b) twice do not: h = 1/3; a = 1/3. Item 2: x, x and a
    # missing label (not labelled): h = 1, a = 0. H = 2/3, M = 1/6, R = 1/4.
    df = pd.DataFrame(rows("intent", 1, "b", {"r1": "a", "r2": "a", "r3": "b"})
                      + rows("intent", 2, "p", {"r1": "x", "r2": "x", "r3": None}))
    row = parity_table(df, n_boot=0, by_label=False).iloc[0]
    assert (row["items"], row["reviewers"], row["human_labels"]) == (2, 3, 5)
    assert row["human_agreement"] == pytest.approx(2 / 3) and row["model_agreement"] == pytest.approx(1 / 6)
    assert row["ratio"] == pytest.approx(1 / 4)


def test_parity_per_task_and_per_label_by_hand():
    table = parity_table(hand_example(), n_boot=0)
    assert list(table.columns) == COLUMNS
    overall = table.iloc[0]
    assert (overall["task"], overall["label"]) == ("intent", ALL_LABELS)
    assert overall["items"] == 4 and overall["reviewers"] == 3
    assert overall["human_labels"] == 9 and overall["simulated_labels"] == 1
    assert overall["human_agreement"] == pytest.approx(1 / 2)
    assert overall["model_agreement"] == pytest.approx(11 / 24)
    assert overall["ratio"] == pytest.approx(11 / 12)
    assert math.isnan(overall["ratio_low"]) and math.isnan(overall["ratio_high"])  # n_boot 0: no interval
    # per proposed value: p on items 1, 2, 4 (H = 1/3, M = (1 + 1/2 + 1/3) / 3 = 11/18, R = 11/6); q on item 3
    p, q = table.iloc[1], table.iloc[2]
    assert (p["label"], p["items"], q["label"], q["items"]) == ("p", 3, "q", 1)
    assert p["human_agreement"] == pytest.approx(1 / 3) and p["model_agreement"] == pytest.approx(11 / 18)
    assert p["ratio"] == pytest.approx(11 / 6)  # the model agrees with a reviewer more than they agree together
    assert (q["human_agreement"], q["model_agreement"], q["ratio"]) == (1.0, 0.0, 0.0)
    assert len(parity_table(hand_example(), n_boot=0, min_items=2)) == 2  # q (one item) left out
    assert len(parity_table(hand_example(), n_boot=0, by_label=False)) == 1


def test_ratio_is_undefined_when_reviewers_never_agree():
    df = pd.DataFrame(rows("slots", 1, "p", {"ana": "p", "ben": "x"}) + rows("slots", 2, "p", {"ana": "y", "ben": "p"}))
    row = parity_table(df, n_boot=0, by_label=False).iloc[0]
    assert row["human_agreement"] == 0.0 and row["model_agreement"] == 0.5 and math.isnan(row["ratio"])


def test_bootstrap_over_items_by_hand():
    # two items: (h, a) = (1, 1) and (1, 0). A replicate draws both items twice (R = 1 or 0) or each once (1/2),
    # with probabilities 1/4, 1/4, 1/2: the 95% interval of R is [0, 1]; H is 1 in every replicate.
    df = pd.DataFrame(rows("intent", 1, "p", {"ana": "p", "ben": "p"})
                      + rows("intent", 2, "p", {"ana": "x", "ben": "x"}))
    row = parity_table(df, n_boot=2000, seed=3, by_label=False).iloc[0]
    assert (row["human_agreement"], row["model_agreement"], row["ratio"]) == (1.0, 0.5, 0.5)
    assert (row["human_low"], row["human_high"]) == (1.0, 1.0)
    assert (row["ratio_low"], row["ratio_high"]) == (0.0, 1.0)
    assert (row["model_low"], row["model_high"]) == (0.0, 1.0)
    again = parity_table(df, n_boot=2000, seed=3, by_label=False).iloc[0]
    assert again.equals(row)  # deterministic for the seed


def test_interval_holds_the_point_on_a_larger_example():
    df = pd.concat([hand_example()] * 1, ignore_index=True)
    big = pd.concat([df.assign(item=df["item"] + 10 * k) for k in range(20)], ignore_index=True)
    row = parity_table(big, n_boot=500, seed=0, by_label=False).iloc[0]
    assert row["items"] == 80 and row["ratio"] == pytest.approx(11 / 12)
    assert row["ratio_low"] < row["ratio"] < row["ratio_high"]


def test_no_item_with_two_reviewers_gives_an_empty_table():
    table = parity_table(pd.DataFrame(rows("intent", 1, "p", {"ana": "p", "ben": None})), n_boot=10)
    assert table.empty and list(table.columns) == COLUMNS
    nothing = pd.DataFrame(columns=["task", "item", "reviewer", "label", "proposal"])
    assert list(parity_table(nothing).columns) == COLUMNS


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"task": ["t"], "item": [1], "reviewer": ["a"], "label": ["x"]}), "lacks column"),
    (pd.DataFrame(rows("t", 1, "p", {"a": "x"}) * 2), "more than once"),
    (pd.DataFrame(rows("t", 1, "p", {"a": "x"}) + rows("t", 1, "q", {"b": "x"})), "more than one proposal"),
])
def test_bad_input_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        parity_table(bad, n_boot=0)
