"""Word error counts per utterance and pooled word error rates.

Counts follow jiwer's default word alignment exactly (same tokenisation, same rapidfuzz Levenshtein
opcodes), so ``tests/test_wer.py`` can use jiwer as the oracle. Store counts, never rates: a group's WER is
always pooled, sum of errors over sum of reference words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

_MULTI_SPACE = re.compile(r"\s\s+")


def words(text: str) -> list[str]:
    """Tokenise as jiwer's ``wer_default`` does: collapse runs of whitespace, strip, split on spaces."""
    return [w for w in _MULTI_SPACE.sub(" ", text).strip().split(" ") if w]


@dataclass(frozen=True)
class AlignedWord:
    """One column of a word alignment: op is 'equal', 'sub', 'del' or 'ins'; a missing side is None."""

    op: str
    ref: str | None
    hyp: str | None


def align(reference: str, hypothesis: str) -> list[AlignedWord]:
    """Word alignment of a hypothesis against its reference, one entry per aligned column."""
    ref, hyp = words(reference), words(hypothesis)
    out: list[AlignedWord] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
        if tag == "equal":
            out.extend(AlignedWord("equal", r, h) for r, h in zip(ref[i1:i2], hyp[j1:j2], strict=True))
        elif tag == "replace":
            out.extend(AlignedWord("sub", r, h) for r, h in zip(ref[i1:i2], hyp[j1:j2], strict=True))
        elif tag == "delete":
            out.extend(AlignedWord("del", r, None) for r in ref[i1:i2])
        else:
            out.extend(AlignedWord("ins", None, h) for h in hyp[j1:j2])
    return out


def _counts(reference: str, hypothesis: str) -> tuple[int, int, int, int]:
    ref, hyp = words(reference), words(hypothesis)
    sub = dele = ins = 0
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
        if tag == "replace":
            sub += i2 - i1
        elif tag == "delete":
            dele += i2 - i1
        elif tag == "insert":
            ins += j2 - j1
    return sub, dele, ins, len(ref)


def error_counts(
    references: Sequence[str | None], hypotheses: Sequence[str | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-utterance (substitutions, deletions, insertions, reference words), four int32 arrays.

    Where the reference is None (unknown) all four are -1, so callers can tell "no reference" from
    "perfect". A None hypothesis counts as empty. Identical (reference, hypothesis) pairs are aligned once:
    logs repeat short requests ("stop", "what time is it") very often.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    out = np.full((len(references), 4), -1, dtype=np.int32)
    memo: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    for i, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        if ref is None:
            continue
        key = (ref, hyp or "")
        c = memo.get(key)
        if c is None:
            c = memo[key] = _counts(ref, hyp or "")
        out[i] = c
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3]


def pooled_wer(sub: Iterable[int], dele: Iterable[int], ins: Iterable[int], ref_words: Iterable[int]) -> float:
    """Pooled WER = (S + D + I) / N over the utterances given; NaN when there are no reference words.

    Rows with a negative count (no reference) are ignored. Higher is worse.
    """
    s, d, i, n = (np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.int64)
                  for x in (sub, dele, ins, ref_words))
    known = n >= 0
    total = n[known].sum()
    if total == 0:
        return float("nan")
    return float((s[known].sum() + d[known].sum() + i[known].sum()) / total)
