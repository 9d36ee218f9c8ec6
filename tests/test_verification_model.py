"""Tests of the verifier: it learns speakers from synthetic embeddings, is deterministic, round-trips through a
checkpoint, and ARW trains with weights that stay normalised."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.verification.eer import all_trials, eer
from analysis.verification.model import Verifier, VerifierConfig, raw_cosine, train_verifier

FAST = VerifierConfig(hidden=32, dim=16, steps=150, lr=5e-3, speakers_per_batch=8, turns_per_speaker=3, warmup_steps=20,
                      clusters=3)


def _voices(n_speakers: int, turns: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Unit vectors: a speaker centre in 2 informative dimensions of 24, buried under a shared offset and
    turn noise in the others (raw cosine does poorly, a projection can do well)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_speakers, 24)) * np.r_[np.full(4, 1.0), np.full(20, 0.0)]
    x = np.repeat(centres, turns, axis=0) + rng.normal(size=(n_speakers * turns, 24)) * np.r_[
        np.full(4, 0.15), np.full(20, 1.0)] + 3.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"{seed}-s{i}" for i in range(n_speakers) for _ in range(turns)]


def test_verifier_learns_held_out_speakers_better_than_raw_cosine():
    x, spk = _voices(40, 5, seed=0)
    xt, st = _voices(20, 5, seed=1)
    v = train_verifier(x, spk, config=FAST, method="plain")
    trials = all_trials(st)
    learned = eer(v.score_pairs(xt, trials.a, trials.b), trials.same)
    raw = eer(raw_cosine(xt, trials.a, trials.b), trials.same)
    assert learned < raw - 0.1
    assert v.n_train == 200 and v.n_speakers == 40 and len(v.fingerprint) == 16
    s = v.score(xt[0], xt[1])
    assert s.shape == () and -1 - 1e-6 <= float(s) <= 1 + 1e-6
    assert v.score(xt[:3], xt[3:6]) == pytest.approx(v.score_pairs(xt, np.arange(3), np.arange(3, 6)))


def test_training_is_deterministic_for_a_seed_and_checkpoints_round_trip(tmp_path):
    x, spk = _voices(12, 4, seed=2)
    a = train_verifier(x, spk, config=FAST, method="arw")
    b = train_verifier(x, spk, config=FAST, method="arw")
    np.testing.assert_array_equal(a.embed(x), b.embed(x))
    c = train_verifier(x, spk, config=VerifierConfig(**{**FAST.__dict__, "seed": 1}), method="arw")
    assert not np.array_equal(a.embed(x), c.embed(x))
    a.save_pretrained(tmp_path / "ckpt")
    loaded = Verifier.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.embed(x), a.embed(x), atol=1e-7)
    assert loaded.method == "arw" and loaded.config == FAST and loaded.fingerprint == a.fingerprint
    assert loaded.cluster_weights == pytest.approx(a.cluster_weights)


def test_arw_moves_weight_and_keeps_it_normalised():
    x, spk = _voices(16, 4, seed=3)
    clusters = np.arange(len(x)) % 3
    v = train_verifier(x, spk, config=FAST, method="arw", clusters=clusters)
    w = np.array(v.cluster_weights)
    share = np.bincount(clusters) / len(clusters)
    assert (share * w).sum() == pytest.approx(1.0)
    assert not np.allclose(w, 1.0)  # the adversary took steps
    assert any("adversary_objective" in h for h in v.history)
    plain = train_verifier(x, spk, config=FAST, method="plain")
    assert plain.cluster_weights is None


def test_bad_inputs_are_refused():
    x, spk = _voices(4, 3, seed=4)
    with pytest.raises(ValueError):
        train_verifier(x, spk[:-1], config=FAST)
    with pytest.raises(ValueError):
        train_verifier(x, spk, config=FAST, method="other")
    with pytest.raises(ValueError):
        VerifierConfig(turns_per_speaker=1)
