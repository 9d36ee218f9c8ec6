"""The ``items`` candidate: what the chunker proposes for a turn, how a reviewer's correction is stored, and how an
accepted split exports as a list-valued slot. Pure functions over JSON-ready dicts.

A candidate value (canonical JSON in the store):

    {"items": ["bananas", "peanut butter", "paper towels"],      the proposed list, in utterance order
     "spans": [[4, 11], [12, 25], [30, 42]],                     character offsets [start, end) into asr_text
     "chunk_scores": [0.97, 0.91, 0.95],                         per item: P(exactly this chunk), CRF marginal
     "slot_type": "food_type",                                    the logged NLU slot type the list overlaps
                                                                  (most words; null when no logged slot does)
     "logged": ["bananas peanut butter and paper towels"]}        the logged NLU values that overlap the list

The candidate's score is its least confident chunk. A corrected split is ``corrected_value(asr_text, items,
slot_type)``: the same shape with the reviewer's items, their spans found again in the text (null where an item is
not found verbatim) and no chunk scores. ``list_slot`` turns an accepted or corrected value into the list-valued
slot the export writes: {"type": slot_type, "value": [items...]}.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from analysis.coordination.examples import tokenize, words

TASK = "items"


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def logged_spans(tokens: Sequence[str], slots: Sequence[Mapping]) -> list[tuple[str, str, int, int]]:
    """(type, value, start, end) word spans of the logged NLU slots found in the words (first free occurrence)."""
    taken = [False] * len(tokens)
    out = []
    for s in slots or []:
        v = words(str(s.get("value", "")))
        m = len(v)
        for i in range(len(tokens) - m + 1 if m else 0):
            if tuple(tokens[i:i + m]) == v and not any(taken[i:i + m]):
                taken[i:i + m] = [True] * m
                out.append((str(s.get("type")), str(s.get("value")), i, i + m))
                break
    return out


def candidate_value(text: str, spans: Sequence[tuple[int, int]], scores: Sequence[float],
                    nlu_slots: Sequence[Mapping] | None) -> dict:
    """The candidate value for a turn whose words (``tokenize(text)``) the chunker split into ``spans`` (word
    offsets, two or more) with chunk ``scores``."""
    toks = tokenize(text)
    words_ = [w for w, _, _ in toks]
    extent = (spans[0][0], spans[-1][1])
    logged = [x for x in logged_spans(words_, nlu_slots or []) if _overlap(extent, (x[2], x[3]))]
    by_type: Counter = Counter()
    for typ, _, s, e in logged:
        by_type[typ] += _overlap(extent, (s, e))
    slot_type = min(by_type, key=lambda t: (-by_type[t], t)) if by_type else None
    return {"items": [" ".join(words_[s:e]) for s, e in spans],
            "spans": [[toks[s][1], toks[e - 1][2]] for s, e in spans],
            "chunk_scores": [round(float(x), 6) for x in scores],
            "slot_type": slot_type, "logged": [v for _, v, _, _ in logged]}


def corrected_value(text: str, items: Sequence[str], slot_type: str | None, logged: Sequence[str] = ()) -> dict:
    """A reviewer's corrected split in the candidate value's shape: their items (trimmed, empty ones dropped),
    each item's character span found in text in order (null when not there verbatim), no chunk scores."""
    toks = tokenize(text)
    words_ = [w for w, _, _ in toks]
    clean = [" ".join(words(i)) for i in items if words(i)]
    spans, pos = [], 0
    for item in clean:
        w = item.split()
        hit = next((i for i in range(pos, len(words_) - len(w) + 1) if words_[i:i + len(w)] == w), None)
        if hit is None:
            spans.append(None)
        else:
            spans.append([toks[hit][1], toks[hit + len(w) - 1][2]])
            pos = hit + len(w)
    return {"items": clean, "spans": spans, "chunk_scores": None, "slot_type": slot_type, "logged": list(logged)}


def list_slot(value: Mapping) -> dict:
    """An accepted or corrected items value as the list-valued slot an export writes."""
    return {"type": value.get("slot_type"), "value": list(value.get("items") or [])}


def _norm(v: str) -> str:
    return " ".join(words(v))


def disagrees(value: Mapping) -> bool:
    """Whether the proposed items differ from what the logged NLU recorded over the same words (as a multiset of
    normalised values): the NLU kept the list as one value, cut an item in two, or logged nothing there."""
    return Counter(_norm(i) for i in value.get("items") or []) != Counter(_norm(v) for v in value.get("logged") or [])


def top_items(values: Sequence[Mapping], *, limit: int = 20) -> list[dict]:
    """The items proposed most often across candidate values: item, turns proposing it, its mean chunk score,
    the slot types it was proposed under; most frequent first (ties by item)."""
    turns: Counter = Counter()
    scores: dict[str, list[float]] = defaultdict(list)
    types: dict[str, Counter] = defaultdict(Counter)
    for v in values:
        chunk = v.get("chunk_scores") or [None] * len(v.get("items") or [])
        for item, score in zip(v.get("items") or [], chunk, strict=False):
            turns[item] += 1
            if score is not None:
                scores[item].append(float(score))
            types[item][v.get("slot_type") or "(none logged)"] += 1
    ranked = sorted(turns, key=lambda i: (-turns[i], i))[:limit]
    return [{"item": i, "turns": turns[i],
             "mean_chunk_score": sum(scores[i]) / len(scores[i]) if scores[i] else float("nan"),
             "slot_types": ", ".join(t for t, _ in types[i].most_common())} for i in ranked]
