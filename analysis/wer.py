"""Word and character error counts per utterance and pooled word error rates.

Counts follow jiwer's default word alignment exactly (same tokenisation, same rapidfuzz Levenshtein
opcodes), so ``tests/test_wer.py`` can use jiwer as the oracle. Store counts, never rates: a group's WER is
always pooled, sum of errors over sum of reference words.

``turn_counts`` first normalises both sides (analysis/wer_normalise.py: ``raw`` or ``english-v1``) and adds
character counts for CER. Its ``alignment="sclite"`` uses SCTK sclite's default costs and tie-breaking
instead of unit-cost Levenshtein (docs/wer.md; tests/test_wer_sclite.py compares with sclite's own output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

from analysis import wer_normalise

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


# SCTK sclite's default word alignment costs (sclite(1); src/sclite.c: correct 0, substitution 4, insertion 3,
# deletion 3). Unit-cost Levenshtein counts three substitutions for "a b c" -> "b x y"; sclite, for whom a
# substitution costs more than an insertion, counts a deletion, an insertion and one substitution.
SCLITE_COST_SUB, SCLITE_COST_INS, SCLITE_COST_DEL = 4, 3, 3
ALIGNMENTS = ("levenshtein", "sclite")


def sclite_ops(ref: Sequence[str], hyp: Sequence[str]) -> list[str]:
    """sclite's alignment of two token lists: one op per column, 'equal', 'sub', 'del' or 'ins', in order.

    Minimum total cost under SCLITE_COST_*; among equal-cost alignments, the one sclite picks: tracing back from
    the ends, a diagonal step (match or substitution) first, then an insertion, then a deletion. That order was
    found by comparing with sclite 2.10's alignments on 3,000 random pairs over a five-word vocabulary (ties are
    frequent there) and is checked by tests/test_wer_sclite.py against sclite's output in tests/data/sclite/.
    """
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = SCLITE_COST_DEL * i
    for j in range(1, m + 1):
        cost[0][j] = SCLITE_COST_INS * j
    for i in range(1, n + 1):
        row, above = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            diagonal = above[j - 1] + (0 if ref[i - 1] == hyp[j - 1] else SCLITE_COST_SUB)
            row[j] = min(diagonal, above[j] + SCLITE_COST_DEL, row[j - 1] + SCLITE_COST_INS)
    ops: list[str] = []
    i, j = n, m
    while i or j:
        here = cost[i][j]
        if i and j and here == cost[i - 1][j - 1] + (0 if ref[i - 1] == hyp[j - 1] else SCLITE_COST_SUB):
            ops.append("equal" if ref[i - 1] == hyp[j - 1] else "sub")
            i, j = i - 1, j - 1
        elif j and here == cost[i][j - 1] + SCLITE_COST_INS:
            ops.append("ins")
            j -= 1
        else:
            ops.append("del")
            i -= 1
    ops.reverse()
    return ops


@dataclass(frozen=True)
class TurnCounts:
    """Per-utterance counts, int32 arrays of one length; -1 in every array where there is no reference.

    sub, dele, ins, ref_words: the word alignment's substitutions, deletions, insertions and reference words.
    char_edits, ref_chars: the character edit distance (unit-cost Levenshtein, as jiwer.cer) between the
    normalised texts with whitespace collapsed to one space, and the reference's characters (spaces included).
    """

    sub: np.ndarray
    dele: np.ndarray
    ins: np.ndarray
    ref_words: np.ndarray
    char_edits: np.ndarray
    ref_chars: np.ndarray


def _word_counts(ref: list[str], hyp: list[str], alignment: str) -> tuple[int, int, int]:
    if alignment == "sclite":
        ops = sclite_ops(ref, hyp)
        return ops.count("sub"), ops.count("del"), ops.count("ins")
    sub = dele = ins = 0
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
        if tag == "replace":
            sub += i2 - i1
        elif tag == "delete":
            dele += i2 - i1
        elif tag == "insert":
            ins += j2 - j1
    return sub, dele, ins


def turn_counts(references: Sequence[str | None], hypotheses: Sequence[str | None], *,
                normaliser: str = wer_normalise.RAW, alignment: str = "levenshtein") -> TurnCounts:
    """Word and character counts per utterance after normalising both sides with ``normaliser``.

    With ``normaliser="raw"`` and the default alignment the word counts are exactly ``error_counts``'. A None
    reference gives -1 everywhere (unknown, not perfect); a None hypothesis counts as empty. A reference that
    normalises to nothing (only "<unk>") has 0 reference words: its hypothesis words are insertions.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}: known are {', '.join(ALIGNMENTS)}")
    normalise = wer_normalise.get(normaliser).apply
    normalised: dict[str, list[str]] = {}

    def apply(text: str) -> list[str]:
        # Each distinct text is normalised once: english-v1 costs about half a millisecond a text, and a
        # reference recurs under many different hypotheses (and the reverse).
        found = normalised.get(text)
        if found is None:
            found = normalised[text] = words(normalise(text))
        return found

    out = np.full((len(references), 6), -1, dtype=np.int32)
    memo: dict[tuple[str, str], tuple[int, ...]] = {}
    for k, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        if ref is None:
            continue
        key = (ref, hyp or "")
        c = memo.get(key)
        if c is None:
            ref_w, hyp_w = apply(ref), apply(hyp or "")
            ref_s, hyp_s = " ".join(ref_w), " ".join(hyp_w)
            c = memo[key] = (*_word_counts(ref_w, hyp_w, alignment), len(ref_w),
                             Levenshtein.distance(ref_s, hyp_s), len(ref_s))
        out[k] = c
    return TurnCounts(*(out[:, i] for i in range(6)))


def pooled_rate(errors: Iterable[int], total: Iterable[int]) -> float:
    """sum(errors) / sum(total) over rows with total >= 0 (pooled CER from char_edits and ref_chars); NaN when
    the total is 0. Higher is worse."""
    e, n = (np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.int64) for x in (errors, total))
    known = n >= 0
    denominator = n[known].sum()
    return float("nan") if denominator == 0 else float(e[known].sum() / denominator)
