"""A throwaway model family for the job tests: registered here, in the tests, and nowhere else. It proposes
each turn's most frequent gold intent. A job's child process imports this module to find it (Family.module),
which is how any new family is added: its own module plus one register() call."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from app import store
from app.jobs.registry import Family, Option, register


def read_train(conn, dataset: str, options: dict) -> list[str]:
    return [t["gold_intent"] for t in store.list_turn_records(conn, dataset) if t.get("gold_intent")]


def train(intents: list[str], options: dict, out: Path, progress) -> dict:
    if options["fail"]:
        raise ValueError("asked to fail")
    for step in range(options["steps"]):
        progress("working", step, options["steps"])
        time.sleep(options["pause"])
    out.mkdir(parents=True)
    majority, n = Counter(intents).most_common(1)[0]
    # the child's own priority, so a test can check jobs run below the server
    (out / "model.json").write_text(json.dumps({"intent": majority, "share": n / len(intents),
                                                "niceness": os.nice(0)}))
    return {"turns": len(intents)}


def read_score(conn, dataset: str, options: dict) -> list[tuple[str, int]]:
    return [(t["dialogue_id"], int(t["turn_index"])) for t in store.list_turn_records(conn, dataset)]


def score(keys: list[tuple[str, int]], options: dict, checkpoint: Path, progress) -> pa.Table:
    model = json.loads((checkpoint / "model.json").read_text())
    rows = []
    for i, (dialogue_id, turn_index) in enumerate(keys):
        progress("scoring", i + 1, len(keys))
        kind, key = target_key(dialogue_id, turn_index)
        rows.append({"task": "intent", "target_kind": kind, "dialogue_id": dialogue_id, "turn_index": turn_index,
                     "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
                     "value": canonical_json(model["intent"]), "score": model["share"], "distribution": None,
                     "model_name": "toy-majority", "model_version": "1",
                     "model_parameters": canonical_json({"checkpoint": str(checkpoint.resolve())}), "run_at": None})
    if options["fail_after"]:
        raise RuntimeError("failed after computing every candidate")
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


TOY = register(Family(
    name="toy-majority", title="Toy majority intent", page=None,
    description="Proposes the most frequent gold intent for every turn (a test family).",
    options=(Option("steps", int, 3, "progress steps", low=0, high=10_000),
             Option("pause", float, 0.0, "seconds per step", low=0, high=10),
             Option("fail", bool, False, "fail while training"),
             Option("fail_after", bool, False, "fail after scoring every turn", actions=("score",))),
    read_train=read_train, train=train, read_score=read_score, score=score,
    describe=lambda action, result: f"{action}: {result}",
))
