"""The failure-point family: training and scoring the model on a stored dataset (scores become review
candidates), and its registry entry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from analysis.candidates import canonical_json
from analysis.failure_points.model import (
    FIELDS_READ,
    LABEL_INDEX,
    LABELS,
    FailurePointClassifier,
    FailurePointConfig,
    build_examples,
)
from analysis.failure_points.scoring import candidate_table
from app import store
from app.jobs.common import (
    HOLD_OUT,
    REVIEWED,
    SCORE_BATCH_DIALOGUES,
    LoadedModel,
    describe,
    embedder,
    evaluate_with,
    mark_held_out,
    read_heldout,
    reads,
    stages,
    turn_batches,
    weights_version,
)
from app.jobs.registry import BatchScoring, Family, Option, register
from app.store import streaming as store_streaming

MODEL_NAME = "failure-points"


def train_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_reviewed: bool = False) -> dict:
    """What training reads from the store: the dataset's turns and, with_reviewed, the settled labels."""
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset),
            "reviewed": store.list_reviewed_labels(conn, dataset, "failure_point") if with_reviewed else {}}


def fit(inputs: dict, out: Path, *, config: FailurePointConfig, embed: Callable | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on the inputs' gold failure points (reviewed labels win over gold) and save the checkpoint to out.
    Pure: no database (a job runs it in a child process)."""
    turns, reviewed, dataset = inputs["turns"], inputs["reviewed"], inputs["dataset"]
    examples = build_examples(turns)
    gold = {(t["dialogue_id"], int(t["turn_index"])): t.get("gold_failure_point") for t in turns}
    labelled = [(ex, reviewed.get(ex.key) or gold.get(ex.key)) for ex in examples]
    labelled = [(ex, label) for ex, label in labelled if label in LABEL_INDEX]
    if len(labelled) < 20:
        raise ValueError(f"dataset {dataset!r} has {len(labelled)} turns with a failure-point label "
                         "(gold_failure_point or a reviewed label); at least 20 are needed to train")
    xs = [ex for ex, _ in labelled]
    ys = np.array([LABEL_INDEX[label] for _, label in labelled])
    clf = FailurePointClassifier(config).fit(xs, ys, embed=embed or embedder(), progress=progress)
    clf.save_pretrained(out)
    return {"turns": len(xs), "reviewed_labels_used": sum(1 for ex in xs if ex.key in reviewed),
            "labels": {LABELS[i]: int(n) for i, n in enumerate(np.bincount(ys, minlength=len(LABELS))) if n}}


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: FailurePointConfig,
          with_reviewed: bool = False, embed: Callable | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict:
    """Train on a dataset's gold failure points (and, with_reviewed, the labels people settled in review,
    which win over gold); save the checkpoint to out. Returns a summary."""
    return fit(train_inputs(conn, dataset, with_reviewed=with_reviewed), out, config=config, embed=embed,
               progress=progress)


def score_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """What scoring reads from the store: the dataset's turns, production fields only."""
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    return turns


def load(model_dir: Path, options: dict | None = None) -> LoadedModel:
    """The checkpoint's classifier and its model run, for scoring batch after batch (registry.BatchScoring)."""
    clf = FailurePointClassifier.from_pretrained(model_dir)
    params = canonical_json({"config": asdict(clf.config), "data_fingerprint": clf.fingerprint,
                             "checkpoint": str(Path(model_dir).resolve())})
    return LoadedModel(clf, (MODEL_NAME, weights_version(clf.fingerprint, model_dir), params))


def candidates(turns: list[dict], model_dir: Path, *, embed: Callable | None = None,
               progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None) -> pa.Table:
    """Each turn's most likely failure point as a `failure_point` candidate (CANDIDATE_SCHEMA): its probability
    is the score, the whole vector (every label of LABELS) the distribution, the checkpoint the model run.
    Pure: no database."""
    return candidates_from(load(model_dir), turns, embed=embed, progress=progress, timings=timings)


def candidates_from(loaded: LoadedModel, turns: list[dict], *, embed: Callable | None = None,
                    progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None
                    ) -> pa.Table:
    """candidates() with the model already loaded (load()). turns must hold whole dialogues: the model reads each
    turn's dialogue context."""
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    spent.update(inputs=0.0, text_encoder=0.0, model=0.0)
    embed = embed or loaded.embed

    def timed_embed(texts: list[str]) -> np.ndarray:
        start = clock()
        try:
            return embed(texts)
        finally:
            spent["text_encoder"] += clock() - start

    clf = loaded.model
    start = clock()
    examples = build_examples(turns)
    spent["inputs"] = clock() - start
    start = clock()
    probs = clf.predict_proba(examples, embed=timed_embed,
                              progress=progress and (lambda done, total: progress("scoring", done, total)))
    spent["model"] = clock() - start - spent["text_encoder"]
    return candidate_table(examples, probs, loaded.run)


BATCH_DIALOGUES = SCORE_BATCH_DIALOGUES  # whole dialogues scored at a time (see there)


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *, embed: Callable | None = None,
          progress: Callable[[str, int, int], None] | None = None, timings: dict | None = None,
          batch_dialogues: int = BATCH_DIALOGUES) -> store.CandidateImportResult:
    """Score every turn of a dataset and store the candidates (see candidates()), batch_dialogues whole
    dialogues at a time: read, embed, score and write one batch, then the next, so memory stays flat in the
    size of the log. Each batch is written in its own transaction (store_streaming.insert_candidate_batches:
    a failure keeps the batches before it, and scoring again with the same checkpoint stores the rest).

    progress(stage, done, total) with stage "scoring" (turns); timings, if given, receives the seconds spent
    reading turns, building inputs, in the text encoder (embed, cache hits included), in the model and
    writing candidates (building their rows and storing them)."""
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    spent.update(read=0.0, inputs=0.0, text_encoder=0.0, model=0.0)
    total = store.count_turns(conn, dataset)
    if not total:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    loaded = load(model_dir)
    start_all = clock()

    def scored_batches():
        done = 0
        turns_batches = store_streaming.iter_turn_records(conn, dataset, batch_dialogues=batch_dialogues,
                                                          fields=FIELDS_READ)
        while True:
            start = clock()
            turns = next(turns_batches, None)
            spent["read"] += clock() - start
            if turns is None:
                return
            batch_spent: dict[str, float] = {}
            # progress over the whole dataset: the turns of the batches before this one, plus this one's
            table = candidates_from(loaded, turns, embed=embed, timings=batch_spent, progress=progress and (
                lambda stage, n, _, at=done: progress(stage, at + n, total)))
            for key, seconds in batch_spent.items():
                spent[key] += seconds
            done += len(turns)
            yield table

    result = store_streaming.insert_candidate_batches(conn, scored_batches())
    spent["write"] = clock() - start_all - sum(spent[k] for k in ("read", "inputs", "text_encoder", "model"))
    return result


# --------------------------------------------------------------------- the registry entry

_read_train, _read_score = reads(__name__)


def _fp_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    config = FailurePointConfig(epochs=options["epochs"])
    if options["with_text"]:
        config = replace(config, use_text=True, text_dropout=options["text_dropout"])
    summary = fit(inputs, out, config=config, progress=stages(progress))
    mark_held_out(out, options["hold_out"])
    return summary


def _fp_score(loaded: LoadedModel, turns: list[dict], options: dict, progress=None):
    return candidates_from(loaded, turns, progress=progress)


# (the server reads only the fields the model reads: a third of the time of reading every production field)
BATCH = BatchScoring(load=load, score=_fp_score, whole_dialogues=True,
                     read_batches=partial(turn_batches, fields=FIELDS_READ))


_TEXT_DROPOUT = 0.3  # the best text dropout on validation


def _validate(action: str, given: dict, parsed: dict) -> None:
    # a form sends every field: only a changed dropout without texts is a mistake worth a refusal
    if action == "train" and parsed["text_dropout"] != _TEXT_DROPOUT and not parsed["with_text"]:
        raise ValueError("text_dropout applies only with with_text")


register(Family(
    name="failure-points", title="Failure points", page="failures",
    description="Where a defective turn failed first and irrecoverably (ASR, NLU, entity resolution, skill, "
                "TTS, ...): a dialogue Transformer over production fields, trained on gold_failure_point.",
    options=(Option("epochs", int, 12, "training epochs", low=1, high=200),
             Option("with_text", bool, False, "also read the texts (MiniLM vectors); off by default: on dev-split "
                                              "validation the text-reading models scored lower"),
             Option("text_dropout", float, _TEXT_DROPOUT, "with with_text: the probability of blanking each text input "
                                                "while training (default: the best on validation)", low=0,
                    high=0.99),
             REVIEWED, HOLD_OUT),
    read_train=_read_train, train=_fp_train, read_score=_read_score, score=BATCH.local, batch=BATCH,
    read_evaluate=read_heldout,
    evaluate=evaluate_with("analysis.failure_points.evaluation:evaluate_heldout",
                            "analysis.failure_points.model:FailurePointClassifier"),
    describe=lambda action, result: describe(action, result, "failure_point"),
    validate=_validate,
))
