"""Per-group WER of rescored n-best lists, and the spread across groups (mean, maximum, variance) and the overall
WER, each with speaker-bootstrap intervals, paired across systems. Pure numpy; no torch, no Streamlit, no SQL.

Conventions: WER is pooled (a group's word errors over its reference words; analysis/wer.py counts on the
rescorer's tokenisation, through analysis/rescoring/evaluate.list_errors); lower is better. Across groups: the
unweighted mean of the group WERs, their maximum, and their variance (population variance, ddof 0: the groups are
all the groups there are, not a sample). Intervals: 95% percentile intervals of a cluster bootstrap over speakers
(analysis/labels/evaluation.cluster_bootstrap_rows): each replicate draws speakers with replacement across all
groups and keeps all of a speaker's lists; every system is measured on the same draw, so a difference between
systems has its own (paired) interval. In a replicate that draws no speaker of some group, that group's WER is
undefined and the across-group figures use the groups present (rare with several speakers per group).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from analysis.labels.evaluation import cluster_bootstrap_rows
from analysis.rescoring.evaluate import list_errors, units_of
from analysis.rescoring.rescore import NBest

FIGURES = ("overall", "mean", "max", "variance")


def _figures(e: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """e (..., S, G) errors and w (..., G) words -> per system: group WERs (..., S, G) and the four figures."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices in a degenerate replicate
        wer = np.where(w[..., None, :] > 0, e / np.where(w > 0, w, 1)[..., None, :], np.nan)
        overall = e.sum(-1) / w.sum(-1)[..., None]
        return {"group": wer, "overall": overall, "mean": np.nanmean(wer, -1), "max": np.nanmax(wer, -1),
                "variance": np.nanvar(wer, -1)}


def group_wer_table(lists: Sequence[NBest], chosen_texts: Mapping[str, Sequence[str]], groups: Sequence[str], *,
                    baseline: str | None = None, pairs: Sequence[tuple[str, str]] = (), unit: str = "speaker",
                    resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Per-group and across-group WER of each system's chosen texts, with paired speaker-bootstrap intervals.

    lists: n-best lists with references (the evaluation split); chosen_texts: system name -> the chosen text per
    list (same order); groups: the group of each list (e.g. the speaker's accent or cohort; a speaker should have
    one group); baseline: a system name: every other system is also compared with it (a pair (system,
    baseline)); pairs: further (system, other) pairs; unit: the bootstrap unit (``units_of``: "speaker").

    Returns ``group_wer_errors``'s dict (differences keyed "<system> vs <other>", system minus other: negative
    means the system has the lower WER, better). Raises ValueError on mismatched lengths, an unknown system in a
    pair, or lists without references."""
    n = len(lists)
    if n == 0:
        raise ValueError("no lists to evaluate")
    if not chosen_texts:
        raise ValueError("no systems to evaluate")
    if baseline is not None and baseline not in chosen_texts:
        raise ValueError(f"baseline {baseline!r} is not one of the systems ({', '.join(chosen_texts)})")
    errors: dict[str, np.ndarray] = {}
    ref_words = np.zeros(n, dtype=np.int64)
    for s, texts in chosen_texts.items():
        if len(texts) != n:
            raise ValueError(f"{s}: {len(texts)} texts for {n} lists")
        errors[s], ref_words = list_errors(lists, texts)
    all_pairs = [(s, baseline) for s in chosen_texts if baseline is not None and s != baseline] + list(pairs)
    return group_wer_errors(errors, ref_words, groups, units_of(lists, unit), pairs=all_pairs,
                            resamples=resamples, seed=seed, confidence=confidence)


def group_wer_errors(errors: Mapping[str, np.ndarray], ref_words: np.ndarray, groups: Sequence[str],
                     units: Sequence[str], *, pairs: Sequence[tuple[str, str]] = (), resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict:
    """``group_wer_table`` from word errors: errors: system -> word errors per list (n,), may be fractional (e.g.
    averaged over training seeds); ref_words: reference words per list (n,); groups, units: each list's group and
    bootstrap unit (a speaker).

    Returns {"groups": sorted group names, "counts": {group: {"lists", "speakers", "reference_words"}}, "lists",
    "units", "resamples", "systems": {system: {"overall" | "mean" | "max" | "variance": {"value", "ci"},
    "per_group": {group: {"value", "ci"}}}}, "differences": {"<a> vs <b>": the same shape, a minus b}}."""
    n = len(ref_words)
    if n == 0:
        raise ValueError("no lists to evaluate")
    if len(groups) != n or len(units) != n:
        raise ValueError(f"{n} lists but {len(groups)} group labels and {len(units)} units")
    systems = list(errors)
    for a, b in pairs:
        if a not in errors or b not in errors:
            raise ValueError(f"pair ({a}, {b}): both must be systems ({', '.join(systems)})")
    names = sorted({str(g) for g in groups})
    g_idx = np.array([names.index(str(g)) for g in groups])
    n_s, n_g = len(systems), len(names)
    stats = np.zeros((n, n_s * n_g + n_g))
    rows = np.arange(n)
    for j, s in enumerate(systems):
        if len(errors[s]) != n:
            raise ValueError(f"{s}: {len(errors[s])} error counts for {n} lists")
        stats[rows, j * n_g + g_idx] = np.asarray(errors[s], dtype=np.float64)
    stats[rows, n_s * n_g + g_idx] = np.asarray(ref_words, dtype=np.float64)
    col = {s: j for j, s in enumerate(systems)}

    def metrics(sums: np.ndarray) -> dict[str, np.ndarray]:
        e = sums[..., :n_s * n_g].reshape(*sums.shape[:-1], n_s, n_g)
        f = _figures(e, sums[..., n_s * n_g:])
        out: dict[str, np.ndarray] = {}
        for s, j in col.items():
            for fig in FIGURES:
                out[f"{s}|{fig}"] = f[fig][..., j]
            for k, g in enumerate(names):
                out[f"{s}|g:{g}"] = f["group"][..., j, k]
        for a, b in pairs:
            for fig in FIGURES:
                out[f"{a} vs {b}|{fig}"] = f[fig][..., col[a]] - f[fig][..., col[b]]
            for k, g in enumerate(names):
                out[f"{a} vs {b}|g:{g}"] = f["group"][..., col[a], k] - f["group"][..., col[b], k]
        return out

    rep = cluster_bootstrap_rows(stats, list(units), metrics, n_boot=resamples, seed=seed, confidence=confidence)

    def block(prefix: str) -> dict:
        def one(key: str) -> dict:
            return {"value": rep[key], "ci": list(rep[f"{key}_ci"])}
        return {**{fig: one(f"{prefix}|{fig}") for fig in FIGURES},
                "per_group": {g: one(f"{prefix}|g:{g}") for g in names}}

    ref = np.asarray(ref_words)
    counts = {g: {"lists": int((g_idx == k).sum()),
                  "speakers": len({u for u, gi in zip(units, g_idx, strict=True) if gi == k}),
                  "reference_words": int(ref[g_idx == k].sum())} for k, g in enumerate(names)}
    return {"groups": names, "counts": counts, "lists": n, "units": len(set(units)), "resamples": resamples,
            "systems": {s: block(s) for s in systems},
            "differences": {f"{a} vs {b}": block(f"{a} vs {b}") for a, b in pairs}}
