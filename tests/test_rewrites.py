"""Query rewrites: the absorbing chain against a chain solved by hand in exact fractions and against a Monte
Carlo simulation, the retirement rule against the Beta distribution, and mining on a hand-built log whose
success probabilities, supports and evidence are worked out in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction as F

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import beta

from analysis.rewrites import mining as rw
from analysis.rewrites import rephrase as rp
from analysis.simulate import records_to_table
from tests.helpers import make_turn

# ---------------------------------------------------------------- the absorbing chain by hand

# Four transient states; counts of moves between them and into (SUCCESS, FAILURE):
#   state 0: -> 1 twice, -> 2 once, FAILURE once          (4 moves)
#   state 1: -> 2 once,  -> 3 once, SUCCESS twice         (4 moves)
#   state 2: -> 0 once,  SUCCESS once, FAILURE once       (3 moves)
#   state 3: -> 3 once (itself), FAILURE once             (2 moves)
COUNTS = [[0, 2, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1]]
ABSORBED = [[0, 1], [2, 0], [1, 1], [0, 1]]
# Success probabilities s = Q s + R[:, SUCCESS]:
#   s3 = s3 / 2                    -> s3 = 0
#   s2 = s0 / 3 + 1 / 3
#   s1 = s2 / 4 + s3 / 4 + 1 / 2   =  s2 / 4 + 1 / 2
#   s0 = s1 / 2 + s2 / 4           =  3 s2 / 8 + 1 / 4
#   s2 = (3 s2 / 8 + 1 / 4) / 3 + 1 / 3 = s2 / 8 + 5 / 12  -> s2 = 10 / 21, s0 = 3 / 7, s1 = 13 / 21
# Every walk is absorbed, so failure = 1 - success.
SUCCESS = [F(3, 7), F(13, 21), F(10, 21), F(0)]
# The fundamental matrix N = (I - Q)^-1, column j from v = e_j + Q v:
#   v3 = 2 c3;  v2 = 8/7 (c2 + c0/3 + c1/6 + c3/12);  v1 = c1 + v2/4 + v3/4;  v0 = c0 + c1/2 + 3 v2/8 + v3/8
#   j = 0: v2 = 8/21,  v0 = 1 + 1/7 = 8/7,        v1 = 2/21,           v3 = 0
#   j = 1: v2 = 4/21,  v0 = 1/2 + 1/14 = 4/7,     v1 = 1 + 1/21 = 22/21, v3 = 0
#   j = 2: v2 = 8/7,   v0 = 3/7,                  v1 = 2/7,            v3 = 0
#   j = 3: v2 = 2/21,  v0 = 1/28 + 1/4 = 2/7,     v1 = 1/42 + 1/2 = 11/21, v3 = 2
N = [[F(8, 7), F(4, 7), F(3, 7), F(2, 7)],
     [F(2, 21), F(22, 21), F(2, 7), F(11, 21)],
     [F(8, 21), F(4, 21), F(8, 7), F(2, 21)],
     [F(0), F(0), F(0), F(2)]]


def _exact_q_r() -> tuple[list[list[F]], list[list[F]]]:
    out = [sum(c) + sum(a) for c, a in zip(COUNTS, ABSORBED, strict=True)]
    return ([[F(c, o) for c in row] for row, o in zip(COUNTS, out, strict=True)],
            [[F(a, o) for a in row] for row, o in zip(ABSORBED, out, strict=True)])


def test_hand_solution_is_exact():
    """The fractions above solve the chain exactly: (I - Q) N = I and N R = B."""
    q, r = _exact_q_r()
    for i in range(4):
        for j in range(4):
            assert (N[i][j] - sum(q[i][k] * N[k][j] for k in range(4))) == (1 if i == j else 0)
        assert sum(N[i][k] * r[k][0] for k in range(4)) == SUCCESS[i]
        assert sum(N[i][k] * r[k][1] for k in range(4)) == 1 - SUCCESS[i]


def test_absorbing_probabilities_by_hand():
    b = rw.absorbing_probabilities(sp.csr_matrix(np.array(COUNTS, float)), np.array(ABSORBED, float))
    expected = np.array([[float(s), float(1 - s)] for s in SUCCESS])
    assert b.shape == (4, 2)
    np.testing.assert_allclose(b, expected, rtol=0, atol=1e-12)
    # dense counts work too
    np.testing.assert_allclose(rw.absorbing_probabilities(np.array(COUNTS), np.array(ABSORBED)), expected,
                               rtol=0, atol=1e-12)


def test_visits_are_rows_of_the_fundamental_matrix():
    chain = rw.AbsorbingChain(sp.csr_matrix(np.array(COUNTS, float)), np.array(ABSORBED, float))
    exact = np.array([[float(v) for v in row] for row in N])
    np.testing.assert_allclose(chain.visits(np.arange(4)), exact, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chain.visits(np.array([3, 1])), exact[[3, 1]], rtol=0, atol=1e-12)
    assert chain.visits(np.zeros(0, np.int64)).shape == (0, 4)


def test_reach_sums_the_series_to_the_fundamental_matrix():
    chain = rw.AbsorbingChain(sp.csr_matrix(np.array(COUNTS, float)), np.array(ABSORBED, float))
    exact = np.array([[float(v) for v in row] for row in N])
    # without pruning the series converges to N (geometrically: the hand chain has a self-loop and a cycle)
    np.testing.assert_allclose(chain.reach(np.arange(4), tol=0.0, max_moves=2000).toarray(), exact, atol=1e-10)
    # with the default pruning it is within a hair of N, and sparse
    pruned = chain.reach(np.array([3, 0]))
    assert sp.issparse(pruned)
    np.testing.assert_allclose(pruned.toarray(), exact[[3, 0]], atol=1e-4)
    counts, absorbed = _random_chain(2024)
    big = rw.AbsorbingChain(counts, absorbed)
    np.testing.assert_allclose(big.reach(np.arange(8)).toarray(), big.visits(np.arange(8)), atol=1e-4)
    np.testing.assert_allclose(big.reach(np.arange(8), tol=1e-12).toarray(), big.visits(np.arange(8)), atol=1e-9)


def test_absorption_by_iteration_equals_the_lu_solve_and_falls_back():
    counts, absorbed = _random_chain(7)
    chain = rw.AbsorbingChain(counts, absorbed)
    lu = chain.lu.solve(np.ascontiguousarray(chain.r))
    np.testing.assert_allclose(chain.absorption(), lu, atol=1e-12)
    np.testing.assert_allclose(chain.absorption(max_iter=1), lu, atol=1e-15)  # not converged: the LU answer
    assert chain.reach(np.zeros(0, np.int64)).shape == (0, 8)


def test_empty_chain():
    chain = rw.AbsorbingChain(sp.csr_matrix((0, 0)), np.zeros((0, 2)))
    assert chain.absorption().shape == (0, 2)
    assert chain.visits(np.zeros(0, np.int64)).shape == (0, 0)


# ---------------------------------------------------------------- against a simulation

WALKS = 200_000


def _random_chain(seed: int, n: int = 8) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = (rng.random((n, n)) < 0.3) * rng.integers(1, 10, (n, n))
    absorbed = rng.integers(0, 4, (n, 2))
    absorbed[absorbed.sum(axis=1) == 0, 0] = 1  # every state can be absorbed at once
    return sp.csr_matrix(counts.astype(float)), absorbed.astype(float)


def _simulate(counts: sp.csr_matrix, absorbed: np.ndarray, start: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """WALKS walks from ``start``, all stepped at once: (absorbing state per walk, visits per walk and state)."""
    full = np.hstack([counts.toarray(), absorbed])
    cum = np.cumsum(full / full.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = np.inf  # rounding never lets a draw fall off the end
    n = counts.shape[0]
    visits = np.zeros((WALKS, n), np.int32)
    end = np.full(WALKS, -1)
    alive, state = np.arange(WALKS), np.full(WALKS, start)
    while alive.size:
        visits[alive, state] += 1
        nxt = (rng.random(alive.size)[:, None] >= cum[state]).sum(axis=1)
        done = nxt >= n
        end[alive[done]] = nxt[done] - n
        alive, state = alive[~done], nxt[~done]
    return end, visits


def test_absorption_and_visits_match_a_monte_carlo_simulation():
    counts, absorbed = _random_chain(2024)
    assert counts.nnz >= 12 and counts.nnz < 40  # sparse, but with loops between states
    chain = rw.AbsorbingChain(counts, absorbed)
    b = chain.absorption()
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(b, rw.absorbing_probabilities(counts, absorbed), atol=1e-15)
    rng = np.random.default_rng(7)
    starts = np.array([0, 5])
    rows = chain.visits(starts)
    for start, row in zip(starts.tolist(), rows, strict=True):
        assert 0.05 < b[start, 0] < 0.95  # not a degenerate case
        end, visits = _simulate(counts, absorbed, start, rng)
        assert (end >= 0).all()
        share = np.mean(end == 0)
        sigma = np.sqrt(b[start, 0] * (1 - b[start, 0]) / WALKS)
        assert abs(share - b[start, 0]) < 5 * sigma, (start, share, b[start, 0])
        mean, se = visits.mean(axis=0), visits.std(axis=0) / np.sqrt(WALKS)
        assert row[start] >= 1.0
        assert np.all(np.abs(mean - row) <= 5 * se + 1e-9), (start, mean, row)


# ---------------------------------------------------------------- errors


def test_a_state_without_outgoing_transitions_is_named():
    counts = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], float))  # state 2 only receives
    absorbed = np.array([[1, 0], [0, 1], [0, 0]], float)
    with pytest.raises(ValueError, match="state 2 has no outgoing transition"):
        rw.absorbing_probabilities(counts, absorbed)
    absorbed = np.array([[1, 0], [0, 0], [1, 0]], float)  # state 1 moves on to 2: that is outgoing
    assert rw.absorbing_probabilities(counts, absorbed).shape == (3, 2)
    with pytest.raises(ValueError, match="state 0 has no outgoing"):
        rw.AbsorbingChain(sp.csr_matrix((2, 2)), np.array([[0, 0], [1, 0]]))


@pytest.mark.parametrize("counts, absorbed", [
    (np.ones((3, 3)), np.ones((2, 2))),  # one absorbing row short
    (np.ones((2, 3)), np.ones((2, 2))),  # not square
    (np.ones((3, 3)), np.ones(3)),  # absorbed not a matrix
])
def test_shape_mismatch_raises(counts, absorbed):
    with pytest.raises(ValueError, match="shapes do not fit"):
        rw.absorbing_probabilities(sp.csr_matrix(counts), absorbed)


# ---------------------------------------------------------------- retirement


@pytest.mark.parametrize("wins, losses", [(0, 0), (3, 7), (12, 4), (1, 20), (40, 45)])
def test_retire_probability_is_the_beta_posterior(wins, losses):
    assert rw.retire_probability(wins, losses) == pytest.approx(beta.cdf(0.5, 1 + wins, 1 + losses), abs=1e-14)
    assert rw.retire_probability(wins, losses, prior=(2.0, 5.0)) == pytest.approx(
        beta.cdf(0.5, 2 + wins, 5 + losses), abs=1e-14)


def test_should_retire():
    for k in (0, 1, 5, 50):
        assert rw.retire_probability(k, k) == pytest.approx(0.5, abs=1e-12)  # no evidence either way
        assert not rw.should_retire(k, k)
    # no wins, l losses: P(p < 1/2) under Beta(1, 1 + l) = 1 - 2^-(l+1); 0.9375 at 3, 0.96875 at 4
    assert rw.retire_probability(0, 3) == pytest.approx(1 - 2 ** -4)
    assert not rw.should_retire(0, 3) and rw.should_retire(0, 4)
    assert rw.should_retire(2, 30) and not rw.should_retire(30, 2) and not rw.should_retire(50, 0)
    with pytest.raises(ValueError, match=">= 0"):
        rw.retire_probability(-1, 3)
    with pytest.raises(ValueError, match=">= 0"):
        rw.should_retire(2, -1)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("kwargs, match", [
    (dict(states="text"), "states must be one of"),
    (dict(min_support=0), "min_support"),
    (dict(min_target_support=0), "min_target_support"),
    (dict(min_failure_rate=-0.1), "min_failure_rate"),
    (dict(min_failure_rate=1.5), "min_failure_rate"),
    (dict(min_gain=1.5), "min_gain"),
    (dict(min_gain=-1.5), "min_gain"),
    (dict(min_reach=0.0), "min_reach"),
    (dict(min_reach=1.2), "min_reach"),
    (dict(evidence=-1), "evidence"),
])
def test_mining_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rw.MiningConfig(**kwargs)


def test_mining_config_defaults_and_dict():
    config = rw.MiningConfig(states="interpretation", min_gain=-0.5, min_reach=1.0, evidence=0)
    assert config.to_dict()["states"] == "interpretation"
    assert rw.MiningConfig(**config.to_dict()) == config
    assert set(rw.MiningConfig().to_dict()) == {"states", "min_support", "min_failure_rate", "min_target_support",
                                                "min_gain", "min_reach", "evidence"}


# ---------------------------------------------------------------- mining a hand-built log

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
MUSIC = dict(nlu_domain="music", nlu_intent="play_music", asr_confidence=0.8, response_skill="music")
A_TEXT, B_TEXT, D_TEXT = "play maj and dragons", "play imagine dragons", "play imagin dragons"
IA = "play_music|artist_name=maj and dragons"
IB = "play_music|artist_name=imagine dragons"
IB_DEFECT = "play_music|artist_name=imagine dragon"
ID = "play_music|artist_name=imagin dragons"


def _turn(dialogue: str, index: int, seconds: float, user: str, kind: str) -> dict:
    ts = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = dict(timestamp=ts, user_id=user)
    if kind == "A":  # the misrecognised request: the artist is not found, the skill errors
        return make_turn(dialogue, index, **base, **MUSIC, asr_text="Play maj and Dragons.",
                         nlu_slots=[{"type": "artist_name", "value": "maj and dragons"}],
                         er_status="unresolved", response_status="error")
    if kind == "D":  # another misrecognition, rare
        return make_turn(dialogue, index, **base, **MUSIC, asr_text=D_TEXT,
                         nlu_slots=[{"type": "artist_name", "value": "imagin dragons"}],
                         er_status="unresolved", response_status="error")
    if kind in ("B", "B-barge"):  # the request that works (once interrupted, with a slightly other reading)
        barge = kind == "B-barge"
        return make_turn(dialogue, index, **base, **MUSIC, asr_text="play Imagine Dragons",
                         nlu_slots=[{"type": "artist_name", "value": "imagine dragon" if barge else "Imagine Dragons"}],
                         barge_in=barge)
    if kind == "C":  # noise: an unhandled request nobody rephrased
        return make_turn(dialogue, index, **base, asr_text="set an alarm for seven", nlu_domain="alarm",
                         nlu_intent="alarm_set", nlu_slots=[{"type": "time", "value": "seven"}],
                         response_status="unhandled")
    assert kind == "W"
    return make_turn(dialogue, index, **base)  # noise: a weather request that works


# (user, start second, [(dialogue, turn index, kind, rephrase of the turn before?)]); users start out of
# order in time so that evidence order (earliest first) differs from user order. Turns are 6 s apart.
LOG = [
    ("u1", 300, [("a1", 0, "A", False), ("a1", 1, "B", True)]),
    ("u2", 60, [("a2", 0, "A", False), ("a2", 1, "B", True)]),
    ("u3", 240, [("a3", 0, "A", False), ("a3", 1, "B", True)]),
    ("u4", 120, [("a4", 0, "A", False), ("a4b", 0, "B", True)]),  # rephrased in a new dialogue
    ("u5", 0, [("a5", 0, "A", False), ("a5", 1, "A", True), ("a5", 2, "B", True)]),  # A twice, then B
    ("u6", 400, [("a6", 0, "A", False)]),  # gave up
    ("u6b", 410, [("a6b", 0, "A", False)]),  # gave up
    ("u7", 30, [("b7", 0, "B", False)]),  # B directly
    ("u8", 90, [("b8", 0, "B", False)]),
    ("u9", 150, [("b9", 0, "B", False)]),
    ("u10", 210, [("b10", 0, "B-barge", False)]),  # B interrupted: a failure
    ("u11", 20, [("w11", 0, "W", False)]),
    ("u12", 50, [("c12", 0, "C", False)]),
    ("u13", 500, [("d13", 0, "D", False), ("d13", 1, "B", True)]),
    ("u14", 510, [("d14", 0, "D", False)]),  # gave up
]
# Utterance states (normalised text):
#   A: 8 turns (u1-u4, u5 twice, u6, u6b), all defective.  A -> A 1 (u5), A -> B 5 (u1-u5), FAILURE 2 (u6, u6b)
#   B: 10 turns (u1-u5, u7-u10, u13), no moves on; SUCCESS 9, FAILURE 1 (u10's barge-in) -> s_B = 9/10
#   D: 2 turns; D -> B 1, FAILURE 1                     -> s_D = s_B / 2 = 9/20
#   s_A = s_A / 8 + 5/8 s_B  -> s_A = 5/7 * 9/10 = 9/14;  gain 9/10 - 9/14 = 9/35 (0.257)
#   visits of B from A: 5/8 / (1 - 1/8) = 5/7 (B is never left, so N[B, B] = 1)
# 22 turns, 7 of them rephrases: 15 chains.
S_A, S_B, S_D = 9 / 14, 9 / 10, 9 / 20
# Evidence: A turns followed later in their chain by B, earliest first: u5 (0 s, and its second A at 6 s),
# u2 (60 s), u4 (120 s), u3 (240 s), u1 (300 s).
EVIDENCE = [("a5", 0, "a5", 2), ("a5", 1, "a5", 2), ("a2", 0, "a2", 1), ("a4", 0, "a4b", 0),
            ("a3", 0, "a3", 1), ("a1", 0, "a1", 1)]


def _records() -> tuple[list[dict], set[tuple[str, int]]]:
    records, rephrases = [], set()
    for user, start, turns in LOG:
        for k, (dialogue, index, kind, rephrase) in enumerate(turns):
            records.append(_turn(dialogue, index, start + 6 * k, user, kind))
            if rephrase:
                rephrases.add((dialogue, index))
    return records, rephrases


def _sorted(records: list[dict], rephrases: set[tuple[str, int]]) -> tuple[rp.Turns, np.ndarray]:
    """Turns, and is_rephrase by hand for the *sorted* turns."""
    turns = rp.Turns.from_table(records_to_table(records))
    keys = zip(turns.dialogue_id.tolist(), turns.turn_index.tolist(), strict=True)
    return turns, np.array([k in rephrases for k in keys], dtype=bool)


def _log() -> tuple[rp.Turns, np.ndarray]:
    return _sorted(*_records())


@pytest.fixture(scope="module")
def log():
    return _log()


def _by_source(result: rw.MiningResult) -> dict[str, rw.Rewrite]:
    return rw.rewrite_map(result.rewrites)


def test_mine_counts_and_probabilities(log):
    turns, is_rephrase = log
    assert len(turns) == 22 and is_rephrase.sum() == 7
    result = rw.mine(turns, is_rephrase)
    idx = result.state_index()
    a, b, d = idx[A_TEXT], idx[B_TEXT], idx[D_TEXT]
    assert result.n_chains == 15
    assert [result.support[s] for s in (a, b, d)] == [8, 10, 2]
    assert result.support[idx["set an alarm for seven"]] == result.support[idx["what is the weather in boston"]] == 1
    assert result.failure_rate[a] == 1.0 and result.failure_rate[b] == pytest.approx(1 / 10)
    assert result.transitions[a, a] == 1 and result.transitions[a, b] == 5 and result.transitions[d, b] == 1
    assert result.transitions.sum() == 7
    assert result.absorbed[a].tolist() == [0, 2] and result.absorbed[b].tolist() == [9, 1]
    assert result.absorbed.sum() == 15
    np.testing.assert_allclose(result.success[[a, b, d]], [S_A, S_B, S_D], atol=1e-12)
    assert result.interpretation[b] == IB and result.interpretation[a] == IA


def test_mine_proposes_the_rewrite(log):
    turns, is_rephrase = log
    result = rw.mine(turns, is_rephrase)
    assert [r.source for r in result.rewrites] == [A_TEXT]  # D is seen twice only (< min_support 5)
    r = result.rewrites[0]
    assert (r.source, r.target) == (A_TEXT, B_TEXT)
    assert (r.source_support, r.target_support, r.direct) == (8, 10, 5)
    assert r.source_failure_rate == 1.0
    assert r.source_success == pytest.approx(S_A, abs=1e-12)
    assert r.target_success == pytest.approx(S_B, abs=1e-12)
    assert r.gain == pytest.approx(9 / 35, abs=1e-12)
    assert r.reach == pytest.approx(5 / 7, abs=1e-5)  # the series drops masses below 1e-6
    assert r.target_interpretation == IB  # the modal reading of B's turns without a defect
    # evidence: up to 5 chains, earliest first; each pairs an A turn with a later B turn of its chain
    assert len(r.evidence) == 5 and r.evidence[0] == EVIDENCE[0]
    assert set(r.evidence) <= set(EVIDENCE)
    assert ("a4", 0, "a4b", 0) in r.evidence  # a chain across two dialogues
    assert ("a5", 1, "a5", 2) not in r.evidence  # one pair per chain: a5's second A turn is the same chain
    assert len({e[0] for e in r.evidence}) == 5  # five distinct chains
    assert all(isinstance(e[1], int) and isinstance(e[3], int) for e in r.evidence)


def test_evidence_is_one_tuple_per_chain(log):
    turns, is_rephrase = log
    r = rw.mine(turns, is_rephrase).rewrites[0]
    assert r.evidence == [EVIDENCE[0]] + EVIDENCE[2:]


def test_mine_thresholds(log):
    turns, is_rephrase = log
    # a lower min_support lets D in too: D -> B gains 9/10 - 9/20 = 9/20; sorted by support * gain (A 8 * 9/35
    # = 2.06 before D 2 * 9/20 = 0.9)
    result = rw.mine(turns, is_rephrase, rw.MiningConfig(min_support=2))
    assert [(r.source, r.target) for r in result.rewrites] == [(A_TEXT, B_TEXT), (D_TEXT, B_TEXT)]
    assert result.rewrites[1].gain == pytest.approx(9 / 20, abs=1e-12)
    assert result.rewrites[1].evidence == [("d13", 0, "d13", 1)]
    # A's gain of 9/35 = 0.257 is refused under min_gain 0.3, D's 0.45 is not
    result = rw.mine(turns, is_rephrase, rw.MiningConfig(min_support=2, min_gain=0.3))
    assert [r.source for r in result.rewrites] == [D_TEXT]
    # B is reached 5/7 = 0.71 times from A: not enough under min_reach 0.75
    assert rw.mine(turns, is_rephrase, rw.MiningConfig(min_reach=0.75)).rewrites == []
    # B is seen 10 times: not a target under min_target_support 11
    assert rw.mine(turns, is_rephrase, rw.MiningConfig(min_target_support=11)).rewrites == []
    # A fails all the time, so any min_failure_rate keeps it
    assert len(rw.mine(turns, is_rephrase, rw.MiningConfig(min_failure_rate=1.0)).rewrites) == 1
    # no evidence asked for
    assert rw.mine(turns, is_rephrase, rw.MiningConfig(evidence=0)).rewrites[0].evidence == []


def test_mine_interpretation_states(log):
    # The same log over NLU interpretations: u10's interrupted B has its own reading, so IB never fails:
    #   s_IB = 1, s_IA = 5/7 * 1 = 5/7, gain 2/7, visits of IB from IA 5/7
    turns, is_rephrase = log
    result = rw.mine(turns, is_rephrase, rw.MiningConfig(states="interpretation"))
    idx = result.state_index()
    assert {IA, IB, IB_DEFECT, ID} <= set(result.states)
    assert [result.support[idx[s]] for s in (IA, IB, IB_DEFECT, ID)] == [8, 9, 1, 2]
    assert result.absorbed[idx[IB_DEFECT]].tolist() == [0, 1]
    assert [(r.source, r.target) for r in result.rewrites] == [(IA, IB)]
    r = result.rewrites[0]
    assert r.source_success == pytest.approx(5 / 7, abs=1e-12) and r.target_success == pytest.approx(1.0)
    assert r.gain == pytest.approx(2 / 7, abs=1e-12) and r.reach == pytest.approx(5 / 7, abs=1e-5)
    assert (r.source_support, r.target_support, r.direct) == (8, 9, 5)
    assert r.target_interpretation == IB
    assert r.evidence[0] == EVIDENCE[0]


def test_mine_without_rephrases_and_bad_input(log):
    turns, is_rephrase = log
    result = rw.mine(turns, np.zeros(len(turns), dtype=bool))
    assert result.rewrites == [] and result.n_chains == 22 and result.transitions.nnz == 0
    with pytest.raises(ValueError, match="is_rephrase has 21 entries for 22 turns"):
        rw.mine(turns, is_rephrase[:-1])


def test_timings(log):
    turns, is_rephrase = log
    timings = rw.mine(turns, is_rephrase).timings
    assert set(timings) == {"transitions", "solve", "reach", "select", "evidence"}
    assert all(isinstance(v, float) for v in timings.values())
    assert all(v >= -1e-6 for v in timings.values())


def test_mine_does_not_depend_on_the_row_order(log):
    records, rephrases = _records()
    forward = rw.mine(*_sorted(records, rephrases))
    backward = rw.mine(*_sorted(records[::-1], rephrases))
    assert [(r.source, r.target, r.evidence) for r in forward.rewrites] == [
        (r.source, r.target, r.evidence) for r in backward.rewrites]
    assert forward.rewrites[0].target_interpretation == backward.rewrites[0].target_interpretation == IB


def _tied_records() -> tuple[list[dict], set[tuple[str, int]]]:
    """The log with B's readings tied among its turns without a defect: u1, u7, u8 and u9 hear "The Imagine
    Dragons" (4 turns), u2 to u5 "Imagine Dragons" (4 turns); u13's B is interrupted (a defect, out of the
    count). A still rewrites to B: s_B = 8/10, s_A = 5/7 * 8/10 = 4/7, gain 8/35 = 0.229."""
    records, rephrases = _records()
    for r in records:
        if r["asr_text"] == "play Imagine Dragons" and not r["barge_in"] and r["user_id"] in ("u1", "u7", "u8", "u9"):
            r["nlu_slots"] = [{"type": "artist_name", "value": "The Imagine Dragons"}]
        if r["asr_text"] == "play Imagine Dragons" and r["user_id"] == "u13":
            r["barge_in"] = True
    return records, rephrases


def test_tied_target_interpretation_does_not_depend_on_the_row_order():
    records, rephrases = _tied_records()
    forward = rw.mine(*_sorted(records, rephrases)).rewrites
    backward = rw.mine(*_sorted(records[::-1], rephrases)).rewrites
    assert [(r.source, r.target) for r in forward] == [(r.source, r.target) for r in backward] == [(A_TEXT, B_TEXT)]
    assert forward[0].gain == pytest.approx(8 / 35, abs=1e-12)
    assert forward[0].target_interpretation == backward[0].target_interpretation


def test_mine_on_an_empty_log():
    turns = rp.Turns.from_table(records_to_table([]))
    result = rw.mine(turns, np.zeros(0, dtype=bool))
    assert result.rewrites == [] and result.n_chains == 0 and result.states == []
