"""Rescoring n-best lists with a hand-built LM: the choice, lam and beta, the margin, tuning by WER, reading n-best
lists from turns (scored 1.1 lists; 1.0 lists without scores are refused by name)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.rescoring.rescore import (
    DEFAULT_BETAS,
    DEFAULT_LAMS,
    MissingScoresError,
    NBest,
    Rescorer,
    choose,
    lm_scores,
    nbest_from_turn,
    tune,
)
from analysis.rescoring.text import words


class HandLM:
    """An LM whose log-probabilities are set by hand (unknown sentences: -100); counts the sentences it scores."""

    def __init__(self, table: dict[str, float]):
        self.table = {" ".join(words(k)): v for k, v in table.items()}
        self.calls: list[int] = []

    def log_prob(self, sentences):
        self.calls.append(len(sentences))
        return np.array([self.table.get(" ".join(words(s)), -100.0) for s in sentences])


def _nb(hyps, scores, reference=None, key="k", logged=0):
    return NBest(key=key, hypotheses=list(hyps), scores=list(scores), reference=reference, logged=logged)


LM = HandLM({"play the beatles": -6.0, "play the beetles": -12.0, "played the beetles": -15.0,
             "wake me at seven": -5.0, "wake me at heaven": -14.0, "wake me at seven please": -7.5})


def test_rescoring_picks_the_hypothesis_the_lm_prefers():
    nb = _nb(["play the beetles", "play the beatles", "played the beetles"], [-1.0, -1.2, -1.5])
    lm = lm_scores(LM, [nb])
    assert [a.tolist() for a in lm] == [[-12.0, -6.0, -15.0]]
    (c,) = choose([nb], lm, lam=0.1, beta=0.0)
    assert (c.index, c.text) == (1, "play the beatles")
    assert c.totals == pytest.approx([-1.0 - 1.2, -1.2 - 0.6, -1.5 - 1.5])
    assert c.first_pass == [-1.0, -1.2, -1.5] and c.lm == [-12.0, -6.0, -15.0]
    assert c.total == pytest.approx(-1.8)
    assert c.margin == pytest.approx(-1.8 - -2.2)  # over the logged 1-best (index 0)
    assert c.changed


def test_lam_zero_keeps_the_first_pass_choice():
    nb = _nb(["play the beetles", "play the beatles", "played the beetles"], [-1.0, -1.2, -1.5])
    (c,) = choose([nb], lm_scores(LM, [nb]), lam=0.0, beta=0.0)
    assert c.index == 0 and not c.changed
    assert c.margin == pytest.approx(0.2)  # the logged 1-best won: over the runner-up
    # a small lam is not enough to overturn a first-pass gap of 0.2 (LM gap 6: lam must exceed 0.2 / 6)
    assert choose([nb], lm_scores(LM, [nb]), lam=0.03, beta=0.0)[0].index == 0
    assert choose([nb], lm_scores(LM, [nb]), lam=0.04, beta=0.0)[0].index == 1


def test_beta_rewards_or_penalises_length():
    nb = _nb(["wake me at seven", "wake me at seven please"], [-1.0, -1.0])
    lm = lm_scores(LM, [nb])
    assert choose([nb], lm, lam=1.0, beta=0.0)[0].index == 0  # the LM prefers the shorter (-5 > -7.5)
    assert choose([nb], lm, lam=1.0, beta=2.4)[0].index == 0  # one more word is worth 2.4 < 2.5
    assert choose([nb], lm, lam=1.0, beta=2.6)[0].index == 1
    assert choose([nb], lm, lam=0.0, beta=-0.1)[0].index == 0
    assert choose([nb], lm, lam=0.0, beta=0.1)[0].index == 1


def test_ties_go_to_the_earlier_hypothesis_and_a_single_hypothesis_has_infinite_margin():
    nb = _nb(["a", "b"], [-1.0, -1.0])
    assert choose([nb], [np.array([-3.0, -3.0])], lam=1.0, beta=0.0)[0].index == 0
    (c,) = choose([_nb(["only this"], [-2.0])], [np.array([-9.0])], lam=1.0, beta=0.0)
    assert c.index == 0 and math.isinf(c.margin)


def test_choose_works_on_lists_of_different_lengths_at_once():
    nbs = [_nb(["wake me at heaven", "wake me at seven"], [-1.0, -1.1], key="a"),
           _nb(["play the beetles", "play the beatles", "played the beetles"], [-1.0, -1.2, -1.5], key="b"),
           _nb(["wake me at seven"], [-3.0], key="c")]
    choices = choose(nbs, lm_scores(LM, nbs), lam=0.5, beta=0.0)
    assert [c.text for c in choices] == ["wake me at seven", "play the beatles", "wake me at seven"]
    assert [len(c.totals) for c in choices] == [2, 3, 1]
    assert LM.calls[-1] == 6  # all hypotheses of all lists in one call
    with pytest.raises(ValueError):
        choose(nbs, lm_scores(LM, nbs)[:2], lam=0.5, beta=0.0)


def test_margin_is_measured_against_the_logged_hypothesis_wherever_it_is():
    nb = _nb(["play the beetles", "played the beetles", "play the beatles"], [-1.0, -0.9, -1.2], logged=0)
    (c,) = choose([nb], lm_scores(LM, [nb]), lam=0.0, beta=0.0)
    assert c.index == 1 and c.logged == 0 and c.margin == pytest.approx(0.1)


def _dev_set():
    # list A needs lam > 0.2 to reach its reference; list B goes wrong once lam > 0.4; list C has no reference
    a = _nb(["a c", "a b"], [0.0, -1.0], reference="a b", key="A")
    b = _nb(["x y", "x z"], [0.0, -2.0], reference="x y", key="B")
    c = _nb(["p", "q"], [0.0, -0.1], reference=None, key="C")
    lm = [np.array([-10.0, -5.0]), np.array([-6.0, -1.0]), np.array([-1.0, -50.0])]
    return [a, b, c], lm


def test_tune_finds_the_grid_point_with_the_lowest_wer():
    nbs, lm = _dev_set()
    assert tune(nbs, lm, lams=(0.0, 0.1, 0.3, 1.0), betas=(0.0,)) == pytest.approx((0.3, 0.0, 0.0))
    # without lam in (0.2, 0.4) one of the two lists is wrong: 1 error in 4 reference words
    lam, beta, wer = tune(nbs, lm, lams=(0.0, 0.1, 1.0), betas=(0.0,))
    assert (lam, beta, wer) == pytest.approx((0.0, 0.0, 0.25))  # ties: the smallest |lam|


def test_tune_breaks_ties_towards_the_smallest_weights():
    nbs, lm = _dev_set()
    lam, beta, wer = tune(nbs, lm, lams=(0.35, -5.0, 0.3, 0.25), betas=(0.05, -0.01, 0.0))
    assert (lam, beta, wer) == pytest.approx((0.25, 0.0, 0.0))


def test_tune_uses_beta_when_it_helps():
    # the reference is the longer hypothesis, which the first pass and the LM both dislike a little
    nb = _nb(["turn on light", "turn on the light"], [0.0, -0.5], reference="turn on the light")
    lam, beta, wer = tune([nb], [np.array([-4.0, -4.2])], lams=(0.0, 1.0), betas=(0.0, 0.3, 1.0, -1.0))
    assert (lam, beta, wer) == pytest.approx((0.0, 1.0, 0.0))


def test_tune_needs_references_and_has_documented_default_grids():
    with pytest.raises(ValueError, match="reference"):
        tune([_nb(["a"], [0.0])], [np.array([-1.0])])
    assert DEFAULT_LAMS[0] == 0.0 and min(DEFAULT_LAMS[1:]) == 1e-4 and max(DEFAULT_LAMS) == 3.0
    assert 0.0 in DEFAULT_BETAS and -3.0 in DEFAULT_BETAS and 3.0 in DEFAULT_BETAS
    nbs, lm = _dev_set()
    assert tune(nbs, lm)[2] == 0.0  # the default grid reaches lam in (0.2, 0.4)


def test_rescorer_bundles_the_lm_with_its_weights():
    nb = _nb(["play the beetles", "play the beatles"], [-1.0, -1.2])
    assert Rescorer(LM, lam=0.1, beta=0.0).rescore([nb])[0].text == "play the beatles"
    assert Rescorer(LM, lam=0.0).rescore([nb])[0].text == "play the beetles"


# ------------------------------------------------------------------------------------ n-best lists from turns

def _turn(**fields):
    return {"dialogue_id": "sd-0001", "turn_index": 3, "asr_text": "play the beetles",
            "reference_text": "play the beatles", "speaker_id": "spk-1", **fields}


def test_nbest_from_a_scored_1_1_turn():
    nb = nbest_from_turn(_turn(asr_nbest=[{"text": "play the beetles", "score": -0.66},
                                          {"text": "play the beatles", "score": -0.70}]))
    assert nb.hypotheses == ["play the beetles", "play the beatles"] and nb.scores == [-0.66, -0.70]
    assert (nb.reference, nb.speaker, nb.logged, nb.key) == ("play the beatles", "spk-1", 0, "sd-0001:3")
    assert nb.extra["logged_inserted"] is False


def test_nbest_from_the_stores_hypotheses_column():
    hyps = [{"text": "played the beetles", "score": -0.5, "confidence": None},
            {"text": "Play  the Beetles", "score": -0.6, "confidence": 0.4}]
    nb = nbest_from_turn(_turn(asr_hypotheses=hyps, asr_nbest=["ignored"]))
    assert nb.hypotheses == ["played the beetles", "Play  the Beetles"]
    assert nb.logged == 1  # the logged words, compared as WER compares them (case and spaces aside)


def test_the_logged_1_best_missing_from_the_list_is_put_first_with_the_best_score():
    nb = nbest_from_turn(_turn(asr_text="play the beatles", asr_nbest=[{"text": "play the beetles", "score": -0.7},
                                                                       {"text": "pay the beetles", "score": -0.6}]))
    assert nb.hypotheses[0] == "play the beatles" and nb.scores == [-0.6, -0.7, -0.6]
    assert nb.logged == 0 and nb.extra["logged_inserted"] is True
    assert choose([nb], [np.zeros(3)], lam=0.0, beta=0.0)[0].index == 0  # lam = 0 keeps the logged text


def test_a_1_0_turn_without_scores_is_refused_naming_the_turn():
    with pytest.raises(MissingScoresError, match=r"'sd-0001' turn 3.*1\.1.*turnlens speech recognise"):
        nbest_from_turn(_turn(asr_nbest=["play the beetles", "play the beatles"]))
    with pytest.raises(MissingScoresError, match="sd-0001"):
        nbest_from_turn(_turn(asr_hypotheses=[{"text": "a", "score": -1.0}, {"text": "b", "score": None}]))
    with pytest.raises(MissingScoresError, match="no n-best"):
        nbest_from_turn(_turn(asr_nbest=[]))
    assert issubclass(MissingScoresError, ValueError)
