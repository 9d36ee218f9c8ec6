"""A throwaway model family for the job tests: registered here, in the tests, and nowhere else. It proposes
each turn's most frequent gold intent. A job's child process imports this module to find it (Family.module),
which is how any new family is added: its own module plus one register() call."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from app import store
from app.jobs.registry import BatchScoring, Family, Option, register


def read_train(conn, dataset: str, options: dict) -> list[str]:
    return [t["gold_intent"] for t in store.list_turn_records(conn, dataset) if t.get("gold_intent")]


def train(intents: list[str], options: dict, out: Path, progress) -> dict:
    torch_loaded = "torch" in sys.modules  # this module never imports it: the jobs' fork server did
    if options["fail"]:
        raise ValueError("asked to fail")
    if options.get("crash"):  # the streamed family has no such option
        os.kill(os.getpid(), signal.SIGSEGV)  # as a crash in a native library would end the process
    if options.get("untidy"):  # a library reading standard input, and printing without ending its line
        sys.stdin.read()
        print("no newline", end="", flush=True)
    for step in range(options["steps"]):
        progress("working", step, options["steps"])
        time.sleep(options["pause"])
    out.mkdir(parents=True)
    majority, n = Counter(intents).most_common(1)[0]
    # the child's own priority, so a test can check jobs run below the server
    (out / "model.json").write_text(json.dumps({"intent": majority, "share": n / len(intents),
                                                "niceness": os.nice(0), "torch_loaded": torch_loaded,
                                                "parent": os.getppid(), "cwd": os.getcwd(),
                                                "mark": os.environ.get("TURNLENS_TEST_MARK"),
                                                "torch_threads": sys.modules["torch"].get_num_threads()
                                                if torch_loaded else None}))
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
             Option("fail_after", bool, False, "fail after scoring every turn", actions=("score",)),
             Option("crash", bool, False, "end the process as a native crash would", actions=("train",)),
             Option("untidy", bool, False, "read standard input, print without a newline", actions=("train",))),
    read_train=read_train, train=train, read_score=read_score, score=score,
    describe=lambda action, result: f"{action}: {result}",
))


# The same proposals, scored batch by batch: a score job of this family streams (app/jobs/runner.py).
def _load(checkpoint: Path, options: dict) -> dict:
    return {**json.loads((checkpoint / "model.json").read_text()), "checkpoint": checkpoint}


def _score_batch(model: dict, turns: list[dict], options: dict, progress) -> pa.Table:
    if options["fail_at_turn"] and any(t["turn_index"] == 0 and t["dialogue_id"] == options["fail_at_turn"]
                                       for t in turns):
        raise RuntimeError(f"failed at {options['fail_at_turn']}")
    time.sleep(options["batch_pause"])
    keys = [(t["dialogue_id"], int(t["turn_index"])) for t in turns]
    return score(keys, {"fail_after": False}, model["checkpoint"], progress)


def _turn_batches(conn, dataset: str, options: dict):
    from app.jobs.common import turn_batches

    return turn_batches(conn, dataset, options)


STREAMED = register(Family(
    name="toy-majority-streamed", title="Toy majority intent, streamed", page=None,
    description="The toy family scoring batch by batch (a test family).",
    options=(*TOY.options[:3],
             Option("fail_at_turn", str, "", "fail on the batch holding this dialogue", actions=("score",)),
             Option("batch_pause", float, 0.0, "seconds per batch", actions=("score",), low=0, high=10)),
    read_train=read_train, train=train, read_score=read_score, score=score,
    batch=BatchScoring(load=_load, score=_score_batch, read_batches=_turn_batches),
    describe=lambda action, result: f"{action}: {result}",
))
