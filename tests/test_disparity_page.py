"""The Disparity page in AppTest on a simulated log with planted regions and voice cohorts: its figures are the
stored counts' (checked against SQL and an independent run of the analysis), nothing under k speakers is shown,
drill-downs reach utterances and dialogues, and a UMAP selection lists the selected speakers."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analysis.disparity import report as dr
from analysis.disparity import snapshot as sn
from analysis.disparity import tables
from analysis.simulate import load_pool, simulate_turns, write_log
from app import resources, store
from app.ingest import ingest_files
from tests.helpers import ingest_log, one_turn_app_db, open_app_page, simulated_db
from tests.test_label_page import charts_values

PAGE = "app_pages/disparity.py"


def build_disparity_db(tmp) -> object:
    """A database with dataset "t": 20,000 simulated turns (1,295 speakers; the tree finds 3 regions)."""
    return simulated_db(tmp / "disparity.duckdb", n_turns=20000, seed=5)


@pytest.fixture(scope="module")
def disparity_db(tmp_path_factory):
    return build_disparity_db(tmp_path_factory.mktemp("disparity"))


@pytest.fixture
def db(disparity_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_DB", str(disparity_db))
    return disparity_db


def sql(path, query: str) -> pd.DataFrame:
    conn = store.connect(path)
    try:
        return conn.execute(query).df()
    finally:
        conn.close()


def expected_report(path, **options) -> dr.Report:
    """The analysis run outside the app, on the same stored turns."""
    conn = store.connect(path)
    try:
        table = dr.speaker_table_from_turns(store.list_speaker_turns(conn, "t"))
    finally:
        conn.close()
    return dr.analyse(table, dr.Options(**options))


# The turns with their counts under english-v1, a new dataset's default normaliser (m010's turn_wer), written
# out here rather than read through the store, so the page is checked against the stored counts themselves.
ENGLISH_TURNS = """(SELECT t.* REPLACE (w.wer_sub AS wer_sub, w.wer_del AS wer_del, w.wer_ins AS wer_ins,
                                       w.wer_ref_words AS wer_ref_words)
                   FROM turns t JOIN turn_wer w USING (dialogue_id, turn_index) WHERE w.normaliser = 'english-v1')"""


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def frame(at: AppTest, key: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if d.proto.id and key in d.proto.id)


def select(at: AppTest, key: str, row: int) -> None:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception


def test_headline_figures_are_the_pooled_counts(db):
    at = open_app_page(PAGE)
    counts = sql(db, f"""SELECT sum(wer_sub + wer_del + wer_ins) AS e, sum(wer_sub) AS s, sum(wer_del) AS d,
                               sum(wer_ins) AS i, sum(wer_ref_words) AS w
                        FROM {ENGLISH_TURNS} WHERE wer_ref_words > 0 AND speaker_id IS NOT NULL""").iloc[0]
    # the report's normaliser is the dataset's default, shown in a box that cannot change it here
    box = at.selectbox(key="dp_wer_normaliser")
    assert box.value == "english-v1" and box.disabled
    assert metric(at, "Pooled WER (english-v1)") == f"{counts.e / counts.w:.1%}"
    assert metric(at, "Substitutions") == f"{counts.s / counts.e:.1%}"
    assert metric(at, "Deletions") == f"{counts.d / counts.e:.1%}"
    assert metric(at, "Insertions") == f"{counts.i / counts.e:.1%}"
    per_speaker = sql(db, f"""SELECT sum(wer_sub + wer_del + wer_ins) / sum(wer_ref_words) AS wer FROM {ENGLISH_TURNS}
                             WHERE wer_ref_words > 0 AND speaker_id IS NOT NULL GROUP BY speaker_id""")
    assert metric(at, "Speaker-mean WER (english-v1) (secondary)") == f"{per_speaker.wer.mean():.1%}"
    report = expected_report(db)
    captions = " ".join(c.value for c in at.caption)
    assert f"95% interval [{report.overall['wer_low']:.1%}, {report.overall['wer_high']:.1%}]" in captions
    assert f"{len(per_speaker):,} speakers" in captions


def test_regions_map_and_table_match_the_analysis(db):
    at = open_app_page(PAGE)
    report = expected_report(db)
    expected = dr.region_frame(report)
    assert len(expected) >= 2, "the planted regions should give the tree something to split"
    table = frame(at, "dp_regions")
    assert table["Region"].tolist() == expected["region"].astype(str).tolist()
    for col, shown, scale in (("wer", "Pooled WER", 100), ("wer_low", "WER low", 100), ("wer_high", "WER high", 100),
                              ("speakers", "Speakers", 1), ("words", "Reference words", 1)):
        np.testing.assert_allclose(table[shown].to_numpy(float), scale * expected[col].to_numpy(float), err_msg=col)
    assert table["vs the rest [95% CI]"].tolist() == [tables.points(*r) for r in expected[
        ["diff_rest", "diff_low", "diff_high"]].itertuples(index=False)]
    assert (table["Speakers"] >= 5).all()
    assert table["Finding"].tolist() == expected["excludes_overall"].tolist()
    # every region has its stability, the worst one first among them
    by_region = report.stability.by_region.set_index("region")
    assert table["Stability"].tolist() == [tables.stability_text(by_region.at[r, "together"], by_region.at[r, "pairs"])
                                           for r in expected["region"]]
    assert not table["Stability"].str.startswith("not computed").any()
    # the worst region's WER straight from the stored counts of its speakers
    conn = store.connect(db)
    try:
        errors, words = conn.execute(
            f"SELECT sum(wer_sub + wer_del + wer_ins), sum(wer_ref_words) FROM {ENGLISH_TURNS} "
            "WHERE wer_ref_words > 0 AND speaker_id IN (SELECT unnest(?::VARCHAR[]))",
            [list(report.speakers_of(dr.REGION, expected["region"][0]))]).fetchone()
    finally:
        conn.close()
    assert table["Pooled WER"][0] == pytest.approx(100 * errors / words)  # in percent

    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "dp_map" in c.proto.id)
    config = next(json.loads(c.proto.config) for c in at.get("plotly_chart") if "dp_map" in c.proto.id)
    assert config["topojsonURL"] == "app/static/topojson/"  # outlines from the app, not a CDN
    filled = [t for t in spec["data"] if t.get("fill") == "toself"]
    assert len(filled) == len(expected)
    centres = next(t for t in spec["data"] if t.get("name") == "regions")
    assert [int(x) for x in centres["customdata"]] == expected["region"].tolist()
    numbers = next(t for t in spec["data"] if t.get("name") == "region numbers")
    assert numbers["text"] == expected["region"].astype(str).tolist()  # numbered on the map
    first = centres["hovertext"][0]
    assert f"pooled WER {expected['wer'][0]:.1%}" in first
    assert f"95% CI {expected['wer_low'][0]:.1%} to {expected['wer_high'][0]:.1%}" in first
    points = next(t for t in spec["data"] if t.get("name") == "speakers")
    assert charts_values(points["marker"]["size"]).min() >= 5  # no map cell of fewer than k speakers
    assert len(charts_values(points["marker"]["size"])) == len(report.points)

    stability = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "dp_stability" in c.proto.id)
    bars = stability["data"][0]
    ids = sorted(expected["region"])
    assert bars["x"] == [str(r) for r in ids]  # one bar per region, the worst (1) included
    np.testing.assert_allclose(charts_values(bars["y"]), by_region.loc[ids, "together"])
    assert "Every region has one." in " ".join(c.value for c in at.caption)


def test_region_drill_down_lists_its_worst_utterances_and_their_alignment(db):
    at = open_app_page(PAGE)
    report = expected_report(db)
    top = dr.region_frame(report)["region"].iloc[0]
    select(at, "dp_regions", 0)
    worst = frame(at, f"dp_regions_worst_{top}")
    members = set(report.speakers_of(dr.REGION, top))
    assert len(worst) == 50 and set(worst["speaker_id"]) <= members
    errors = (worst["wer_sub"] + worst["wer_del"] + worst["wer_ins"]).to_numpy()
    assert (np.diff(errors) <= 0).all()  # most errors first
    select(at, f"dp_regions_worst_{top}", 0)
    alignment = [c.value for c in at.code if c.value.startswith("REF:")]
    assert alignment and "HYP:" in alignment[0]
    chosen = worst.iloc[0]
    assert f"Dialogue {chosen['dialogue_id']}, turn {chosen['turn_index']}" in [t.value for t in at.text]


def test_cohorts_hide_or_merge_small_groups_and_say_so(db):
    at = open_app_page(PAGE)
    report = expected_report(db)
    auto = frame(at, "dp_cohort_automatic_cohorts")
    np.testing.assert_allclose(auto["Pooled WER"], 100 * report.summaries[dr.AUTOMATIC]["wer"])
    assert len(auto) == report.cohort_fit.k
    at.radio(key="dp_cohorting").set_value(dr.STATE).run()
    states = frame(at, "dp_cohort_state")
    assert (states["Speakers"] >= 5).all()
    merged = report.privacy.merged[dr.STATE]
    assert merged > 0 and dr.OTHER in states["State"].tolist()
    info = " ".join(i.value for i in at.info)
    assert f"{merged} state groups with fewer than 5 speakers are merged into {dr.OTHER}" in info
    assert f"{report.privacy.hidden_cells:,} map cells with fewer than 5 speakers" in info

    compare = next(d.value for d in at.dataframe if "Cohorting" in d.value.columns).set_index("Cohorting")
    for name in report.comparison.index:
        row = report.comparison.loc[name]
        assert compare.loc[name, "WER gap"] == tables.percent(row["wer_gap"]), name
        assert compare.loc[name, "WER gap 95% CI"] == tables.interval(row["wer_gap_low"], row["wer_gap_high"]), name
    assert compare.loc["published: automatic cohorts", "WER gap"] == "65.0%"
    assert compare.loc["published: automatic cohorts", "Support"] == "their data, not ours"


def test_settings_change_the_analysis(db):
    at = open_app_page(PAGE)
    at.number_input(key="dp_k").set_value(40)
    at.selectbox(key="dp_cohorts").set_value(3)
    at.button[0].click().run()  # the settings form's Apply
    assert not at.exception, at.exception
    report = expected_report(db, k=40, cohorts=3)
    auto = frame(at, "dp_cohort_automatic_cohorts")
    assert len(auto) == 3 and (auto["Speakers"] >= 40).all()
    np.testing.assert_allclose(auto["Pooled WER"], 100 * report.summaries[dr.AUTOMATIC]["wer"])
    assert "nothing describing fewer than 40 speakers" in " ".join(i.value for i in at.info)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any(label.startswith("Regions as GeoJSON") for label in labels)
    assert f"Cohort assignments as CSV ({len(report.table):,} speakers)" in labels


def wait_for_umap(at: AppTest) -> dict:
    """The UMAP chart's spec, once the background projection arrives; meanwhile the page must say it computes."""
    deadline = time.monotonic() + 300  # the first projection in a process compiles numba code (~45 s)
    while not any("dp_umap" in c.proto.id for c in at.get("plotly_chart")):
        assert time.monotonic() < deadline, "the UMAP projection never arrived"
        assert any("Computing the UMAP projection" in i.value for i in at.info)
        time.sleep(2)
        at.run()
    assert not at.exception, at.exception
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "dp_umap" in c.proto.id)


def test_umap_selection_lists_speakers_their_utterances_and_a_dialogue(db):
    at = open_app_page(PAGE)
    spec = wait_for_umap(at)
    report = expected_report(db)
    assert len(spec["data"]) == report.cohort_fit.k  # one trace per automatic cohort
    cohort1 = np.flatnonzero(report.cohort_fit.labels == 1)
    picked = [{"curve_number": 1, "point_index": 0}, {"curve_number": 1, "point_index": 2}]
    at.session_state["dp_umap"] = {"selection": {"points": picked, "point_indices": [0, 2], "box": [],
                                                 "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**2 speakers selected**") for m in at.markdown)
    speakers = next(d.value for d in at.dataframe if list(d.value.columns[:2]) == ["speaker_id", "utterances"])
    assert speakers["speaker_id"].tolist() == list(report.table.speaker[cohort1[[0, 2]]])
    assert (speakers["cohort"] == "1").all()
    utterances = frame(at, "dp_umap_utterances")
    assert len(utterances) > 0 and set(utterances["speaker_id"]) <= set(speakers["speaker_id"])
    select(at, "dp_umap_utterances", 0)
    row = frame(at, "dp_umap_utterances").iloc[0]
    assert f"Dialogue {row['dialogue_id']}, turn {row['turn_index']}" in [t.value for t in at.text]


def test_a_dataset_with_fewer_than_k_speakers_shows_nothing_about_them(tmp_path, monkeypatch):
    one_turn_app_db(tmp_path, monkeypatch)
    at = open_app_page(PAGE)
    assert not at.metric and not at.get("plotly_chart") and not at.dataframe
    assert "1 speaker(s) with a reference transcript, fewer than the privacy minimum k = 5" in at.info[0].value


def test_hidden_cohorts_are_not_drawn_as_cohorts_in_the_voices(db):
    at = open_app_page(PAGE, state={"dp_k": 200, "dp_cohorts": 8})
    at.button[0].click().run()
    report = expected_report(db, k=200, cohorts=8)
    shown = set(report.summaries[dr.AUTOMATIC]["group"])
    hidden = set(range(8)) - shown
    assert hidden, "the fixture should leave some of 8 cohorts under 200 speakers"
    spec = wait_for_umap(at)
    names = [t["name"] for t in spec["data"]]
    assert names == [f"cohort {c}" for c in sorted(shown)] + ["cohorts under 200 speakers"]
    grey = spec["data"][-1]
    assert len(grey["x"] if isinstance(grey["x"], list) else charts_values(grey["x"])) == \
        int(np.isin(report.cohort_fit.labels, list(hidden)).sum())
    # a selected speaker of a hidden cohort shows no cohort label
    at.session_state["dp_umap"] = {"selection": {"points": [{"curve_number": len(names) - 1, "point_index": 0}],
                                                 "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    speakers = next(d.value for d in at.dataframe if list(d.value.columns[:2]) == ["speaker_id", "utterances"])
    assert speakers["cohort"].tolist() == [""]


def test_speakers_without_voices_or_places(tmp_path, monkeypatch):
    """A log without voice embeddings and with half the speakers unplaced: regions and states still work,
    automatic cohorts and the projection say why they are missing."""
    from tests.helpers import make_turn, write_jsonl

    cities = [(42.36, -71.06), (39.74, -104.99)]
    records = []
    for s in range(24):
        place = cities[s % 2] if s < 12 else (None, None)
        for i in range(3):
            records.append(make_turn(f"d{s}", i, speaker_id=f"spk{s}", user_id=f"u{s}", speaker_embedding=None,
                                     latitude=place[0], longitude=place[1],
                                     asr_text="what is the weather" if s % 2 else "what is weather in boston"))
    path = tmp_path / "novoice.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", records)], dataset="t")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_app_page(PAGE)
    captions = " ".join(c.value for c in at.caption)
    assert "Automatic cohorts: The speakers have no voice embeddings." in captions
    assert "Fewer than 3 speakers have a voice embedding: there is no projection." in captions
    regions = frame(at, "dp_regions")
    assert "(no location)" in regions["Region"].tolist()
    assert regions.set_index("Region").loc["(no location)", "Speakers"] == 12
    assert regions.set_index("Region").loc["(no location)", "Stability"] == "–"
    assert set(regions["Stability"]) == {"–", "not computed (a single region)"}
    assert [r.label for r in at.radio if r.key == "dp_cohorting"] and \
        at.radio(key="dp_cohorting").options == ["state", "city size"]


def test_no_table_on_the_page_shows_a_missing_value(db):
    at = open_app_page(PAGE)
    select(at, "dp_regions", 0)
    top = frame(at, "dp_regions")["Region"].iloc[0]
    select(at, f"dp_regions_worst_{top}", 0)
    shown = [d.value for d in at.dataframe]
    assert len(shown) >= 4  # regions, cohorts, comparison, worst utterances
    for value in shown:
        assert tables.missing_values(value) == [], list(value.columns)
    # tidy headers: what is shown under a stored name is labelled (the column configs carry the labels)
    labelled = {c for d in at.dataframe for c in json.loads(d.proto.columns or "{}")}
    for value in shown:
        raw = [c for c in value.columns if "_" in str(c)]
        assert set(raw) <= labelled, raw


def test_a_gap_on_thin_support_is_flagged_beside_the_published_figures(db):
    at = open_app_page(PAGE)
    snap = sn.snapshot(expected_report(db))
    total = len(snap.speakers)
    compare = next(d.value for d in at.dataframe if "Cohorting" in d.value.columns).set_index("Cohorting")
    for _, row in snap.comparison.iterrows():
        assert compare.loc[row["cohorting"], "Support"] == tables.support_text(row, total)
    warnings = [w.value for w in at.warning]
    assert warnings == tables.thin_gaps(snap.comparison, total)
    assert snap.comparison["thin_support"].any(), "the fixture's worst learned region should be under 50 speakers"


def test_the_stored_report_is_reused_on_a_second_open_and_recomputed_when_the_data_change(tmp_path, monkeypatch):
    path = simulated_db(tmp_path / "stored.duckdb", n_turns=3000, seed=4)
    monkeypatch.setenv("TURNLENS_DB", str(path))
    computed = []
    real = resources._compute

    def compute(*args, **kwargs):
        computed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(resources, "_compute", compute)
    # the voices' layout: a quick stand-in (UMAP's compilation is not what this test is about)
    monkeypatch.setattr("analysis.disparity.cohorts.umap_embedding", lambda x: np.zeros((len(x), 2)))
    monkeypatch.setattr("analysis.disparity.cohorts.warm_up_umap", lambda: None)
    resources.clear_reads()

    def opened() -> tuple[AppTest, str]:
        at = open_app_page(PAGE)
        return at, next(c.value for c in at.caption if "report" in c.value and "this data" in c.value)

    at, said = opened()
    assert said.startswith("Computed now") and "Stored as report #1: the next open draws from it." in said
    assert len(computed) == 1
    wer = metric(at, "Pooled WER (english-v1)")
    resources.clear_reads()  # a new server process: nothing kept in memory
    at, said = opened()
    assert said.startswith("Drawn from stored report #1, computed by this page") and "nothing was recomputed" in said
    assert len(computed) == 1 and metric(at, "Pooled WER (english-v1)") == wer
    # the data change: an import into the dataset (through the app's own connection), then the app's clear_reads
    more = tmp_path / "more.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=400, seed=99, id_prefix="more-"), more)
    ingest_log(resources.get_connection(str(path)), more, "t")
    resources.clear_reads()
    at, said = opened()
    assert said.startswith("Computed now") and "Stored as report #2" in said
    assert len(computed) == 2
    resources.clear_reads()
