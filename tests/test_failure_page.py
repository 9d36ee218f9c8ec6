"""The Failure analysis page and its pure breakdowns, checked against direct computation."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.failure_points.report import cascade, shares_by_group, what_if_perfect
from analysis.log_format import FAILURE_POINTS
from app import store
from app.ingest import ingest_files
from components import charts
from tests.helpers import ROOT, make_turn, write_jsonl

ENTRY = str(ROOT / "app" / "streamlit_app.py")
# (domain, device, gold, predicted)
TURNS = [("weather", "speaker", "NO_FAILURE", "NO_FAILURE"), ("weather", "speaker", "ASR", "ASR"),
         ("weather", "phone", "ASR", "NLU"), ("music", "phone", "NLU", "NLU"),
         ("music", "speaker", "NO_FAILURE", "NO_FAILURE"), ("music", "car", "NO_FAILURE", "ASR"),
         ("alarm", "car", "NO_FAILURE", "NO_FAILURE"), ("alarm", "car", "ASR", "ASR")]


NO_VECTOR = 5  # f5's model run stored no vector (as before vectors were kept)


def vector(predicted: str, score: float) -> dict[str, float]:
    """A full probability vector with score on predicted and the rest spread unevenly over the others."""
    others = [label for label in FAILURE_POINTS if label != predicted]
    return {predicted: score, **{label: (1 - score) * (k + 1) / 21 for k, label in enumerate(others)}}


def counts() -> pd.DataFrame:
    rows = pd.DataFrame(TURNS, columns=["grp", "device", "gold", "label"])
    return rows.groupby(["grp", "label"]).size().rename("turns").reset_index()


def test_breakdowns():
    totals = cascade(counts())
    assert totals["turns"] == 8 and totals["defective"] == 5 and totals["ASR"] == 3 and totals["NLU"] == 2
    shares = shares_by_group(counts()).set_index("grp")
    assert shares.loc["weather", "turns"] == 3 and shares.loc["weather", "ASR"] == pytest.approx(1 / 3)
    what_if = what_if_perfect(counts()).set_index("component")
    assert what_if.loc["ASR", "share_of_defects"] == pytest.approx(3 / 5)
    assert what_if.loc["ASR", "defect_rate_if_perfect"] == pytest.approx(2 / 8)
    assert what_if.loc["TTS", "defects"] == 0


def build_fp_db(tmp_path):
    """A database with TURNS and one failure-point model run over them (also used by the browser test)."""
    path = tmp_path / "fp.duckdb"
    conn = store.connect(path)
    log = [make_turn(f"f{i}", 0, nlu_domain=d, device_type=dev, gold_failure_point=g,
                     timestamp=f"2026-01-0{1 + i % 2}T10:00:00Z") for i, (d, dev, g, _) in enumerate(TURNS)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", log)], dataset="demo")
    rows = []
    for i, (*_, predicted) in enumerate(TURNS):
        kind, key = target_key(f"f{i}", 0)
        rows.append({"task": "failure_point", "target_kind": kind, "dialogue_id": f"f{i}", "turn_index": 0,
                     "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
                     "value": json.dumps(predicted), "score": 0.5 + i / 100, "model_name": "fp", "model_version": "1",
                     "distribution": None if i == NO_VECTOR else canonical_json(vector(predicted, 0.5 + i / 100)),
                     "model_parameters": "{}", "run_at": None})
    store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    conn.close()
    return path


@pytest.fixture
def fp_db(tmp_path, monkeypatch):
    path = build_fp_db(tmp_path)
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return path


def typed(values):
    """Plotly sends numeric arrays as {"dtype", "bdata"} (base64): decode them."""
    if isinstance(values, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return values


def open_failures() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.run()
    at.switch_page("app_pages/failures.py").run()
    assert not at.exception, at.exception
    return at


def test_failure_page_numbers_match_direct_computation(fp_db):
    at = open_failures()
    assert next(m for m in at.metric if m.label == "Turns scored").value == "8"
    assert next(m for m in at.metric if m.label == "Defective").value == f"{5 / 8:.1%}"
    assert next(m for m in at.metric if m.label == "Most frequent failure point").value == "ASR"
    what_if = at.dataframe[0].value.set_index("component")
    assert what_if.loc["ASR", "share_of_defects"] == pytest.approx(3 / 5)
    sankey = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert sankey["link"]["value"][:2] == [3, 5]
    matrix = at.dataframe[1].value
    assert matrix.loc["ASR", "ASR"] == 2 and matrix.loc["ASR", "NLU"] == 1 and matrix.loc["NO_FAILURE", "ASR"] == 1
    behind = at.dataframe[2].value  # the turns predicted ASR, most confident first
    assert list(behind["dialogue_id"]) == ["f7", "f5", "f1"]


def test_failure_page_groups_and_drill_down(fp_db):
    at = open_failures()
    at.segmented_control(key="fp_by").set_value("device").run()
    shares = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    asr = next(t for t in shares if t["name"] == "ASR")
    assert dict(zip(asr["x"], typed(asr["y"]), strict=True))["car"] == pytest.approx(2 / 3)
    at.selectbox(key="fp_group").set_value("car").run()
    assert sorted(at.dataframe[2].value["dialogue_id"]) == ["f5", "f7"]


def test_failure_page_without_a_model_run(tmp_path, monkeypatch):
    path = tmp_path / "empty.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("x", 0)])], dataset="demo")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_failures()
    assert "No failure-point model has scored this dataset yet" in at.info[0].value


def test_drill_down_shows_what_the_model_read(fp_db):
    at = open_failures()
    evidence = next(d.value for d in at.dataframe if list(d.value.columns) == ["input", "value"])
    rows = dict(zip(evidence["input"], evidence["value"], strict=True))
    assert rows["request"] == "what is the weather in boston"  # f7, the most confident ASR turn
    assert rows["nlu_intent"] == "weather_query" and rows["er_status"] == "resolved"
    assert "reference_text" not in rows and not any(k.startswith("gold") for k in rows)


def shown_vector(at: AppTest) -> pd.DataFrame | None:
    return next((d.value for d in at.dataframe if list(d.value.columns) == ["failure_point", "probability"]), None)


def test_drill_down_shows_the_stored_probability_vector(fp_db):
    conn = store.connect(fp_db)
    ids = dict(conn.execute("SELECT dialogue_id, candidate_id FROM candidates").fetchall())
    stored = {d: store.get_candidate_distribution(conn, cid) for d, cid in ids.items()}
    conn.close()
    assert stored["f7"] == pytest.approx(vector("ASR", 0.57)) and stored[f"f{NO_VECTOR}"] is None
    at = open_failures()  # opens on the most confident ASR turn, f7
    shown = shown_vector(at)
    assert dict(zip(shown["failure_point"], shown["probability"], strict=True)) == stored["f7"]
    assert list(shown["failure_point"]) == sorted(FAILURE_POINTS, key=lambda label: -stored["f7"][label])
    assert shown["probability"].is_monotonic_decreasing and shown["failure_point"].iloc[0] == "ASR"
    at.selectbox(key="fp_open").set_value(2).run()  # f1
    shown = shown_vector(at)
    assert dict(zip(shown["failure_point"], shown["probability"], strict=True)) == stored["f1"]
    at.selectbox(key="fp_open").set_value(1).run()  # f5: a run without vectors still drills down
    assert not at.exception and shown_vector(at) is None
    assert any("not the full probability vector" in c.value for c in at.caption)


def test_clicked_bar_names_the_bar_from_the_charts_own_customdata():
    table = shares_by_group(counts())
    fig = json.loads(charts.failure_shares(table).to_json())
    nlu = next(t for t in fig["data"] if t["name"] == "NLU")
    k = list(nlu["x"]).index("music")
    # what st.plotly_chart reports for a click on that bar: the point with its customdata
    point = {"curve_number": 1, "point_index": k, "x": "music", "customdata": nlu["customdata"][k]}
    assert charts.clicked_bar({"points": [point]}) == ("NLU", "music")
    assert charts.clicked_bar({"points": []}) is None and charts.clicked_bar(None) is None
    assert charts.clicked_bar({"points": [{"x": "music", "y": 0.5}]}) is None  # not one of its bars


def test_clicking_a_gold_matrix_cell_lists_its_turns_and_menus_stay_usable(fp_db):
    at = open_failures()
    matrix = at.dataframe[1].value
    row = list(matrix.index).index("NO_FAILURE")
    # what a click on the cell (gold NO_FAILURE, predicted ASR) sets: the dataframe's selection state
    at.session_state["fp_gold_matrix"] = {"selection": {"rows": [], "columns": [], "cells": [[row, "ASR"]]}}
    at.run()
    assert not at.exception
    assert at.selectbox(key="fp_label").value == "ASR" and at.selectbox(key="fp_gold").value == "NO_FAILURE"
    assert list(at.dataframe[2].value["dialogue_id"]) == ["f5"]  # the one turn in that cell
    # the reader can still change the menus: the click is not re-applied on the next run
    at.selectbox(key="fp_gold").set_value("(any)").run()
    assert list(at.dataframe[2].value["dialogue_id"]) == ["f7", "f5", "f1"]


def test_clicking_a_what_if_row_lists_that_components_turns(fp_db):
    at = open_failures()
    what_if = at.dataframe[0].value
    row = list(what_if["component"]).index("NLU")
    at.session_state["fp_whatif"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and at.selectbox(key="fp_label").value == "NLU"
    assert sorted(at.dataframe[2].value["dialogue_id"]) == ["f2", "f3"]


def test_turns_behind_a_cell_come_from_the_store_filter(fp_db):
    conn = store.connect(fp_db, read_only=True)
    got = store.list_failure_turns(conn, "demo", 1, "NLU", gold="ASR")
    assert list(got["dialogue_id"]) == ["f2"]
    assert list(store.list_failure_turns(conn, "demo", 1, "NLU", gold="(none)")["dialogue_id"]) == []
    assert sorted(store.list_failure_turns(conn, "demo", 1, "NLU")["dialogue_id"]) == ["f2", "f3"]
    conn.close()
