"""The rewrite figures as a reader sees them (the Query rewrites page and the evaluation report): each figure
as text with its interval and "–" where it is undefined, each rewrite with its source-rewrite similarity and
the Beta interval of its win share, and per-domain or per-week rows with a minimum support.

Pure functions over pandas (the store's long metric rows, its rewrite rows); no Streamlit, no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import pandas as pd

from analysis.rewrites.meaning import intent_of
from analysis.rewrites.mining import BETA_PRIOR
from analysis.rewrites.rephrase import normalise

DASH = "–"  # an undefined figure: no value, a ratio without a loss, a share without a decision
CONFIDENCE = 0.95


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def figure_text(value: float | None, low: float | None = None, high: float | None = None, *,
                fmt: str = ".1f") -> str:
    """A figure with its interval, e.g. "8.8 [6.1, 13.0]"; DASH for a missing (None or NaN) value, the value
    alone without an interval; an infinite bound reads "∞"."""
    def show(x: float) -> str:
        return "∞" if math.isinf(x) else format(x, fmt)

    if _missing(value):
        return DASH
    return show(value) if _missing(low) or _missing(high) else f"{show(value)} [{show(low)}, {show(high)}]"


def ratio_text(value: float | None, low: float | None = None, high: float | None = None, *,
               fmt: str = ".1f") -> str:
    """A win/loss ratio: DASH when it is undefined (no loss: wins over zero; or nothing decided), else as
    ``figure_text`` (an upper bound of the interval may be "∞": replicates without a loss)."""
    if _missing(value) or math.isinf(float(value)):
        return DASH
    return figure_text(value, low, high, fmt=fmt)


def similarity(a: str | None, b: str | None) -> float:
    """Character similarity of two requests in [0, 1] (normalised, then rapidfuzz's ratio: 1 - the edit
    distance over the total length), the measure the rephrase detector uses. Higher: more alike."""
    from rapidfuzz.fuzz import ratio

    return ratio(normalise(a), normalise(b)) / 100.0


def beta_interval(wins: int, losses: int, *, confidence: float = CONFIDENCE,
                  prior: tuple[float, float] = BETA_PRIOR) -> tuple[float, float]:
    """The equal-tailed interval of a win share under Beta(prior_a + wins, prior_b + losses), the posterior the
    retirement rule uses (``mining.retire_probability``)."""
    from scipy.stats import beta

    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be >= 0")
    tail = (1.0 - confidence) / 2.0
    a, b = prior[0] + wins, prior[1] + losses
    return float(beta.ppf(tail, a, b)), float(beta.ppf(1.0 - tail, a, b))


def win_share_text(wins: object, losses: object, *, prior: tuple[float, float] = BETA_PRIOR) -> str:
    """A rewrite's share of wins among its decided outcomes (wins and losses) as the mean of its Beta
    posterior with the posterior's 95% interval, "0.92 [0.81, 0.98]" (the mean, not the raw share, so the
    figure always lies in its interval: 2 wins and no loss read 0.75 [0.29, 0.99]); DASH without a decided
    outcome (or without a replay)."""
    if _missing(wins) or _missing(losses) or int(wins) + int(losses) == 0:
        return DASH
    w, lo = int(wins), int(losses)
    mean = (prior[0] + w) / (prior[0] + prior[1] + w + lo)
    return figure_text(mean, *beta_interval(w, lo, prior=prior), fmt=".2f")


def rewrite_rows(rewrites: pd.DataFrame, catch_all: Collection[str] = ()) -> pd.DataFrame:
    """The rewrite table (rows of ``store.list_rewrites``, their order kept) with what a reader needs to
    believe a rewrite: ``similarity`` of source and rewrite, the rewrite's ``intent`` (of its interpretation)
    and whether it is ``catch_all``, and ``win_share`` with its Beta interval (text)."""
    catch = set(catch_all)
    out = rewrites.copy()
    out["similarity"] = [similarity(s, t) for s, t in zip(out["source"], out["target"], strict=True)]
    out["intent"] = [intent_of(i) for i in out["target_interpretation"]]
    out["catch_all"] = out["intent"].isin(catch)
    out["win_share"] = [win_share_text(w, lo) for w, lo in zip(out["wins"], out["losses"], strict=True)]
    return out


def group_rows(metrics: pd.DataFrame, rewriter: str, grouping: str, *, min_support: int = 0) -> pd.DataFrame:
    """Per group (domain or week) of one rewriter, from ``store.list_rewrite_metrics`` rows: its turns,
    rewritten turns, wins, losses, and the win/loss ratio, win rate and replayed defect rate with their
    intervals as text (DASH where undefined). Only groups with at least ``min_support`` rewritten turns;
    domains by turns (most first), weeks in order."""
    rows = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == grouping)]
    columns = [grouping, "turns", "rewritten", "wins", "losses", "win/loss", "win rate", "defect rate with"]
    out = []
    for grp, part in rows.groupby("grp", sort=False):
        m = part.set_index("metric")

        def get(name: str, m: pd.DataFrame = m) -> tuple:
            if name not in m.index:
                return None, None, None
            row = m.loc[name]
            return tuple(None if _missing(x) else float(x) for x in (row["value"], row["ci_low"], row["ci_high"]))

        rewritten = get("rewritten")[0] or 0
        if rewritten < min_support:
            continue
        out.append({grouping: str(grp), "turns": int(get("turns")[0] or 0), "rewritten": int(rewritten),
                    "wins": int(get("wins")[0] or 0), "losses": int(get("losses")[0] or 0),
                    "win/loss": ratio_text(*get("win_loss_ratio")),
                    "win rate": figure_text(*get("win_rate"), fmt=".1%"),
                    "defect rate with": figure_text(*get("defect_rate_with"), fmt=".1%")})
    table = pd.DataFrame(out, columns=columns)
    if grouping == "week":
        return table.assign(_k=pd.to_numeric(table["week"], errors="coerce")).sort_values("_k").drop(columns="_k") \
            .reset_index(drop=True)
    return table.sort_values(["turns", grouping], ascending=[False, True]).reset_index(drop=True)


def count_groups(metrics: pd.DataFrame, rewriter: str, grouping: str) -> int:
    """How many groups (domains, weeks) a rewriter's rows have."""
    rows = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == grouping)]
    return int(rows["grp"].nunique())


def chain_columns(graph: pd.DataFrame, ends: Collection[str]) -> list[int]:
    """How many nodes each column of the chain diagram holds, as ``components.charts.rewrite_chain`` draws
    the rows of a (pruned) ``store.list_rewrite_graph``: one node per (state, depth), the ``ends`` (SUCCESS,
    FAILURE) shared, and every node without an outgoing move in the last column (a Sankey puts its sinks
    there). Empty for an empty graph."""
    if graph.empty:
        return []
    ends = set(ends)
    nodes: set[tuple[str, int]] = set()
    moving: set[tuple[str, int]] = set()
    for row in graph.itertuples(index=False):
        frm = (row.from_state, int(row.depth))
        nodes.add(frm)
        moving.add(frm)
        nodes.add((row.to_state, -1) if row.to_state in ends else (row.to_state, int(row.depth) + 1))
    last = max(d for _, d in nodes) if any(d >= 0 for _, d in nodes) else 0
    last = max(last, max(d for _, d in moving) + 1)
    columns = [0] * (last + 1)
    for node in nodes:
        columns[node[1] if node in moving else last] += 1
    return columns


def short_states(graph: pd.DataFrame, source: str, *, width: int) -> tuple[pd.DataFrame, str]:
    """(graph, source) with every state longer than ``width`` characters cut to ``width`` - 1 and "…", so
    diagram labels stay short; a state whose cut would equal another state's keeps its full text (two states
    must never merge into one node)."""
    if width < 2:
        raise ValueError("width must be at least 2")
    states = set(graph["from_state"]) | set(graph["to_state"]) | {source} if not graph.empty else {source}
    cut = {s: (s if len(s) <= width else s[: width - 1].rstrip() + "…") for s in states}
    taken: dict[str, int] = {}
    for c in cut.values():
        taken[c] = taken.get(c, 0) + 1
    short = {s: (c if taken[c] == 1 else s) for s, c in cut.items()}
    if graph.empty:
        return graph, short[source]
    return graph.assign(from_state=graph["from_state"].map(short), to_state=graph["to_state"].map(short)), \
        short[source]
