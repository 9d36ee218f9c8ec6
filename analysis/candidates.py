"""Label candidates: what a model proposes for a target (a turn, a dialogue, a pair of utterances), with a
score in [0, 1] and the model run that produced it. Reading and validating candidate files, and the
candidates the logged NLU output itself proposes.

A candidate file is JSON Lines or Parquet, one proposal per record:

    task              string, e.g. intent, slots, goal_start, goal_success, failure_point, skill, rewrite
    dialogue_id       string, the target dialogue
    turn_index        int >= 0, the target turn (absent or null: the whole dialogue)
    other_dialogue_id string, with other_turn_index: the second utterance of a pair target
    other_turn_index  int >= 0
    value             any JSON value: the proposed label
    score             number in [0, 1]: the model's confidence; higher means more likely right
    distribution      object (optional): the model's full probability vector, label -> probability, every
                      probability in [0, 1], summing to 1 (within 1e-6); when value is a string it must be
                      one of the labels, with score as its probability (within 1e-6). In Parquet: a JSON
                      string, a map or a struct column.
    model_name        string
    model_version     string
    model_parameters  object (optional)
    run_at            ISO 8601 time the model ran (optional)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.logs import LogFormatError, Problem, file_kind, jsonl_records

KNOWN_TASKS = ("intent", "slots", "goal_start", "goal_success", "failure_point", "skill", "rewrite", "items",
               "transcript")
_TASK_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELDS = ("task", "dialogue_id", "turn_index", "other_dialogue_id", "other_turn_index", "value", "score",
           "distribution", "model_name", "model_version", "model_parameters", "run_at")
DISTRIBUTION_TOLERANCE = 1e-6
# Schema metadata key of a candidate table whose producer built every distribution from numbers it checked as
# check_distribution would (each in [0, 1], each row summing to 1, its value's probability its score) and spelled
# canonically: the store then does not parse and check them again row by row (17 s per million rows). Set only by
# code that makes the column itself (analysis.failure_points.scoring.candidate_table), never from a file; its
# value is checked_mark(table), so a table whose rows, scores or vectors were changed after marking is checked.
DISTRIBUTIONS_CHECKED = b"turnlens.distributions_checked"


def checked_mark(table: pa.Table) -> bytes:
    """A cheap digest of a candidate table's values, scores and distributions, row by row (see
    DISTRIBUTIONS_CHECKED): not proof against forgery, which only in-process code could attempt, but against a
    column changed, a value swapped or rows reordered after marking. b"" for a table of other column types."""
    value, score, vectors = (table.column(name) for name in ("value", "score", "distribution"))
    if not (pa.types.is_string(value.type) and pa.types.is_string(vectors.type)
            and pa.types.is_float64(score.type)):
        return b""
    labels = sorted(pc.unique(pc.drop_null(value)).to_pylist())
    codes = pc.fill_null(pc.index_in(value, value_set=pa.array(labels, pa.string())), -1).to_numpy()
    lengths = pc.fill_null(pc.binary_length(vectors), -1).to_numpy()
    scores = pc.fill_null(score, -1.0).to_numpy()
    row = np.arange(1, table.num_rows + 1, dtype=np.float64)
    parts = [table.num_rows, labels, float(scores.sum()), float((codes * scores).sum()), float((codes * row).sum()),
             float((lengths * scores).sum()), float((lengths * row).sum()), float((scores * row).sum())]
    return repr(parts).encode()


CANDIDATE_SCHEMA = pa.schema([
    ("task", pa.string()), ("target_kind", pa.string()), ("dialogue_id", pa.string()),
    ("turn_index", pa.int64()), ("other_dialogue_id", pa.string()), ("other_turn_index", pa.int64()),
    ("target_key", pa.string()), ("value", pa.string()), ("score", pa.float64()),
    ("distribution", pa.string()),  # canonical JSON object label -> probability, or null (check_distribution)
    ("model_name", pa.string()), ("model_version", pa.string()), ("model_parameters", pa.string()),
    ("run_at", pa.timestamp("us", tz="UTC")),
])


def is_task_name(task: object) -> bool:
    """Whether task is a task name: a lowercase identifier of at most 64 characters, the rule candidate files
    are checked against (the exports use task names as field names)."""
    return isinstance(task, str) and _TASK_RE.fullmatch(task) is not None


def target_key(dialogue_id: str, turn_index: int | None, other_dialogue_id: str | None = None,
               other_turn_index: int | None = None) -> tuple[str, str]:
    """(target_kind, a canonical key) for a target; proposals with the same key are about the same thing."""
    if other_dialogue_id is not None:
        return "pair", json.dumps([dialogue_id, turn_index, other_dialogue_id, other_turn_index])
    if turn_index is None:
        return "dialogue", json.dumps([dialogue_id])
    return "turn", json.dumps([dialogue_id, turn_index])


def canonical_json(value: object) -> str:
    """One spelling per value, so equal proposals compare equal as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_distribution(distribution: object, *, value: object = None, score: float | None = None) -> str:
    """A candidate's full probability vector, validated, as canonical JSON (labels sorted, floats).

    distribution: a non-empty mapping label (string) -> probability, each a number in [0, 1], summing to 1
    within DISTRIBUTION_TOLERANCE. When value is a string (the candidate's decoded value) and score is given,
    value must be one of the labels with score as its probability (within the same tolerance); other values
    (lists, objects, booleans) are not checked against the labels. Raises ValueError saying what is wrong.
    """
    if not isinstance(distribution, dict) or not distribution:
        raise ValueError("expected a non-empty object mapping each label to its probability")
    for label, p in distribution.items():
        if not isinstance(label, str):
            raise ValueError(f"labels must be strings, got {label!r}")
        if not isinstance(p, int | float) or isinstance(p, bool) or math.isnan(p):
            raise ValueError(f"the probability of {label!r} must be a number in [0, 1], got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"the probability of {label!r}, {p}, is outside [0, 1]")
    total = math.fsum(distribution.values())
    if abs(total - 1) > DISTRIBUTION_TOLERANCE:
        raise ValueError(f"the probabilities sum to {total:.9g}, not 1")
    if isinstance(value, str) and score is not None:
        if value not in distribution:
            raise ValueError(f"has no probability for the proposed value {value!r}")
        if abs(distribution[value] - score) > DISTRIBUTION_TOLERANCE:
            raise ValueError(f"gives the proposed value {value!r} probability {distribution[value]}, "
                             f"but its score is {score}")
    return canonical_json({label: float(p) for label, p in distribution.items()})


def _check(rec: dict, name: str, line: int) -> tuple[dict | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(name, line, field, message))

    task = rec.get("task")
    if not isinstance(task, str) or not _TASK_RE.match(task):
        bad("task", "required: a lowercase identifier such as " + ", ".join(KNOWN_TASKS[:4]) + ", ...")
    for field in ("dialogue_id", "model_name", "model_version"):
        v = rec.get(field)
        if not isinstance(v, str) or not v.strip():
            bad(field, "required: a non-empty string")
    for field in ("turn_index", "other_turn_index"):
        v = rec.get(field)
        if v is not None and (not _is_int(v) or v < 0):
            bad(field, f"expected an integer >= 0, got {v!r}")
    other = rec.get("other_dialogue_id")
    if other is not None and not isinstance(other, str):
        bad("other_dialogue_id", "expected a string")
    if (other is None) != (rec.get("other_turn_index") is None):
        bad("other_turn_index", "a pair target needs both other_dialogue_id and other_turn_index")
    if other is not None and rec.get("turn_index") is None:
        bad("turn_index", "a pair target needs turn_index")
    if "value" not in rec or rec["value"] is None:
        bad("value", "required: the proposed label (any JSON value but null)")
    score = rec.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or math.isnan(score):
        bad("score", f"required: a number in [0, 1], got {score!r}")
    elif not 0 <= score <= 1:
        bad("score", f"{score} is outside [0, 1]")
    distribution = None
    if rec.get("distribution") is not None:
        # the value and score are checked against it only when they are valid themselves
        ok = not any(p.field in ("value", "score") for p in problems)
        try:
            distribution = check_distribution(rec["distribution"], value=rec["value"] if ok else None,
                                              score=float(score) if ok else None)
        except ValueError as exc:
            bad("distribution", str(exc))
    params = rec.get("model_parameters")
    if params is not None and not isinstance(params, dict):
        bad("model_parameters", "expected an object")
    run_at = rec.get("run_at")
    when = None
    if run_at is not None:
        try:
            when = datetime.fromisoformat(run_at) if isinstance(run_at, str) else run_at
            if not isinstance(when, datetime):
                raise ValueError
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        except ValueError:
            bad("run_at", f"{run_at!r} is not an ISO 8601 time")
    unknown = sorted(set(rec) - set(_FIELDS))
    if unknown:
        bad(unknown[0], "unknown field (candidate fields: " + ", ".join(_FIELDS) + ")")
    if problems:
        return None, problems
    kind, key = target_key(rec["dialogue_id"], rec.get("turn_index"), other, rec.get("other_turn_index"))
    return {
        "task": task, "target_kind": kind, "dialogue_id": rec["dialogue_id"], "turn_index": rec.get("turn_index"),
        "other_dialogue_id": other, "other_turn_index": rec.get("other_turn_index"), "target_key": key,
        "value": canonical_json(rec["value"]), "score": float(score), "distribution": distribution,
        "model_name": rec["model_name"].strip(),
        "model_version": rec["model_version"].strip(), "model_parameters": canonical_json(params or {}),
        "run_at": when,
    }, []


def _parquet_distribution(cell: object) -> object:
    """A distribution cell of a Parquet file as a dict where it has one of the accepted spellings: JSON
    text, a map column (a list of (label, probability) pairs) or a struct column (a dict whose absent
    labels read as null: a struct has every label of the column). Anything else is left for the check."""
    if isinstance(cell, str):
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            return cell
    if isinstance(cell, list) and all(isinstance(p, tuple) and len(p) == 2 for p in cell):
        return dict(cell)
    if isinstance(cell, dict):
        return {label: p for label, p in cell.items() if p is not None}
    return cell


def _records(path: Path, name: str) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    kind = file_kind(name)
    if kind == "parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as exc:
            raise LogFormatError([Problem(name, None, None, f"cannot be read as Parquet ({exc})")]) from exc
        for i, row in enumerate(rows, start=1):
            if isinstance(row.get("model_parameters"), str):  # Parquet has no free-form objects
                try:
                    row["model_parameters"] = json.loads(row["model_parameters"])
                except json.JSONDecodeError:
                    pass
            row["distribution"] = _parquet_distribution(row.get("distribution"))
            yield i, {k: v for k, v in row.items() if v is not None or k == "value"}, []
        return
    if kind not in ("jsonl", "jsonl.gz"):
        raise LogFormatError([Problem(name, None, None, "unsupported file type; candidates are .jsonl, "
                                                         ".jsonl.gz or .parquet")])
    # The log reader's strict rules (objects only, bounded nesting, no duplicate keys, finite numbers, valid
    # Unicode) and its bounded-memory reading of .jsonl.gz.
    yield from jsonl_records(path, name)


def read_candidates(path: str | Path, *, name: str | None = None) -> pa.Table:
    """Read and validate a candidate file into CANDIDATE_SCHEMA; all or nothing (LogFormatError).

    Checks each record's fields and that no (model run, task, target) appears twice. Whether the targets
    exist is the store's check (it knows the turns).

    path may also name a set of Parquet parts (a folder, hive-partitioned or not, or a glob: what Spark and
    `turnlens score --engine ray` write; analysis.parquet_parts): every part is read, each problem names its
    part and row, and a (model run, task, target) in two parts is refused like one twice in a file.
    """
    from analysis.parquet_parts import list_parts, names_parts, read_parts

    if names_parts(path):
        table = read_parts(list_parts(path), lambda part, part_name: read_candidates(part, name=part_name))
        _refuse_repeats_across_parts(table, name or str(path))
        return table
    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise LogFormatError([Problem(name, None, None, "no such file")])
    if path.stat().st_size == 0:
        raise LogFormatError([Problem(name, None, None, "file is empty (no candidates)")])
    return candidates_table(_records(path, name), name)


def _refuse_repeats_across_parts(table: pa.Table, name: str) -> None:
    """Each part was checked on its own; a (model run, task, target) proposed in two parts is refused here."""
    keys = ["model_name", "model_version", "model_parameters", "task", "target_key"]
    counts = table.select(keys).group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        problems = [Problem(name, None, "task", f"the same model run ({r['model_name']} {r['model_version']}) proposes "
                                                f"for the {r['task']} target {r['target_key']} in {r['count_all']} "
                                                "parts")
                    for r in repeated.slice(0, 20).to_pylist()]
        raise LogFormatError(problems)


def candidates_table(records: Iterable[tuple[int | None, dict | None, list[Problem]]], name: str) -> pa.Table:
    """Candidate records in the file format above -> CANDIDATE_SCHEMA, all or nothing (LogFormatError).

    records: (line, record or None, problems already found for it), as a reader yields them; line may be None
    where the source has no lines. The same checks read_candidates makes, for the other tools' adapters
    (analysis/interop/), which turn their items into these records first.
    """
    rows: list[dict] = []
    problems: list[Problem] = []
    seen: dict[tuple, int | None] = {}
    for line, rec, found in records:
        problems.extend(found)
        if rec is None:
            continue
        row, bad = _check(rec, name, line)
        problems.extend(bad)
        if row is None:
            continue
        key = (row["model_name"], row["model_version"], row["model_parameters"], row["task"], row["target_key"])
        if key in seen:
            also = f" (also line {seen[key]})" if seen[key] is not None else ""
            problems.append(Problem(name, line, "task", f"the same model run proposes for this {row['task']} "
                                                        f"target twice{also}"))
            continue
        seen[key] = line
        rows.append(row)
    if problems:
        raise LogFormatError(problems)
    if not rows:
        raise LogFormatError([Problem(name, None, None, "file is empty (no candidates)")])
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def candidates_from_logged_nlu(turns: pa.Table, *, version: str = "logged") -> pa.Table:
    """The production NLU's own output as candidates: its intent (and its slots) for every turn, scored by
    the logged NLU confidence. These are real proposals with real scores: exactly what a reviewer should
    check before the logs become training data. Turns without an intent or a confidence propose nothing.
    """
    rows: list[dict] = []
    cols = {c: turns.column(c).to_pylist() for c in ("dialogue_id", "turn_index", "nlu_intent", "nlu_slots",
                                                      "nlu_confidence")}
    for i in range(turns.num_rows):
        intent, conf = cols["nlu_intent"][i], cols["nlu_confidence"][i]
        if intent is None or conf is None:
            continue
        kind, key = target_key(cols["dialogue_id"][i], cols["turn_index"][i])
        base = {"target_kind": kind, "dialogue_id": cols["dialogue_id"][i], "turn_index": cols["turn_index"][i],
                "other_dialogue_id": None, "other_turn_index": None, "target_key": key, "score": float(conf),
                "distribution": None, "model_name": "logged-nlu", "model_version": version,
                "model_parameters": "{}", "run_at": None}
        rows.append({**base, "task": "intent", "value": canonical_json(intent)})
        slots = cols["nlu_slots"][i]
        if slots:
            rows.append({**base, "task": "slots", "value": canonical_json(slots)})
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
