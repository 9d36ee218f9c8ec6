"""Chart builders: pure figures whose data tests can read; log text in labels is escaped for Plotly."""

from __future__ import annotations

import pandas as pd
import pytest

from components import charts

MARKUP = '<a href="https://evil.example/x">clickme</a><b>BOLD</b>'


def domain_frame() -> pd.DataFrame:
    return pd.DataFrame({"domain": ["weather", MARKUP], "turns": [10, 5], "pooled_wer": [0.1, 0.4],
                         "unhandled_rate": [0.1, 0.2], "error_rate": [0.0, 0.1], "barge_in_rate": [0.2, 0.0],
                         "negative_feedback_rate": [0.0, 0.05]})


def test_signals_by_domain_has_one_trace_per_signal_in_traffic_order():
    fig = charts.signals_by_domain(domain_frame())
    assert [t.name for t in fig.data] == list(charts.SIGNALS.values())
    assert list(fig.data[0].x)[0] == "weather" and list(fig.data[0].y) == [0.1, 0.2]


def test_wer_by_domain_is_worst_first():
    fig = charts.wer_by_domain(domain_frame())
    assert list(fig.data[0].y) == [0.4, 0.1]


def test_markup_in_labels_is_escaped():
    for fig in (charts.signals_by_domain(domain_frame()), charts.wer_by_domain(domain_frame())):
        labels = [x for trace in fig.data for x in trace.x]
        assert MARKUP not in labels
        assert "&lt;a href=&quot;https://evil.example/x&quot;&gt;clickme&lt;/a&gt;&lt;b&gt;BOLD&lt;/b&gt;" in labels


def _edges(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["from_state", "to_state", "n", "probability", "depth", "from_support",
                                       "from_success", "to_success"])


def test_prune_chain_keeps_the_top_moves_the_rewrite_and_the_ends():
    from components.charts import prune_chain

    # the source "s" has 8 moves: 5 to states a..e (n 9..5), 1 to the rewrite "r" (n 1), 1 to each end
    rows = [("s", x, n, n / 20, 0, 20, 0.3, 0.5) for x, n in zip("abcde", (5, 4, 3, 2, 1), strict=True)]
    rows += [("s", "r", 1, 1 / 20, 0, 20, 0.3, 0.9), ("s", "<SUCCESS>", 2, 2 / 20, 0, 20, 0.3, None),
             ("s", "<FAILURE>", 2, 2 / 20, 0, 20, 0.3, None)]
    rows += [("a", "s", 1, 0.5, 1, 2, 0.5, 0.3), ("a", "<SUCCESS>", 1, 0.5, 1, 2, 0.5, None),
             ("zz", "<FAILURE>", 3, 1.0, 1, 3, 0.0, None)]  # zz is not reached from a kept state
    out = prune_chain(_edges(rows), "s", "r", max_out=2)
    first = out[out["from_state"] == "s"]
    assert set(first["to_state"]) == {"a", "b", "r", "<SUCCESS>", "<FAILURE>", "(3 other states)"}
    other = first[first["to_state"] == "(3 other states)"].iloc[0]
    assert other["n"] == 3 + 2 + 1 and other["probability"] == pytest.approx(6 / 20)
    assert first["probability"].sum() == pytest.approx(1.0)
    assert set(out["from_state"]) == {"s", "a"}  # depth 1 only from kept states
    assert prune_chain(_edges(rows), "s", "r", max_out=10).shape[0] == len(rows) - 1  # nothing grouped
