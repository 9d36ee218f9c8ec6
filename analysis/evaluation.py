"""An evaluation of a model run as one typed record: metrics with intervals, what they were measured on, and
the Markdown report; stored in the ``evaluations`` table (app/store/evaluations.py) and shown by the pages.

Every family's evaluator returns an ``Evaluation``; the quick evaluators over a dataset's held-out dialogues
(analysis/holdout.py) are ``failure_eval.evaluate_heldout``, ``label_metrics.evaluate_heldout`` and
``skill_eval.evaluate_heldout``. The helpers here keep those three alike: ``production_view`` is what the
model may read (gold fields only ever serve as targets), ``turns_fingerprint`` names the data measured on,
``metric_table`` renders the metrics in the report.

The Markdown is ours and carries no names taken from data (intents, skills, datasets, run names): whoever
adds such a name to it escapes it (components.markdown.escape_markdown) first.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

HELDOUT = "heldout-dialogues"
SLURP_EVAL = "slurp-eval-split"
KINDS = {
    HELDOUT: "quick: the held-out fifth of this dataset's own dialogues, which training never sees",
    SLURP_EVAL: "full: dialogues built from SLURP's evaluation split",
}
# Fields a model must never read: the gold labels (targets only), the reference transcript, and the speaker
# vector (not logged by production traffic). The same fields store.list_turn_records(production_only=True) drops.
NON_PRODUCTION = ("reference_text", "speaker_embedding")


def describe_kind(kind: str) -> str:
    """The reader's sentence for a kind code (HELDOUT, SLURP_EVAL); any other kind is returned as it is."""
    return KINDS.get(kind, kind)


def _num(x: object) -> float:
    """A finite float or NaN (JSON null reads as NaN: undefined)."""
    return float("nan") if x is None else float(x)  # type: ignore[arg-type]


def _json_num(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(frozen=True, eq=False)
class Metric:
    """A point estimate and its interval (95% cluster bootstrap unless the evaluation says otherwise). NaN
    means undefined (e.g. an interval from fewer than two dialogues). Percentile intervals need not contain
    the point estimate on skewed statistics; ``low <= high`` always holds when both are defined."""

    value: float
    low: float = float("nan")
    high: float = float("nan")

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            object.__setattr__(self, name, _num(getattr(self, name)))
            if math.isinf(getattr(self, name)):
                raise ValueError(f"Metric {name} must be finite or NaN, got {getattr(self, name)}")
        if self.low > self.high:  # False when either is NaN
            raise ValueError(f"Metric interval low {self.low} > high {self.high}")

    def __eq__(self, other: object) -> bool:  # undefined equals undefined: a record read back equals itself
        return isinstance(other, Metric) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().values()))

    @classmethod
    def of(cls, report: Mapping[str, object], name: str) -> Metric:
        """From a report dict with ``name`` and ``name + "_ci"`` (label_metrics' reports)."""
        low, high = report[f"{name}_ci"]  # type: ignore[misc]
        return cls(report[name], low, high)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _json_num(self.value), "low": _json_num(self.low), "high": _json_num(self.high)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Metric:
        return cls(_num(d.get("value")), _num(d.get("low")), _num(d.get("high")))


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a model: ``family`` (e.g. "failure-points"), ``kind`` (HELDOUT, SLURP_EVAL or a
    sentence), ``metrics`` by name (in the order to show them), the Markdown report, the fingerprint of the
    data measured on, the configuration (the model's config, its training-data fingerprint, bootstrap
    settings) and ``n_items`` (the turns or examples measured)."""

    family: str
    kind: str
    metrics: dict[str, Metric]
    markdown: str
    data_fingerprint: str | None = None
    config: dict = field(default_factory=dict)
    n_items: int = 0

    def metrics_dict(self) -> dict[str, dict[str, float | None]]:
        """The metrics as JSON-ready dicts (NaN as None), in order."""
        return {name: m.to_dict() for name, m in self.metrics.items()}

    def to_json(self) -> str:
        """Strict JSON (no NaN: undefined numbers are null); ``from_json`` reads it back equal."""
        return json.dumps({"family": self.family, "kind": self.kind, "metrics": self.metrics_dict(),
                           "markdown": self.markdown, "data_fingerprint": self.data_fingerprint,
                           "config": self.config, "n_items": self.n_items}, allow_nan=False, default=str)

    @classmethod
    def from_json(cls, text: str | Mapping) -> Evaluation:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        return cls(family=d["family"], kind=d["kind"],
                   metrics={k: Metric.from_dict(v) for k, v in d["metrics"].items()}, markdown=d["markdown"],
                   data_fingerprint=d.get("data_fingerprint"), config=dict(d.get("config") or {}),
                   n_items=int(d.get("n_items") or 0))

    def table(self) -> list[dict[str, object]]:
        """One row per metric: metric, value, low, high (NaN where undefined)."""
        return [{"metric": k, "value": m.value, "low": m.low, "high": m.high} for k, m in self.metrics.items()]


# ---------------------------------------------------------------- helpers for the evaluators

def production_view(turns: Iterable[Mapping]) -> list[dict]:
    """Copies of the turns without gold_* fields, reference_text and speaker_embedding: what a model reads."""
    return [{k: v for k, v in t.items() if not k.startswith("gold_") and k not in NON_PRODUCTION} for t in turns]


def turns_fingerprint(turns: Iterable[Mapping]) -> str:
    """sha256 (first 16 hex digits) of the turns' full content, in (dialogue_id, turn_index) order: the same
    turns give the same fingerprint whatever their order."""
    h = hashlib.sha256()
    for t in sorted(turns, key=lambda t: (str(t["dialogue_id"]), int(t["turn_index"]))):
        h.update(json.dumps(dict(t), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def require_turns(turns: Iterable[Mapping], what: str) -> list[Mapping]:
    """The turns as a list; ValueError naming ``what`` when there are none (an evaluation of nothing)."""
    turns = list(turns)
    if not turns:
        raise ValueError(f"no held-out turns to evaluate {what} on: the dataset's held-out dialogues are empty "
                         "(a dataset needs enough dialogues for some to be held out)")
    return turns


def _fmt(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


def metric_table(metrics: Mapping[str, Metric], *, confidence: float = 0.95) -> list[str]:
    """Markdown table lines: metric | value | interval. Metric names are ours (no data names)."""
    lines = [f"| metric | value | {confidence:.0%} interval |", "| --- | --- | --- |"]
    for name, m in metrics.items():
        interval = "–" if math.isnan(m.low) else f"{_fmt(m.low)} – {_fmt(m.high)}"
        lines.append(f"| {name} | {_fmt(m.value)} | {interval} |")
    return lines


def heldout_header(title: str, *, n_items: int, n_dialogues: int, item: str, n_boot: int, confidence: float,
                   kind: str = HELDOUT) -> list[str]:
    """The opening lines every quick report shares: what was measured on, and how the intervals were made."""
    return [f"## {title}", "",
            f"Measured on {n_items:,} {item} in {n_dialogues:,} dialogues ({describe_kind(kind)}). "
            f"Intervals: {confidence:.0%} percentile bootstrap over {n_boot:,} replicates that resample whole "
            "dialogues (a dialogue's turns are not independent).", ""]
