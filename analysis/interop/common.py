"""What the three adapters share: reading a tool's file (a JSON array or JSON Lines), naming where a problem is,
finding the turn an item belongs to, and the rows the exports start from.

Where a problem is: in JSON Lines, the line (``file:LINE: field: message``); in a JSON array, the item's
position as a JSON path in the field (``file: [3].data.dialogue_id: message``, items counted from 0, as
the tools' own JSON is indexed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from analysis.candidates import candidates_table, canonical_json, is_task_name
from analysis.interop.spans import is_slot_list, slot_spans
from analysis.logs import LogFormatError, Problem, file_kind, jsonl_records

# Looks up the stored text of turns: {(dialogue_id, turn_index): asr_text} for those of keys that exist. The
# store provides it (app.store.candidates.get_turn_texts); analysis stays free of SQL.
TurnTexts = Callable[[list[tuple[str, int]]], dict[tuple[str, int], str]]

HUMAN_SCORE = 1.0  # a person's label (an annotation, a response, an accepted answer) has no score of its own


@dataclass(frozen=True)
class Where:
    """Where an item is in its file: a line of JSON Lines, or a position in a JSON array."""

    file: str
    line: int | None
    index: int | None

    def problem(self, path: str, message: str) -> Problem:
        """A Problem about the item's field at path (a dotted path inside the item, '' for the item)."""
        if self.line is not None:
            return Problem(self.file, self.line, path or None, message)
        return Problem(self.file, None, f"[{self.index}]" + (f".{path}" if path else ""), message)


@dataclass
class Proposal:
    """One candidate an item proposes, before the turn checks: a candidate record (analysis.candidates' file
    format) and the field paths to name if its turn or text is wrong."""

    where: Where
    record: dict
    turn_field: str  # e.g. data.dialogue_id
    text_field: str  # where the item gives the utterance, e.g. data.text
    text: str


@dataclass
class ReadResult:
    """What an adapter read: the candidates (analysis.candidates.CANDIDATE_SCHEMA) and how many items proposed
    nothing, by reason (e.g. 'answer reject': the annotator rejected the label), so nothing is dropped unsaid."""

    table: object  # pyarrow.Table
    skipped: dict[str, int] = field(default_factory=dict)
    items: int = 0


def read_items(path: str | Path, name: str) -> Iterator[tuple[Where, object]]:
    """(where, item) for each item of a tool's file: a .json file holding one array of items (or one item),
    or a .jsonl / .jsonl.gz file with one item per line (read as strictly as logs are). Raises LogFormatError
    for a file that is neither, naming the file (and the line, for JSON Lines)."""
    path = Path(path)
    if not path.exists():
        raise LogFormatError([Problem(name, None, None, "no such file")])
    if path.stat().st_size == 0:
        raise LogFormatError([Problem(name, None, None, "file is empty (no items)")])
    if name.lower().endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            raise LogFormatError([Problem(name, line, None, f"is not valid JSON ({exc})")]) from exc
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            yield Where(name, None, i), item
        return
    if file_kind(name) not in ("jsonl", "jsonl.gz"):
        raise LogFormatError([Problem(name, None, None, "unsupported file type; use .json (an array of items), "
                                                         ".jsonl or .jsonl.gz")])
    problems: list[Problem] = []
    for line, rec, found in jsonl_records(path, name):
        if found:
            problems.extend(found)
        elif rec is not None:
            yield Where(name, line, None), rec
    if problems:
        raise LogFormatError(problems)


def _refuse_constant(token: str) -> object:
    raise ValueError(f"{token} is not JSON")


def turn_of(where: Where, holder: object, base: str, problems: list[Problem]) -> tuple[str, int] | None:
    """(dialogue_id, turn_index) from holder[dialogue_id] and holder[turn_index] (holder: the item's data,
    metadata or meta object, found at base), or None after adding a Problem naming the missing field."""
    if not isinstance(holder, dict):
        problems.append(where.problem(base, "required: an object with dialogue_id and turn_index (the turn "
                                            "this item labels; see docs/interop.md)"))
        return None
    did, ti = holder.get("dialogue_id"), holder.get("turn_index")
    ok = True
    if not isinstance(did, str) or not did.strip():
        problems.append(where.problem(f"{base}.dialogue_id", f"required: the turn's dialogue id, got {did!r}"))
        ok = False
    if not isinstance(ti, int) or isinstance(ti, bool) or ti < 0:
        problems.append(where.problem(f"{base}.turn_index", f"required: the turn's index (an integer >= 0), "
                                                            f"got {ti!r}"))
        ok = False
    return (did, ti) if ok else None


def check_task(where: Where, path: str, task: object, problems: list[Problem]) -> bool:
    """Whether task (a tool's question / control name) can be a turnlens task name; else a Problem."""
    if is_task_name(task):
        return True
    problems.append(where.problem(path, f"{task!r} cannot be a turnlens task name (a lowercase identifier such "
                                        "as intent or slots; name the tool's control after the task)"))
    return False


def check_score(where: Where, path: str, score: object, problems: list[Problem]) -> float | None:
    """score as a float in [0, 1], or None after a Problem naming path."""
    if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 1:
        return float(score)
    problems.append(where.problem(path, f"required: the model's confidence, a number in [0, 1], got {score!r}"))
    return None


def check_turns(proposals: list[Proposal], turn_texts: TurnTexts | None, problems: list[Problem]) -> None:
    """Every proposal's turn must be stored, and the text its item carries must be the turn's stored text: the
    offsets of its spans (checked against the item's text by the adapters) count characters of that text.
    Without turn_texts (no store at hand), nothing is checked here; the store refuses unknown turns anyway."""
    if turn_texts is None or not proposals:
        return
    keys = sorted({(p.record["dialogue_id"], p.record["turn_index"]) for p in proposals})
    stored = turn_texts(keys)
    reported: set[tuple] = set()
    for p in proposals:
        key = (p.record["dialogue_id"], p.record["turn_index"])
        where = (p.where.line, p.where.index)
        if where in reported:  # one item, several proposals: say it once
            continue
        if key not in stored:
            problems.append(p.where.problem(p.turn_field, f"no turn {key[1]} of dialogue {key[0]!r} among the "
                                                          "stored turns (ingest the logs first)"))
            reported.add(where)
        elif p.text != stored[key]:
            problems.append(p.where.problem(p.text_field, f"the item's text {p.text!r} is not the stored turn's "
                                                          f"text {stored[key]!r}; span offsets would point at the "
                                                          "wrong characters"))
            reported.add(where)


def item_text(where: Where, holder: object, path: str, problems: list[Problem]) -> str | None:
    """The utterance an item carries (holder[key], path naming it), required: span offsets count its
    characters, and it is checked against the stored turn's text."""
    key = path.rsplit(".", 1)[-1]
    text = holder.get(key) if isinstance(holder, dict) else None
    if not isinstance(text, str):
        problems.append(where.problem(path, f"required: the utterance (a string), got {text!r}"))
        return None
    return text


def split_value(task: str, value: object, text: str) -> tuple[str, object, list[dict]]:
    """How a turnlens value travels in a tool's format: ('spans', [SlotSpan located], [slots not located]) for
    a slot list (the slots task, or any list of {type, value} objects); ('string', value, []) for a string;
    ('json', canonical JSON text, []) for anything else (booleans, numbers, lists of strings, objects), which
    the tools' free-text answers carry and the importers parse back."""
    if isinstance(value, list) and (task == "slots" or is_slot_list(value)) \
            and all(isinstance(v, dict) for v in value):
        spans = slot_spans(text, value)
        # a slot without offsets keeps its index (at), so the importers put it back in its place
        return "spans", [s for s in spans if s.located], [{"type": s.type, "value": s.value, "at": i}
                                                          for i, s in enumerate(spans) if not s.located]
    if isinstance(value, str):
        return "string", value, []
    return "json", canonical_json(value), []


def finish(name: str, proposals: list[Proposal], problems: list[Problem], turn_texts: TurnTexts | None,
           skipped: dict[str, int], items: int) -> ReadResult:
    """The adapters' last step: the turn checks, then analysis.candidates' own checks, all or nothing. The
    same proposal twice (the same run, task, turn, value and score: one reviewer labelling two candidates
    of a turn alike, say) is kept once; the same run proposing two different things for a target is an error."""
    check_turns(proposals, turn_texts, problems)
    if problems:
        raise LogFormatError(problems)
    seen: set[tuple] = set()
    records = []
    for p in proposals:
        r = p.record
        key = (r["model_name"], r["model_version"], r["task"], r["dialogue_id"], r["turn_index"],
               canonical_json(r["value"]), r["score"])
        if key in seen:
            skipped["the same proposal again"] = skipped.get("the same proposal again", 0) + 1
            continue
        seen.add(key)
        records.append((p.where.line, r, []))
    if not records:
        raise LogFormatError([Problem(name, None, None, "no item proposes a label (nothing to import)"
                                      + (": " + ", ".join(f"{n} {why}" for why, n in skipped.items())
                                         if skipped else ""))])
    return ReadResult(candidates_table(records, name), dict(skipped), items)


def proposal(where: Where, turn: tuple[str, int], text: str, *, task: str, value: object, score: float,
             run: tuple[str, str], turn_field: str, text_field: str) -> Proposal:
    """A Proposal: a candidate record for the turn, from the run (model_name, model_version)."""
    record = {"task": task, "dialogue_id": turn[0], "turn_index": turn[1], "value": value, "score": score,
              "model_name": run[0], "model_version": run[1]}
    return Proposal(where, record, turn_field, text_field, text)


def turn_rows(rows: list[dict]) -> tuple[list[dict], int]:
    """The export rows the tools can take, and how many cannot: a tool's item is one utterance, so rows whose
    target is a whole dialogue or a pair of turns (or whose turn has no text) are left out and counted (the
    exporters report the count; the JSON Lines and Parquet exports hold them)."""
    kept = [r for r in rows if r.get("target_kind") == "turn" and isinstance(r.get("text"), str)]
    return kept, len(rows) - len(kept)


def agent(row: dict) -> str:
    """A row's model run as one string, for tools that name a model by one string (Label Studio's
    model_version, Argilla's agent)."""
    return f"{row['model_name']}/{row['model_version']}"


def reviewed_label(row: dict) -> object | None:
    """The label a person gave (accepted or corrected, agreed or adjudicated), or None."""
    if row.get("status") in ("agreed", "adjudicated") and row.get("verdict") in ("accept", "correct"):
        return row.get("label")
    return None


def write_json(items: list, path: str | Path) -> None:
    """items as one JSON array (Label Studio's and Argilla's JSON exports), UTF-8, text as it is."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(items, ensure_ascii=False))  # one shot, no indent: json's C encoder, not chunks
        out.write("\n")


def write_jsonl(items: list, path: str | Path) -> None:
    """items one per line (Prodigy's db-out)."""
    with open(path, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


def value_from_json_text(text: object) -> object:
    """A value a tool holds as JSON text (a free-text answer carrying a non-string turnlens value)."""
    if not isinstance(text, str):
        raise ValueError(f"expected JSON text, got {text!r}")
    return json.loads(text)


def as_json_text(value: object) -> str:
    """A turnlens value as the JSON text a free-text answer carries (value_from_json_text reads it back)."""
    return canonical_json(value)

