"""Skill routing (METHODS.md section 3): a multi-label shortlister over the skill catalogue, trained with
pseudo-labels read off its own training dynamics, negative feedback from failed routings and
self-distillation, and a HypRank-style re-ranker over its top k.

* ``build_examples``: one ``SkillExample`` per routed turn from production fields ONLY (``reference_text`` and
  ``gold_`` fields are never read; ``gold_skills`` serves the metrics at the end, for evaluation only).
* ``Dynamics``: after every epoch, every training example's top skills and its ground truth's score and rank;
  ``pseudo_labels`` is a pure function of it, so other p and r need no retraining.
* ``SkillRouter``: fit (shortlister, then re-ranker), predict, and checkpoints (config, vocabularies, version,
  data fingerprint, weights, and the dynamics as ``dynamics.npz``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from analysis.log_format import timestamp_seconds

VERSION = "skill-routing/1"
CONTEXT_FIELDS = ("device_type", "nlu_domain", "nlu_intent")
N_RECENT = 3  # recent skills per example, for the re-ranker
FAILED_STATUSES = ("unhandled", "error")
UNK = "<unk>"

Embed = Callable[[list[str]], np.ndarray]
Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True)
class SkillExample:
    """The router's view of one routed turn (production fields only)."""

    dialogue_id: str
    turn_index: int
    user_id: str | None
    timestamp: str  # ISO 8601
    request: str  # asr_text
    context: tuple[str, ...]  # one token per CONTEXT_FIELDS ("none" when not logged)
    skill: str  # the logged (routed) skill
    failed: bool  # response_status unhandled or error, or a barge-in
    recent_skills: tuple[str, ...]  # skills of the user's last N_RECENT earlier successful turns, oldest first

    @property
    def key(self) -> tuple[str, int]:
        return (self.dialogue_id, self.turn_index)


def _token(value: object, missing: str | None = "none") -> str | None:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def build_examples(records: Iterable[dict]) -> list[SkillExample]:
    """One example per turn with a logged ``response_skill``, sorted by (dialogue id, turn index).
    ``recent_skills`` come from the same user's turns (across dialogues) with a strictly earlier timestamp
    that did not fail; turns without a user id have none."""
    rows = sorted(((_token(r.get("user_id"), None), timestamp_seconds(r["timestamp"]), r) for r in records
                   if r.get("response_skill")),
                  key=lambda x: (x[0] is None, x[0] or "", x[1], x[2]["dialogue_id"], x[2]["turn_index"]))
    out: list[SkillExample] = []
    history: dict[str, list[str]] = {}
    for (user, _), group in itertools.groupby(rows, key=lambda x: (x[0], x[1])):
        seen = history.setdefault(user, []) if user is not None else []
        recent = tuple(seen[-N_RECENT:])  # turns of one user at one instant do not see each other
        made = []
        for _, _, r in group:
            ts = r["timestamp"]
            made.append(SkillExample(
                dialogue_id=r["dialogue_id"], turn_index=int(r["turn_index"]), user_id=user,
                timestamp=ts if isinstance(ts, str) else ts.isoformat(), request=r.get("asr_text") or "",
                context=tuple(_token(r.get(f)) for f in CONTEXT_FIELDS), skill=str(r["response_skill"]),
                failed=r.get("response_status") in FAILED_STATUSES or r.get("barge_in") is True,
                recent_skills=recent))
        seen.extend(e.skill for e in made if not e.failed)
        del seen[:-N_RECENT]
        out.extend(made)
    return sorted(out, key=lambda e: e.key)


def targets(examples: Sequence[SkillExample]) -> tuple[list[str | None], list[str | None]]:
    """(ground-truth skill, failed skill) per example: the logged skill is the ground truth of a successful
    turn; a failed turn has no ground truth and its logged skill is a negative pair instead."""
    return ([None if e.failed else e.skill for e in examples], [e.skill if e.failed else None for e in examples])


def data_fingerprint(examples: Sequence[SkillExample]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.key, e.request, e.context, e.skill, e.failed, e.recent_skills]).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- config

@dataclass
class RoutingConfig:
    """Hyper-parameters (defaults set without looking at the evaluation split).

    hidden / token_dim / dropout: the shortlister MLP's hidden width, the width of each context-token (and
    re-ranker skill / device / position) embedding, dropout. epochs, lr, weight_decay, batch_size: AdamW at a
    constant rate, for the shortlister and then the re-ranker. seed: initialisation and batch order.
    top_k: the shortlist the re-ranker orders. threshold: a skill is predicted when its sigmoid score >= it.
    pseudo_labels: skills among the top p ranked above the ground truth for r consecutive epochs become extra
    positives (BCE term weighted pl_weight) from the next epoch on, and extra re-ranker targets.
    negative_feedback: a failed (request, skill) pair adds -nf_weight * log(1 - s_skill); off, failed turns
    are not trained on at all. self_distill: from epoch 2 on, + sd_weight * BCE(s, ema) where ema is the
    per-example moving average of the earlier epochs' sigmoid outputs (ema <- m * ema + (1 - m) * s, m =
    sd_momentum).
    """

    hidden: int = 128
    token_dim: int = 16
    dropout: float = 0.1
    epochs: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 128
    seed: int = 0
    top_k: int = 5
    threshold: float = 0.5
    pseudo_labels: bool = False
    p: int = 2
    r: int = 4
    pl_weight: float = 0.5
    negative_feedback: bool = False
    nf_weight: float = 1.0
    self_distill: bool = False
    sd_weight: float = 0.5
    sd_momentum: float = 0.7

    def __post_init__(self) -> None:
        if min(self.epochs, self.top_k, self.p, self.r, self.batch_size) < 1:
            raise ValueError("epochs, top_k, p, r and batch_size must be >= 1")
        if not 0.0 <= self.sd_momentum < 1.0 or not 0.0 < self.threshold < 1.0:
            raise ValueError("sd_momentum must be in [0, 1) and threshold in (0, 1)")


# ---------------------------------------------------------------- training dynamics

def rank_scores(scores: np.ndarray, gt: np.ndarray, depth: int) -> tuple[np.ndarray, ...]:
    """Rank every row's skills by score descending, ties broken by skill index ascending. Returns (top
    ``depth`` skill indices, their scores, the ground truth's score, its 1-based rank)."""
    n, s = scores.shape
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    g = scores[np.arange(n), gt]
    before = (scores > g[:, None]) | ((scores == g[:, None]) & (np.arange(s)[None] < gt[:, None]))
    return top, np.take_along_axis(scores, top, 1), g, 1 + before.sum(1)


_DYN = ("epoch", "example", "gt_skill", "gt_score", "gt_rank")


@dataclass
class Dynamics:
    """One row per (epoch, training example with a ground truth), scored after that epoch (epochs from 1):
    the top ``depth`` skills (rank order as ``rank_scores``) and their scores, and the ground truth's skill,
    score and 1-based rank. ``example`` indexes the examples passed to ``SkillRouter.fit``."""

    epoch: np.ndarray
    example: np.ndarray
    top_skills: np.ndarray  # (N, depth)
    top_scores: np.ndarray  # (N, depth)
    gt_skill: np.ndarray
    gt_score: np.ndarray
    gt_rank: np.ndarray

    @classmethod
    def record(cls, epoch: int, example: np.ndarray, scores: np.ndarray, gt: np.ndarray, depth: int) -> Dynamics:
        top, top_scores, g, rank = rank_scores(scores, gt, depth)
        return cls(np.full(len(example), epoch, np.int32), example.astype(np.int64), top.astype(np.int32),
                   top_scores.astype(np.float32), gt.astype(np.int32), g.astype(np.float32), rank.astype(np.int32))

    @classmethod
    def concat(cls, parts: Sequence[Dynamics]) -> Dynamics:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    @property
    def depth(self) -> int:
        return self.top_skills.shape[1]

    def __len__(self) -> int:
        return len(self.epoch)

    def to_frame(self):
        """A pandas DataFrame: epoch, example, gt_skill, gt_score, gt_rank, skill_1..skill_depth,
        score_1..score_depth (skills as indices into the router's ``skills``)."""
        import pandas as pd

        cols = {c: getattr(self, c) for c in _DYN}
        cols |= {f"skill_{j + 1}": self.top_skills[:, j] for j in range(self.depth)}
        cols |= {f"score_{j + 1}": self.top_scores[:, j] for j in range(self.depth)}
        return pd.DataFrame(cols)

    @classmethod
    def from_frame(cls, df) -> Dynamics:
        depth = sum(1 for c in df.columns if c.startswith("skill_"))
        top = df[[f"skill_{j + 1}" for j in range(depth)]].to_numpy(np.int32).reshape(len(df), depth)
        scores = df[[f"score_{j + 1}" for j in range(depth)]].to_numpy(np.float32).reshape(len(df), depth)
        return cls(*(df[c].to_numpy() for c in _DYN[:2]), top, scores, *(df[c].to_numpy() for c in _DYN[2:]))

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Dynamics:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})


def pseudo_labels(dynamics: Dynamics, p: int, r: int) -> dict[int, list[tuple[int, int, float]]]:
    """Example index -> [(skill index, first epoch of its qualifying streak, score), ...] in the order they
    became pseudo-labels. A skill qualifies at an epoch when it is among the top p AND ranked above the
    ground truth (ranks as recorded: score descending, ties by skill index ascending, so of two equal scores
    the lower skill index is above); it becomes a pseudo-label once it has qualified in r consecutive epochs
    (one missing epoch breaks the streak), and stays one. The score is its score at that r-th epoch."""
    if p < 1 or r < 1:
        raise ValueError("p and r must be >= 1")
    if p > dynamics.depth:
        raise ValueError(f"p={p} is deeper than the {dynamics.depth} ranks recorded")
    rows, cols = np.nonzero(np.arange(1, p + 1)[None] < dynamics.gt_rank[:, None])
    ex, sk = dynamics.example[rows], dynamics.top_skills[rows, cols]
    ep, sc = dynamics.epoch[rows].astype(np.int64), dynamics.top_scores[rows, cols]
    o = np.lexsort((ep, sk, ex))
    ex, sk, ep, sc = ex[o], sk[o], ep[o], sc[o]
    new = np.ones(len(o), bool)
    new[1:] = (ex[1:] != ex[:-1]) | (sk[1:] != sk[:-1]) | (ep[1:] != ep[:-1] + 1)
    start = np.maximum.accumulate(np.where(new, np.arange(len(o)), 0))
    out: dict[int, list[tuple[int, int, float]]] = {}
    done: set[tuple[int, int]] = set()
    for i in np.flatnonzero(np.arange(len(o)) - start + 1 == r):
        if (ex[i], sk[i]) not in done:  # only a skill's first complete streak counts
            done.add((ex[i], sk[i]))
            out.setdefault(int(ex[i]), []).append((int(sk[i]), int(ep[start[i]]), float(sc[i])))
    return {k: sorted(v, key=lambda t: (t[1], t[0])) for k, v in sorted(out.items())}


# ---------------------------------------------------------------- networks

def negative_feedback_loss(logits, skill_idx):
    """Per example -log(1 - sigmoid(logits[i, skill_idx[i]])) (= softplus of that logit): large when a
    failed skill is predicted confidently; 0 where skill_idx < 0 (no failed skill)."""
    import torch

    picked = logits.gather(1, skill_idx.clamp(min=0)[:, None])[:, 0]
    return torch.nn.functional.softplus(picked) * (skill_idx >= 0)


def build_networks(config: RoutingConfig, text_dim: int, n_tokens: Sequence[int], n_skills: int, k: int):
    """(shortlister, re-ranker). shortlister(text (B, d), context ids (B, F)) -> logits (B, n_skills);
    reranker(score (B, k), skills (B, k), device (B,), recent (B, k)) -> logits (B, k): an MLP over
    [score, recent, skill / device / position embeddings] plus a learned multiple of the score's logit."""
    import torch

    nn, h, t = torch.nn, config.hidden, config.token_dim

    class Shortlister(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.ModuleList(nn.Embedding(n, t) for n in n_tokens)
            self.mlp = nn.Sequential(nn.Linear(text_dim + t * len(n_tokens), h), nn.GELU(),
                                     nn.Dropout(config.dropout), nn.Linear(h, n_skills))

        def forward(self, text, ctx):
            return self.mlp(torch.cat([text, *(emb(ctx[:, i]) for i, emb in enumerate(self.tokens))], 1))

    class Reranker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.skill, self.device, self.position = nn.Embedding(n_skills, t), nn.Embedding(n_tokens[0], t), \
                nn.Embedding(k, t)
            self.mlp = nn.Sequential(nn.Linear(2 + 3 * t, h), nn.GELU(), nn.Linear(h, 1))
            self.prior = nn.Parameter(torch.tensor(1.0))

        def forward(self, score, skills, device, recent):
            b, kk = skills.shape
            x = torch.cat([score[..., None], recent[..., None], self.skill(skills),
                           self.device(device)[:, None].expand(b, kk, t),
                           self.position(torch.arange(kk))[None].expand(b, kk, t)], -1)
            return self.mlp(x)[..., 0] + self.prior * torch.logit(score.clamp(1e-6, 1 - 1e-6))

    return Shortlister(), Reranker()


# ---------------------------------------------------------------- the router

@dataclass
class RoutingPredictions:
    """Per example, in the given order: sigmoid scores over ``skills``, the shortlist (top k skill indices by
    score), the same skills in the re-ranker's order and its softmax probabilities in that order."""

    keys: list[tuple[str, int]]
    skills: list[str]
    scores: np.ndarray  # (n, n_skills)
    shortlist: np.ndarray  # (n, k)
    reranked: np.ndarray  # (n, k)
    rerank_proba: np.ndarray  # (n, k)

    def predicted_sets(self, threshold: float = 0.5) -> list[set[str]]:
        return [{self.skills[j] for j in np.flatnonzero(row >= threshold)} for row in self.scores]

    def topk(self, reranked: bool = False) -> list[list[str]]:
        return [[self.skills[j] for j in row] for row in (self.reranked if reranked else self.shortlist)]

    def top1(self) -> list[str]:
        """The re-ranker's first skill."""
        return [self.skills[row[0]] for row in self.reranked]


class _Inputs:
    def __init__(self, torch, router: SkillRouter, examples: Sequence[SkillExample], embed: Embed):
        texts = sorted({e.request for e in examples if e.request})
        vecs = np.asarray(embed(texts), np.float32) if texts else np.zeros((0, router.text_dim or 1), np.float32)
        router.text_dim = router.text_dim or vecs.shape[1]
        row = {t: i + 1 for i, t in enumerate(texts)}  # row 0: the zero vector of an empty request
        self.vecs = torch.from_numpy(np.concatenate([np.zeros((1, router.text_dim), np.float32), vecs]))
        self.text = torch.tensor([row.get(e.request, 0) for e in examples], dtype=torch.int64)
        self.ctx = torch.tensor([[voc.get(v, 0) for voc, v in zip(router.tokens, e.context, strict=True)]
                                 for e in examples], dtype=torch.int64).reshape(len(examples), len(CONTEXT_FIELDS))
        sid = {s: i for i, s in enumerate(router.skills)}
        self.recent = np.array([[sid.get(s, -1) for s in e.recent_skills] + [-1] * (N_RECENT - len(e.recent_skills))
                                for e in examples], np.int64).reshape(len(examples), N_RECENT)

    def batch(self, idx):
        return self.vecs[self.text[idx]], self.ctx[idx]


class SkillRouter:
    CONFIG_FILE, WEIGHTS_FILE, DYNAMICS_FILE = "config.json", "weights.pt", "dynamics.npz"

    def __init__(self, config: RoutingConfig | None = None):
        self.config = config or RoutingConfig()
        self.skills: list[str] = []
        self.tokens: list[dict[str, int]] = []  # per CONTEXT_FIELDS: token -> id (0: unknown)
        self.text_dim, self.n_train, self.fingerprint = 0, 0, None
        self.shortlister = self.reranker = None
        self.dynamics: Dynamics | None = None
        self.history: list[dict] = []  # per epoch: stage, epoch, loss, seconds (+ pseudo_labels)

    @property
    def k(self) -> int:
        return min(self.config.top_k, len(self.skills))

    def _batches(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(n)
        return [order[s:s + self.config.batch_size] for s in range(0, n, self.config.batch_size)]

    def _scores(self, x: _Inputs, chunk: int = 8192) -> np.ndarray:
        import torch

        n = len(x.text)
        self.shortlister.eval()
        with torch.inference_mode():
            out = [torch.sigmoid(self.shortlister(*x.batch(torch.arange(s, min(s + chunk, n))))).numpy()
                   for s in range(0, n, chunk)]
        return np.concatenate(out) if out else np.zeros((0, len(self.skills)), np.float32)

    def _rerank_inputs(self, torch, x: _Inputs, scores: np.ndarray) -> tuple:
        short = np.argsort(-scores, axis=1, kind="stable")[:, :self.k]
        recent = (short[:, :, None] == x.recent[:, None, :]).any(-1)
        return short, (torch.from_numpy(np.take_along_axis(scores, short, 1).astype(np.float32)),
                       torch.from_numpy(short), x.ctx[:, 0], torch.from_numpy(recent.astype(np.float32)))

    def _train(self, stage: str, module, n: int, loss_of: Callable, rng: np.random.Generator,
               progress: Progress | None, after_epoch: Callable[[int], dict] | None = None) -> None:
        """cfg.epochs of AdamW over n items in shuffled batches; loss_of(batch indices) -> per-item losses;
        after_epoch(epoch) -> extra history fields."""
        import torch

        cfg = self.config
        opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total, step = cfg.epochs * math.ceil(n / cfg.batch_size), 0
        for epoch in range(1, cfg.epochs + 1):
            start, losses = time.perf_counter(), []
            module.train()
            for b in self._batches(n, rng):
                loss = loss_of(b).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if progress:
                    progress(stage, step, total)
            extra = after_epoch(epoch) if after_epoch else {}
            self.history.append({"stage": stage, "epoch": epoch, "loss": float(np.mean(losses)) if losses else 0.0,
                                 "seconds": time.perf_counter() - start, **extra})
        module.eval()

    def fit(self, examples: Sequence[SkillExample], *, embed: Embed, skills: Iterable[str] = (),
            progress: Progress | None = None) -> SkillRouter:
        """Train the shortlister (recording its dynamics after every epoch) then the re-ranker. ``skills``:
        catalogue skills for the vocabulary besides the logged ones. progress(stage, batches_done, total) with
        stage "shortlister" or "re-ranker"."""
        import torch

        cfg, bce = self.config, torch.nn.functional.binary_cross_entropy_with_logits
        if not examples:
            raise ValueError("no training examples")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.skills = sorted(set(skills) | {e.skill for e in examples})
        self.tokens = [{UNK: 0} | {v: i + 1 for i, v in enumerate(sorted({e.context[f] for e in examples}))}
                       for f in range(len(CONTEXT_FIELDS))]
        sid = {s: i for i, s in enumerate(self.skills)}
        gt_names, neg_names = targets(examples)
        gt = np.array([sid[g] if g else -1 for g in gt_names], np.int64)
        neg = torch.tensor([sid[s] if s else -1 for s in neg_names], dtype=torch.int64)
        has_gt = np.flatnonzero(gt >= 0)
        if not len(has_gt):
            raise ValueError("no successful routings among the training examples")
        self.text_dim = 0  # set from the vectors
        x = _Inputs(torch, self, examples, embed)
        self.fingerprint, self.n_train, self.history = data_fingerprint(examples), len(examples), []
        self.shortlister, self.reranker = build_networks(cfg, self.text_dim, [len(v) for v in self.tokens],
                                                         len(self.skills), self.k)
        n, n_skills = len(examples), len(self.skills)
        y, w = torch.zeros(n, n_skills), torch.zeros(n, n_skills)
        y[has_gt, gt[has_gt]] = 1.0
        w[has_gt] = 1.0  # failed turns: no BCE (their negative pair is the feedback term)
        pl = np.zeros((n, n_skills), bool)
        depth = min(max(cfg.p, cfg.top_k), n_skills)
        p, parts, state = min(cfg.p, depth), [], {"ema": None, "scores": None}

        def loss_of(b: np.ndarray):
            idx = torch.from_numpy(b)
            logits = self.shortlister(*x.batch(idx))
            loss = bce(logits, y[idx], weight=w[idx], reduction="none").sum(1)
            if cfg.negative_feedback:
                loss = loss + cfg.nf_weight * negative_feedback_loss(logits, neg[idx])
            if state["ema"] is not None:  # self-distillation, from epoch 2 on
                loss = loss + cfg.sd_weight * bce(logits, torch.from_numpy(state["ema"][b]), reduction="none").sum(1)
            return loss

        def after_epoch(epoch: int) -> dict:
            state["scores"] = scores = self._scores(x)
            parts.append(Dynamics.record(epoch, has_gt, scores[has_gt], gt[has_gt], depth))
            if cfg.self_distill:
                ema, m = state["ema"], cfg.sd_momentum
                state["ema"] = scores.copy() if ema is None else m * ema + (1 - m) * scores
            if cfg.pseudo_labels:  # positives at pl_weight from the next epoch on (and re-ranker targets)
                for i, found in pseudo_labels(Dynamics.concat(parts), p, cfg.r).items():
                    for j, _, _ in found:
                        pl[i, j], y[i, j], w[i, j] = True, 1.0, cfg.pl_weight
            return {"pseudo_labels": int(pl.sum())}

        self._train("shortlister", self.shortlister, n, loss_of, rng, progress, after_epoch)
        self.dynamics = Dynamics.concat(parts)
        # the re-ranker: softmax over each shortlist, target uniform over the ground truth and its pseudo-labels
        # there; examples whose ground truth is not in the shortlist (or with none) are skipped
        short, (score, short_t, device, recent) = self._rerank_inputs(torch, x, state["scores"])
        hit = short == gt[:, None]
        keep = np.flatnonzero(hit.any(1))
        target = (hit | np.take_along_axis(pl, short, 1))[keep].astype(np.float32)
        target = torch.from_numpy(target / target.sum(1, keepdims=True))

        def rerank_loss(b: np.ndarray):
            i = torch.from_numpy(keep[b])
            return -(target[b] * torch.log_softmax(self.reranker(score[i], short_t[i], device[i], recent[i]), 1)).sum(1)

        self._train("re-ranker", self.reranker, len(keep), rerank_loss, rng, progress)
        return self

    def predict(self, examples: Sequence[SkillExample], *, embed: Embed) -> RoutingPredictions:
        import torch

        if self.shortlister is None:
            raise RuntimeError("the router is not trained: call fit or from_pretrained first")
        x = _Inputs(torch, self, examples, embed)
        scores = self._scores(x)
        short, inputs = self._rerank_inputs(torch, x, scores)
        self.reranker.eval()
        with torch.inference_mode():
            proba = torch.softmax(self.reranker(*inputs).double(), 1).numpy()
        order = np.argsort(-proba, axis=1, kind="stable")
        return RoutingPredictions([e.key for e in examples], list(self.skills), scores.astype(np.float64), short,
                                  np.take_along_axis(short, order, 1), np.take_along_axis(proba, order, 1))

    def pseudo_labels(self, p: int | None = None, r: int | None = None) -> dict[int, list[tuple[int, int, float]]]:
        """The training examples' pseudo-labels from the stored dynamics (default: the config's p and r)."""
        if self.dynamics is None:
            raise RuntimeError("no training dynamics: the router is not trained")
        return pseudo_labels(self.dynamics, p or self.config.p, r or self.config.r)

    # -- checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        import torch

        if self.shortlister is None:
            raise RuntimeError("nothing to save: the router is not trained")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "config": asdict(self.config), "skills": self.skills, "tokens": self.tokens,
                "text_dim": self.text_dim, "data_fingerprint": self.fingerprint, "n_train": self.n_train,
                "history": self.history}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        torch.save({"shortlister": self.shortlister.state_dict(), "reranker": self.reranker.state_dict()},
                   d / self.WEIGHTS_FILE)
        self.dynamics.save(d / self.DYNAMICS_FILE)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SkillRouter:
        import torch

        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        known = {f.name for f in fields(RoutingConfig)}
        self = cls(RoutingConfig(**{k: v for k, v in meta["config"].items() if k in known}))
        self.skills, self.tokens, self.text_dim = meta["skills"], meta["tokens"], meta["text_dim"]
        self.fingerprint, self.n_train, self.history = meta["data_fingerprint"], meta["n_train"], meta["history"]
        self.shortlister, self.reranker = build_networks(self.config, self.text_dim, [len(v) for v in self.tokens],
                                                         len(self.skills), self.k)
        weights = torch.load(d / cls.WEIGHTS_FILE, weights_only=True)
        self.shortlister.load_state_dict(weights["shortlister"])
        self.reranker.load_state_dict(weights["reranker"])
        self.dynamics = Dynamics.load(d / cls.DYNAMICS_FILE)
        return self


# ---------------------------------------------------------------- metrics

def multilabel_f1(pred_sets: Sequence[Iterable[str]], gold_sets: Sequence[Iterable[str] | None]) -> float:
    """Micro F1 over (example, skill) pairs: 2 tp / (predicted pairs + gold pairs); nan when both are 0. An
    example with an empty (or None) gold set counts: all its predictions are false positives."""
    tp = n_pred = n_gold = 0
    for pred, gold in zip(pred_sets, gold_sets, strict=True):
        pred, gold = set(pred), set(gold or ())
        tp, n_pred, n_gold = tp + len(pred & gold), n_pred + len(pred), n_gold + len(gold)
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else float("nan")


def recall_at_k(topk_lists: Sequence[Iterable[str]], gold_sets: Sequence[Iterable[str]]) -> float:
    """Mean over examples with a non-empty gold set of the share of it found in the example's top k (below
    1 whenever a gold set is larger than k); nan when no example has a gold set."""
    shares = [len(set(top) & set(gold)) / len(set(gold)) for top, gold in zip(topk_lists, gold_sets, strict=True)
              if gold and len(set(gold))]
    return float(np.mean(shares)) if shares else float("nan")


def top1_accuracy(top1: Sequence[str], gold_sets: Sequence[Iterable[str]]) -> float:
    """Share of examples with a non-empty gold set whose top-1 skill is in it; nan when there are none."""
    hits = [t in set(g) for t, g in zip(top1, gold_sets, strict=True) if g and len(set(g))]
    return float(np.mean(hits)) if hits else float("nan")


def pseudo_label_precision(pls: Mapping[int, Sequence[tuple]], gold_sets: Sequence[Iterable[str]] | Mapping,
                           skills: Sequence[str] | None = None) -> float:
    """Share of proposed (example, skill) pairs whose skill is in the example's gold set. ``pls`` as from
    ``pseudo_labels`` (skill indices, mapped through ``skills``; names when ``skills`` is None); ``gold_sets``
    indexed by the same example indices. nan when nothing was proposed."""
    hits = [(skills[s] if skills is not None else s) in set(gold_sets[i] or ()) for i, found in pls.items()
            for s, *_ in found]
    return float(np.mean(hits)) if hits else float("nan")


# ---------------------------------------------------------------- review (the Skill routing page)

def pseudo_label_grid(dynamics: Dynamics, skills: Sequence[str], gold_sets: Sequence[Iterable[str] | None] | Mapping,
                      ps: Iterable[int] = (1, 2, 3), rs: Iterable[int] = range(1, 7)):
    """For every p (only p <= the dynamics depth) and r: how many (example, skill) pseudo-labels the stored
    dynamics propose, how many of them are on examples with a gold set (``gold_sets`` indexed by example
    index; None: no gold), and the precision of those (share whose skill is in the gold set; nan when none
    is judged). A pandas DataFrame with columns p, r, proposed, with_gold, precision."""
    import pandas as pd

    rows = []
    for p in ps:
        if p > dynamics.depth:
            continue
        for r in rs:
            labels = pseudo_labels(dynamics, p, r)
            pairs = [(i, s) for i, found in labels.items() for s, *_ in found]
            judged = [skills[s] in set(gold_sets[i]) for i, s in pairs if gold_sets[i] is not None]
            rows.append({"p": p, "r": r, "proposed": len(pairs), "with_gold": len(judged),
                         "precision": float(np.mean(judged)) if judged else float("nan")})
    return pd.DataFrame(rows, columns=["p", "r", "proposed", "with_gold", "precision"])


def rank_history(dynamics: Dynamics, example: int, skill: int):
    """One example's ranks across epochs: epoch, proposed_rank (1-based rank of ``skill`` among the recorded
    top ranks; nan when below them) and logged_rank (the ground truth's rank). A pandas DataFrame."""
    import pandas as pd

    rows = np.flatnonzero(dynamics.example == example)
    rows = rows[np.argsort(dynamics.epoch[rows], kind="stable")]
    top = dynamics.top_skills[rows] == skill
    proposed = np.where(top.any(1), top.argmax(1) + 1, np.nan)
    return pd.DataFrame({"epoch": dynamics.epoch[rows].astype(int), "proposed_rank": proposed,
                         "logged_rank": dynamics.gt_rank[rows].astype(float)})
