"""What the Disparity page draws of a report, stored and read back (analysis/disparity/snapshot.py) and shown
(analysis/disparity/tables.py): the stored form is JSON and Arrow only and reads back to the same figures;
the data fingerprint follows every column the analysis reads; every region has a stability figure; a gap on
thin support is flagged; no display table holds a value a table would show as None."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.disparity import cohorts as co
from analysis.disparity import regions as dp
from analysis.disparity import report as dr
from analysis.disparity import snapshot as sn
from analysis.disparity import tables
from tests.test_disparity_report import BOSTON, DENVER, planted, speakers

ARROW_STREAM = b"\xff\xff\xff\xff"  # an Arrow IPC stream opens with the continuation marker


@pytest.fixture(scope="module")
def report() -> dr.Report:
    return dr.analyse(planted(), dr.Options(n_boot=100, stability_refits=4))


def test_the_stored_form_reads_back_to_the_same_snapshot(report):
    snap = sn.snapshot(report)
    meta, parts = sn.to_stored(snap)
    json.loads(meta)  # strict JSON
    assert "NaN" not in meta and "Infinity" not in meta
    assert all(data.startswith(ARROW_STREAM) for data in parts.values())  # Arrow IPC, never a pickle
    back = sn.from_stored(meta, parts)
    assert back.options == report.options and back.table_fingerprint == dr.table_fingerprint(report.table)
    assert back.overall == pytest.approx(report.overall) and back.privacy == report.privacy
    for name in ("regions", "comparison", "points", "speakers"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(snap, name), check_dtype=False, obj=name)
    assert set(back.summaries) == set(report.summaries)
    for name, frame in report.summaries.items():
        pd.testing.assert_frame_equal(back.summaries[name], frame, check_dtype=False, obj=name)
    assert back.cohort_fit == {"k": 2, "silhouette": report.cohort_fit.silhouette, "sizes": [200, 200],
                               "sample_size": report.cohort_fit.sample_size}
    assert back.stability["mean"] == pytest.approx(report.stability.mean)
    assert back.geojson == json.loads(json.dumps(report.geojson()))
    # what the page derives from it is what the report gives
    pd.testing.assert_frame_equal(back.assignments(), report.assignments(), check_dtype=False)
    worst = int(back.regions["region"].iloc[0])
    assert back.speakers_of(dr.REGION, worst).tolist() == report.speakers_of(dr.REGION, worst).tolist()
    assert back.voice_rows.tolist() == report.voice_rows.tolist()
    np.testing.assert_allclose(back.wer, report.table.wer)
    for name, labels in report.labels.items():
        assert back.labels[name].tolist() == labels.tolist(), name


def test_a_stored_snapshot_of_another_format_or_missing_a_part_is_refused(report):
    meta, parts = sn.to_stored(sn.snapshot(report))
    other = json.dumps({**json.loads(meta), "format": sn.FORMAT + 1})
    with pytest.raises(ValueError, match="format"):
        sn.from_stored(other, parts)
    with pytest.raises(ValueError, match="speakers"):
        sn.from_stored(meta, {k: v for k, v in parts.items() if k != "speakers"})


def test_the_snapshot_keeps_no_places_or_voices(report):
    snap = sn.snapshot(report)
    assert list(snap.speakers.columns) == [*sn.SPEAKER_COLUMNS, *[c for c in dr.COHORTINGS if c in report.labels]]
    meta, parts = sn.to_stored(snap)
    for name, data in parts.items():
        frame = sn.frame_of(data)
        if name == "points":  # map cells: a cell's centre, of at least k speakers, never a speaker's place
            assert (frame["speakers"] >= report.options.k).all()
        else:
            assert not {"lat", "lon", "embedding"} & set(frame.columns), name
    assert "embedding" not in meta


def test_every_region_has_a_stability_figure(report):
    snap = sn.snapshot(report)
    assert snap.regions["region"].tolist() == dr.region_frame(report)["region"].tolist()
    assert snap.regions["stability"].between(0, 1).all()
    assert (snap.regions["stability_pairs"] > 0).all()


def test_a_single_region_has_no_stability_and_says_so():
    places = [BOSTON] * 6 + [DENVER] * 6
    snap = sn.snapshot(dr.analyse(speakers(places, [1] * 12, [10] * 12), dr.Options(n_boot=20, max_regions=1)))
    assert snap.stability is None and snap.regions["stability"].isna().all()
    shown = tables.group_display(snap.summaries[dr.REGION], "Region", no_stability="not computed (a single region)")
    assert shown["Stability"].tolist() == ["not computed (a single region)"]


def test_the_fingerprint_follows_every_column_the_analysis_reads():
    base = planted(60, seed=3)
    fp = dr.table_fingerprint(base)
    assert fp == dr.table_fingerprint(planted(60, seed=3))  # the same data, the same fingerprint

    def changed(**values) -> str:
        return dr.table_fingerprint(dp.SpeakerTable(**{**vars(base), **values}))

    errors = base.sub.copy()
    errors[0] += 1
    lat = base.lat.copy()
    lat[5] += 0.01
    emb = base.embedding.copy()
    emb[7, 1] += 1e-9
    ids = base.speaker.copy()
    ids[0] = "someone else"
    for other in (changed(sub=errors), changed(lat=lat), changed(embedding=emb), changed(speaker=ids)):
        assert other != fp


def test_the_voices_key_ignores_counts_and_places_but_not_voices():
    base = planted(60, seed=3)
    key = sn.voices_key(base)
    lat = base.lat + 1.0
    assert sn.voices_key(dp.SpeakerTable(**{**vars(base), "lat": lat})) == key  # a layout outlives new options
    emb = base.embedding.copy()
    emb[0, 0] += 1.0
    assert sn.voices_key(dp.SpeakerTable(**{**vars(base), "embedding": emb})) != key
    assert sn.voices_key(dp.SpeakerTable(**{**vars(base), "embedding": np.zeros((60, 0))})) == ""


def test_options_key_is_canonical_and_round_trips():
    a = dr.Options(k=7, alpha=0.01, cohorts=3)
    assert sn.options_key(a) == sn.options_key(dr.Options(cohorts=3, alpha=0.01, k=7))
    assert sn.options_key(a) != sn.options_key(dr.Options(k=7, alpha=0.01))
    assert sn.options_from_key(sn.options_key(a)) == a


def test_a_layout_round_trips_and_must_list_the_reports_speakers(report):
    snap = sn.snapshot(report)
    ids = snap.speakers["speaker_id"].to_numpy(object)[snap.voice_rows]
    xy = np.random.default_rng(0).normal(size=(len(ids), 2))
    np.testing.assert_array_equal(sn.layout_for(snap, sn.layout_bytes(ids, xy)), xy)
    with pytest.raises(ValueError, match="speakers of this report"):
        sn.layout_for(snap, sn.layout_bytes(ids[::-1], xy))
    with pytest.raises(ValueError, match="must be"):
        sn.layout_bytes(ids, xy[:-1])


def test_a_gap_resting_on_few_speakers_is_flagged():
    # 100 speakers in Boston at 10% and 6 in Denver at 40%: the state gap rests on 6 speakers (5.7%).
    places = [BOSTON] * 100 + [DENVER] * 6
    table = speakers(places, [1] * 100 + [4] * 6, [10] * 106)
    snap = sn.snapshot(dr.analyse(table, dr.Options(n_boot=20, max_regions=1)))
    row = snap.comparison.set_index("cohorting").loc[dr.STATE]
    assert (row["worst_cohort"], row["worst_speakers"], row["best_speakers"]) == ("CO", 6, 100)
    assert row["thin_support"]
    shown = tables.comparison_display(snap.comparison, 106).set_index("Cohorting")
    assert shown.loc[dr.STATE, "Support"] == "⚠ thin: worst cohort 6 speakers (5.7%)"
    assert shown.loc["published: automatic cohorts", "WER gap"] == "65.0%"
    sentences = tables.thin_gaps(snap.comparison, 106)
    assert len(sentences) == 1 and sentences[0].startswith("The state gap of 300.0% rests on thin support: worst "
                                                           "cohort 6 speakers (5.7%), under 50 speakers or 1%")


def test_display_tables_have_tidy_headers_and_no_missing_values(report):
    snap = sn.snapshot(report)
    frames = [tables.comparison_display(snap.comparison, len(snap.speakers))]
    frames += [tables.group_display(summary, "Group", stability=snap.regions[["region", "stability_pairs",
                                                                              "stability"]])
               for summary in snap.summaries.values()]
    # a group without errors has no error make-up, and a single group no difference to the rest: said as "–"
    lone = pd.DataFrame({"group": ["a"], "speakers": [5], "utterances": [5], "words": [50], "errors": [0],
                         "wer": [0.0], "speaker_mean_wer": [0.0], "sub_share": [math.nan], "del_share": [math.nan],
                         "ins_share": [math.nan], "error_share": [math.nan], "wer_low": [0.0], "wer_high": [0.0],
                         "excludes_overall": [False], "diff_rest": [math.nan], "diff_low": [math.nan],
                         "diff_high": [math.nan]})
    frames.append(tables.group_display(lone, "Cohort"))
    utterances = pd.DataFrame({"dialogue_id": ["d"], "turn_index": [0], "speaker_id": ["s"], "asr_text": ["hi"],
                               "reference_text": [None], "wer": [math.nan]})
    frames.append(tables.utterances_display(utterances))
    for frame in frames:
        assert tables.missing_values(frame) == [], frame.columns
        assert not any("_" in str(c) for c in frame.columns if c not in tables.UTTERANCE_LABELS)
    assert frames[-2].loc[0, "Substitutions"] == "–" and frames[-2].loc[0, "vs the rest [95% CI]"] == "–"
    assert frames[-1].loc[0, "reference_text"] == "(no reference)" and frames[-1].loc[0, "wer"] == "–"


def test_figures_are_written_out_plainly():
    assert tables.percent(None) == tables.percent(math.nan) == "–"
    assert tables.percent(math.inf) == "∞" and tables.percent(0.1234) == "12.3%"
    assert tables.interval(0.1, math.nan) == "–" and tables.interval(0.1, 0.2) == "[10.0%, 20.0%]"
    assert tables.points(0.052, 0.031, 0.074) == "+5.2 pp [+3.1, +7.4]" and tables.points(math.nan, 0, 0) == "–"
    assert tables.stability_text(0.815, 200) == "82% of 200 pairs"
    # the demo's learned regions: a 91% gap whose worst region holds 22 of 13,172 speakers
    row = pd.Series({"worst_speakers": 22, "best_speakers": 27, "thin_support": True})
    assert tables.support_text(row, 13_172) == "⚠ thin: worst cohort 22 speakers (0.17%)"
    assert co.THIN_MIN_SPEAKERS == 50 and co.THIN_MIN_SHARE == 0.01
