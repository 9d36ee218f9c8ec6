"""Tests of the verification EER: hand-computed EERs, ties, weights, per-group figures and the speaker bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.verification.eer import (
    all_trials,
    eer,
    eer_replicates,
    speaker_draws,
    speaker_groups,
    summarise,
    trial_weights,
)


def test_eer_hand_built_vertical_crossing():
    # sorted: .9 T, .8 T, .7 I, .4 T, .3 I, .2 I, .1 I. ROC points (FAR, FRR): (0,1) (0,2/3) (0,1/3) (1/4,1/3)
    # (1/4,0) ... FRR - FAR goes 1/12 -> -1/4 between (1/4,1/3) and (1/4,0): t = 1/4, EER = FAR = 1/4 (FRR too)
    scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1]
    same = [1, 1, 1, 0, 0, 0, 0]
    assert eer(scores, same) == pytest.approx(0.25)


def test_eer_hand_built_exact_point_and_perfect_separation():
    # .9 T, .8 I, .7 I, .6 T: points (0,1) (0,.5) (.5,.5): FRR = FAR = 0.5 exactly at a point
    assert eer([0.9, 0.6, 0.8, 0.7], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert eer([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == pytest.approx(0.0)
    assert eer([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == pytest.approx(1.0)


def test_eer_tie_between_target_and_impostor_is_one_diagonal_step():
    # one target and one impostor at the same score: the segment (0,1) -> (1,0) crosses at 0.5, in either order
    assert eer([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert eer([0.5, 0.5], [0, 1]) == pytest.approx(0.5)


def test_eer_weights_equal_repetition_and_nan_without_a_class():
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0, 0])
    w = np.array([1, 3, 1, 2, 1, 1, 2])
    rep = np.repeat(np.arange(7), w)
    assert eer(scores, same, weights=w) == pytest.approx(eer(scores[rep], same[rep]))
    assert np.isnan(eer([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError):
        eer([0.1, 0.2], [1, 2])


def test_eer_matches_sklearn_roc_crossing_on_random_scores():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.2
    s = rng.normal(size=500) + 1.5 * y
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    k = int(np.argmax(fnr <= fpr))
    t = (fnr[k - 1] - fpr[k - 1]) / ((fnr[k - 1] - fpr[k - 1]) - (fnr[k] - fpr[k]))
    assert eer(s, y) == pytest.approx(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def test_all_trials_and_bootstrap_weights():
    trials = all_trials(["a", "a", "b", "b", "c"])
    assert len(trials) == 10
    assert int(trials.same.sum()) == 2
    counts = np.array([2.0, 0.0, 3.0])  # a twice, b never, c three times
    w = trial_weights(trials, counts)
    for i in range(len(trials)):
        sa, sb = trials.speakers[trials.spk_a[i]], trials.speakers[trials.spk_b[i]]
        ma, mb = counts[trials.spk_a[i]], counts[trials.spk_b[i]]
        assert w[i] == (ma if sa == sb else ma * mb)
    draws = speaker_draws(3, n_boot=50, seed=1)
    assert draws.shape == (50, 3) and (draws.sum(axis=1) == 3).all()


def test_group_eers_gaps_and_intervals():
    rng = np.random.default_rng(0)
    spk = [f"s{i}" for i in range(12) for _ in range(4)]
    group = {f"s{i}": ("easy" if i < 6 else "hard") for i in range(12)}
    trials = all_trials(spk)
    labels = speaker_groups(trials, group)
    hard = (labels[trials.spk_a] == "hard") | (labels[trials.spk_b] == "hard")
    scores = rng.normal(size=len(trials)) + trials.same * np.where(hard, 0.5, 3.0)
    counts = speaker_draws(len(trials.speakers), n_boot=200, seed=0)
    rep = eer_replicates(scores, trials, {"g": labels}, counts)
    within_easy = (labels[trials.spk_a] == "easy") & (labels[trials.spk_b] == "easy")
    assert rep.values["g/easy"] == pytest.approx(eer(scores[within_easy], trials.same[within_easy]))
    assert rep.values["g/rest:easy"] == pytest.approx(rep.values["g/hard"])  # two groups: the rest is the other
    assert rep.values["g/gap"] == pytest.approx(rep.values["g/hard"] - rep.values["g/easy"])
    out = summarise(rep)
    g = out["groupings"]["g"]
    assert g["groups"]["hard"]["value"] > g["groups"]["easy"]["value"]
    for fig in (out["overall"], g["gap"], g["groups"]["easy"], g["groups"]["hard"]["vs_rest"]):
        assert fig["low"] <= fig["value"] <= fig["high"] or np.isclose(fig["value"], fig["low"])
    assert g["gap"]["low"] > 0  # this gap is large enough to exclude zero
    with pytest.raises(KeyError):
        speaker_groups(trials, {"s0": "x"})
