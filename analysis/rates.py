"""Per-group (e.g. per-domain) rates of turn events and pooled WER, with intervals that treat the dialogue as
the unit of sampling.

Turns of one dialogue are not independent (a user who was not understood tends to rephrase, and to be
misunderstood again), so an interval that counts turns as independent draws is too narrow. Both estimates
here are ratios of per-dialogue sums (events over turns, word errors over reference words), and their
uncertainty comes from how those sums vary between dialogues:

- an **event rate** (share of turns unhandled, with a barge-in, ...) gets a Wilson score interval computed on
  the effective sample size: the turns divided by Kish's design effect, which is the between-dialogue
  (linearised ratio-estimator) variance over the variance the same turns would have if independent. Wilson
  stays inside [0, 1] and behaves at 0% and 100%; the effective size never exceeds the number of turns (the
  interval is never narrower than the turn-level one), and when the variance cannot be estimated (a rate
  of exactly 0 or 1, or a single dialogue) each dialogue counts as one observation.
- **pooled WER** (sum of errors over sum of reference words, METHODS section 5) gets the normal interval of
  the same linearised ratio variance, clipped at 0 (WER can exceed 1, so there is no upper clip).

Both are computed from per-dialogue sums (sums of counts, of their squares and cross-products), so a database can
aggregate 200,000 turns to one row per group; the per-dialogue functions give the same figures from arrays.
Deterministic (no resampling) and cheap: the Overview computes it on every open. Pure: no Streamlit, no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

# The failure signals counted per turn, as the store names their sums (app.store.list_domain_signal_sums).
EVENTS = ("unhandled", "error", "barge_in", "negative_feedback")

RATE_COLUMNS = ["group", "event", "turns", "dialogues", "events", "event_dialogues", "rate", "ci_low", "ci_high",
                "n_eff"]
WER_COLUMNS = ["group", "dialogues", "turns", "ref_words", "errors", "pooled_wer", "ci_low", "ci_high"]


def _z(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _counts(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if np.isnan(a).any() or (a < 0).any():
        raise ValueError(f"{name} must be non-negative numbers")
    return a


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score bounds for a proportion p observed on n (which may be fractional: an effective size).
    (This is analysis.calibration.wilson_interval's formula without its integer counts.) Pinned to exactly 0
    at p == 0 and 1 at p == 1."""
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return (0.0 if p == 0 else max(0.0, centre - half), 1.0 if p == 1 else min(1.0, centre + half))


def rate_interval_from_sums(events: float, turns: float, events_sq: float, events_by_turns: float,
                            turns_sq: float, dialogues: int, *, confidence: float = 0.95
                            ) -> tuple[float, float, float, float]:
    """``clustered_rate_interval`` from per-dialogue sums (what a database can aggregate without sending every
    dialogue): with y = a dialogue's events and m its turns, events = sum y, turns = sum m, events_sq = sum y^2,
    events_by_turns = sum y*m, turns_sq = sum m^2, over ``dialogues`` dialogues that have turns."""
    z = _z(confidence)
    if turns <= 0 or dialogues <= 0:
        return (math.nan, math.nan, math.nan, math.nan)
    if not 0 <= events <= turns:
        raise ValueError(f"events ({events}) must be between 0 and turns ({turns})")
    p, k = events / turns, int(dialogues)
    n_eff = float(k)
    if k >= 2 and 0.0 < p < 1.0:
        # sum over dialogues of (y - p m)^2, expanded; clipped at 0 against rounding
        spread = max(0.0, events_sq - 2.0 * p * events_by_turns + p * p * turns_sq)
        # Linearised variance of the ratio estimator, dialogues as clusters (k / (k - 1): small-sample factor)
        var = k / (k - 1) * spread / turns ** 2
        n_eff = float(turns) if var <= 0 else min(float(turns), max(1.0, p * (1.0 - p) / var))
    low, high = wilson(p, n_eff, z)
    return (p, low, high, n_eff)


def clustered_rate_interval(events: Sequence[float] | np.ndarray, turns: Sequence[float] | np.ndarray, *,
                            confidence: float = 0.95) -> tuple[float, float, float, float]:
    """The rate sum(events) / sum(turns) over clusters (dialogues) and its interval.

    Parameters
    ----------
    events, turns:
        One entry per dialogue: how many of its turns had the event, and how many turns it has
        (0 <= events <= turns; dialogues with no turns are ignored).
    confidence:
        Two-sided coverage in (0, 1).

    Returns
    -------
    (rate, low, high, n_eff)
        rate in [0, 1], higher is worse for a failure event; low <= rate <= high inside [0, 1] (Wilson on
        n_eff); n_eff the effective number of independent turns, between 1 and the number of turns (the
        number of dialogues when the rate is 0 or 1 or there is one dialogue). All NaN when there are no turns.
    """
    y, m = _counts(events, "events"), _counts(turns, "turns")
    if len(y) != len(m):
        raise ValueError(f"events and turns must have equal length, got {len(y)} and {len(m)}")
    if (y > m).any():
        raise ValueError("events cannot exceed turns in a dialogue")
    y, m = y[m > 0], m[m > 0]
    return rate_interval_from_sums(float(y.sum()), float(m.sum()), float((y * y).sum()), float((y * m).sum()),
                                   float((m * m).sum()), len(m), confidence=confidence)


def ratio_interval_from_sums(errors: float, words: float, errors_sq: float, errors_by_words: float,
                             words_sq: float, dialogues: int, *, confidence: float = 0.95
                             ) -> tuple[float, float, float]:
    """``clustered_ratio_interval`` from per-dialogue sums: with e = a dialogue's errors and w its reference
    words, errors = sum e, words = sum w, errors_sq = sum e^2, errors_by_words = sum e*w, words_sq = sum w^2,
    over ``dialogues`` dialogues with a reference transcript."""
    z = _z(confidence)
    if words <= 0 or dialogues <= 0:
        return (math.nan, math.nan, math.nan)
    r, k = errors / words, int(dialogues)
    if k < 2:
        return (r, math.nan, math.nan)
    spread = max(0.0, errors_sq - 2.0 * r * errors_by_words + r * r * words_sq)  # sum of (e - r w)^2
    se = math.sqrt(k / (k - 1) * spread) / words
    return (r, max(0.0, r - z * se), r + z * se)


def clustered_ratio_interval(errors: Sequence[float] | np.ndarray, words: Sequence[float] | np.ndarray, *,
                             confidence: float = 0.95) -> tuple[float, float, float]:
    """Pooled WER sum(errors) / sum(words) over dialogues, with the normal interval of the linearised ratio
    variance (dialogues as clusters), clipped at 0.

    errors, words: one entry per dialogue with a reference transcript (word errors and reference words of its
    turns with a reference). Returns (wer, low, high): wer >= 0, higher is worse; NaN when there are no
    reference words; the interval NaN with fewer than two dialogues (no between-dialogue variance to
    estimate). A group without a single error gets (0, 0, 0): nothing in the data argues for any error rate.
    """
    e, w = _counts(errors, "errors"), _counts(words, "words")
    if len(e) != len(w):
        raise ValueError(f"errors and words must have equal length, got {len(e)} and {len(w)}")
    return ratio_interval_from_sums(float(e.sum()), float(w.sum()), float((e * e).sum()), float((e * w).sum()),
                                    float((w * w).sum()), len(w), confidence=confidence)


def _check_frame(sums: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in sums.columns]
    if missing:
        raise ValueError(f"the sums lack the column(s) {', '.join(missing)}")


def _key(value: object) -> object:
    return None if pd.isna(value) else value


def group_rates(sums: pd.DataFrame, *, group: str = "domain", events: Sequence[str] = EVENTS,
                confidence: float = 0.95) -> pd.DataFrame:
    """Per group and event: turns, dialogues, events, dialogues with at least one event, the rate
    (events / turns) and its dialogue-clustered Wilson interval (``rate_interval_from_sums``).

    sums: one row per group (app.store.list_domain_signal_sums) with ``group``, ``dialogues``, ``turns``,
    ``turns_sq`` and per event E: ``E``, ``E_dialogues``, ``E_sq``, ``E_by_turns`` (sums over the group's
    dialogues of y, [y > 0], y^2, y*m). A missing group (NaN/None) is a group of its own.
    Returns RATE_COLUMNS, one row per (group, event), groups by turns (most first), events in the given order.
    """
    _check_frame(sums, [group, "dialogues", "turns", "turns_sq",
                        *(f"{e}{suffix}" for e in events for suffix in ("", "_dialogues", "_sq", "_by_turns"))])
    _z(confidence)
    rows = []
    for r in sums.sort_values(["turns", group], ascending=[False, True]).to_dict("records"):
        for e in events:
            rate, low, high, n_eff = rate_interval_from_sums(
                float(r[e]), float(r["turns"]), float(r[f"{e}_sq"]), float(r[f"{e}_by_turns"]),
                float(r["turns_sq"]), int(r["dialogues"]), confidence=confidence)
            rows.append((_key(r[group]), e, int(r["turns"]), int(r["dialogues"]), int(r[e]),
                         int(r[f"{e}_dialogues"]), rate, low, high, n_eff))
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def group_wer(sums: pd.DataFrame, *, group: str = "domain", confidence: float = 0.95) -> pd.DataFrame:
    """Per group with reference words: pooled WER and its dialogue-clustered interval
    (``ratio_interval_from_sums``), with the dialogues, turns, reference words and errors it rests on.

    sums: one row per group with ``group`` and ``wer_dialogues`` (dialogues with a reference), ``wer_turns``,
    ``wer_errors``, ``wer_ref_words``, ``wer_errors_sq``, ``wer_errors_by_words``, ``wer_words_sq`` (sums over
    those dialogues of e, w, e^2, e*w, w^2). Returns WER_COLUMNS, worst WER first; groups without reference
    words are left out (they have no WER).
    """
    _check_frame(sums, [group, "wer_dialogues", "wer_turns", "wer_errors", "wer_ref_words", "wer_errors_sq",
                        "wer_errors_by_words", "wer_words_sq"])
    _z(confidence)
    rows = []
    for r in sums.to_dict("records"):
        if r["wer_ref_words"] <= 0:
            continue
        wer, low, high = ratio_interval_from_sums(
            float(r["wer_errors"]), float(r["wer_ref_words"]), float(r["wer_errors_sq"]),
            float(r["wer_errors_by_words"]), float(r["wer_words_sq"]), int(r["wer_dialogues"]),
            confidence=confidence)
        rows.append((_key(r[group]), int(r["wer_dialogues"]), int(r["wer_turns"]), int(r["wer_ref_words"]),
                     int(r["wer_errors"]), wer, low, high))
    out = pd.DataFrame(rows, columns=WER_COLUMNS)
    return out.sort_values(["pooled_wer", "ref_words"], ascending=[False, False], ignore_index=True)
