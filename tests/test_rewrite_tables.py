"""The rewrite figures as a reader sees them (analysis/rewrites/tables.py), worked out by hand: "–" for what is
undefined, the Beta interval of a rewrite's win share, similarity, per-group rows with a minimum support, and
the chain diagram's columns and short labels."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.rewrites import tables

END = {"<SUCCESS>", "<FAILURE>"}


def test_figures_and_ratios_as_text():
    assert tables.figure_text(None) == tables.figure_text(float("nan")) == "–"
    assert tables.figure_text(0.25, 0.2, 0.3, fmt=".1%") == "25.0% [20.0%, 30.0%]"
    assert tables.figure_text(3.0, float("nan"), 4.0) == "3.0"  # no interval without both bounds
    assert tables.figure_text(3.0, 1.25, math.inf) == "3.0 [1.2, ∞]"
    # a ratio without a loss is undefined, whatever its interval; a finite one may have an infinite bound
    assert tables.ratio_text(math.inf, 4.0, math.inf) == "–" and tables.ratio_text(None) == "–"
    assert tables.ratio_text(20.0, 8.5, math.inf) == "20.0 [8.5, ∞]"


def test_win_share_is_the_beta_posterior():
    # Beta(1 + 2, 1 + 0) = Beta(3, 1): CDF x**3, so its quantiles are q**(1/3); mean 3/4
    lo, hi = tables.beta_interval(2, 0)
    assert (lo, hi) == (pytest.approx(0.025 ** (1 / 3)), pytest.approx(0.975 ** (1 / 3)))
    assert tables.win_share_text(2, 0) == f"0.75 [{0.025 ** (1 / 3):.2f}, {0.975 ** (1 / 3):.2f}]"
    # Beta(1, 1 + 1) = Beta(1, 2): CDF 1 - (1 - x)**2, mean 1/3
    assert tables.win_share_text(0, 1) == f"0.33 [{1 - 0.975 ** 0.5:.2f}, {1 - 0.025 ** 0.5:.2f}]"
    assert tables.win_share_text(0, 0) == tables.win_share_text(None, 3) == "–"
    assert tables.win_share_text(float("nan"), 1) == "–"
    with pytest.raises(ValueError):
        tables.beta_interval(-1, 0)


def test_similarity():
    assert tables.similarity("Where is the car?", "where is the car") == 1.0
    assert tables.similarity("abcd", "wxyz") == 0.0
    assert tables.similarity("do not park", "do not talk") == pytest.approx(1 - 4 / 22)  # 2 substitutions


def test_rewrite_rows():
    rows = pd.DataFrame({"source": ["where is the car", "do not park"], "target": ["raise volume", "do not talk"],
                         "target_interpretation": ["general_quirky", "audio_volume_mute"], "wins": [0, 3],
                         "losses": [0, 0]})
    out = tables.rewrite_rows(rows, ["general_quirky"])
    assert out["intent"].tolist() == ["general_quirky", "audio_volume_mute"]
    assert out["catch_all"].tolist() == [True, False]
    assert out["win_share"].iloc[0] == "–" and out["win_share"].iloc[1].startswith("0.80 [")  # 4/5
    assert out["similarity"].iloc[1] == pytest.approx(1 - 4 / 22)
    assert list(rows.columns) == ["source", "target", "target_interpretation", "wins", "losses"]  # not changed


def _metrics(groups: dict[str, dict[str, tuple]], grouping: str = "domain", rewriter: str = "chain") -> pd.DataFrame:
    return pd.DataFrame([{"rewriter": rewriter, "grouping": grouping, "grp": g, "metric": m, "value": v[0],
                          "ci_low": v[1], "ci_high": v[2]} for g, ms in groups.items() for m, v in ms.items()])


NAN = float("nan")
GROUPS = {
    "alarm": {"turns": (400, NAN, NAN), "rewritten": (30, NAN, NAN), "wins": (3, NAN, NAN), "losses": (0, NAN, NAN),
              "win_loss_ratio": (math.inf, 2.0, math.inf), "win_rate": (0.1, 0.02, 0.2),
              "defect_rate_with": (0.3, 0.25, 0.35)},
    "audio": {"turns": (900, NAN, NAN), "rewritten": (25, NAN, NAN), "wins": (4, NAN, NAN), "losses": (2, NAN, NAN),
              "win_loss_ratio": (2.0, 0.5, 9.0), "win_rate": (0.16, 0.05, 0.3),
              "defect_rate_with": (0.2, 0.1, 0.3)},
    "news": {"turns": (50, NAN, NAN), "rewritten": (0, NAN, NAN), "wins": (0, NAN, NAN), "losses": (0, NAN, NAN),
             "win_loss_ratio": (NAN, NAN, NAN), "win_rate": (NAN, NAN, NAN), "defect_rate_with": (0.5, 0.4, 0.6)},
}


def test_group_rows_by_hand():
    m = pd.concat([_metrics(GROUPS), _metrics({"alarm": {"turns": (1, NAN, NAN)}}, rewriter="online")])
    out = tables.group_rows(m, "chain", "domain", min_support=20)
    assert out["domain"].tolist() == ["audio", "alarm"]  # most turns first; news (nothing rewritten) left out
    assert out.iloc[0].to_dict() == {"domain": "audio", "turns": 900, "rewritten": 25, "wins": 4, "losses": 2,
                                     "win/loss": "2.0 [0.5, 9.0]", "win rate": "16.0% [5.0%, 30.0%]",
                                     "defect rate with": "20.0% [10.0%, 30.0%]"}
    assert out.iloc[1]["win/loss"] == "–"  # wins and no loss
    every = tables.group_rows(m, "chain", "domain")
    assert every["domain"].tolist() == ["audio", "alarm", "news"] and every.iloc[2]["win rate"] == "–"
    assert tables.group_rows(m, "chain", "domain", min_support=31).empty
    assert tables.count_groups(m, "chain", "domain") == 3 and tables.count_groups(m, "online", "domain") == 1


def test_weeks_in_numeric_order():
    m = _metrics({"10": GROUPS["news"], "2": GROUPS["audio"], "1": GROUPS["alarm"]}, grouping="week")
    assert tables.group_rows(m, "chain", "week")["week"].tolist() == ["1", "2", "10"]


def _graph(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["from_state", "to_state", "depth"])


def test_chain_columns_by_hand():
    # s -> x, y, SUCCESS; x -> z, FAILURE; y -> "(2 other states)". Columns: {s}; {x, y}; and the sinks
    # z, "(2 other states)", SUCCESS and FAILURE, all in the last column
    g = _graph([("s", "x", 0), ("s", "y", 0), ("s", "<SUCCESS>", 0), ("x", "z", 1), ("x", "<FAILURE>", 1),
                ("y", "(2 other states)", 1)])
    assert tables.chain_columns(g, END) == [1, 2, 4]
    # a state repeated later in the chain is a node of its own; a state without moves is a sink
    g = _graph([("s", "x", 0), ("s", "<FAILURE>", 0), ("x", "s", 1)])
    assert tables.chain_columns(g, END) == [1, 1, 2]
    assert tables.chain_columns(_graph([("s", "x", 0), ("s", "<FAILURE>", 0)]), END) == [1, 2]
    assert tables.chain_columns(_graph([]), END) == []


def test_short_states():
    long_a = "please play the radio station in the kitchen"
    long_b = "please play the radio station in the bedroom"
    long_c = "what is the weather going to be like tomorrow"
    g = _graph([("s", long_a, 0), ("s", long_b, 0), (long_c, "s", 1)])
    out, source = tables.short_states(g, long_c, width=20)
    assert source == "what is the weather…" and len(source) == 20
    # a and b would both be "please play the rad…": they keep their whole text rather than merge
    assert out["to_state"].tolist() == [long_a, long_b, "s"]
    assert out["from_state"].tolist() == ["s", "s", "what is the weather…"]
    assert tables.short_states(_graph([]), "x" * 30, width=10)[1] == "x" * 9 + "…"
    with pytest.raises(ValueError):
        tables.short_states(g, "s", width=1)
