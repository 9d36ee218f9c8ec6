"""Prodigy: its JSONL tasks in as candidates; reviewed labels out as `db-out`-style JSONL with `answer`.

A Prodigy task (https://prodi.gy/docs/api-interfaces) holds ``text`` and one of: ``label`` (classification,
``classification`` interface), ``spans`` (``[{start, end, label}]``: ``ner_manual`` / ``spans_manual``) or
``options`` with the chosen ids in ``accept`` (``choice``); ``meta`` is free, ``_input_hash`` and
``_task_hash`` identify input and question, and an annotated task carries ``answer`` (accept, reject or
ignore). The turn is ``meta.dialogue_id`` and ``meta.turn_index``; the task is ``meta.task`` (default:
``slots`` for spans, ``intent`` otherwise).

Reading: a task without ``answer`` is a model's proposal, of run (``meta.model_name`` or 'prodigy',
``meta.model_version`` or 'unversioned') with score ``meta.score`` (required); one with ``answer: accept`` is a
person's label, of run ('prodigy-answer', ``_annotator_id`` or ``_session_id`` or 'unattributed') with score 1;
``reject`` and ``ignore`` propose nothing (they are counted).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from analysis.candidates import canonical_json
from analysis.interop.common import (
    HUMAN_SCORE,
    ReadResult,
    TurnTexts,
    Where,
    agent,
    as_json_text,
    check_score,
    check_task,
    finish,
    item_text,
    proposal,
    read_items,
    split_value,
    turn_of,
    turn_rows,
    value_from_json_text,
    write_jsonl,
)
from analysis.interop.spans import slot_value, span_problem, with_unlocated
from analysis.logs import Problem

ANSWER_RUN = "prodigy-answer"  # model_name of accepted answers' candidates; the annotator is the version
ANSWERS = ("accept", "reject", "ignore")


def _value(where: Where, task: dict, text: str, problems: list[Problem]) -> tuple[str, object] | None:
    """(default task name, value) a Prodigy task proposes, or None after a Problem."""
    meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    if "spans" in task:
        if "label" in task:
            problems.append(where.problem("label", "a task with spans and a label: which one is the proposal? "
                                                   "(use one per task)"))
            return None
        spans = task["spans"]
        if not isinstance(spans, list):
            problems.append(where.problem("spans", "expected a list of {start, end, label}"))
            return None
        slots = []
        for k, span in enumerate(spans):
            if not isinstance(span, dict):
                problems.append(where.problem(f"spans[{k}]", "expected an object with start, end and label"))
                continue
            problem = span_problem(text, span.get("start"), span.get("end"), span.get("text"))
            if problem is None and not (isinstance(span.get("label"), str) and span["label"]):
                problem = f"a span needs a label, got {span.get('label')!r}"
            if problem:
                problems.append(where.problem(f"spans[{k}]", problem))
            else:
                slots.append(slot_value(text, span["label"], span["start"], span["end"]))
        if len(slots) != len(spans):
            return None
        extra = meta.get("unlocated_slots") or []
        if not isinstance(extra, list) or not all(isinstance(s, dict) and isinstance(s.get("type"), str)
                                                  and isinstance(s.get("value"), str) for s in extra):
            problems.append(where.problem("meta.unlocated_slots", "expected a list of {type, value}"))
            return None
        return "slots", with_unlocated(slots, extra)
    if "label" in task:
        label = task["label"]
        if meta.get("values_as_json"):
            try:
                return "intent", value_from_json_text(label)
            except ValueError as exc:
                problems.append(where.problem("label", f"meta.values_as_json is set, but this is not JSON: {exc}"))
                return None
        if not isinstance(label, str) or not label:
            problems.append(where.problem("label", f"expected the label, a string, got {label!r}"))
            return None
        return "intent", label
    if "options" in task:
        accept = task.get("accept")
        ids = {o.get("id") for o in task["options"] if isinstance(o, dict)} if isinstance(task["options"], list) \
            else set()
        if not isinstance(accept, list) or not accept or any(a not in ids for a in accept):
            problems.append(where.problem("accept", f"expected the chosen option ids (of options), got {accept!r}"))
            return None
        return "intent", accept[0] if len(accept) == 1 else list(accept)
    problems.append(where.problem("", "a task proposes a label, spans or accepted options: none found"))
    return None


def read_prodigy(path: str | Path, *, name: str | None = None, turn_texts: TurnTexts | None = None) -> ReadResult:
    """Read Prodigy tasks or annotations (.jsonl, as ``prodigy db-out`` writes; or a .json array) into
    candidates, all or nothing (LogFormatError naming file, line and field). See the module docstring for
    which runs and scores they get."""
    name = name or str(path)
    problems: list[Problem] = []
    proposals = []
    skipped: Counter[str] = Counter()
    items = 0
    for where, task in read_items(path, name):
        items += 1
        if not isinstance(task, dict):
            problems.append(where.problem("", "expected a Prodigy task (an object with text)"))
            continue
        meta = task.get("meta")
        turn = turn_of(where, meta, "meta", problems)
        text = item_text(where, task, "text", problems)
        if turn is None or text is None:
            continue
        answer = task.get("answer")
        if answer is not None and answer not in ANSWERS:
            problems.append(where.problem("answer", f"expected one of {', '.join(ANSWERS)}, got {answer!r}"))
            continue
        if answer in ("reject", "ignore"):
            skipped[f"answer {answer}"] += 1
            continue
        found = _value(where, task, text, problems)
        if found is None:
            continue
        task_name = meta.get("task", found[0])
        if not check_task(where, "meta.task", task_name, problems):
            continue
        if answer == "accept":
            who = task.get("_annotator_id") or task.get("_session_id") or "unattributed"
            run, score = (ANSWER_RUN, str(who)), HUMAN_SCORE
        else:
            score = check_score(where, "meta.score", meta.get("score"), problems)
            if score is None:
                continue
            run = (str(meta.get("model_name") or "prodigy"), str(meta.get("model_version") or "unversioned"))
        proposals.append(proposal(where, turn, text, task=task_name, value=found[1], score=score, run=run,
                                  turn_field="meta.dialogue_id", text_field="text"))
    return finish(name, proposals, problems, turn_texts, skipped, items)


def _hash(*parts: object) -> int:
    """A stable signed 32-bit hash of parts (Prodigy's hashes are 32-bit integers; these are not Prodigy's own
    murmurhash values; prodigy.set_hashes(eg, overwrite=True) recomputes those where a workflow needs them)."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def answer_of(row: dict) -> tuple[str, object]:
    """(answer, the value the answer is about) for an export row: an accepted proposal -> accept of it; a
    correction -> accept of the corrected label; a rejection -> reject of the proposal; no agreed or adjudicated
    decision (pending, or reviewers disagreeing) -> ignore of the proposal."""
    resolved = row.get("status") in ("agreed", "adjudicated")
    if resolved and row.get("verdict") in ("accept", "correct"):
        return "accept", row["label"]
    if resolved and row.get("verdict") == "reject":
        return "reject", row["proposed_value"]
    return "ignore", row["proposed_value"]


def prodigy_examples(rows: list[dict]) -> tuple[list[dict], int]:
    """Export rows (app.store.export.list_export_rows) as Prodigy db-out examples, one per candidate: the text,
    spans (a slot list) or label (a string; other values as JSON text with meta.values_as_json), the answer
    (answer_of), _annotator_id (the reviewers), hashes, and meta (turn, dataset, candidate, task, the proposal's
    model run and score, verdict, status, reviewers, span_located and unlocated_slots: slots not in the text)."""
    kept, left_out = turn_rows(rows)
    out = []
    for row in kept:
        answer, value = answer_of(row)
        meta = {"dialogue_id": row["dialogue_id"], "turn_index": row["turn_index"], "dataset": row["dataset"],
                "candidate_id": row["candidate_id"], "task": row["task"], "score": row["score"],
                "model_name": row["model_name"], "model_version": row["model_version"], "model": agent(row),
                "verdict": row["verdict"], "status": row["status"], "reviewers": row.get("reviewers") or []}
        if row.get("verdict") == "correct" and answer == "accept":
            meta["proposed_value"] = as_json_text(row["proposed_value"])
        example: dict = {"text": row["text"]}
        kind, payload, unlocated = split_value(row["task"], value, row["text"])
        if kind == "spans":
            example["spans"] = [{"start": s.start, "end": s.end, "label": s.type} for s in payload]
            meta["span_located"], meta["unlocated_slots"] = not unlocated, unlocated
            question = example["spans"]
        else:
            example["label"] = payload
            meta["span_located"] = None
            if kind == "json":
                meta["values_as_json"] = True
            question = payload
        example["meta"] = meta
        example["_input_hash"] = _hash(row["text"])
        example["_task_hash"] = _hash(example["_input_hash"], row["task"], question)
        example["answer"] = answer
        if answer != "ignore":
            example["_annotator_id"] = "+".join(row.get("reviewers") or []) or "unattributed"
        out.append(example)
    return out, left_out


def write_prodigy(rows: list[dict], path: str | Path) -> tuple[int, int]:
    """Write rows as Prodigy db-out JSONL. Returns (examples written, rows left out)."""
    examples, left_out = prodigy_examples(rows)
    write_jsonl(examples, path)
    return len(examples), left_out
