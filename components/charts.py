"""Pure chart builders: DataFrame in, Plotly figure out, no Streamlit calls (tests inspect fig.data)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.wer_normalise import label as wer_label

SIGNALS = {
    "unhandled_rate": "unhandled",
    "error_rate": "skill error",
    "barge_in_rate": "barge-in",
    "negative_feedback_rate": "negative feedback",
}
# The same signals as analysis.rates counts them (its EVENTS), by name, for the per-domain charts.
EVENT_LABELS = {"unhandled": "unhandled", "error": "skill error", "barge_in": "barge-in",
                "negative_feedback": "negative feedback"}
NO_DOMAIN = "(no domain)"  # the label of turns NLU gave no domain
DWARF_RATIO = 10  # log scale when the largest rate is at least this many times the median of the others


def as_text(values: pd.Series) -> pd.Series:
    """Category labels from logs, escaped: Plotly renders a subset of HTML (links, bold) in tick and hover
    text, and log text must stay text."""
    return values.astype(str).map(html.escape)


def _domain_labels(domains: pd.Series) -> pd.Series:
    return as_text(domains.astype(object).where(domains.notna(), NO_DOMAIN))


def _bar_data(kind: str, df: pd.DataFrame, *columns: str) -> list[list]:
    """customdata of a per-domain bar: [kind, raw domain ("" if none), 1 if the domain is missing, columns...]:
    what clicked_domain reads back, then the numbers the hover shows."""
    missing = df["group"].isna()
    return [[kind, "" if m else str(g), int(m), *rest] for g, m, *rest in
            zip(df["group"], missing, *(df[c] for c in columns), strict=True)]


def dwarfed(rates: pd.Series | np.ndarray, *, ratio: float = DWARF_RATIO) -> bool:
    """Whether one bar dwarfs the rest: the largest rate is at least ``ratio`` times the median of the other
    positive rates (then a linear axis flattens every other bar)."""
    values = np.sort(np.asarray(rates, dtype=float)[np.asarray(rates, dtype=float) > 0])
    return len(values) >= 3 and values[-1] >= ratio * float(np.median(values[:-1]))


def event_by_domain(rates: pd.DataFrame, *, log: bool | None = None) -> go.Figure:
    """Horizontal bars of one event's rate per domain (rows of analysis.rates.group_rates for one event), the
    highest on top, each labelled "domain · events/turns", with the interval as error bars. log: a log axis
    (None: when one bar dwarfs the rest, ``dwarfed``); on it a rate of 0 cannot be drawn as a bar and is a
    marker at the axis start instead, still clickable. Each bar's customdata starts with (event, domain,
    missing) for clicked_domain."""
    df = rates.sort_values(["rate", "turns"], ascending=[False, False], ignore_index=True)
    event = str(df["event"].iloc[0]) if len(df) else ""
    label = EVENT_LABELS.get(event, event)
    log = dwarfed(df["rate"]) if log is None else log
    # the counts in the row label, where neither a bar nor its error bar can cover them
    y = _domain_labels(df["group"]) + [f" · {e:,}/{t:,}" for e, t in zip(df["events"], df["turns"], strict=True)]
    data = _bar_data(event, df, "events", "turns", "event_dialogues", "dialogues", "ci_low", "ci_high")
    hover = (f"%{{y}}: %{{customdata[3]:,}} of %{{customdata[4]:,}} turns {html.escape(label)} (%{{x:.1%}}; 95% CI "
             "%{customdata[7]:.1%}–%{customdata[8]:.1%}), in %{customdata[5]:,} of %{customdata[6]:,} dialogues"
             "<extra></extra>")
    positive = (df["rate"] > 0).to_numpy()
    floor = 0.0
    if log and positive.any():
        # one decade below the smallest drawn value, so the shortest bar is still a bar
        floor = 10.0 ** np.floor(np.log10(df.loc[positive, "rate"].min())) / 10
    low = df["ci_low"].clip(lower=floor) if log else df["ci_low"]
    traces = [go.Bar(x=df["rate"].where(positive | (not log)), y=y, orientation="h", name=label, customdata=data,
                     hovertemplate=hover,
                     error_x=dict(type="data", symmetric=False, array=(df["ci_high"] - df["rate"]).clip(lower=0),
                                  arrayminus=(df["rate"] - low).clip(lower=0)))]
    if log and not positive.all():
        zero = ~positive
        traces.append(go.Scatter(x=[floor if floor else 1e-3] * int(zero.sum()), y=y[zero], mode="markers",
                                 name=f"{label}: 0%", marker=dict(symbol="line-ns-open", size=12),
                                 customdata=[d for d, z in zip(data, zero, strict=True) if z],
                                 hovertemplate=hover.replace("%{x:.1%}", "0%"), showlegend=False))
    fig = go.Figure(traces)
    fig.update_layout(yaxis=dict(autorange="reversed", type="category"), showlegend=False,
                      xaxis=dict(type="log" if log else "linear", tickformat=".1~%" if log else ".0%",
                                 title=f"share of turns {label}" + (" (log scale)" if log else "")),
                      margin=dict(t=10, b=10, l=10, r=10), height=80 + 22 * max(len(df), 1))
    if log and floor:
        fig.update_xaxes(range=[np.log10(floor), np.log10(max(float(df["ci_high"].max()), 1e-9)) + 0.05], dtick=1)
    return fig


def wer_by_domain(wer: pd.DataFrame, *, normaliser: str) -> go.Figure:
    """Pooled WER per domain (rows of analysis.rates.group_wer: sum of errors / sum of reference words), worst
    on top, each labelled with the reference words it rests on, with its interval as error bars; its own axis
    (a word error rate, not a share of turns), titled with the normaliser the counts were made under.
    customdata starts with ("wer", domain, missing) for clicked_domain."""
    name = f"pooled {wer_label(normaliser)}"
    df = wer.sort_values(["pooled_wer", "ref_words"], ascending=[False, False], ignore_index=True)
    data = _bar_data("wer", df, "errors", "ref_words", "turns", "dialogues", "ci_low", "ci_high")
    fig = go.Figure(go.Bar(
        x=df["pooled_wer"], y=_domain_labels(df["group"]) + [f" · {w:,} words" for w in df["ref_words"]],
        orientation="h", name=name, customdata=data,
        error_x=dict(type="data", symmetric=False, array=(df["ci_high"] - df["pooled_wer"]).clip(lower=0),
                     arrayminus=(df["pooled_wer"] - df["ci_low"]).clip(lower=0)),
        hovertemplate="%{y}: " + wer_label(normaliser) + " %{x:.1%} (95% CI %{customdata[7]:.1%}–"
                      "%{customdata[8]:.1%}): %{customdata[3]:,} "
                      "word errors in %{customdata[4]:,} reference words, %{customdata[5]:,} turns of "
                      "%{customdata[6]:,} dialogues<extra></extra>"))
    fig.update_layout(yaxis=dict(autorange="reversed", type="category"),
                      xaxis=dict(tickformat=".0%", title=f"{name}: errors / reference words", rangemode="tozero"),
                      margin=dict(t=10, b=10, l=10, r=10), height=80 + 22 * max(len(df), 1))
    return fig


def clicked_domain(selection: object) -> tuple[str, str | None] | None:
    """(what, domain) of the bar clicked in an event_by_domain or wer_by_domain chart, from st.plotly_chart's
    selection state: what is an event of EVENT_LABELS or "wer"; domain is None for the bar of turns without a
    domain. None when nothing, or something other than one of their bars, is selected."""
    points = getattr(selection, "points", None)
    if points is None and isinstance(selection, dict):
        points = selection.get("points")
    for point in points or []:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, (list, tuple)) and len(data) >= 3 and data[0] in (*EVENT_LABELS, "wer") \
                and isinstance(data[1], str) and data[2] in (0, 1):
            return str(data[0]), None if data[2] else data[1]
    return None


def signals_over_time(df: pd.DataFrame, *, normaliser: str) -> go.Figure:
    """By day: one line per failure signal (share of turns) on top, pooled WER (under normaliser, named) below on
    an axis of its own (a word error rate is not a share of turns, and its scale would squash theirs)."""
    name = f"pooled {wer_label(normaliser)}"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08)
    for col, label in SIGNALS.items():
        fig.add_trace(go.Scatter(name=label, x=df["day"], y=df[col], mode="lines+markers"), row=1, col=1)
    fig.add_trace(go.Scatter(name=name, x=df["day"], y=df["pooled_wer"], mode="lines+markers",
                             line=dict(color="#7f8c8d")), row=2, col=1)
    fig.update_yaxes(tickformat=".0%", title_text="share of turns", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", title_text=name, rangemode="tozero", row=2, col=1)
    fig.update_layout(legend_title_text="signal", margin=dict(t=30, b=10, l=10, r=10), height=460)
    return fig


def reliability(bins: pd.DataFrame) -> go.Figure:
    """Reliability chart: acceptance rate per score bin (with its interval) against the diagonal."""
    mid = (bins["bin_low"] + bins["bin_high"]) / 2
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line=dict(dash="dot")),
        go.Scatter(x=mid, y=bins["acceptance_rate"], mode="markers+lines", name="acceptance rate",
                   customdata=bins["n"], hovertemplate="score %{x:.2f}: %{y:.0%} of %{customdata} accepted",
                   error_y=dict(type="data", symmetric=False, array=bins["ci_high"] - bins["acceptance_rate"],
                                arrayminus=bins["acceptance_rate"] - bins["ci_low"])),
        go.Bar(x=mid, y=bins["n"] / max(bins["n"].max(), 1), name="share of decisions (scaled)", opacity=0.25),
    ])
    fig.update_layout(xaxis_title="model score", yaxis_title="accepted by reviewers", yaxis_tickformat=".0%",
                      xaxis_range=[0, 1], yaxis_range=[0, 1.05], margin=dict(t=30, b=10, l=10, r=10), height=380)
    return fig


FAILURE_COLOURS = {"NO_FAILURE": "#c8d6e5", "WAKEWORD": "#8e44ad", "ASR": "#e74c3c", "NLU": "#e67e22",
                   "ENTITY_RESOLUTION": "#f1c40f", "RESPONSE": "#16a085", "TTS": "#2980b9"}


def failure_shares(table: pd.DataFrame, *, top: int = 15, include_no_failure: bool = False) -> go.Figure:
    """Stacked bars: each group's share of turns failing at each component (from shares_by_group)."""
    table = table.head(top)
    labels = [c for c in FAILURE_COLOURS if c in table.columns and (include_no_failure or c != "NO_FAILURE")]
    groups = as_text(table["grp"].astype(str))
    # customdata carries (turns, label, raw group) so a clicked bar can name the turns behind it (clicked_bar)
    fig = go.Figure([go.Bar(name=label, x=groups, y=table[label], marker_color=FAILURE_COLOURS[label],
                            customdata=list(zip(table["turns"].astype(int), [label] * len(table),
                                                table["grp"].astype(str), strict=True)),
                            hovertemplate="%{x}: %{y:.1%} of %{customdata[0]} turns")
                     for label in labels])
    fig.update_layout(barmode="stack", yaxis_tickformat=".0%", yaxis_title="share of turns",
                      legend_title_text="failure point", margin=dict(t=30, b=10, l=10, r=10), height=380)
    return fig


def clicked_bar(selection: object) -> tuple[str, str] | None:
    """(failure point, group) of the bar clicked in a failure_shares chart, from st.plotly_chart's
    selection state (its ``points``); None when nothing, or something other than one of its bars, is selected."""
    points = getattr(selection, "points", None)
    if points is None and isinstance(selection, dict):
        points = selection.get("points")
    for point in points or []:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, (list, tuple)) and len(data) == 3 and all(isinstance(v, str) for v in data[1:]):
            return data[1], data[2]
    return None


def failure_cascade(totals: dict[str, int]) -> go.Figure:
    """Sankey: all turns -> defective / fine -> the first component that failed irrecoverably."""
    components = [c for c in FAILURE_COLOURS if c != "NO_FAILURE"]
    nodes = ["turns", "no failure", "defective", *components]
    sources = [0, 0] + [2] * len(components)
    targets = [1, 2] + list(range(3, 3 + len(components)))
    values = [totals["turns"] - totals["defective"], totals["defective"]] + [totals[c] for c in components]
    fig = go.Figure(go.Sankey(node=dict(label=nodes, pad=14,
                                        color=["#95a5a6", FAILURE_COLOURS["NO_FAILURE"], "#7f8c8d"]
                                        + [FAILURE_COLOURS[c] for c in components]),
                              link=dict(source=sources, target=targets, value=values)))
    fig.update_layout(margin=dict(t=20, b=10, l=10, r=10), height=340)
    return fig


def precision_coverage(curve: pd.DataFrame, *, at: tuple[float, float] | None = None,
                       max_points: int = 2000) -> go.Figure:
    """The precision-coverage curve (analysis.labels.evaluation.precision_coverage): coverage on x, precision on y,
    the threshold in the hover; ``at`` = (coverage, precision) marks the chosen threshold. A curve longer than
    max_points is drawn through evenly spaced rows, its first and last included (a browser would stall on a
    million points; the shape does not change)."""
    if len(curve) > max_points:
        curve = curve.iloc[np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))]
    traces = [go.Scatter(x=curve["coverage"], y=curve["precision"], mode="lines+markers", name="labels",
                         marker=dict(size=4), customdata=np.stack([curve["threshold"], curve["labelled"]], axis=-1),
                         hovertemplate="threshold %{customdata[0]:.3f}: %{customdata[1]:,} labels, coverage "
                                       "%{x:.1%}, precision %{y:.1%}<extra></extra>")]
    if at is not None:
        traces.append(go.Scatter(x=[at[0]], y=[at[1]], mode="markers", name="chosen threshold",
                                 marker=dict(size=12, symbol="x"), hoverinfo="skip"))
    fig = go.Figure(traces)
    fig.update_layout(xaxis_title="coverage (share of labels accepted)", yaxis_title="precision",
                      xaxis_tickformat=".0%", yaxis_tickformat=".0%", xaxis_range=[0, 1.02],
                      margin=dict(t=30, b=10, l=10, r=10), height=380)
    return fig


def rank_history(history: pd.DataFrame) -> go.Figure:
    """A pseudo-label's rank history (analysis.skills.model.rank_history): epoch on x, the rank of the
    proposed and of the logged skill on y (rank 1 at the top; gaps where the proposed skill was below the
    recorded ranks)."""
    fig = go.Figure([go.Scatter(x=history["epoch"], y=history["proposed_rank"], mode="lines+markers",
                                name="proposed skill"),
                     go.Scatter(x=history["epoch"], y=history["logged_rank"], mode="lines+markers",
                                name="logged skill")])
    fig.update_layout(xaxis_title="epoch", yaxis_title="rank", yaxis_autorange="reversed", xaxis_dtick=1,
                      yaxis_dtick=1, margin=dict(t=30, b=10, l=10, r=10), height=260)
    return fig


REWRITE_END = {"<SUCCESS>": ("SUCCESS", "#27ae60"), "<FAILURE>": ("FAILURE", "#c0392b")}


def prune_chain(graph: pd.DataFrame, source: str, keep: str | None = None, *, max_out: int = 6) -> pd.DataFrame:
    """The readable part of a chain graph (store.list_rewrite_graph rows): from the source, its ``max_out``
    most frequent moves, plus the move to ``keep`` (the rewrite) and to SUCCESS/FAILURE; from each state so
    kept, the same one level deeper. The other moves of a state become one "(N other states)" edge, so each
    state's probabilities still sum to 1."""
    if graph.empty:
        return graph
    out, frontier = [], {source}
    for depth in sorted(graph["depth"].unique()):
        level = graph[(graph["depth"] == depth) & graph["from_state"].isin(frontier)]
        nxt: set[str] = set()
        for _, edges in level.groupby("from_state", sort=False):
            edges = edges.sort_values(["n", "to_state"], ascending=[False, True])
            must = edges["to_state"].isin(list(REWRITE_END) + ([keep] if keep else []))
            top = edges[~must].head(max_out)
            kept = pd.concat([edges[must], top])
            rest = edges.drop(kept.index)
            if len(rest):
                other = rest.iloc[:1].copy()
                other["to_state"] = f"({len(rest)} other states)"
                other["n"] = rest["n"].sum()
                other["probability"] = rest["probability"].sum()
                other["to_success"] = float("nan")
                kept = pd.concat([kept, other])
            out.append(kept)
            nxt |= set(kept["to_state"]) - set(REWRITE_END)
        frontier = nxt
    return pd.concat(out, ignore_index=True) if out else graph.iloc[:0]


def rewrite_chain(graph: pd.DataFrame, source: str) -> go.Figure:
    """Sankey of a source's rephrase chain (store.list_rewrite_graph): one node per (state, depth), so a state
    repeated later in the chain (a user saying the same thing again) is a node of its own and the diagram
    has no cycle; SUCCESS and FAILURE are shared end nodes. Link value = the transition's probability (its
    count over the from-state's outgoing count), also in the link's label and hover. Node labels carry the
    state's success probability. Log text is escaped (Plotly renders some HTML in labels)."""
    keys: dict[tuple[str, int], int] = {}
    labels, colours = [], []

    def node(state: str, depth: int, success: float | None) -> int:
        key = (state, -1) if state in REWRITE_END else (state, depth)
        if key not in keys:
            keys[key] = len(labels)
            if state in REWRITE_END:
                name, colour = REWRITE_END[state]
            else:
                tail = "" if success is None or pd.isna(success) else f" (success {success:.0%})"
                name, colour = html.escape(str(state)) + tail, "#2c3e50" if state == source else "#7f8c8d"
            labels.append(name)
            colours.append(colour)
        return keys[key]

    if not graph.empty:
        node(source, 0, graph.loc[graph["from_state"] == source, "from_success"].iloc[0]
             if (graph["from_state"] == source).any() else None)
    sources, targets, values, link_labels = [], [], [], []
    for row in graph.itertuples(index=False):
        sources.append(node(row.from_state, int(row.depth), row.from_success))
        targets.append(node(row.to_state, int(row.depth) + 1, row.to_success))
        values.append(float(row.probability))
        link_labels.append(f"{row.probability:.0%} ({int(row.n)})")
    fig = go.Figure(go.Sankey(
        node=dict(label=labels, color=colours, pad=16, hovertemplate="%{label}<extra></extra>"),
        link=dict(source=sources, target=targets, value=values, label=link_labels,
                  hovertemplate="%{source.label} → %{target.label}: %{label}<extra></extra>")))
    fig.update_layout(margin=dict(t=20, b=10, l=10, r=10), height=min(900, max(320, 34 * len(labels))))
    return fig


REWRITE_TREND = {"win_rate": "win rate", "loss_rate": "loss rate", "defect_rate_without": "defect rate without",
                 "defect_rate_with": "defect rate with rewrites"}


def rewrite_trend(weekly: pd.DataFrame) -> go.Figure:
    """Win and loss rates (of rewritten turns) and the replayed defect rate without and with rewrites, by
    week (rows of store.list_rewrite_metrics for one rewriter, grouping 'week'), with their intervals as
    error bars."""
    weekly = weekly[weekly["metric"].isin(list(REWRITE_TREND))]
    weekly = weekly.assign(week=pd.to_numeric(weekly["grp"], errors="coerce")).sort_values("week")
    traces = []
    for metric, name in REWRITE_TREND.items():
        part = weekly[weekly["metric"] == metric]
        traces.append(go.Scatter(
            x=part["week"], y=part["value"], mode="lines+markers", name=name,
            error_y=dict(type="data", symmetric=False, array=(part["ci_high"] - part["value"]).clip(lower=0),
                         arrayminus=(part["value"] - part["ci_low"]).clip(lower=0)),
            hovertemplate="week %{x}: %{y:.1%}<extra>" + name + "</extra>"))
    fig = go.Figure(traces)
    fig.update_layout(xaxis_title="week", yaxis_title="rate", yaxis_tickformat=".0%", xaxis_dtick=1,
                      legend_title_text="", margin=dict(t=30, b=10, l=10, r=10), height=360)
    return fig
