"""The quick evaluation of a trained rescorer on a dataset's held-out turns (the workbench's `turnlens evaluate
rescoring`): the word error rate of the logged first pass, of the rescored choice and of the n-best oracle, and the
relative reduction, each with a 95% bootstrap interval over speakers. The full study on SLURP (two n-best sources,
the rare-word set, every weighting scheme) is scripts/evaluate_rescoring.py (docs/results/rescoring.md). Pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.evaluation import Evaluation, Metric, metric_table, turns_fingerprint
from analysis.wer import error_counts

FAMILY = "rescoring"
KIND = "held-out turns with scored n-best lists and a reference transcript (dialogues the rescorer never saw)"


def wer_stats(references: Sequence[str], first: Sequence[str], rescored: Sequence[str],
              oracle: Sequence[str]) -> np.ndarray:
    """(n, 4) per turn: errors of the first pass, of the rescored choice, of the oracle, reference words."""
    refs = [r.lower() for r in references]
    cols = []
    for hyps in (first, rescored, oracle):
        s, d, i, n = error_counts(refs, [h.lower() for h in hyps])
        cols.append(s + d + i)
    return np.stack([*cols, n], axis=1).astype(np.float64)


def _metrics(s: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        first, rescored, oracle = s[..., 0] / s[..., 3], s[..., 1] / s[..., 3], s[..., 2] / s[..., 3]
        return {"wer_first_pass": first, "wer_rescored": rescored, "wer_oracle": oracle,
                "werr_rescored": (first - rescored) / first, "werr_oracle": (first - oracle) / first}


def oracle_choice(reference: str, hypotheses: Sequence[str]) -> str:
    """The hypothesis of the list with the fewest word errors against the reference (the first of equals)."""
    s, d, i, _ = error_counts([reference.lower()] * len(hypotheses), [h.lower() for h in hypotheses])
    return hypotheses[int(np.argmin(s + d + i))]


def evaluate_heldout(turns: Sequence[dict], chosen: Sequence[str], *, config: dict, n_boot: int = 1000,
                     seed: int = 0) -> Evaluation:
    """turns: held-out turns (dialogue_id, turn_index, speaker_id, asr_text, reference_text, hypotheses: the
    n-best texts); chosen: the rescorer's choice for each. WERs pooled over turns, intervals over speakers."""
    from analysis.labels.evaluation import cluster_bootstrap_rows

    if not turns:
        raise ValueError("no held-out turns with a scored n-best list and a reference transcript to evaluate on")
    refs = [t["reference_text"] for t in turns]
    stats = wer_stats(refs, [t["asr_text"] or "" for t in turns], list(chosen),
                      [oracle_choice(t["reference_text"], t["hypotheses"]) for t in turns])
    groups = [str(t.get("speaker_id") or t["dialogue_id"]) for t in turns]
    report = cluster_bootstrap_rows(stats, groups, _metrics, n_boot=n_boot, seed=seed)
    metrics = {name: Metric(report[name], *report[f"{name}_ci"]) for name in _metrics(stats.sum(axis=0))}
    changed = sum((c or "").split() != (t["asr_text"] or "").split() for t, c in zip(turns, chosen, strict=True))
    metrics["changed_share"] = Metric(changed / len(turns))
    lines = ["## Rescoring on held-out turns", "",
             f"Measured on {len(turns):,} turns of {len(set(groups)):,} speakers ({KIND}). Intervals: 95% percentile "
             f"bootstrap over {n_boot:,} replicates resampling whole speakers. WER is pooled over turns; werr is the "
             "relative reduction from the first pass (positive: fewer errors). The rescorer changed "
             f"{changed:,} of the turns' transcripts.", "", *metric_table(metrics), ""]
    return Evaluation(family=FAMILY, kind=KIND, metrics=metrics, markdown="\n".join(lines),
                      data_fingerprint=turns_fingerprint(
                          [{k: t.get(k) for k in ("dialogue_id", "turn_index", "asr_text", "reference_text")}
                           for t in turns]),
                      config={**config, "n_boot": n_boot, "seed": seed, "resampled": "speakers"},
                      n_items=len(turns))
