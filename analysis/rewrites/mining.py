"""Query rewrites from rephrase chains with an absorbing Markov chain (METHODS.md section 4).

Pooled over all users, each rephrase chain (a request and the rephrases that followed it, from
``analysis.rewrites.rephrase``) is a walk over *states*: normalised utterances (``states="utterance"``) or the
logged NLU interpretations (``states="interpretation"``). Every turn leaves its state once: to the next
turn's state when the chain goes on, else to one of two absorbing states, SUCCESS when the chain's last
turn shows no defect signal and FAILURE when it does (the user gave up).

With the transition counts normalised per state into Q (transient -> transient) and R (transient ->
absorbing), B = (I - Q)^-1 R is each state's probability of ending in SUCCESS or FAILURE. B solves
(I - Q) B = R with sparse linear algebra (``AbsorbingChain.absorption``: sparse iteration, a sparse LU
solve as the fallback); no matrix is ever inverted. I - Q is non-singular because every chain ends in an
absorbing state, so every state reaches one.

A rewrite source is a state seen at least ``min_support`` times whose own turns were defective at least
``min_failure_rate`` of the time. Its rewrite is the state with the highest success probability among
those *reachable* from it and seen at least ``min_target_support`` times; it is kept only if that
probability beats the source's by ``min_gain``. Reachable means that the walks starting at the source
visit the target at least ``min_reach`` times on average: row s of the fundamental matrix
N = (I - Q)^-1, summed as the sparse series I + Q + Q^2 + ... for all sources at once (``reach``;
``visits`` gives the same rows exactly by transposed LU solves, dense and slow for thousands of sources).
A plain graph search would let one mistaken rephrase link in a thousand turns make any state reachable.

Once deployed, a rewrite's replayed outcomes are wins and losses; ``retire_probability`` is the Beta
posterior probability that a decisive outcome is more often a loss than a win (the rewrite is worse than
the original); above ``RETIRE_ABOVE`` the rewrite is retired.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from analysis.rewrites.rephrase import Turns

STATE_KINDS = ("utterance", "interpretation")
RETIRE_ABOVE = 0.95
BETA_PRIOR = (1.0, 1.0)  # uniform prior on the win share of decisive outcomes


@dataclass(frozen=True)
class MiningConfig:
    """Every parameter of rewrite mining (documented in docs/rewrites.md)."""

    states: str = "utterance"  # what a state is: "utterance" (normalised request) or "interpretation"
    min_support: int = 5  # a source must be seen this often
    min_failure_rate: float = 0.5  # share of a source's turns with a defect signal
    min_target_support: int = 3  # a rewrite target must be seen this often
    min_gain: float = 0.2  # the target's success probability minus the source's
    min_reach: float = 0.1  # expected visits of the target on the source's walks (fundamental matrix)
    evidence: int = 5  # evidence sessions kept per rewrite

    def __post_init__(self) -> None:
        if self.states not in STATE_KINDS:
            raise ValueError(f"states must be one of {STATE_KINDS}, got {self.states!r}")
        for name in ("min_support", "min_target_support"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.min_failure_rate <= 1.0:
            raise ValueError(f"min_failure_rate must be in [0, 1], got {self.min_failure_rate}")
        if not -1.0 <= self.min_gain <= 1.0:
            raise ValueError(f"min_gain must be in [-1, 1], got {self.min_gain}")
        if not 0.0 < self.min_reach <= 1.0:
            raise ValueError(f"min_reach must be in (0, 1], got {self.min_reach}")
        if self.evidence < 0:
            raise ValueError(f"evidence must be >= 0, got {self.evidence}")

    def to_dict(self) -> dict:
        return asdict(self)


def _normalised(transitions: sp.spmatrix, absorbed: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(Q, R) from counts; rows normalised by each state's total outgoing count."""
    t = sp.csr_matrix(transitions, dtype=np.float64)
    absorbed = np.asarray(absorbed, dtype=np.float64)
    n = t.shape[0]
    if t.shape != (n, n) or absorbed.ndim != 2 or absorbed.shape[0] != n:
        raise ValueError(f"shapes do not fit: transitions {t.shape}, absorbed {absorbed.shape}")
    out = np.asarray(t.sum(axis=1)).ravel() + absorbed.sum(axis=1)
    if (out <= 0).any():
        raise ValueError(f"state {int(np.flatnonzero(out <= 0)[0])} has no outgoing transition")
    return sp.csr_matrix(sp.diags(1.0 / out) @ t), absorbed / out[:, None]


class AbsorbingChain:
    """An absorbing Markov chain from counts, factorised once (sparse LU of I - Q).

    transitions: (n, n) counts of moves between transient states; absorbed: (n, k) counts of moves into
    each of k absorbing states. Every state needs a positive outgoing count.
    """

    def __init__(self, transitions: sp.spmatrix, absorbed: np.ndarray):
        self.q, self.r = _normalised(transitions, absorbed)
        self.n = self.q.shape[0]
        self._lu = None

    @property
    def lu(self):
        """Sparse LU factors of I - Q, made on first use (exact rows of N; the fallback solve)."""
        if self._lu is None and self.n:
            self._lu = splu((sp.identity(self.n, format="csc") - self.q).tocsc())
        return self._lu

    def absorption(self, *, tol: float = 1e-13, max_iter: int = 10_000) -> np.ndarray:
        """B = (I - Q)^-1 R, shape (n, k): the probability of ending in each absorbing state.

        Solved iteratively on the sparse Q: B <- R + Q B from B = R converges monotonically because every
        walk is absorbed (Q is substochastic), in a few dozen sparse products on rephrase chains (a 1M-turn
        log: 60 products, milliseconds, where an LU factorisation of the same 7,874 states takes seconds to
        fill in 17M non-zeros). If it has not converged to ``tol`` after ``max_iter`` products, a sparse LU
        solve gives the answer."""
        if not self.n:
            return np.zeros((0, self.r.shape[1]))
        b = self.r.copy()
        for _ in range(max_iter):
            nxt = self.r + self.q @ b
            change = float(np.max(np.abs(nxt - b)))
            b = nxt
            if change < tol:
                return b
        return self.lu.solve(np.ascontiguousarray(self.r))

    def visits(self, sources: np.ndarray) -> np.ndarray:
        """Rows ``sources`` of N = (I - Q)^-1, shape (len(sources), n): expected visits of every state on a
        walk from each source (the source's own row counts the start as one visit)."""
        sources = np.asarray(sources, dtype=np.int64)
        if not self.n or not len(sources):
            return np.zeros((len(sources), self.n))
        e = np.zeros((self.n, len(sources)))
        e[sources, np.arange(len(sources))] = 1.0
        return self.lu.solve(e, trans="T").T  # N^T e_s = (I - Q)^-T e_s

    def reach(self, sources: np.ndarray, *, tol: float = 1e-6, max_moves: int = 200) -> sp.csr_matrix:
        """Rows ``sources`` of N as a sparse matrix, by the series N = I + Q + Q^2 + ... over the sparse Q:
        the walks from all sources advance together one move at a time, and probability masses below
        ``tol`` are dropped. Walks end at absorption, so the mass dies out in a few moves on rephrase
        chains, and every row stays sparse where LU solves give dense rows. The dropped masses are a
        truncation: on a 1M-turn log the entries differ from tol=1e-9 by at most 2e-5 and no entry crosses
        a reach threshold of 0.1, for 6x less time."""
        sources = np.asarray(sources, dtype=np.int64)
        k = len(sources)
        x = sp.csr_matrix((np.ones(k), (np.arange(k), sources)), shape=(k, self.n))
        total = x.copy()
        for _ in range(max_moves):
            x = sp.csr_matrix(x @ self.q)
            if tol > 0:
                x.data[x.data < tol] = 0.0
                x.eliminate_zeros()
            if not x.nnz:
                break
            total = total + x
        return sp.csr_matrix(total)


def absorbing_probabilities(transitions: sp.spmatrix, absorbed: np.ndarray) -> np.ndarray:
    """B = (I - Q)^-1 R from counts, by a sparse LU solve (see ``AbsorbingChain``)."""
    return AbsorbingChain(transitions, absorbed).absorption()


def retire_probability(wins: int, losses: int, prior: tuple[float, float] = BETA_PRIOR) -> float:
    """P(win share < 1/2) under Beta(prior_a + wins, prior_b + losses): how sure we are that a rewrite
    loses more often than it wins (ties carry no information and are left out)."""
    from scipy.stats import beta

    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be >= 0")
    return float(beta.cdf(0.5, prior[0] + wins, prior[1] + losses))


def should_retire(wins: int, losses: int) -> bool:
    return retire_probability(wins, losses) > RETIRE_ABOVE


@dataclass
class Rewrite:
    source: str
    target: str
    source_support: int
    source_failure_rate: float  # share of the source's turns with a defect signal
    source_success: float  # absorbing probability of SUCCESS
    target_support: int
    target_success: float
    gain: float
    reach: float  # expected visits of the target on a walk from the source
    direct: int  # times the target directly followed the source
    target_interpretation: str  # the modal logged NLU interpretation of the target's successful turns
    example: tuple[str, int] = ("", 0)  # the source's earliest turn (dialogue, turn index)
    evidence: list[tuple[str, int, str, int]] = field(default_factory=list)  # (source turn, target turn)


@dataclass
class MiningResult:
    states: list[str]
    support: np.ndarray
    failure_rate: np.ndarray
    success: np.ndarray  # B[:, SUCCESS]
    transitions: sp.csr_matrix  # counts between states
    absorbed: np.ndarray  # (n, 2) counts into SUCCESS, FAILURE
    interpretation: list[str]  # per state, as Rewrite.target_interpretation
    rewrites: list[Rewrite]
    n_chains: int
    timings: dict[str, float]

    def state_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.states)}


def _state_codes(turns: Turns, kind: str) -> tuple[np.ndarray, list[str]]:
    return (turns.text, turns.texts) if kind == "utterance" else (turns.interp, turns.interps)


def modal_interpretations(codes: np.ndarray, interp: np.ndarray, interps: list[str], n: int,
                          ok: np.ndarray) -> list[str]:
    """Per state (``codes`` per turn, ``n`` states): the most frequent logged interpretation (``interp``
    codes into ``interps`` per turn) among its turns without a defect (ties: the first in sorted order),
    else among all its turns."""
    m = max(len(interps), 1)
    out: list[str] = [""] * n
    for use in (ok, np.ones(len(codes), dtype=bool)):
        pairs = codes[use] * m + interp[use]
        uniq, counts = np.unique(pairs, return_counts=True)
        state = uniq // m
        order = np.lexsort((uniq % m, -counts, state))  # per state: most turns first
        first = np.r_[True, state[order][1:] != state[order][:-1]] if len(order) else np.zeros(0, bool)
        for k in order[first].tolist():
            s = int(uniq[k] // m)
            if not out[s]:
                out[s] = interps[int(uniq[k] % m)]
    return out


def mine(turns: Turns, is_rephrase: np.ndarray, config: MiningConfig = MiningConfig()) -> MiningResult:
    """Fit the absorbing chain on the rephrase chains of ``turns`` (sorted, from ``Turns.from_table``) and
    choose the rewrites. ``is_rephrase``: per sorted turn, a rephrase of its predecessor."""
    t0 = time.perf_counter()
    codes, states = _state_codes(turns, config.states)
    n_states, n = len(states), len(turns)
    is_rephrase = np.asarray(is_rephrase, dtype=bool)
    if len(is_rephrase) != n:
        raise ValueError(f"is_rephrase has {len(is_rephrase)} entries for {n} turns")
    signals = turns.signals_defective()
    cont = np.zeros(n, dtype=bool)  # the chain goes on after this turn
    cont[:-1] = is_rephrase[1:]
    src, dst = codes[:-1][cont[:-1]], codes[1:][cont[:-1]]
    transitions = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_states, n_states))
    transitions.sum_duplicates()
    ends = ~cont
    absorbed = np.zeros((n_states, 2))
    np.add.at(absorbed, (codes[ends], signals[ends].astype(np.int64)), 1.0)  # column 0 SUCCESS, 1 FAILURE
    support = np.bincount(codes, minlength=n_states)
    # A turn someone rephrased failed, whatever its own signals say.
    defective = signals | cont
    failure_rate = np.bincount(codes, weights=defective, minlength=n_states) / np.maximum(support, 1)
    t1 = time.perf_counter()

    present = np.flatnonzero(support > 0)
    local = np.full(n_states, -1)
    local[present] = np.arange(len(present))
    chain = AbsorbingChain(transitions[present][:, present], absorbed[present])
    success = np.zeros(n_states)
    success[present] = chain.absorption()[:, 0]
    t2 = time.perf_counter()

    interpretation = modal_interpretations(codes, turns.interp, turns.interps, n_states, ~defective)
    named = np.array([bool(s) for s in states], dtype=bool)
    eligible = np.flatnonzero((support >= config.min_support) & (failure_rate >= config.min_failure_rate)
                              & named)
    usable = (support >= config.min_target_support) & named & np.array([bool(i) for i in interpretation],
                                                                          dtype=bool)
    earliest = np.full(n_states, -1)
    if n:  # per state, its earliest turn (ties: the first sorted row)
        by_time = np.lexsort((np.arange(n), turns.seconds, codes))
        first = np.r_[True, codes[by_time][1:] != codes[by_time][:-1]]
        earliest[codes[by_time][first]] = by_time[first]
    rewrites: list[Rewrite] = []
    tv = time.perf_counter()
    reach = chain.reach(local[eligible]) if len(eligible) else sp.csr_matrix((0, len(present)))
    reach_time = time.perf_counter() - tv
    for s, i in zip(eligible.tolist(), range(len(eligible)), strict=True):
        row_idx = reach.indices[reach.indptr[i]:reach.indptr[i + 1]]
        row_val = reach.data[reach.indptr[i]:reach.indptr[i + 1]]
        near = present[row_idx[row_val >= config.min_reach]]
        cands = near[usable[near] & (near != s)]
        if not len(cands):
            continue
        direct_row = transitions.getrow(s)
        direct = dict(zip(direct_row.indices.tolist(), direct_row.data.tolist(), strict=True))
        # success rounded: equal probabilities (often 1.0) must tie however the solver rounded them
        best = int(max(cands.tolist(), key=lambda t: (round(success[t], 9), direct.get(t, 0.0), support[t], -t)))
        gain = float(success[best] - success[s])
        if gain < config.min_gain:
            continue
        rewrites.append(Rewrite(
            source=states[s], target=states[best], source_support=int(support[s]),
            source_failure_rate=float(failure_rate[s]), source_success=float(success[s]),
            target_support=int(support[best]), target_success=float(success[best]), gain=gain,
            reach=float(reach[i, local[best]]), direct=int(direct.get(best, 0)),
            target_interpretation=interpretation[best],
            example=(str(turns.dialogue_id[earliest[s]]), int(turns.turn_index[earliest[s]]))))
    t3 = time.perf_counter()
    if config.evidence and rewrites:
        _attach_evidence(turns, codes, cont, rewrites, states, config.evidence)
    t4 = time.perf_counter()
    rewrites.sort(key=lambda r: (-r.source_support * r.gain, r.source))
    n_chains = int(np.sum(ends))
    return MiningResult(states=states, support=support, failure_rate=failure_rate, success=success,
                        transitions=transitions, absorbed=absorbed, interpretation=interpretation,
                        rewrites=rewrites, n_chains=n_chains,
                        timings={"transitions": t1 - t0, "solve": t2 - t1, "reach": reach_time,
                                 "select": t3 - t2 - reach_time, "evidence": t4 - t3})


def _attach_evidence(turns: Turns, codes: np.ndarray, cont: np.ndarray, rewrites: list[Rewrite],
                     states: list[str], k: int) -> None:
    """For each rewrite, up to k chains in which the source was followed, later in the chain, by the
    target: (source dialogue, turn, target dialogue, turn) of the chain's first such pair, earliest first."""
    pos = {s: i for i, s in enumerate(states)}
    want = {pos[r.source]: (pos[r.target], r) for r in rewrites}
    chain = np.cumsum(np.r_[True, ~cont[:-1]]) - 1
    used: dict[int, set[int]] = {s: set() for s in want}
    hits = np.flatnonzero(np.isin(codes, np.fromiter(want, dtype=np.int64)) & cont)
    order = np.argsort(turns.seconds[hits], kind="stable")
    for i in hits[order].tolist():
        source = int(codes[i])
        target, rw = want[source]
        if len(rw.evidence) >= k or int(chain[i]) in used[source]:
            continue
        j = i
        while cont[j]:
            j += 1
            if codes[j] == target:
                used[source].add(int(chain[i]))
                rw.evidence.append((str(turns.dialogue_id[i]), int(turns.turn_index[i]),
                                    str(turns.dialogue_id[j]), int(turns.turn_index[j])))
                break


def rewrite_map(rewrites: list[Rewrite]) -> dict[str, Rewrite]:
    return {r.source: r for r in rewrites}
