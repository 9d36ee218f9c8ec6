"""The offline sentence encoder and its cache (real all-MiniLM-L6-v2 weights from the installed package)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.text_encoder import DIM, EmbeddingCache, LazyTextEncoder, TextEncoder, bundled_model_dir


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.load()


def test_weights_come_from_the_package_with_their_licence():
    path = bundled_model_dir()
    assert (path / "model.safetensors").exists()
    assert "Apache" in (path / "LICENSE").read_text() and "Apache-2.0" in (path / "NOTICE").read_text()


def test_embeddings_are_unit_vectors_and_meaningful(encoder):
    texts = ["set an alarm for seven am", "wake me up at seven", "what is the weather in boston", ""]
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (4, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # two alarm requests are closer than alarm and weather


def test_cache_encodes_each_text_once(encoder, tmp_path):
    calls: list[int] = []

    class Counting:
        fingerprint = encoder.fingerprint

        def encode(self, texts, **kwargs):
            calls.append(len(texts))
            return encoder.encode(texts, **kwargs)

    cache = EmbeddingCache(tmp_path)
    first = cache.encode(Counting(), ["play jazz", "stop", "play jazz"])
    again = EmbeddingCache(tmp_path).encode(Counting(), ["stop", "play jazz", "next song"])
    assert calls == [2, 1]  # two distinct texts, then only the new one (read back from disk)
    assert np.allclose(first[0], again[1]) and np.allclose(first[1], again[0])
    assert np.allclose(again[2], encoder.encode(["next song"])[0], atol=1e-6)


def test_a_lazy_encoder_loads_only_for_a_text_the_cache_lacks(encoder, tmp_path):
    """What the jobs' embedder uses: scoring texts already cached never loads MiniLM (3 to 4 s a process)."""
    texts = ["turn the lights off", "what time is it"]
    EmbeddingCache(tmp_path).encode(encoder, texts)
    lazy = LazyTextEncoder()
    assert lazy.fingerprint == encoder.fingerprint  # the same cache keys
    cached = EmbeddingCache(tmp_path).encode(lazy, texts[::-1])
    assert lazy.loaded is None
    np.testing.assert_allclose(cached, encoder.encode(texts[::-1]), atol=1e-6)
    fresh = EmbeddingCache(tmp_path).encode(lazy, ["a text never seen", texts[0]])
    assert lazy.loaded is not None
    np.testing.assert_allclose(fresh, encoder.encode(["a text never seen", texts[0]]), atol=1e-6)
    assert LazyTextEncoder(int8=True).fingerprint != lazy.fingerprint


def test_the_jobs_embedder_scores_cached_texts_without_loading_the_encoder(encoder, tmp_path, monkeypatch):
    from app.jobs.common import embedder

    monkeypatch.setenv("TURNLENS_CACHE", str(tmp_path))
    texts = ["dim the lights", "play some jazz"]
    EmbeddingCache(tmp_path / "embeddings").encode(encoder, texts)  # where embedder() keeps its cache

    def refuse(**kwargs):
        raise AssertionError("MiniLM loaded for texts the cache holds")

    monkeypatch.setattr(TextEncoder, "load", refuse)
    np.testing.assert_allclose(embedder()(texts[::-1]), encoder.encode(texts[::-1]), atol=1e-6)
    with pytest.raises(AssertionError, match="MiniLM loaded"):
        embedder()(["a text the cache lacks"])
