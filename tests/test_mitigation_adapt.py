"""Adaptation of the rescoring LM to a group's n-best lists (analysis/mitigation/adapt.py) and the per-group WER
table (analysis/mitigation/groups.py): what each method changes, that the MWER objective moves probability towards
the hypotheses with fewer errors, that EWC holds the Fisher-weighted parameters, the dev split, the validation, and
the group figures on a hand-built case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.mitigation.adapt import AdaptConfig, _Prepared, adapt, adaptation_loss, split_by_speaker
from analysis.mitigation.ewc import anchor_of, fisher_diagonal, lm_parameters
from analysis.mitigation.groups import group_wer_table
from analysis.rescoring.rescore import NBest
from tests.test_mitigation_ewc import SENTENCES, tiny_model

FAST = AdaptConfig(epochs=3, batch_lists=4, lr=3e-3, ewc_lams=(1.0, 1e4), fisher_sentences=None)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def group_lists() -> list[NBest]:
    """Lists where the first pass prefers a wrong hypothesis by a little: the LM must learn to lift the right one."""
    pairs = [("set the lights to blue", "set the lights to two"), ("play the news", "play the nose"),
             ("play some jazz", "play sum jazz"), ("what time is it", "what time is eat")]
    out = []
    for i in range(12):
        ref, wrong = pairs[i % len(pairs)]
        out.append(NBest(f"k{i}", [wrong, ref], [0.0, -0.02], reference=ref, speaker=f"s{i % 4}"))
    return out


def _expected_errors(model, lists, lam=0.1, beta=0.0) -> float:
    with torch.no_grad():
        _, parts = adaptation_loss(model, [_Prepared(nb) for nb in lists], lam=lam, beta=beta,
                                   config=AdaptConfig(lm_weight=0.0), train=False)
    return parts["mwer"]


def _flat(params) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in params.values()])


def test_none_is_an_untouched_copy(model):
    before = _flat(lm_parameters(model))
    out, summary = adapt(model, 0.1, 0.0, group_lists(), SENTENCES, method="none", config=FAST)
    assert out is not model and np.array_equal(_flat(lm_parameters(out)), before)
    assert summary["method"] == "none" and summary["history"] == [] and summary["ewc_lam"] is None


def test_finetune_lowers_expected_errors_and_leaves_the_input_and_the_heads_alone(model):
    lists = group_lists()
    before = _flat(lm_parameters(model))
    heads = model.net.intent.weight.detach().clone()
    out, summary = adapt(model, 0.1, 0.0, lists, SENTENCES, method="finetune", config=FAST)
    assert np.array_equal(_flat(lm_parameters(model)), before)  # the input model is untouched
    assert not np.array_equal(_flat(lm_parameters(out)), before)
    assert torch.equal(out.net.intent.weight, heads)  # the NLU heads take no part
    assert _expected_errors(out, lists) < _expected_errors(model, lists)
    assert len(summary["history"]) == FAST.epochs and summary["lists"] == 12 and summary["speakers"] == 4
    assert "adapt" in out.fingerprints and out.history[-1]["stage"] == "adapt"
    assert np.isfinite(out.log_prob(["play the news"])).all()  # the scoring cache was rebuilt from new weights


def test_ewc_chooses_its_strength_on_held_out_speakers_and_holds_the_weighted_parameters(model):
    lists = group_lists()
    fisher = fisher_diagonal(model, SENTENCES, max_sentences=None)
    anchor = anchor_of(model)

    def weighted_drift(m) -> float:
        return sum(float((fisher[n] * (p.detach() - anchor[n]) ** 2).sum()) for n, p in lm_parameters(m).items())

    plain, _ = adapt(model, 0.1, 0.0, lists, SENTENCES, method="finetune", config=FAST)
    strong, summary = adapt(model, 0.1, 0.0, lists, SENTENCES, method="ewc",
                            config=AdaptConfig(**{**FAST.to_dict(), "ewc_lams": (1e4,)}))
    assert summary["ewc_lam"] == 1e4 and summary["fisher_sentences"] == len(SENTENCES)
    assert weighted_drift(strong) < 0.5 * weighted_drift(plain)
    assert summary["history"][-1]["ewc"] > 0
    dev = summary["dev"]
    assert dev["speakers"] == 1 and set(dev["wer"]) == {"10000"}  # a quarter of 4 speakers
    _, chosen = adapt(model, 0.1, 0.0, lists, SENTENCES, method="ewc", config=FAST)
    assert chosen["ewc_lam"] in FAST.ewc_lams
    best = min(chosen["dev"]["wer"].values())
    assert chosen["dev"]["wer"][f"{chosen['ewc_lam']:g}"] == best


def test_split_by_speaker_keeps_speakers_whole():
    lists = group_lists()
    train, dev = split_by_speaker(lists, share=0.5, seed=0)
    assert len(train) + len(dev) == len(lists)
    assert {nb.speaker for nb in train}.isdisjoint({nb.speaker for nb in dev})
    assert len({nb.speaker for nb in dev}) == 2
    with pytest.raises(ValueError, match="fewer than 2 speakers"):
        split_by_speaker([nb for nb in lists if nb.speaker == "s0"], share=0.5, seed=0)


def test_adapt_refuses_bad_input(model):
    lists = group_lists()
    with pytest.raises(ValueError, match="method"):
        adapt(model, 0.1, 0.0, lists, SENTENCES, method="mwer")
    with pytest.raises(ValueError, match="lam"):
        adapt(model, 0.0, 0.0, lists, SENTENCES, method="finetune")
    with pytest.raises(ValueError, match="no n-best lists"):
        adapt(model, 0.1, 0.0, [], SENTENCES, method="finetune")
    with pytest.raises(ValueError, match="reference"):
        adapt(model, 0.1, 0.0, [NBest("x", ["a"], [0.0])], SENTENCES, method="finetune")
    with pytest.raises(ValueError, match="general training sentences"):
        adapt(model, 0.1, 0.0, lists, [], method="ewc", config=FAST)
    from analysis.rescoring.model import RescoringModel

    with pytest.raises(ValueError, match="not trained"):
        adapt(RescoringModel(), 0.1, 0.0, lists, SENTENCES, method="finetune")
    for bad in ({"epochs": 0}, {"lr": 0}, {"lm_weight": 0, "mwer_weight": 0}, {"ewc_lams": ()},
                {"ewc_lams": (0.0,)}, {"dev_share": 1.0}, {"fisher_sentences": 0}):
        with pytest.raises(ValueError):
            AdaptConfig(**bad)


# ----------------------------------------------------------------------------- the group table

def _table_lists() -> list[NBest]:
    # group A: speakers a1, a2; group B: speaker b1, b2. References of 4 words.
    return [NBest(f"l{i}", ["x"], [0.0], reference="w1 w2 w3 w4", speaker=s)
            for i, s in enumerate(["a1", "a1", "a2", "b1", "b2", "b2"])]


def test_group_wer_table_by_hand():
    lists = _table_lists()
    groups = ["A", "A", "A", "B", "B", "B"]
    base = ["w1 w2 w3 w4", "w1 x w3 w4", "w1 w2 w3 w4", "x x w3 w4", "x w2 w3 w4", "x x x w4"]  # A 1/12, B 6/12
    better = ["w1 w2 w3 w4", "w1 x w3 w4", "w1 w2 w3 w4", "w1 w2 w3 w4", "x w2 w3 w4", "x x w3 w4"]  # B 3/12
    res = group_wer_table(lists, {"none": base, "ewc": better}, groups, baseline="none", resamples=300, seed=1)
    assert res["groups"] == ["A", "B"] and res["units"] == 4 and res["lists"] == 6
    assert res["counts"]["A"] == {"lists": 3, "speakers": 2, "reference_words": 12}
    n = res["systems"]["none"]
    assert n["per_group"]["A"]["value"] == pytest.approx(1 / 12)
    assert n["per_group"]["B"]["value"] == pytest.approx(6 / 12)
    assert n["overall"]["value"] == pytest.approx(7 / 24)
    assert n["mean"]["value"] == pytest.approx((1 / 12 + 6 / 12) / 2)
    assert n["max"]["value"] == pytest.approx(0.5)
    assert n["variance"]["value"] == pytest.approx(np.var([1 / 12, 6 / 12]))
    d = res["differences"]["ewc vs none"]
    assert d["max"]["value"] == pytest.approx(3 / 12 - 6 / 12)
    assert d["variance"]["value"] == pytest.approx(np.var([1 / 12, 3 / 12]) - np.var([1 / 12, 6 / 12]))
    assert d["per_group"]["A"]["value"] == 0.0 and d["per_group"]["A"]["ci"] == [0.0, 0.0]  # paired draws
    assert d["overall"]["ci"][1] <= 0  # never worse on any draw
    lo, hi = n["overall"]["ci"]
    assert lo <= n["overall"]["value"] <= hi and lo < hi
    assert list(res["differences"]) == ["ewc vs none"]


def test_group_wer_table_refuses_bad_input():
    lists = _table_lists()
    texts = ["x"] * 6
    with pytest.raises(ValueError, match="group labels"):
        group_wer_table(lists, {"a": texts}, ["A"] * 5)
    with pytest.raises(ValueError, match="baseline"):
        group_wer_table(lists, {"a": texts}, ["A"] * 6, baseline="b")
    with pytest.raises(ValueError, match="pair"):
        group_wer_table(lists, {"a": texts}, ["A"] * 6, pairs=[("a", "b")])
    with pytest.raises(ValueError, match="texts"):
        group_wer_table(lists, {"a": texts[:2]}, ["A"] * 6)
    with pytest.raises(ValueError, match="no lists"):
        group_wer_table([], {"a": []}, [])
