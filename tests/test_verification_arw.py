"""Tests of adversarial reweighting: weight normalisation, pair weights as sums, the adversary's ascent step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.verification.arw import ClusterAdversary, weighted_pair_loss

CLUSTERS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])


def _adversary(logits=(0.3, -1.0, 2.0, 0.5), **kw) -> ClusterAdversary:
    adv = ClusterAdversary(CLUSTERS, **kw)
    with torch.no_grad():
        adv.logits.copy_(torch.tensor(logits, dtype=torch.float64))
    return adv


def test_weights_are_normalised_to_mean_one_over_samples_and_follow_the_softmax():
    adv = _adversary()
    w = adv.sample_weights().detach().numpy()
    assert w.mean() == pytest.approx(1.0)
    p = np.exp([0.3, -1.0, 2.0, 0.5])
    p /= p.sum()
    share = np.bincount(CLUSTERS) / len(CLUSTERS)
    assert adv.cluster_weights().detach().numpy() == pytest.approx(p / (share * p).sum())
    assert np.all(w[CLUSTERS == 2] == w[5])  # one weight per cluster
    neutral = ClusterAdversary(CLUSTERS)
    assert neutral.sample_weights().detach().numpy() == pytest.approx(np.ones(len(CLUSTERS)))
    assert float(neutral.kl().detach()) == pytest.approx(0.0)
    assert float(adv.kl().detach()) > 0


def test_pair_weight_is_the_sum_of_its_samples_weights():
    adv = _adversary()
    w = adv.sample_weights().detach()
    i, j = torch.tensor([0, 3, 5, 9]), torch.tensor([4, 9, 6, 1])
    pair_w = w[i] + w[j]
    for k in range(4):
        assert float(pair_w[k]) == pytest.approx(float(w[i[k]]) + float(w[j[k]]))
    # the weighted loss uses exactly those: with one same and one different pair, loss = w/2 * l for each
    losses = torch.tensor([0.7, 1.3], dtype=torch.float64)
    same = torch.tensor([True, False])
    pw = torch.stack([w[0] + w[3], w[5] + w[9]])
    got = weighted_pair_loss(losses, same, pw)
    assert float(got) == pytest.approx(0.5 * float(pw[0]) * 0.7 + 0.5 * float(pw[1]) * 1.3)
    # neutral weights (2 per pair) give the plain class-balanced loss
    assert float(weighted_pair_loss(losses, same, torch.full((2,), 2.0, dtype=torch.float64))) == pytest.approx(2.0)


def test_adversary_step_increases_the_weighted_loss_on_a_fixed_batch():
    rng = np.random.default_rng(0)
    rows = torch.arange(len(CLUSTERS))
    iu, ju = (torch.from_numpy(a) for a in np.triu_indices(len(CLUSTERS), k=1))
    same = torch.from_numpy(rng.random(len(iu)) < 0.3)
    same[0] = True
    same[1] = False
    losses = torch.from_numpy(rng.random(len(iu)) * 2)
    # cluster 2's pairs are the hard ones: the adversary should move weight there
    hard = (torch.from_numpy(CLUSTERS)[iu] == 2) | (torch.from_numpy(CLUSTERS)[ju] == 2)
    losses = losses + 3.0 * hard

    def weighted(adv):
        w = adv.sample_weights(rows).detach()
        return float(weighted_pair_loss(losses, same, w[iu] + w[ju]))

    for kl_weight in (0.0, 0.1):
        adv = ClusterAdversary(CLUSTERS, lr=0.2, kl_weight=kl_weight)
        before, obj_before = weighted(adv), float(adv.objective(rows, iu, ju, losses, same).detach())
        for _ in range(3):
            adv.step(rows, iu, ju, losses, same)
        assert weighted(adv) > before
        assert float(adv.objective(rows, iu, ju, losses, same).detach()) > obj_before
        w = adv.cluster_weights().detach().numpy()
        assert int(np.argmax(w)) == 2
        assert adv.sample_weights().detach().numpy().mean() == pytest.approx(1.0)


def test_kl_regulariser_limits_concentration():
    rows = torch.arange(len(CLUSTERS))
    iu, ju = (torch.from_numpy(a) for a in np.triu_indices(len(CLUSTERS), k=1))
    same = torch.zeros(len(iu), dtype=torch.bool)
    same[:5] = True
    losses = ((torch.from_numpy(CLUSTERS)[iu] == 2) | (torch.from_numpy(CLUSTERS)[ju] == 2)).double() * 3 + 0.1
    top = {}
    for kl_weight in (0.0, 2.0):
        adv = ClusterAdversary(CLUSTERS, lr=0.5, kl_weight=kl_weight)
        for _ in range(200):
            adv.step(rows, iu, ju, losses, same)
        top[kl_weight] = float(adv.cluster_weights().detach().max())
    assert top[2.0] < top[0.0]
    assert top[0.0] <= 1 / (4 / 10) + 1e-9  # never above 1 / pi_c


def test_adversary_rejects_bad_clusters():
    with pytest.raises(ValueError):
        ClusterAdversary([0, 2, 2])  # cluster 1 empty
    with pytest.raises(ValueError):
        ClusterAdversary([0, 1], lr=0)
