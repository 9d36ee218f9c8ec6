"""Pairwise adversarial reweighting (ARW) for speaker verification: an adversary that holds one logit per k-means
cluster of the training samples and weights each training pair by the sum of its two samples' weights.

The game (issue 20, after the published ARW method): the verifier minimises the weighted pair loss, the
adversary maximises it, so training leans towards the regions of embedding space the verifier serves worst
without anyone naming a group.

- Clusters: k-means (``analysis.disparity.cohorts.kmeans_cohorts``, what the Disparity page runs) over the
  training samples' input embeddings, fitted once before training; cluster c holds a share pi_c of the samples.
- Sample weights: p = softmax(logits) over the k clusters; a sample of cluster c weighs
  w_c = p_c / sum_c' pi_c' p_c'. So the mean weight over the training samples is exactly 1 whatever the logits
  (sum_c pi_c w_c = 1), all-zero logits give every sample weight 1 (the plain verifier), and no weight can
  exceed 1 / pi_c.
- Pair weights: w_i + w_j (2 for every pair when the adversary is neutral; ``weighted_pair_loss`` halves the sum
  so the plain loss is the special case).
- Regulariser: the adversary's objective is the weighted loss minus ``kl_weight`` * KL(q || pi), where
  q_c = pi_c w_c is the share of all weight that cluster c carries. Without it the adversary would pile all
  weight on the one hardest cluster (whose weight would approach 1 / pi_c); KL(q || pi) = sum_c q_c log w_c is 0
  at uniform weights and grows as the weight concentrates.
- Alternation (``model.train_verifier``): ``warmup_steps`` plain verifier steps first (an adversary facing an
  untrained verifier only learns noise); then, after every ``verifier_steps_per_adversary_step`` verifier steps
  on weights held fixed, one gradient-ascent step on the logits (Adam, maximising, learning rate
  ``adversary_lr``) against the verifier's losses on that batch, held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _torch():
    import torch

    return torch


class ClusterAdversary:
    """The adversary: one logit per cluster (all 0 at the start: every weight 1).

    clusters: (n,) int cluster of each training sample, 0..k-1 (every cluster non-empty).
    """

    def __init__(self, clusters: Sequence[int] | np.ndarray, *, lr: float = 0.05, kl_weight: float = 0.01):
        torch = _torch()
        c = np.asarray(clusters, dtype=np.int64).reshape(-1)
        if not len(c) or c.min() < 0:
            raise ValueError("clusters must be non-empty non-negative integers")
        counts = np.bincount(c)
        if (counts == 0).any():
            raise ValueError("every cluster 0..k-1 must hold at least one sample")
        if lr <= 0 or kl_weight < 0:
            raise ValueError(f"lr must be > 0 and kl_weight >= 0, got {lr}, {kl_weight}")
        self.clusters = torch.as_tensor(c)
        self.share = torch.as_tensor(counts / counts.sum(), dtype=torch.float64)  # pi_c
        self.logits = torch.zeros(len(counts), dtype=torch.float64, requires_grad=True)
        self.lr = lr
        self.kl_weight = kl_weight
        # Adam, ascending: its steps are about lr whatever the loss's scale, and the verifier's training loss
        # shrinks by orders of magnitude as it fits its speakers (plain SGD ascent then barely moves the logits)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, maximize=True)

    @property
    def k(self) -> int:
        return len(self.share)

    def cluster_weights(self, logits=None):
        """(k,) w_c = p_c / sum_c' pi_c' p_c' with p = softmax(logits): mean weight over samples exactly 1."""
        torch = _torch()
        p = torch.softmax(self.logits if logits is None else logits, dim=0)
        return p / (self.share * p).sum()

    def sample_weights(self, index=None):
        """(n,) or (len(index),) float64 weights of the training samples given by index (all by default)."""
        w = self.cluster_weights()[self.clusters]
        return w if index is None else w[index]

    def kl(self, logits=None):
        """KL(q || pi) with q_c = pi_c w_c: 0 at uniform weights, larger as weight concentrates."""
        torch = _torch()
        w = self.cluster_weights(logits)
        return (self.share * w * torch.log(w)).sum()

    def objective(self, sample_index, pair_i, pair_j, pair_loss, pair_same):
        """What the adversary maximises on one batch: the weighted pair loss (``weighted_pair_loss``) of the
        batch's samples (sample_index: their training rows) minus kl_weight * KL. Differentiable in the logits."""
        w = self.sample_weights(sample_index)
        return weighted_pair_loss(pair_loss, pair_same, w[pair_i] + w[pair_j]) - self.kl_weight * self.kl()

    def step(self, sample_index, pair_i, pair_j, pair_loss, pair_same) -> float:
        """One gradient-ascent step (Adam, maximising) on the logits against losses held fixed (detached);
        returns the objective before the step."""
        self.optimizer.zero_grad()
        obj = self.objective(sample_index, pair_i, pair_j, pair_loss.detach().double(), pair_same)
        obj.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return float(obj.detach())


def weighted_pair_loss(pair_loss, pair_same, pair_weight):
    """Class-balanced weighted loss of a batch of pairs: mean over same-speaker pairs of (pair_weight / 2) *
    loss, plus the same over different-speaker pairs. pair_weight is w_i + w_j (2 when all weights are 1, hence
    the half: with neutral weights this is the plain loss). Balanced because a batch holds ~40x more
    different-speaker pairs than same-speaker ones."""
    wl = 0.5 * pair_weight.to(pair_loss.dtype) * pair_loss
    same = pair_same
    return wl[same].mean() + wl[~same].mean()
