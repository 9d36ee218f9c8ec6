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
from components import charts
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


def test_win_loss_figures_match_the_stored_metrics(db):
    at = open_page()
    run_id = run_of(db)
    assert at.selectbox(key="rw_run").value == run_id
    metrics = read_db(db, store.list_rewrite_metrics, run_id)
    present = [r for r in ("chain", "chain_retiring_oracle", "online", "combined") if r in set(metrics["rewriter"])]
    assert present == ["chain", "chain_retiring_oracle", "online", "combined"]
    assert at.radio(key="rw_rewriter").options == present
    for rewriter in present:
        at.radio(key="rw_rewriter").set_value(rewriter).run()
        assert not at.exception
        m = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == "overall")].set_index("metric")

        def show(x, spec):
            return "∞" if np.isinf(x) else format(x, spec)

        def value(name, spec, m=m):
            v = m.loc[name, "value"]
            return "–" if np.isnan(v) else show(v, spec)

        def interval(name, spec, m=m):
            lo, hi = m.loc[name, ["ci_low", "ci_high"]]
            return f"95% interval [{show(lo, spec)}, {show(hi, spec)}]"

        captions = [c.value for c in at.caption]
        for label, name, spec in (("Win/loss ratio", "win_loss_ratio", ".1f"), ("Win rate", "win_rate", ".1%"),
                                  ("Loss rate", "loss_rate", ".1%"), ("Rewritten turns", "rewrite_rate", ".1%"),
                                  ("Defect rate with rewrites", "defect_rate_with", ".1%")):
            assert metric(at, label) == value(name, spec)
            if not np.isnan(m.loc[name, "ci_low"]):
                assert interval(name, spec) in captions
        # the weekly trend: one point per week, error bars from the intervals
        weekly = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == "week")]
        trend = next(data for data in (json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart"))
                     if data[0]["type"] == "scatter")
        wins = weekly[weekly["metric"] == "win_rate"].assign(week=lambda d: d["grp"].astype(int)).sort_values("week")
        np.testing.assert_allclose(charts_values(trend[0]["x"]), wins["week"])
        np.testing.assert_allclose(charts_values(trend[0]["y"]), wins["value"], equal_nan=True)
        domains = table(at, "domain")
        d = metrics[(metrics["rewriter"] == rewriter) & (metrics["grouping"] == "domain")]
        assert set(domains["domain"]) == set(d["grp"])
        turns = d[d["metric"] == "turns"].set_index("grp")["value"]
        np.testing.assert_allclose(domains.set_index("domain")["turns"], turns.loc[domains["domain"]])
    compare = table(at, "rewriter").set_index("rewriter")
    overall = metrics[metrics["grouping"] == "overall"]
    for rewriter in present:
        for name in ("wins", "losses", "win_rate", "win_loss_ratio"):
            stored = overall[(overall["rewriter"] == rewriter) & (overall["metric"] == name)]["value"].iloc[0]
            np.testing.assert_allclose(compare.loc[rewriter, name], stored, equal_nan=True)
    assert any("resampl" in c.value and "users" in c.value and "**win**" in c.value for c in at.caption)


def test_detection_table(db):
    at = open_page()
    detection = json.loads(read_db(db, store.list_rewrite_runs, "t")["summary"].iloc[0])["detection"]
    shown = table(at, "detector").set_index("detector")
    for name, label in (("contextual", "contextual detector"), ("text_similarity", "text-similarity baseline")):
        rep = detection[name]
        for m in ("precision", "recall", "f1"):
            lo, hi = rep[f"{m}_ci"]
            assert shown.loc[label, m] == f"{rep[m]:.3f} [{lo:.3f}, {hi:.3f}]"


def test_rewrite_table_chain_and_selection(db):
    at = open_page()
    run_id = run_of(db)
    rewrites = read_db(db, store.list_rewrites, run_id)
    shown = table(at, "retire_probability")
    assert shown["source"].tolist() == rewrites["source"].tolist()
    assert shown["rewrite"].tolist() == rewrites["target"].tolist()
    np.testing.assert_allclose(shown["gain"], rewrites["gain"])
    assert shown["support"].tolist() == rewrites["source_support"].tolist()
    assert shown["status"].tolist() == rewrites["status"].tolist()

    for row in (0, min(3, len(rewrites) - 1)):
        if row:
            select(at, "rw_table", row)
        source = rewrites["source"].iloc[row]
        assert any(t.value.startswith(f"{source}  →  ") for t in at.text)
        graph = charts.prune_chain(read_db(db, store.list_rewrite_graph, run_id, source), source,
                                   rewrites["target"].iloc[row])
        assert rewrites["target"].iloc[row] in set(graph["to_state"])  # the rewrite is always drawn
        sankey = chain(at)
        np.testing.assert_allclose(charts_values(sankey["link"]["value"]), graph["probability"])
        labels = sankey["node"]["label"]
        assert labels[0].split(" (success")[0] == html.escape(source)
        ends = {"<SUCCESS>": "SUCCESS", "<FAILURE>": "FAILURE"}
        targets = [labels[int(i)] for i in charts_values(sankey["link"]["target"])]
        for to_state, label in zip(graph["to_state"], targets, strict=True):
            assert label == ends[to_state] if to_state in ends else label.split(" (success")[0] == html.escape(to_state)
        for _, edges in graph.groupby(["depth", "from_state"]):  # grouping keeps each state's moves summing to 1
            assert edges["probability"].sum() == pytest.approx(1.0)
        evidence = read_db(db, store.list_rewrite_evidence, run_id, source)
        assert table(at, "target_request")["dialogue_id"].tolist() == evidence["dialogue_id"].tolist()


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
