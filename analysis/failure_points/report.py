"""Failure-point breakdowns for the Failure analysis page: shares per group, the cascade, and what would
change if one component never failed. Pure functions over count tables (no model, no database)."""

from __future__ import annotations

import pandas as pd

from analysis.log_format import FAILURE_POINTS

COMPONENTS = tuple(label for label in FAILURE_POINTS if label != "NO_FAILURE")  # in cascade order


def shares_by_group(counts: pd.DataFrame) -> pd.DataFrame:
    """counts: columns grp, label, turns. Returns one row per group: turns, and each label's share of that
    group's turns (columns in cascade order), groups with most turns first."""
    if counts.empty:
        return pd.DataFrame(columns=["grp", "turns", *FAILURE_POINTS])
    table = counts.pivot_table(index="grp", columns="label", values="turns", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=list(FAILURE_POINTS), fill_value=0)
    total = table.sum(axis=1)
    out = table.div(total, axis=0)
    out.insert(0, "turns", total)
    return out.sort_values("turns", ascending=False).reset_index()


def cascade(counts: pd.DataFrame) -> dict[str, int]:
    """Totals for the flow turns -> defective -> failure point: {'turns', 'defective', <component>: n}.
    An NLU error caused by an ASR error is counted under ASR: the label already names the first failure."""
    per_label = counts.groupby("label")["turns"].sum() if not counts.empty else pd.Series(dtype=int)
    out = {"turns": int(per_label.sum()), "defective": int(per_label.drop("NO_FAILURE", errors="ignore").sum())}
    out.update({c: int(per_label.get(c, 0)) for c in COMPONENTS})
    return out


def what_if_perfect(counts: pd.DataFrame) -> pd.DataFrame:
    """For each component: the share of defects that would disappear if it never failed (the turns whose
    first irrecoverable failure it is), and the defect rate that would remain. Rows in cascade order."""
    totals = cascade(counts)
    turns, defective = totals["turns"], totals["defective"]
    rows = []
    for c in COMPONENTS:
        n = totals[c]
        rows.append({"component": c, "defects": n,
                     "share_of_defects": n / defective if defective else float("nan"),
                     "defect_rate_now": defective / turns if turns else float("nan"),
                     "defect_rate_if_perfect": (defective - n) / turns if turns else float("nan")})
    return pd.DataFrame(rows)
