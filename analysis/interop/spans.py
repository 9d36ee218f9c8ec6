"""Slot values as character spans of the utterance: locating a value in the text, and checking the offsets
another tool gives. Shared by the Label Studio, Argilla and Prodigy adapters.

A turnlens slot is ``{"type": ..., "value": ...}``; an imported one may also carry ``start`` and ``end``,
character offsets into the turn's text (Python string indices: code points, end exclusive), which is what
Label Studio's and Argilla's span results and Prodigy's ``spans`` use as well.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlotSpan:
    """One slot of a value, with where it lies in the text (start, end: None when it could not be located)."""

    type: str
    value: str
    start: int | None
    end: int | None
    # the text's own characters at the span: what span formats quote and read back as the slot's value. It
    # differs from value only in case, where the value was found case-insensitively (docs/interop.md, lossy).
    quoted: str | None = None

    @property
    def located(self) -> bool:
        return self.start is not None


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in taken)


def _whole_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def _occurrences(haystack: str, needle: str) -> list[int]:
    """Every start of needle in haystack, overlapping ones included (str.find: no pattern to compile per value)."""
    found, at = [], haystack.find(needle)
    while at != -1:
        found.append(at)
        at = haystack.find(needle, at + 1)
    return found


def locate(text: str, value: str, taken: list[tuple[int, int]] | None = None) -> tuple[int, int] | None:
    """Where value lies in text: (start, end), or None. Preference, first match wins: an exact whole-word
    occurrence, an exact one inside a word, a case-insensitive whole-word one, a case-insensitive one inside a
    word; within each, the first occurrence that does not overlap a span in taken (slots already placed), so
    two slots with the same value get its two occurrences. Case-insensitive matching compares casefolded
    characters one for one, so it is used only where casefolding keeps the text's length (else offsets would
    shift); a blank value is never located."""
    value = value.strip()
    if not value:
        return None
    taken = taken or []
    folded_text, folded_value = text.casefold(), value.casefold()
    same_length = len(folded_text) == len(text) and len(folded_value) == len(value)
    for haystack, needle in ((text, value), (folded_text, folded_value) if same_length else (None, None)):
        if haystack is None:
            continue
        starts = _occurrences(haystack, needle)
        free = [s for s in starts if not _overlaps(s, s + len(needle), taken)]
        for s in free:
            if _whole_word(text, s, s + len(needle)):
                return s, s + len(needle)
        if free:
            return free[0], free[0] + len(needle)
    return None


def slot_spans(text: str, slots: list[dict]) -> list[SlotSpan]:
    """Each slot of a slot list with its span in text, in the list's order. A slot's own start/end are kept
    when they still point at its value (text[start:end] == value); otherwise the value is located (locate)."""
    placed: list[SlotSpan] = []
    taken: list[tuple[int, int]] = []
    # slots with their own valid offsets claim them first, so located ones do not take their place
    own: dict[int, tuple[int, int]] = {}
    for i, slot in enumerate(slots):
        start, end, value = slot.get("start"), slot.get("end"), str(slot.get("value", ""))
        if (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)
                and text[start:end] == value):
            own[i] = (start, end)
            taken.append((start, end))
    for i, slot in enumerate(slots):
        value = str(slot.get("value", ""))
        where = own.get(i) or locate(text, value, taken)
        if where is not None and i not in own:
            taken.append(where)
        start, end = where or (None, None)
        placed.append(SlotSpan(str(slot.get("type", "")), value, start, end,
                               text[start:end] if where is not None else None))
    return placed


def span_problem(text: str, start: object, end: object, quoted: object = None) -> str | None:
    """What is wrong with offsets another tool gives for a span of text, or None: start and end must be
    integers with 0 <= start < end <= len(text), and where the tool also quotes the span's text, it must be
    text[start:end] exactly (offsets into another text would put the slot in the wrong place)."""
    if not isinstance(start, int) or isinstance(start, bool) or not isinstance(end, int) or isinstance(end, bool):
        return f"offsets must be integers, got start {start!r}, end {end!r}"
    if not 0 <= start < end <= len(text):
        return f"offsets {start}..{end} are outside the text ({len(text)} characters) or empty"
    if quoted is not None and text[start:end] != quoted:
        return (f"offsets {start}..{end} give {text[start:end]!r} but the span's text is {quoted!r} (offsets that "
                "do not match the utterance)")
    return None


def slot_value(text: str, label: str, start: int, end: int) -> dict:
    """A turnlens slot for a checked span: its type, the text it covers and the offsets."""
    return {"type": label, "value": text[start:end], "start": start, "end": end}


def with_unlocated(located: list[dict], unlocated: list[dict]) -> list[dict]:
    """A slot list from the slots read from spans (in their order) and those that travelled without offsets,
    each put back at its index in the original list (`at`, which the exports write), so a round trip keeps
    the list's order; one without `at` goes last."""
    out = list(located)
    placed = sorted((s for s in unlocated if isinstance(s.get("at"), int)), key=lambda s: s["at"])
    for slot in placed:  # ascending: each index counts the slots before it in the original list
        out.insert(min(slot["at"], len(out)), {"type": slot["type"], "value": slot["value"]})
    out.extend({"type": s["type"], "value": s["value"]} for s in unlocated if not isinstance(s.get("at"), int))
    return out


def is_slot_list(value: object) -> bool:
    """Whether value is a turnlens slot list ({type, value} objects), the shape span formats carry."""
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, dict) and "type" in v and "value" in v for v in value))
