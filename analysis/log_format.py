"""The dialogue-log format, version 1.1: one declaration from which the Arrow schema, the JSON Schema
and the validator are all derived, so the three can never disagree.

Version 1.1 adds the request's audio (``audio``, ``audio_source``), n-best hypotheses with scores (``asr_nbest``
items may be ``{text, score[, confidence]}`` objects; 1.0's plain strings are still read) and per-word
posteriors of the 1-best (``asr_word_confidence``). Every 1.0 log is a valid 1.1 log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import pyarrow as pa

FORMAT_VERSION = "1.1"

FAILURE_POINTS = ("NO_FAILURE", "WAKEWORD", "ASR", "NLU", "ENTITY_RESOLUTION", "RESPONSE", "TTS")

SLOT_TYPE = pa.struct([("type", pa.string()), ("value", pa.string())])


@dataclass(frozen=True)
class Field:
    """One flat field of a turn record.

    kind is one of: string, int, float, bool, timestamp, string_list, float_list, slots (format 1.0), and audio
    (a reference to an audio file, see ``audio_problem``) and word_confidence (one number in 0..1 per word of
    asr_text), added in 1.1. accepts names a wider input form the reader takes besides ``kind``: "nbest_objects"
    (asr_nbest, 1.1) is a list of {text, score[, confidence]} objects, read into the texts (``kind``) plus the
    parallel columns ``asr_nbest_score`` and ``asr_nbest_confidence`` of ``TURN_SCHEMA``.
    """

    name: str
    kind: str
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    accepts: str | None = None
    since: str = "1.0"


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
    Field("asr_nbest", "string_list", "The recogniser's n-best hypotheses in its own order (best first): plain strings (1.0), or {text, score, confidence} objects (1.1) where score is the recogniser's log score of the hypothesis (higher is better; comparable only within one turn) and confidence, optional, a posterior in 0..1. The first entry need not equal asr_text.", accepts="nbest_objects"),
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

# Added in format 1.1. The reader validates them and returns them in TURN_SCHEMA; the turns table stores them since
# migration m008 (audio, audio_source, asr_word_confidence, and the n-best with scores as asr_hypotheses beside
# asr_nbest's texts). FIELDS stays the 1.0 list.
FIELDS_1_1: tuple[Field, ...] = (
    Field("audio", "audio", "The request's audio: a path relative to the audio root (TURNLENS_AUDIO_ROOT), with / between folders, or an http(s) URL. A path may not be absolute, contain a .. segment or a backslash, or resolve outside the root through a symbolic link.", since="1.1"),
    Field("audio_source", "string", "Where the audio came from: recorded from a person, or synthetic (text-to-speech; every page that plays it must say so).", enum=("recorded", "synthetic"), since="1.1"),
    Field("asr_word_confidence", "word_confidence", "Per-word posteriors of the 1-best: one number in 0..1 per word of asr_text (words split on white space), in order.", minimum=0, maximum=1, since="1.1"),
)

# Every field of the format, 1.0 then 1.1: what the reader validates and the JSON Schema describes.
ALL_FIELDS: tuple[Field, ...] = FIELDS + FIELDS_1_1
FIELD_BY_NAME = {f.name: f for f in ALL_FIELDS}
REQUIRED = tuple(f.name for f in ALL_FIELDS if f.required)

# The keys of one asr_nbest object (format 1.1): text and score are required, confidence is optional.
NBEST_KEYS = ("text", "score", "confidence")
NBEST_REQUIRED = ("text", "score")

_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "string_list": pa.list_(pa.string()),
    "float_list": pa.list_(pa.float32()),
    "slots": pa.list_(SLOT_TYPE),
    "audio": pa.string(),
    "word_confidence": pa.list_(pa.float64()),
}


def arrow_type(field: Field) -> pa.DataType:
    return _ARROW_TYPES[field.kind]


# Beside asr_nbest (the texts), the parts of 1.1 n-best objects: one score per hypothesis, and one confidence per
# hypothesis (null where an object has none). Both null for a row whose n-best is plain strings (1.0) or absent.
NBEST_SCORE = "asr_nbest_score"
NBEST_CONFIDENCE = "asr_nbest_confidence"

# The normalised table every reader produces: the 1.0 fields, the 1.1 fields, the n-best parts, then what
# ingestion adds.
TURN_SCHEMA = pa.schema(
    [pa.field(f.name, arrow_type(f), nullable=not f.required) for f in ALL_FIELDS]
    + [pa.field(NBEST_SCORE, pa.list_(pa.float64())), pa.field(NBEST_CONFIDENCE, pa.list_(pa.float64()))]
    + [pa.field("extras", pa.string())]  # unknown fields of the record, as a JSON object
)


def _kind_schema(kind: str) -> dict:
    if kind == "string":
        return {"type": "string"}
    if kind == "int":
        return {"type": "integer"}
    if kind == "float":
        return {"type": "number"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "timestamp":
        return {"type": "string", "format": "date-time"}
    if kind == "string_list":
        return {"type": "array", "items": {"type": "string"}}
    if kind == "float_list":
        return {"type": "array", "items": {"type": "number"}}
    if kind == "audio":
        return {"type": "string", "anyOf": [{"pattern": AUDIO_URL_PATTERN}, {"pattern": AUDIO_PATH_PATTERN}]}
    if kind == "word_confidence":
        return {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}
    # slots
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
            "required": ["type", "value"],
        },
    }


# One asr_nbest object of format 1.1.
_NBEST_OBJECT = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "score": {"type": "number"},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": list(NBEST_REQUIRED),
    "additionalProperties": False,
}


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one JSON Lines record (format 1.1). What it cannot say, the reader
    checks too: one asr_word_confidence per word of asr_text, and an audio path's symbolic links."""
    props: dict[str, dict] = {}
    for f in ALL_FIELDS:
        spec = _kind_schema(f.kind)
        if f.accepts == "nbest_objects":
            spec = {"anyOf": [spec, {"type": "array", "items": _NBEST_OBJECT}]}
        if f.minimum is not None and f.kind in ("int", "float"):
            spec["minimum"] = f.minimum
        if f.maximum is not None and f.kind in ("int", "float"):
            spec["maximum"] = f.maximum
        if f.enum is not None:
            spec["enum"] = list(f.enum)
        if not f.required:
            spec = {"anyOf": [spec, {"type": "null"}]}
        spec["description"] = f.description + (f" (format {f.since})" if f.since != "1.0" else "")
        props[f.name] = spec
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://turnlens.dev/schemas/log-format-v1.1.json",
        "title": f"turnlens dialogue-log record, format version {FORMAT_VERSION}",
        "description": "One turn of a dialogue. Unknown fields are allowed; turnlens keeps them in an extras column. "
                       "Every format 1.0 record is a valid 1.1 record.",
        "type": "object",
        "required": list(REQUIRED),
        "properties": props,
        "additionalProperties": True,
    }


# ------------------------------------------------------------------------------------------------ audio

AUDIO_URL_SCHEMES = ("http", "https")
# What the JSON Schema can say of an audio reference (audio_problem says it with reasons): an http(s) URL with a
# host and no user name; or a relative path: no scheme-like first segment (which includes Windows drives), no
# leading /, no backslash, no .. segment, no control character, not blank, not ending in /.
AUDIO_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+([/?#]\S*)?$"
AUDIO_PATH_PATTERN = (r"^(?=.*\S)(?![A-Za-z][A-Za-z0-9+.-]*:)(?!/)(?!.*\\)(?!(.*/)?\.\.(/|$))(?!.*/$)"
                      r"[^\x00-\x1f\x7f]+$")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_audio_url(value: str) -> bool:
    """Whether an ``audio`` value is a URL (an http(s) one, if audio_problem finds nothing wrong with it)."""
    return bool(_SCHEME.match(value))


def audio_problem(value: str) -> str | None:
    """Why ``value`` is not a valid ``audio`` reference, or None if it is. Text only (no file system): whether a
    path exists, or leaves the root through a symbolic link, is ``analysis.logs.resolve_audio``'s to say.

    A path is relative to the audio root, with ``/`` between folders, taken literally (never URL-decoded): it
    may not be absolute (``/x``, ``C:x``), hold a backslash, a ``..`` segment or a control character, start with
    a scheme-like segment (``file:``), or end in ``/``. A URL must be http or https, with a host and no user
    name or password (a credential in a log would be shown to every reviewer)."""
    if not value.strip():
        return "must not be empty"
    if _CONTROL.search(value):
        return "must not contain control characters (newline, tab, NUL, ...)"
    if is_audio_url(value):
        scheme = value.split(":", 1)[0].lower()
        if len(scheme) == 1:
            return f"{value[:40]!r} is an absolute Windows path; give a path relative to the audio root"
        if scheme not in AUDIO_URL_SCHEMES:
            return f"unsupported URL scheme {scheme!r}; an audio URL must be http or https"
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError as exc:
            return f"is not a valid URL ({exc})"
        if not value.lower().startswith(scheme + "://") or not host:
            return "an http(s) URL needs a host (http://host/path)"
        if parts.username is not None or parts.password is not None:
            return "a URL must not carry a user name or password"
        if re.search(r"\s", value):
            return "a URL must not contain white space"
        return None
    if value.startswith("/"):
        return "must be relative to the audio root, not an absolute path"
    if "\\" in value:
        return "must use / between folders, not a backslash"
    if ".." in value.split("/"):
        return "must not contain a '..' segment (a path stays inside the audio root)"
    if value.endswith("/"):
        return "must name a file, not a folder (ends in /)"
    return None


def timestamp_seconds(ts: object) -> float | None:
    """A v1 timestamp (ISO 8601 string, datetime or pandas Timestamp) as POSIX seconds; None stays None."""
    if ts is None:
        return None
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return ts.timestamp()  # type: ignore[attr-defined]
