"""Elastic weight consolidation for the rescoring LM: the diagonal Fisher information of its language-model
parameters on general text, and the penalty (lam / 2) * sum_i F_i (theta_i - theta*_i)^2 that keeps the parameters
that matter for that text near their values before adaptation (Kirkpatrick et al., 2017). Pure PyTorch over a
``RescoringModel``'s network; no Streamlit, no SQL.

Which parameters: those the rescorer's score depends on (the word embeddings, the LSTM and the next-word softmax,
``lm_parameters``). The intent and slot heads take no part in rescoring, get no gradient from the LM loss and are
left out of the Fisher, the penalty and adaptation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from analysis.rescoring.model import IGNORE, UNK, RescoringModel, _Batch, _threads, _tokens

NLU_HEADS = ("intent.", "slots.")  # parameter-name prefixes of the NLU heads (not part of the LM score)
Progress = Callable[[str, int, int], None]


def lm_parameters(model: RescoringModel) -> dict:
    """name -> parameter of the network's LM path (embeddings, LSTM, next-word softmax), in the network's order.
    Raises RuntimeError for an untrained model."""
    if model.net is None:
        raise RuntimeError("the rescoring model is not trained: nothing to consolidate")
    return {n: p for n, p in model.net.named_parameters() if not n.startswith(NLU_HEADS)}


def anchor_of(model: RescoringModel) -> dict:
    """The LM parameters' current values, detached copies (theta* of the penalty)."""
    return {n: p.detach().clone() for n, p in lm_parameters(model).items()}


def sentence_log_probs(model: RescoringModel, sentences: Sequence[str | Sequence[str]], *, train: bool = False):
    """The LM's natural-log probability of each sentence (its words and </s>; an out-of-vocabulary word scored as
    <unk> plus ``model.unk_cost``), as a differentiable float tensor of shape (n,): the same quantity as
    ``RescoringModel.log_prob`` (which is inference-only and trie-based), computed by a plain padded pass so
    gradients flow. train: dropout on (adaptation steps) or off (the Fisher, evaluation)."""
    import torch

    if model.net is None:
        raise RuntimeError("the rescoring model is not trained")
    if not len(sentences):
        return torch.zeros(0)
    seqs = [model.ids(_tokens(s)) for s in sentences]
    batch = _Batch(torch, seqs)
    model.net.train(train)
    states = model.net.encode(batch.ids)
    keep = batch.targets != IGNORE
    lp = torch.zeros(batch.targets.shape, dtype=states.dtype)
    lp = lp.masked_scatter(keep, model.net.target_log_prob(states[keep], batch.targets[keep]))
    unk = torch.tensor([s.count(UNK) for s in seqs], dtype=lp.dtype)
    return lp.sum(1) + model.unk_cost * unk


def fisher_diagonal(model: RescoringModel, sentences: Sequence[str | Sequence[str]], *,
                    max_sentences: int | None = 1000, seed: int = 0, progress: Progress | None = None) -> dict:
    """The diagonal of the empirical Fisher information of the LM parameters on general text.

    F_i = mean over sentences s of (d log p(s) / d theta_i)^2, with log p(s) the sentence's log-likelihood (sum
    over its words and </s>, ``sentence_log_probs``), one backward pass per SENTENCE (not per batch: the squared
    gradient of a batch mean would shrink F by about the batch size and mix sentences' directions), dropout off,
    at the model's current parameters. sentences: the general training text (never evaluation-split text);
    max_sentences: a seeded sample of at most this many distinct-position sentences (None: all), since the
    estimate settles long before the ~3,800 SLURP training sentences (and each costs a backward pass).

    Returns name -> tensor shaped like the parameter, >= 0 (larger: the general text's likelihood is more sensitive
    to that parameter). Raises ValueError when no sentence has a word."""
    import torch

    params = lm_parameters(model)
    sents = [s for s in (_tokens(x) for x in sentences) if s]
    if not sents:
        raise ValueError("no general sentences with words to estimate the Fisher information on")
    if max_sentences is not None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1 (or None), got {max_sentences}")
        if len(sents) > max_sentences:
            idx = np.sort(np.random.default_rng(seed).choice(len(sents), size=max_sentences, replace=False))
            sents = [sents[i] for i in idx]
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    names, tensors = list(params), list(params.values())
    with _threads(1):  # one short sentence per pass: a second thread mostly waits (model.py's finding)
        for k, s in enumerate(sents):
            lp = sentence_log_probs(model, [s], train=False)[0]
            grads = torch.autograd.grad(lp, tensors, allow_unused=True)
            for n, g in zip(names, grads, strict=True):
                if g is not None:
                    fisher[n] += g.detach() ** 2
            if progress and ((k + 1) % 100 == 0 or k + 1 == len(sents)):
                progress("Fisher information", k + 1, len(sents))
    model.net.eval()
    return {n: f / len(sents) for n, f in fisher.items()}


def ewc_penalty(params: Mapping, fisher: Mapping, anchor: Mapping, *, lam: float):
    """(lam / 2) * sum_i F_i (theta_i - theta*_i)^2 over the named parameters, a scalar tensor (0 at the anchor;
    grows with drift in directions the Fisher weighs). Its gradient w.r.t. theta_i is lam * F_i (theta_i -
    theta*_i). params: name -> current parameter (``lm_parameters``); fisher: name -> F (``fisher_diagonal``);
    anchor: name -> theta* (``anchor_of``). lam >= 0. The three must name the same parameters with equal shapes."""
    import torch

    if not lam >= 0:  # also refuses NaN
        raise ValueError(f"lam must be >= 0, got {lam}")
    if set(params) != set(fisher) or set(params) != set(anchor):
        missing = sorted(set(params) ^ set(fisher) | set(params) ^ set(anchor))
        raise ValueError(f"params, fisher and anchor must name the same parameters; differing: {missing[:5]}")
    total = torch.zeros(())
    for n, p in params.items():
        if fisher[n].shape != p.shape or anchor[n].shape != p.shape:
            raise ValueError(f"{n}: parameter {tuple(p.shape)}, fisher {tuple(fisher[n].shape)}, "
                             f"anchor {tuple(anchor[n].shape)}")
        total = total + (fisher[n] * (p - anchor[n]) ** 2).sum()
    return 0.5 * float(lam) * total
