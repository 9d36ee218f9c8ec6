"""The rescoring LM's documented configuration: the network, the two training stages and the task weighting."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

TASKS = ("lm", "intent", "slots")
WEIGHTINGS = ("lm_only", "fixed", "ramp", "rwm")
RWM_MODES = ("expected", "sample")


@dataclass
class RescoringConfig:
    """Hyper-parameters of the second-pass LM (docs/rescoring.md). Every default was set without a search and
    without looking at SLURP's evaluation split; the sizes were set for scoring speed (issue 19 item 5: 2,000
    ten-best lists per second on 2 cores) and for the ~4,400 training sentences SLURP has outside that split.

    Network: embed_dim-wide word embeddings -> a layers-deep LSTM of hidden units -> three heads: the next word
    (an adaptive softmax whose head holds the `cutoff` most frequent words and the rest in one tail cluster whose
    input is hidden // 4 wide; a plain softmax when the vocabulary is not larger than the cutoff), the intent (a
    linear layer over the LSTM states averaged over the sentence's words) and a BIO slot tag per word (a linear
    layer over each word's state). dropout: on the embeddings and on the LSTM's output, in training only.
    Vocabulary: training words seen at least min_count times, the max_vocab most frequent of them; other words
    are <unk>. unk_penalty: added (natural log) to a sentence's log-probability for each of its <unk> words at
    scoring time, so that <unk>'s probability is spread over the words it stands for instead of given whole to
    each of them; None: -ln K, K the number of distinct training words mapped to <unk> (at least 1).

    Training: pretrain_epochs of LM-only training over every training sentence (Adam at lr), then
    finetune_epochs over the NLU examples (Adam at finetune_lr, a fresh optimiser): LM-only for weighting
    "lm_only" (the LM-only rescorer: the same text, the same steps, only the loss differs), otherwise the
    weighted sum of the three task losses with the weights of the schedule (weighting.py):

    * "fixed": task_weights (lm, intent, slots) throughout;
    * "ramp": lm's weight fixed, the NLU weights ramped linearly from 0 to their task_weights over the first
      ramp_epochs of fine-tuning (in optimiser steps);
    * "rwm": randomized weighted majority over the three tasks (weights start equal, normalised to sum 1); at
      each evaluation interval (rwm_interval steps; 0: the end of every epoch) a task whose dev loss did not
      improve on its value at the previous interval made a mistake and its weight is multiplied by 1 - rwm_eta.
      rwm_mode "expected" trains on the expected loss of the randomized learner (sum of weight x loss);
      "sample" draws one task per step with probability equal to its weight and trains on its loss alone.

    dev_share: the seeded share of the training sentences (whole distinct sentences) fit() holds out as the dev
    set when none is given: it gives the RWM mistake signal and the dev losses in history.
    seed: initialisation, dev carving, batch order and RWM draws.
    """

    embed_dim: int = 64
    hidden: int = 128  # 1 layer of 128 rescores ~2x the 2,000 lists/s target on 2 cores (docs/rescoring.md)
    layers: int = 1
    dropout: float = 0.3  # ~30k training words: a small LM overfits within a few epochs without it
    min_count: int = 2  # words seen once in training are <unk>: the LM learns what an unknown word costs
    max_vocab: int = 20_000
    unk_penalty: float | None = None
    cutoff: int = 500  # adaptive softmax head: the 500 most frequent words are 84% of SLURP's training tokens
    pretrain_epochs: int = 10  # the dev LM loss levels off after 10-12 epochs on SLURP's training text
    finetune_epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-3
    finetune_lr: float = 3e-3  # fresh NLU heads: at 1e-3 the intent head was still far from trained after 4 epochs
    weighting: str = "rwm"
    task_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)  # fixed and ramp: (lm, intent, slots)
    ramp_epochs: float = 2.0
    rwm_eta: float = 0.2  # few intervals (one per epoch): a smaller rate would barely move the weights
    rwm_interval: int = 0
    rwm_mode: str = "expected"
    dev_share: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        self.task_weights = tuple(float(w) for w in self.task_weights)  # type: ignore[assignment]
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {self.weighting!r}")
        if self.rwm_mode not in RWM_MODES:
            raise ValueError(f"rwm_mode must be one of {', '.join(RWM_MODES)}; got {self.rwm_mode!r}")
        if len(self.task_weights) != len(TASKS) or any(w < 0 for w in self.task_weights):
            raise ValueError("task_weights: three non-negative weights (lm, intent, slots)")
        if min(self.embed_dim, self.hidden, self.layers, self.batch_size, self.min_count, self.max_vocab) < 1:
            raise ValueError("embed_dim, hidden, layers, batch_size, min_count and max_vocab must be >= 1")
        if self.pretrain_epochs < 0 or self.finetune_epochs < 0 or self.rwm_interval < 0 or self.ramp_epochs < 0:
            raise ValueError("epochs, ramp_epochs and rwm_interval must be >= 0")
        if not 0.0 <= self.rwm_eta < 1.0:
            raise ValueError(f"rwm_eta must be in [0, 1); got {self.rwm_eta}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.dev_share < 1.0:
            raise ValueError("dropout and dev_share must be in [0, 1)")
        if self.unk_penalty is not None and self.unk_penalty > 0:
            raise ValueError(f"unk_penalty is a log-probability: <= 0 (or None); got {self.unk_penalty}")
        if self.lr <= 0 or self.finetune_lr <= 0 or self.cutoff < 1:
            raise ValueError("lr, finetune_lr and cutoff must be positive")

    @property
    def weights_by_task(self) -> dict[str, float]:
        return dict(zip(TASKS, self.task_weights, strict=True))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> RescoringConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
