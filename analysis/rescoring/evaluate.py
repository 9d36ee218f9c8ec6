"""Metrics of n-best rescoring with paired bootstrap intervals: pooled WER of the first pass, the n-best oracle and
any rescorer, relative WER reductions (WERR) between pairs of systems, the same on a rare-word subset, and the
intent accuracy of an NLU on each system's text. Pure (numpy; no torch, no Streamlit, no SQL): the study
(benchmark.py) and the workbench's evaluation both call it.

Conventions: WER is pooled (sum of word errors over sum of reference words, analysis/wer.py counts on the
rescorer's tokenisation, text.words); lower is better. WERR(system vs baseline) = (WER_baseline - WER_system) /
WER_baseline: positive means the system makes fewer errors. Intervals are 95% percentile intervals of a cluster
bootstrap over units (a simulated speaker, an utterance): each replicate draws units with replacement and keeps
all of a unit's lists, and every system is measured on the same draw (paired), so a WERR interval reflects the
systems' difference, not their separate noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from analysis.rescoring.rescore import NBest
from analysis.rescoring.text import words
from analysis.wer import error_counts

FIRST_PASS, ORACLE = "first_pass", "oracle"


# ----------------------------------------------------------------------------- per list

def list_errors(nbests: Sequence[NBest], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(word errors of each text against its list's reference, reference words of each list), int arrays of shape
    (n,). A list without a reference raises ValueError (it cannot be scored)."""
    if len(texts) != len(nbests):
        raise ValueError(f"{len(nbests)} lists but {len(texts)} texts")
    missing = [nb.key for nb in nbests if nb.reference is None]
    if missing:
        raise ValueError(f"{len(missing)} lists have no reference transcript (e.g. {missing[0]})")
    refs = [" ".join(words(nb.reference)) for nb in nbests]
    s, d, i, n = error_counts(refs, [" ".join(words(t)) for t in texts])
    return (s + d + i).astype(np.int64), n.astype(np.int64)


def first_pass_texts(nbests: Sequence[NBest]) -> list[str]:
    """The first pass's choice per list: the logged 1-best (``NBest.logged``)."""
    return [nb.hypotheses[nb.logged] for nb in nbests]


def top_scored_texts(nbests: Sequence[NBest]) -> list[str]:
    """The best first-pass score's hypothesis per list (the rescorer's choice at lam = beta = 0; ties: earlier).
    It differs from the logged 1-best where a recogniser's 1-best and n-best come from different searches."""
    return [nb.hypotheses[int(np.argmax(nb.scores))] for nb in nbests]


def oracle_texts(nbests: Sequence[NBest]) -> list[str]:
    """The hypothesis with the fewest word errors against the reference, per list (the first of equals)."""
    out = []
    for nb in nbests:
        errs, _ = list_errors([nb] * len(nb.hypotheses), nb.hypotheses)
        out.append(nb.hypotheses[int(np.argmin(errs))])
    return out


def units_of(nbests: Sequence[NBest], unit: str) -> list[str]:
    """The bootstrap unit of each list: "speaker" (NBest.speaker), "key" (each list alone), or the name of an
    extra field (e.g. "slurp_id": an utterance with all its recordings). A list without it raises ValueError."""
    out = []
    for nb in nbests:
        value = nb.speaker if unit == "speaker" else nb.key if unit == "key" else nb.extra.get(unit)
        if value is None:
            raise ValueError(f"list {nb.key} has no {unit!r} to resample by")
        out.append(str(value))
    return out


# ----------------------------------------------------------------------------- rare words

def rare_vocabulary(counts: Mapping[str, int] | Callable[[str], int], candidates: Iterable[str], *, k: int
                    ) -> set[str]:
    """The words of candidates (e.g. every reference word) seen fewer than k times in the training text: counts is
    a word -> count map or a function (e.g. ``RescoringModel.count``); a word absent from it counts 0."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    get = counts if callable(counts) else (lambda w: counts.get(w, 0))
    return {w for w in set(candidates) if get(w) < k}


def rare_mask(nbests: Sequence[NBest], rare_words: set[str]) -> np.ndarray:
    """Whether each list's reference holds at least one rare word (``text.words`` tokenisation), bool (n,)."""
    return np.array([any(w in rare_words for w in words(nb.reference)) for nb in nbests], dtype=bool)


def reference_words(nbests: Sequence[NBest]) -> set[str]:
    return {w for nb in nbests for w in words(nb.reference)}


# ----------------------------------------------------------------------------- bootstrap

def _interval(values: np.ndarray, confidence: float = 0.95) -> list[float]:
    v = values[~np.isnan(values)]
    if not v.size:
        return [float("nan"), float("nan")]
    q = (1.0 - confidence) / 2
    return [float(np.quantile(v, q)), float(np.quantile(v, 1.0 - q))]


def _unit_sums(stats: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    _, idx = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    out = np.zeros((int(idx.max()) + 1, stats.shape[1]))
    np.add.at(out, idx.ravel(), stats)
    return out


def _replicates(per_unit: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_stats) sums of unit statistics over bootstrap draws of the units (multinomial counts)."""
    n = len(per_unit)
    if resamples < 1 or n < 2:
        return np.zeros((0, per_unit.shape[1]))
    rng = np.random.default_rng(seed)
    step = max(1, 4_000_000 // n)
    return np.concatenate([rng.multinomial(n, np.full(n, 1.0 / n), size=min(step, resamples - s)) @ per_unit
                           for s in range(0, resamples, step)])


def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def evaluate_errors(errors: Mapping[str, np.ndarray], ref_words: np.ndarray, groups: Sequence[str], *,
                    pairs: Sequence[tuple[str, str]] = (), resamples: int = 1000, seed: int = 0,
                    mask: np.ndarray | None = None) -> dict:
    """Pooled WER per system and WERR per (system, baseline) pair with paired cluster-bootstrap intervals.

    errors: system -> word errors per list (n,), may be fractional (e.g. averaged over training seeds: the pooled
    WER of the average is the average of the seeds' pooled WERs); ref_words: reference words per list (n,);
    groups: the bootstrap unit of each list; mask: the lists to measure (None: all).

    Returns {"lists", "units", "reference_words", "wer": {system: {"value", "ci"}}, "werr": {"<system> vs
    <baseline>": {"system", "baseline", "value", "ci"}}}; WER and WERR are NaN when the subset has no words."""
    names = list(errors)
    keep = np.ones(len(ref_words), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    for a, b in pairs:
        if a not in errors or b not in errors:
            raise ValueError(f"pair ({a}, {b}): both must be systems of errors ({', '.join(names)})")
    out: dict = {"lists": int(keep.sum()), "units": len(set(np.asarray(groups, dtype=object)[keep].tolist())),
                 "reference_words": int(np.asarray(ref_words)[keep].sum()), "wer": {}, "werr": {}}
    if not keep.any():
        nan = {"value": float("nan"), "ci": [float("nan"), float("nan")]}
        out["wer"] = {s: dict(nan) for s in names}
        out["werr"] = {f"{a} vs {b}": {"system": a, "baseline": b, **nan} for a, b in pairs}
        return out
    stats = np.stack([np.asarray(errors[s], dtype=np.float64)[keep] for s in names]
                     + [np.asarray(ref_words, dtype=np.float64)[keep]], axis=1)
    per_unit = _unit_sums(stats, [g for g, k in zip(groups, keep, strict=True) if k])
    total = per_unit.sum(axis=0)
    reps = _replicates(per_unit, resamples, seed)
    col = {s: j for j, s in enumerate(names)}
    for s in names:
        out["wer"][s] = {"value": float(_div(total[col[s]], total[-1])),
                         "ci": _interval(_div(reps[:, col[s]], reps[:, -1]))}
    for a, b in pairs:
        point = float(_div(total[col[b]] - total[col[a]], total[col[b]]))
        boot = _div(reps[:, col[b]] - reps[:, col[a]], reps[:, col[b]])
        out["werr"][f"{a} vs {b}"] = {"system": a, "baseline": b, "value": point, "ci": _interval(boot)}
    return out


def evaluate_accuracy(correct: Mapping[str, np.ndarray], groups: Sequence[str], *,
                      pairs: Sequence[tuple[str, str]] = (), resamples: int = 1000, seed: int = 0,
                      mask: np.ndarray | None = None) -> dict:
    """Accuracy per system (mean of correct, 0..1 per list, may be fractional) and the difference in points per
    (system, baseline) pair (system minus baseline: positive means the system's text is understood more often),
    with paired cluster-bootstrap intervals. Returns {"lists", "units", "accuracy": {...}, "difference": {...}}."""
    names = list(correct)
    n = len(next(iter(correct.values()))) if correct else 0
    keep = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    stats = np.stack([np.asarray(correct[s], dtype=np.float64)[keep] for s in names] + [np.ones(int(keep.sum()))],
                     axis=1)
    per_unit = _unit_sums(stats, [g for g, k in zip(groups, keep, strict=True) if k])
    total = per_unit.sum(axis=0)
    reps = _replicates(per_unit, resamples, seed)
    col = {s: j for j, s in enumerate(names)}
    out: dict = {"lists": int(keep.sum()), "units": len(per_unit), "accuracy": {}, "difference": {}}
    for s in names:
        out["accuracy"][s] = {"value": float(total[col[s]] / total[-1]),
                              "ci": _interval(_div(reps[:, col[s]], reps[:, -1]))}
    for a, b in pairs:
        out["difference"][f"{a} vs {b}"] = {
            "system": a, "baseline": b, "value": float((total[col[a]] - total[col[b]]) / total[-1]),
            "ci": _interval(_div(reps[:, col[a]] - reps[:, col[b]], reps[:, -1]))}
    return out


def default_pairs(systems: Sequence[str], *, lm_only: str | None = None) -> list[tuple[str, str]]:
    """Every system (the oracle included: the headroom) against the first pass, and, when lm_only names a system,
    every other rescorer against it."""
    pairs = [(s, FIRST_PASS) for s in systems if s != FIRST_PASS]
    if lm_only is not None:
        pairs += [(s, lm_only) for s in systems if s not in (FIRST_PASS, ORACLE, lm_only)]
    return pairs


def evaluate_lists(nbests: Sequence[NBest], choices_by_system: Mapping[str, Sequence[str]], *,
                   rare_words: set[str] | None, unit: str, resamples: int = 1000, seed: int = 0,
                   lm_only: str | None = None) -> dict:
    """WER of the first pass (the logged 1-best), of the n-best oracle and of each system's chosen texts over the
    lists, and WERR of every system (the oracle included) against the first pass and, when lm_only names one of
    the systems, of the others against it; all with paired bootstrap intervals over ``unit`` (``units_of``).

    nbests: lists with references; choices_by_system: system name -> the chosen text per list (same order);
    rare_words: when given, the same figures on the lists whose reference holds one of these words (``rare``; see
    ``rare_vocabulary``). Returns {"unit", "resamples", "all": evaluate_errors(...), "rare": ... or None}."""
    for name, texts in choices_by_system.items():
        if name in (FIRST_PASS, ORACLE):
            raise ValueError(f"{name!r} is computed here; name the systems otherwise")
        if len(texts) != len(nbests):
            raise ValueError(f"{name}: {len(texts)} choices for {len(nbests)} lists")
    if lm_only is not None and lm_only not in choices_by_system:
        raise ValueError(f"lm_only {lm_only!r} is not one of the systems")
    groups = units_of(nbests, unit)
    errors: dict[str, np.ndarray] = {}
    errors[FIRST_PASS], ref_words = list_errors(nbests, first_pass_texts(nbests))
    errors[ORACLE], _ = list_errors(nbests, oracle_texts(nbests))
    for name, texts in choices_by_system.items():
        errors[name], _ = list_errors(nbests, texts)
    pairs = default_pairs(list(errors), lm_only=lm_only)
    common = dict(pairs=pairs, resamples=resamples, seed=seed)
    return {"unit": unit, "resamples": resamples,
            "all": evaluate_errors(errors, ref_words, groups, **common),
            "rare": None if rare_words is None else evaluate_errors(errors, ref_words, groups,
                                                                    mask=rare_mask(nbests, rare_words), **common)}
