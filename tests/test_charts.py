"""Chart builders: pure figures whose data tests can read; log text in labels is escaped for Plotly."""

from __future__ import annotations

import pandas as pd

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
