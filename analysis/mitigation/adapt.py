"""Adapting the rescoring LM to one worst-served group's n-best lists: plain fine-tuning or fine-tuning with an EWC
penalty (ewc.py), on a discriminative objective over the group's lists. Pure PyTorch; no Streamlit, no SQL.

Why a discriminative objective: the LM is text-only, and a group of speakers (an accent, a voice cohort) differs
from everyone else in how the recogniser mishears it, not in what it says: the group's reference sentences are
SLURP requests like everybody's. Training on them alone barely moves what the rescorer chooses. What is specific to
the group is in its n-best lists: which wrong hypotheses the first pass ranks near the right one. So each step adds
to the LM loss on the references a minimum-word-error (MWER) loss over each list (Prabhavalkar et al., 2018):
the hypotheses' posterior under the rescorer's own total,

    P(h) ∝ exp(total(h) / lam),  total(h) = first_pass(h) + lam * lm_logprob(h) + beta * n_words(h),

i.e. softmax(first_pass / lam + lm_logprob + (beta / lam) * n_words): the LM's log-probabilities at their own scale
with the first pass and the length bonus as the rescorer weighs them. The loss is the expected word errors
sum_h P(h) (errors(h) - mean errors of the list) (the mean subtracted as MWER does, to reduce variance; a list whose
hypotheses all have the same errors gives no gradient). Minimising it moves probability, through the LM score
alone (the first pass and beta are constants), towards the hypotheses with fewer errors, in the rescorer's units.
lam and beta stay as they were tuned for the unadapted model: only the LM changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from analysis.mitigation.ewc import anchor_of, ewc_penalty, fisher_diagonal, lm_parameters, sentence_log_probs
from analysis.rescoring import evaluate as rescoring_eval
from analysis.rescoring.model import RescoringModel, _threads
from analysis.rescoring.rescore import NBest, choose, lm_scores
from analysis.rescoring.text import words

METHODS = ("none", "finetune", "ewc")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AdaptConfig:
    """How a model is adapted (docs/results/mitigation.md). Every default was set before any evaluation-split
    result and is the same for plain and EWC fine-tuning, so the two differ only by the penalty.

    epochs, batch_lists, lr: Adam over the LM parameters (``ewc.lm_parameters``), epochs over the group's lists
    in seeded batches of batch_lists lists, gradient norm clipped at clip. epochs 10 at lr 1e-3 (a third of the
    pretraining rate) were set on the TUNING side only (seed 0, the worst accent's tuning lists split by speaker,
    docs/results/mitigation.md): 4 epochs left the held-out speakers' WER unchanged, 3e-3 raised the other
    groups' tuning WER without helping the held-out speakers.
    lm_weight, mwer_weight: the loss is lm_weight * (mean NLL per reference word, </s> included) + mwer_weight *
    (expected word errors over each list, averaged over the batch's lists; see the module doc).
    ewc_lams: the candidate EWC strengths, chosen by dev WER (lowest; ties to the larger, the more conservative).
    The Fisher is a sum of squared per-sentence gradients averaged over sentences, of order 1e-4..1 per
    parameter here: the grid spans the decades from a penalty that barely binds to one that holds the model still.
    dev_share: the share of the group's SPEAKERS (seeded; at least one) whose lists are held out to choose the
    EWC strength: dev lists never train the model that is scored on them. The chosen strength is then used to
    train on all the group's lists, as plain fine-tuning does.
    fisher_sentences: general sentences sampled for the Fisher (``fisher_diagonal``; None: all).
    seed: batch order, dropout, the dev split and the Fisher sample."""

    epochs: int = 10
    batch_lists: int = 8
    lr: float = 1e-3
    clip: float = 5.0
    lm_weight: float = 1.0
    mwer_weight: float = 1.0
    ewc_lams: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    dev_share: float = 0.25
    fisher_sentences: int | None = 500
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ewc_lams", tuple(float(x) for x in self.ewc_lams))
        if self.epochs < 1 or self.batch_lists < 1:
            raise ValueError("epochs and batch_lists must be at least 1")
        if not (self.lr > 0 and self.clip > 0):
            raise ValueError("lr and clip must be positive")
        if self.lm_weight < 0 or self.mwer_weight < 0 or self.lm_weight + self.mwer_weight == 0:
            raise ValueError("lm_weight and mwer_weight must be >= 0 and not both 0")
        if not self.ewc_lams or any(not x > 0 for x in self.ewc_lams):
            raise ValueError("ewc_lams: at least one positive EWC strength")
        if not 0.0 < self.dev_share < 1.0:
            raise ValueError(f"dev_share must be in (0, 1), got {self.dev_share}")
        if self.fisher_sentences is not None and self.fisher_sentences < 1:
            raise ValueError("fisher_sentences must be at least 1 (or None)")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------------------------- pieces

def _validate(model: RescoringModel, lam: float, lists: Sequence[NBest]) -> None:
    if model.net is None:
        raise ValueError("the rescoring model is not trained: adapt a fitted RescoringModel")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a positive number (the rescorer's LM weight); got {lam!r}: with lam = 0 "
                         "the rescorer ignores the LM and adapting it changes nothing")
    if not lists:
        raise ValueError("no n-best lists of the target group to adapt on")
    missing = [nb.key for nb in lists if not nb.reference or not words(nb.reference)]
    if missing:
        raise ValueError(f"{len(missing)} of the group's lists have no reference transcript (e.g. {missing[0]}); "
                         "adaptation needs references")


def split_by_speaker(lists: Sequence[NBest], *, share: float, seed: int) -> tuple[list[NBest], list[NBest]]:
    """(train, dev): a seeded share of the lists' speakers (at least one, at most all but one) with all their
    lists in dev. Lists without a speaker are their own unit (by key). Raises ValueError with fewer than 2 units."""
    units = sorted({nb.speaker or f"key:{nb.key}" for nb in lists})
    if len(units) < 2:
        raise ValueError("the group has fewer than 2 speakers: no dev split to choose the EWC strength on")
    n_dev = min(max(1, int(round(share * len(units)))), len(units) - 1)
    dev = {units[i] for i in np.random.default_rng(seed).choice(len(units), size=n_dev, replace=False)}
    train = [nb for nb in lists if (nb.speaker or f"key:{nb.key}") not in dev]
    return train, [nb for nb in lists if (nb.speaker or f"key:{nb.key}") in dev]


def pooled_wer(model: RescoringModel, lists: Sequence[NBest], *, lam: float, beta: float) -> float:
    """Pooled WER of the rescorer's choices (model, lam, beta) over lists with references."""
    texts = [c.text for c in choose(lists, lm_scores(model, lists), lam=lam, beta=beta)]
    errors, n = rescoring_eval.list_errors(lists, texts)
    return float(errors.sum() / max(int(n.sum()), 1))


class _Prepared:
    """A list's fixed parts for the loss: first-pass scores, word counts and word errors per hypothesis."""

    def __init__(self, nb: NBest):
        self.nb = nb
        self.first = np.asarray(nb.scores, dtype=np.float64)
        self.length = np.array([len(words(h)) for h in nb.hypotheses], dtype=np.float64)
        errs, _ = rescoring_eval.list_errors([nb] * len(nb.hypotheses), nb.hypotheses)
        self.errors = errs.astype(np.float64)


def adaptation_loss(model: RescoringModel, batch: Sequence, *, lam: float, beta: float, config: AdaptConfig,
                    train: bool = True) -> tuple:
    """(loss, parts) of one batch of prepared lists: lm_weight * reference NLL per word + mwer_weight * mean
    expected errors (module doc). parts: the two terms as floats."""
    import torch

    refs = [words(p.nb.reference) for p in batch]
    hyps = [h for p in batch for h in p.nb.hypotheses]
    lp = sentence_log_probs(model, [*refs, *hyps], train=train)
    ref_lp, hyp_lp = lp[:len(refs)], lp[len(refs):]
    lm_loss = -ref_lp.sum() / sum(len(r) + 1 for r in refs)
    mwer = torch.zeros(())
    pos, counted = 0, 0
    for p in batch:
        k = len(p.nb.hypotheses)
        if k > 1 and np.ptp(p.errors) > 0:
            fixed = torch.from_numpy(p.first / lam + (beta / lam) * p.length).to(hyp_lp.dtype)
            post = torch.softmax(fixed + hyp_lp[pos:pos + k], dim=0)
            err = torch.from_numpy(p.errors - p.errors.mean()).to(hyp_lp.dtype)
            mwer = mwer + (post * err).sum()
            counted += 1
        pos += k
    mwer = mwer / max(counted, 1)
    loss = config.lm_weight * lm_loss + config.mwer_weight * mwer
    return loss, {"lm": float(lm_loss.detach()), "mwer": float(mwer.detach())}


def _train(model: RescoringModel, prepared: list[_Prepared], *, lam: float, beta: float, config: AdaptConfig,
           penalty: tuple | None, ewc_lam: float, progress: Progress | None, label: str) -> list[dict]:
    """Fine-tune model in place; penalty: (fisher, anchor) or None. Returns one record per epoch."""
    import torch

    params = lm_parameters(model)
    for n, p in model.net.named_parameters():
        p.requires_grad_(n in params)  # the NLU heads stay as they are
    opt = torch.optim.Adam(list(params.values()), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    per_epoch = math.ceil(len(prepared) / config.batch_lists)
    total, step, history = config.epochs * per_epoch, 0, []
    model._tables = None  # the scoring cache holds the old weights
    try:
        with _threads(1):
            for epoch in range(1, config.epochs + 1):
                order = rng.permutation(len(prepared))
                sums = {"lm": 0.0, "mwer": 0.0, "ewc": 0.0}
                for s in range(0, len(order), config.batch_lists):
                    batch = [prepared[i] for i in order[s:s + config.batch_lists]]
                    loss, parts = adaptation_loss(model, batch, lam=lam, beta=beta, config=config)
                    if penalty is not None:
                        pen = ewc_penalty(params, penalty[0], penalty[1], lam=ewc_lam)
                        loss = loss + pen
                        parts["ewc"] = float(pen.detach())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(list(params.values()), config.clip)
                    opt.step()
                    step += 1
                    for k, v in parts.items():
                        sums[k] += v / per_epoch
                    if progress:
                        progress(label, step, total)
                history.append({"epoch": epoch, **{k: round(v, 6) for k, v in sums.items()}})
    finally:
        for p in model.net.parameters():
            p.requires_grad_(True)
        model.net.eval()
        model._tables = None
    return history


def _fingerprint(lists: Sequence[NBest], method: str, config: AdaptConfig, ewc_lam: float | None) -> str:
    h = hashlib.sha256(json.dumps({"method": method, "config": config.to_dict(), "ewc_lam": ewc_lam}).encode())
    for nb in lists:
        h.update(json.dumps([nb.key, nb.hypotheses, list(nb.scores), nb.reference]).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- the API

def adapt(model: RescoringModel, lam: float, beta: float, group_lists: Sequence[NBest],
          general_sentences: Sequence[str], *, method: str, config: AdaptConfig | None = None,
          fisher: dict | None = None, progress: Progress | None = None) -> tuple[RescoringModel, dict]:
    """An adapted copy of a trained rescoring model, and a summary of what was done. The input model is untouched.

    model: a fitted RescoringModel (pretrained and fine-tuned as analysis/rescoring builds it); lam, beta: the
    rescorer's weights tuned for it (kept: only the LM changes; lam > 0). group_lists: the target group's
    TRAINING-SIDE n-best lists with references (never evaluation-split lists: the caller guarantees it, the study
    checks it). general_sentences: the LM's general training text, for the EWC Fisher information (method "ewc"
    only; never evaluation-split text). method: "none" (a copy), "finetune" (the loss of the module doc on all the
    group's lists) or "ewc" (the same loss plus ``ewc_penalty``, its strength chosen from config.ewc_lams by the
    pooled WER of a dev split of the group's speakers, then trained on all the group's lists). fisher: the
    Fisher of this model on general_sentences when already computed (``fisher_diagonal(model, general_sentences,
    max_sentences=config.fisher_sentences, seed=config.seed)``: adapting one model to several groups needs it
    once); None computes it. progress(stage, step, total).

    Summary: method, lists, speakers, config, ewc_lam (chosen), dev (per strength: dev WER; and the dev WER of
    the unadapted model), history (per epoch: mean loss terms), fisher_sentences, seconds. The copy's
    ``fingerprints["adapt"]`` records the method, config and lists, and its history gets an "adapt" record."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    config = config or AdaptConfig()
    _validate(model, lam, group_lists)
    t0 = time.perf_counter()
    lists = list(group_lists)
    out = model.copy()
    summary: dict = {"method": method, "lists": len(lists),
                     "speakers": len({nb.speaker for nb in lists if nb.speaker is not None}),
                     "config": config.to_dict(), "lam": float(lam), "beta": float(beta), "ewc_lam": None,
                     "dev": None, "history": [], "fisher_sentences": 0}
    if method == "none":
        summary["seconds"] = time.perf_counter() - t0
        return out, summary
    prepared = [_Prepared(nb) for nb in lists]
    penalty = None
    ewc_lam = 0.0
    if method == "ewc":
        general = [s for s in general_sentences if words(s)]
        if not general:
            raise ValueError("method 'ewc' needs general training sentences for the Fisher information")
        if fisher is None:
            fisher = fisher_diagonal(model, general, max_sentences=config.fisher_sentences, seed=config.seed,
                                     progress=progress)
        elif set(fisher) != set(lm_parameters(model)):
            raise ValueError("fisher does not name this model's LM parameters (use ewc.fisher_diagonal on it)")
        summary["fisher_sentences"] = min(len(general), config.fisher_sentences or len(general))
        penalty = (fisher, anchor_of(model))
        train_lists, dev_lists = split_by_speaker(lists, share=config.dev_share, seed=config.seed)
        train_ids = {id(nb) for nb in train_lists}
        train_prep = [p for p in prepared if id(p.nb) in train_ids]
        dev = {"lists": len(dev_lists), "speakers": len({nb.speaker for nb in dev_lists}),
               "unadapted_wer": pooled_wer(model, dev_lists, lam=lam, beta=beta), "wer": {}}
        for x in config.ewc_lams:
            trial = model.copy()
            _train(trial, train_prep, lam=lam, beta=beta, config=config, penalty=(fisher, anchor_of(trial)),
                   ewc_lam=x, progress=progress, label=f"choosing the EWC strength ({x:g})")
            dev["wer"][f"{x:g}"] = pooled_wer(trial, dev_lists, lam=lam, beta=beta)
        # lowest dev WER; ties to the larger strength (closer to the unadapted model)
        ewc_lam = min(config.ewc_lams, key=lambda x: (dev["wer"][f"{x:g}"], -x))
        summary["ewc_lam"], summary["dev"] = ewc_lam, dev
    summary["history"] = _train(out, prepared, lam=lam, beta=beta, config=config, penalty=penalty, ewc_lam=ewc_lam,
                                progress=progress, label="adapting")
    out.fingerprints = {**out.fingerprints,
                        "adapt": _fingerprint(lists, method, config, ewc_lam if method == "ewc" else None)}
    out.history = [*out.history, {"stage": "adapt", "method": method, "ewc_lam": summary["ewc_lam"],
                                  "lists": len(lists), "epochs": summary["history"]}]
    summary["seconds"] = time.perf_counter() - t0
    return out, summary
