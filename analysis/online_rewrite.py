"""Online rewriting by retrieval (METHODS.md section 4).

The absorbing-chain rewrites only cover requests seen often before. The online rewriter covers new ones:
an index of utterances that succeeded (normalised requests with their success counts and their modal
successful NLU interpretation), searched by sentence-embedding similarity (the offline MiniLM encoder or
any ``embed`` function giving unit vectors), in two layers:

* global: every successful utterance, for everyone;
* personal: each user's own successful utterances (their habits: "play my mix" means one thing for them).

Rewriting is in two steps. A *trigger* decides whether a request needs a rewrite at all: one seen before
whose smoothed success rate (successes + 1) / (turns + 2) is below ``trigger_rate``, or one never seen
whose recogniser confidence is below ``trigger_confidence``. A logistic-regression *ranker* then scores
each other utterance retrieved for it from the similarity, the candidate's success rate and support, the
user's own successes with it, and the request's own record; the best candidate is the rewrite if its
score is at least ``threshold``.

The ranker trains without gold labels, from rephrase chains: on the later part of the mining period, for a
defective request whose chain ended in success, the chain's last utterance is the right candidate and the
others are wrong; the index it retrieves from is built from the earlier part only, so no request sees its
own outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.rephrase import Turns
from analysis.rewrites import modal_interpretations

Embed = Callable[[Sequence[str]], np.ndarray]
RANK_FEATURES = ("similarity", "success_logit", "log_support", "log_personal", "is_personal",
                 "query_success", "log_query_support", "query_asr_confidence", "similarity_x_query_failure")


@dataclass(frozen=True)
class OnlineConfig:
    top_k: int = 10  # global candidates per request
    personal_k: int = 3  # personal candidates per request
    threshold: float = 0.2  # rewrite when the best candidate scores at least this
    trigger_rate: float = 0.5  # a seen request is rewritten only below this smoothed success rate
    trigger_confidence: float = 0.5  # an unseen request only below this recogniser confidence
    ranker_share: float = 0.25  # the latest share of the mining period the ranker trains on
    max_train_queries: int = 200_000

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.personal_k < 0:
            raise ValueError("top_k must be >= 1 and personal_k >= 0")
        for name in ("threshold", "trigger_rate", "trigger_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.ranker_share < 1.0:
            raise ValueError(f"ranker_share must be in (0, 1), got {self.ranker_share}")


@dataclass
class Index:
    """Outcome statistics of every request seen, and the successful ones with their vectors."""

    texts: list[str]  # every normalised request seen
    n: np.ndarray  # turns per text
    ok: np.ndarray  # turns without a defect per text
    interpretation: list[str]  # modal successful interpretation ("" when it never succeeded)
    members: np.ndarray  # text ids in the index (succeeded at least once, with an interpretation)
    vectors: np.ndarray  # (len(members), dim), unit rows
    personal: dict[int, dict[int, int]] = field(default_factory=dict)  # user -> text id -> successes
    users: dict[str, int] = field(default_factory=dict)  # user key -> id in personal

    def text_id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.texts)}


def build_index(turns: Turns, defective: np.ndarray, embed: Embed, user_names: Sequence[str],
                mask: np.ndarray | None = None) -> Index:
    """The index of the turns where ``mask`` (all by default). ``defective`` per sorted turn (signals or
    rephrased); ``user_names`` per sorted turn, a stable user key (user id)."""
    mask = np.ones(len(turns), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    codes = turns.text[mask]
    used = np.unique(codes)
    remap = np.full(len(turns.texts), -1)
    remap[used] = np.arange(len(used))
    local = remap[codes]
    texts = [turns.texts[i] for i in used.tolist()]
    ok_turn = ~np.asarray(defective, dtype=bool)[mask]
    n = np.bincount(local, minlength=len(texts))
    ok = np.bincount(local, weights=ok_turn, minlength=len(texts)).astype(np.int64)
    interp = modal_interpretations(local, turns.interp[mask], turns.interps, len(texts), ok_turn)
    interp = [i if ok[k] else "" for k, i in enumerate(interp)]
    members = np.array([k for k in range(len(texts)) if ok[k] and interp[k] and texts[k]], dtype=np.int64)
    vectors = _unit(embed([texts[k] for k in members.tolist()])) if len(members) else np.zeros((0, 1))
    users: dict[str, int] = {}
    personal: dict[int, dict[int, int]] = {}
    names = np.asarray(user_names, dtype=object)[mask]
    for u, t in zip(names[ok_turn].tolist(), local[ok_turn].tolist(), strict=True):
        if not interp[t]:
            continue
        uid = users.setdefault(str(u), len(users))
        d = personal.setdefault(uid, {})
        d[t] = d.get(t, 0) + 1
    return Index(texts=texts, n=n, ok=ok, interpretation=interp, members=members, vectors=vectors,
                 personal=personal, users=users)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


@dataclass
class Candidates:
    """Per (request, candidate) pair: which request (row into the queried turns), which indexed text, and
    the ranker's features."""

    query: np.ndarray
    text: np.ndarray  # text id in the index
    x: np.ndarray  # (pairs, len(RANK_FEATURES))


def candidates(index: Index, queries: Sequence[str], users: Sequence[str], asr_confidence: np.ndarray,
               embed: Embed, config: OnlineConfig) -> Candidates:
    """Retrieve and describe the candidates of each request (normalised text, user key, confidence)."""
    q_texts = list(queries)
    distinct = sorted(set(q_texts))
    dpos = {t: i for i, t in enumerate(distinct)}
    qv = _unit(embed(distinct)) if distinct else np.zeros((0, index.vectors.shape[1]))
    tid = index.text_id()
    members = index.members
    member_pos = {int(t): k for k, t in enumerate(members.tolist())}
    k = min(config.top_k, len(members))
    top: np.ndarray = np.zeros((len(distinct), 0), dtype=np.int64)
    top_sim: np.ndarray = np.zeros((len(distinct), 0))
    if k and len(distinct):
        tops, sims = [], []
        for lo in range(0, len(distinct), 2048):
            s = qv[lo:lo + 2048] @ index.vectors.T
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
            tops.append(members[part])
            sims.append(np.take_along_axis(s, part, axis=1))
        top, top_sim = np.concatenate(tops), np.concatenate(sims)
    rate = (index.ok + 1.0) / (index.n + 2.0)
    rows_q, rows_t, rows_x = [], [], []
    conf = np.where(np.isnan(asr_confidence), 0.5, asr_confidence)
    for qi, (text, user) in enumerate(zip(q_texts, users, strict=True)):
        d = dpos[text]
        own = tid.get(text, -1)
        q_rate = rate[own] if own >= 0 else 0.5
        q_n = index.n[own] if own >= 0 else 0
        pers = index.personal.get(index.users.get(str(user), -1), {})
        cand: dict[int, float] = {int(t): float(s) for t, s in zip(top[d].tolist(), top_sim[d].tolist(),
                                                                     strict=True)}
        if pers and config.personal_k:
            ids = [t for t in pers if t in member_pos]
            if ids:
                sims = index.vectors[[member_pos[t] for t in ids]] @ qv[d]
                for j in np.argsort(-sims)[:config.personal_k].tolist():
                    cand[ids[j]] = float(sims[j])
        cand.pop(own, None)  # the request itself is not a rewrite
        for t, sim in cand.items():
            p = pers.get(t, 0)
            r = rate[t]
            rows_q.append(qi)
            rows_t.append(t)
            rows_x.append((sim, float(np.log(r / (1 - r))), float(np.log1p(index.n[t])),
                           float(np.log1p(p)), float(p > 0), q_rate, float(np.log1p(q_n)), conf[qi],
                           sim * (1 - q_rate)))
    return Candidates(query=np.asarray(rows_q, dtype=np.int64), text=np.asarray(rows_t, dtype=np.int64),
                      x=np.asarray(rows_x, dtype=np.float64).reshape(-1, len(RANK_FEATURES)))


@dataclass
class Ranker:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> Ranker:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=bool)
        if y.all() or not y.any():
            raise ValueError("the ranker needs both right and wrong candidates to learn from; "
                             "mine a longer period (too few rephrase chains ended in success)")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(max_iter=1000).fit((x - mean) / scale, y)
        return cls(mean=mean, scale=scale, coef=lr.coef_[0].copy(), intercept=float(lr.intercept_[0]))

    def score(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict:
        return {"features": list(RANK_FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}


def chain_outcome(chains: np.ndarray, codes: np.ndarray, defective_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sorted turn: the state its chain ended in and whether that end was a success."""
    last = np.r_[chains[1:] != chains[:-1], True]
    end_idx = np.flatnonzero(last)
    per_chain_state = codes[end_idx]
    per_chain_ok = ~np.asarray(defective_end, dtype=bool)[end_idx]
    return per_chain_state[chains], per_chain_ok[chains]


@dataclass
class OnlineRewriter:
    index: Index
    ranker: Ranker
    config: OnlineConfig
    n_train_pairs: int = 0
    n_train_queries: int = 0

    def triggered(self, queries: Sequence[str], asr_confidence: np.ndarray) -> np.ndarray:
        """Per request: does it need a rewrite (see the module docstring)?"""
        tid = self.index.text_id()
        conf = np.asarray(asr_confidence, dtype=float)
        out = np.zeros(len(queries), dtype=bool)
        for i, q in enumerate(queries):
            t = tid.get(q, -1)
            if t >= 0:
                out[i] = (self.index.ok[t] + 1.0) / (self.index.n[t] + 2.0) < self.config.trigger_rate
            else:
                out[i] = not conf[i] >= self.config.trigger_confidence  # a missing confidence triggers
        return out

    def rewrite(self, queries: Sequence[str], users: Sequence[str], asr_confidence: np.ndarray,
                embed: Embed) -> tuple[list[str | None], list[str | None], np.ndarray]:
        """Per request: (the rewrite's text or None, its interpretation or None, the best score; 0 where the
        trigger did not fire)."""
        n = len(queries)
        asr_confidence = np.asarray(asr_confidence, dtype=float)
        fire = np.flatnonzero(self.triggered(queries, asr_confidence))
        best_score = np.zeros(n)
        best = np.full(n, -1)
        c = candidates(self.index, [queries[i] for i in fire.tolist()], [users[i] for i in fire.tolist()],
                       asr_confidence[fire], embed, self.config)
        if len(c.query):
            s = self.ranker.score(c.x)
            order = np.lexsort((-s, c.query))
            first = np.r_[True, c.query[order][1:] != c.query[order][:-1]]
            top = order[first]
            best[fire[c.query[top]]] = c.text[top]
            best_score[fire[c.query[top]]] = s[top]
        texts: list[str | None] = [None] * n
        interps: list[str | None] = [None] * n
        for i in np.flatnonzero((best >= 0) & (best_score >= self.config.threshold)).tolist():
            t = int(best[i])
            texts[i], interps[i] = self.index.texts[t], self.index.interpretation[t]
        return texts, interps, best_score


def fit_online(turns: Turns, defective: np.ndarray, chains: np.ndarray, user_names: Sequence[str],
               embed: Embed, config: OnlineConfig = OnlineConfig(), *, seed: int = 0) -> OnlineRewriter:
    """Train the ranker on the latest ``ranker_share`` of the turns (by time) against an index of the rest,
    then index all the turns for use."""
    n = len(turns)
    if n < 10:
        raise ValueError(f"too few turns to fit the online rewriter ({n})")
    cut = np.quantile(turns.seconds, 1.0 - config.ranker_share)
    # chains must not straddle the cut: a chain belongs to the period of its first turn
    chain_start_time = turns.seconds[np.r_[0, np.flatnonzero(chains[1:] != chains[:-1]) + 1]][chains]
    early = chain_start_time < cut
    end_state, end_ok = chain_outcome(chains, turns.text, defective)
    idx_early = build_index(turns, defective, embed, user_names, early)
    late = np.flatnonzero(~early & end_ok & np.asarray(defective, dtype=bool))
    if len(late) > config.max_train_queries:
        late = np.sort(np.random.default_rng(seed).choice(late, config.max_train_queries, replace=False))
    users = np.asarray(user_names, dtype=object)
    q_texts = [turns.texts[i] for i in turns.text[late].tolist()]
    c = candidates(idx_early, q_texts, users[late].tolist(), turns.asr_confidence[late], embed, config)
    early_tid = idx_early.text_id()
    want = np.array([early_tid.get(turns.texts[s], -1) for s in end_state[late].tolist()], dtype=np.int64)
    y = c.text == want[c.query]
    ranker = Ranker.fit(c.x, y)
    full = build_index(turns, defective, embed, user_names)
    return OnlineRewriter(index=full, ranker=ranker, config=config, n_train_pairs=len(y),
                          n_train_queries=int(len(late)))
