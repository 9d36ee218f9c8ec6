"""The dialogue-log format, version 1: one declaration from which the Arrow schema, the JSON Schema
and the validator are all derived, so the three can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

FORMAT_VERSION = 1

FAILURE_POINTS = ("NO_FAILURE", "WAKEWORD", "ASR", "NLU", "ENTITY_RESOLUTION", "RESPONSE", "TTS")

SLOT_TYPE = pa.struct([("type", pa.string()), ("value", pa.string())])


@dataclass(frozen=True)
class Field:
    """One flat field of a turn record.

    kind is one of: string, int, float, bool, timestamp, string_list, float_list, slots.
    """

    name: str
    kind: str
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None


FIELDS: tuple[Field, ...] = (
    # required
    Field("dialogue_id", "string", "Identifier of the dialogue (session) the turn belongs to.", required=True),
    Field("turn_index", "int", "Position of the turn in its dialogue, from 0.", required=True, minimum=0),
    Field("timestamp", "timestamp", "When the request was made, ISO 8601 (a time zone offset or Z; naive times are read as UTC).", required=True),
    Field("asr_text", "string", "The recogniser's 1-best transcript of the request.", required=True),
    # identity and context
    Field("user_id", "string", "The account that made the request."),
    Field("device_type", "string", "Kind of device, e.g. speaker, phone, car."),
    Field("locale", "string", "Locale of the request, e.g. en-US."),
    Field("speaker_id", "string", "The person speaking (several speakers may share an account)."),
    Field("latitude", "float", "Where the device is, degrees.", minimum=-90, maximum=90),
    Field("longitude", "float", "Where the device is, degrees.", minimum=-180, maximum=180),
    # ASR
    Field("asr_confidence", "float", "The recogniser's confidence in its 1-best, 0..1.", minimum=0, maximum=1),
    Field("reference_text", "string", "The true transcript, where known (used for WER, never as a model input)."),
    Field("asr_nbest", "string_list", "The recogniser's n-best hypotheses, best first."),
    # NLU
    Field("nlu_domain", "string", "Domain chosen by NLU, e.g. weather."),
    Field("nlu_intent", "string", "Intent chosen by NLU, e.g. weather_query."),
    Field("nlu_slots", "slots", "Slots found by NLU: a list of {type, value}."),
    Field("nlu_confidence", "float", "NLU's confidence in its intent, 0..1.", minimum=0, maximum=1),
    Field("nlu_alt_intent", "string", "The intent NLU gives a second recognition hypothesis or a second recogniser's output, where logged."),
    # entity resolution
    Field("er_status", "string", "Entity resolution outcome.", enum=("resolved", "unresolved", "not_applicable")),
    # response
    Field("response_skill", "string", "The skill that answered."),
    Field("response_text", "string", "What the assistant said."),
    Field("response_status", "string", "How the skill ended.", enum=("success", "unhandled", "error")),
    Field("tts_status", "string", "Whether speech synthesis worked.", enum=("ok", "failed")),
    # feedback
    Field("barge_in", "bool", "The user interrupted the response."),
    Field("user_feedback", "string", "Explicit feedback, if any.", enum=("positive", "negative")),
    Field("speaker_embedding", "float_list", "A voice embedding of the speaker; the same length for all rows of a file."),
    # ground truth, for evaluation only
    Field("gold_intent", "string", "True intent (evaluation only)."),
    Field("gold_slots", "slots", "True slots (evaluation only)."),
    Field("gold_goal_start", "bool", "True if this turn starts a new goal (evaluation only)."),
    Field("gold_goal_success", "bool", "True if the goal this turn belongs to was achieved (evaluation only)."),
    Field("gold_failure_point", "string", "First component that failed irrecoverably (evaluation only).", enum=FAILURE_POINTS),
    Field("gold_skills", "string_list", "Every skill that could validly serve the request (evaluation only)."),
)

FIELD_BY_NAME = {f.name: f for f in FIELDS}
REQUIRED = tuple(f.name for f in FIELDS if f.required)

_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "string_list": pa.list_(pa.string()),
    "float_list": pa.list_(pa.float32()),
    "slots": pa.list_(SLOT_TYPE),
}


def arrow_type(field: Field) -> pa.DataType:
    return _ARROW_TYPES[field.kind]


# The normalised table every reader produces: the v1 fields, then what ingestion adds.
TURN_SCHEMA = pa.schema(
    [pa.field(f.name, arrow_type(f), nullable=not f.required) for f in FIELDS]
    + [pa.field("extras", pa.string())]  # unknown fields of the record, as a JSON object
)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one JSON Lines record."""
    props: dict[str, dict] = {}
    for f in FIELDS:
        if f.kind == "string":
            spec: dict = {"type": "string"}
        elif f.kind == "int":
            spec = {"type": "integer"}
        elif f.kind == "float":
            spec = {"type": "number"}
        elif f.kind == "bool":
            spec = {"type": "boolean"}
        elif f.kind == "timestamp":
            spec = {"type": "string", "format": "date-time"}
        elif f.kind == "string_list":
            spec = {"type": "array", "items": {"type": "string"}}
        elif f.kind == "float_list":
            spec = {"type": "array", "items": {"type": "number"}}
        else:  # slots
            spec = {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
                    "required": ["type", "value"],
                },
            }
        if f.minimum is not None:
            spec["minimum"] = f.minimum
        if f.maximum is not None:
            spec["maximum"] = f.maximum
        if f.enum is not None:
            spec["enum"] = list(f.enum)
        if not f.required:
            spec = {"anyOf": [spec, {"type": "null"}]}
        spec["description"] = f.description
        props[f.name] = spec
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://turnlens.dev/schemas/log-format-v1.json",
        "title": "turnlens dialogue-log record, format version 1",
        "description": "One turn of a dialogue. Unknown fields are allowed; turnlens keeps them in an extras column.",
        "type": "object",
        "required": list(REQUIRED),
        "properties": props,
        "additionalProperties": True,
    }


def timestamp_seconds(ts: object) -> float | None:
    """A v1 timestamp (ISO 8601 string, datetime or pandas Timestamp) as POSIX seconds; None stays None."""
    if ts is None:
        return None
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return ts.timestamp()  # type: ignore[attr-defined]
