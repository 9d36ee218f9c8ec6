"""Failure-point isolation: per turn, the probability of each label in FAILURE_POINTS (METHODS.md section 2).

The failure point of a turn is the first component along wake word -> ASR -> NLU -> entity resolution ->
response -> TTS that failed irrecoverably. Three pieces, kept apart (setfit / minGPT style):

* ``build_examples`` turns log-format-v1 records into model inputs using ONLY what production traffic has:
  the request (``asr_text``), the response, the following one or two requests of the dialogue, and
  metadata as categorical tokens. ``reference_text`` and every ``gold_`` field are never read; gold labels
  are looked up separately by ``gold_labels`` and only for training and evaluation.
* ``FailurePointConfig`` documents every hyper-parameter; ``MixingEncoder`` is the torch module: frozen
  sentence vectors of the text slots, projected, plus metadata-token embeddings, mixed by a small
  Transformer encoder and read out at a [CLS] token.
* ``FailurePointClassifier`` runs training and scoring and writes / reads checkpoints carrying their
  config, label list, vocabulary, version and a fingerprint of the training data.

Baselines share the ``fit`` / ``predict_proba`` interface: ``MajorityBaseline``, ``TextLinearBaseline``
(logistic regression over the frozen request vector + one-hot logged intent) and ``RuleCascadeBaseline``
(one threshold per component over the metadata, first failing component wins).

``embed`` everywhere is a callable ``list[str] -> np.ndarray`` of shape (n, d) (d = 384 for MiniLM); in real
use ``lambda texts: EmbeddingCache(folder).encode(encoder, texts)`` so repeated texts are encoded once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from analysis.log_format import FAILURE_POINTS, timestamp_seconds

VERSION = "failure-points/1"
LABELS: tuple[str, ...] = FAILURE_POINTS
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
TEXT_SLOTS = ("request", "response", "next_1", "next_2")
FOLLOWING_SLOTS = frozenset({"next_1", "next_2"})

# Metadata token fields, in the fixed order the model sees them. Those derived from the following turns
# are dropped together with the following texts by the use_following=False ablation.
META_FIELDS = (
    "asr_conf", "nlu_conf", "alt_agree", "er_status", "response_status", "tts_status", "barge_in",
    "user_feedback", "nlu_domain", "nlu_intent", "device_type", "asr_words", "position",
    "gap_next", "next_turns", "next_same_intent",
)
FOLLOWING_FIELDS = frozenset({"gap_next", "next_turns", "next_same_intent"})
CONFIDENCE_FIELDS = frozenset({"asr_conf", "nlu_conf"})
# Gap to the next request, seconds: upper bounds of the buckets (a quick retry is evidence of a defect).
GAP_BOUNDS = (3.0, 5.0, 10.0, 20.0, 60.0)
UNK = "<unk>"
# Rows (metadata fields x vocabulary: the vocabulary is shared by the fields, so most rows go unused) up to which
# a one-layer encoder scores from lookup tables (MixingEncoder._tables): 262,144 rows of hidden + heads floats are
# about 140 MB at the default width; a larger vocabulary is scored the plain way.
TABLE_ROWS_MAX = 1 << 18

Embed = Callable[[list[str]], np.ndarray]
Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- examples

@dataclass(frozen=True)
class Example:
    """The model's view of one turn: its key, four texts ("" when absent) and metadata tokens.

    ``texts`` follows TEXT_SLOTS; ``tokens`` maps each META_FIELDS name to a categorical value (a string).
    """

    dialogue_id: str
    turn_index: int
    texts: tuple[str, str, str, str]
    tokens: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, int]:
        return (self.dialogue_id, self.turn_index)

    def token(self, name: str) -> str:
        return dict(self.tokens)[name]


def confidence_bucket(x: float | None, *, width: float = 0.05) -> str:
    """A confidence in [0, 1] as the lower edge of its bucket ("0.85"), or "none" when not logged."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "none"
    k = min(int(float(x) / width + 1e-9), int(round(1.0 / width)) - 1)  # 1.0 joins the top bucket
    return f"{k * width:.2f}"


def gap_bucket(seconds: float | None) -> str:
    """The time to the next request as a bucket label: "none" (no next turn), "<3s", ..., ">60s"."""
    if seconds is None:
        return "none"
    for bound in GAP_BOUNDS:
        if seconds < bound:
            return f"<{bound:g}s"
    return f">{GAP_BOUNDS[-1]:g}s"


def _words_bucket(text: str) -> str:
    n = len(text.split())
    return str(n) if n <= 3 else "4-5" if n <= 5 else "6-8" if n <= 8 else "9+"


def _cat(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Every field of a turn record that build_examples reads: a store may hand it records of these alone.
FIELDS_READ = ("dialogue_id", "turn_index", "timestamp", "asr_text", "response_text", "asr_confidence",
               "nlu_confidence", "nlu_intent", "nlu_alt_intent", "nlu_domain", "er_status", "response_status",
               "tts_status", "barge_in", "user_feedback", "device_type")


def build_examples(turns: Iterable[dict], *, following: int = 2) -> list[Example]:
    """One Example per turn, sorted by (dialogue_id, turn_index).

    ``turns``: log-format-v1 records in any order. Reads only production fields: asr_text, response_text,
    asr_confidence, nlu_confidence, nlu_intent, nlu_alt_intent, nlu_domain, er_status, response_status,
    tts_status, barge_in, user_feedback, device_type, timestamp, and the asr_text / nlu_intent / timestamp
    of the next ``following`` (0, 1 or 2) turns of the same dialogue. Never reference_text or gold_*.
    """
    if following not in (0, 1, 2):
        raise ValueError(f"following must be 0, 1 or 2, got {following!r}")
    by_dialogue: dict[str, list[dict]] = {}
    for t in turns:
        by_dialogue.setdefault(str(t["dialogue_id"]), []).append(t)
    out: list[Example] = []
    for dialogue_id in sorted(by_dialogue):
        dlg = sorted(by_dialogue[dialogue_id], key=lambda t: int(t["turn_index"]))
        for i, t in enumerate(dlg):
            nxt = dlg[i + 1: i + 1 + following]
            intent, alt = t.get("nlu_intent"), t.get("nlu_alt_intent")
            # The second recogniser's NLU result agreeing with the first is strong evidence (SLURP README).
            alt_agree = "none" if intent is None or alt is None else ("agree" if alt == intent else "disagree")
            gap = None
            if nxt:
                a, b = timestamp_seconds(t.get("timestamp")), timestamp_seconds(nxt[0].get("timestamp"))
                gap = None if a is None or b is None else b - a
            asr_text = t.get("asr_text") or ""
            tokens = {
                "asr_conf": confidence_bucket(t.get("asr_confidence")),
                "nlu_conf": confidence_bucket(t.get("nlu_confidence")),
                "alt_agree": alt_agree,
                "er_status": _cat(t.get("er_status")),
                "response_status": _cat(t.get("response_status")),
                "tts_status": _cat(t.get("tts_status")),
                "barge_in": _cat(t.get("barge_in")),
                "user_feedback": _cat(t.get("user_feedback")),
                "nlu_domain": _cat(t.get("nlu_domain")),
                "nlu_intent": _cat(intent),
                "device_type": _cat(t.get("device_type")),
                "asr_words": _words_bucket(asr_text),
                "position": "first" if i == 0 else "later",
                "gap_next": gap_bucket(gap) if nxt else "none",
                "next_turns": str(len(nxt)),
                # A rephrase right after (same intent again) suggests this turn went wrong.
                "next_same_intent": ("none" if not nxt else
                                     "same" if nxt[0].get("nlu_intent") == intent else "different"),
            }
            nexts = [n.get("asr_text") or "" for n in nxt] + [""] * (2 - len(nxt))
            out.append(Example(
                dialogue_id=dialogue_id, turn_index=int(t["turn_index"]),
                texts=(asr_text, t.get("response_text") or "", nexts[0], nexts[1]),
                tokens=tuple((name, tokens[name]) for name in META_FIELDS)))
    return out


def gold_labels(turns: Iterable[dict], examples: Sequence[Example]) -> np.ndarray:
    """Label indices (into LABELS) of ``examples`` from the turns' gold_failure_point: for training and
    evaluation only. KeyError if an example's turn or its gold label is missing."""
    gold = {(str(t["dialogue_id"]), int(t["turn_index"])): t.get("gold_failure_point") for t in turns}
    out = np.empty(len(examples), dtype=np.int64)
    for i, ex in enumerate(examples):
        label = gold[ex.key]
        if label not in LABEL_INDEX:
            raise KeyError(f"turn {ex.key}: gold_failure_point {label!r} is not one of {LABELS}")
        out[i] = LABEL_INDEX[label]
    return out


def data_fingerprint(examples: Sequence[Example], labels: Sequence[int]) -> str:
    """sha256 (first 16 hex digits) of the examples and labels a model was trained on."""
    h = hashlib.sha256()
    for ex, y in zip(examples, labels, strict=True):
        h.update(json.dumps([ex.dialogue_id, ex.turn_index, ex.texts, ex.tokens, int(y)]).encode())
    return h.hexdigest()[:16]


def embed_texts(examples: Sequence[Example], embed: Embed, *, slots: Sequence[str] = TEXT_SLOTS) -> np.ndarray:
    """(n, len(slots), d) float32 vectors of the examples' texts; absent texts ("") are zero vectors.

    Each distinct text is embedded once per call.
    """
    idx = [TEXT_SLOTS.index(s) for s in slots]
    distinct = sorted({ex.texts[j] for ex in examples for j in idx if ex.texts[j]})
    vecs = np.asarray(embed(distinct), dtype=np.float32) if distinct else np.zeros((0, 1), np.float32)
    dim = vecs.shape[1] if len(distinct) else 1
    row = {t: i for i, t in enumerate(distinct)}
    out = np.zeros((len(examples), len(idx), dim), dtype=np.float32)
    for i, ex in enumerate(examples):
        for k, j in enumerate(idx):
            if ex.texts[j]:
                out[i, k] = vecs[row[ex.texts[j]]]
    return out


def _check_labels(examples: Sequence[Example], labels: Sequence[int]) -> np.ndarray:
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(examples),):
        raise ValueError(f"labels must have one entry per example ({len(examples)}), got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("no training examples")
    if y.min() < 0 or y.max() >= len(LABELS):
        raise ValueError(f"labels must be indices into LABELS (0..{len(LABELS) - 1})")
    return y


def class_weights(y: np.ndarray, *, power: float, n_labels: int = len(LABELS)) -> np.ndarray:
    """Per-class loss weights (n / (k * count)) ** power, normalised to mean 1 over the present classes.

    power 0 = unweighted, 1 = fully balanced. Absent classes get weight 0 (they never occur in the loss).
    """
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_labels)
    w[present] = (counts[present].sum() / (present.sum() * counts[present])) ** power
    w[present] /= w[present].mean()
    return w


# ---------------------------------------------------------------- config and model

@dataclass
class FailurePointConfig:
    """Hyper-parameters of the mixing encoder and its training. Defaults were set on dev-split data only.

    hidden: width of every token in the mixing encoder. layers / heads: TransformerEncoder depth and
    attention heads (hidden % heads == 0). dropout: in the encoder and on the projected text vectors.
    epochs, lr, batch_size, weight_decay: AdamW training. seed: torch seed for initialisation and batch
    order (training is deterministic for a seed on one machine and thread count).
    class_weight_power: loss weights (n / (k * count_c)) ** power; 1 is fully balanced, 0 unweighted;
    0.5 trades the rare classes' recall against precision. use_text / use_metadata / use_following:
    ablation switches (no text slots; no metadata tokens; neither the following turns' texts nor the
    tokens derived from them). use_confidences: the ASR and NLU confidence tokens (off for the ablation
    that asks how much the model leans on them: in the simulated logs they are derived from the real
    errors). following: how many following turns are read (1 or 2). text_dropout: during training only,
    each text slot of each example is blanked (as if absent) with this probability, so the model cannot
    lean on memorising the training utterances and must read the metadata too.
    text_encoder: a record of which sentence encoder made the vectors (the checkpoint must be scored
    with the same one).
    """

    hidden: int = 128
    # One layer, chosen on dev-split validation (docs/results/failure-points.md): it scored as well as two
    # there (the difference is within the run-to-run spread), and scoring it costs well under half as much.
    layers: int = 1
    heads: int = 4
    dropout: float = 0.1
    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.01
    seed: int = 0
    class_weight_power: float = 0.5
    use_text: bool = False  # chosen on dev-split validation (docs/results/failure-points.md): text over-fits
    use_metadata: bool = True
    use_following: bool = True
    use_confidences: bool = True
    following: int = 2
    text_dropout: float = 0.0
    text_encoder: str = "sentence-transformers/all-MiniLM-L6-v2@32"

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not (self.use_text or self.use_metadata):
            raise ValueError("at least one of use_text and use_metadata must be on")
        if self.following not in (1, 2):
            raise ValueError(f"following must be 1 or 2, got {self.following}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {self.text_dropout}")

    @property
    def text_slots(self) -> tuple[str, ...]:
        if not self.use_text:
            return ()
        slots = TEXT_SLOTS[: 2 + self.following] if self.use_following else TEXT_SLOTS[:2]
        return tuple(slots)

    @property
    def meta_fields(self) -> tuple[str, ...]:
        if not self.use_metadata:
            return ()
        return tuple(f for f in META_FIELDS if (self.use_following or f not in FOLLOWING_FIELDS)
                     and (self.use_confidences or f not in CONFIDENCE_FIELDS))


def _torch():
    import torch  # imported lazily: building examples and the baselines need no torch

    return torch


def build_mixing_encoder(config: FailurePointConfig, *, text_dim: int, vocab_size: int, n_labels: int):
    """The torch module: [CLS] + projected text vectors + metadata-token embeddings -> TransformerEncoder
    -> LayerNorm -> linear head on [CLS]. forward(text (B, S, text_dim) float, meta (B, F) long) -> logits."""
    torch = _torch()
    nn = torch.nn

    class MixingEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h = config.hidden
            n_text, n_meta = len(config.text_slots), len(config.meta_fields)
            self.n_text, self.n_meta = n_text, n_meta
            self.cls = nn.Parameter(torch.zeros(1, 1, h))
            self.text_proj = nn.Sequential(nn.Linear(text_dim, h), nn.Dropout(config.dropout))
            # slot / field embeddings tell the encoder which token is the response, which the next turn...
            self.slot_emb = nn.Parameter(torch.randn(1, max(n_text, 1), h) * 0.02)
            self.meta_emb = nn.Embedding(vocab_size, h)
            self.field_emb = nn.Parameter(torch.randn(1, max(n_meta, 1), h) * 0.02)
            layer = nn.TransformerEncoderLayer(h, config.heads, dim_feedforward=2 * h, dropout=config.dropout,
                                               batch_first=True, norm_first=True)
            # enable_nested_tensor only matters with padding masks, which we never use (fixed lengths)
            self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(h)
            self.head = nn.Linear(h, n_labels)

        def tokens(self, text, meta):
            """The encoder's input sequence: [CLS], the projected text vectors, the metadata tokens."""
            parts = [self.cls.expand(meta.shape[0], -1, -1)]
            if self.n_text:
                parts.append(self.text_proj(text) + self.slot_emb)
            if self.n_meta:
                parts.append(self.meta_emb(meta) + self.field_emb)
            return torch.cat(parts, dim=1)

        def forward(self, text, meta):
            if self.training:
                return self.head(self.norm(self.encoder(self.tokens(text, meta))[:, 0]))
            # Scoring reads only the [CLS] position of the last layer, so that layer computes only that row: the
            # keys and values of every token, the query, attention, feed-forward and residuals of [CLS] alone.
            # The same function as the whole layer (equal up to float rounding), about a third less work.
            # A one-layer encoder (the default) goes further: it looks up what depends only on the weights.
            # Only without gradients (the tables are made under no_grad) and for a vocabulary of bounded size.
            *first, last = self.encoder.layers
            if (not first and self.n_meta and len(meta) and not torch.is_grad_enabled()
                    and not self.cls.is_inference()  # inference tensors keep no version to key the tables on
                    and len(self.meta_emb.weight) * self.n_meta <= TABLE_ROWS_MAX):
                return self.head(self.norm(self._only_layer_cls_row(text, meta)))
            x = self.tokens(text, meta)
            for layer in first:
                x = layer(x)
            return self.head(self.norm(_cls_row_of_layer(last, x)))

        def _only_layer_cls_row(self, text, meta):
            """_cls_row_of_layer(layer, self.tokens(text, meta)) of a one-layer encoder. There the [CLS] token and
            each metadata token enter the layer as constants of the weights (a metadata token is its value's
            embedding plus its field's), so [CLS]'s query and the attention logit and value of [CLS] and of every
            (field, value) are looked up in tables made once per set of weights (_tables): per turn, only the
            text tokens' keys and values, the softmax and [CLS]'s feed-forward are computed."""
            layer = self.encoder.layers[0]
            attn = layer.self_attn
            n, h, heads = meta.shape[0], attn.embed_dim, attn.num_heads
            query, cls_logit, cls_value, meta_logits, meta_values = self._tables()
            logits, values = [cls_logit.expand(n, 1, heads)], [cls_value.expand(n, 1, h)]
            if self.n_text:
                keys, text_values = _keys_and_values(layer, self.text_proj(text) + self.slot_emb)
                logits.append(torch.einsum("nshd,hd->nsh", keys.view(n, self.n_text, heads, -1), query))
                values.append(text_values)
            if int(meta.min()) < 0 or int(meta.max()) >= len(self.meta_emb.weight):  # else: another field's row
                raise IndexError(f"metadata ids must be in [0, {len(self.meta_emb.weight)}), got "
                                 f"{int(meta.min())}..{int(meta.max())}")
            rows = meta + self.field_offsets  # (n, fields): each token's row in the tables
            logits.append(meta_logits[rows])
            values.append(meta_values[rows])
            weights = torch.softmax(torch.cat(logits, 1), dim=1)  # (n, tokens, heads)
            mixed = torch.einsum("nth,nthd->nhd", weights, torch.cat(values, 1).view(n, weights.shape[1], heads, -1))
            row = self.cls[:, 0] + attn.out_proj(mixed.reshape(n, h))
            return row + layer.linear2(layer.activation(layer.linear1(layer.norm2(row))))

        def _tables(self):
            """(query, cls_logit, cls_value, meta_logits, meta_values) of _only_layer_cls_row, made again whenever
            a parameter changed (a training step or load_state_dict bumps its version). The query is per head and
            scaled as the attention scales it; meta rows are field * vocabulary size + value id."""
            key = tuple((p.data_ptr(), p._version) for p in self.parameters())
            if getattr(self, "_tables_key", None) != key:
                # plain tensors even when first called under inference_mode: the tables outlive that call
                with torch.inference_mode(False), torch.no_grad():
                    layer = self.encoder.layers[0]
                    heads, h = layer.self_attn.num_heads, self.cls.shape[-1]
                    w_q, b_q = layer.self_attn.in_proj_weight[:h], layer.self_attn.in_proj_bias[:h]
                    query = torch.nn.functional.linear(layer.norm1(self.cls[0, 0]), w_q, b_q)
                    query = query.view(heads, -1) / math.sqrt(h // heads)
                    tokens = (self.meta_emb.weight.unsqueeze(0) + self.field_emb[0, :self.n_meta].unsqueeze(1))
                    keys, values = _keys_and_values(layer, torch.cat([self.cls[0], tokens.reshape(-1, h)]))
                    logits = torch.einsum("rhd,hd->rh", keys.view(len(keys), heads, -1), query)
                    self._tables_value = (query, logits[:1], values[:1], logits[1:], values[1:])
                    self.field_offsets = (torch.arange(self.n_meta, device=self.cls.device)
                                          * len(self.meta_emb.weight))
                self._tables_key = key
            return self._tables_value

    def _keys_and_values(layer, x):
        """The attention's keys and values of the (already embedded) tokens x: norm1, then in_proj's key and
        value parts."""
        _, w_k, w_v = layer.self_attn.in_proj_weight.chunk(3)
        _, b_k, b_v = layer.self_attn.in_proj_bias.chunk(3)
        x = layer.norm1(x)
        return torch.nn.functional.linear(x, w_k, b_k), torch.nn.functional.linear(x, w_v, b_v)

    def _cls_row_of_layer(layer, x):
        """Row 0 of a pre-norm (norm_first) TransformerEncoderLayer's output in eval mode (dropout off):
        x + attention(norm1(x)) then + feed_forward(norm2(.)), computed for that row only."""
        h = layer.norm1(x)
        attended = layer.self_attn(h[:, :1], h, h, need_weights=False)[0]
        row = x[:, :1] + attended
        row = row + layer.linear2(layer.activation(layer.linear1(layer.norm2(row))))
        return row[:, 0]

    return MixingEncoder()


# ---------------------------------------------------------------- the classifier

class FailurePointClassifier:
    """The trained model: fit / predict_proba / save_pretrained / from_pretrained.

    Probabilities are over LABELS (analysis.log_format.FAILURE_POINTS), in that order; rows sum to 1.
    """

    CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"

    def __init__(self, config: FailurePointConfig | None = None):
        self.config = config or FailurePointConfig()
        self.vocab: dict[str, int] = {}
        self.text_dim: int | None = None
        self.fingerprint: str | None = None
        self.n_train: int = 0
        self.model = None

    # -- inputs
    def _build_vocab(self, examples: Sequence[Example]) -> None:
        # one <unk> per field, so an unseen intent still says "an intent we never saw" in its field
        tokens = {f"{f}={UNK}" for f in self.config.meta_fields}
        wanted = set(self.config.meta_fields)
        tokens |= {f"{f}={v}" for ex in examples for f, v in ex.tokens if f in wanted}
        self.vocab = {t: i for i, t in enumerate(sorted(tokens))}

    def _meta_ids(self, examples: Sequence[Example]) -> np.ndarray:
        fields_ = self.config.meta_fields
        out = np.zeros((len(examples), max(len(fields_), 1)), dtype=np.int64)
        for i, ex in enumerate(examples):
            tok = dict(ex.tokens)
            for k, f in enumerate(fields_):
                out[i, k] = self.vocab.get(f"{f}={tok[f]}", self.vocab[f"{f}={UNK}"])
        return out

    def _text(self, examples: Sequence[Example], embed: Embed) -> np.ndarray:
        slots = self.config.text_slots
        if not slots:
            return np.zeros((len(examples), 1, self.text_dim or 1), dtype=np.float32)
        return embed_texts(examples, embed, slots=slots)

    # -- training and scoring
    def fit(self, examples: Sequence[Example], labels: Sequence[int], *, embed: Embed,
            config: FailurePointConfig | None = None, progress: Progress | None = None) -> FailurePointClassifier:
        """Train from scratch on examples with label indices into LABELS. progress(batches_done, total)."""
        torch = _torch()
        if config is not None:
            self.config = config
        cfg = self.config
        y = _check_labels(examples, labels)
        self.fingerprint, self.n_train = data_fingerprint(examples, y), len(y)
        self._build_vocab(examples)
        text = self._text(examples, embed)
        self.text_dim = text.shape[2]
        meta = self._meta_ids(examples)
        torch.manual_seed(cfg.seed)
        self.model = build_mixing_encoder(cfg, text_dim=self.text_dim, vocab_size=len(self.vocab),
                                          n_labels=len(LABELS))
        weight = torch.tensor(class_weights(y, power=cfg.class_weight_power), dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        n_batches = math.ceil(len(y) / cfg.batch_size)
        total = cfg.epochs * n_batches
        # linear warm-up over the first epoch, then cosine decay: stable on small data without tuning
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / n_batches) * 0.5 * (
            1 + math.cos(math.pi * min(s, total) / total)))
        t_text, t_meta, t_y = torch.from_numpy(text), torch.from_numpy(meta), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.model.train()
        step = 0
        for _ in range(cfg.epochs):
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                batch_text = t_text[idx]
                if cfg.text_dropout and cfg.text_slots:
                    blank = torch.rand(batch_text.shape[:2], generator=gen) < cfg.text_dropout
                    batch_text = batch_text.masked_fill(blank.unsqueeze(-1), 0.0)
                loss = loss_fn(self.model(batch_text, t_meta[idx]), t_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                if progress:
                    progress(step, total)
        self.model.eval()
        return self

    def predict_proba(self, examples: Sequence[Example], *, embed: Embed, batch_size: int = 1024,
                      chunk_size: int = 65_536, progress: Progress | None = None) -> np.ndarray:
        """(n, len(LABELS)) float64 probabilities, rows summing to 1; higher = more likely that failure point.

        Inputs are built chunk_size examples at a time, so memory stays flat on large logs (the text vectors
        of 1M turns would take 6 GB at once). progress(examples_done, total) after each chunk."""
        torch = _torch()
        if self.model is None:
            raise RuntimeError("the classifier is not trained: call fit or from_pretrained first")
        if not examples:
            return np.zeros((0, len(LABELS)))
        out = []
        self.model.eval()
        with torch.inference_mode():
            for c in range(0, len(examples), chunk_size):
                chunk = examples[c:c + chunk_size]
                text = torch.from_numpy(self._text(chunk, embed))
                meta = torch.from_numpy(self._meta_ids(chunk))
                for s in range(0, len(chunk), batch_size):
                    out.append(torch.softmax(self.model(text[s:s + batch_size], meta[s:s + batch_size])
                                             .double(), dim=1).numpy())
                if progress:
                    progress(min(c + chunk_size, len(examples)), len(examples))
        return np.concatenate(out)

    # -- checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json (config, labels, vocab, version, data fingerprint, sizes) and weights.pt."""
        torch = _torch()
        if self.model is None:
            raise RuntimeError("nothing to save: the classifier is not trained")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "labels": list(LABELS), "config": asdict(self.config), "vocab": self.vocab,
                "text_dim": self.text_dim, "data_fingerprint": self.fingerprint, "n_train": self.n_train}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        torch.save(self.model.state_dict(), d / self.WEIGHTS_FILE)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FailurePointClassifier:
        """Load a checkpoint written by save_pretrained; ValueError on another version or label list."""
        torch = _torch()
        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        if tuple(meta["labels"]) != LABELS:
            raise ValueError(f"{d}: checkpoint labels {meta['labels']} differ from {list(LABELS)}")
        known = {f.name for f in fields(FailurePointConfig)}
        self = cls(FailurePointConfig(**{k: v for k, v in meta["config"].items() if k in known}))
        self.vocab, self.text_dim = meta["vocab"], meta["text_dim"]
        self.fingerprint, self.n_train = meta["data_fingerprint"], meta["n_train"]
        self.model = build_mixing_encoder(self.config, text_dim=self.text_dim, vocab_size=len(self.vocab),
                                          n_labels=len(LABELS))
        self.model.load_state_dict(torch.load(d / cls.WEIGHTS_FILE, weights_only=True))
        self.model.eval()
        return self


# ---------------------------------------------------------------- baselines

class MajorityBaseline:
    """Predicts the training label frequencies for every turn (argmax = the majority class)."""

    def fit(self, examples: Sequence[Example], labels: Sequence[int], *, embed: Embed | None = None,
            **_: object) -> MajorityBaseline:
        y = _check_labels(examples, labels)
        self.prior = np.bincount(y, minlength=len(LABELS)) / len(y)
        return self

    def predict_proba(self, examples: Sequence[Example], *, embed: Embed | None = None) -> np.ndarray:
        return np.tile(self.prior, (len(examples), 1))


class TextLinearBaseline:
    """Logistic regression over the frozen request vector and a one-hot of the logged intent (no metadata
    beyond the intent, no response, no following turns): the SLURP README's text-only reference point."""

    def __init__(self, *, C: float = 1.0, class_weight: str | None = "balanced", max_iter: int = 2000):
        self.C, self.class_weight, self.max_iter = C, class_weight, max_iter

    def _features(self, examples: Sequence[Example], embed: Embed) -> np.ndarray:
        vec = embed_texts(examples, embed, slots=("request",))[:, 0]
        onehot = np.zeros((len(examples), len(self.intents) + 1), dtype=np.float32)  # last column: unseen
        for i, ex in enumerate(examples):
            onehot[i, self.intents.get(ex.token("nlu_intent"), len(self.intents))] = 1.0
        return np.hstack([vec, onehot])

    def fit(self, examples: Sequence[Example], labels: Sequence[int], *, embed: Embed,
            **_: object) -> TextLinearBaseline:
        from sklearn.linear_model import LogisticRegression

        y = _check_labels(examples, labels)
        self.intents = {v: i for i, v in enumerate(sorted({ex.token("nlu_intent") for ex in examples}))}
        self.clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        self.clf.fit(self._features(examples, embed), y)
        return self

    def predict_proba(self, examples: Sequence[Example], *, embed: Embed) -> np.ndarray:
        out = np.zeros((len(examples), len(LABELS)))
        if examples:
            out[:, self.clf.classes_] = self.clf.predict_proba(self._features(examples, embed))
        return out


@dataclass
class RuleCascadeBaseline:
    """A hand-written cascade over the metadata; the first component whose rule fires is the failure point.

    In order: WAKEWORD if NLU returned no intent (a cut-off request) or a first-and-only turn with a barge-in
    and ASR confidence below ``wake_asr_threshold`` (a false wake); ASR if ASR confidence is below
    ``asr_threshold``, or the second recogniser's intent disagrees and ASR confidence is below
    ``asr_alt_threshold``; NLU if NLU confidence is below ``nlu_threshold`` or the second recogniser's intent
    disagrees; ENTITY_RESOLUTION if er_status is unresolved; RESPONSE if response_status is error or
    unhandled; TTS if tts_status failed; otherwise NO_FAILURE. ``fit`` picks the three confidence
    thresholds by grid search for macro-F1 over all labels present, on the training data only
    (``fit=False`` keeps the given ones). Probabilities are one-hot (the rules give no scores).
    """

    wake_asr_threshold: float = 0.6
    asr_threshold: float = 0.5
    asr_alt_threshold: float = 0.8
    nlu_threshold: float = 0.7
    grid: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(4, 20))

    def rule(self, ex: Example) -> str:
        """The failure point this cascade assigns to one example."""
        tok = dict(ex.tokens)

        def conf(name: str) -> float:
            return float(tok[name]) + 0.025 if tok[name] != "none" else 1.0  # bucket centre; unlogged = sure

        asr, nlu, alt_disagree = conf("asr_conf"), conf("nlu_conf"), tok["alt_agree"] == "disagree"
        if tok["nlu_intent"] == "none" or (ex.turn_index == 0 and tok["next_turns"] == "0"
                                           and tok["barge_in"] == "true" and asr < self.wake_asr_threshold):
            return "WAKEWORD"
        if asr < self.asr_threshold or (alt_disagree and asr < self.asr_alt_threshold):
            return "ASR"
        if nlu < self.nlu_threshold or alt_disagree:
            return "NLU"
        if tok["er_status"] == "unresolved":
            return "ENTITY_RESOLUTION"
        if tok["response_status"] in ("error", "unhandled"):
            return "RESPONSE"
        if tok["tts_status"] == "failed":
            return "TTS"
        return "NO_FAILURE"

    def predict(self, examples: Sequence[Example]) -> np.ndarray:
        return np.array([LABEL_INDEX[self.rule(ex)] for ex in examples], dtype=np.int64)

    def fit(self, examples: Sequence[Example], labels: Sequence[int], *, embed: Embed | None = None,
            fit: bool = True, **_: object) -> RuleCascadeBaseline:
        from analysis.failure_points.evaluation import macro_f1  # evaluation helpers; no cycle at import time

        y = _check_labels(examples, labels)
        if not fit:
            return self
        present = sorted(set(y.tolist()))
        best = (-1.0, (self.asr_threshold, self.asr_alt_threshold, self.nlu_threshold))
        # coordinate search (three passes) instead of the full 16^3 grid: each evaluation is a Python loop
        for _ in range(3):
            for name in ("asr_threshold", "asr_alt_threshold", "nlu_threshold"):
                for value in self.grid:
                    old = getattr(self, name)
                    setattr(self, name, value)
                    score = macro_f1(y, self.predict(examples), labels=present)
                    if score > best[0]:
                        best = (score, (self.asr_threshold, self.asr_alt_threshold, self.nlu_threshold))
                    setattr(self, name, old)
                self.asr_threshold, self.asr_alt_threshold, self.nlu_threshold = best[1]
        return self

    def predict_proba(self, examples: Sequence[Example], *, embed: Embed | None = None) -> np.ndarray:
        out = np.zeros((len(examples), len(LABELS)))
        out[np.arange(len(examples)), self.predict(examples)] = 1.0
        return out


__all__ = [
    "FIELDS_READ", "LABELS", "VERSION", "META_FIELDS", "TEXT_SLOTS", "Example", "FailurePointConfig",
    "FailurePointClassifier",
    "MajorityBaseline", "TextLinearBaseline", "RuleCascadeBaseline", "build_examples", "gold_labels",
    "embed_texts", "data_fingerprint", "class_weights", "confidence_bucket", "gap_bucket", "build_mixing_encoder",
]
