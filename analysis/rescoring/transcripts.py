"""The rescorer as a transcript labeller: the ``transcript`` candidate it proposes for a turn whose best rescored
hypothesis differs from the logged 1-best, the value a reviewer's correction makes, and the word error rate of
the logged recognition measured against the transcripts reviewers settled.

A candidate's value (JSON): text (the proposed transcript), logged (the logged 1-best), chosen (its rank in the
n-best, from 0), margin (its rescored total minus the logged 1-best's), lam and beta (the weights of the run), and
hypotheses: the n-best list, each {text, first_pass, lm, total} in the recogniser's order. A corrected value is the
same with text replaced by the reviewer's words and corrected: true. Pure: no Streamlit, no SQL."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.wer import error_counts, pooled_wer, words

TASK = "transcript"


def same_words(a: str | None, b: str | None) -> bool:
    """Whether two transcripts say the same words (WER's tokenisation, case folded: case and spacing do not
    count; recognisers emit lower case, reviewers may not)."""
    return words((a or "").lower()) == words((b or "").lower())


def posterior(totals: Sequence[float], index: int) -> float:
    """The chosen hypothesis's share of the n-best under the rescored totals (a softmax over the list): the
    candidate's score, in [0, 1]."""
    t = np.asarray(totals, dtype=np.float64)
    if not len(t) or not np.isfinite(t).all():
        return 0.0
    p = np.exp(t - t.max())
    return float(p[index] / p.sum())


def candidate_value(logged: str, hypotheses: Sequence[str], first_pass: Sequence[float], lm: Sequence[float],
                    totals: Sequence[float], chosen: int, *, lam: float, beta: float) -> dict:
    """The value of a transcript candidate (see the module doc); margin is the chosen total minus the total of the
    hypothesis that says the logged words (the first hypothesis when none does)."""
    logged_at = next((i for i, h in enumerate(hypotheses) if same_words(h, logged)), 0)
    return {"text": " ".join(words(hypotheses[chosen])), "logged": logged, "chosen": int(chosen),
            "margin": round(float(totals[chosen] - totals[logged_at]), 4), "lam": lam, "beta": beta,
            "hypotheses": [{"text": h, "first_pass": round(float(f), 4), "lm": round(float(m), 4),
                            "total": round(float(t), 4)}
                           for h, f, m, t in zip(hypotheses, first_pass, lm, totals, strict=True)]}


def settled_row(label: dict, *, asr_text: str | None, speaker_id: str | None = None,
                reference_text: str | None = None) -> dict:
    """One row for reviewed_wer from a settled transcript label (a candidate's value, perhaps corrected) and its
    turn: reviewed is the label's text, proposed the hypothesis the rescorer chose."""
    hyps, chosen = label.get("hypotheses") or [], label.get("chosen")
    proposed = hyps[chosen]["text"] if isinstance(chosen, int) and 0 <= chosen < len(hyps) else label.get("text")
    return {"reviewed": label.get("text"), "proposed": proposed, "asr_text": asr_text, "speaker_id": speaker_id,
            "reference_text": reference_text}


class TranscriptError(ValueError):
    """A reviewer's transcript that cannot stand (empty)."""


def corrected_value(proposed: dict, text: str) -> dict:
    """The value a reviewer's correction makes: the proposal with text replaced by the reviewer's words (spaces
    tidied; case kept, as typed) and corrected: true. An empty transcript is refused: rejecting says "none of
    these"."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise TranscriptError("a transcript cannot be empty (reject the card if no hypothesis is right)")
    return {**proposed, "text": cleaned, "corrected": True}


def reviewed_wer(rows: Sequence[dict], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """The word error rate of the logged 1-best (asr_text) and of the rescorer's proposal (proposed) measured
    against the transcripts reviewers settled (reviewed), pooled over turns, each with a 95% bootstrap interval
    over speakers (speaker_id; the turn when missing). Also, where the log has its own reference_text, how far the
    reviewed transcripts are from it (a check on the reviewers). Rows: dicts with those keys."""
    from analysis.labels.evaluation import cluster_bootstrap_rows

    rows = [r for r in rows if (r.get("reviewed") or "").strip()]
    if not rows:
        return {"turns": 0}
    def low(texts) -> list[str]:  # WER with case folded (see same_words)
        return [(t or "").lower() for t in texts]

    reviewed = low(r["reviewed"] for r in rows)
    s1, d1, i1, ref = error_counts(reviewed, low(r.get("asr_text") for r in rows))
    s2, d2, i2, _ = error_counts(reviewed, low(r.get("proposed") or r.get("asr_text") for r in rows))
    stats = np.stack([s1 + d1 + i1, s2 + d2 + i2, ref], axis=1).astype(np.float64)
    edited = sum(not same_words(r["reviewed"], r.get("proposed")) for r in rows)
    groups = [str(r.get("speaker_id") or f"turn-{i}") for i, r in enumerate(rows)]

    def metrics(s: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"wer_logged": s[..., 0] / s[..., 2], "wer_proposed": s[..., 1] / s[..., 2]}

    report = cluster_bootstrap_rows(stats, groups, metrics, n_boot=n_boot, seed=seed)
    with_ref = [r for r in rows if (r.get("reference_text") or "").strip()]
    rs, rd, ri, rn = error_counts(low(r["reference_text"] for r in with_ref), low(r["reviewed"] for r in with_ref))
    return {"turns": len(rows), "speakers": len(set(groups)), "reference_words": int(stats[:, 2].sum()),
            "wer_logged": report["wer_logged"], "wer_logged_ci": report["wer_logged_ci"],
            "wer_proposed": report["wer_proposed"], "wer_proposed_ci": report["wer_proposed_ci"],
            "edited": int(edited), "with_log_reference": len(with_ref),
            "reviewed_vs_log_reference_wer": pooled_wer(rs, rd, ri, rn)}
