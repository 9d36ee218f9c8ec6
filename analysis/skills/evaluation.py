"""The quick evaluation of a trained skill router on a dataset's held-out dialogues (analysis/holdout.py):
routing accuracy against the log's gold_skills (every skill that could validly serve the request), with
dialogue-bootstrap intervals, against the logged routing as the baseline.

The metrics are those of ``analysis.skills.model`` (top-1 accuracy, recall@k, micro F1 of the predicted
skill sets), summed per turn so that whole dialogues can be resampled (``label_metrics.cluster_bootstrap_rows``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np

from analysis.evaluation import (
    HELDOUT,
    Evaluation,
    Metric,
    heldout_header,
    metric_table,
    production_view,
    require_turns,
    turns_fingerprint,
)
from analysis.labels.evaluation import cluster_bootstrap_rows
from analysis.skills.model import build_examples

# per-turn statistics, summed over the resampled dialogues
_STATS = ("top1", "top1_shortlister", "recall_share", "with_gold", "tp", "n_pred", "n_gold", "logged_top1")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _metrics(s: np.ndarray) -> dict[str, np.ndarray]:
    top1, short, recall, n, tp, n_pred, n_gold, logged = np.moveaxis(s, -1, 0)
    return {"routing.top1_accuracy": _ratio(top1, n), "routing.top1_shortlister": _ratio(short, n),
            "routing.recall_at_k": _ratio(recall, n), "routing.f1": _ratio(2 * tp, n_pred + n_gold),
            "baseline.logged_routing.top1_accuracy": _ratio(logged, n)}


def evaluate_heldout(turns: Sequence[dict], router, embed: Callable[[list[str]], np.ndarray], *,
                     n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, kind: str = HELDOUT) -> Evaluation:
    """The skill router (a loaded ``SkillRouter``) measured on held-out turns, as an ``Evaluation``.

    turns: v1 turn dicts with their gold fields (``store.list_turn_records``), e.g. the held-out dialogues of
    ``analysis.holdout.split_turns``. The router reads ``production_view`` of them only (its examples are the
    turns with a logged response_skill; a user's recent skills come from these turns alone); gold_skills is
    the target, and only routed turns with a non-empty gold_skills are measured. Metrics, higher is better:
    ``routing.top1_accuracy`` (the re-ranker's first skill is a valid one: the routing accuracy),
    ``routing.top1_shortlister``, ``routing.recall_at_k`` (share of the valid skills in the shortlist of
    top_k) and ``routing.f1`` (micro F1 of the skill sets scoring >= the config's threshold); the baseline
    ``baseline.logged_routing.top1_accuracy`` is the share whose logged (production) skill is valid.
    ValueError when there are no turns or none is routed with a gold_skills."""
    turns = require_turns(turns, "the skill router")
    gold = {(str(t["dialogue_id"]), int(t["turn_index"])): t.get("gold_skills") for t in turns}
    examples = [e for e in build_examples(production_view(turns)) if gold.get(e.key)]
    if not examples:
        raise ValueError(f"none of the {len(turns):,} held-out turns is routed (response_skill) and has a "
                         "gold_skills to evaluate against")
    pred = router.predict(examples, embed=embed)
    gold_sets = [set(gold[e.key]) for e in examples]
    stats = np.zeros((len(examples), len(_STATS)))
    for i, (e, g, top, short, chosen) in enumerate(zip(examples, gold_sets, pred.top1(), pred.topk(),
                                                       pred.predicted_sets(router.config.threshold), strict=True)):
        tp = len(chosen & g)
        stats[i] = (top in g, short[0] in g, len(set(short) & g) / len(g), 1, tp, len(chosen), len(g), e.skill in g)
    report = cluster_bootstrap_rows(stats, [e.dialogue_id for e in examples], _metrics, n_boot=n_boot, seed=seed,
                                    confidence=confidence)
    metrics = {name: Metric.of(report, name) for name in _metrics(stats.sum(axis=0))}
    lines = heldout_header("Skill routing: quick evaluation", n_items=len(examples), n_dialogues=report["n_groups"],
                           item="routed turns with gold_skills", n_boot=n_boot, confidence=confidence, kind=kind)
    lines += ["A routing is right when the skill is among the turn's gold_skills (every skill that could validly "
              f"serve it). Top-1: the re-ranker's first skill (and the shortlister's); recall@k: the share of the "
              f"valid skills in the top {router.k}; F1: micro F1 of the skill sets scoring at least "
              f"{router.config.threshold}. The baseline is the logged routing (the skill production chose).", "",
              *metric_table(metrics, confidence=confidence)]
    config = {"model": asdict(router.config), "trained_on": router.fingerprint, "n_boot": n_boot, "seed": seed,
              "confidence": confidence}
    return Evaluation(family="skills", kind=kind, metrics=metrics, markdown="\n".join(lines) + "\n",
                      data_fingerprint=turns_fingerprint(turns), config=config, n_items=len(examples))
