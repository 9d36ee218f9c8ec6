"""The rescoring LM (issue 19): a word-level LSTM language model with two NLU heads, intent (over the sentence's
averaged states) and BIO slot tags (per word), trained first on the LM objective alone and then fine-tuned on the
NLU-labelled sentences with task weights from a schedule (weighting.py). At rescoring time only its LM score is
used: ``log_prob`` gives each sentence's natural-log probability, end of sentence included.

Scoring is built for throughput (issue 19 item 5): the sentences of a call are put in one prefix trie (ten
hypotheses of one utterance share most of their prefixes, and short requests repeat across utterances), the LSTM
runs once per trie node, level by level for all nodes of a depth at once, with the first layer's input transform
looked up from a precomputed per-word table, and the adaptive softmax computes only the clusters its targets need.
``RescoringModel`` fits, scores, and saves / loads checkpoints with its config, vocabulary, word counts, version,
training-data fingerprint and history.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from analysis.coordination.model import _no_onednn  # oneDNN's LSTM builds a kernel per batch shape
from analysis.rescoring.config import TASKS, RescoringConfig
from analysis.rescoring.text import NLUExample, words
from analysis.rescoring.weighting import RandomizedWeightedMajority, make_schedule

VERSION = "rescoring-lm/1"
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
IGNORE = -100
TAIL_DIV = 4.0  # the adaptive softmax's tail cluster reads a hidden // 4 projection (Grave et al.'s div_value)
Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------- data

def data_fingerprint(sentences: Sequence[Sequence[str]], nlu: Sequence[NLUExample]) -> str:
    """A short hash of training token sequences and NLU examples (order matters: it is the training order)."""
    h = hashlib.sha256()
    for s in sentences:
        h.update(json.dumps(list(s)).encode())
    h.update(b"|nlu|")
    for ex in nlu:
        h.update(json.dumps([list(ex.tokens), ex.intent, None if ex.tags is None else list(ex.tags)]).encode())
    return h.hexdigest()[:16]


def _tokens(s: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(words(s)) if isinstance(s, str) else tuple(s)


def split_dev(sentences: Sequence[str | Sequence[str]], nlu: Sequence[NLUExample], *, share: float, seed: int
              ) -> tuple[list[tuple[str, ...]], list[NLUExample], list[tuple[str, ...]], list[NLUExample]]:
    """The dev set fit() carves when none is given: a seeded share of the distinct sentences (by tokens; drawn from
    the NLU examples' sentences when there are any, so the dev set has NLU labels, else from all sentences),
    removed with every copy from both the sentences and the NLU examples. Returns (train sentences, train NLU,
    dev sentences, dev NLU), sentences as token tuples."""
    sents = [_tokens(s) for s in sentences]
    pool = sorted({ex.tokens for ex in nlu} or set(sents))
    n_dev = int(round(share * len(pool))) if share > 0 else 0
    if n_dev == 0 or n_dev >= len(pool):
        return sents, list(nlu), [], []
    rng = np.random.default_rng(seed)
    held = {pool[i] for i in rng.choice(len(pool), size=n_dev, replace=False)}
    return ([s for s in sents if s not in held], [ex for ex in nlu if ex.tokens not in held],
            [s for s in sents if s in held], [ex for ex in nlu if ex.tokens in held])


# ---------------------------------------------------------------------------------------------- the network

def build_network(config: RescoringConfig, n_words: int, n_intents: int = 0, n_tags: int = 0):
    import torch
    from torch import nn

    class RescoringNet(nn.Module):
        """Embeddings -> LSTM -> next-word adaptive softmax; intent and slot heads (absent until fine-tuning)."""

        def __init__(self):
            super().__init__()
            h = config.hidden
            self.embed = nn.Embedding(n_words, config.embed_dim, padding_idx=PAD)
            self.drop = nn.Dropout(config.dropout)
            self.lstm = nn.LSTM(config.embed_dim, h, num_layers=config.layers, batch_first=True,
                                dropout=config.dropout if config.layers > 1 else 0.0)
            if n_words > config.cutoff + 1:
                self.softmax = nn.AdaptiveLogSoftmaxWithLoss(h, n_words, cutoffs=[config.cutoff],
                                                             div_value=TAIL_DIV)
            else:  # a vocabulary this small needs no clusters
                self.softmax = nn.Linear(h, n_words)
            self.intent = self.slots = None
            self.set_heads(n_intents, n_tags)

        def set_heads(self, n_int: int, n_tag: int) -> None:
            self.intent = nn.Linear(config.hidden, n_int) if n_int else None
            self.slots = nn.Linear(config.hidden, n_tag) if n_tag else None

        def encode(self, ids):
            """ids (N, T): <s> then the words, padded at the end -> states (N, T, hidden); state t has read ids[:t+1]
            (padding at the end cannot reach an earlier state: the LSTM reads left to right)."""
            with _no_onednn():
                states, _ = self.lstm(self.drop(self.embed(ids)))
            return self.drop(states)

        def target_log_prob(self, states, targets):
            """states (M, hidden), targets (M,) -> log p(target | state), (M,)."""
            if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
                return self.softmax(states, targets).output
            return torch.log_softmax(self.softmax(states), dim=-1).gather(1, targets[:, None])[:, 0]

    return RescoringNet()


class _Batch:
    """Padded tensors for token-id sequences: ids (<s> w1..wn, PAD), targets (w1..wn </s>, IGNORE), and the NLU
    targets when examples are given: intent per row, a tag per word at the word's own state."""

    def __init__(self, torch, seqs: Sequence[Sequence[int]], *, intents: Sequence[int] | None = None,
                 tags: Sequence[Sequence[int] | None] | None = None):
        n, t = len(seqs), max(len(s) for s in seqs) + 1
        ids = np.full((n, t), PAD, np.int64)
        targets = np.full((n, t), IGNORE, np.int64)
        words_mask = np.zeros((n, t), bool)
        for i, s in enumerate(seqs):
            ids[i, 0] = BOS
            ids[i, 1:len(s) + 1] = s
            targets[i, :len(s)] = s
            targets[i, len(s)] = EOS
            words_mask[i, 1:len(s) + 1] = True
        self.ids, self.targets = torch.from_numpy(ids), torch.from_numpy(targets)
        self.words_mask = torch.from_numpy(words_mask)
        self.intents = self.tags = None
        if intents is not None:
            self.intents = torch.tensor(list(intents), dtype=torch.long)
        if tags is not None:
            tag_arr = np.full((n, t), IGNORE, np.int64)
            for i, row in enumerate(tags):
                if row is not None:
                    tag_arr[i, 1:len(row) + 1] = row
            self.tags = torch.from_numpy(tag_arr)


# ---------------------------------------------------------------------------------------------- the model

class RescoringModel:
    """The second-pass LM with intent and slot heads (see the module doc and docs/rescoring.md).

    vocab: the word list (ids are positions: the specials, then training words by descending count);
    word_counts: counts of every word of the LM's training text (``count(word)``: the rare-word set is built
    from it); intents, tags: the NLU heads' label lists (empty until multitask fine-tuning); fingerprint: a hash of
    the pretraining text and the fine-tuning examples; history: one record per epoch (pretraining) or evaluation
    interval (fine-tuning) with train and dev losses per task and the task weights."""

    CONFIG_FILE, WEIGHTS_FILE, COUNTS_FILE = "config.json", "weights.pt", "word_counts.json"

    def __init__(self, config: RescoringConfig | None = None):
        self.config = config or RescoringConfig()
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}
        self.word_counts: Counter[str] = Counter()
        self.intents: list[str] = []
        self.tags: list[str] = []
        self.fingerprints: dict[str, str | None] = {"pretrain": None, "finetune": None}
        self.n_sentences = self.n_nlu = 0
        self.history: list[dict] = []
        self.net = None
        self._tables = None

    # -- bookkeeping
    @property
    def unk_cost(self) -> float:
        """What each <unk> word adds to a sentence's log-probability at scoring time (config.unk_penalty; by
        default -ln K, K the distinct training words the vocabulary maps to <unk>)."""
        if self.config.unk_penalty is not None:
            return float(self.config.unk_penalty)
        k = sum(1 for w in self.word_counts if w not in self.index)
        return -math.log(max(k, 1))

    @property
    def fingerprint(self) -> str | None:
        """One hash of the training data of both stages (None before any training)."""
        if not any(self.fingerprints.values()):
            return None
        return hashlib.sha256(json.dumps(self.fingerprints, sort_keys=True).encode()).hexdigest()[:16]

    def count(self, word: str) -> int:
        """How often word (lower-cased) occurs in the LM's training text."""
        return self.word_counts.get(word.lower(), 0)

    def copy(self) -> RescoringModel:
        """An independent deep copy (network, vocabulary, history): pretrain once, fine-tune several ways."""
        tables, self._tables = self._tables, None  # the scoring cache is rebuilt on demand, not copied
        try:
            return copy.deepcopy(self)
        finally:
            self._tables = tables

    def ids(self, tokens: Sequence[str]) -> list[int]:
        get = self.index.get
        return [get(w, UNK) for w in tokens]

    def _build_vocab(self, sentences: Sequence[Sequence[str]]) -> None:
        import torch

        cfg = self.config
        self.word_counts = Counter(w for s in sentences for w in s)
        kept = [w for w, c in sorted(self.word_counts.items(), key=lambda wc: (-wc[1], wc[0]))
                if c >= cfg.min_count and w not in SPECIALS][:cfg.max_vocab]
        self.vocab = list(SPECIALS) + kept
        self.index = {w: i for i, w in enumerate(self.vocab)}
        torch.manual_seed(cfg.seed)
        self.net = build_network(cfg, len(self.vocab))

    # -- training
    def fit(self, sentences: Sequence[str | Sequence[str]], nlu: Sequence[NLUExample], *,
            dev_sentences: Sequence[str | Sequence[str]] | None = None, dev_nlu: Sequence[NLUExample] | None = None,
            progress: Progress | None = None) -> RescoringModel:
        """Pretrain on sentences (strings are tokenised with text.words), then fine-tune on the NLU examples (see
        RescoringConfig). Without a dev set, a seeded config.dev_share of the distinct sentences is carved out of
        the training data (``split_dev``; the same carving for every weighting, so the schemes train on the same
        text). progress(stage, step, total): stages "pretraining" and "fine-tuning"."""
        if dev_sentences is None and dev_nlu is None:
            sents, train_nlu, dev_s, dev_n = split_dev(sentences, nlu, share=self.config.dev_share,
                                                       seed=self.config.seed)
        else:
            sents, train_nlu = [_tokens(s) for s in sentences], list(nlu)
            dev_s, dev_n = [_tokens(s) for s in dev_sentences or ()], list(dev_nlu or ())
        self.pretrain(sents, dev_sentences=dev_s, progress=progress)
        self.finetune(train_nlu, dev_nlu=dev_n, dev_sentences=dev_s, progress=progress)
        return self

    def pretrain(self, sentences: Sequence[str | Sequence[str]], *,
                 dev_sentences: Sequence[str | Sequence[str]] | None = None,
                 progress: Progress | None = None) -> RescoringModel:
        """LM-only training for config.pretrain_epochs over the sentences; builds the vocabulary and the word counts
        from them (a new network). Dev losses in history when dev_sentences are given."""
        sents = [s for s in (_tokens(x) for x in sentences)]
        if not any(sents):
            raise ValueError("no training sentences: the rescoring LM needs sentences with words")
        self._build_vocab(sents)
        self.fingerprints = {"pretrain": data_fingerprint(sents, []), "finetune": None}
        self.n_sentences, self.history = len(sents), []
        rows = [(self.ids(s), None, None) for s in sents]
        dev = [(self.ids(_tokens(s)), None, None) for s in dev_sentences or ()]
        self._train("pretrain", rows, dev, epochs=self.config.pretrain_epochs, lr=self.config.lr,
                    schedule=make_schedule(RescoringConfig(weighting="lm_only")), progress=progress)
        return self

    def finetune(self, nlu: Sequence[NLUExample], *, dev_nlu: Sequence[NLUExample] | None = None,
                 dev_sentences: Sequence[str | Sequence[str]] | None = None,
                 progress: Progress | None = None) -> RescoringModel:
        """Fine-tuning for config.finetune_epochs on the NLU examples: the LM loss alone on their words when
        config.weighting is "lm_only", else the three task losses weighted by the schedule. The dev set (dev_nlu's
        words for the LM loss, else dev_sentences) gives the dev losses in history and RWM's mistake signal; RWM
        without any dev set is refused. Call after pretrain (or fit)."""
        cfg = self.config
        if self.net is None:
            raise RuntimeError("fine-tuning needs a pretrained LM: call pretrain (or fit) first")
        if cfg.finetune_epochs == 0:
            return self
        multitask = cfg.weighting != "lm_only"
        if not nlu:
            raise ValueError("no NLU examples to fine-tune on (turns with a reference transcript and a gold intent); "
                             "with finetune_epochs 0 the LM trains on the sentences alone")
        if multitask:
            self.intents = sorted({ex.intent for ex in nlu if ex.intent})
            self.tags = sorted({t for ex in nlu if ex.tags for t in ex.tags} | {"O"})
            import torch

            torch.manual_seed(cfg.seed + 1)
            self.net.set_heads(len(self.intents), len(self.tags))
        else:
            self.intents, self.tags = [], []
            self.net.set_heads(0, 0)
        self.fingerprints = {**self.fingerprints, "finetune": data_fingerprint([], nlu)}
        self.n_nlu = len(nlu)
        intent_ix = {t: i for i, t in enumerate(self.intents)}
        tag_ix = {t: i for i, t in enumerate(self.tags)}
        rows = [self._row(ex, intent_ix, tag_ix) for ex in nlu]
        dev = [self._row(ex, intent_ix, tag_ix) for ex in dev_nlu or ()]
        if not dev:
            dev = [(self.ids(_tokens(s)), None, None) for s in dev_sentences or ()]
        if cfg.weighting == "rwm" and not dev:
            raise ValueError("RWM weighting needs a dev set for its mistake signal (dev_nlu or dev_sentences)")
        steps = math.ceil(len(rows) / cfg.batch_size)
        self._train("finetune", rows, dev, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr,
                    schedule=make_schedule(cfg, steps_per_epoch=steps), progress=progress)
        return self

    def _row(self, ex: NLUExample, intent_ix: dict[str, int], tag_ix: dict[str, int]
             ) -> tuple[list[int], int | None, list[int] | None]:
        """(word ids, intent id, tag ids) of an example; labels outside the heads' lists are IGNORE, and without
        heads (LM-only fine-tuning) both are None."""
        intent = tag_ids = None
        if intent_ix:
            intent = intent_ix.get(ex.intent, IGNORE) if ex.intent else IGNORE
            if ex.tags is not None:
                tag_ids = [tag_ix.get(t, IGNORE) for t in ex.tags]
        return self.ids(ex.tokens), intent, tag_ids

    def _batches(self, rows: Sequence, rng: np.random.Generator) -> Iterator[list]:
        """Shuffled batches of similar lengths (sorted within windows of 50 batches, then the batches shuffled):
        less padding than random batches, still a different order every epoch."""
        bs = self.config.batch_size
        order = rng.permutation(len(rows))
        window = 50 * bs
        batches = []
        for s in range(0, len(order), window):
            part = sorted(order[s:s + window], key=lambda i: len(rows[i][0]))
            batches += [part[k:k + bs] for k in range(0, len(part), bs)]
        for b in rng.permutation(len(batches)):
            yield [rows[i] for i in batches[b]]

    def _losses(self, rows: Sequence, *, train: bool, tasks: Sequence[str]) -> dict:
        """Mean loss per task over one batch of rows (lm: per target word, end of sentence included; intent: per
        sentence; slots: per tagged word), as tensors; tasks without a head or without targets are left out."""
        import torch
        from torch import nn

        net = self.net
        seqs = [r[0] for r in rows]
        nlu = net.intent is not None and any(t in tasks for t in ("intent", "slots"))
        batch = _Batch(torch, seqs, intents=[IGNORE if r[1] is None else r[1] for r in rows] if nlu else None,
                       tags=[r[2] for r in rows] if nlu else None)
        net.train(train)
        states = net.encode(batch.ids)
        out: dict = {}
        if "lm" in tasks:
            keep = batch.targets != IGNORE
            out["lm"] = -net.target_log_prob(states[keep], batch.targets[keep]).mean()
        if nlu and "intent" in tasks and bool((batch.intents != IGNORE).any()):
            m = batch.words_mask.unsqueeze(2).float()
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
            out["intent"] = nn.functional.cross_entropy(net.intent(pooled), batch.intents, ignore_index=IGNORE)
        if nlu and net.slots is not None and "slots" in tasks and bool((batch.tags != IGNORE).any()):
            keep = batch.tags != IGNORE
            out["slots"] = nn.functional.cross_entropy(net.slots(states[keep]), batch.tags[keep])
        return out

    def dev_losses(self, rows: Sequence) -> dict[str, float]:
        """Mean dev loss per task over rows (batches of 512; weighted by each batch's targets)."""
        import torch

        if not rows:
            return {}
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        with torch.inference_mode():
            for s in range(0, len(rows), 512):
                part = rows[s:s + 512]
                n = {"lm": sum(len(r[0]) + 1 for r in part),
                     "intent": sum(r[1] is not None and r[1] != IGNORE for r in part),
                     "slots": sum(sum(t != IGNORE for t in r[2]) for r in part if r[2] is not None)}
                for task, loss in self._losses(part, train=False, tasks=TASKS).items():
                    sums[task] = sums.get(task, 0.0) + float(loss) * n[task]
                    counts[task] = counts.get(task, 0.0) + n[task]
        return {t: sums[t] / counts[t] for t in sums if counts[t] > 0}

    def _train(self, stage: str, rows: list, dev: list, *, epochs: int, lr: float, schedule,
               progress: Progress | None) -> None:
        import torch

        cfg = self.config
        self._tables = None
        if epochs == 0 or not rows:
            return
        rng = np.random.default_rng(cfg.seed + (0 if stage == "pretrain" else 1))
        torch.manual_seed(cfg.seed + (2 if stage == "pretrain" else 3))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        label = "pretraining" if stage == "pretrain" else "fine-tuning"
        per_epoch = math.ceil(len(rows) / cfg.batch_size)
        total, step = epochs * per_epoch, 0
        interval = cfg.rwm_interval if stage == "finetune" and cfg.rwm_interval > 0 else per_epoch
        rwm = isinstance(schedule, RandomizedWeightedMajority)
        with _threads(1):
            if stage == "finetune":
                dev0 = self.dev_losses(dev)
                if rwm:
                    schedule.start(dev0)
                self.history.append({"stage": stage, "epoch": 0, "step": 0, "dev": dev0,
                                     "weights": schedule.weights(), "mistakes": {}})
            start, sums, counts, used, last = time.perf_counter(), Counter(), Counter(), Counter(), 0
            for epoch in range(1, epochs + 1):
                for chunk in self._batches(rows, rng):
                    weights = schedule.step_weights()
                    tasks = [t for t, w in weights.items() if w > 0]
                    losses = self._losses(chunk, train=True, tasks=tasks)
                    if losses:
                        loss = sum(weights[t] * v for t, v in losses.items())
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                        opt.step()
                    schedule.step()
                    step += 1
                    for t, v in losses.items():
                        sums[t] += float(v.detach())
                        counts[t] += 1
                    for t, w in weights.items():
                        used[t] += w
                    if progress:
                        progress(label, step, total)
                    if step % interval == 0 or step == total:
                        dev_now = self.dev_losses(dev)
                        mistakes = schedule.end_interval(dev_now) if stage == "finetune" else {}
                        n_steps, last = step - last, step
                        self.history.append({
                            "stage": stage, "epoch": epoch, "step": step,
                            "train": {t: sums[t] / counts[t] for t in sums}, "dev": dev_now,
                            "weights_used": {t: used[t] / max(n_steps, 1) for t in used},
                            "weights": schedule.weights(), "mistakes": mistakes,
                            "seconds": round(time.perf_counter() - start, 3)})
                        start, sums, counts, used = time.perf_counter(), Counter(), Counter(), Counter()
        self.net.eval()

    # -- scoring
    def _scoring_tables(self):
        """The LSTM's weights for scoring, per layer (input transform, recurrent transform transposed, bias), with
        the first layer's input transform precomputed for every word (embedding @ W_ih + both biases): scoring
        looks it up instead of multiplying."""
        import torch

        if self._tables is None:
            lstm = self.net.lstm
            layers = []
            with torch.inference_mode():
                for k in range(lstm.num_layers):
                    w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
                    bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                    if k == 0:
                        table = torch.addmm(bias, self.net.embed.weight, w_ih.t()).contiguous()
                        layers.append((table, w_hh.t().contiguous(), None))
                    else:
                        layers.append((w_ih.t().contiguous(), w_hh.t().contiguous(), bias.contiguous()))
            self._tables = layers
        return self._tables

    def log_prob(self, sentences: Sequence[str] | Sequence[Sequence[str]], *, chunk: int = 20_000,
                 threads: int | None = None) -> np.ndarray:
        """The LM's natural-log probability of each sentence, end of sentence included: sum over its words and
        </s> of log p(word | <s> and the words before), a word outside the vocabulary scored as <unk> plus unk_cost
        (<unk>'s probability shared among the words it stands for). Strings are
        tokenised with text.words; token sequences are taken as they are. Shape (n,), float64; higher is more
        likely. Identical sentences are scored once; threads: torch threads (default min(2, cores))."""
        import torch

        if self.net is None:
            raise RuntimeError("the model is not trained: call fit or from_pretrained first")
        seqs = [tuple(self.ids(_tokens(s))) for s in sentences]
        where: dict[tuple[int, ...], int] = {}
        slot = np.fromiter((where.setdefault(s, len(where)) for s in seqs), dtype=np.int64, count=len(seqs))
        unique = list(where)
        scores = np.empty(len(unique), np.float64)
        self.net.eval()
        with torch.inference_mode(), _threads(threads or min(2, os.cpu_count() or 1)):
            tables = self._scoring_tables()
            for s in range(0, len(unique), chunk):
                scores[s:s + chunk] = self._score_trie(unique[s:s + chunk], tables)
        unk = self.unk_cost
        if unk:
            scores += unk * np.fromiter((s.count(UNK) for s in unique), dtype=np.float64, count=len(unique))
        return scores[slot]

    def _score_trie(self, seqs: Sequence[tuple[int, ...]], tables) -> np.ndarray:
        import torch

        parent, word, depth = [0], [BOS], [0]
        children: dict[int, int] = {}
        ends = []
        width = len(self.vocab)
        for s in seqs:  # the prefix trie: node 0 is <s>; a node's key is parent * |V| + word
            node = 0
            for w in s:
                key = node * width + w
                nxt = children.get(key)
                if nxt is None:
                    nxt = children[key] = len(parent)
                    parent.append(node)
                    word.append(w)
                    depth.append(depth[node] + 1)
                node = nxt
            ends.append(node)
        par, wrd, dep = np.asarray(parent), np.asarray(word), np.asarray(depth)
        order = np.argsort(dep, kind="stable")
        bounds = np.searchsorted(dep[order], np.arange(dep.max() + 2))
        n, hid = len(par), self.config.hidden
        h = [torch.zeros(n, hid) for _ in tables]
        c = [torch.zeros(n, hid) for _ in tables]
        wrd_t, par_t = torch.from_numpy(wrd), torch.from_numpy(par)
        for d in range(dep.max() + 1):  # all nodes of one depth at once (the root alone at depth 0)
            idx = torch.from_numpy(order[bounds[d]:bounds[d + 1]])
            if d == 0:
                p = None
            else:
                p = par_t[idx]
            x = None
            for k, (w_in, w_hh, bias) in enumerate(tables):
                gates = w_in[wrd_t[idx]] if k == 0 else torch.addmm(bias, x, w_in)
                if p is not None:
                    gates = gates.addmm(h[k][p], w_hh)
                    c_prev = c[k][p]
                else:
                    c_prev = torch.zeros(len(idx), hid)
                i, f, g, o = gates.chunk(4, dim=1)
                c_new = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c_new)
                h[k][idx], c[k][idx] = x, c_new
        top = h[-1]
        ends_a = np.asarray(ends, dtype=np.int64)
        rows = torch.from_numpy(np.concatenate([par[1:], ends_a]))
        targets = torch.from_numpy(np.concatenate([wrd[1:], np.full(len(ends_a), EOS)]))
        lp = self.net.target_log_prob(top[rows], targets).double().numpy()
        node_lp = np.zeros(n)
        node_lp[1:] = lp[:n - 1]
        cum = np.zeros(n)
        for d in range(1, dep.max() + 1):  # a node's prefix log-probability: its parent's plus its own word's
            idx = order[bounds[d]:bounds[d + 1]]
            cum[idx] = cum[par[idx]] + node_lp[idx]
        return cum[ends_a] + lp[n - 1:]

    def log_prob_reference(self, sentences: Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
        """log_prob computed the plain way (one padded LSTM pass per sentence batch, no trie): for tests."""
        import torch

        seqs = [self.ids(_tokens(s)) for s in sentences]
        out = np.zeros(len(seqs))
        self.net.eval()
        with torch.inference_mode():
            for s in range(0, len(seqs), 256):
                part = seqs[s:s + 256]
                batch = _Batch(torch, part)
                states = self.net.encode(batch.ids)
                keep = batch.targets != IGNORE
                lp = torch.zeros(batch.targets.shape, dtype=torch.float32)
                lp[keep] = self.net.target_log_prob(states[keep], batch.targets[keep])
                out[s:s + len(part)] = lp.double().sum(1).numpy()
        return out + self.unk_cost * np.array([s.count(UNK) for s in seqs], dtype=np.float64)

    # -- NLU heads (for inspection and tests; rescoring uses only log_prob)
    def predict_intent(self, sentences: Sequence[str] | Sequence[Sequence[str]]) -> list[str | None]:
        """The intent head's choice per sentence (None for every sentence when the model has no intent head)."""
        import torch

        if self.net is None or self.net.intent is None:
            return [None] * len(sentences)
        seqs = [self.ids(_tokens(s)) for s in sentences]
        out: list[str | None] = []
        self.net.eval()
        with torch.inference_mode():
            for s in range(0, len(seqs), 512):
                batch = _Batch(torch, seqs[s:s + 512])
                states = self.net.encode(batch.ids)
                m = batch.words_mask.unsqueeze(2).float()
                pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
                out += [self.intents[i] for i in self.net.intent(pooled).argmax(1).tolist()]
        return out

    # -- checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        import torch

        if self.net is None:
            raise RuntimeError("nothing to save: the model is not trained")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "config": self.config.to_dict(), "vocab": self.vocab, "intents": self.intents,
                "tags": self.tags, "fingerprints": self.fingerprints, "data_fingerprint": self.fingerprint,
                "n_sentences": self.n_sentences, "n_nlu": self.n_nlu, "history": self.history}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        (d / self.COUNTS_FILE).write_text(json.dumps(dict(self.word_counts.most_common())) + "\n")
        torch.save(self.net.state_dict(), d / self.WEIGHTS_FILE)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> RescoringModel:
        import torch

        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        self = cls(RescoringConfig.from_dict(meta["config"]))
        self.vocab = list(meta["vocab"])
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.intents, self.tags = list(meta["intents"]), list(meta["tags"])
        self.fingerprints, self.history = meta["fingerprints"], meta["history"]
        self.n_sentences, self.n_nlu = meta["n_sentences"], meta["n_nlu"]
        self.word_counts = Counter(json.loads((d / cls.COUNTS_FILE).read_text()))
        self.net = build_network(self.config, len(self.vocab), len(self.intents), len(self.tags))
        self.net.load_state_dict(torch.load(d / cls.WEIGHTS_FILE, weights_only=True))
        self.net.eval()
        return self


@contextmanager
def _threads(n: int):
    """Torch threads for a block, restored after. Training runs on one thread (small batches: a second thread
    mostly waits; see analysis/coordination/model.py for the same finding); scoring on two (its matrices have
    thousands of rows)."""
    import torch

    was = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(was)


