"""Chart builders: pure figures whose data tests can read; log text in labels is escaped for Plotly."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components import charts

MARKUP = '<a href="https://evil.example/x">clickme</a><b>BOLD</b>'


def rate_frame(rates: list[float], domains: list | None = None, event: str = "unhandled") -> pd.DataFrame:
    """Rows of analysis.rates.group_rates for one event: 100 turns per domain, intervals +-0.02."""
    domains = domains or [f"d{i}" for i in range(len(rates))]
    return pd.DataFrame({"group": domains, "event": event, "turns": 100, "dialogues": 80,
                         "events": [round(r * 100) for r in rates], "event_dialogues": [round(r * 80) for r in rates],
                         "rate": rates, "ci_low": [max(0.0, r - 0.02) for r in rates],
                         "ci_high": [min(1.0, r + 0.02) for r in rates], "n_eff": 90.0})


def wer_frame() -> pd.DataFrame:
    return pd.DataFrame({"group": ["weather", MARKUP, None], "dialogues": [8, 4, 3], "turns": [10, 5, 3],
                         "ref_words": [60, 20, 15], "errors": [6, 8, 3], "pooled_wer": [0.1, 0.4, 0.2],
                         "ci_low": [0.05, 0.3, 0.1], "ci_high": [0.15, 0.5, 0.3]})


def test_event_by_domain_sorts_highest_first_with_counts_and_intervals():
    fig = charts.event_by_domain(rate_frame([0.05, 0.2, 0.1]), log=False)
    bar = fig.data[0]
    # highest first, each row labelled with its counts (events/turns)
    assert list(bar.y) == ["d1 · 20/100", "d2 · 10/100", "d0 · 5/100"] and list(bar.x) == [0.2, 0.1, 0.05]
    assert fig.layout.yaxis.autorange == "reversed"  # the first (highest) row on top
    assert list(bar.error_x.array) == pytest.approx([0.02] * 3)
    assert list(bar.error_x.arrayminus) == pytest.approx([0.02] * 3)
    assert fig.layout.xaxis.type == "linear" and list(bar.customdata[0][:3]) == ["unhandled", "d1", 0]


def test_a_domain_that_dwarfs_the_rest_gets_a_log_axis():
    # two domains at 100% and the rest near 5%: on a linear axis every other bar is a sliver
    rates = [1.0, 1.0, 0.05, 0.04, 0.06, 0.03, 0.0]
    assert charts.dwarfed(rates) and not charts.dwarfed([0.2, 0.1, 0.15, 0.0])
    fig = charts.event_by_domain(rate_frame(rates))
    assert fig.layout.xaxis.type == "log" and "log scale" in fig.layout.xaxis.title.text
    low, high = fig.layout.xaxis.range
    assert 10 ** low <= 0.003 and 10 ** high >= 1.0  # a decade below the smallest bar, up to 100%
    # a rate of 0 has no bar on a log axis: it is a marker at the axis start, still clickable
    bar, zero = fig.data
    assert pd.isna(list(bar.x)[-1]) and list(zero.y) == ["d6 · 0/100"]
    assert list(zero.customdata[0][:3]) == ["unhandled", "d6", 0] and zero.x[0] == pytest.approx(10 ** low)
    assert charts.event_by_domain(rate_frame(rates), log=False).layout.xaxis.type == "linear"


def test_wer_by_domain_is_worst_first_on_its_own_axis():
    fig = charts.wer_by_domain(wer_frame(), normaliser="english-v1")
    bar = fig.data[0]
    assert list(bar.x) == [0.4, 0.2, 0.1]
    assert list(bar.y) == [f"{charts.as_text(pd.Series([MARKUP]))[0]} · 20 words", f"{charts.NO_DOMAIN} · 15 words",
                           "weather · 60 words"]
    assert fig.layout.xaxis.title.text == "pooled WER (english-v1): errors / reference words"
    assert bar.name == "pooled WER (english-v1)" and "WER (english-v1) %{x:.1%}" in bar.hovertemplate
    assert charts.wer_by_domain(wer_frame(), normaliser="raw").data[0].name == "pooled WER (raw)"
    assert list(bar.error_x.array) == pytest.approx([0.1, 0.1, 0.05])
    assert [list(c[:3]) for c in bar.customdata] == [["wer", MARKUP, 0], ["wer", "", 1], ["wer", "weather", 0]]


def test_clicked_domain_reads_the_bars_own_customdata():
    fig = json.loads(charts.wer_by_domain(wer_frame(), normaliser="english-v1").to_json())
    data = fig["data"][0]["customdata"]
    # what st.plotly_chart reports for a click on a bar: the point with its customdata
    assert charts.clicked_domain({"points": [{"customdata": data[0]}]}) == ("wer", MARKUP)  # the raw domain
    assert charts.clicked_domain({"points": [{"customdata": data[1]}]}) == ("wer", None)  # no domain
    rates = json.loads(charts.event_by_domain(rate_frame([0.1, 0.2], ["a", "b"], "barge_in")).to_json())
    assert charts.clicked_domain({"points": [{"customdata": rates["data"][0]["customdata"][0]}]}) == \
        ("barge_in", "b")
    assert charts.clicked_domain({"points": []}) is None and charts.clicked_domain(None) is None
    assert charts.clicked_domain({"points": [{"x": 0.1, "y": "a"}]}) is None
    assert charts.clicked_domain({"points": [{"customdata": ["NLU", 3, "music"]}]}) is None  # another chart's


def test_signals_over_time_puts_wer_on_an_axis_of_its_own():
    days = pd.DataFrame({"day": pd.to_datetime(["2026-01-01", "2026-01-02"]), "turns": [5, 6],
                         "pooled_wer": [0.3, 0.4], "unhandled_rate": [0.1, 0.0], "error_rate": [0.0, 0.1],
                         "barge_in_rate": [0.2, 0.1], "negative_feedback_rate": [0.0, 0.0]})
    fig = charts.signals_over_time(days, normaliser="raw")
    axes = {t.name: t.yaxis for t in fig.data}
    assert axes["pooled WER (raw)"] == "y2" and {axes[label] for label in charts.SIGNALS.values()} == {"y"}
    assert fig.layout.yaxis2.title.text == "pooled WER (raw)" and fig.layout.yaxis.title.text == "share of turns"


def test_markup_in_labels_is_escaped():
    figs = (charts.event_by_domain(rate_frame([0.1, 0.2], ["weather", MARKUP])),
            charts.wer_by_domain(wer_frame(), normaliser="english-v1"))
    for fig in figs:
        labels = [y for trace in fig.data for y in trace.y]
        assert MARKUP not in labels
        assert any(y.startswith("&lt;a href=&quot;https://evil.example/x&quot;&gt;clickme&lt;/a&gt;&lt;b&gt;BOLD"
                                "&lt;/b&gt; · ") for y in labels)
        assert all(MARKUP not in (trace.hovertemplate or "") for trace in fig.data)


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
