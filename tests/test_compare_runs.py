"""Two runs side by side (analysis.compare_runs): judging proposals by reviews or gold, and the paired bootstrap over
dialogues, against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.compare_runs import (
    ALL,
    COLUMNS,
    NO_REFERENCE,
    compare_table,
    default_pair,
    judge_pairs,
    paired_difference,
    reviewed_correct,
    same_value,
    simulated_items,
)


def test_same_value_compares_as_the_task_does():
    assert same_value("slots", '[{"type": "a", "value": "Big  Apple"}]', '[{"type": "a", "value": "big apple"}]')
    assert not same_value("intent", '"a"', '"b"')
    assert same_value("skill", '"x.y"', '"x.y"') and not same_value("failure_point", '"ASR"', '"NLU"')


@pytest.mark.parametrize("own, other, expected", [
    (("accept", None), ('"b"', None, None), 1.0),  # its own decision first
    (("correct", None), ('"a"', "accept", '"a"'), 0.0),
    (("reject", None), ('"b"', None, None), 0.0),
    ((None, None), ('"b"', "accept", '"b"'), 0.0),  # the other's accepted value is the truth
    ((None, None), ('"b"', "correct", '"a"'), 1.0),  # the other's correction says what A says
    ((None, None), ('"a"', "reject", None), 0.0),  # the same value as a rejected one
    ((None, None), ('"b"', "reject", None), math.nan),  # another value than a rejected one: unknown
    ((None, None), ('"b"', None, None), math.nan),
])
def test_reviewed_correct_rules(own, other, expected):
    got = reviewed_correct("intent", '"a"', own[0], *other)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def pairs() -> pd.DataFrame:
    """Four turns of intents (A's value, B's value, settled decisions, gold)."""
    return pd.DataFrame({
        "dialogue_id": ["d1", "d1", "d2", "d3"], "turn_index": [0, 1, 0, 0],
        "value_a": ['"x"', '"y"', '"x"', '"z"'], "value_b": ['"x"', '"x"', '"y"', '"z"'],
        "verdict_a": ["accept", None, "reject", None], "label_a": ['"x"', None, None, None],
        "verdict_b": [None, "correct", None, None], "label_b": [None, '"y"', None, None],
        "gold": ['"x"', '"y"', '"y"', None], "nlu_domain": ["a", "a", None, "b"]})


def test_judge_pairs_by_reviews_and_by_gold():
    reviewed = judge_pairs(pairs(), "intent", "reviewed")
    # turn 1: A accepted, B says the same; turn 2: B corrected to "y", A's "y"; turn 3: A rejected, B unknown
    # (another value); turn 4: nobody decided
    assert reviewed["correct_a"].tolist()[:3] == [1.0, 1.0, 0.0] and math.isnan(reviewed["correct_a"].iloc[3])
    assert reviewed["correct_b"].tolist()[:2] == [1.0, 0.0] and reviewed["correct_b"].iloc[2:].isna().all()
    assert reviewed["reference"].tolist() == ['"x"', '"y"', NO_REFERENCE, NO_REFERENCE]
    assert reviewed["disagree"].tolist() == [False, True, True, False]
    gold = judge_pairs(pairs(), "intent", "gold")
    assert gold["correct_a"].tolist()[:3] == [1.0, 1.0, 0.0] and gold["correct_b"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert math.isnan(gold["correct_a"].iloc[3]) and gold["reference"].iloc[3] == NO_REFERENCE
    with pytest.raises(ValueError, match="no gold label for task 'skill'"):
        judge_pairs(pairs(), "skill", "gold")


def test_paired_bootstrap_by_hand():
    # d1: A right, B wrong (B - A = -1); d2: both wrong (0). A replicate draws d1 twice (-1), each once (-1/2) or
    # d2 twice (0), with probabilities 1/4, 1/2, 1/4: the 95% interval of the difference is [-1, 0].
    r = paired_difference([1.0, 0.0], [0.0, 0.0], ["d1", "d2"], n_boot=4000, seed=1)
    assert (r["accuracy_a"], r["accuracy_b"], r["difference"], r["n"], r["n_groups"]) == (0.5, 0.0, -0.5, 2, 2)
    assert r["difference_ci"] == (-1.0, 0.0) and r["accuracy_b_ci"] == (0.0, 0.0)
    assert paired_difference([1.0, 0.0], [0.0, 0.0], ["d1", "d2"], n_boot=4000, seed=1) == r  # seeded


def test_the_bootstrap_is_paired():
    # Every dialogue: B right on one turn more than A of two. The dialogues differ in difficulty, so each run's
    # accuracy varies between replicates, but B - A is 1/2 in every replicate: a paired interval of width 0.
    a = [0, 0, 1, 0, 1, 0]
    b = [1, 0, 1, 1, 1, 1]
    r = paired_difference(a, b, ["d1", "d1", "d2", "d2", "d3", "d3"], n_boot=500, seed=0)
    assert r["difference"] == pytest.approx(0.5)
    assert r["difference_ci"] == pytest.approx((0.5, 0.5))
    assert r["accuracy_a_ci"][1] - r["accuracy_a_ci"][0] >= 1 / 3  # each run alone is far less certain


def test_unknown_items_are_left_out_of_both_runs():
    r = paired_difference([1.0, math.nan, 0.0], [1.0, 1.0, math.nan], ["d1", "d2", "d3"], n_boot=0)
    assert (r["n"], r["n_groups"], r["accuracy_a"], r["accuracy_b"]) == (1, 1, 1.0, 1.0)
    assert r["difference_ci"][0] != r["difference_ci"][0]  # NaN: one dialogue, no interval
    none = paired_difference([math.nan], [1.0], ["d1"])
    assert none["n"] == 0 and math.isnan(none["difference"])


def test_compare_table_overall_and_per_slice():
    judged = judge_pairs(pairs(), "intent", "gold")
    table = compare_table(judged, "nlu_domain", n_boot=0)
    assert list(table.columns) == COLUMNS
    assert table["group"].tolist() == [ALL, "a", "(none)"]  # "b" has no gold: no item compared
    overall = table.iloc[0]
    assert (overall["items"], overall["dialogues"]) == (3, 2)
    assert overall["accuracy_a"] == pytest.approx(2 / 3) and overall["accuracy_b"] == pytest.approx(2 / 3)
    assert overall["difference"] == pytest.approx(0.0)
    a = table.iloc[1]
    assert (a["items"], a["accuracy_a"], a["accuracy_b"], a["difference"]) == (2, 1.0, 0.5, -0.5)
    assert compare_table(judged, "nlu_domain", n_boot=0, min_items=2)["group"].tolist() == [ALL, "a"]
    by_label = compare_table(judged, "reference", n_boot=0)
    assert by_label["group"].tolist() == [ALL, '"y"', '"x"']  # two items with gold "y", one "x"


def test_default_pair_is_the_most_recent_two_runs_of_a_task():
    runs = pd.DataFrame({"run_id": [6, 4, 3, 3, 3, 2, 1, 1],
                         "task": ["items", "skill", "defect", "intent", "slots", "failure_point", "intent", "slots"]})
    assert default_pair(runs) == ("intent", 1, 3)  # intent and slots tie on runs 3 and 1: by name
    assert default_pair(pd.concat([runs, pd.DataFrame({"run_id": [5], "task": ["skill"]})])) == ("skill", 4, 5)
    assert default_pair(runs[runs["run_id"] != 1]) is None
    assert default_pair(pd.concat([runs, pd.DataFrame({"run_id": [7], "task": ["slots"]})])) == ("slots", 3, 7)


def test_simulated_items_counts_compared_items_decided_by_simulated_reviewers():
    judged = judge_pairs(pairs(), "intent", "gold").assign(
        reviewers_a=[["ana"], None, ["x (simulated)"], ["y (simulated)"]], reviewers_b=[None, ["bo (simulated)"],
                                                                                        None, None])
    assert simulated_items(judged) == 2  # the fourth has no gold: not compared
