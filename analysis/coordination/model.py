"""The coordination chunker (METHODS.md section 6): per word, B (first word of a list item), I (its other words) or
O, so "add bananas peanut butter and paper towels to my list" gives three items, not four.

Network: word vectors (config.word_vectors: the bundled all-MiniLM-L6-v2's input embeddings of the word's
pieces, averaged and projected on their top principal components, frozen, plus a learned correction per
training word; or embeddings trained here) and character embeddings (a width-3 convolution max-pooled per
word) -> a BiLSTM -> emission scores -> a CRF over O/B/I that can never put I after O (crf.py). An adversary
reads the BiLSTM states of the list's words through a gradient-reversal layer and predicts the slot type of
the items: the encoder is pushed to keep what marks item boundaries and lose what marks one slot type, so one
model serves every slot type, including types it never saw. ``CoordinationModel`` fits, predicts and saves /
loads checkpoints with config, vocabularies, version and a fingerprint of the training data.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.coordination.config import CoordinationConfig
from analysis.coordination.examples import TAGS, Example

VERSION = "coordination-chunker/1"
PAD, UNK = 0, 1
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789'"
_CHAR_ID = {c: i + 2 for i, c in enumerate(_CHARS)}  # 0 pad, 1 any other character
N_CHARS = len(_CHARS) + 2
Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------- word vectors

class WordVectors:
    """Frozen word vectors from all-MiniLM-L6-v2's word-piece input embeddings (Apache-2.0, the bundled copy of
    analysis.text_encoder; only the embedding table is read): a word's vector is the mean of its pieces' rows,
    centred and projected on the table's top ``dim`` principal components, scaled to unit variance per
    component. Any word gets a vector, so words never seen in training (new slot values) are not strangers."""

    def __init__(self, basis: np.ndarray, mean: np.ndarray):
        import os

        from safetensors import safe_open
        from transformers import AutoTokenizer

        from analysis.text_encoder import bundled_model_dir

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = bundled_model_dir()  # EncoderUnavailable, saying how to install it, when missing
        with safe_open(str(path / "model.safetensors"), "np") as f:
            table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
        self.basis, self.mean = basis.astype(np.float32), mean.astype(np.float32)
        self.table = (table - self.mean) @ self.basis
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.dim = self.basis.shape[1]
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, dim: int) -> WordVectors:
        """The projection from the embedding table itself (deterministic: SVD, signs fixed)."""
        from safetensors import safe_open

        from analysis.text_encoder import bundled_model_dir

        with safe_open(str(bundled_model_dir() / "model.safetensors"), "np") as f:
            table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float64)
        mean = table.mean(axis=0)
        _, s, vt = np.linalg.svd(table - mean, full_matrices=False)
        vt = vt[:dim] * np.sign(vt[:dim, :1] + 1e-12)  # a fixed sign per component
        basis = vt.T / (s[:dim] / math.sqrt(len(table)))  # unit variance per component over the table
        return cls(basis, mean)

    def __call__(self, words: Sequence[str]) -> np.ndarray:
        new = [w for w in dict.fromkeys(words) if w not in self._cache]
        if new:
            ids = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            for w, pieces in zip(new, ids, strict=True):
                self._cache[w] = self.table[pieces].mean(axis=0) if pieces else np.zeros(self.dim, np.float32)
        return np.stack([self._cache[w] for w in words]) if words else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------------------------------------- batches

def char_ids(word: str, max_chars: int) -> list[int]:
    return [_CHAR_ID.get(c, 1) for c in word[:max_chars]]


class _Batch:
    """Padded tensors for a list of word sequences (N rows, L words, C characters)."""

    def __init__(self, torch, rows: Sequence[Sequence[str]], model: CoordinationModel, *,
                 examples: Sequence[Example] | None = None, word_dropout: float = 0.0,
                 rng: np.random.Generator | None = None):
        cfg = model.config
        n, length = len(rows), max(1, max(len(r) for r in rows))
        ids = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), bool)
        flat = [w for r in rows for w in r]
        for i, r in enumerate(rows):
            mask[i, :len(r)] = True
            ids[i, :len(r)] = [model.vocab.get(w, UNK) for w in r]
        # characters once per distinct word of the batch (words repeat: "and", "the", "to", ...)
        distinct = list(dict.fromkeys(flat)) or [""]
        where = {w: i for i, w in enumerate(distinct)}
        width = max(1, min(cfg.max_word_chars, max(len(w) for w in distinct)))
        chars = np.zeros((len(distinct), width), np.int64)
        slot = np.zeros((n, length), np.int64)
        if cfg.use_chars:
            for k, w in enumerate(distinct):
                c = model.chars_of(w)
                chars[k, :len(c)] = c
            for i, r in enumerate(rows):
                slot[i, :len(r)] = [where[w] for w in r]
        if word_dropout and rng is not None:
            ids[(rng.random(ids.shape) < word_dropout) & (ids > UNK)] = UNK
        self.vectors = None
        if model.vectors is not None:
            vecs = np.zeros((n, length, model.vectors.dim), np.float32)
            vecs[mask] = model.vectors(flat)
            self.vectors = torch.from_numpy(vecs)
        self.ids, self.chars, self.mask = torch.from_numpy(ids), torch.from_numpy(chars), torch.from_numpy(mask)
        self.char_slot = torch.from_numpy(slot)  # (N, L): each word's row in chars (distinct words, C characters)
        self.tags = self.extent = self.types = None
        if examples is not None:
            tag_id = {t: i for i, t in enumerate(TAGS)}
            tags = np.zeros((n, length), np.int64)
            extent = np.zeros((n, length), np.float32)
            types = np.full(n, -100, np.int64)
            for i, ex in enumerate(examples):
                tags[i, :len(ex.tags)] = [tag_id[t] for t in ex.tags]
                extent[i, ex.extent[0]:ex.extent[1]] = 1.0
                types[i] = model.type_index.get(ex.slot_type, -100)
            self.tags, self.extent = torch.from_numpy(tags), torch.from_numpy(extent)
            self.types = torch.from_numpy(types)


# ---------------------------------------------------------------------------------------------- the network

def grad_reverse(x, lam: float):
    """Identity forward; the gradient multiplied by -lam backward (Ganin and Lempitsky's gradient reversal)."""
    import torch

    class _Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inp):
            return inp.view_as(inp)

        @staticmethod
        def backward(ctx, grad):
            return -lam * grad

    return _Reverse.apply(x)


def build_network(config: CoordinationConfig, n_words: int, n_types: int, vector_dim: int):
    import torch
    from torch import nn

    from analysis.coordination.crf import CRF

    class ChunkNet(nn.Module):
        def __init__(self):
            super().__init__()
            d = config.word_dim
            self.words = nn.Embedding(n_words, d, padding_idx=PAD)
            if vector_dim:  # frozen MiniLM vectors + a learned correction, which starts at nothing
                nn.init.zeros_(self.words.weight)
                self.proj = nn.Linear(vector_dim, d)
            else:
                nn.init.normal_(self.words.weight, std=0.3)
                self.proj = None
            width = d
            if config.use_chars:
                self.char_emb = nn.Embedding(N_CHARS, config.char_dim, padding_idx=0)
                self.char_conv = nn.Conv1d(config.char_dim, config.char_filters, 3, padding=1)
                width += config.char_filters
            self.drop = nn.Dropout(config.dropout)
            self.lstm = nn.LSTM(width, config.hidden, batch_first=True, bidirectional=True)
            self.emit = nn.Linear(2 * config.hidden, len(TAGS))
            self.crf = CRF(len(TAGS)) if config.use_crf else None
            self.adversary = nn.Sequential(nn.Linear(2 * config.hidden, config.hidden), nn.ReLU(),
                                           nn.Linear(config.hidden, max(n_types, 1)))

        def encode(self, batch: _Batch):
            x = self.words(batch.ids)
            if self.proj is not None:
                x = x + self.proj(batch.vectors)
            if config.use_chars:
                c = self.char_conv(self.char_emb(batch.chars).transpose(1, 2))
                c = c.masked_fill((batch.chars == 0).unsqueeze(1), -1e4).max(dim=2).values.clamp(min=-10)
                x = torch.cat([x, c[batch.char_slot]], dim=2)
            x = self.drop(x)
            lengths = batch.mask.sum(1).clamp(min=1)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            with _no_onednn():
                out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return out

        def forward(self, batch: _Batch, lam: float = 0.0):
            states = self.encode(batch)
            emissions = self.emit(self.drop(states))
            if batch.tags is None:
                return emissions, None
            if self.crf is not None:
                loss = self.crf.nll(emissions, batch.tags, batch.mask)
            else:
                loss = nn.functional.cross_entropy(emissions[batch.mask], batch.tags[batch.mask])
            adv = None
            if config.adversary_weight > 0 and n_types > 1:
                # the list's words, pooled, read through the gradient reversal
                w = batch.extent.unsqueeze(2)
                pooled = (grad_reverse(states, lam) * w).sum(1) / w.sum(1).clamp(min=1.0)
                adv = nn.functional.cross_entropy(self.adversary(pooled), batch.types, ignore_index=-100)
                loss = loss + config.adversary_weight * adv
            return emissions, (loss, adv)

    return ChunkNet()


# ---------------------------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Chunking:
    """The chunker's reading of one utterance: its words, a tag per word, the chunks as word spans [start, end)
    and, per chunk, the probability that it is exactly one item (CRF marginal; without the CRF, the least
    likely of its words' tags and of the next word not being I). A list is two or more chunks."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    scores: tuple[float, ...]

    def items(self) -> list[str]:
        return [" ".join(self.tokens[s:e]) for s, e in self.spans]

    @property
    def is_list(self) -> bool:
        return len(self.spans) >= 2


def spans_of(tags: Sequence[str]) -> list[tuple[int, int]]:
    """Chunks of a BIO tag sequence: each B starts one, I continues it; an I after O starts one (only a decoder
    without the CRF can emit that)."""
    spans: list[list[int]] = []
    prev = "O"
    for i, t in enumerate(tags):
        if t == "B" or (t == "I" and prev == "O"):
            spans.append([i, i + 1])
        elif t == "I":
            spans[-1][1] = i + 1
        prev = t
    return [(s, e) for s, e in spans]


def data_fingerprint(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.uid, ex.tokens, ex.tags, ex.slot_type, ex.extent]).encode())
    return h.hexdigest()[:16]


class CoordinationModel:
    CONFIG_FILE, WEIGHTS_FILE, VECTORS_FILE = "config.json", "weights.pt", "word_vectors.npz"

    def __init__(self, config: CoordinationConfig | None = None):
        self.config = config or CoordinationConfig()
        self.vocab: dict[str, int] = {}
        self.types: list[str] = []
        self.type_index: dict[str, int] = {}
        self.vectors: WordVectors | None = None
        self.fingerprint: str | None = None
        self.n_train = 0
        self.pools: dict[str, list[list[str]]] = {}  # the value pools training drew from (evaluation reuses them)
        self.history: list[dict] = []
        self.net = None
        self._chars: dict[str, list[int]] = {}

    def chars_of(self, word: str) -> list[int]:
        c = self._chars.get(word)
        if c is None:
            c = self._chars[word] = char_ids(word, self.config.max_word_chars)
        return c

    def fit(self, examples: Sequence[Example], *, pools: dict | None = None,
            progress: Progress | None = None) -> CoordinationModel:
        """Train on tagged examples (examples.build_examples). progress(stage, batches_done, total)."""
        import torch

        cfg = self.config
        if not examples:
            raise ValueError("no training examples (no utterance carries a value of a list-able slot type)")
        leaked = sorted({ex.slot_type for ex in examples} & set(cfg.held_out_types))
        if leaked:
            raise ValueError(f"training examples of held-out slot types: {', '.join(leaked)}")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        words = sorted({w for ex in examples for w in ex.tokens})
        self.vocab = {w: i + 2 for i, w in enumerate(words)}
        self.types = sorted({ex.slot_type for ex in examples})
        self.type_index = {t: i for i, t in enumerate(self.types)}
        self.vectors = WordVectors.fit(cfg.word_dim) if cfg.word_vectors == "minilm" else None
        self.fingerprint, self.n_train = data_fingerprint(examples), len(examples)
        self.pools = {t: [list(v) for v in vals] for t, vals in (pools or {}).items()}
        self.net = build_network(cfg, len(self.vocab) + 2, len(self.types), self.vectors.dim if self.vectors else 0)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.net.train()
        with _one_thread():
            self._train_epochs(examples, opt, rng, progress)
        self.net.eval()
        return self

    def _train_epochs(self, examples: Sequence[Example], opt, rng: np.random.Generator,
                      progress: Progress | None) -> None:
        import torch

        cfg = self.config
        per_epoch = math.ceil(len(examples) / cfg.batch_size)
        total, step = cfg.epochs * per_epoch, 0
        for epoch in range(cfg.epochs):
            start, losses, adv_losses = time.perf_counter(), [], []
            order = rng.permutation(len(examples))
            for s in range(0, len(examples), cfg.batch_size):
                chunk = [examples[i] for i in order[s:s + cfg.batch_size]]
                batch = _Batch(torch, [ex.tokens for ex in chunk], self, examples=chunk,
                               word_dropout=cfg.word_dropout, rng=rng)
                p = step / max(total - 1, 1)
                lam = cfg.grl_lambda * (2.0 / (1.0 + math.exp(-10 * p)) - 1.0)  # DANN's ramp from 0
                _, (loss, adv) = self.net(batch, lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                opt.step()
                losses.append(loss.item())
                if adv is not None:
                    adv_losses.append(adv.item())
                step += 1
                if progress:
                    progress("training", step, total)
            self.history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                 "adversary_loss": float(np.mean(adv_losses)) if adv_losses else None,
                                 "seconds": time.perf_counter() - start})

    def predict(self, rows: Sequence[Sequence[str]], *, batch_size: int = 512, scores: bool = True,
                progress: Progress | None = None) -> list[Chunking]:
        """The chunking of each word sequence (examples.words of an utterance); scores: compute each chunk's
        probability (otherwise NaN), which costs a forward-backward pass per row with chunks."""
        import torch

        if self.net is None:
            raise RuntimeError("the model is not trained: call fit or from_pretrained first")
        out: list[Chunking] = []
        self.net.eval()
        with torch.inference_mode(), _one_thread():
            for s in range(0, len(rows), batch_size):
                part = [tuple(r) for r in rows[s:s + batch_size]]
                nonempty = [i for i, r in enumerate(part) if r]
                decoded: dict[int, tuple[list[str], list[tuple[int, int]], list[float]]] = {}
                if nonempty:
                    sub = [part[i] for i in nonempty]
                    batch = _Batch(torch, sub, self)
                    emissions, _ = self.net(batch)
                    if self.net.crf is not None:
                        paths = self.net.crf.decode(emissions, batch.mask)
                        tags = [[TAGS[t] for t in p] for p in paths]
                        spans = [spans_of(t) for t in tags]
                        probs = (self.net.crf.chunk_probabilities(emissions, batch.mask, spans) if scores
                                 else [[float("nan")] * len(sp) for sp in spans])
                    else:
                        p = torch.softmax(emissions, dim=-1).numpy()
                        best = p.argmax(axis=2)
                        tags = [[TAGS[t] for t in best[i, :len(r)]] for i, r in enumerate(sub)]
                        spans = [spans_of(t) for t in tags]
                        probs = [[_softmax_chunk(p[i, :len(sub[i])], best[i], s_, e_) for s_, e_ in sp]
                                 for i, sp in enumerate(spans)]
                    for j, i in enumerate(nonempty):
                        decoded[i] = (tags[j], spans[j], probs[j])
                for i, r in enumerate(part):
                    t, sp, pr = decoded.get(i, ([], [], []))
                    out.append(Chunking(r, tuple(t), tuple(sp), tuple(pr)))
                if progress:
                    progress("scoring", min(s + batch_size, len(rows)), len(rows))
        return out

    # -- checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        import torch

        if self.net is None:
            raise RuntimeError("nothing to save: the model is not trained")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "config": self.config.to_dict(), "vocab": self.vocab, "types": self.types,
                "data_fingerprint": self.fingerprint, "n_train": self.n_train, "history": self.history,
                "pools": self.pools,
                "word_vectors": None if self.vectors is None else
                "sentence-transformers/all-MiniLM-L6-v2 word-piece input embeddings, mean per word, PCA"}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        torch.save(self.net.state_dict(), d / self.WEIGHTS_FILE)
        if self.vectors is not None:
            np.savez(d / self.VECTORS_FILE, basis=self.vectors.basis, mean=self.vectors.mean)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> CoordinationModel:
        import torch

        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        self = cls(CoordinationConfig.from_dict(meta["config"]))
        self.vocab, self.types = meta["vocab"], meta["types"]
        self.type_index = {t: i for i, t in enumerate(self.types)}
        self.fingerprint, self.n_train, self.history = meta["data_fingerprint"], meta["n_train"], meta["history"]
        self.pools = meta.get("pools", {})
        if self.config.word_vectors == "minilm":
            with np.load(d / cls.VECTORS_FILE) as v:
                self.vectors = WordVectors(v["basis"], v["mean"])
        self.net = build_network(self.config, len(self.vocab) + 2, len(self.types),
                                 self.vectors.dim if self.vectors else 0)
        self.net.load_state_dict(torch.load(d / cls.WEIGHTS_FILE, weights_only=True))
        self.net.eval()
        return self


@contextmanager
def _one_thread():
    """Training and tagging run on one thread: a small BiLSTM gains little from intra-op threads, and when the
    cores are shared with other work two threads waiting on each other were 28 times slower than one (tagging
    7,450 against 267 utterances/s, measured on this 2-core machine under load)."""
    import torch

    was = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(was)


@contextmanager
def _no_onednn():
    """oneDNN's LSTM builds a kernel for every new batch shape (tens of seconds over an epoch of varied sentence
    lengths, measured); PyTorch's own kernel needs none. (Not torch.backends.mkldnn.flags: restoring its TF32
    setting warns on every CPU build.)"""
    import torch

    was = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(was)


def _softmax_chunk(p: np.ndarray, best: np.ndarray, s: int, e: int) -> float:
    """Without a CRF: the least likely of the span's chosen tags and of the next word not being I."""
    vals = [p[t, best[t]] for t in range(s, e)]
    if e < len(p):
        vals.append(1.0 - p[e, 2])
    return float(min(vals))
