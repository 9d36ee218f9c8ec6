"""What a reviewer reads in a turn's recognition: the n-best hypotheses with the words each changes against the
1-best, and the 1-best's words the recogniser was unsure of (word posterior below ``LOW_CONFIDENCE``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.wer import align

# A word of the 1-best whose posterior is below this is marked as low-confidence: below 0.5 the recogniser itself
# gives the word less than an even chance of being right. Posteriors are in 0..1; lower is less sure.
LOW_CONFIDENCE = 0.5

WORD_KINDS = ("same", "changed", "added", "missing")


@dataclass(frozen=True)
class DiffWord:
    """One word of a hypothesis against the 1-best. kind: "same"; "changed" (the hypothesis has this word where
    the 1-best has another); "added" (a word the 1-best does not have); "missing" (a 1-best word the hypothesis
    drops: text is the 1-best's word)."""

    text: str
    kind: str


@dataclass(frozen=True)
class Hypothesis:
    """One entry of a turn's n-best, in the recogniser's order (rank 1 first). score: the recogniser's log score
    (higher is better; comparable only within the turn), gap: score minus the best score of the list (0 for the
    best, negative below it), both None for a 1.0 n-best without scores; confidence: a posterior in 0..1, or None.
    words: the hypothesis against the 1-best (asr_text); same_as_best when no word differs."""

    rank: int
    text: str
    score: float | None
    gap: float | None
    confidence: float | None
    words: tuple[DiffWord, ...]

    @property
    def same_as_best(self) -> bool:
        return all(w.kind == "same" for w in self.words)


def word_diff(best: str, hypothesis: str) -> list[DiffWord]:
    """hypothesis's words against best's (both split on white space, compared as written, case included), by the
    same minimum-edit alignment as WER: one DiffWord per aligned column, in order."""
    kinds = {"equal": "same", "sub": "changed", "ins": "added", "del": "missing"}
    return [DiffWord(a.hyp if a.hyp is not None else a.ref, kinds[a.op]) for a in align(best, hypothesis)]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def nbest_view(best: str, hypotheses: Sequence[dict] | None) -> list[Hypothesis]:
    """The stored n-best of a turn (asr_hypotheses: [{text, score, confidence}], score and confidence None where
    the log had none) with each hypothesis's words against the 1-best ``best`` (the turn's asr_text). [] for
    none."""
    if not hypotheses:
        return []
    scores = [_number(h.get("score")) for h in hypotheses]
    top = max((s for s in scores if s is not None), default=None)
    return [Hypothesis(rank=i + 1, text=str(h.get("text") or ""), score=s,
                       gap=None if s is None or top is None else s - top,
                       confidence=_number(h.get("confidence")),
                       words=tuple(word_diff(best, str(h.get("text") or ""))))
            for i, (h, s) in enumerate(zip(hypotheses, scores, strict=True))]


@dataclass(frozen=True)
class WordConfidence:
    """One word of the 1-best: where it is in the text (start, end: character offsets), its posterior, and whether
    it is below the threshold (low)."""

    start: int
    end: int
    confidence: float
    low: bool


def word_confidences(text: str, confidences: Sequence[float] | None, *,
                     threshold: float = LOW_CONFIDENCE) -> list[WordConfidence]:
    """The words of ``text`` (split on white space, as the log format counts them) with their posteriors
    (asr_word_confidence: one per word, in 0..1). [] when there are none or their number is not the number of
    words (the reader refuses such a log; nothing is guessed). threshold: in 0..1; a word below it is low."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in 0..1, got {threshold}")
    if not confidences:
        return []
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if len(spans) != len(confidences):
        return []
    return [WordConfidence(start, end, float(c), float(c) < threshold)
            for (start, end), c in zip(spans, confidences, strict=True)]
