"""Tests for analysis.disparity.cohorts: k-means cohorts, nearest-city cohorts, the WER gap, the bottom-cohort share and
the comparison table, by hand and on simulated logs with a known worse-served voice cohort."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from analysis import simulate
from analysis.disparity import cohorts
from analysis.wer import error_counts

KM = 1 / simulate.KM_PER_DEGREE  # about one kilometre of latitude, in degrees


def planted(n: int = 2000, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Five well-separated Gaussian clusters in 16-d with unequal sizes: (points, true labels, centres).
    True label i is the i-th largest cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (5, 16))
    sizes = (np.array([0.35, 0.25, 0.2, 0.12, 0.08]) * n).astype(int)
    truth = rng.permutation(np.repeat(np.arange(5), sizes))
    return centres[truth] + rng.normal(0.0, 0.5, (len(truth), 16)), truth, centres


# --- k-means cohorts ----------------------------------------------------------------------------------------

def test_mean_silhouettes_match_sklearn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    x[:100] += 3.0
    sets = [
        (x[:, 0] > 1.5).astype(int),  # two clusters
        rng.integers(0, 4, 300),  # four random clusters
        np.r_[0, np.ones(299, dtype=int)] * rng.integers(1, 3, 300),  # a singleton cluster (s = 0 there)
    ]
    got = cohorts.mean_silhouettes(x, sets + [np.zeros(300, dtype=int)])
    for labels, value in zip(sets, got, strict=False):
        assert value == pytest.approx(silhouette_score(x, labels), abs=1e-10)
    assert math.isnan(got[-1])  # one cluster: undefined


def test_kmeans_recovers_planted_clusters_and_k():
    x, truth, centres = planted()
    fit = cohorts.kmeans_cohorts(x)
    assert fit.k == 5
    assert sorted(fit.silhouette) == list(range(2, 9))
    assert max(fit.silhouette, key=fit.silhouette.get) == 5
    assert adjusted_rand_score(truth, fit.labels) == pytest.approx(1.0)
    # relabelled by size, largest first: the planted sizes are distinct, so the labels are the planted ones
    np.testing.assert_array_equal(fit.labels, truth)
    np.testing.assert_array_equal(fit.sizes, np.bincount(truth))
    np.testing.assert_allclose(fit.centroids, [x[truth == i].mean(axis=0) for i in range(5)], rtol=1e-9)
    np.testing.assert_allclose(fit.centroids, centres, atol=0.25)  # noise sd 0.5 over >= 160 points: 0.04
    assert fit.sample_size == 2000 and not fit.standardized


def test_kmeans_deterministic_and_independent_of_internal_numbering():
    x, truth, _ = planted(600, seed=2)
    a = cohorts.kmeans_cohorts(x, k=5, seed=0)
    b = cohorts.kmeans_cohorts(x, k=5, seed=0)
    c = cohorts.kmeans_cohorts(x, k=5, seed=7)  # another seed numbers k-means' clusters differently
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.labels, c.labels)
    np.testing.assert_array_equal(a.labels, truth)
    assert list(a.silhouette) == [5]


def test_kmeans_silhouette_on_a_sample_still_finds_k():
    x, truth, _ = planted(3000, seed=3)
    fit = cohorts.kmeans_cohorts(x, sample=400, k_range=[3, 4, 5, 6])
    assert fit.k == 5 and fit.sample_size == 400 and sorted(fit.silhouette) == [3, 4, 5, 6]
    assert adjusted_rand_score(truth, fit.labels) == pytest.approx(1.0)


def test_relabel_by_size_by_hand():
    np.testing.assert_array_equal(cohorts._relabel_by_size(np.array([7, 7, 3, 3, 3, 9])), [1, 1, 0, 0, 0, 2])
    # equal sizes: the cohort holding the earliest speaker comes first
    np.testing.assert_array_equal(cohorts._relabel_by_size(np.array([5, 2, 2, 5])), [0, 1, 1, 0])


def test_kmeans_input_checks_and_fewer_distinct_points_than_k():
    x = np.zeros((10, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that it found fewer distinct clusters than k
        fit = cohorts.kmeans_cohorts(x, k=3)
    assert fit.k == 1 and fit.labels.tolist() == [0] * 10 and fit.silhouette == {}
    with pytest.raises(ValueError, match="between 1 and"):
        cohorts.kmeans_cohorts(x, k=11)
    with pytest.raises(ValueError, match="finite"):
        cohorts.kmeans_cohorts(np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 2.0]]))
    with pytest.raises(ValueError, match="2-d"):
        cohorts.kmeans_cohorts(np.zeros(5))
    with pytest.raises(ValueError, match="no k"):
        cohorts.kmeans_cohorts(np.eye(3), k_range=[5, 6])


def test_standardize_keeps_centroids_in_input_space():
    x, truth, centres = planted(500, seed=4)
    x[:, 0] *= 100.0  # one dimension on another scale
    fit = cohorts.kmeans_cohorts(x, k=5, standardize=True)
    assert fit.standardized
    np.testing.assert_allclose(fit.centroids, [x[truth == i].mean(axis=0) for i in range(5)], rtol=1e-9)


# --- geography ----------------------------------------------------------------------------------------------

def _city(name: str, state: str) -> pd.Series:
    cities = cohorts.us_cities()
    row = cities[(cities["city"] == name) & (cities["state"] == state)]
    assert len(row) == 1, (name, state)
    return row.iloc[0]


def test_nearest_city_on_real_cities_offset_by_a_kilometre():
    picks = [("Seattle", "WA"), ("Phoenix", "AZ"), ("Boston", "MA"), ("Anchorage", "AK"), ("Honolulu", "HI"),
             ("Kansas City", "KS"), ("Kansas City", "MO"), ("Springfield", "IL")]
    rows = [_city(*p) for p in picks]
    lat = [r["latitude"] + KM for r in rows]  # one kilometre north of the city's point
    lon = [r["longitude"] for r in rows]
    near = cohorts.nearest_city(lat, lon)
    assert list(near["city"]) == [p[0] for p in picks]
    assert list(near["state"]) == [p[1] for p in picks]  # the two Kansas Cities, 4 km apart, stay apart
    assert list(near["population"]) == [r["population"] for r in rows]
    np.testing.assert_allclose(near["distance_km"], 1.0, atol=0.01)
    np.testing.assert_array_equal(cohorts.state_cohorts(lat, lon), [p[1] for p in picks])


def test_nearest_city_matches_brute_force_haversine():
    rng = np.random.default_rng(5)
    lat, lon = rng.uniform(25, 49, 300), rng.uniform(-124, -67, 300)
    cities = cohorts.us_cities()
    p1, p2 = np.radians(lat)[:, None], np.radians(cities["latitude"].to_numpy())[None, :]
    dl = np.radians(cities["longitude"].to_numpy())[None, :] - np.radians(lon)[:, None]
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    dist = 2 * cohorts.EARTH_RADIUS_KM * np.arcsin(np.sqrt(h))
    near = cohorts.nearest_city(lat, lon)
    np.testing.assert_allclose(near["distance_km"], dist.min(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(near["state"], cities["state"].to_numpy()[dist.argmin(axis=1)])


def test_nearest_city_unknowns_and_checks():
    near = cohorts.nearest_city([np.nan, 47.6, 40.0], [-122.3, np.nan, -40.0], max_km=250)
    assert list(near["city"]) == [cohorts.UNKNOWN] * 3 and list(near["state"]) == [cohorts.UNKNOWN] * 3
    assert near["population"].isna().all()
    assert near["distance_km"].isna().tolist() == [True, True, False]  # mid-Atlantic: far, but measured
    assert near["distance_km"].iloc[2] > 1000
    assert cohorts.nearest_city(40.0, -40.0)["state"].iloc[0] != cohorts.UNKNOWN  # no max_km: nearest anyway
    assert cohorts.state_cohorts([40.0], [-40.0]).tolist() == [cohorts.UNKNOWN]  # STATE_MAX_KM by default
    with pytest.raises(ValueError, match="latitude must be"):
        cohorts.nearest_city([95.0], [0.0])
    with pytest.raises(ValueError, match="longitudes"):
        cohorts.nearest_city([1.0, 2.0], [0.0])


def test_city_size_band_boundaries():
    pop = [15_000, 49_999, 50_000, 249_999, 250_000, 999_999, 1_000_000, 8_000_000, np.nan]
    assert cohorts.city_size_band(pop).tolist() == [
        "<50k", "<50k", "50k-250k", "50k-250k", "250k-1M", "250k-1M", ">=1M", ">=1M", cohorts.UNKNOWN]
    bands = cohorts.city_size_band([2e6, 2e6, 2e6, np.nan], [30.0, 30.1, np.nan, 99.0], remote_km=30)
    assert bands.tolist() == [">=1M", cohorts.REMOTE_BAND, ">=1M", cohorts.UNKNOWN]
    assert set(cohorts.CITY_SIZE_BAND_ORDER) >= set(bands)
    with pytest.raises(ValueError, match=">= 0"):
        cohorts.city_size_band([-1])


def test_geo_cohorts_recover_simulated_states():
    speakers = [s for u in simulate.build_population(n_users=300, seed=3) for s in u.speakers]
    lat, lon = [s.latitude for s in speakers], [s.longitude for s in speakers]
    geo = cohorts.geo_cohorts(lat, lon)
    agree = np.mean(geo["state"] == np.array([s.state for s in speakers]))
    assert agree > 0.95  # speakers live a few km around a real city; misses are across a nearby border
    near = cohorts.nearest_city(lat, lon)
    np.testing.assert_array_equal(geo["city size"], cohorts.city_size_band(near["population"], near["distance_km"]))


# --- WER gap, bottom-cohort share, comparison table ---------------------------------------------------------

# Nine speakers. Pooled WER: A 5/20 = 0.25; B 3/40 = 0.075 (the speaker mean would be 0.0833); C no reference
# words; D 9/10 = 0.9 with one speaker; (unknown) 10/20 = 0.5. Utterances: 25 in all, A 10, D 5.
LABELS = np.array(["A", "A", "B", "B", "B", "C", "D", cohorts.UNKNOWN, cohorts.UNKNOWN], dtype=object)
ERRORS = np.array([2, 3, 1, 1, 1, 0, 9, 5, 5])
WORDS = np.array([10, 10, 10, 20, 10, 0, 10, 10, 10])
UTTS = np.array([4, 6, 1, 1, 1, 2, 5, 3, 2])
REGION = np.array(["N", "N", "N", "S", "S", "S", "S", cohorts.UNKNOWN, cohorts.UNKNOWN], dtype=object)


def test_cohort_wer_is_pooled():
    g = cohorts.cohort_wer(LABELS, ERRORS, WORDS, utterances=UTTS)
    assert list(g.index) == [cohorts.UNKNOWN, "A", "B", "C", "D"]
    assert g.loc["B", "wer"] == pytest.approx(0.075)
    assert g.loc["A", "wer"] == pytest.approx(0.25) and g.loc[cohorts.UNKNOWN, "wer"] == pytest.approx(0.5)
    assert math.isnan(g.loc["C", "wer"])
    assert g["speakers"].tolist() == [2, 2, 3, 1, 1] and g["utterances"].tolist() == [5, 10, 3, 2, 5]
    assert cohorts.cohort_wer(LABELS, ERRORS, WORDS)["utterances"].isna().all()
    with pytest.raises(ValueError, match="errors has 2 values"):
        cohorts.cohort_wer(LABELS, [1, 2], WORDS)
    with pytest.raises(ValueError, match=">= 0"):
        cohorts.cohort_wer(LABELS, ERRORS, -WORDS)


def test_wer_gap_and_bottom_share_by_hand():
    g = cohorts.cohort_wer(LABELS, ERRORS, WORDS)
    # at least 2 speakers: A and B compared (C has no words, D one speaker, unknown excluded)
    assert cohorts.extreme_cohorts(g, min_speakers=2) == ("A", "B")
    assert cohorts.wer_gap(g, min_speakers=2) == pytest.approx((0.25 - 0.075) / 0.075)
    assert cohorts.bottom_share(LABELS, g, min_speakers=2) == pytest.approx(2 / 9)
    assert cohorts.bottom_share(LABELS, g, utterances=UTTS, min_speakers=2) == pytest.approx(10 / 25)
    # one speaker is enough: D is the worst
    assert cohorts.wer_gap(g, min_speakers=1) == pytest.approx((0.9 - 0.075) / 0.075)
    assert cohorts.bottom_share(LABELS, g, min_speakers=1) == pytest.approx(1 / 9)
    assert cohorts.bottom_share(LABELS, g, utterances=UTTS, min_speakers=1) == pytest.approx(5 / 25)
    # unknown location counted as a cohort when asked
    assert cohorts.wer_gap(g, min_speakers=2, exclude=()) == pytest.approx((0.5 - 0.075) / 0.075)
    # the default minimum (5 speakers) leaves nothing to compare
    assert math.isnan(cohorts.wer_gap(g)) and math.isnan(cohorts.bottom_share(LABELS, g))
    assert cohorts.extreme_cohorts(g) is None


def test_metrics_read_a_group_column():
    # analysis.disparity.regions.group_summary's shape: the cohort label in a "group" column, a RangeIndex
    g = cohorts.cohort_wer(LABELS, ERRORS, WORDS).rename_axis("group").reset_index()
    assert cohorts.extreme_cohorts(g, min_speakers=2) == ("A", "B")
    assert cohorts.wer_gap(g, min_speakers=2) == pytest.approx((0.25 - 0.075) / 0.075)
    assert cohorts.bottom_share(LABELS, g, min_speakers=2) == pytest.approx(2 / 9)
    assert cohorts.wer_gap(g, min_speakers=2, exclude=()) == pytest.approx((0.5 - 0.075) / 0.075)


def test_wer_gap_zero_best():
    g = pd.DataFrame({"speakers": [5, 5], "wer": [0.0, 0.2]}, index=["x", "y"])
    assert cohorts.wer_gap(g) == math.inf
    assert math.isnan(cohorts.wer_gap(g.assign(wer=0.0)))
    with pytest.raises(ValueError, match="'speakers' column"):
        cohorts.wer_gap(g[["wer"]])


def test_comparison_table_by_hand():
    t = cohorts.comparison_table(ERRORS, WORDS, {"voice": LABELS, "region": REGION, "one": np.zeros(9, int)},
                                 utterances=UTTS, min_speakers=2)
    assert list(t.columns) == list(cohorts.COMPARISON_COLUMNS) and list(t.index) == ["voice", "region", "one"]
    v, r, o = t.loc["voice"], t.loc["region"], t.loc["one"]
    assert v["n_cohorts"] == 2 and v["worst_cohort"] == "A" and v["best_cohort"] == "B"
    assert v["wer_gap"] == pytest.approx(0.175 / 0.075) and v["worst_wer"] == pytest.approx(0.25)
    assert v["bottom_share_speakers"] == pytest.approx(2 / 9) and v["bottom_share_utterances"] == pytest.approx(0.4)
    # region N: 6 errors / 30 words = 0.2; S: 11 / 40 = 0.275; (unknown) left out
    assert r["n_cohorts"] == 2 and r["worst_cohort"] == "S" and r["best_cohort"] == "N"
    assert r["wer_gap"] == pytest.approx(0.075 / 0.2) and r["best_wer"] == pytest.approx(0.2)
    assert r["bottom_share_speakers"] == pytest.approx(4 / 9) and r["bottom_share_utterances"] == pytest.approx(9 / 25)
    assert o["n_cohorts"] == 1 and o["worst_cohort"] == "" and math.isnan(o["wer_gap"])
    no_utts = cohorts.comparison_table(ERRORS, WORDS, {"voice": LABELS}, min_speakers=2)
    assert math.isnan(no_utts.loc["voice", "bottom_share_utterances"])


def test_definitions_are_filled_in():
    d = cohorts.definitions(min_speakers=7, remote_km=12)
    assert "7 speakers" in d["wer_gap"] and "12 km" in d["city size"] and "250 km" in d["state"]
    assert set(cohorts.COMPARISON_COLUMNS) <= set(d)
    assert "fewer than 50 speakers or less than 1% of all speakers" in d["thin_support"]
    assert not any("{" in text for text in d.values())


def test_thin_support_under_fifty_speakers_or_one_percent():
    assert cohorts.thin_support(22, 13_172)  # the demo's worst learned region: 22 speakers, 0.17%
    assert cohorts.thin_support(49, 1_000) and not cohorts.thin_support(50, 1_000)
    assert cohorts.thin_support(60, 10_000)  # 0.6% of the speakers, though over 50
    assert not cohorts.thin_support(100, 10_000)  # exactly 1%
    assert cohorts.thin_support(0, 0)


# --- simulated logs: the worse-served voice cohort ----------------------------------------------------------

def test_worst_automatic_cohort_is_the_simulated_worse_cohort():
    n_turns = 20_000
    recs = list(simulate.simulate_turns(simulate.load_pool(), n_turns=n_turns, seed=0))
    truth = {s.speaker_id: s.cohort
             for u in simulate.build_population(n_users=simulate.n_users_for(n_turns), seed=0) for s in u.speakers}
    sub, dele, ins, words = error_counts([r["reference_text"] for r in recs], [r["asr_text"] for r in recs])
    has_ref = words >= 0  # false wakes have no reference: no counts
    speaker_ids, code = np.unique([r["speaker_id"] for r in recs], return_inverse=True)
    n = len(speaker_ids)
    errors = np.bincount(code, np.where(has_ref, sub + dele + ins, 0), n)
    ref_words = np.bincount(code, np.where(has_ref, words, 0), n)
    utts = np.bincount(code, minlength=n)
    emb = np.zeros((n, simulate.EMBEDDING_DIM))
    np.add.at(emb, code, np.array([r["speaker_embedding"] for r in recs]))
    emb /= utts[:, None]

    fit = cohorts.kmeans_cohorts(emb)
    g = cohorts.cohort_wer(fit.labels, errors, ref_words, utterances=utts)
    worst, _ = cohorts.extreme_cohorts(g)
    true_cohort = np.array([truth[s] for s in speaker_ids])
    members = true_cohort[fit.labels == worst]
    assert np.mean(members == simulate.WORSE_COHORT) > 0.5

    lat = np.bincount(code, [r["latitude"] for r in recs], n) / utts
    lon = np.bincount(code, [r["longitude"] for r in recs], n) / utts
    table = cohorts.comparison_table(errors, ref_words, {"automatic": fit.labels, **cohorts.geo_cohorts(lat, lon)},
                                     utterances=utts)
    assert table.loc["automatic", "worst_cohort"] == str(worst)
    assert table.loc["automatic", "wer_gap"] > 0.2  # the worse cohort draws half its requests from errors


# --- UMAP ---------------------------------------------------------------------------------------------------

def test_umap_needs_three_speakers():
    with pytest.raises(ValueError, match="at least 3"):
        cohorts.umap_embedding(np.zeros((2, 4)))


@pytest.mark.slow
def test_umap_embedding_smoke():
    # The first UMAP fit on a machine compiles numba code (about 30 s): the warm-up pays it, the fit is quick.
    cohorts.warm_up_umap()
    x, _, _ = planted(200, seed=6)
    out = cohorts.umap_embedding(x, n_neighbors=10)
    assert out.shape == (200, 2) and np.isfinite(out).all()
    assert cohorts.umap_embedding(x[:3]).shape == (3, 2)  # too few points for UMAP's spectral start
    # umap-learn compiles these without numba's on-disk cache: turned on (cohorts._umap), a new process loads them
    # from NUMBA_CACHE_DIR instead of compiling for about 14 s; each fit above looked them up there
    import umap.layouts
    import umap.umap_
    import umap.utils

    for compiled in (umap.utils.fast_knn_indices, umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths,
                     umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel):
        stats = compiled.stats
        assert stats.cache_path and sum(stats.cache_hits.values()) + sum(stats.cache_misses.values()) > 0, stats


@pytest.mark.slow
def test_umap_from_exact_neighbours_keeps_planted_clusters_apart():
    # From 4,096 speakers the neighbours come from scikit-learn, not UMAP's NN-descent.
    x, truth, _ = planted(4_200, seed=2)
    out = cohorts.umap_embedding(x)
    assert out.shape == (4_200, 2) and np.isfinite(out).all()
    # the planted clusters stay apart: each point's nearest neighbour in the layout is of its own cluster
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=2).fit(out).kneighbors(out)
    assert np.mean(truth[idx[:, 1]] == truth) > 0.95
