"""What every model family's job module shares: the text embedder, run versions, the held-out split used by
the quick evaluation, progress adapters and the options most families offer.

Training from the app (and `make run`) holds out a fifth of the dataset's dialogues (analysis.holdout), so
the quick evaluation that follows measures the model on dialogues it never saw.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from analysis.text_encoder import EmbeddingCache, LazyTextEncoder
from app.jobs.registry import Option


def embedder(progress: Callable[[int], None] | None = None) -> Callable[[list[str]], np.ndarray]:
    """MiniLM through the on-disk cache (TURNLENS_CACHE, default data/cache): each text is encoded once.
    The encoder loads when a text is missing from the cache, so a model that reads no text, or only cached
    text, never loads it."""
    cache = EmbeddingCache(Path(os.environ.get("TURNLENS_CACHE", "data/cache")) / "embeddings")
    encoder = LazyTextEncoder()

    def embed(texts: list[str]) -> np.ndarray:
        return cache.encode(encoder, texts, progress=progress)

    return embed


def weights_version(fingerprint: str | None, model_dir: Path) -> str:
    """A model run's version: the training data's fingerprint and a hash of the weights, so a checkpoint
    retrained into the same folder is a new run rather than a conflicting one."""
    digest = hashlib.sha256((Path(model_dir) / "weights.pt").read_bytes()).hexdigest()[:12]
    return f"{fingerprint}-{digest}"


class LoadedModel:
    """A family's trained model loaded for scoring, with its model run (name, version, parameters as canonical
    JSON): what registry.BatchScoring.load returns. Picklable, so the Ray engine can ship it to its workers; the
    text embedder is made on first use in each process (it holds the on-disk cache and the encoder)."""

    def __init__(self, model, run: tuple[str, str, str]):
        self.model = model
        self.run = run
        self._embed: Callable[[list[str]], np.ndarray] | None = None

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embed is None:
            self._embed = embedder()
        return self._embed(texts)

    def __getstate__(self) -> dict:
        return {"model": self.model, "run": self.run}  # the embedder stays in its process

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"], state["run"])


REVIEWED = Option("with_reviewed", bool, False, "also train on labels people accepted or corrected in review "
                                                 "(they win over gold)")
HOLD_OUT = Option("hold_out", bool, True, "keep a fifth of the dialogues out of training, for the quick "
                                          "evaluation (off: train on everything)")


def train_part(turns: list[dict], hold_out: bool) -> list[dict]:
    if not hold_out:
        return turns
    from analysis.holdout import split_turns

    return split_turns(turns)[0]


def _heldout_part(turns: list[dict]) -> list[dict]:
    from analysis.holdout import split_turns

    held = split_turns(turns)[1]
    if not held:
        raise ValueError("the dataset has no held-out dialogues to evaluate on (too few dialogues)")
    return held


_MARKER = "heldout.json"  # in a checkpoint trained without the held-out dialogues


def mark_held_out(out: Path, hold_out: bool) -> None:
    """Say in the checkpoint that it never saw the held-out dialogues: only then may the quick evaluation run."""
    if hold_out:
        from analysis.holdout import HELDOUT_SHARE

        (out / _MARKER).write_text(json.dumps({"held_out_share": HELDOUT_SHARE}))


def trained_with_hold_out(checkpoint: str | Path) -> bool:
    """Whether the checkpoint was trained without the held-out dialogues (mark_held_out)."""
    return (Path(checkpoint) / _MARKER).exists()


def _require_held_out(checkpoint: Path) -> None:
    if not trained_with_hold_out(checkpoint):
        raise ValueError("this checkpoint was trained on every dialogue (hold out was off): a held-out evaluation "
                         "would measure it on its own training data. Train it again with hold out on.")


def read_heldout(conn, dataset: str, options: dict) -> list[dict]:
    """Evaluation reads the held-out dialogues with their gold fields (gold only as the target)."""
    from app import store

    return _heldout_part(store.list_turn_records(conn, dataset))


def evaluate_with(evaluator: str, loader: str):
    """evaluate(turns, options, checkpoint, progress) for a family: load the checkpoint with loader
    ('module:Class'), measure it with evaluator ('module:function')."""
    def evaluate(turns: list[dict], options: dict, checkpoint: Path, progress):
        import importlib

        _require_held_out(checkpoint)
        module, name = loader.split(":")
        model = getattr(importlib.import_module(module), name).from_pretrained(checkpoint)
        progress("evaluating", 0, None)
        module, name = evaluator.split(":")
        return getattr(importlib.import_module(module), name)(turns, model, embedder())
    return evaluate


def reads(jobs_module: str):
    """(read_train, read_score) for a family whose app/<x>_jobs.py has train_inputs and score_inputs: training
    reads the dataset without its held-out dialogues (when hold_out), scoring reads every turn."""
    def read_train(conn, dataset: str, options: dict) -> dict:
        module = importlib.import_module(jobs_module)
        inputs = module.train_inputs(conn, dataset, with_reviewed=options["with_reviewed"])
        return {**inputs, "turns": train_part(inputs["turns"], options["hold_out"])}

    def read_score(conn, dataset: str, options: dict) -> list[dict]:
        return importlib.import_module(jobs_module).score_inputs(conn, dataset)

    return read_train, read_score




# Dialogues per batch of a streamed score job: about 20,000 turns of the simulated logs, whose text vectors
# (4 slots x 384 floats) take 120 MB; a batch, its examples and candidate rows stay well under 0.5 GB.
SCORE_BATCH_DIALOGUES = 8_000


def turn_batches(conn, dataset: str, options: dict, *, fields=None) -> tuple[int, Iterator[list[dict]]]:
    """BatchScoring.read_batches for a family whose score inputs are the dataset's turn records (production
    fields only; with fields, just those): whole dialogues, SCORE_BATCH_DIALOGUES at a time, in the order of
    list_turn_records."""
    from app import store
    from app.store import streaming

    total = store.count_turns(conn, dataset)
    if not total:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    return total, streaming.iter_turn_records(conn, dataset, batch_dialogues=SCORE_BATCH_DIALOGUES, fields=fields)


def stages(progress):
    """A family's (done, total) or (stage, done, total) callback as progress(stage, done, total)."""
    def forward(*event):
        stage, done, total = event if len(event) == 3 else ("training", *event)
        progress(stage, done, total)
    return forward


def describe(action: str, result, what: str) -> str:
    if action == "train":
        return f"trained on {result.get('turns', result.get('examples', 0)):,} turns"
    if action == "score":
        return f"{result:,} {what} candidates"
    name, metric = next(iter(result.metrics.items()), ("", None))
    shown = f": {name} {metric.value:.3f} [{metric.low:.3f}, {metric.high:.3f}]" if metric is not None else ""
    return f"evaluated on {result.n_items:,} held-out items{shown}"
