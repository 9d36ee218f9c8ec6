"""Evaluation maths of the label-generation model: precision vs coverage, slot spans and BIO tags, goal
boundaries, and the reports with cluster-bootstrap intervals. Expected values are worked out by hand in the
comments; the bootstrap is checked against a naive re-implementation that expands the resampled dialogues."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.failure_points import evaluation as failure_eval
from analysis.labels import evaluation as lm

# --- precision vs coverage -------------------------------------------------------------------------------

# Six labels, given out of order. Sorted by confidence:
#   0.9 T | 0.8 T, 0.8 F | 0.6 T, 0.6 T | 0.3 F
# threshold 0.9: 1 labelled, 1 correct -> coverage 1/6, precision 1
# threshold 0.8: 3 labelled, 2 correct -> coverage 3/6, precision 2/3 (the tie enters together)
# threshold 0.6: 5 labelled, 4 correct -> coverage 5/6, precision 4/5
# threshold 0.3: 6 labelled, 4 correct -> coverage 1,   precision 4/6
CONF = [0.6, 0.8, 0.3, 0.9, 0.8, 0.6]
CORRECT = [True, False, False, True, True, True]


def test_precision_coverage_by_hand_with_ties():
    curve = lm.precision_coverage(CORRECT, CONF)
    assert list(curve.columns) == ["threshold", "labelled", "coverage", "precision"]
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.6, 0.3]
    assert curve["labelled"].tolist() == [1, 3, 5, 6]
    np.testing.assert_allclose(curve["coverage"], [1 / 6, 3 / 6, 5 / 6, 1.0])
    np.testing.assert_allclose(curve["precision"], [1.0, 2 / 3, 4 / 5, 4 / 6])
    # the same labels in another order give the same curve
    order = [3, 0, 5, 1, 2, 4]
    pd.testing.assert_frame_equal(curve, lm.precision_coverage(np.array(CORRECT)[order], np.array(CONF)[order]))


def test_threshold_for_precision_takes_the_largest_coverage():
    curve = lm.precision_coverage(CORRECT, CONF)
    # precision >= 0.75 at thresholds 0.9 (coverage 1/6) and 0.6 (5/6): the largest coverage wins, although
    # the threshold 0.8 between them is below the target
    assert lm.threshold_for_precision(curve, 0.75)["threshold"] == 0.6
    assert lm.threshold_for_precision(curve, 1.0)["threshold"] == 0.9
    assert lm.threshold_for_precision(curve, 0.5)["threshold"] == 0.3
    assert lm.threshold_for_precision(curve, 1.01) is None
    assert lm.coverage_at_precision(CORRECT, CONF, 0.75) == pytest.approx(5 / 6)
    assert lm.coverage_at_precision(CORRECT, CONF, 1.01) == 0.0


def test_split_at_and_empty_and_bad_input():
    accept, review = lm.split_at([0.6, 0.8, 0.3, float("nan")], 0.6)
    assert accept.tolist() == [True, True, False, False] and review.tolist() == [False, False, True, True]
    empty = lm.precision_coverage([], [])
    assert empty.empty and list(empty.columns) == ["threshold", "labelled", "coverage", "precision"]
    assert lm.coverage_at_precision([], [], 0.9) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        lm.precision_coverage([True], [float("nan")])
    with pytest.raises(ValueError, match="equal length"):
        lm.precision_coverage([True, False], [0.5])
    with pytest.raises(ValueError, match="boolean"):
        lm.precision_coverage([2, 0], [0.5, 0.4])


# --- slots -----------------------------------------------------------------------------------------------

def _s(typ: str, value: str) -> dict:
    return {"type": typ, "value": value}


def test_slot_set_normalises_values_not_types():
    assert lm.slot_set([_s("city", "  New \t York "), _s("city", "new york"), _s("City", "x")]) == frozenset(
        {("city", "new york"), ("City", "x")})
    with pytest.raises(ValueError, match="'value'"):
        lm.slot_set([{"type": "city"}])


def test_slot_prf_by_hand():
    gold = [[_s("city", "New  York"), _s("date", "today")], [], [_s("person", "Ann")]]
    pred = [[_s("city", "new york "), _s("city", "new york"), _s("date", "tomorrow")], [_s("time", "5 pm")], []]
    # turn 1: city matches (the duplicate counts once) -> tp 1; date tomorrow fp 1; date today fn 1
    # turn 2: fp 1; turn 3: fn 1. Totals tp 1, fp 2, fn 2: P = R = 1/3, F1 = 2/(2+2+2) = 1/3
    p, r, f1, tp, fp, fn = lm.slot_prf(gold, pred)
    assert (tp, fp, fn) == (1, 2, 2)
    assert (p, r, f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert all(math.isnan(x) for x in lm.slot_prf([[]], [[]])[:3])
    with pytest.raises(ValueError, match="one entry per turn"):
        lm.slot_prf([[]], [])


def test_bio_round_trip_and_case():
    tokens = "Play Bohemian Rhapsody by QUEEN".split()
    slots = [_s("song", "bohemian rhapsody"), _s("artist", "Queen")]
    tags = lm.bio_tags(tokens, slots)
    assert tags == ["O", "B-song", "I-song", "O", "B-artist"]
    assert lm.spans_from_bio(tokens, tags) == [_s("song", "Bohemian Rhapsody"), _s("artist", "QUEEN")]
    assert lm.slot_set(lm.spans_from_bio(tokens, tags)) == lm.slot_set(slots)


def test_bio_overlaps_repeats_and_missing_values():
    tokens = "fly from new york to new york city".split()
    slots = [_s("from", "new york"), _s("to", "new york city"), _s("state", "new york"), _s("city", "boston"),
             _s("empty", "  ")]
    # "from" takes tokens 2-3; "to" takes 5-7; "state" finds both occurrences used and is skipped;
    # boston is not in the tokens (e.g. misrecognised); an empty value is skipped
    assert lm.bio_tags(tokens, slots) == ["O", "O", "B-from", "I-from", "O", "B-to", "I-to", "I-to"]
    # a repeated value takes the first occurrence not yet used
    assert lm.bio_tags("new york new york".split(), [_s("c", "new york")] * 2) == ["B-c", "I-c", "B-c", "I-c"]
    # the first slot wins an overlap, whatever its length
    assert lm.bio_tags("new york city".split(), [_s("state", "york"), _s("city", "new york city")]) == [
        "O", "B-state", "O"]
    assert lm.bio_tags([], [_s("c", "x")]) == []


def test_spans_from_bio_edge_cases():
    tokens = ["w1", "w2", "w3", "w4", "w5", "w6", "w7"]
    tags = ["B-a", "I-b", "I-b", "O", "I-a", "B-a", "B-a"]
    # I-b after B-a starts a b span; I-a after O starts an a span; B-a B-a are two spans
    assert lm.spans_from_bio(tokens, tags) == [_s("a", "w1"), _s("b", "w2 w3"), _s("a", "w5"), _s("a", "w6"),
                                               _s("a", "w7")]
    for bad in ("X-a", "B-", "B"):
        with pytest.raises(ValueError, match="bad BIO tag"):
            lm.spans_from_bio(["w"], [bad])
    with pytest.raises(ValueError, match="equal length"):
        lm.spans_from_bio(["w"], [])


# --- goal boundaries -------------------------------------------------------------------------------------

# Two dialogues: turns 0-2 and 3-4.
FIRST = [True, False, False, True, False]
GOLD_START = [True, False, True, True, True]
PRED_START = [True, True, True, False, False]
# Turns 1, 2, 4 count: gold F T T, pred T T F -> tp 1 (turn 2), fp 1 (turn 1), fn 1 (turn 4):
# P = R = F1 = 1/2. (Counting the first turns would add a tp and an fn.)


def test_boundary_prf_excludes_first_turns():
    assert lm.boundary_prf(GOLD_START, PRED_START, FIRST) == pytest.approx((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="equal length"):
        lm.boundary_prf(GOLD_START, PRED_START, FIRST[:-1])


def test_boundary_report_matches_boundary_prf():
    rep = lm.boundary_report(GOLD_START, PRED_START, FIRST, ["a", "a", "a", "b", "b"], n_boot=50)
    assert (rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (rep["n"], rep["n_groups"], rep["tp"], rep["fp"], rep["fn"]) == (3, 2, 1, 1, 1)
    with pytest.raises(ValueError, match="no rows"):
        lm.boundary_report([True, True], [True, False], [True, True], ["a", "b"])
    with pytest.raises(ValueError, match="one entry per turn"):
        lm.boundary_report(GOLD_START, PRED_START, FIRST, ["a"])


# --- reports ---------------------------------------------------------------------------------------------

def test_binary_report_point_by_hand():
    y_true = [True, True, False, False, True, False, True, False]
    y_pred = [True, False, False, True, True, False, False, False]
    # tp rows 0, 4; fn rows 1, 6; fp row 3; tn rows 2, 5, 7
    # accuracy 5/8, precision 2/3, recall 2/4, F1 = 4/(4+1+2) = 4/7
    rep = lm.binary_report(y_true, y_pred, ["d1", "d1", "d2", "d2", "d3", "d3", "d4", "d4"], n_boot=200)
    assert (rep["tp"], rep["fp"], rep["fn"], rep["tn"]) == (2, 1, 2, 3)
    assert (rep["accuracy"], rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((5 / 8, 2 / 3, 1 / 2, 4 / 7))
    assert (rep["n"], rep["n_groups"], rep["resampled"]) == (8, 4, "dialogues")
    # cross-check against failure_eval's confusion-matrix route (no zero denominators here)
    p, r, f1, _ = failure_eval.prf_from_confusion(failure_eval.confusion_matrix(
        np.array(y_true, int), np.array(y_pred, int), n_labels=2))
    assert (rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((p[1], r[1], f1[1]))


def _random_dialogues(n_dialogues: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_dialogues)
    groups = np.repeat([f"d{i:03d}" for i in range(n_dialogues)], sizes)
    y_true = rng.random(len(groups)) < 0.4
    y_pred = np.where(rng.random(len(groups)) < 0.8, y_true, ~y_true)
    return y_true, y_pred, groups


def test_binary_report_is_deterministic_and_intervals_contain_the_point():
    y_true, y_pred, groups = _random_dialogues(60, seed=1)
    a = lm.binary_report(y_true, y_pred, groups, n_boot=400, seed=7)
    assert a == lm.binary_report(y_true, y_pred, groups, n_boot=400, seed=7)
    assert a != lm.binary_report(y_true, y_pred, groups, n_boot=400, seed=8)
    for name in ("accuracy", "precision", "recall", "f1"):
        lo, hi = a[f"{name}_ci"]
        assert lo < a[name] < hi, name


def test_bootstrap_matches_a_naive_expansion_of_resampled_dialogues():
    y_true, y_pred, groups = _random_dialogues(9, seed=2)
    n_boot, seed = 60, 3
    rep = lm.binary_report(y_true, y_pred, groups, n_boot=n_boot, seed=seed)
    names = np.unique(groups)  # the report orders groups by their sorted string ids
    counts = np.random.default_rng(seed).multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_boot)
    f1s = []
    for row in counts:
        rows = np.concatenate([np.flatnonzero(groups == g) for g, c in zip(names, row, strict=True)
                               for _ in range(c)])
        tp = np.sum(y_true[rows] & y_pred[rows])
        f1s.append(2 * tp / (2 * tp + np.sum(y_true[rows] != y_pred[rows])))
    assert rep["f1_ci"] == pytest.approx((np.quantile(f1s, 0.025), np.quantile(f1s, 0.975)))


def test_bootstrap_in_chunks_gives_the_same_replicates(monkeypatch):
    y_true, y_pred, groups = _random_dialogues(30, seed=4)
    whole = lm.binary_report(y_true, y_pred, groups, n_boot=100, seed=5)
    monkeypatch.setattr(lm, "_BOOT_CELLS", 70)  # 2 replicates per chunk
    assert lm.binary_report(y_true, y_pred, groups, n_boot=100, seed=5) == whole


def test_identical_dialogues_give_a_zero_width_interval():
    # every dialogue has one tp, one fp, one fn: every replicate equals the point, F1 = 2/(2+1+1) = 1/2
    y_true = [True, False, True] * 5
    y_pred = [True, True, False] * 5
    rep = lm.binary_report(y_true, y_pred, np.repeat(np.arange(5), 3), n_boot=100)
    assert rep["f1"] == 0.5 and rep["f1_ci"] == pytest.approx((0.5, 0.5))


@pytest.mark.filterwarnings("error")
def test_degenerate_reports():
    # no positives at all: precision, recall and F1 undefined (NaN), accuracy 1, no warnings
    rep = lm.binary_report([False] * 4, [False] * 4, ["a", "a", "b", "b"], n_boot=50)
    assert rep["accuracy"] == 1.0 and rep["accuracy_ci"] == (1.0, 1.0)
    for name in ("precision", "recall", "f1"):
        assert math.isnan(rep[name]) and all(math.isnan(x) for x in rep[f"{name}_ci"])
    # gold positives only in dialogue "a": replicates without "a" leave recall undefined and are dropped
    rep = lm.binary_report([True, False, False, False], [True, False, True, False], ["a", "a", "b", "b"],
                           n_boot=200)
    assert rep["recall"] == 1.0 and rep["recall_ci"] == (1.0, 1.0)
    # one group, or n_boot 0: points defined, intervals NaN
    for groups, n_boot in ((["a"] * 4, 100), (None, 0)):
        rep = lm.binary_report([True, False, True, False], [True, True, True, False], groups, n_boot=n_boot)
        assert rep["precision"] == pytest.approx(2 / 3) and all(math.isnan(x) for x in rep["precision_ci"])
    # without groups turns are resampled
    assert lm.binary_report([True, False], [True, False], n_boot=10)["n_groups"] == 2
    for call in (lambda: lm.binary_report([], []), lambda: lm.intent_report([], []),
                 lambda: lm.slot_report([], [])):
        with pytest.raises(ValueError, match="no rows"):
            call()
    with pytest.raises(ValueError, match="one entry per row"):
        lm.binary_report([True], [True], ["a", "b"])
    with pytest.raises(ValueError, match="confidence"):
        lm.binary_report([True], [True], confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        lm.binary_report([True], [True], n_boot=-1)


def test_intent_report_by_hand_and_against_failure_eval():
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "d"]
    # per-class F1 = 2tp / (gold + predicted): a 2/(2+1) = 2/3; b 4/(2+3) = 4/5; c 0/(1+0) = 0;
    # d is not a gold class, so it is not averaged. macro = (2/3 + 4/5 + 0) / 3 = 22/45; accuracy 3/5
    rep = lm.intent_report(y_true, y_pred, ["x", "x", "y", "y", "z"], n_boot=100)
    assert rep["macro_f1"] == pytest.approx(22 / 45) and rep["accuracy"] == pytest.approx(3 / 5)
    assert rep["n_classes"] == 3
    codes = {"a": 0, "b": 1, "c": 2, "d": 3}
    t, p = [codes[x] for x in y_true], [codes[x] for x in y_pred]
    assert rep["macro_f1"] == pytest.approx(failure_eval.macro_f1(t, p, labels=[0, 1, 2]))


def test_intent_report_replicates_average_over_their_own_gold_classes():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(12), 4)
    y_true = rng.choice(list("abcde"), len(groups))
    y_pred = np.where(rng.random(len(groups)) < 0.7, y_true, rng.choice(list("abcdef"), len(groups)))
    n_boot, seed = 40, 9
    rep = lm.intent_report(list(y_true), list(y_pred), groups, n_boot=n_boot, seed=seed)
    assert rep == lm.intent_report(list(y_true), list(y_pred), groups, n_boot=n_boot, seed=seed)
    codes = {c: i for i, c in enumerate("abcdef")}
    t, p = np.array([codes[x] for x in y_true]), np.array([codes[x] for x in y_pred])
    counts = np.random.default_rng(seed).multinomial(12, np.full(12, 1 / 12), size=n_boot)
    names = np.unique(groups.astype(str))  # group ids compare as strings: "0", "1", "10", "11", "2", ...
    macro = []
    for row in counts:
        rows = np.concatenate([np.flatnonzero(groups.astype(str) == g) for g, c in zip(names, row, strict=True)
                               for _ in range(c)])
        macro.append(failure_eval.macro_f1(t[rows], p[rows], labels=np.unique(t[rows]).tolist()))
    assert rep["macro_f1_ci"] == pytest.approx((np.quantile(macro, 0.025), np.quantile(macro, 0.975)))
    lo, hi = rep["macro_f1_ci"]
    assert lo < rep["macro_f1"] < hi


def test_slot_report_matches_slot_prf_and_a_naive_bootstrap():
    rng = np.random.default_rng(10)
    values = ["new york", "boston", "today", "5 pm", "ann"]
    gold, pred, groups = [], [], []
    for d in range(15):
        for _ in range(int(rng.integers(1, 4))):
            g = [_s("t", v) for v in rng.choice(values, int(rng.integers(0, 3)), replace=False)]
            pred.append([s for s in g if rng.random() < 0.7] + ([_s("t", "paris")] if rng.random() < 0.3 else []))
            gold.append(g)
            groups.append(f"d{d:02d}")
    n_boot, seed = 50, 11
    rep = lm.slot_report(gold, pred, groups, n_boot=n_boot, seed=seed)
    p, r, f1, tp, fp, fn = lm.slot_prf(gold, pred)
    assert (rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((p, r, f1))
    assert (rep["tp"], rep["fp"], rep["fn"]) == (tp, fp, fn)
    groups = np.array(groups)
    counts = np.random.default_rng(seed).multinomial(15, np.full(15, 1 / 15), size=n_boot)
    recalls = []
    for row in counts:
        rows = [i for d in range(15) for _ in range(row[d]) for i in np.flatnonzero(groups == f"d{d:02d}")]
        recalls.append(lm.slot_prf([gold[i] for i in rows], [pred[i] for i in rows])[1])
    assert rep["recall_ci"] == pytest.approx((np.quantile(recalls, 0.025), np.quantile(recalls, 0.975)))
    lo, hi = rep["f1_ci"]
    assert lo < rep["f1"] < hi
