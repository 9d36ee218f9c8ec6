"""EWC for the rescoring LM (analysis/mitigation/ewc.py): the penalty is zero at the anchor, grows with
Fisher-weighted drift, and its autograd gradient is lam * F * (theta - theta*); the Fisher is the mean of
per-sentence squared gradients of the log-likelihood, over the LM parameters only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.mitigation.ewc import anchor_of, ewc_penalty, fisher_diagonal, lm_parameters, sentence_log_probs
from analysis.rescoring.config import RescoringConfig
from analysis.rescoring.model import RescoringModel
from analysis.rescoring.text import NLUExample

TINY = RescoringConfig(embed_dim=8, hidden=16, pretrain_epochs=1, finetune_epochs=1, min_count=1, batch_size=8,
                       weighting="fixed", dropout=0.0)
SENTENCES = ["play some jazz", "set an alarm for seven", "what is the weather today", "play the news",
             "turn the lights off", "set the lights to blue", "what time is it"] * 3


def tiny_model() -> RescoringModel:
    nlu = [NLUExample(tuple(s.split()), "play" if s.startswith("play") else "other", None) for s in SENTENCES]
    return RescoringModel(TINY).fit(SENTENCES, nlu, dev_sentences=SENTENCES[:3], dev_nlu=nlu[:3])


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _random_fisher(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) for n, p in params.items()}


def test_lm_parameters_leave_out_the_nlu_heads(model):
    names = set(lm_parameters(model))
    assert model.net.intent is not None  # the multitask model has heads ...
    assert not any(n.startswith(("intent.", "slots.")) for n in names)  # ... which are not consolidated
    assert {"embed.weight", "lstm.weight_ih_l0"} <= names


def test_penalty_zero_at_the_anchor_and_grows_with_fisher_weighted_drift(model):
    params = {n: p.detach().clone() for n, p in lm_parameters(model).items()}
    anchor = anchor_of(model)
    fisher = _random_fisher(params)
    assert float(ewc_penalty(params, fisher, anchor, lam=5.0)) == 0.0
    direction = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) for n, p in params.items()}
    values = []
    for scale in (0.01, 0.1, 1.0):
        moved = {n: anchor[n] + scale * direction[n] for n in params}
        values.append(float(ewc_penalty(moved, fisher, anchor, lam=5.0)))
        hand = 2.5 * sum(float((fisher[n] * (scale * direction[n]) ** 2).sum()) for n in params)
        assert values[-1] == pytest.approx(hand, rel=1e-5)
    assert values[0] < values[1] < values[2]
    # drift where the Fisher is zero costs nothing; the same drift where it is large costs a lot
    name = "embed.weight"
    zero_f = {n: torch.zeros_like(f) for n, f in fisher.items()}
    zero_f[name][0] = 1.0
    moved = {n: a.clone() for n, a in anchor.items()}
    moved[name][1] += 3.0  # row 1 has zero Fisher
    assert float(ewc_penalty(moved, zero_f, anchor, lam=1.0)) == 0.0
    moved[name][0, 0] += 2.0  # one coordinate with Fisher 1: (1/2) * 1 * 2^2
    assert float(ewc_penalty(moved, zero_f, anchor, lam=1.0)) == pytest.approx(2.0)
    assert float(ewc_penalty(moved, zero_f, anchor, lam=0.0)) == 0.0


def test_penalty_gradient_matches_the_hand_computation(model):
    anchor = anchor_of(model)
    fisher = _random_fisher(anchor, seed=3)
    g = torch.Generator().manual_seed(4)
    theta = {n: (a + 0.1 * torch.randn(a.shape, generator=g)).requires_grad_(True) for n, a in anchor.items()}
    lam = 7.0
    ewc_penalty(theta, fisher, anchor, lam=lam).backward()
    for n in theta:
        expected = lam * fisher[n] * (theta[n].detach() - anchor[n])
        assert torch.allclose(theta[n].grad, expected, rtol=1e-5, atol=1e-7), n


def test_penalty_refuses_bad_input(model):
    anchor = anchor_of(model)
    fisher = _random_fisher(anchor)
    with pytest.raises(ValueError, match="lam"):
        ewc_penalty(anchor, fisher, anchor, lam=-1.0)
    with pytest.raises(ValueError, match="lam"):
        ewc_penalty(anchor, fisher, anchor, lam=float("nan"))
    with pytest.raises(ValueError, match="same parameters"):
        ewc_penalty(anchor, {n: f for n, f in fisher.items() if n != "embed.weight"}, anchor, lam=1.0)
    with pytest.raises(ValueError, match="embed.weight"):
        ewc_penalty(anchor, {**fisher, "embed.weight": torch.zeros(2, 2)}, anchor, lam=1.0)


def test_sentence_log_probs_equal_the_scoring_path(model):
    sents = ["play some jazz", "set an alarm for nine", "zzz unknown words"]  # <unk> included
    got = sentence_log_probs(model, sents).detach().numpy()
    assert np.allclose(got, model.log_prob(sents), atol=1e-4)


def test_fisher_is_the_mean_of_per_sentence_squared_gradients(model):
    sents = ["play some jazz", "what time is it"]
    fisher = fisher_diagonal(model, sents, max_sentences=None)
    params = lm_parameters(model)
    hand = {n: torch.zeros_like(p) for n, p in params.items()}
    for s in sents:
        grads = torch.autograd.grad(sentence_log_probs(model, [s])[0], list(params.values()), allow_unused=True)
        for n, gr in zip(params, grads, strict=True):
            if gr is not None:
                hand[n] += gr ** 2 / len(sents)
    assert set(fisher) == set(params)
    for n in params:
        assert fisher[n].shape == params[n].shape
        assert torch.allclose(fisher[n], hand[n], rtol=1e-4, atol=1e-9), n
        assert float(fisher[n].min()) >= 0.0
    assert float(fisher["lstm.weight_hh_l0"].sum()) > 0  # the recurrent weights matter for this text
    # a sample of one sentence is that sentence's squared gradient, and the sample is seeded
    assert all(torch.equal(a, b) for a, b in zip(fisher_diagonal(model, SENTENCES, max_sentences=1, seed=2).values(),
                                                 fisher_diagonal(model, SENTENCES, max_sentences=1, seed=2).values(),
                                                 strict=True))
    with pytest.raises(ValueError, match="no general sentences"):
        fisher_diagonal(model, ["", "  "])
    with pytest.raises(RuntimeError, match="not trained"):
        fisher_diagonal(RescoringModel(TINY), sents)
