"""Online rewriting by retrieval (METHODS.md section 4).

The absorbing-chain rewrites only cover requests seen often before. The online rewriter covers new ones:
an index of utterances that succeeded (normalised requests with their success counts and their modal
successful NLU interpretation), searched by sentence-embedding similarity (the offline MiniLM encoder or
any ``embed`` function giving unit vectors), in two layers:

* global: every successful utterance, for everyone;
* personal: each user's own successful utterances (their habits: "play my mix" means one thing for them).

Rewriting is in two steps, both logistic regressions over production fields. The *trigger* estimates
whether a request will be defective from its own record in the index (seen or not, smoothed success rate
(successes + 1) / (turns + 2), support), its recogniser and NLU confidences and whether NLU found an
intent; requests below ``trigger`` are left alone. The *ranker* scores each other utterance retrieved for a
triggered request from the similarity, the candidate's success rate and support, the user's own successes
with it, and the request's own record; the best candidate is the rewrite if it scores at least
``threshold``.

Both train without gold labels, from the mining period's rephrase chains: the trigger on whether each
request turned out defective (its signals, or a rephrase followed), the ranker on defective requests whose
chain ended in success (a candidate is right when its interpretation is that of the chain's last, successful
request). They
train on a later part of the period against an index of the earlier part, so no request sees its own
outcome. Where labelled turns exist, the two thresholds are chosen on a final validation part
(``fit_online``'s ``judge``); the evaluation period is never used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.rewrites.mining import modal_interpretations
from analysis.rewrites.rephrase import Turns

Embed = Callable[[Sequence[str]], np.ndarray]
TRIGGER_FEATURES = ("seen", "query_success", "log_query_support", "asr_confidence", "nlu_confidence",
                    "no_intent")
RANK_FEATURES = ("similarity", "success_logit", "log_support", "log_personal", "is_personal",
                 "query_success", "log_query_support", "query_asr_confidence", "similarity_x_query_failure")


@dataclass(frozen=True)
class OnlineConfig:
    top_k: int = 10  # global candidates per request
    personal_k: int = 3  # personal candidates per request
    trigger: float = 0.5  # a request is considered when the trigger's defect probability reaches this
    threshold: float = 0.5  # rewrite when the best candidate's ranker score reaches this
    max_train_queries: int = 200_000
    unseen_share: float = 0.2  # share of utterances kept out of the fitting indexes, to learn about new ones

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.personal_k < 0:
            raise ValueError("top_k must be >= 1 and personal_k >= 0")
        for name in ("threshold", "trigger", "unseen_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


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
class Logistic:
    """A standardised logistic regression over named features (the ranker and the trigger)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, features: tuple[str, ...], x: np.ndarray, y: np.ndarray, what: str) -> Logistic:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=bool)
        if y.all() or not y.any():
            raise ValueError(f"the online rewriter's {what} needs both outcomes to learn from; mine a longer "
                             "period (too few rephrase chains ended in success)")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(max_iter=1000).fit((x - mean) / scale, y)
        return cls(features=features, mean=mean, scale=scale, coef=lr.coef_[0].copy(),
                   intercept=float(lr.intercept_[0]))

    def score(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}


def trigger_features(index: Index, queries: Sequence[str], asr_confidence: np.ndarray,
                     nlu_confidence: np.ndarray, has_intent: np.ndarray) -> np.ndarray:
    """Per request, TRIGGER_FEATURES: its own record in the index and its confidences."""
    tid = index.text_id()
    own = np.array([tid.get(q, -1) for q in queries], dtype=np.int64)
    seen = own >= 0
    rate = np.where(seen, (index.ok[np.maximum(own, 0)] + 1.0) / (index.n[np.maximum(own, 0)] + 2.0), 0.5)
    support = np.where(seen, index.n[np.maximum(own, 0)], 0)

    def fill(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        return np.where(np.isnan(c), 0.5, c)

    return np.column_stack([seen.astype(float), rate, np.log1p(support), fill(asr_confidence),
                            fill(nlu_confidence), ~np.asarray(has_intent, dtype=bool)]).astype(np.float64)


def chain_outcome(chains: np.ndarray, codes: np.ndarray, defective_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sorted turn: the state its chain ended in and whether that end was a success."""
    last = np.r_[chains[1:] != chains[:-1], True]
    end_idx = np.flatnonzero(last)
    per_chain_state = codes[end_idx]
    per_chain_ok = ~np.asarray(defective_end, dtype=bool)[end_idx]
    return per_chain_state[chains], per_chain_ok[chains]


@dataclass
class Requests:
    """What the online rewriter reads of the requests it may rewrite (all production fields)."""

    texts: list[str]  # normalised
    users: list[str]
    asr_confidence: np.ndarray
    nlu_confidence: np.ndarray
    has_intent: np.ndarray

    @classmethod
    def of(cls, turns: Turns, users: Sequence[str], rows: np.ndarray | None = None) -> Requests:
        rows = np.arange(len(turns)) if rows is None else np.asarray(rows, dtype=np.int64)
        return cls(texts=[turns.texts[i] for i in turns.text[rows].tolist()],
                   users=[str(users[i]) for i in rows.tolist()], asr_confidence=turns.asr_confidence[rows],
                   nlu_confidence=turns.nlu_confidence[rows], has_intent=turns.intent[rows] >= 0)


@dataclass
class OnlineRewriter:
    index: Index
    ranker: Logistic
    trigger: Logistic
    config: OnlineConfig
    n_train_pairs: int = 0
    n_train_queries: int = 0
    validation: dict | None = None  # the threshold grid's results, when chosen on labelled validation turns

    def rewrite(self, req: Requests, embed: Embed, *, trigger: float | None = None,
                threshold: float | None = None) -> tuple[list[str | None], list[str | None], np.ndarray]:
        """Per request: (the rewrite's text or None, its interpretation or None, the best candidate's score;
        0 where the trigger did not fire)."""
        trigger = self.config.trigger if trigger is None else trigger
        threshold = self.config.threshold if threshold is None else threshold
        n = len(req.texts)
        p_defect = self.trigger.score(trigger_features(self.index, req.texts, req.asr_confidence,
                                                       req.nlu_confidence, req.has_intent))
        fire = np.flatnonzero(p_defect >= trigger)
        best_score = np.zeros(n)
        best = np.full(n, -1)
        c = candidates(self.index, [req.texts[i] for i in fire.tolist()], [req.users[i] for i in fire.tolist()],
                       req.asr_confidence[fire], embed, self.config)
        if len(c.query):
            s = self.ranker.score(c.x)
            order = np.lexsort((-s, c.query))
            first = np.r_[True, c.query[order][1:] != c.query[order][:-1]]
            top = order[first]
            best[fire[c.query[top]]] = c.text[top]
            best_score[fire[c.query[top]]] = s[top]
        texts: list[str | None] = [None] * n
        interps: list[str | None] = [None] * n
        for i in np.flatnonzero((best >= 0) & (best_score >= threshold)).tolist():
            t = int(best[i])
            texts[i], interps[i] = self.index.texts[t], self.index.interpretation[t]
        return texts, interps, best_score


GRID = (0.01, 0.02, 0.05) + tuple(round(float(x), 1) for x in np.arange(0.1, 0.95, 0.1))


def fit_online(turns: Turns, defective: np.ndarray, chains: np.ndarray, user_names: Sequence[str],
               embed: Embed, config: OnlineConfig = OnlineConfig(), *, seed: int = 0,
               judge: Callable[[np.ndarray, list[str | None], list[str | None]], tuple[int, int]] | None = None
               ) -> OnlineRewriter:
    """Fit the online rewriter on mining-period turns (sorted, as ``Turns``).

    Chains are assigned to periods by the time of their first turn: the first 60% index, the next 20% train
    the ranker and the trigger against that index, and the last 20% validate. A stable ``unseen_share`` of
    the distinct utterances is kept out of the indexes used for fitting and validation, so both models and
    the thresholds also learn about requests never seen before (most requests of a new population are).
    With ``judge`` (rows of the turns, their rewritten interpretations and rewrite texts -> (wins, losses),
    from labelled turns) the trigger and ranker
    thresholds are chosen on the validation period, from an index of everything before it, to maximise wins
    minus losses (fewest rewrites on ties); without it the configured ones stay. Finally the index is
    rebuilt from all the turns.
    """
    from dataclasses import replace

    n = len(turns)
    if n < 10:
        raise ValueError(f"too few turns to fit the online rewriter ({n})")
    defective = np.asarray(defective, dtype=bool)
    starts = np.r_[0, np.flatnonzero(chains[1:] != chains[:-1]) + 1]
    chain_start_time = turns.seconds[starts][chains]
    q60, q80 = np.quantile(turns.seconds, [0.6, 0.8])
    early, middle, late = chain_start_time < q60, (chain_start_time >= q60) & (chain_start_time < q80), \
        chain_start_time >= q80
    end_interp, end_ok = chain_outcome(chains, turns.interp, defective)
    hidden_text = np.array([zlib.crc32(t.encode()) % 1000 < config.unseen_share * 1000 for t in turns.texts],
                           dtype=bool)
    indexable = ~hidden_text[turns.text]
    idx_early = build_index(turns, defective, embed, user_names, early & indexable)

    # the trigger: which requests turn out defective (signals or rephrased), from production fields
    rows = np.flatnonzero(middle)
    req = Requests.of(turns, user_names, rows)
    trigger = Logistic.fit(TRIGGER_FEATURES, trigger_features(idx_early, req.texts, req.asr_confidence,
                                                              req.nlu_confidence, req.has_intent),
                           defective[rows], "trigger")
    # the ranker: for a defective request whose chain ended in success, a candidate is right when it means
    # what the chain's last (successful) request meant: its modal interpretation is that request's logged one
    train = np.flatnonzero(middle & end_ok & defective)
    if len(train) > config.max_train_queries:
        train = np.sort(np.random.default_rng(seed).choice(train, config.max_train_queries, replace=False))
    treq = Requests.of(turns, user_names, train)
    c = candidates(idx_early, treq.texts, treq.users, treq.asr_confidence, embed, config)
    want = [turns.interps[i] for i in end_interp[train].tolist()]
    y = np.array([idx_early.interpretation[t] == want[q] for q, t in zip(c.query.tolist(), c.text.tolist(),
                                                                         strict=True)], dtype=bool)
    ranker = Logistic.fit(RANK_FEATURES, c.x, y, "ranker")

    validation = None
    if judge is not None and late.any():
        rewriter = OnlineRewriter(index=build_index(turns, defective, embed, user_names, ~late & indexable),
                                  ranker=ranker,
                                  trigger=trigger, config=config)
        vrows = np.flatnonzero(late)
        vreq = Requests.of(turns, user_names, vrows)
        results = []
        for tr in GRID:
            texts, interps, scores = rewriter.rewrite(vreq, embed, trigger=tr, threshold=0.0)
            for th in GRID:
                kept = [i if s >= th else None for i, s in zip(interps, scores, strict=True)]
                kept_texts = [t if s >= th else None for t, s in zip(texts, scores, strict=True)]
                wins, losses = judge(vrows, kept, kept_texts)
                results.append({"trigger": tr, "threshold": th, "wins": wins, "losses": losses,
                                "rewritten": sum(k is not None for k in kept)})
        best = max(results, key=lambda r: (r["wins"] - r["losses"], -r["rewritten"], r["trigger"], r["threshold"]))
        config = replace(config, trigger=best["trigger"], threshold=best["threshold"])
        validation = {"turns": int(len(vrows)), "chosen": best, "grid": results}
    full = build_index(turns, defective, embed, user_names)
    return OnlineRewriter(index=full, ranker=ranker, trigger=trigger, config=config, n_train_pairs=int(len(y)),
                          n_train_queries=int(len(train)), validation=validation)
