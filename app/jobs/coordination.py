"""Training and scoring the coordination chunker on a stored dataset: it trains on lists generated from the
dataset's gold slots (and on splits reviewers settled), and scoring proposes an ``items`` candidate for every
turn whose recognised words it splits into two or more items (analysis/coordination/items.py: the value).

The coordination family's job module and registry entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.coordination import examples as cx
from analysis.coordination.config import LISTABLE_SLURP_TYPES, CoordinationConfig
from analysis.coordination.items import TASK, candidate_value
from analysis.coordination.model import CoordinationModel
from app import store
from app.jobs.common import (
    HOLD_OUT,
    REVIEWED,
    LoadedModel,
    describe,
    evaluate_with,
    mark_held_out,
    read_heldout,
    reads,
    stages,
    turn_batches,
    weights_version,
)
from app.jobs.registry import BatchScoring, Family, Option, register

MODEL_NAME = "coordination-chunker"
MIN_EXAMPLES = 50


def train_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_reviewed: bool = False) -> dict:
    """What training reads: the dataset's turns (gold slots are the targets) and, with_reviewed, the item lists
    reviewers settled, by turn."""
    reviewed = {}
    if with_reviewed:
        reviewed = {k: json.loads(v) for k, v in store.list_reviewed_labels(conn, dataset, TASK).items()}
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset), "reviewed": reviewed}


def reviewed_examples(turns: list[dict], reviewed: dict) -> list[cx.Example]:
    """Examples from settled splits: the turn's recognised words tagged with the reviewer's items (found in
    order; a split whose items are not all found is skipped)."""
    text = {(str(t["dialogue_id"]), int(t["turn_index"])): t.get("asr_text") or "" for t in turns}
    out = []
    for (did, ti), value in sorted(reviewed.items()):
        tokens = cx.words(text.get((did, ti), ""))
        items = [cx.words(i) for i in value.get("items") or [] if cx.words(i)]
        spans, pos = [], 0
        for w in items:
            hit = next((i for i in range(pos, len(tokens) - len(w) + 1) if tokens[i:i + len(w)] == w), None)
            if hit is None:
                break
            spans.append((hit, hit + len(w)))
            pos = hit + len(w)
        if len(spans) != len(items) or not tokens:
            continue
        tags = ["O"] * len(tokens)
        for s, e in spans:
            tags[s:e] = ["B"] + ["I"] * (e - s - 1)
        extent = (spans[0][0], spans[-1][1]) if spans else (0, 0)
        out.append(cx.Example(f"{did}:{ti}", tokens, tuple(tags), value.get("slot_type") or "(reviewed)",
                              len(spans) if len(spans) >= 2 else 1, tuple(spans) if len(spans) >= 2 else (),
                              extent, style="reviewed", group=did))
    return out


def fit(inputs: dict, out: Path, *, config: CoordinationConfig,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Generate lists from the inputs' gold slots (config.slot_types, less held_out_types), add the reviewed
    splits, train, save the checkpoint to out. Pure."""
    utts = cx.utterances_from_turns(inputs["turns"], dedupe=True)
    trained = config.trained_types
    pools = cx.value_pools(utts, trained)
    generated = cx.build_examples(utts, types=trained, pools=pools, seed=config.seed, variants=config.variants,
                                  k_weights=config.k_weights, exclude_types=config.held_out_types)
    extra = reviewed_examples(inputs["turns"], inputs.get("reviewed") or {})
    examples = generated.examples + extra
    if len(examples) < MIN_EXAMPLES:
        raise ValueError(f"dataset {inputs['dataset']!r} gives {len(examples)} coordination examples (turns with "
                         f"exactly one gold value of a list-able slot type); at least {MIN_EXAMPLES} are needed")
    model = CoordinationModel(config).fit(examples, pools=pools, progress=progress)
    model.save_pretrained(out)
    return {"turns": len(inputs["turns"]), "utterances": len(utts), "carriers": generated.carriers,
            "examples": len(examples), "reviewed_labels_used": len(extra), "history": model.history}


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: CoordinationConfig,
          with_reviewed: bool = False, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train on a dataset's gold slots (and, with_reviewed, settled splits); save the checkpoint to out."""
    return fit(train_inputs(conn, dataset, with_reviewed=with_reviewed), out, config=config, progress=progress)


def score_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """What scoring reads: the dataset's turns, production fields only (asr_text and the logged NLU slots)."""
    turns = store.list_turn_records(conn, dataset, production_only=True)
    if not turns:
        raise ValueError(f"dataset {dataset!r} has no turns to score (ingest a log into it first)")
    return turns


def candidates(turns: list[dict], model_dir: Path, *,
               progress: Callable[[str, int, int], None] | None = None) -> pa.Table:
    """An ``items`` candidate (CANDIDATE_SCHEMA) for every turn the chunker splits into two or more items: the
    value of analysis.coordination.items.candidate_value, scored by its least confident chunk. Pure."""
    return candidates_from(load(model_dir), turns, progress=progress)


def load(model_dir: Path, options: dict | None = None) -> LoadedModel:
    """The checkpoint's chunker and its model run, for scoring batch after batch (registry.BatchScoring)."""
    model = CoordinationModel.from_pretrained(model_dir)
    return LoadedModel(model, (MODEL_NAME, weights_version(model.fingerprint, model_dir), canonical_json({
        "config": model.config.to_dict(), "data_fingerprint": model.fingerprint,
        "checkpoint": str(Path(model_dir).resolve())})))


def candidates_from(loaded: LoadedModel, turns: list[dict], *,
                    progress: Callable[[str, int, int], None] | None = None) -> pa.Table:
    """candidates() with the model already loaded (load()); each turn is scored on its own words."""
    chunked = loaded.model.predict([cx.words(t.get("asr_text") or "") for t in turns], progress=progress)
    run = loaded.run
    rows = []
    for t, c in zip(turns, chunked, strict=True):
        if not c.is_list:
            continue
        value = candidate_value(t.get("asr_text") or "", c.spans, c.scores, t.get("nlu_slots"))
        kind, key = target_key(t["dialogue_id"], int(t["turn_index"]))
        rows.append({"task": TASK, "target_kind": kind, "dialogue_id": t["dialogue_id"],
                     "turn_index": int(t["turn_index"]), "other_dialogue_id": None, "other_turn_index": None,
                     "target_key": key, "value": canonical_json(value),
                     "score": min(max(min(c.scores), 0.0), 1.0), "distribution": None, "model_name": run[0],
                     "model_version": run[1], "model_parameters": run[2], "run_at": None})
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *,
          progress: Callable[[str, int, int], None] | None = None) -> store.CandidateImportResult:
    """Score every turn of a dataset and store its items candidates (see candidates())."""
    return store.insert_candidates(conn, candidates(score_inputs(conn, dataset), model_dir, progress=progress))


# --------------------------------------------------------------------- the registry entry

_read_train, _read_score = reads(__name__)


def _held_out(text: str) -> tuple[str, ...]:
    """The held_out_types option: "" (none), "auto" (the documented rule over LISTABLE_SLURP_TYPES) or
    comma-separated slot types."""
    text = text.strip()
    if text == "auto":
        return cx.unseen_types(LISTABLE_SLURP_TYPES)
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(set(types) - set(LISTABLE_SLURP_TYPES))
    if unknown:
        raise ValueError(f"not list-able slot types: {', '.join(unknown)}")
    return types


def config_from(options: dict) -> CoordinationConfig:
    return CoordinationConfig(epochs=options["epochs"], variants=options["variants"],
                              adversary_weight=options["adversary_weight"], use_chars=options["chars"],
                              use_crf=options["crf"], word_vectors=options["word_vectors"],
                              held_out_types=_held_out(options["held_out_types"]))


def _co_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    summary = fit(inputs, out, config=config_from(options), progress=stages(progress))
    mark_held_out(out, options["hold_out"])
    return summary


def _co_score(loaded: LoadedModel, turns: list[dict], options: dict, progress=None):
    return candidates_from(loaded, turns, progress=progress and stages(progress))


BATCH = BatchScoring(load=load, score=_co_score, read_batches=turn_batches)


register(Family(
    name="coordination", title="Coordination chunking", page="coordination",
    description="Splits a turn's list of slot values into items (\"bananas peanut butter and paper towels\": three): "
                "a BiLSTM-CRF over word and character embeddings with a slot-type adversary, trained on lists made "
                "from the log's gold slots.",
    options=(Option("epochs", int, 6, "training epochs", low=1, high=100),
             Option("variants", int, 4, "examples generated per utterance that carries a list-able value", low=1,
                    high=20),
             Option("adversary_weight", float, 0.1, "weight of the slot-type adversary (0: none, the ablation)",
                    low=0.0, high=10.0),
             Option("chars", bool, True, "character embeddings (off: the ablation)"),
             Option("crf", bool, True, "CRF over B/I/O (off: a softmax per word, the ablation)"),
             Option("word_vectors", str, "minilm", "minilm: the bundled MiniLM's word-piece embeddings; trained: "
                                                   "learned here", choices=("minilm", "trained")),
             Option("held_out_types", str, "", "slot types kept out of training to measure unseen types: "
                                               "comma-separated, or 'auto' (the documented rule)", check=_held_out),
             REVIEWED, HOLD_OUT),
    read_train=_read_train, train=_co_train, read_score=_read_score, score=BATCH.local, batch=BATCH,
    read_evaluate=read_heldout,
    evaluate=evaluate_with("analysis.coordination.evaluate:evaluate_heldout",
                           "analysis.coordination.model:CoordinationModel"),
    describe=lambda action, result: describe(action, result, "items"),
))
