"""The composed disparity analysis (analysis/disparity/report.py) on hand-built speakers: privacy merging and
hiding, map cells, the WER-gap interval, the per-region stability figure, the exports; and the background UMAP
worker (app/jobs/disparity.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis.disparity import regions as dp
from analysis.disparity import report as dr
from analysis.disparity.cohorts import UNKNOWN
from app.jobs.disparity import UmapJobs

# Speaker places: a city with many speakers in each of three states, and single speakers elsewhere.
BOSTON, DENVER, SEATTLE, MIAMI = (42.36, -71.06), (39.74, -104.99), (47.61, -122.33), (25.76, -80.19)


def speakers(places: list[tuple[float, float]], errors: list[int], words: list[int], emb=None) -> dp.SpeakerTable:
    """One turn per speaker s00000, s00001, ... (all errors substitutions)."""
    n = len(places)
    zeros = np.zeros(n, dtype=int)
    return dp.speaker_table([f"s{i:05d}" for i in range(n)], errors, zeros, zeros, words,
                            [p[0] for p in places], [p[1] for p in places], emb)


def test_options_are_validated():
    for bad in ({"k": 0}, {"n_boot": 0}, {"alpha": 0.0}, {"alpha": 1.5}, {"confidence": 1.0}, {"cohorts": 0},
                {"cell_deg": 0.0}, {"min_words": 2.5}, {"k": True}):
        with pytest.raises(ValueError):
            dr.Options(**bad)
    assert dr.Options(k=30, min_speakers=20).tree_min_speakers == 30


def test_speaker_table_from_turns_reads_stored_columns():
    turns = pa.table({"speaker_id": ["a", "a", "b"], "wer_sub": [1, 0, 2], "wer_del": [0, 1, 0],
                      "wer_ins": [0, 0, 1], "wer_ref_words": [4, 4, 5], "latitude": [1.0, 3.0, 5.0],
                      "longitude": [2.0, 2.0, 6.0], "speaker_embedding": [None, None, None]})
    table = dr.speaker_table_from_turns(turns)
    assert table.speaker.tolist() == ["a", "b"]
    assert table.errors.tolist() == [2, 3] and table.words.tolist() == [8, 5]
    assert table.lat.tolist() == [2.0, 5.0] and table.embedding.shape == (2, 0)  # all-null embeddings: none
    with pytest.raises(ValueError, match="wer_ref_words"):
        dr.speaker_table_from_turns(turns.drop(["wer_ref_words"]))


def test_small_states_are_merged_and_a_small_merged_group_is_hidden():
    # 6 speakers in Boston, 5 in Denver, 1 in Seattle, 1 in Miami (k = 5): WA and FL merge into (other),
    # which has 2 speakers and is then hidden; MA and CO stay.
    places = [BOSTON] * 6 + [DENVER] * 5 + [SEATTLE, MIAMI]
    errors = [1] * 6 + [3] * 5 + [5, 5]
    table = speakers(places, errors, [10] * 13)
    report = dr.analyse(table, dr.Options(n_boot=50, max_regions=1))
    states = report.summaries[dr.STATE]
    assert states["group"].tolist() == ["CO", "MA"]
    assert states["wer"].tolist() == pytest.approx([0.3, 0.1])
    assert report.labels[dr.STATE].tolist().count(dr.OTHER) == 2
    assert report.privacy.merged[dr.STATE] == 2
    assert report.privacy.hidden_groups[dr.STATE] == 1 and report.privacy.hidden_speakers[dr.STATE] == 2
    assert report.speakers_of(dr.STATE, dr.OTHER).size == 0  # hidden: no speakers listed
    assert report.speakers_of(dr.STATE, "CO").tolist() == [f"s{i:05d}" for i in range(6, 11)]
    # the comparison never picks the merged group; CO is worst, MA best: gap (0.3 - 0.1) / 0.1 = 2
    row = report.comparison.loc[dr.STATE]
    assert (row["worst_cohort"], row["best_cohort"]) == ("CO", "MA")
    assert row["wer_gap"] == pytest.approx(2.0)
    assert row["bottom_share_speakers"] == pytest.approx(5 / 13)
    # the CSV blanks hidden groups' labels
    out = report.assignments()
    assert out.loc[out["speaker_id"] == "s00011", "state"].item() == ""
    assert out.loc[out["speaker_id"] == "s00000", "state"].item() == "MA"
    assert out["wer"].tolist() == pytest.approx([e / 10 for e in errors])


def test_overall_figures_and_interval():
    places = [BOSTON] * 5 + [DENVER] * 5
    table = speakers(places, [1, 2, 3, 4, 0, 0, 0, 5, 5, 10], [10] * 10)
    report = dr.analyse(table, dr.Options(n_boot=200, max_regions=1))
    ov = report.overall
    assert ov["wer"] == pytest.approx(30 / 100)
    assert ov["speaker_mean_wer"] == pytest.approx(0.3)
    assert ov["wer_low"] <= ov["wer"] <= ov["wer_high"]
    assert (ov["speakers"], ov["utterances"], ov["words"], ov["errors"]) == (10, 10, 100, 30)
    assert ov["sub_share"] == 1.0 and ov["del_share"] == 0.0


def test_map_cells_hide_cells_of_fewer_than_k_and_draw_at_the_cell_centre():
    places = [BOSTON] * 6 + [DENVER] * 4 + [(float("nan"), float("nan"))]
    table = speakers(places, [1] * 11, [10] * 11)
    cells, hidden, hidden_speakers = dr.map_cells(table, cell_deg=1.0, k=5)
    assert cells[["lat", "lon", "speakers", "words", "errors"]].values.tolist() == [[42.5, -71.5, 6, 60, 6]]
    assert (hidden, hidden_speakers) == (1, 4)


def test_gap_interval_comes_from_the_same_replicates():
    labels = np.array([0, 0, 1, 1])
    table = speakers([BOSTON] * 4, [2, 2, 1, 1], [10, 10, 10, 10])
    boot = dp.speaker_bootstrap(table, labels, n_boot=20)
    # every speaker of a group has the same WER, so every replicate's gap is (0.2 - 0.1) / 0.1 = 1
    assert dr.gap_interval(boot, 0, 1) == pytest.approx((1.0, 1.0))


def test_group_table_adds_the_difference_to_the_rest():
    labels = np.array(["a", "a", "b", "b", "b"])
    table = speakers([BOSTON] * 5, [2, 2, 1, 1, 1], [10] * 5)
    summary, _ = dr.group_table(table, labels, k=3, n_boot=30, seed=0, confidence=0.95)
    assert summary["diff_rest"].tolist() == pytest.approx([0.1, -0.1])
    assert summary["diff_low"].tolist() == pytest.approx([0.1, -0.1])  # no spread within groups
    assert summary["shown"].tolist() == [False, True]


def planted(n: int = 400, seed: int = 0) -> dp.SpeakerTable:
    """Speakers spread over the US; those west of -110 have 3 times the WER; two voice clusters."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(30, 46, n), rng.uniform(-122, -72, n)
    words = rng.integers(80, 120, n)
    errors = rng.binomial(words, np.where(lon < -110, 0.3, 0.1))
    emb = np.where(np.arange(n)[:, None] % 2 == 0, 3.0, -3.0) + rng.normal(0, 0.3, (n, 4))
    zeros = np.zeros(n, dtype=int)
    return dp.speaker_table([f"s{i:05d}" for i in range(n)], errors, zeros, zeros, words, lat, lon, emb)


def test_planted_region_cohorts_stability_and_geojson():
    report = dr.analyse(planted(), dr.Options(n_boot=100, stability_refits=5))
    regions = dr.region_frame(report)
    assert len(regions) >= 2
    worst = regions.iloc[0]
    assert worst["lon_max"] == pytest.approx(-110, abs=2.5)  # the planted western box is found, and ranked 1st
    assert worst["diff_low"] > 0  # and served worse than the rest, interval excluding 0
    assert report.cohort_fit.k == 2  # the two voice clusters
    assert sorted(report.cohort_fit.sizes.tolist()) == [200, 200]
    stab = report.stability
    assert stab.by_region["region"].tolist() == [r.id for r in report.regions]
    assert 0 <= stab.mean <= 1 and len(stab.per_refit) == 5
    # the detail and the scalar agree, with the same draws
    tree = {"min_words": 500, "min_speakers": 20, "max_regions": 64, "alpha": 0.05, "n_perm": 99}
    assert dp.region_stability(report.table, n_boot=5, extent=dr._extent(report.table), **tree) == \
        pytest.approx(stab.mean)
    geo = report.geojson()
    assert [f["properties"]["region"] for f in geo["features"]] == sorted(r.id for r in report.regions)
    assert geo["features"][0]["properties"]["wer_low"] is not None
    # the cells tile a fixed box of whole degrees, not the speakers' own extremes
    assert {r.lat_min for r in report.regions} | {r.lat_max for r in report.regions} >= {24.0, 50.0}


def test_no_speakers_is_a_clear_error():
    empty = dp.speaker_table([], [], [], [], [])
    with pytest.raises(ValueError, match="no speaker"):
        dr.analyse(empty)


def test_speakers_without_places_or_voices_have_no_regions_or_cohorts():
    n = 6
    zeros = np.zeros(n, dtype=int)
    table = dp.speaker_table([f"s{i}" for i in range(n)], [1] * n, zeros, zeros, [10] * n)
    report = dr.analyse(table, dr.Options(n_boot=20))
    assert report.regions == [] and report.cohort_fit is None
    assert set(report.summaries) == set() and report.points.empty
    assert dr.region_frame(report).empty
    assert list(report.assignments().columns) == ["speaker_id", "utterances", "words", "errors", "wer"]


def test_unknown_places_are_never_the_worst_cohort():
    places = [BOSTON] * 5 + [DENVER] * 5 + [(0.0, 0.0)] * 5  # (0, 0) is far from any US city: unknown state
    table = speakers(places, [1] * 5 + [2] * 5 + [9] * 5, [10] * 15)
    report = dr.analyse(table, dr.Options(n_boot=20, max_regions=1))
    assert UNKNOWN in report.summaries[dr.STATE]["group"].tolist()
    assert report.comparison.loc[dr.STATE, "worst_cohort"] == "CO"


def test_umap_jobs_run_in_the_background_and_cache_by_key(monkeypatch):
    calls = []

    def fake_umap(x):
        calls.append(len(x))
        time.sleep(0.05)
        return np.zeros((len(x), 2))

    monkeypatch.setattr("analysis.disparity.cohorts.umap_embedding", fake_umap)
    monkeypatch.setattr("analysis.disparity.cohorts.warm_up_umap", lambda: time.sleep(0.05))
    jobs = UmapJobs()
    warm = jobs.warm_up()
    assert jobs.warm_up() is warm
    first = jobs.projection("a", np.ones((4, 3)))
    assert jobs.projection("a", np.ones((4, 3))) is first
    assert first.result(timeout=10).shape == (4, 2) and warm.done() and not jobs.warming
    assert calls == [4]


def test_the_apps_umap_worker_compiles_at_the_first_projection_not_at_start(monkeypatch):
    compiled = []
    release = threading.Event()

    def compile_slowly():
        assert release.wait(10)
        compiled.append(True)

    monkeypatch.setattr("analysis.disparity.cohorts.warm_up_umap", compile_slowly)
    monkeypatch.setattr("analysis.disparity.cohorts.umap_embedding", lambda x: np.zeros((len(x), 2)))
    jobs = UmapJobs(compile_at_start=False)
    assert jobs.warm_up() is None and not jobs.warming and compiled == []  # nothing at start
    job = jobs.projection("a", np.ones((4, 3)))
    assert jobs.warming and not job.done()  # the compilation goes first on the one worker
    release.set()
    assert job.result(timeout=10).shape == (4, 2) and compiled == [True] and not jobs.warming
    assert jobs.warm_up() is jobs.warm and jobs.warm.done()
    jobs.projection("b", np.ones((4, 3))).result(timeout=10)
    assert compiled == [True]  # once per process


def test_a_failed_projection_is_retried(monkeypatch):
    outcomes = [ValueError("boom"), np.zeros((3, 2))]

    def flaky(x):
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr("analysis.disparity.cohorts.umap_embedding", flaky)
    monkeypatch.setattr("analysis.disparity.cohorts.warm_up_umap", lambda: None)  # compiled before the first
    jobs = UmapJobs()
    failed = jobs.projection("k", np.ones((3, 2)))
    with pytest.raises(ValueError, match="boom"):
        failed.result(timeout=10)
    assert jobs.projection("k", np.ones((3, 2))) is failed  # seen once, then forgotten
    assert jobs.projection("k", np.ones((3, 2))).result(timeout=10).shape == (3, 2)


def test_region_frame_orders_by_wer():
    report = dr.analyse(planted(seed=1), dr.Options(n_boot=50, stability_refits=2))
    frame = dr.region_frame(report)
    assert (np.diff(frame["wer"].to_numpy()) <= 0).all()
    assert isinstance(frame, pd.DataFrame) and set(frame["region"]) == {r.id for r in report.regions}


def test_gap_interval_pairs_replicates_and_keeps_infinite_gaps():
    # Hand-made replicates: worst and best move together in replicate 0 and 1, so the paired gaps are 1.0 and
    # 1.0; unpaired, 0.4/0.1 - 1 = 3 would appear. Replicate 2's best cohort has WER 0: an infinite gap.
    def result(rep_e):
        return dp.BootstrapResult(groups=np.array([0, 1]), errors=np.array([4.0, 2.0]), words=np.array([20.0, 20.0]),
                                  replicate_errors=np.array(rep_e, dtype=float),
                                  replicate_words=np.full((len(rep_e), 2), 20.0), confidence=0.95)

    assert dr.gap_interval(result([[8, 4], [2, 1]]), 0, 1) == pytest.approx((1.0, 1.0))
    low, high = dr.gap_interval(result([[8, 4], [2, 1], [3, 0]]), 0, 1)
    assert low == pytest.approx(1.0) and high == float("inf")
    assert all(np.isnan(dr.gap_interval(result([[0, 0]]), 0, 1)))  # 0/0 only: no interval


def test_small_alpha_gets_enough_permutations():
    assert dr.Options().tree_n_perm == 99
    assert dr.Options(alpha=0.005).tree_n_perm == 999
    # a planted region is still found at alpha = 0.005 (99 permutations could never reach p <= 0.005)
    report = dr.analyse(planted(), dr.Options(alpha=0.005, n_boot=20, stability_refits=2))
    assert len(report.regions) >= 2


def test_partial_and_unusable_voice_embeddings():
    table = planted()
    emb = table.embedding.copy()
    emb[:3] = np.nan  # three speakers without a voice embedding
    partial = dp.SpeakerTable(**{**table.__dict__, "embedding": emb})
    report = dr.analyse(partial, dr.Options(n_boot=20, max_regions=1))
    assert report.cohort_fit.k == 2 and report.voice_rows.tolist() == list(range(3, 400))
    assert report.labels[dr.AUTOMATIC][:3].tolist() == [dr.NO_REGION] * 3
    assert "3 speaker(s) without a voice embedding" in report.cohort_note
    assert report.comparison.loc[dr.AUTOMATIC, "n_cohorts"] == 2  # "no voice" is not compared
    # k above the speakers with a voice, or identical voices: no automatic cohorts, the rest still there
    too_many = dr.analyse(partial, dr.Options(n_boot=20, max_regions=1, cohorts=397))
    assert too_many.cohort_fit is None and "k = 397" in too_many.cohort_note and dr.STATE in too_many.summaries
    same = dp.SpeakerTable(**{**table.__dict__, "embedding": np.zeros_like(emb)})
    flat = dr.analyse(same, dr.Options(n_boot=20, max_regions=1))
    assert flat.cohort_fit is None and "could not be formed" in flat.cohort_note


def test_csv_blanks_rare_combinations_of_places():
    # 5 speakers in Boston and 5 in Denver: every state has k = 5 speakers, but the city-size band splits
    # Denver's: 4 at the city (>=1M? no: 250k-1M) and 1 remote. That one speaker's combination is unique.
    places = [BOSTON] * 5 + [DENVER] * 4 + [(39.74, -103.0)] + [DENVER] * 1
    table = speakers(places, [1] * 11, [10] * 11)
    report = dr.analyse(table, dr.Options(n_boot=20, max_regions=1))
    out = report.assignments().set_index("speaker_id")
    combos = out[["learned_regions", "state", "city_size"]].astype(str).agg("|".join, axis=1)
    counts = combos.value_counts()
    assert all(counts[c] >= 5 for c in counts.index if c != "||")
    assert out.loc["s00009", ["learned_regions", "state", "city_size"]].tolist() == ["", "", ""]
    assert out.loc["s00000", "state"] == "MA"
