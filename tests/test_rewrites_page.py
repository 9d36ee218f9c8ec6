"""The Query rewrites page on a simulated log mined by `turnlens mine rewrites` (a fast fake embedder)."""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import store
from app.review import session as review_session
from tests.helpers import app_db_copy, build_rewrite_db, one_turn_app_db, open_app_page, read_db
from tests.test_label_page import charts_values

PAGE = "app_pages/rewrites.py"


@pytest.fixture(scope="module")
def rewrite_db(tmp_path_factory):
    return build_rewrite_db(tmp_path_factory.mktemp("rewrites"))


@pytest.fixture
def db(rewrite_db, tmp_path, monkeypatch):
    """A fresh copy per test: some tests record decisions."""
    return app_db_copy(rewrite_db, tmp_path, monkeypatch)


def open_page(**state) -> AppTest:
    return open_app_page(PAGE, state=state)


def run_of(path) -> int:
    return int(read_db(path, store.list_rewrite_runs, "t")["run_id"].iloc[0])


def table(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def select(at: AppTest, key: str, row: int) -> None:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception


def chain(at: AppTest) -> dict:
    return next(d for d in (json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart"))
                if d["type"] == "sankey")


UNDEFINED = {"inf", "-inf", "infinity", "nan", "none", "null", "<na>"}


def raw_undefined(frame: pd.DataFrame) -> list:
    """Cells that show an undefined figure raw (Infinity, None, NaN) instead of "–"."""
    bad = []
    for col in frame.columns:
        for v in frame[col].tolist():
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                bad.append((col, v))
            elif isinstance(v, str) and (v.strip().lower() in UNDEFINED or "inf" in v.lower().split()):
                bad.append((col, v))
    return bad


def stored_figure(m: pd.DataFrame, name: str, spec: str) -> str:
    """How a stored figure must read, worked out here: "–" when undefined (a ratio without a loss included)."""
    v, lo, hi = m.loc[name, ["value", "ci_low", "ci_high"]]

    def show(x):
        return "∞" if np.isinf(x) else format(x, spec)

    if np.isnan(v) or (name == "win_loss_ratio" and np.isinf(v)):
        return "–"
    return show(v) if np.isnan(lo) or np.isnan(hi) else f"{show(v)} [{show(lo)}, {show(hi)}]"


def test_win_loss_figures_match_the_stored_metrics(db):
    at = open_page()
    run_id = run_of(db)
    assert at.selectbox(key="rw_run").value == run_id
    metrics = read_db(db, store.list_rewrite_metrics, run_id)
    present = [r for r in ("chain", "chain_retiring_oracle", "online", "combined") if r in set(metrics["rewriter"])]
    assert present == ["chain", "chain_retiring_oracle", "online", "combined"]
    assert at.radio(key="rw_rewriter").options == present
    undefined_seen = False
    for rewriter in present:
        at.radio(key="rw_rewriter").set_value(rewriter).run()
        assert not at.exception
        m = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == "overall")].set_index("metric")
        captions = [c.value for c in at.caption]
        for label, name, spec in (("Win/loss ratio", "win_loss_ratio", ".1f"), ("Win rate", "win_rate", ".1%"),
                                  ("Loss rate", "loss_rate", ".1%"), ("Rewritten turns", "rewrite_rate", ".1%"),
                                  ("Defect rate with rewrites", "defect_rate_with", ".1%")):
            full = stored_figure(m, name, spec)
            assert metric(at, label) == full.split(" [")[0]
            if "[" in full:
                assert "95% interval [" + full.split(" [", 1)[1] in captions
            undefined_seen |= full == "–"
        # the comparison: every rewriter's figures with intervals, "–" where undefined, nothing raw
        compare = table(at, "rewriter").set_index("rewriter")
        assert list(compare.index) == present
        for name in present:
            mm = metrics[(metrics["rewriter"] == name) & (metrics["grouping"] == "overall")].set_index("metric")
            assert compare.loc[name, "win/loss"] == stored_figure(mm, "win_loss_ratio", ".1f")
            assert compare.loc[name, "wins"] == format(mm.loc["wins", "value"], ",.0f")
            assert compare.loc[name, "win rate"] == stored_figure(mm, "win_rate", ".1%")
        assert raw_undefined(compare.reset_index()) == []
    assert undefined_seen  # the database has a rewriter without a decided outcome: its ratio reads "–"
    assert any("resampl" in c.value and "users" in c.value and "**win**" in c.value and "rephrase" in c.value
               for c in at.caption)


def test_two_weeks_are_a_table_not_a_line(db):
    at = open_page()
    run_id = run_of(db)
    metrics = read_db(db, store.list_rewrite_metrics, run_id)
    weekly = metrics[(metrics["rewriter"] == "chain") & (metrics["grouping"] == "week")]
    assert sorted(weekly["grp"].unique()) == ["1", "2"]
    assert not [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "scatter"]
    weeks = table(at, "week")
    assert weeks["week"].tolist() == ["1", "2"]
    wins = weekly[weekly["metric"] == "wins"].set_index("grp")["value"]
    assert weeks["wins"].tolist() == [int(wins["1"]), int(wins["2"])]
    m = weekly.set_index(["grp", "metric"])
    for _, row in weeks.iterrows():
        assert row["win/loss"] == stored_figure(m.loc[row["week"]], "win_loss_ratio", ".1f")
        assert row["defect rate with"] == stored_figure(m.loc[row["week"]], "defect_rate_with", ".1%")
    assert raw_undefined(weeks) == []
    assert any("not a trend" in c.value for c in at.caption)


def test_three_weeks_are_a_trend_line(db):
    """With a third week (copied from the second into the stored metrics) the weeks are drawn as a line with
    error bars, one point per week."""
    import duckdb

    conn = duckdb.connect(str(db))
    conn.execute("INSERT INTO rewrite_metrics SELECT run_id, rewriter, grouping, '3', metric, value, ci_low, ci_high "
                 "FROM rewrite_metrics WHERE grouping = 'week' AND grp = '2'")
    conn.close()
    at = open_page()
    metrics = read_db(db, store.list_rewrite_metrics, run_of(db))
    weekly = metrics[(metrics["rewriter"] == "chain") & (metrics["grouping"] == "week")]
    trend = next(data for data in (json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart"))
                 if data[0]["type"] == "scatter")
    wins = weekly[weekly["metric"] == "win_rate"].assign(week=lambda d: d["grp"].astype(int)).sort_values("week")
    np.testing.assert_allclose(charts_values(trend[0]["x"]), [1, 2, 3])
    np.testing.assert_allclose(charts_values(trend[0]["y"]), wins["value"], equal_nan=True)
    assert not any(d.value is not None and "week" in d.value.columns and "win/loss" in d.value.columns
                   for d in at.dataframe)


def test_domains_carry_intervals_and_a_minimum_support(db):
    at = open_page()
    metrics = read_db(db, store.list_rewrite_metrics, run_of(db))
    d = metrics[(metrics["rewriter"] == "chain") & (metrics["grouping"] == "domain")].set_index(["grp", "metric"])
    rewritten = d.xs("rewritten", level="metric")["value"]
    assert at.number_input(key="rw_min_support").value == 20
    for floor in (20, 0, int(rewritten.max()) + 1):
        at.number_input(key="rw_min_support").set_value(floor).run()
        assert not at.exception
        domains = table(at, "domain")
        assert set(domains["domain"]) == set(rewritten[rewritten >= floor].index)
        for _, row in domains.iterrows():
            assert row["rewritten"] == rewritten[row["domain"]]
            assert row["win/loss"] == stored_figure(d.loc[row["domain"]], "win_loss_ratio", ".1f")
            assert row["win rate"] == stored_figure(d.loc[row["domain"]], "win_rate", ".1%")
        assert raw_undefined(domains) == []
        assert any(f"{len(domains)} of {rewritten.size} domains have at least {floor:,} rewritten turns" in c.value
                   for c in at.caption)
    # the test means something: some domains fall under the default floor, some stay, one ratio is undefined
    assert 0 < (rewritten >= 20).sum() < rewritten.size
    at.number_input(key="rw_min_support").set_value(0).run()
    assert "–" in set(table(at, "domain")["win/loss"])


def catch_all_of(path) -> list[str]:
    return json.loads(read_db(path, store.list_rewrite_runs, "t")["summary"].iloc[0])["catch_all"]["intents"]


def test_rewrite_table_shows_similarity_support_and_a_beta_interval(db):
    from rapidfuzz.fuzz import ratio
    from scipy.stats import beta

    at = open_page()
    run_id = run_of(db)
    rewrites = read_db(db, store.list_rewrites, run_id)
    catch_all = catch_all_of(db)
    assert "general_quirky" in catch_all  # derived from the mining period, not listed by hand
    intent = rewrites["target_interpretation"].str.split("|").str[0]
    kept = rewrites[~intent.isin(catch_all)]
    assert 0 < len(kept) < len(rewrites)  # the test means something: some rewrites go into a catch-all intent

    # all shown by default (the review queue and the page agree on the first rewrite); hidden on request, and
    # the caption says how many
    assert at.toggle(key="rw_hide_catch_all").value is False
    assert table(at, "retire_probability")["source"].tolist() == rewrites["source"].tolist()
    assert not any("hidden" in c.value for c in at.caption)
    at.toggle(key="rw_hide_catch_all").set_value(True).run()
    shown = table(at, "retire_probability")
    assert shown["source"].tolist() == kept["source"].tolist()
    assert shown["rewrite"].tolist() == kept["target"].tolist()
    assert shown["support"].tolist() == kept["source_support"].tolist()
    assert shown["status"].tolist() == kept["status"].tolist()
    assert not shown["intent"].isin(catch_all).any()
    np.testing.assert_allclose(shown["similarity"], [ratio(a, b) / 100 for a, b in zip(kept["source"], kept["target"],
                                                                                         strict=True)])
    for (_, row), w, lo in zip(shown.iterrows(), kept["wins"], kept["losses"], strict=True):
        if w + lo == 0:
            assert row["win share"] == "–"
        else:
            a, b = 1 + w, 1 + lo
            assert row["win share"] == (f"{a / (a + b):.2f} [{beta.ppf(0.025, a, b):.2f}, "
                                        f"{beta.ppf(0.975, a, b):.2f}]")
    assert {"–"} < set(shown["win share"])  # both kinds are there
    assert any(f"{len(rewrites) - len(kept):,} rewrites into catch-all intents are hidden" in c.value
               for c in at.caption)
    assert any(t.value.startswith("Catch-all intents of this run (from its gold sentences): ") for t in at.text)
    # a row picked in the shortened table is that row's rewrite
    select(at, "rw_table", 1)
    assert any(t.value == f"{kept['source'].iloc[1]}  →  {kept['target'].iloc[1]}" for t in at.text)


def test_rewrite_table_chain_and_selection(db):
    at = open_page()
    run_id = run_of(db)
    listed = read_db(db, store.list_rewrites, run_id)
    busiest = 0
    for row in (0, min(3, len(listed) - 1), len(listed) - 1):
        if row:
            select(at, "rw_table", row)
        source, target = listed["source"].iloc[row], listed["target"].iloc[row]
        assert any(t.value == f"{source}  →  {target}" for t in at.text)
        sankey = chain(at)
        labels = [lab.split(" (success")[0] for lab in sankey["node"]["label"]]
        # labels are short (cut with "…"), so neighbours do not run into each other
        assert all(len(html.unescape(lab)) <= 28 for lab in labels)
        assert labels[0] == html.escape(source if len(source) <= 28 else source[:27].rstrip() + "…")
        cut = target if len(target) <= 28 else target[:27].rstrip() + "…"
        targets = [labels[int(i)] for i in charts_values(sankey["link"]["target"])]
        assert html.escape(cut) in targets  # the rewrite is always drawn
        # each state's moves still sum to 1 (the rest grouped)
        src = charts_values(sankey["link"]["source"]).astype(int)
        value = charts_values(sankey["link"]["value"])
        for node in set(src.tolist()):
            assert value[src == node].sum() == pytest.approx(1.0)
        # room for every node of the busiest column: columns worked out here from the links (a node's column is
        # its distance from the source; a node without an outgoing link sits in the last column)
        n = len(labels)
        dst = charts_values(sankey["link"]["target"]).astype(int)
        depth = {0: 0}
        for _ in range(n):
            for a, b in zip(src.tolist(), dst.tolist(), strict=True):
                if a in depth:
                    depth[b] = max(depth.get(b, 0), depth[a] + 1)
        last = max(depth.values())
        columns = [0] * (last + 1)
        for node in range(n):
            columns[depth[node] if node in set(src.tolist()) else last] += 1
        height = json.loads(next(c.proto.spec for c in at.get("plotly_chart")
                                 if json.loads(c.proto.spec)["data"][0]["type"] == "sankey"))["layout"]["height"]
        assert max(columns) <= 10 and height >= 44 * max(columns)
        busiest = max(busiest, max(columns))
        evidence = read_db(db, store.list_rewrite_evidence, run_id, source)
        assert table(at, "target_request")["dialogue_id"].tolist() == evidence["dialogue_id"].tolist()
    assert busiest >= 5  # the test means something: some chain is crowded enough to need the room


def test_accept_records_a_decision_and_exports_it(db):
    at = open_page()
    run_id = run_of(db)
    assert any("No rewrite of this run is approved yet" in i.value for i in at.caption)
    select(at, "rw_table", 1)
    source = read_db(db, store.list_rewrites, run_id)["source"].iloc[1]
    at.button(key="rw_accept").click().run()
    assert not at.exception, at.exception
    after = read_db(db, store.list_rewrites, run_id).set_index("source")
    assert after.loc[source, "status"] == "accepted" and metric(at, "Status") == "accepted"
    approved = read_db(db, store.list_approved_rewrites, run_id)
    assert approved["source"].tolist() == [source]
    assert table(at, "mined_rewrite")["source"].tolist() == [source]
    downloads = [b for b in at.get("download_button")]
    assert len(downloads) == 2 and all("(1 rows)" in b.proto.label for b in downloads)
    at.button(key="rw_reject").click().run()
    assert read_db(db, store.list_rewrites, run_id).set_index("source").loc[source, "status"] == "rejected"
    assert read_db(db, store.list_approved_rewrites, run_id).empty
    links = {p.proto.label: parse_qs(p.proto.query_string) for p in at.get("page_link")}
    params = links["Review this run's rewrites in the queue"]
    assert params == {"task": ["rewrite"], "run": [str(run_id)]}
    assert {k: [v] for k, v in review_session.spec_to_params(
        store.QueueSpec(dataset="t", task="rewrite", run_id=run_id)).items()} == params


def test_evidence_selection_shows_the_dialogue(db):
    at = open_page()
    run_id = run_of(db)
    first = read_db(db, store.list_rewrites, run_id).iloc[0]
    evidence = read_db(db, store.list_rewrite_evidence, run_id, first["source"])
    assert not any(t.value.startswith("Dialogue ") for t in at.text)
    select(at, f"rw_evidence_{int(first['candidate_id'])}", 0)
    d, t = evidence["dialogue_id"].iloc[0], int(evidence["turn_index"].iloc[0])
    assert any(x.value == f"Dialogue {d}, turn {t}" for x in at.text)
    turns = read_db(db, store.get_dialogue_turns, d, "t")
    components = [df.value for df in at.dataframe if "component" in df.value.columns]
    assert len(components) >= len(turns)
    asr = [c.set_index("component").loc["ASR", "output"] for c in components][:len(turns)]
    assert asr == [turn["asr_text"] for turn in turns]


def test_page_without_a_mining_run(tmp_path, monkeypatch):
    one_turn_app_db(tmp_path, monkeypatch)
    at = open_page()
    assert "No rewrites have been mined" in at.info[0].value
    assert at.code[0].value == "turnlens mine rewrites --dataset demo"  # the name as code, never Markdown
