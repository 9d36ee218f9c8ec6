"""Label generation from dialogue context (METHODS.md section 1): per turn, goal start, goal success, intent,
slots and defect, read off the whole dialogue.

* ``build_dialogues`` turns log-format-v1 records into model inputs using ONLY what production traffic has:
  request and response text, the logged NLU output (domain, intent, slots, the second recogniser's intent),
  statuses, barge-in, feedback, confidences, token counts and times. ``reference_text`` and every ``gold_``
  field are never read; ``gold_targets`` reads the training targets separately.
* ``LabelConfig`` documents every hyper-parameter. The network: each turn is one vector (frozen sentence
  vectors of request and response, projected, plus embeddings of the categorical fields and a small network
  over the numbers); a dialogue-level Transformer runs over the turns; heads read each turn. Slots are tagged
  per request word (BIO) by two small convolutions over word embeddings, the logged NLU's own tags and the
  turn's dialogue-context vector. ``use_context=False`` is the same network with every turn attending only
  to itself (the ablation "context removed").
* Self-supervised pretraining (``pretrain_epochs``): a turn's response is swapped with one from another
  dialogue (``swap_plan``) and the network learns to tell original from swapped, before the multitask fit.
* ``LabelModel`` fits, predicts, and saves / loads checkpoints with config, vocabularies, version and a
  fingerprint of the training data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from analysis.labels.evaluation import bio_tags, spans_from_bio
from analysis.log_format import timestamp_seconds

VERSION = "label-model/1"
CAT_FIELDS = ("nlu_domain", "nlu_intent", "nlu_alt_intent", "response_status", "er_status", "tts_status",
              "barge_in", "user_feedback", "device_type")
NUM_FIELDS = ("log_tokens", "asr_confidence", "nlu_confidence", "log_gap_prev", "has_prev")
BINARY_TASKS = ("goal_start", "goal_success", "defect")
TASKS = ("intent", "slots", *BINARY_TASKS)
UNK, PAD = "<unk>", "<pad>"
IGNORE = -100

Embed = Callable[[list[str]], np.ndarray]
Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Turn:
    """The model's view of one turn (production fields only)."""

    dialogue_id: str
    turn_index: int
    request: str
    response: str
    words: tuple[str, ...]  # the request, lowercased, split on whitespace
    nlu_tags: tuple[str, ...]  # BIO tags of the logged NLU slots over words
    cats: tuple[str, ...]  # one value per CAT_FIELDS ("none" when not logged)
    nums: tuple[float, ...]  # one value per NUM_FIELDS

    @property
    def key(self) -> tuple[str, int]:
        return (self.dialogue_id, self.turn_index)


@dataclass(frozen=True)
class Dialogue:
    dialogue_id: str
    turns: tuple[Turn, ...]


def _cat(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _num(value: object, default: float) -> float:
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def build_dialogues(records: Iterable[dict]) -> list[Dialogue]:
    """Group v1 records into dialogues (sorted by dialogue id, turns by index) of model inputs."""
    by_dialogue: dict[str, list[dict]] = {}
    for r in records:
        by_dialogue.setdefault(r["dialogue_id"], []).append(r)
    out = []
    for did in sorted(by_dialogue):
        rows = sorted(by_dialogue[did], key=lambda r: r["turn_index"])
        turns, prev_time = [], None
        for r in rows:
            words = tuple((r.get("asr_text") or "").lower().split())
            slots = r.get("nlu_slots") or []
            now = timestamp_seconds(r["timestamp"])
            gap = None if prev_time is None else max(now - prev_time, 0.0)
            prev_time = now
            turns.append(Turn(
                dialogue_id=did, turn_index=int(r["turn_index"]), request=r.get("asr_text") or "",
                response=r.get("response_text") or "", words=words,
                nlu_tags=tuple(bio_tags(list(words), [dict(s) for s in slots])),
                cats=tuple(_cat(r.get(f)) for f in CAT_FIELDS),
                nums=(math.log1p(len(words)), _num(r.get("asr_confidence"), -1.0),
                      _num(r.get("nlu_confidence"), -1.0), 0.0 if gap is None else math.log1p(gap),
                      0.0 if gap is None else 1.0)))
        out.append(Dialogue(did, tuple(turns)))
    return out


@dataclass(frozen=True)
class Targets:
    """Training / evaluation targets per turn, aligned with the dialogues' turns (None: no label)."""

    intent: dict[tuple[str, int], str | None]
    slots: dict[tuple[str, int], list[dict] | None]
    goal_start: dict[tuple[str, int], bool | None]
    goal_success: dict[tuple[str, int], bool | None]
    defect: dict[tuple[str, int], bool | None]


def gold_targets(records: Iterable[dict]) -> Targets:
    """The gold labels of records (evaluation / training only; never model inputs). defect: the turn's
    gold failure point is not NO_FAILURE."""
    out: dict[str, dict] = {t: {} for t in TASKS}
    for r in records:
        k = (r["dialogue_id"], int(r["turn_index"]))
        out["intent"][k] = r.get("gold_intent")
        gs = r.get("gold_slots")
        out["slots"][k] = None if gs is None else [dict(s) for s in gs]
        out["goal_start"][k] = r.get("gold_goal_start")
        out["goal_success"][k] = r.get("gold_goal_success")
        fp = r.get("gold_failure_point")
        out["defect"][k] = None if fp is None else fp != "NO_FAILURE"
    return Targets(**out)


def swap_plan(dialogues: Sequence[Dialogue], *, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For the flat list of turns (dialogue order): which turn's response each turn shows, and whether it is
    swapped. Each turn is swapped with probability ``rate`` for the response of a random turn of ANOTHER
    dialogue whose response text differs (an identical text would be a swap no one could see); otherwise it
    keeps its own. Returns (source index per turn, swapped 0/1 per turn)."""
    dialogue_of = np.array([d for d, dlg in enumerate(dialogues) for _ in dlg.turns])
    responses = [t.response for dlg in dialogues for t in dlg.turns]
    n = len(responses)
    source = np.arange(n)
    swapped = np.zeros(n, dtype=np.int64)
    if n < 2 or len(dialogues) < 2:
        return source, swapped
    for i in np.flatnonzero(rng.random(n) < rate):
        for _ in range(8):  # a few tries; a turn with no different response elsewhere stays original
            j = int(rng.integers(n))
            if dialogue_of[j] != dialogue_of[i] and responses[j] != responses[i]:
                source[i], swapped[i] = j, 1
                break
    return source, swapped


# ---------------------------------------------------------------- config

@dataclass
class LabelConfig:
    """Hyper-parameters (defaults set without looking at the evaluation split).

    hidden / layers / heads: the dialogue Transformer. word_dim: the slot tagger's word embeddings (its
    convolutions have 2 * word_dim channels). dropout, lr, weight_decay, batch_size (dialogues per batch), epochs:
    AdamW fine-tuning. pretrain_epochs: swapped-response pretraining epochs before it (0: none);
    swap_rate: the share of turns whose response is swapped. use_context: turns see the rest of the
    dialogue (False: the ablation with the context removed). min_word_count: rarer request words are <unk>.
    finetune_encoder: train the sentence encoder (all-MiniLM-L6-v2) with the rest, at encoder_lr, instead of
    reading frozen cached vectors (much slower on CPU; the checkpoint then holds the encoder's weights too).
    slot_targets: "all" trains the tagger on every turn with gold slots; "located" only on turns whose gold
    values all occur in the recognised words. seed: initialisation, batch order and swaps.
    """

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    word_dim: int = 64
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 10
    pretrain_epochs: int = 3
    swap_rate: float = 0.3
    use_context: bool = True
    min_word_count: int = 2
    slot_targets: str = "located"  # chosen on dev-split validation (docs/results/label-generation.md)
    finetune_encoder: bool = False
    encoder_lr: float = 2e-5
    seed: int = 0
    text_encoder: str = "sentence-transformers/all-MiniLM-L6-v2@32"

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.epochs < 1 or self.pretrain_epochs < 0:
            raise ValueError("epochs must be >= 1 and pretrain_epochs >= 0")
        if self.slot_targets not in ("all", "located"):
            raise ValueError(f"slot_targets must be 'all' or 'located', got {self.slot_targets!r}")
        if not 0.0 <= self.swap_rate < 1.0:
            raise ValueError(f"swap_rate must be in [0, 1), got {self.swap_rate}")


@dataclass
class Vocab:
    cats: dict[str, int] = field(default_factory=dict)  # "field=value"
    intents: list[str] = field(default_factory=list)
    words: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)  # BIO tags, "O" first

    def cat_id(self, f: str, v: str) -> int:
        return self.cats.get(f"{f}={v}", self.cats[f"{f}={UNK}"])


def _build_vocab(dialogues: Sequence[Dialogue], targets: Targets, min_word_count: int) -> Vocab:
    turns = [t for d in dialogues for t in d.turns]
    cats = {f"{f}={UNK}" for f in CAT_FIELDS}
    cats |= {f"{f}={v}" for t in turns for f, v in zip(CAT_FIELDS, t.cats, strict=True)}
    intents = sorted({v for v in targets.intent.values() if v} | {t.cats[1] for t in turns if t.cats[1] != "none"})
    counts: dict[str, int] = {}
    for t in turns:
        for w in t.words:
            counts[w] = counts.get(w, 0) + 1
    words = [PAD, UNK] + sorted(w for w, c in counts.items() if c >= min_word_count)
    types = sorted({s["type"] for v in targets.slots.values() if v for s in v}
                   | {tag[2:] for t in turns for tag in t.nlu_tags if tag != "O"})
    tags = ["O"] + [f"{p}-{ty}" for ty in types for p in ("B", "I")]
    return Vocab({c: i for i, c in enumerate(sorted(cats))}, intents, {w: i for i, w in enumerate(words)}, tags)


# ---------------------------------------------------------------- tensors

class _Batch:
    """Padded tensors for a list of dialogues (B dialogues, T turns, L words)."""

    def __init__(self, torch, dialogues: Sequence[Dialogue], vocab: Vocab, vectors: dict[str, np.ndarray],
                 dim: int, targets: Targets | None = None, response_override: dict[tuple[str, int], str] | None = None,
                 swapped: dict[tuple[str, int], int] | None = None, slot_targets: str = "all"):
        B = len(dialogues)
        T = max(len(d.turns) for d in dialogues)
        L = max(1, max(len(t.words) for d in dialogues for t in d.turns))
        tag_id = {t: i for i, t in enumerate(vocab.tags)}
        text = np.zeros((B, T, 2, dim), np.float32)
        cats = np.zeros((B, T, len(CAT_FIELDS)), np.int64)
        nums = np.zeros((B, T, len(NUM_FIELDS)), np.float32)
        turn_mask = np.zeros((B, T), bool)
        words = np.zeros((B, T, L), np.int64)
        nlu = np.zeros((B, T, L), np.int64)
        y = {k: np.full((B, T), IGNORE, np.int64) for k in ("intent", "swap", *BINARY_TASKS)}
        y_tags = np.full((B, T, L), IGNORE, np.int64)
        intent_id = {v: i for i, v in enumerate(vocab.intents)}
        logged = np.full((B, T, 2), len(vocab.intents), np.int64)  # NLU's and the alt intent; K = none
        unk = vocab.words[UNK]
        self.requests: list[str] = []  # the texts of the real turns, in turn_mask order (for a fine-tuned encoder)
        self.responses: list[str] = []
        for b, d in enumerate(dialogues):
            for i, t in enumerate(d.turns):
                turn_mask[b, i] = True
                response = response_override.get(t.key, t.response) if response_override else t.response
                self.requests.append(t.request)
                self.responses.append(response)
                if t.request and vectors:
                    text[b, i, 0] = vectors[t.request]
                if response and vectors:
                    text[b, i, 1] = vectors[response]
                cats[b, i] = [vocab.cat_id(f, v) for f, v in zip(CAT_FIELDS, t.cats, strict=True)]
                none = len(vocab.intents)
                logged[b, i] = [intent_id.get(t.cats[1], none), intent_id.get(t.cats[2], none)]
                nums[b, i] = t.nums
                n = len(t.words)
                words[b, i, :n] = [vocab.words.get(w, unk) for w in t.words]
                nlu[b, i, :n] = [tag_id.get(g, 0) for g in t.nlu_tags]
                if swapped is not None:
                    y["swap"][b, i] = swapped.get(t.key, 0)
                if targets is None:
                    continue
                intent = targets.intent.get(t.key)
                if intent in intent_id:
                    y["intent"][b, i] = intent_id[intent]
                for task in BINARY_TASKS:
                    v = getattr(targets, task).get(t.key)
                    if v is not None:
                        y[task][b, i] = int(v)
                gold = targets.slots.get(t.key)
                if gold is not None:
                    tags = bio_tags(list(t.words), gold)
                    # "located": a turn whose gold values are not all found in the recognised words teaches
                    # nothing about its words (its 'O' targets would say "no slot" where ASR garbled one)
                    if slot_targets == "all" or sum(g.startswith("B-") for g in tags) >= len(gold):
                        y_tags[b, i, :n] = [tag_id.get(g, 0) for g in tags]
        f = torch.from_numpy
        self.text, self.cats, self.nums, self.turn_mask = f(text), f(cats), f(nums), f(turn_mask)
        self.logged = f(logged)
        self.words, self.nlu, self.word_mask = f(words), f(nlu), f(words > 0)
        self.y = {k: f(v) for k, v in y.items()}
        self.y_tags = f(y_tags)


def build_network(config: LabelConfig, vocab: Vocab, text_dim: int, encoder=None):
    """The torch module; with encoder (an analysis.text_encoder.TextEncoder) its transformer is part of the
    network and texts are encoded in the forward pass (fine-tuning), otherwise batches carry frozen vectors.
    forward(batch) -> dict of logits: intent (B,T,K), goal_start / goal_success /
    defect / swap (B,T,2), tags (B,T,L,n_tags)."""
    import torch

    nn = torch.nn

    class LabelNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h, w = config.hidden, config.word_dim
            self.text_proj = nn.Sequential(nn.Linear(2 * text_dim, h), nn.Dropout(config.dropout))
            self.cat_emb = nn.Embedding(len(vocab.cats), h)
            self.num_mlp = nn.Sequential(nn.Linear(len(NUM_FIELDS), h), nn.GELU(), nn.Linear(h, h))
            self.pos_emb = nn.Embedding(64, h)
            layer = nn.TransformerEncoderLayer(h, config.heads, 2 * h, config.dropout, batch_first=True,
                                               norm_first=True)
            self.dialogue = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(h)
            self.heads = nn.ModuleDict({"intent": nn.Linear(h, len(vocab.intents)),
                                        **{k: nn.Linear(h, 2) for k in (*BINARY_TASKS, "swap")}})
            self.word_emb = nn.Embedding(len(vocab.words), w, padding_idx=0)
            self.nlu_emb = nn.Embedding(len(vocab.tags), w)
            self.ctx = nn.Linear(h, w)
            # two width-3 convolutions: each word sees two neighbours either side (fast on CPU, unlike a GRU)
            self.convs = nn.Sequential(nn.Conv1d(w, 2 * w, 3, padding=1), nn.GELU(), nn.Dropout(config.dropout),
                                       nn.Conv1d(2 * w, 2 * w, 3, padding=1), nn.GELU())
            self.tagger = nn.Linear(2 * w, len(vocab.tags))
            # Copy priors: the logged NLU output is usually right, so its intent (and the alt intent) and its
            # slot tags add a learned bonus to the same label's logit; the network learns when to overrule.
            self.copy_intent = nn.Parameter(torch.tensor([2.0, 0.5]))
            self.copy_tags = nn.Parameter(torch.tensor(6.0))
            self.encoder = None if encoder is None else encoder.model
            self.tokenizer, self.max_length = (None, 0) if encoder is None else (encoder.tokenizer, encoder.max_length)

        def encode(self, texts: list[str]):
            """Mean-pooled, unit-length sentence vectors through the (trainable) encoder; "" gives zeros."""
            out = torch.zeros(len(texts), text_dim)
            keep = [i for i, t in enumerate(texts) if t]
            if keep:
                enc = self.tokenizer([texts[i] for i in keep], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                hidden = self.encoder(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out = out.index_copy(0, torch.tensor(keep), torch.nn.functional.normalize(pooled, dim=1))
            return out

        def forward(self, batch: _Batch, *, tags: bool = True) -> dict:
            B, T = batch.turn_mask.shape
            text = batch.text
            if self.encoder is not None:
                n = len(batch.requests)
                vecs = self.encode(batch.requests + batch.responses)
                text = torch.zeros(B, T, 2, text_dim).index_put((batch.turn_mask,), torch.stack(
                    [vecs[:n], vecs[n:]], dim=1))
            x = self.text_proj(text.flatten(2)) + self.cat_emb(batch.cats).sum(2) + self.num_mlp(batch.nums)
            x = x + self.pos_emb(torch.arange(T).clamp(max=63))[None]
            pad = ~batch.turn_mask
            if config.use_context:
                z = self.dialogue(x, src_key_padding_mask=pad)
            else:  # every turn attends only to itself: the same network with the dialogue context removed
                z = self.dialogue(x, mask=~torch.eye(T, dtype=torch.bool))
            z = self.norm(z)
            out = {k: head(z) for k, head in self.heads.items()}
            k = len(vocab.intents)
            prior = torch.nn.functional.one_hot(batch.logged, k + 1)[..., :k].float()  # (B, T, 2, K)
            out["intent"] = out["intent"] + (prior * self.copy_intent[:, None]).sum(2)
            if not tags:
                return out
            # words of real turns only (padding turns would be most of the work)
            words, nlu_ids, mask = batch.words[batch.turn_mask], batch.nlu[batch.turn_mask], batch.word_mask[
                batch.turn_mask]
            tok = self.word_emb(words) + self.nlu_emb(nlu_ids) + self.ctx(z[batch.turn_mask])[:, None, :]
            seq = self.convs((tok * mask[..., None]).transpose(1, 2)).transpose(1, 2)
            nlu = torch.nn.functional.one_hot(nlu_ids, len(vocab.tags)).float()
            flat = self.tagger(seq) + self.copy_tags * nlu
            full = flat.new_zeros(B, T, words.shape[1], flat.shape[-1])
            full[batch.turn_mask] = flat
            out["tags"] = full
            return out

    return LabelNet()


# ---------------------------------------------------------------- the model

@dataclass
class Predictions:
    """Per turn, in the dialogues' order: keys, intent distribution over ``intents``, probabilities of the
    binary tasks (of True), predicted slots with a confidence (the least confident word tag)."""

    keys: list[tuple[str, int]]
    intents: list[str]
    intent_proba: np.ndarray
    binary: dict[str, np.ndarray]
    slots: list[list[dict]]
    slot_confidence: np.ndarray

    def intent(self) -> list[str]:
        return [self.intents[i] for i in self.intent_proba.argmax(axis=1)]


def data_fingerprint(dialogues: Sequence[Dialogue], targets: Targets) -> str:
    h = hashlib.sha256()
    for d in dialogues:
        for t in d.turns:
            h.update(json.dumps([t.key, t.request, t.response, t.cats, t.nums, targets.intent.get(t.key),
                                 targets.slots.get(t.key), targets.goal_start.get(t.key),
                                 targets.goal_success.get(t.key), targets.defect.get(t.key)]).encode())
    return h.hexdigest()[:16]


class LabelModel:
    CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"

    def __init__(self, config: LabelConfig | None = None):
        self.config = config or LabelConfig()
        self.vocab = Vocab()
        self.text_dim = 0
        self.fingerprint: str | None = None
        self.n_train = 0
        self.net = None
        self.history: list[dict] = []  # per epoch: stage, loss, seconds

    def _vectors(self, dialogues: Sequence[Dialogue], embed: Embed) -> dict[str, np.ndarray]:
        texts = sorted({s for d in dialogues for t in d.turns for s in (t.request, t.response) if s})
        vecs = np.asarray(embed(texts), dtype=np.float32) if texts else np.zeros((0, 1), np.float32)
        if texts:
            self.text_dim = self.text_dim or vecs.shape[1]
        return dict(zip(texts, vecs, strict=True))

    def _batches(self, n: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        order = rng.permutation(n) if rng is not None else np.arange(n)
        return [order[s:s + self.config.batch_size] for s in range(0, n, self.config.batch_size)]

    def fit(self, dialogues: Sequence[Dialogue], targets: Targets, *, embed: Embed,
            progress: Progress | None = None) -> LabelModel:
        """Pretrain (swapped responses, pretrain_epochs) then fine-tune every head on the targets.
        progress(stage, batches_done, total) with stage "pretraining" or "training"."""
        import time

        import torch

        cfg = self.config
        if not dialogues:
            raise ValueError("no training dialogues")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.vocab = _build_vocab(dialogues, targets, cfg.min_word_count)
        if not self.vocab.intents:
            raise ValueError("no intent labels among the training turns")
        encoder = None
        if cfg.finetune_encoder:
            from analysis.text_encoder import DIM, TextEncoder

            encoder, vectors, self.text_dim = TextEncoder.load(), {}, DIM
        else:
            vectors = self._vectors(dialogues, embed)
        self.text_dim = self.text_dim or 1
        self.fingerprint, self.n_train = data_fingerprint(dialogues, targets), sum(len(d.turns) for d in dialogues)
        self.net = build_network(cfg, self.vocab, self.text_dim, encoder)
        ce = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
        flat = [t for d in dialogues for t in d.turns]

        def run(stage: str, epochs: int, loss_of) -> None:
            enc = [p for n, p in self.net.named_parameters() if n.startswith("encoder.")]
            rest = [p for n, p in self.net.named_parameters() if not n.startswith("encoder.")]
            groups = [{"params": rest}] + ([{"params": enc, "lr": cfg.encoder_lr}] if enc else [])
            opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
            per_epoch = math.ceil(len(dialogues) / cfg.batch_size)
            total, step = epochs * per_epoch, 0
            sched = torch.optim.lr_scheduler.LambdaLR(opt, [lambda s: min(1.0, (s + 1) / per_epoch) * 0.5 * (
                1 + math.cos(math.pi * min(s, total) / total))] * len(groups))
            self.net.train()
            for epoch in range(epochs):
                start, losses = time.perf_counter(), []
                extra = loss_of.prepare() if hasattr(loss_of, "prepare") else {}
                for idx in self._batches(len(dialogues), rng):
                    batch = _Batch(torch, [dialogues[i] for i in idx], self.vocab, vectors, self.text_dim,
                                   targets=targets, slot_targets=cfg.slot_targets, **extra)
                    loss = loss_of(self.net(batch, tags=stage == "training"), batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    losses.append(loss.item())
                    step += 1
                    if progress:
                        progress(stage, step, total)
                self.history.append({"stage": stage, "epoch": epoch + 1, "loss": float(np.mean(losses)),
                                     "seconds": time.perf_counter() - start})

        class SwapLoss:
            def prepare(self_inner) -> dict:
                source, swapped = swap_plan(dialogues, rate=cfg.swap_rate, rng=rng)
                pairs = list(zip(flat, source, swapped, strict=True))
                return {"response_override": {t.key: flat[j].response for t, j, s in pairs if s},
                        "swapped": {t.key: int(s) for t, _, s in pairs}}

            def __call__(self_inner, out, batch):
                return ce(out["swap"].flatten(0, 1), batch.y["swap"].flatten())

        def multitask(out, batch):
            loss = ce(out["intent"].flatten(0, 1), batch.y["intent"].flatten())
            for task in BINARY_TASKS:
                loss = loss + ce(out[task].flatten(0, 1), batch.y[task].flatten())
            tags = out["tags"]
            return loss + ce(tags.reshape(-1, tags.shape[-1]), batch.y_tags.flatten())

        if cfg.pretrain_epochs:
            run("pretraining", cfg.pretrain_epochs, SwapLoss())
        run("training", cfg.epochs, multitask)
        self.net.eval()
        return self

    def predict(self, dialogues: Sequence[Dialogue], *, embed: Embed, batch_size: int = 256,
                progress: Progress | None = None) -> Predictions:
        import torch

        if self.net is None:
            raise RuntimeError("the model is not trained: call fit or from_pretrained first")
        keys, intent_p, slots, slot_conf = [], [], [], []
        binary: dict[str, list] = {k: [] for k in BINARY_TASKS}
        self.net.eval()
        total = len(dialogues)
        with torch.inference_mode():
            for s in range(0, total, batch_size):
                chunk = dialogues[s:s + batch_size]
                vectors = {} if self.config.finetune_encoder else self._vectors(chunk, embed)
                batch = _Batch(torch, chunk, self.vocab, vectors, self.text_dim)
                out = self.net(batch)
                probs = {k: torch.softmax(v.double(), dim=-1).numpy() for k, v in out.items()}
                for b, d in enumerate(chunk):
                    for i, t in enumerate(d.turns):
                        keys.append(t.key)
                        intent_p.append(probs["intent"][b, i])
                        for k in BINARY_TASKS:
                            binary[k].append(probs[k][b, i, 1])
                        n = len(t.words)
                        tag_p = probs["tags"][b, i, :n]
                        tags = [self.vocab.tags[j] for j in tag_p.argmax(axis=1)]
                        slots.append(spans_from_bio(list(t.words), tags))
                        slot_conf.append(float(tag_p.max(axis=1).min()) if n else 1.0)
                if progress:
                    progress("scoring", min(s + batch_size, total), total)
        k = len(self.vocab.intents)
        return Predictions(keys, list(self.vocab.intents),
                           np.array(intent_p).reshape(-1, k) if intent_p else np.zeros((0, k)),
                           {t: np.array(v, dtype=np.float64) for t, v in binary.items()}, slots,
                           np.array(slot_conf, dtype=np.float64))

    # -- checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        import torch

        if self.net is None:
            raise RuntimeError("nothing to save: the model is not trained")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "config": asdict(self.config), "vocab": asdict(self.vocab),
                "text_dim": self.text_dim, "data_fingerprint": self.fingerprint, "n_train": self.n_train,
                "history": self.history}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        torch.save(self.net.state_dict(), d / self.WEIGHTS_FILE)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LabelModel:
        import torch

        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        known = {f.name for f in fields(LabelConfig)}
        self = cls(LabelConfig(**{k: v for k, v in meta["config"].items() if k in known}))
        self.vocab = Vocab(**meta["vocab"])
        self.text_dim, self.fingerprint, self.n_train = meta["text_dim"], meta["data_fingerprint"], meta["n_train"]
        self.history = meta.get("history", [])
        encoder = None
        if self.config.finetune_encoder:  # the architecture and tokenizer; the weights come from the checkpoint
            from analysis.text_encoder import TextEncoder

            encoder = TextEncoder.load()
        self.net = build_network(self.config, self.vocab, self.text_dim, encoder)
        self.net.load_state_dict(torch.load(d / cls.WEIGHTS_FILE, weights_only=True))
        self.net.eval()
        return self
