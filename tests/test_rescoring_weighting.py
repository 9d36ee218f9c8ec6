"""Task-weight schedules of the rescoring LM: fixed, the linear ramp, randomized weighted majority (exact updates,
the mistake signal, the sampled mode) and make_schedule."""

from __future__ import annotations

import pytest

from analysis.rescoring.config import TASKS, RescoringConfig
from analysis.rescoring.weighting import FixedWeights, LinearRamp, RandomizedWeightedMajority, make_schedule


def test_rwm_weights_follow_a_constructed_sequence_of_mistakes_exactly():
    rwm = RandomizedWeightedMajority(TASKS, eta=0.5, seed=0)
    assert rwm.weights() == pytest.approx({"lm": 1 / 3, "intent": 1 / 3, "slots": 1 / 3})
    # raw weights (1, 1, 1) -> lm wrong: (0.5, 1, 1)
    assert rwm.update({"lm": True, "intent": False, "slots": False}) == pytest.approx(
        {"lm": 0.2, "intent": 0.4, "slots": 0.4})
    # -> lm and intent wrong: (0.25, 0.5, 1)
    assert rwm.update({"lm": True, "intent": True, "slots": False}) == pytest.approx(
        {"lm": 1 / 7, "intent": 2 / 7, "slots": 4 / 7})
    # -> every task wrong: the ratios do not move
    assert rwm.update({t: True for t in TASKS}) == pytest.approx({"lm": 1 / 7, "intent": 2 / 7, "slots": 4 / 7})
    # -> no mistakes: nothing moves; a task left out of the mapping keeps its weight
    assert rwm.update({}) == pytest.approx({"lm": 1 / 7, "intent": 2 / 7, "slots": 4 / 7})
    assert rwm.w == pytest.approx({"lm": 0.125, "intent": 0.25, "slots": 0.5})
    assert sum(rwm.weights().values()) == pytest.approx(1.0)


def test_rwm_learning_rate_is_the_multiplicative_factor():
    rwm = RandomizedWeightedMajority(("a", "b"), eta=0.1)
    for _ in range(3):
        rwm.update({"a": True})
    assert rwm.w == pytest.approx({"a": 0.9 ** 3, "b": 1.0})
    assert rwm.weights()["a"] == pytest.approx(0.729 / 1.729)


def test_rwm_mistake_signal_is_a_dev_loss_that_did_not_improve():
    rwm = RandomizedWeightedMajority(TASKS, eta=0.5)
    rwm.start({"lm": 4.0, "intent": 3.0, "slots": 2.0})  # before fine-tuning: the reference, no update
    assert rwm.weights() == pytest.approx({t: 1 / 3 for t in TASKS})
    # lm got worse, intent equal (not an improvement), slots improved
    assert rwm.end_interval({"lm": 4.1, "intent": 3.0, "slots": 1.5}) == {"lm": True, "intent": True, "slots": False}
    assert rwm.weights() == pytest.approx({"lm": 0.25, "intent": 0.25, "slots": 0.5})
    # compared with the previous interval, not with the best so far: lm improves on 4.1
    assert rwm.end_interval({"lm": 4.05, "intent": 2.0, "slots": 1.6}) == {"lm": False, "intent": False,
                                                                            "slots": True}
    assert rwm.w == pytest.approx({"lm": 0.5, "intent": 0.5, "slots": 0.5})
    # a task without a dev loss this time makes no mistake; NaN is one
    assert rwm.end_interval({"lm": float("nan"), "intent": 1.0}) == {"lm": True, "intent": False}


def test_rwm_sample_mode_trains_on_one_task_drawn_with_its_probability():
    rwm = RandomizedWeightedMajority(TASKS, eta=0.5, seed=3, mode="sample")
    rwm.update({"lm": True, "intent": True})  # (0.5, 0.5, 1): probabilities 0.25, 0.25, 0.5
    draws = [rwm.step_weights() for _ in range(4000)]
    assert all(sorted(d.values()) == [0.0, 0.0, 1.0] for d in draws)
    share = {t: sum(d[t] for d in draws) / len(draws) for t in TASKS}
    assert share == pytest.approx({"lm": 0.25, "intent": 0.25, "slots": 0.5}, abs=0.03)
    again = RandomizedWeightedMajority(TASKS, eta=0.5, seed=3, mode="sample")
    again.update({"lm": True, "intent": True})
    assert [again.step_weights() for _ in range(4000)] == draws  # seeded


def test_rwm_expected_mode_uses_the_normalised_weights_every_step():
    rwm = RandomizedWeightedMajority(TASKS, eta=0.5)
    rwm.update({"slots": True})
    assert rwm.step_weights() == pytest.approx({"lm": 0.4, "intent": 0.4, "slots": 0.2})


def test_rwm_refuses_bad_arguments():
    with pytest.raises(ValueError):
        RandomizedWeightedMajority(TASKS, eta=1.0)
    with pytest.raises(ValueError):
        RandomizedWeightedMajority(TASKS, mode="greedy")
    with pytest.raises(ValueError, match="unknown task"):
        RandomizedWeightedMajority(TASKS).update({"asr": True})


def test_rwm_weights_never_underflow():
    rwm = RandomizedWeightedMajority(("a", "b"), eta=0.9)
    for _ in range(400):
        rwm.update({"a": True, "b": True})
    assert rwm.weights() == pytest.approx({"a": 0.5, "b": 0.5})
    assert min(rwm.w.values()) > 0


def test_fixed_weights_stay_put():
    fixed = FixedWeights({"lm": 1.0, "intent": 0.5, "slots": 0.25})
    for _ in range(10):
        fixed.step()
    assert fixed.step_weights() == {"lm": 1.0, "intent": 0.5, "slots": 0.25}
    assert fixed.end_interval({"lm": 9.0}) == {}
    assert FixedWeights({"lm": 1.0}).weights() == {"lm": 1.0, "intent": 0.0, "slots": 0.0}


def test_linear_ramp_raises_the_nlu_weights_from_zero_and_keeps_the_lm_weight():
    ramp = LinearRamp({"lm": 1.0, "intent": 0.5, "slots": 0.2}, steps=4)
    seen = []
    for _ in range(6):
        seen.append(ramp.step_weights())
        ramp.step()
    assert [w["lm"] for w in seen] == [1.0] * 6
    assert [w["intent"] for w in seen] == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5, 0.5])
    assert [w["slots"] for w in seen] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert LinearRamp({"lm": 1.0, "intent": 0.5}, steps=0).weights()["intent"] == 0.5


def test_make_schedule_gives_each_weighting_its_schedule():
    cfg = RescoringConfig(task_weights=(1.0, 0.3, 0.6), ramp_epochs=1.5, rwm_eta=0.25)
    assert make_schedule(RescoringConfig(weighting="lm_only")).weights() == {"lm": 1.0, "intent": 0.0, "slots": 0.0}
    assert make_schedule(RescoringConfig(weighting="fixed", task_weights=(1.0, 0.3, 0.6))).weights() == {
        "lm": 1.0, "intent": 0.3, "slots": 0.6}
    ramp = make_schedule(RescoringConfig(weighting="ramp", ramp_epochs=1.5), steps_per_epoch=10)
    assert isinstance(ramp, LinearRamp) and ramp.steps == 15
    rwm = make_schedule(cfg)
    assert isinstance(rwm, RandomizedWeightedMajority) and rwm.eta == 0.25 and rwm.tasks == TASKS


def test_config_round_trips_and_refuses_unknown_weightings():
    cfg = RescoringConfig(weighting="ramp", task_weights=(1.0, 0.2, 0.1))
    assert RescoringConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="weighting"):
        RescoringConfig(weighting="uniform")
    with pytest.raises(ValueError):
        RescoringConfig(rwm_eta=1.5)
