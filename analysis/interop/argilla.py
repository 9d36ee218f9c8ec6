"""Argilla (v2): records with `suggestions` in as candidates; reviewed labels out as records with `responses`.

A record (https://docs.argilla.io/latest/how_to_guides/record/) holds ``fields`` (the utterance, ``text``),
``metadata`` (here ``dialogue_id`` and ``turn_index``: the turn), ``suggestions`` (per question: ``value``,
``score``, ``agent``) and ``responses`` (per question, per user: ``value``, ``user_id``, ``status``). Both
spellings are read: ``rg.Record.to_dict()``'s (suggestions an object keyed by question, responses an object of
lists) and the API's lists of objects with ``question_name``. The question's name is the task.

Values: a string as it is; a span question's list of ``{label, start, end}`` as slots with offsets; a list of
strings (multi-label) as it is; where ``metadata.values_as_json`` is true (the export sets it for values no
Argilla question holds: booleans, objects), JSON text parsed back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

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
    reviewed_label,
    split_value,
    turn_of,
    turn_rows,
    value_from_json_text,
    write_json,
)
from analysis.interop.spans import slot_value, span_problem, with_unlocated
from analysis.logs import Problem

SUGGESTION_RUN = "argilla"  # model_name of a suggestion's candidates; its agent is the version
RESPONSE_RUN = "argilla-response"  # model_name of a submitted response's; the user id is the version
# The namespace of the user ids the export derives from reviewer names (Argilla's user_id is a UUID).
REVIEWER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/turnlens/reviewers")


def _by_question(where: Where, entries: object, path: str, many: bool,
                 problems: list[Problem]) -> list[tuple[str, str, dict]]:
    """(question, path, entry) for a record's suggestions (many=False) or responses (many=True), in either
    spelling."""
    out: list[tuple[str, str, dict]] = []
    if entries is None:
        return out
    if isinstance(entries, dict):
        for question, value in entries.items():
            for k, entry in enumerate(value if many and isinstance(value, list) else [value]):
                out.append((question, f"{path}.{question}" + (f"[{k}]" if many else ""), entry))
    elif isinstance(entries, list):
        for k, entry in enumerate(entries):
            out.append((entry.get("question_name") if isinstance(entry, dict) else None, f"{path}[{k}]", entry))
    else:
        problems.append(where.problem(path, "expected an object keyed by question, or a list"))
    return out


def _value(where: Where, path: str, value: object, text: str, as_json: bool, problems: list[Problem]) -> object:
    """An Argilla answer as a turnlens value (None after a Problem)."""
    if as_json and isinstance(value, str):
        try:
            return value_from_json_text(value)
        except ValueError as exc:
            problems.append(where.problem(path, f"metadata.values_as_json is set, but this is not JSON: {exc}"))
            return None
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        slots = []
        for k, span in enumerate(value):
            problem = span_problem(text, span.get("start"), span.get("end"), span.get("text"))
            if problem is None and not (isinstance(span.get("label"), str) and span["label"]):
                problem = f"a span needs a label, got {span.get('label')!r}"
            if problem:
                problems.append(where.problem(f"{path}[{k}]", problem))
            else:
                slots.append(slot_value(text, span["label"], span["start"], span["end"]))
        return slots if len(slots) == len(value) else None
    if value is None:
        problems.append(where.problem(path, "required: the answer (null proposes nothing)"))
    return value


def read_argilla(path: str | Path, *, name: str | None = None, turn_texts: TurnTexts | None = None) -> ReadResult:
    """Read Argilla records (.json array, e.g. ``dataset.records.to_json``'s, or .jsonl) into candidates, all or
    nothing (LogFormatError naming file, item and field). Suggestions become candidates of run ('argilla',
    agent) with their score (required); submitted responses (status 'submitted', or none given, as to_dict
    writes them) become candidates of run ('argilla-response', user_id) with score 1; draft and discarded
    responses propose nothing and are counted. metadata.unlocated_suggestion / unlocated_response (the
    export's) add the slots not found in the text."""
    name = name or str(path)
    problems: list[Problem] = []
    proposals = []
    skipped: Counter[str] = Counter()
    items = 0
    for where, record in read_items(path, name):
        items += 1
        if not isinstance(record, dict):
            problems.append(where.problem("", "expected an Argilla record (an object with fields)"))
            continue
        metadata = record.get("metadata")
        turn = turn_of(where, metadata, "metadata", problems)
        text = item_text(where, record.get("fields"), "fields.text", problems)
        if turn is None or text is None:
            continue
        as_json = bool(metadata.get("values_as_json"))
        found = 0
        for many, key in ((False, "suggestions"), (True, "responses")):
            for question, path_, entry in _by_question(where, record.get(key), key, many, problems):
                if not isinstance(entry, dict):
                    problems.append(where.problem(path_, "expected an object with value"))
                    continue
                if not check_task(where, f"{path_}.question_name" if isinstance(record.get(key), list) else path_,
                                  question, problems):
                    continue
                if many:
                    status = entry.get("status") or "submitted"
                    if status != "submitted":
                        skipped[f"response {status}"] += 1
                        continue
                    user = entry.get("user_id")
                    if user in (None, ""):
                        problems.append(where.problem(f"{path_}.user_id", "required: who responded (provenance)"))
                        continue
                    run, score = (RESPONSE_RUN, str(user)), HUMAN_SCORE
                else:
                    who = entry.get("agent")
                    if not isinstance(who, str) or not who.strip():
                        problems.append(where.problem(f"{path_}.agent", "required: the model that suggested it "
                                                                        f"(provenance), got {who!r}"))
                        continue
                    raw = entry.get("score")
                    if isinstance(raw, list):  # a span suggestion may score each span: the weakest speaks for all
                        raw = min(raw) if raw and all(isinstance(s, int | float) for s in raw) else raw
                    score = check_score(where, f"{path_}.score", raw, problems)
                    if score is None:
                        continue
                    run = (SUGGESTION_RUN, who.strip())
                value = _value(where, f"{path_}.value", entry.get("value"), text, as_json, problems)
                extra = metadata.get(f"unlocated_{'response' if many else 'suggestion'}")
                if value is not None and extra:
                    try:
                        if not isinstance(value, list):
                            raise ValueError("the answer is not a slot list")
                        value = with_unlocated(value, value_from_json_text(extra))
                    except (ValueError, TypeError, KeyError) as exc:
                        problems.append(where.problem(f"metadata.unlocated_{'response' if many else 'suggestion'}",
                                                      f"expected JSON text of a list of {{type, value}}: {exc}"))
                        continue
                if value is None:
                    continue
                found += 1
                proposals.append(proposal(where, turn, text, task=question, value=value, score=score, run=run,
                                          turn_field="metadata.dialogue_id", text_field="fields.text"))
        if not found:
            skipped["record without suggestions or submitted responses"] += 1
    return finish(name, proposals, problems, turn_texts, skipped, items)


def reviewer_id(name: str) -> str:
    """A reviewer's name as the UUID Argilla's user_id needs: the same name always gives the same id (UUID 5);
    the names themselves are in metadata.reviewers."""
    return str(uuid.uuid5(REVIEWER_NAMESPACE, name))


def _answer(task: str, value: object, text: str, as_json: bool) -> tuple[object, bool | None, list[dict]]:
    """A turnlens value as an Argilla answer: (value, every slot located? (None: no slots), slots not located).
    as_json: the record carries its values as JSON text (one of them is no string, slot list or label list)."""
    kind, payload, unlocated = split_value(task, value, text)
    if kind == "spans":
        return [{"label": s.type, "start": s.start, "end": s.end} for s in payload], not unlocated, unlocated
    return (as_json_text(value) if as_json else payload), None, []


def _needs_json(task: str, value: object) -> bool:
    return value is not None and split_value(task, value, "")[0] == "json"


def argilla_records(rows: list[dict]) -> tuple[list[dict], int]:
    """Export rows (app.store.export.list_export_rows) as Argilla records, one per candidate, in
    ``rg.Record.to_dict()``'s shape (``rg.Record.from_dict`` reads them): fields.text, metadata (turn, dataset,
    candidate, task, verdict, status, reviewers, span_located), the proposal as a suggestion (agent
    'name/version', score) and the reviewed label, if any, as one submitted response per reviewer. A rejection
    has no response (Argilla's discarded means "not answered"); metadata.verdict says 'reject'. Values no
    Argilla question holds (booleans, objects) travel as JSON text, with metadata.values_as_json true; slots
    whose value is not in the text are in metadata.unlocated_suggestion / unlocated_response (JSON text), and
    metadata.span_located is false."""
    kept, left_out = turn_rows(rows)
    records = []
    for row in kept:
        label = reviewed_label(row)
        as_json = _needs_json(row["task"], row["proposed_value"]) or _needs_json(row["task"], label)
        suggested, located, unlocated_s = _answer(row["task"], row["proposed_value"], row["text"], as_json)
        metadata = {"dialogue_id": row["dialogue_id"], "turn_index": row["turn_index"], "dataset": row["dataset"],
                    "candidate_id": row["candidate_id"], "task": row["task"], "status": row["status"],
                    "verdict": row["verdict"], "reviewers": row.get("reviewers") or []}
        record = {"id": f"turnlens-{row['candidate_id']}", "fields": {"text": row["text"]}, "metadata": metadata,
                  "suggestions": {row["task"]: {"value": suggested, "score": row["score"], "agent": agent(row),
                                                "type": "model"}},
                  "responses": {}}
        if unlocated_s:
            metadata["unlocated_suggestion"] = as_json_text(unlocated_s)
        if label is not None:
            answer, located, unlocated_r = _answer(row["task"], label, row["text"], as_json)
            record["responses"] = {row["task"]: [{"value": answer, "user_id": reviewer_id(r), "status": "submitted"}
                                                 for r in row.get("reviewers") or ["unattributed"]]}
            if unlocated_r:
                metadata["unlocated_response"] = as_json_text(unlocated_r)
        metadata["span_located"] = located
        if as_json:
            metadata["values_as_json"] = True
        records.append(record)
    return records, left_out


def write_argilla(rows: list[dict], path: str | Path) -> tuple[int, int]:
    """Write rows as a JSON array of Argilla records. Returns (records written, rows left out)."""
    records, left_out = argilla_records(rows)
    write_json(records, path)
    return len(records), left_out
