"""The append-only vector store behind the embedding cache: several writer processes, restarts, compaction,
and the import of an old single-file .npz cache. No model is loaded: vectors are derived from their keys."""

from __future__ import annotations

import hashlib
import multiprocessing
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis.embedding_store import KEY_BYTES, VectorStore, as_key_array
from analysis.text_encoder import DIM, EmbeddingCache

SMALL = 8  # vector length of the store tests


def keys_of(numbers) -> np.ndarray:
    return as_key_array(hashlib.sha1(str(n).encode()).digest() for n in numbers)


def vectors_of(keys: np.ndarray, dim: int = SMALL) -> np.ndarray:
    """A vector that depends only on its key, so every writer of a key writes the same one."""
    return np.array([np.random.default_rng(list(k[:8])).standard_normal(dim) for k in keys],
                    dtype=np.float32).reshape(len(keys), dim)


def _writer(folder: str, numbers: list[int], batch: int) -> None:
    store = VectorStore(folder, SMALL)
    for start in range(0, len(numbers), batch):
        keys = keys_of(numbers[start:start + batch])
        found, _ = store.get(keys)  # as the cache does: look up, then write only what is missing
        store.put(keys[~found], vectors_of(keys[~found]))


def test_two_writer_processes_share_a_store(tmp_path):
    # each writes 300 keys of its own and the same 300 shared ones, in 20 parts, at the same time
    a = list(range(0, 300)) + list(range(1000, 1300))
    b = list(range(500, 800)) + list(range(1000, 1300))[::-1]
    # fork: a separate process each, like two jobs; spawn and forkserver would re-run whatever script is __main__ (an
    # AppTest earlier in the session leaves the app script there)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), numbers, 30)) for numbers in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    parts = VectorStore(tmp_path, SMALL).part_files()
    assert len(parts) >= 20
    for part in parts:  # every part is a whole Parquet file; nothing half-written is left behind
        assert pq.read_table(part).num_rows > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    every = sorted(set(a) | set(b))
    keys = keys_of(every)
    found, vectors = VectorStore(tmp_path, SMALL).get(keys)
    assert found.all()
    assert np.array_equal(vectors, vectors_of(keys))


def test_a_store_reads_back_after_a_restart_and_finds_others_parts(tmp_path):
    first = VectorStore(tmp_path, SMALL)
    keys = keys_of(range(50))
    first.put(keys[:30], vectors_of(keys[:30]))
    reopened = VectorStore(tmp_path, SMALL)  # another process, or this one after a restart
    found, vectors = reopened.get(keys)
    assert found.tolist() == [True] * 30 + [False] * 20
    assert np.array_equal(vectors[:30], vectors_of(keys[:30])) and not vectors[30:].any()
    reopened.put(keys[30:], vectors_of(keys[30:]))
    found, vectors = first.get(keys)  # the first instance sees the part written by the second
    assert found.all() and np.array_equal(vectors, vectors_of(keys))


def test_lookups_read_across_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr("analysis.embedding_store.ROW_GROUP_ROWS", 7)
    store = VectorStore(tmp_path, SMALL)
    keys = keys_of(range(100))
    store.put(keys, vectors_of(keys))
    assert pq.ParquetFile(store.part_files()[0]).metadata.num_row_groups == 15
    pick = keys[[99, 3, 50, 3, 0]]  # out of order and repeated
    found, vectors = store.get(pick)
    assert found.all() and np.array_equal(vectors, vectors_of(pick))


def test_a_shared_prefix_is_not_mistaken_for_the_key(tmp_path):
    store = VectorStore(tmp_path, SMALL)
    stored = as_key_array([b"\x01" * 8 + b"\x02" * 12])
    other = as_key_array([b"\x01" * 8 + b"\x03" * 12])  # the same first 8 bytes the index sorts by
    store.put(stored, vectors_of(stored))
    found, vectors = store.get(np.concatenate([other, stored]))
    assert found.tolist() == [False, True] and not vectors[0].any()


def test_compaction_merges_parts_and_a_reader_of_the_old_parts_recovers(tmp_path):
    writer, reader = VectorStore(tmp_path, SMALL), VectorStore(tmp_path, SMALL)
    keys = keys_of(range(60))
    for start in (0, 20, 10, 40):  # 10..29 written twice
        writer.put(keys[start:start + 20], vectors_of(keys[start:start + 20]))
    assert len(reader) == 80  # the reader has indexed the four parts
    assert writer.compact() == 60
    assert len(writer.part_files()) == 1 and len(VectorStore(tmp_path, SMALL)) == 60
    found, vectors = reader.get(keys)  # its parts are gone: it re-reads the folder
    assert found.all() and np.array_equal(vectors, vectors_of(keys))


def test_put_checks_shapes(tmp_path):
    store = VectorStore(tmp_path, SMALL)
    with pytest.raises(ValueError, match="one"):
        store.put(keys_of(range(2)), np.zeros((2, SMALL + 1)))
    with pytest.raises(ValueError, match=f"{KEY_BYTES} bytes"):
        as_key_array([b"short"])
    assert store.put(keys_of([]), np.zeros((0, SMALL))) is None and store.part_files() == []


class FakeEncoder:
    """Counts the texts it encodes; a text's vector depends only on the text."""

    fingerprint = "fake-encoder@1"

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts, **_):
        self.encoded += list(texts)
        return np.stack([np.random.default_rng(list(hashlib.sha1(t.encode()).digest()[:8]))
                         .standard_normal(DIM).astype(np.float32) for t in texts])


def test_the_cache_encodes_each_text_once_across_instances(tmp_path):
    enc = FakeEncoder()
    first = EmbeddingCache(tmp_path).encode(enc, ["b", "a", "b", ""])
    again = EmbeddingCache(tmp_path).encode(enc, ["a", "c", "b"])
    assert enc.encoded == ["", "a", "b", "c"]
    assert np.array_equal(first[0], again[2]) and np.array_equal(first[1], again[0])
    assert np.array_equal(again, FakeEncoder().encode(["a", "c", "b"]))
    assert EmbeddingCache(tmp_path).encode(enc, []).shape == (0, DIM)


def test_an_old_npz_cache_is_imported_once(tmp_path, caplog):
    # the old form: <sha1(fingerprint)[:16]>.npz with hex keys sha1(fingerprint \0 text) and one matrix
    texts = ["play jazz", "stop", ""]
    vectors = FakeEncoder().encode(texts)
    keys = [EmbeddingCache.key(t, FakeEncoder.fingerprint) for t in texts]
    old = tmp_path / (hashlib.sha1(FakeEncoder.fingerprint.encode()).hexdigest()[:16] + ".npz")
    np.savez(old, keys=np.array(keys, dtype="U40"), vectors=vectors)
    enc = FakeEncoder()
    with caplog.at_level("INFO"):
        got = EmbeddingCache(tmp_path).encode(enc, ["stop", "new text", "play jazz"])
    assert enc.encoded == ["new text"]  # the old vectors were found
    assert np.array_equal(got[[0, 2]], vectors[[1, 0]])
    assert not old.exists() and old.with_name(old.name + ".imported").exists()
    assert "imported 3 vectors from the old embedding cache" in caplog.text
    EmbeddingCache(tmp_path).encode(enc, ["stop"])
    assert enc.encoded == ["new text"] and len(os.listdir(tmp_path / old.stem)) == 2  # no second import


def test_an_unreadable_old_cache_is_ignored_with_a_warning(tmp_path, caplog):
    old = tmp_path / (hashlib.sha1(FakeEncoder.fingerprint.encode()).hexdigest()[:16] + ".npz")
    old.write_bytes(b"not a zip file")
    enc = FakeEncoder()
    with caplog.at_level("WARNING"):
        EmbeddingCache(tmp_path).encode(enc, ["stop"])
    assert enc.encoded == ["stop"] and "could not be read" in caplog.text
