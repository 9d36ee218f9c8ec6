"""Second-pass rescoring of n-best lists: score(h) = first_pass(h) + lam * lm_logprob(h) + beta * n_words(h), the
best total chosen per list; lam and beta tuned by grid search on lists with a reference (never the evaluation
split); ``Rescorer`` bundles a trained RescoringModel with its lam and beta. Pure: no Streamlit, no SQL."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.rescoring.text import words
from analysis.wer import error_counts

# The default grids (docs/rescoring.md, "Tuning"). First-pass scores differ by little in pocketsphinx's lists (a
# median spread of 0.03 over a 10-best list in sample_data/speech_demo) and by tens in others, while LM log-
# probabilities of the same hypotheses differ by nats: the lam grid spans five decades on a 1-3 log scale. beta is
# per word, on the same scale, either sign (positive favours longer hypotheses, offsetting the LM's per-word cost).
_DECADES = tuple(m * 10.0 ** e for e in range(-4, 1) for m in (1.0, 3.0))
DEFAULT_LAMS = (0.0, *(round(v, 6) for v in _DECADES))
DEFAULT_BETAS = (0.0, *(round(s * v, 6) for v in _DECADES for s in (1.0, -1.0)))


@dataclass
class NBest:
    """One utterance's n-best list: hypotheses (recogniser order) with their first-pass scores (natural log, higher
    is better), the reference transcript when known, the speaker, and extra (what the source wants to keep).
    logged: the position of the logged 1-best (the turn's asr_text) among the hypotheses."""

    key: str
    hypotheses: list[str]
    scores: list[float]
    reference: str | None = None
    speaker: str | None = None
    extra: dict = field(default_factory=dict)
    logged: int = 0

    def __post_init__(self) -> None:
        if len(self.hypotheses) != len(self.scores):
            raise ValueError(f"{self.key}: {len(self.hypotheses)} hypotheses but {len(self.scores)} scores")
        if not self.hypotheses:
            raise ValueError(f"{self.key}: an n-best list needs at least one hypothesis")
        if not 0 <= self.logged < len(self.hypotheses):
            raise ValueError(f"{self.key}: logged index {self.logged} outside the list")


@dataclass
class Choice:
    """The rescorer's choice for one list: index and text of the chosen hypothesis, its total, the margin (its
    total minus the logged 1-best's total; when the logged 1-best is chosen, minus the runner-up's, and +inf when
    the list has one hypothesis), and per hypothesis its first-pass score, LM log-probability and total.
    logged: the position of the logged 1-best."""

    index: int
    text: str
    total: float
    margin: float
    first_pass: list[float]
    lm: list[float]
    totals: list[float]
    logged: int = 0

    @property
    def changed(self) -> bool:
        """Whether the choice says other words than the logged 1-best."""
        return self.index != self.logged


class MissingScoresError(ValueError):
    """An n-best list without first-pass scores: nothing to add an LM score to."""


def _turn_name(turn: dict) -> str:
    return f"dialogue {turn.get('dialogue_id')!r} turn {turn.get('turn_index')}"


def nbest_from_turn(turn: dict) -> NBest:
    """The NBest of a turn dict: its hypotheses from ``asr_hypotheses`` (the store's [{text, score, confidence}])
    or else ``asr_nbest`` (log format 1.1: [{text, score}]; 1.0: a list of strings), first-pass scores required.

    The logged 1-best (asr_text) is the first-pass choice: when its words (text.words) are among the hypotheses,
    logged points at the first of them; when they are not (pocketsphinx's 1-best comes from a different search
    than its n-best and is missing from the list in about one list in seven), it is put first with the best score
    of the list, so that it stays the choice at lam = beta = 0, and extra["logged_inserted"] is true. A turn without
    asr_text leaves logged at the best-scored hypothesis.

    Raises MissingScoresError naming the turn when the list is empty or any hypothesis has no numeric score."""
    raw = turn.get("asr_hypotheses") or turn.get("asr_nbest") or []
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else []
    if not raw:
        raise MissingScoresError(f"{_turn_name(turn)} has no n-best list (asr_nbest) to rescore")
    texts, scores = [], []
    for h in raw:
        text, score = (h, None) if isinstance(h, str) else (h.get("text"), h.get("score"))
        if not isinstance(score, numbers.Real) or isinstance(score, bool) or not math.isfinite(score):
            raise MissingScoresError(
                f"{_turn_name(turn)}: its n-best hypotheses carry no first-pass scores; rescoring needs scored "
                "n-best lists (log format 1.1: asr_nbest entries {text, score}, as `turnlens speech recognise` "
                "writes them)")
        texts.append(str(text or ""))
        scores.append(float(score))
    extra: dict = {"logged_inserted": False}
    asr = turn.get("asr_text")
    if asr is None:
        logged = int(np.argmax(scores))
    else:
        target = words(asr)
        logged = next((i for i, t in enumerate(texts) if words(t) == target), -1)
        if logged < 0:
            texts.insert(0, str(asr))
            scores.insert(0, max(scores))
            logged, extra["logged_inserted"] = 0, True
    return NBest(key=f"{turn.get('dialogue_id')}:{turn.get('turn_index')}", hypotheses=texts, scores=scores,
                 reference=turn.get("reference_text") or None, speaker=turn.get("speaker_id"), extra=extra,
                 logged=logged)


def lm_scores(model, nbests: Sequence[NBest]) -> list[np.ndarray]:
    """The LM log-probability of every hypothesis, one float64 array per list (model.log_prob on all hypotheses
    at once: identical hypotheses across lists are scored once, shared prefixes once)."""
    flat = [h for nb in nbests for h in nb.hypotheses]
    scores = np.asarray(model.log_prob(flat), dtype=np.float64) if flat else np.zeros(0)
    cuts = np.cumsum([len(nb.hypotheses) for nb in nbests])[:-1]
    return np.split(scores, cuts) if nbests else []


class _Grid:
    """The lists as padded arrays (n lists x longest list): first-pass, LM, word counts; padding is -inf."""

    def __init__(self, nbests: Sequence[NBest], lm: Sequence[np.ndarray]):
        if len(lm) != len(nbests):
            raise ValueError(f"{len(nbests)} n-best lists but LM scores for {len(lm)}")
        n, width = len(nbests), max((len(nb.hypotheses) for nb in nbests), default=1)
        self.first = np.full((n, width), -np.inf)
        self.lm = np.zeros((n, width))
        self.length = np.zeros((n, width))
        for i, (nb, m) in enumerate(zip(nbests, lm, strict=True)):
            k = len(nb.hypotheses)
            if len(m) != k:
                raise ValueError(f"{nb.key}: {k} hypotheses but {len(m)} LM scores")
            self.first[i, :k] = nb.scores
            self.lm[i, :k] = m
            self.length[i, :k] = [len(words(h)) for h in nb.hypotheses]

    def totals(self, lam: float, beta: float) -> np.ndarray:
        return self.first + lam * self.lm + beta * self.length  # -inf stays -inf in the padding


def choose(nbests: Sequence[NBest], lm: Sequence[np.ndarray], *, lam: float, beta: float) -> list[Choice]:
    """The best hypothesis of each list by total = first_pass + lam * lm + beta * n_words (ties: the earlier
    hypothesis). lm: per list, the LM log-probability of each hypothesis (``lm_scores``)."""
    grid = _Grid(nbests, lm)
    totals = grid.totals(lam, beta)
    best = totals.argmax(axis=1)
    out = []
    for i, nb in enumerate(nbests):
        k = len(nb.hypotheses)
        row = totals[i, :k]
        j = int(best[i])
        if j != nb.logged:
            margin = float(row[j] - row[nb.logged])
        elif k > 1:
            margin = float(row[j] - np.max(np.delete(row, j)))
        else:
            margin = math.inf
        out.append(Choice(index=j, text=nb.hypotheses[j], total=float(row[j]), margin=margin,
                          first_pass=list(nb.scores), lm=grid.lm[i, :k].tolist(), totals=row.tolist(),
                          logged=nb.logged))
    return out


def tune(nbests: Sequence[NBest], lm: Sequence[np.ndarray], *, lams: Sequence[float] = DEFAULT_LAMS,
         betas: Sequence[float] = DEFAULT_BETAS) -> tuple[float, float, float]:
    """(lam, beta, WER) of the grid point whose choices have the lowest pooled WER against the lists' references
    (analysis/wer.py error counts, text.words tokenisation); lists without a reference are ignored. Ties go to the
    smallest |lam|, then the smallest |beta| (then the earlier in the grid): without evidence, rescore less. Only
    ever call it on lists outside the evaluation split."""
    keep = [i for i, nb in enumerate(nbests) if nb.reference is not None and words(nb.reference)]
    if not keep:
        raise ValueError("no n-best list with a reference transcript to tune lam and beta on")
    nbs = [nbests[i] for i in keep]
    grid = _Grid(nbs, [lm[i] for i in keep])
    errors = np.zeros(grid.first.shape)
    refs = [" ".join(words(nb.reference)) for nb in nbs]
    flat_refs = [r for r, nb in zip(refs, nbs, strict=True) for _ in nb.hypotheses]
    flat_hyps = [" ".join(words(h)) for nb in nbs for h in nb.hypotheses]
    s, d, i_, _ = error_counts(flat_refs, flat_hyps)
    pos = 0
    for r, nb in enumerate(nbs):
        k = len(nb.hypotheses)
        errors[r, :k] = (s + d + i_)[pos:pos + k]
        pos += k
    n_words = float(sum(len(words(nb.reference)) for nb in nbs))
    rows = np.arange(len(nbs))
    best: tuple[float, float, float] | None = None
    for lam in sorted(lams, key=abs):
        for beta in sorted(betas, key=abs):
            wer = float(errors[rows, grid.totals(lam, beta).argmax(axis=1)].sum() / n_words)
            if best is None or wer < best[2]:
                best = (float(lam), float(beta), wer)
    assert best is not None
    return best


class Rescorer:
    """A trained RescoringModel with its weights lam (LM) and beta (per word): ``rescore(nbests)`` chooses a
    hypothesis per list. save_pretrained writes the model and ``rescoring.json`` (lam, beta, info) beside it."""

    FILE = "rescoring.json"

    def __init__(self, model, *, lam: float, beta: float = 0.0, info: dict | None = None):
        self.model, self.lam, self.beta, self.info = model, float(lam), float(beta), dict(info or {})

    def rescore(self, nbests: Sequence[NBest]) -> list[Choice]:
        return choose(nbests, lm_scores(self.model, nbests), lam=self.lam, beta=self.beta)

    def save_pretrained(self, directory: str | Path) -> Path:
        d = self.model.save_pretrained(directory)
        (Path(d) / self.FILE).write_text(json.dumps({"lam": self.lam, "beta": self.beta, "info": self.info},
                                                    indent=1) + "\n")
        return Path(d)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Rescorer:
        from analysis.rescoring.model import RescoringModel

        d = Path(directory)
        meta = json.loads((d / cls.FILE).read_text())
        return cls(RescoringModel.from_pretrained(d), lam=meta["lam"], beta=meta["beta"], info=meta.get("info"))
