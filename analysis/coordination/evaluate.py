"""Evaluation of coordination chunking: utterance-level exact match of the item list and chunk-level precision,
recall and F1, by item count (1: no list, 2, 3, 4+) and for seen vs unseen slot types, with cluster-bootstrap
intervals (analysis.labels.evaluation.cluster_bootstrap_rows: whole source utterances, or dialogues, are
resampled), and the relative gain of one method over another (paired: both on the same resampled clusters).

Conventions. A prediction is a list of word spans; fewer than two spans is "no list" (the empty list), as the
workbench proposes items only for two or more. Exact match: the predicted list equals the gold list (for one value,
both empty). Chunks: a predicted span is a true positive when it is exactly a gold item. Undefined ratios are NaN.
``evaluate_heldout`` is the quick evaluation of a trained chunker on a dataset's held-out dialogues, as an
``analysis.evaluation.Evaluation``; higher is better for every figure except ``single.false_split_rate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from analysis.coordination.baselines import rule_split
from analysis.coordination.examples import Example
from analysis.evaluation import (
    HELDOUT,
    Evaluation,
    Metric,
    heldout_header,
    metric_table,
    require_turns,
    turns_fingerprint,
)
from analysis.labels.evaluation import cluster_bootstrap_rows

Spans = Sequence[tuple[int, int]]
BUCKETS = ("all", "lists", "items_1", "items_2", "items_3", "items_4plus")


def as_list(spans: Spans) -> tuple[tuple[int, int], ...]:
    """The item list a prediction stands for: its spans when there are two or more, else none."""
    spans = tuple((int(s), int(e)) for s, e in spans)
    return spans if len(spans) >= 2 else ()


def row_stats(gold: Sequence[Example], pred: Sequence[Spans]) -> np.ndarray:
    """(n, 4): per example exact (0/1), chunk tp, fp, fn."""
    if len(gold) != len(pred):
        raise ValueError(f"one prediction per example: {len(gold)} examples, {len(pred)} predictions")
    out = np.zeros((len(gold), 4))
    for i, (ex, p) in enumerate(zip(gold, pred, strict=True)):
        g, q = set(as_list(ex.items)), set(as_list(p))
        tp = len(g & q)
        out[i] = (float(g == q), tp, len(q) - tp, len(g) - tp)
    return out


def _metrics(s: np.ndarray) -> dict[str, np.ndarray]:
    n, exact, tp, fp, fn = np.moveaxis(s, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"exact_match": np.where(n > 0, exact / n, np.nan),
                "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
                "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)}


def bucket_of(ex: Example) -> str:
    return f"items_{ex.n_items}" if ex.n_items < 4 else "items_4plus"


def report(gold: Sequence[Example], pred: Sequence[Spans], *, unseen: Sequence[str] = (), n_boot: int = 1000,
           seed: int = 0, confidence: float = 0.95) -> dict[str, dict]:
    """Per bucket ("all", "lists" (2+ items), "items_1" .. "items_4plus", and with unseen types given, "seen" /
    "unseen" (lists only)): n, exact_match, precision, recall, f1, each metric with ``<name>_ci``. Clusters:
    each example's ``group``. Buckets without examples are left out."""
    stats = row_stats(gold, pred)
    rows = np.column_stack([np.ones(len(gold)), stats])
    groups = np.array([ex.group for ex in gold], dtype=object)
    unseen_set = set(unseen)
    masks = {"all": np.ones(len(gold), bool), "lists": np.array([ex.n_items >= 2 for ex in gold], bool)}
    for b in BUCKETS[2:]:
        masks[b] = np.array([bucket_of(ex) == b for ex in gold], bool)
    if unseen_set:
        masks["seen"] = masks["lists"] & np.array([ex.slot_type not in unseen_set for ex in gold], bool)
        masks["unseen"] = masks["lists"] & np.array([ex.slot_type in unseen_set for ex in gold], bool)
    out = {}
    for name, m in masks.items():
        if m.any():
            r = cluster_bootstrap_rows(rows[m], list(groups[m]), _metrics, n_boot=n_boot, seed=seed,
                                       confidence=confidence)
            out[name] = {k: v for k, v in r.items() if k not in ("resampled",)} | {"n": int(m.sum())}
    return out


def relative_gain(gold: Sequence[Example], pred: Sequence[Spans], base: Sequence[Spans], *,
                  mask: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict:
    """Exact match of pred and of base over the same examples, their difference (points) and the relative gain
    (pred - base) / base, with intervals from one paired cluster bootstrap (NaN where base is 0)."""
    a, b = row_stats(gold, pred)[:, 0], row_stats(gold, base)[:, 0]
    keep = np.ones(len(gold), bool) if mask is None else np.asarray(mask, bool)
    rows = np.column_stack([np.ones(keep.sum()), a[keep], b[keep]])
    groups = [ex.group for ex, k in zip(gold, keep, strict=True) if k]

    def metrics(s: np.ndarray) -> dict[str, np.ndarray]:
        n, x, y = np.moveaxis(s, -1, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"model": x / n, "base": y / n, "difference": (x - y) / n,
                    "relative_gain": np.where(y > 0, (x - y) / y, np.nan)}

    r = cluster_bootstrap_rows(rows, groups, metrics, n_boot=n_boot, seed=seed, confidence=confidence)
    return {k: v for k, v in r.items() if k != "resampled"}


def rule_predictions(examples: Sequence[Example]) -> list[list[tuple[int, int]]]:
    """The rule splitter on each example's gold extent (an oracle extent: it favours the rule)."""
    return [rule_split(ex.tokens, ex.extent) for ex in examples]


# ---------------------------------------------------------------------------------------------- quick evaluation

def heldout_examples(turns: Sequence[Mapping], model, *, seed: int = 1) -> tuple[list[Example], list[Example]]:
    """The quick evaluation's examples from held-out turns (their reference_text and gold_slots; the recognised
    words from asr_text): one per item count 1-5 for every carrier utterance, items drawn from the held-out
    turns' values and the pools the checkpoint trained with."""
    from analysis.coordination.examples import evaluation_examples, utterances_from_turns, value_pools

    utts = utterances_from_turns(turns)
    types = model.config.slot_types
    pools = {t: set(v) for t, v in value_pools(utts, types).items()}
    for t, vals in model.pools.items():
        pools.setdefault(t, set()).update(tuple(v) for v in vals)
    return evaluation_examples(utts, types=types, pools={t: tuple(sorted(v)) for t, v in pools.items()}, seed=seed)


def _spans(model, examples: Sequence[Example]) -> list[tuple[tuple[int, int], ...]]:
    return [c.spans for c in model.predict([ex.tokens for ex in examples], scores=False)]


def evaluate_heldout(turns: Sequence[dict], model, embed: Callable | None = None, *, n_boot: int = 1000,
                     seed: int = 0, confidence: float = 0.95, kind: str = HELDOUT) -> Evaluation:
    """The chunker (a loaded ``CoordinationModel``) on a dataset's held-out dialogues: lists built from their gold
    slots (``heldout_examples``), tagged on the gold text and on the recognised text; dialogues resampled. Metrics:
    ``exact_match`` (every example), ``lists.*`` and ``items_2`` .. ``items_4plus``: exact match and chunk F1;
    ``single.false_split_rate`` (a list proposed for one value; lower is better); ``recognised.*`` the same on the
    recognised words; ``seen`` / ``unseen`` when the checkpoint held slot types out; ``baseline.rule.*``: the rule
    splitter on the gold extent, and ``gain_over_rule``: the relative gain in exact match. embed is unused (the
    chunker has its own word vectors). ValueError when no held-out turn carries a list-able value."""
    del embed
    turns = require_turns(turns, "the coordination chunker")
    gold, recognised = heldout_examples(turns, model)
    if not gold:
        raise ValueError(f"none of the {len(turns):,} held-out turns has a gold value of a list-able slot type "
                         "to build coordinations from")
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    unseen = tuple(model.config.held_out_types)
    main = report(gold, _spans(model, gold), unseen=unseen, **common)
    rule = rule_predictions(gold)
    base = report(gold, rule, **common)
    gain = relative_gain(gold, _spans(model, gold), rule, **common)
    metrics: dict[str, Metric] = {"exact_match": Metric.of(main["all"], "exact_match")}
    for b in ("lists", "items_2", "items_3", "items_4plus"):
        if b in main:
            metrics[f"{b}.exact_match"] = Metric.of(main[b], "exact_match")
            metrics[f"{b}.chunk_f1"] = Metric.of(main[b], "f1")
    if "items_1" in main:
        r = main["items_1"]
        lo, hi = r["exact_match_ci"]
        metrics["single.false_split_rate"] = Metric(1 - r["exact_match"], 1 - hi, 1 - lo)
    for b in ("seen", "unseen"):
        if b in main:
            metrics[f"{b}.exact_match"] = Metric.of(main[b], "exact_match")
    if recognised:
        rec = report(recognised, _spans(model, recognised), **common)
        metrics["recognised.exact_match"] = Metric.of(rec["all"], "exact_match")
        if "lists" in rec:
            metrics["recognised.lists.chunk_f1"] = Metric.of(rec["lists"], "f1")
    metrics["baseline.rule.exact_match"] = Metric.of(base["all"], "exact_match")
    metrics["gain_over_rule"] = Metric.of(gain, "relative_gain")
    n_dialogues = len({ex.group for ex in gold})
    counts = {b: main[b]["n"] for b in BUCKETS[2:] if b in main}
    lines = heldout_header("Coordination chunking: quick evaluation", n_items=len(gold), n_dialogues=n_dialogues,
                           item="generated utterances", n_boot=n_boot, confidence=confidence, kind=kind)
    lines += ["Every held-out turn with exactly one gold value of a list-able slot type carries one example per item "
              "count: the turn as it is (1 item: no list) and the value replaced by 2, 3, 4 and 5 values of its type "
              "joined as people speak. Examples per item count: "
              + ", ".join(f"{b.removeprefix('items_')} {n:,}" for b, n in counts.items())
              + f"; on the recognised words (where the value survived recognition): {len(recognised):,}. "
              "Exact match: the proposed item list equals the gold one (fewer than two chunks is no list). The rule "
              "splitter splits the gold extent of the list on 'and' and 'or' (given the extent: an oracle).", "",
              *metric_table(metrics, confidence=confidence)]
    config = {"model": model.config.to_dict(), "trained_on": model.fingerprint, "n_boot": n_boot, "seed": seed,
              "confidence": confidence, "examples": counts, "recognised_examples": len(recognised)}
    return Evaluation(family="coordination", kind=kind, metrics=metrics, markdown="\n".join(lines) + "\n",
                      data_fingerprint=turns_fingerprint(turns), config=config, n_items=len(gold))


def by_item_count(evaluation: Evaluation) -> list[dict]:
    """The accuracy by item count of a stored evaluation, for the page: item count, exact match, its interval,
    chunk F1 (the '1' row is the share of single values left unsplit)."""
    rows = []
    m = evaluation.metrics
    if "single.false_split_rate" in m:
        f = m["single.false_split_rate"]
        rows.append({"items": "1 (no list)", "exact_match": 1 - f.value, "low": 1 - f.high, "high": 1 - f.low,
                     "chunk_f1": float("nan")})
    for b, label in (("items_2", "2"), ("items_3", "3"), ("items_4plus", "4+")):
        if f"{b}.exact_match" in m:
            e = m[f"{b}.exact_match"]
            rows.append({"items": label, "exact_match": e.value, "low": e.low, "high": e.high,
                         "chunk_f1": m[f"{b}.chunk_f1"].value})
    return rows
