"""Scores -> review candidates: each turn's most likely failure point as a `failure_point` candidate row
(analysis.candidates.CANDIDATE_SCHEMA), built column by column so that a batch of 20,000 turns costs
milliseconds, not the seconds of a dict per row."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from analysis.candidates import (
    CANDIDATE_SCHEMA,
    DISTRIBUTION_TOLERANCE,
    DISTRIBUTIONS_CHECKED,
    canonical_json,
    checked_mark,
)
from analysis.failure_points.model import LABELS, Example

TASK = "failure_point"
_VALUES = [json.dumps(label) for label in LABELS]  # a candidate's value: the label as a JSON string
# canonical_json of {label: probability}: keys sorted, no spaces; a float's JSON spelling is its repr, which
# is what str.format gives a float, so one template per row spells it exactly as canonical_json does
_ORDER = sorted(range(len(LABELS)), key=lambda i: LABELS[i])
_TEMPLATE = "{{" + ",".join(f"{json.dumps(LABELS[i])}:{{}}" for i in _ORDER) + "}}"  # {{ }}: literal braces


def distribution_json(probs: np.ndarray) -> list[str]:
    """canonical_json(dict(zip(LABELS, row))) of every row of an (n, len(LABELS)) array."""
    if not np.isfinite(probs).all():  # NaN and infinity spell differently in JSON: take the slow, exact path
        return [canonical_json(dict(zip(LABELS, row, strict=True))) for row in probs.tolist()]
    return [_TEMPLATE.format(*row) for row in probs[:, _ORDER].tolist()]


def candidate_table(examples: Sequence[Example], probs: np.ndarray, run: tuple[str, str, str]) -> pa.Table:
    """One candidate per example: the argmax label as the value, its probability as the score, the whole row
    of probs (over LABELS, rows summing to 1) as the distribution; run is (model name, version, parameters)."""
    n = len(examples)
    if probs.shape != (n, len(LABELS)):
        raise ValueError(f"need one row of {len(LABELS)} probabilities per example, got {probs.shape} for {n}")
    best = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    dialogue_ids = [ex.dialogue_id for ex in examples]
    turn_indexes = [ex.turn_index for ex in examples]
    name, version, parameters = run

    def same(value: str) -> pa.Array:
        return pa.array([value] * n, pa.string())  # dictionary-free: the store's import reads plain strings

    columns = {
        "task": same(TASK), "target_kind": same("turn"),
        "dialogue_id": pa.array(dialogue_ids, pa.string()), "turn_index": pa.array(turn_indexes, pa.int64()),
        "other_dialogue_id": pa.nulls(n, pa.string()), "other_turn_index": pa.nulls(n, pa.int64()),
        # analysis.candidates.target_key of a turn: json.dumps([dialogue_id, turn_index])
        "target_key": pa.array([json.dumps([d, t]) for d, t in zip(dialogue_ids, turn_indexes, strict=True)],
                               pa.string()),
        "value": pa.array([_VALUES[b] for b in best.tolist()], pa.string()),
        "score": pa.array(probs[np.arange(n), best], pa.float64()),
        "distribution": pa.array(distribution_json(probs), pa.string()),
        "model_name": same(name), "model_version": same(version), "model_parameters": same(parameters),
        "run_at": pa.nulls(n, CANDIDATE_SCHEMA.field("run_at").type),
    }
    table = pa.Table.from_arrays([columns[f.name] for f in CANDIDATE_SCHEMA], schema=CANDIDATE_SCHEMA)
    # check_distribution's rules, on the whole array at once: the value is the argmax and the score its
    # probability by construction. A table that fails is left unmarked, and the store's row-by-row check names
    # the first bad row.
    if np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all() and (
            np.abs(probs.sum(axis=1) - 1) <= DISTRIBUTION_TOLERANCE).all():
        table = table.replace_schema_metadata({DISTRIBUTIONS_CHECKED: checked_mark(table)})
    return table
