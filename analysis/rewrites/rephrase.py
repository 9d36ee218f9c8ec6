"""Sessions and rephrase detection (METHODS.md section 4).

A user's turns, in time order, split into *sessions* wherever the gap between two turns exceeds
``session_gap`` seconds. Inside a session, a turn is a *rephrase* when it re-asks the request of the turn
just before it because that request failed. Two detectors decide this for each turn that has a
predecessor in its session:

* the **contextual** detector, a logistic regression over the time gap, the text similarity of the two
  requests, the earlier turn's defect signals (skill error or unhandled, unresolved entity, failed speech
  synthesis, barge-in, negative feedback, no intent, low confidences) and whether NLU agrees across the two
  turns (same intent, a recogniser's alternative reading agreeing, same domain);
* the **text-similarity** baseline: the character similarity of the two normalised requests above a
  threshold.

Both read production fields only. Labels for fitting and evaluating them come from a log's goal structure:
a turn is a rephrase iff it continues its predecessor's goal (same dialogue, ``gold_goal_start`` false).

Everything is columnar (NumPy arrays over turns sorted by user and time), so a million turns take seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The production fields the detectors and the miner read (never reference_text or gold_*).
INPUT_COLUMNS = ("dialogue_id", "turn_index", "timestamp", "user_id", "asr_text", "asr_confidence",
                 "nlu_domain", "nlu_intent", "nlu_slots", "nlu_confidence", "nlu_alt_intent", "er_status",
                 "response_status", "tts_status", "barge_in", "user_feedback")
DEFAULT_SESSION_GAP = 180.0  # seconds; turns of one request chain are seconds apart, new visits hours

FEATURES = ("log_gap", "word_jaccard", "char_similarity", "same_text", "prev_error", "prev_unhandled",
            "prev_unresolved", "prev_tts_failed", "prev_barge_in", "prev_negative", "prev_no_intent",
            "prev_asr_confidence", "prev_nlu_confidence", "same_intent", "alt_agrees", "same_domain",
            "log_position")

_NON_WORD = re.compile(r"[^\w' ]+")


def normalise(text: str | None) -> str:
    """A request as a rewrite state: lower case, punctuation dropped, single spaces."""
    if not text:
        return ""
    return " ".join(_NON_WORD.sub(" ", text.lower()).replace("'", "").split())


def interpretation_key(intent: str | None, slots: Sequence[dict] | None) -> str:
    """An NLU interpretation as one comparable string: the intent and its slots, sorted, values normalised.
    No intent gives ""."""
    if not intent:
        return ""
    parts = sorted(f"{s['type']}={normalise(s['value'])}" for s in (slots or []))
    return intent + ("|" + "|".join(parts) if parts else "")


def _codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list]:
    """Dictionary codes (nulls -> -1) and the distinct values, computed in Arrow (fast for 1M rows)."""
    enc = pc.dictionary_encode(values)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary.to_pylist()


def _sorted_codes(values: pa.Array) -> tuple[np.ndarray, list]:
    """Like ``_codes`` but numbered in sorted order of the values, so ties broken by code do not depend on
    the order of the rows."""
    codes, distinct = _codes(values)
    order = sorted(range(len(distinct)), key=lambda i: distinct[i])
    rank = np.empty(len(distinct) + 1, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(distinct))
    rank[-1] = -1  # null codes (-1) stay -1
    return rank[codes], [distinct[i] for i in order]


@dataclass
class Turns:
    """Turns sorted by (user, time, dialogue, turn index) as NumPy columns. ``order`` maps back: row i here
    is row ``order[i]`` of the input table. Users without an id are kept apart per dialogue."""

    order: np.ndarray
    dialogue_id: np.ndarray  # object
    turn_index: np.ndarray
    user: np.ndarray  # int codes
    seconds: np.ndarray  # float64, since the epoch
    text: np.ndarray  # int codes into texts (normalised asr_text)
    texts: list[str]
    interp: np.ndarray  # int codes into interps (interpretation_key of the logged NLU output)
    interps: list[str]
    intent: np.ndarray  # int codes into intents, -1 none
    alt_intent: np.ndarray  # codes into the same intents list, -1 none or unknown
    domain: np.ndarray  # int codes, -1 none
    asr_confidence: np.ndarray  # float, nan when missing
    nlu_confidence: np.ndarray
    error: np.ndarray  # bool columns from the logged statuses and signals
    unhandled: np.ndarray
    unresolved: np.ndarray
    tts_failed: np.ndarray
    barge_in: np.ndarray
    negative: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    @classmethod
    def from_table(cls, table: pa.Table) -> Turns:
        missing = [c for c in INPUT_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"the turns lack column(s) {', '.join(missing)}")
        ts = table.column("timestamp")
        if pa.types.is_timestamp(ts.type):
            micros = pc.cast(ts.cast(pa.timestamp("us", tz=ts.type.tz)), pa.int64())
            seconds = micros.to_numpy().astype(np.float64) / 1e6
        else:
            seconds = np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.float64)
        # A missing user id: the dialogue stands in, so such turns never join another user's session.
        user_col = pc.if_else(pc.is_null(table.column("user_id")),
                              pc.binary_join_element_wise("\x00", table.column("dialogue_id"), ""),
                              table.column("user_id"))
        user, _ = _codes(user_col)
        dialogue = table.column("dialogue_id").to_numpy(zero_copy_only=False)
        tindex = table.column("turn_index").to_numpy(zero_copy_only=False).astype(np.int64)
        _, dcodes = np.unique(dialogue.astype(str), return_inverse=True)
        order = np.lexsort((tindex, dcodes, seconds, user)).astype(np.int64)

        raw_text, raw_texts = _codes(table.column("asr_text"))
        norm = [normalise(t) for t in raw_texts]
        texts = sorted(set(norm) | ({""} if (raw_text < 0).any() else set()))  # "" stands for a missing text
        pos = {t: i for i, t in enumerate(texts)}
        by_raw = np.array([pos[t] for t in norm], dtype=np.int64)
        text = np.where(raw_text >= 0, by_raw[np.maximum(raw_text, 0)] if len(by_raw) else 0, pos.get("", 0))

        intents_raw = table.column("nlu_intent").to_pylist()
        slots_raw = table.column("nlu_slots").to_pylist()
        interp_all = [interpretation_key(i, s) for i, s in zip(intents_raw, slots_raw, strict=True)]
        interp_codes, interps = _sorted_codes(pa.array(interp_all, pa.string()))
        intent, intents = _codes(table.column("nlu_intent"))
        ipos = {v: i for i, v in enumerate(intents)}
        alt = np.array([ipos.get(a, -1) if a is not None else -1
                        for a in table.column("nlu_alt_intent").to_pylist()], dtype=np.int64)
        domain, _ = _codes(table.column("nlu_domain"))

        def flt(name: str) -> np.ndarray:
            return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

        def equals(name: str, value: str) -> np.ndarray:
            return pc.fill_null(pc.equal(table.column(name), value), False).to_numpy(zero_copy_only=False)

        barge = pc.fill_null(table.column("barge_in"), False).to_numpy(zero_copy_only=False).astype(bool)
        cols = dict(
            dialogue_id=dialogue, turn_index=tindex, user=user, seconds=seconds, text=text,
            interp=interp_codes, intent=intent, alt_intent=alt, domain=domain,
            asr_confidence=flt("asr_confidence"), nlu_confidence=flt("nlu_confidence"),
            error=equals("response_status", "error"), unhandled=equals("response_status", "unhandled"),
            unresolved=equals("er_status", "unresolved"), tts_failed=equals("tts_status", "failed"),
            barge_in=barge, negative=equals("user_feedback", "negative"))
        return cls(order=order, texts=texts, interps=interps,
                   **{k: np.asarray(v)[order] for k, v in cols.items()})

    def signals_defective(self) -> np.ndarray:
        """Per turn: do its own logged signals show a defect (skill error or unhandled, unresolved entity,
        failed synthesis, barge-in, negative feedback, or no intent at all)? A production-only rule."""
        return (self.error | self.unhandled | self.unresolved | self.tts_failed | self.barge_in
                | self.negative | (self.intent < 0))


def session_ids(turns: Turns, gap: float = DEFAULT_SESSION_GAP) -> np.ndarray:
    """Per sorted turn, its session number: a new session starts at each user's first turn and after every
    gap longer than ``gap`` seconds."""
    if gap <= 0 or not math.isfinite(gap):
        raise ValueError(f"the session gap must be a positive number of seconds, got {gap}")
    n = len(turns)
    if n == 0:
        return np.zeros(0, np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = (turns.user[1:] != turns.user[:-1]) | (np.diff(turns.seconds) > gap)
    return np.cumsum(new) - 1


def has_predecessor(sessions: np.ndarray) -> np.ndarray:
    """Per sorted turn: is there an earlier turn in its session (the one it could rephrase)?"""
    out = np.zeros(len(sessions), dtype=bool)
    out[1:] = sessions[1:] == sessions[:-1]
    return out


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def text_similarity(turns: Turns, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(word Jaccard, character similarity in [0, 1]) of each turn's request with its predecessor's, for
    the turns where ``pred`` is true (0 elsewhere). Computed once per distinct pair of texts."""
    from rapidfuzz.fuzz import ratio

    n = len(turns)
    jac, char = np.zeros(n), np.zeros(n)
    idx = np.flatnonzero(pred)
    if not idx.size:
        return jac, char
    pairs = turns.text[idx - 1] * len(turns.texts) + turns.text[idx]
    uniq, inv = np.unique(pairs, return_inverse=True)
    m = len(turns.texts)
    j = np.empty(len(uniq))
    c = np.empty(len(uniq))
    for k, p in enumerate(uniq.tolist()):
        a, b = turns.texts[p // m], turns.texts[p % m]
        j[k] = _jaccard(a, b)
        c[k] = ratio(a, b) / 100.0
    jac[idx], char[idx] = j[inv], c[inv]
    return jac, char


def features(turns: Turns, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X, pred): one row of FEATURES per sorted turn (zeros where there is no predecessor) and the mask
    of turns with a predecessor in their session."""
    n = len(turns)
    pred = has_predecessor(sessions)
    x = np.zeros((n, len(FEATURES)))
    if n < 2:
        return x, pred
    jac, char = text_similarity(turns, pred)
    prev = np.r_[0, np.arange(n - 1)]  # row i's predecessor (meaningful where pred)
    gap = np.r_[0.0, np.diff(turns.seconds)]
    first = np.r_[True, ~pred[1:]]
    position = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))

    def conf(col: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(col), 0.5, col)[prev]

    t_int, p_int = turns.intent, turns.intent[prev]
    cols = {
        "log_gap": np.log1p(np.clip(gap, 0, None)),
        "word_jaccard": jac, "char_similarity": char,
        "same_text": (turns.text == turns.text[prev]).astype(float),
        "prev_error": turns.error[prev], "prev_unhandled": turns.unhandled[prev],
        "prev_unresolved": turns.unresolved[prev], "prev_tts_failed": turns.tts_failed[prev],
        "prev_barge_in": turns.barge_in[prev], "prev_negative": turns.negative[prev],
        "prev_no_intent": p_int < 0,
        "prev_asr_confidence": conf(turns.asr_confidence), "prev_nlu_confidence": conf(turns.nlu_confidence),
        "same_intent": (t_int >= 0) & (t_int == p_int),
        "alt_agrees": ((turns.alt_intent >= 0) & (turns.alt_intent == p_int))
        | ((turns.alt_intent[prev] >= 0) & (turns.alt_intent[prev] == t_int)),
        "same_domain": (turns.domain >= 0) & (turns.domain == turns.domain[prev]),
        "log_position": np.log1p(position),
    }
    for j, name in enumerate(FEATURES):
        x[:, j] = cols[name]
    x[~pred] = 0.0
    return x, pred


def gold_rephrase(turns: Turns, sessions: np.ndarray, goal_start_sorted: np.ndarray) -> np.ndarray:
    """Per sorted turn, from a log's goal structure: it continues its predecessor's goal (same dialogue, not
    a goal start). ``goal_start_sorted`` is gold_goal_start (or reviewed goal starts) in the sorted order."""
    pred = has_predecessor(sessions)
    same_dialogue = np.zeros(len(turns), dtype=bool)
    same_dialogue[1:] = turns.dialogue_id[1:] == turns.dialogue_id[:-1]
    return pred & same_dialogue & ~np.asarray(goal_start_sorted, dtype=bool)


@dataclass
class RephraseDetector:
    """The contextual detector: standardised FEATURES -> logistic regression. Plain arrays, so it is stored
    as JSON in a run's parameters and reloaded exactly."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, c: float = 1.0) -> RephraseDetector:
        """Fit on the rows of turns that have a predecessor (x, y from ``features`` and ``gold_rephrase``)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=bool)
        if len(y) < 2 or y.all() or not y.any():
            raise ValueError("fitting the rephrase detector needs both rephrases and other turns among the "
                             f"labelled turns ({int(y.sum())} of {len(y)} are rephrases)")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / scale, y)
        return cls(mean=mean, scale=scale, coef=lr.coef_[0].copy(), intercept=float(lr.intercept_[0]))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def detect(self, x: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Per turn: a rephrase of its predecessor? Turns without a predecessor never are."""
        return pred & (self.predict_proba(x) >= self.threshold)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> RephraseDetector:
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError("the stored rephrase detector was fitted on other features; refit it")
        return cls(mean=np.asarray(d["mean"]), scale=np.asarray(d["scale"]), coef=np.asarray(d["coef"]),
                   intercept=float(d["intercept"]), threshold=float(d["threshold"]))


@dataclass
class SimilarityBaseline:
    """The plain baseline: a turn rephrases its predecessor when their character similarity reaches
    ``threshold`` (chosen on labelled turns by ``fit``)."""

    threshold: float = 0.6

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> SimilarityBaseline:
        """The threshold with the best F1 on the labelled rows (a grid of 0.05 steps)."""
        sim, y = x[:, FEATURES.index("char_similarity")], np.asarray(y, dtype=bool)
        best, best_f1 = 0.5, -1.0
        for t in np.round(np.arange(0.05, 1.0001, 0.05), 2):
            p = sim >= t
            tp = float(np.sum(p & y))
            f1 = 2 * tp / (p.sum() + y.sum()) if p.sum() + y.sum() else 0.0
            if f1 > best_f1:
                best, best_f1 = float(t), f1
        return cls(threshold=best)

    def detect(self, x: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return pred & (x[:, FEATURES.index("char_similarity")] >= self.threshold)


def chain_ids(is_rephrase: np.ndarray) -> np.ndarray:
    """Per sorted turn, its rephrase chain: a chain starts at every turn that is not a rephrase and runs
    through the rephrases that follow it."""
    if not len(is_rephrase):
        return np.zeros(0, np.int64)
    start = ~np.asarray(is_rephrase, dtype=bool)
    start[0] = True
    return np.cumsum(start) - 1
