"""Label Studio: its tasks with `predictions` (and `annotations`) in as candidates; reviewed labels out as tasks
with `annotations`, and as Label Studio's JSON-MIN and CSV exports.

A task (https://labelstud.io/guide/task_format) is ``{"data": {...}, "predictions": [...], "annotations":
[...]}``; each prediction has ``model_version``, ``score`` and ``result``, a list of regions ``{"from_name",
"to_name", "type", "value"}``. turnlens reads, with the control's name (``from_name``) as the task:

- ``choices`` -> the chosen string (several choices: a list of them);
- ``labels`` (``value``: ``start``, ``end``, ``text``, ``labels``) -> one slot ``{type, value, start, end}``
  per label, all of a control's regions making one slot list;
- ``textarea`` -> its one text, JSON text of any other value (a boolean, an object); a textarea named
  ``<task>_unlocated`` holds slots of <task> whose value is not in the text (written by the export below;
  ``[]`` alone: an empty slot list).

The turn is ``data.dialogue_id`` and ``data.turn_index``; ``data.text`` is the utterance the offsets count.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from analysis import csv_safety
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
    reviewed_label,
    split_value,
    turn_of,
    turn_rows,
    value_from_json_text,
    write_json,
)
from analysis.interop.spans import slot_value, span_problem, with_unlocated
from analysis.logs import Problem

PREDICTION_RUN = "labelstudio"  # model_name of a prediction's candidates; its model_version is the version
ANNOTATION_RUN = "labelstudio-annotation"  # model_name of an annotation's; the version is completed_by
UNLOCATED = "_unlocated"  # suffix of the textarea holding a task's slots whose value is not in the text
TO_NAME = "text"  # the <Text name="text" value="$text"/> object of the labeling config (docs/interop.md)


def read_labelstudio(path: str | Path, *, name: str | None = None, turn_texts: TurnTexts | None = None) -> ReadResult:
    """Read Label Studio tasks (.json array, or .jsonl) into candidates, all or nothing (LogFormatError naming
    file, item and field). Each prediction's results become candidates of run ('labelstudio', its
    model_version) scored by the region's score, else the prediction's; each annotation not cancelled becomes
    candidates of run ('labelstudio-annotation', completed_by or 'unattributed') with score 1 (a person's
    label has none). turn_texts: the store's lookup of turn texts; unknown turns and texts differing from the
    stored turn's are errors."""
    name = name or str(path)
    problems: list[Problem] = []
    proposals = []
    skipped: Counter[str] = Counter()
    items = 0
    for where, task in read_items(path, name):
        items += 1
        if not isinstance(task, dict):
            problems.append(where.problem("", "expected a Label Studio task (an object with data)"))
            continue
        data = task.get("data")
        turn = turn_of(where, data, "data", problems)
        text = item_text(where, data, "data.text", problems)
        if turn is None or text is None:
            continue
        found = 0
        for kind in ("predictions", "annotations"):
            entries = task.get(kind) or []
            if not isinstance(entries, list):
                problems.append(where.problem(kind, "expected a list"))
                continue
            for j, entry in enumerate(entries):
                base = f"{kind}[{j}]"
                if not isinstance(entry, dict):
                    problems.append(where.problem(base, "expected an object with result"))
                    continue
                if kind == "annotations":
                    if entry.get("was_cancelled"):
                        skipped["annotation cancelled (skipped in Label Studio)"] += 1
                        continue
                    run = (ANNOTATION_RUN, _annotator(entry.get("completed_by")))
                else:
                    version = entry.get("model_version")
                    if not isinstance(version, str) or not version.strip():
                        problems.append(where.problem(f"{base}.model_version", "required: the model version "
                                                                               f"(provenance), got {version!r}"))
                        continue
                    run = (PREDICTION_RUN, version.strip())
                values = _results(where, base, entry.get("result"), text, problems)
                if not values and kind == "annotations":  # an empty result answers no control: it says nothing
                    skipped["annotation with an empty result"] += 1
                for task_name, (value, region_score, path) in values.items():
                    if kind == "annotations":
                        score: float | None = HUMAN_SCORE
                    elif region_score is not None:
                        score = check_score(where, f"{path}.score", region_score, problems)
                    else:
                        score = check_score(where, f"{base}.score", entry.get("score"), problems)
                    if score is None:
                        continue
                    found += 1
                    proposals.append(proposal(where, turn, text, task=task_name, value=value, score=score, run=run,
                                              turn_field="data.dialogue_id", text_field="data.text"))
        if not found and not task.get("annotations"):
            skipped["task proposing nothing (no prediction or annotation with a region)"] += 1
    return finish(name, proposals, problems, turn_texts, skipped, items)


def _annotator(completed_by: object) -> str:
    """An annotation's author as a run version: Label Studio writes a user id, or an object with id and email."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return "unattributed" if completed_by in (None, "") else str(completed_by)


def _results(where: Where, base: str, result: object, text: str,
             problems: list[Problem]) -> dict[str, tuple[object, object, str]]:
    """task -> (value, the region's own score or None, the region's path) for one prediction's or annotation's
    result list."""
    if not isinstance(result, list):
        problems.append(where.problem(f"{base}.result", "required: a list of regions"))
        return {}
    out: dict[str, tuple[object, object, str]] = {}
    slots: dict[str, list[dict]] = {}
    span_scores: dict[str, list[object]] = {}
    unlocated: dict[str, list[dict]] = {}  # slots without offsets (the <task>_unlocated textarea), by task
    first_path: dict[str, str] = {}
    for k, region in enumerate(result):
        path = f"{base}.result[{k}]"
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            problems.append(where.problem(path, "expected a region: an object with from_name, type and value"))
            continue
        kind, control, value = region.get("type"), region.get("from_name"), region["value"]
        task = control[: -len(UNLOCATED)] if kind == "textarea" and isinstance(control, str) \
            and control.endswith(UNLOCATED) else control
        if not check_task(where, f"{path}.from_name", task, problems):
            continue
        if kind == "labels":
            labels = value.get("labels")
            problem = span_problem(text, value.get("start"), value.get("end"), value.get("text"))
            if problem:
                problems.append(where.problem(f"{path}.value", problem))
            elif not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
                problems.append(where.problem(f"{path}.value.labels", f"required: a list of labels, got {labels!r}"))
            else:
                slots.setdefault(task, []).extend(slot_value(text, x, value["start"], value["end"]) for x in labels)
                first_path.setdefault(task, path)
                # Label Studio's documented NER predictions score each span (value.score): the weakest speaks
                # for the slot list, unless a span has none
                span_scores.setdefault(task, []).append(value.get("score", region.get("score")))
        elif kind == "textarea" and control != task:
            try:
                extra = value_from_json_text((value.get("text") or [None])[0])
                if not isinstance(extra, list) or not all(isinstance(s, dict) and isinstance(s.get("type"), str)
                                                          and isinstance(s.get("value"), str) for s in extra):
                    raise ValueError("expected a list of {type, value} slots")
            except ValueError as exc:
                problems.append(where.problem(f"{path}.value.text", f"slots not located in the text: {exc}"))
                continue
            unlocated.setdefault(task, []).extend(extra)
            first_path.setdefault(task, path)
        elif kind in ("choices", "textarea"):
            if task in out:
                problems.append(where.problem(f"{path}.from_name", f"a second region for {task!r} in one result"))
                continue
            if kind == "choices":
                choices = value.get("choices")
                if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                    problems.append(where.problem(f"{path}.value.choices", f"required: the chosen labels, got "
                                                                           f"{choices!r}"))
                    continue
                out[task] = (choices[0] if len(choices) == 1 else choices, region.get("score", value.get("score")),
                             path)
            else:
                texts = value.get("text")
                try:
                    if not isinstance(texts, list) or len(texts) != 1:
                        raise ValueError(f"expected one text, got {texts!r}")
                    out[task] = (value_from_json_text(texts[0]), region.get("score"), path)
                except ValueError as exc:
                    problems.append(where.problem(f"{path}.value.text", "a textarea carries a turnlens value as "
                                                                        f"JSON text: {exc}"))
        else:
            problems.append(where.problem(f"{path}.type", f"{kind!r} regions are not read (choices, labels and "
                                                          "textarea are; docs/interop.md)"))
    for task in unlocated:
        slots.setdefault(task, [])
    for task, found in slots.items():
        found = with_unlocated(found, unlocated.get(task, []))
        if task in out:
            problems.append(where.problem(first_path[task], f"{task!r} has both spans and another kind of region"))
        else:
            scores = span_scores.get(task, [])
            numeric = bool(scores) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in scores)
            out[task] = (found, min(scores) if numeric else None, first_path[task])
    return out


def _regions(task: str, value: object, text: str) -> tuple[list[dict], bool | None]:
    """A turnlens value as Label Studio regions of the control named task, and whether every slot was located
    (None for a value without slots)."""
    kind, payload, unlocated = split_value(task, value, text)
    if kind == "string":
        return [{"from_name": task, "to_name": TO_NAME, "type": "choices", "value": {"choices": [payload]}}], None
    if kind == "json":
        return [{"from_name": task, "to_name": TO_NAME, "type": "textarea", "value": {"text": [payload]}}], None
    regions = [{"id": f"{task}-{i}", "from_name": task, "to_name": TO_NAME, "type": "labels",
                "value": {"start": s.start, "end": s.end, "text": s.quoted, "labels": [s.type]}}
               for i, s in enumerate(payload)]
    # said, not dropped: the slots whose value is not in the text, in a textarea of their own; an empty slot
    # list writes it too ("[]"), as no region would leave "no slots" indistinguishable from no answer
    if unlocated or not payload:
        regions.append({"from_name": task + UNLOCATED, "to_name": TO_NAME, "type": "textarea",
                        "value": {"text": [as_json_text(unlocated)]}})
    return regions, not unlocated


def _data(row: dict) -> dict:
    return {"text": row["text"], "dialogue_id": row["dialogue_id"], "turn_index": row["turn_index"],
            "dataset": row["dataset"], "candidate_id": row["candidate_id"], "task": row["task"],
            "status": row["status"], "verdict": row["verdict"], "reviewers": row.get("reviewers") or []}


def labelstudio_tasks(rows: list[dict]) -> tuple[list[dict], int]:
    """Export rows (app.store.export.list_export_rows) as Label Studio tasks, one per candidate: data (the
    utterance, its turn, the turnlens verdict), the proposal as a prediction (model_version 'name/version',
    score) and the reviewed label, if any, as an annotation (a rejection has none: data.verdict says so; an
    empty result says nothing).
    Returns (tasks, rows left out: not turn targets).
    data.span_located is false where a slot of the label (or, without one, of the proposal) is not in the
    text; those slots are in the `<task>_unlocated` textarea."""
    kept, left_out = turn_rows(rows)
    tasks = []
    for row in kept:
        predicted, located = _regions(row["task"], row["proposed_value"], row["text"])
        task = {"id": row["candidate_id"], "data": _data(row),
                "predictions": [{"model_version": agent(row), "score": row["score"], "result": predicted}]}
        label = reviewed_label(row)
        if label is not None:  # a rejection has none: an empty result is an empty slot list (data.task's)
            result, located = _regions(row["task"], label, row["text"])
            task["annotations"] = [{"result": result, "was_cancelled": False, "ground_truth": False}]
        task["data"]["span_located"] = located
        tasks.append(task)
    return tasks, left_out


def _min_value(task: str, value: object, text: str) -> tuple[object, bool | None, list[dict]]:
    """A value as JSON-MIN writes a control's answer: a choice as its string, spans as a list of {start, end,
    text, labels}, other values as JSON text; with whether its slots were located and those that were not."""
    kind, payload, unlocated = split_value(task, value, text)
    if kind != "spans":
        return payload, None, []
    return ([{"start": s.start, "end": s.end, "text": s.quoted, "labels": [s.type]} for s in payload],
            not unlocated, unlocated)


def labelstudio_min(rows: list[dict]) -> tuple[list[dict], int]:
    """Export rows as Label Studio's JSON-MIN export: one flat object per candidate with the data fields, the
    reviewed label under its task's name (absent when there is none), annotator and the verdict;
    span_located and unlocated_slots say which slots of the label are not in the text."""
    kept, left_out = turn_rows(rows)
    out = []
    for row in kept:
        item = {"id": row["candidate_id"], **_data(row), "annotator": ", ".join(row.get("reviewers") or []),
                "model_version": agent(row), "score": row["score"]}
        label = reviewed_label(row)
        located, unlocated = None, []
        if label is not None:
            item[row["task"]], located, unlocated = _min_value(row["task"], label, row["text"])
        item["span_located"], item["unlocated_slots"] = located, unlocated
        out.append(item)
    return out, left_out


CSV_COLUMNS = ("id", "text", "dialogue_id", "turn_index", "dataset", "candidate_id", "task", "status", "verdict",
               "reviewers", "annotator", "model_version", "score", "span_located", "unlocated_slots")


def labelstudio_csv_table(rows: list[dict]) -> tuple[pa.Table, int]:
    """Export rows as Label Studio's CSV export: JSON-MIN's columns, one column per task holding the reviewed
    label (a choice as itself, spans and other values as JSON text), lists as JSON text."""
    items, left_out = labelstudio_min(rows)
    tasks = sorted({row["task"] for row in items})
    columns: dict[str, list] = {c: [] for c in (*CSV_COLUMNS, *tasks)}
    for item in items:
        for c in columns:
            v = item.get(c)
            if c in ("reviewers", "unlocated_slots") or (c in tasks and not isinstance(v, str | None)):
                v = canonical_json(v)
            columns[c].append(v)
    types = {"id": pa.int64(), "turn_index": pa.int64(), "candidate_id": pa.int64(), "score": pa.float64(),
             "span_located": pa.bool_()}
    return pa.table({c: pa.array(v, types.get(c, pa.string())) for c, v in columns.items()}), left_out


def write_labelstudio(rows: list[dict], path: str | Path, *, variant: str = "json") -> tuple[int, int]:
    """Write rows as Label Studio JSON ('json'), JSON-MIN ('min') or CSV ('csv', through the one formula-safe
    CSV writer). Returns (items written, rows left out)."""
    if variant == "csv":
        table, left_out = labelstudio_csv_table(rows)
        return csv_safety.write_csv(table, path), left_out
    items, left_out = (labelstudio_min if variant == "min" else labelstudio_tasks)(rows)
    write_json(items, path)
    return len(items), left_out
