"""Disparity analysis: per-speaker aggregation, pooled WER, the speaker bootstrap and learned regions, checked
on hand-computed tables and on synthetic speakers with a planted high-WER box."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis.disparity.regions import (
    OVERALL,
    REST,
    _resample_indices,
    assign_regions,
    difference_interval,
    group_summary,
    k_anonymous,
    merge_small_groups,
    pooled_wer,
    region_stability,
    region_stability_detail,
    region_tree,
    regions_geojson,
    speaker_bootstrap,
    speaker_table,
)


def table_of(errors, words, lat=None, lon=None):
    """One turn per speaker s0, s1, ... (ids zero-padded so that sorting keeps this order); all errors are
    substitutions."""
    n = len(errors)
    ids = [f"s{i:05d}" for i in range(n)]
    zeros = np.zeros(n, dtype=int)
    return speaker_table(ids, errors, zeros, zeros, words, lat, lon)


# ------------------------------------------------------------------------------------------ pooled WER


def test_pooled_wer_sums_errors_over_words():
    # Per-utterance rates 0.5, 0 and 0.75 average to 0.4167; pooled it is 4 errors over 16 words.
    assert pooled_wer([1, 0, 3], [2, 10, 4]) == pytest.approx(0.25)
    assert math.isnan(pooled_wer([0, 0], [0, 0]))
    with pytest.raises(ValueError, match="shape"):
        pooled_wer([1, 2], [3])
    with pytest.raises(ValueError, match=">= 0"):
        pooled_wer([1, 2], [-1, 3])


def test_speaker_table_aggregates_by_hand():
    ids = ["b", "a", "b", "a", None, "c", "a", "b"]
    sub = [1, 0, 0, 9, 7, 5, 1, 0]
    dele = [0, 1, 0, 9, 7, 5, 0, 2]
    ins = [0, 0, 1, 9, 7, 5, 0, 0]
    # turn 3 has an empty reference, turn 4 no speaker and turn 5 no reference (-1): all three are skipped,
    # and "c" has no turn left, so no row.
    words = [3, 2, 4, 0, 5, -1, 1, 2]
    lat = [10.0, 20.0, 14.0, 99.0, 99.0, 99.0, np.nan, 12.0]
    lon = [1.0, 2.0, 3.0, 99.0, 99.0, 99.0, 5.0, 5.0]
    emb = [[1.0, 2.0], [0.0, 0.0], [3.0, 4.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0], None, None]
    t = speaker_table(ids, sub, dele, ins, words, lat, lon, emb)
    assert t.speaker.tolist() == ["a", "b"]
    assert t.utterances.tolist() == [2, 3]
    assert t.words.tolist() == [3, 9]
    assert t.sub.tolist() == [1, 1]
    assert t.dele.tolist() == [1, 2]
    assert t.ins.tolist() == [0, 1]
    assert t.errors.tolist() == [2, 4]
    # a: the turn with a NaN latitude has no place, so only (20, 2) counts; b: mean of its three turns.
    np.testing.assert_allclose(t.lat, [20.0, 12.0])
    np.testing.assert_allclose(t.lon, [2.0, 3.0])
    # a: one embedding (0, 0); b: mean of (1, 2) and (3, 4), its third turn has none.
    np.testing.assert_allclose(t.embedding, [[0.0, 0.0], [2.0, 3.0]])
    np.testing.assert_allclose(t.wer, [2 / 3, 4 / 9])

    # The pyarrow path (a list column with nulls, as the store returns it) gives the same means.
    t2 = speaker_table(pa.array(ids), pa.array(sub), pa.array(dele), pa.array(ins), pa.array(words),
                       pa.array(lat), pa.array(lon), pa.array(emb, pa.list_(pa.float64())))
    np.testing.assert_allclose(t2.embedding, t.embedding)
    np.testing.assert_allclose(t2.lat, t.lat)
    # Without places or embeddings: NaN places and an (n, 0) embedding matrix.
    t3 = speaker_table(ids, sub, dele, ins, words)
    assert np.isnan(t3.lat).all() and t3.embedding.shape == (2, 0)


def test_speaker_table_rejects_bad_input():
    with pytest.raises(ValueError, match="3 values but there are 2 turns"):
        speaker_table(["a", "b"], [0, 0], [0, 0], [0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="negative or missing error count"):
        speaker_table(["a", "b"], [0, -1], [0, 0], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="different lengths"):
        speaker_table(["a", "b"], [0, 0], [0, 0], [0, 0], [1, 1], embeddings=[[1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="both lat and lon"):
        speaker_table(["a"], [0], [0], [0], [1], lat=[1.0])


def test_group_summary_by_hand():
    # Speaker 0: 1 substitution in 2 words (WER 0.5); speaker 1: 0 in 10; speaker 2: 1 deletion and 2
    # insertions in 4 words (0.75).
    t = speaker_table(["p", "q", "r"], [1, 0, 0], [0, 0, 1], [0, 0, 2], [2, 10, 4])
    s = group_summary(t, ["north", "north", "south"])
    assert s["group"].tolist() == ["north", "south"]
    north, south = s.iloc[0], s.iloc[1]
    assert (north.speakers, north.utterances, north.words, north.errors) == (2, 2, 12, 1)
    assert north.wer == pytest.approx(1 / 12)  # pooled: the primary figure
    assert north.speaker_mean_wer == pytest.approx(0.25)  # (0.5 + 0) / 2: the secondary one differs
    assert (north.sub_share, north.del_share, north.ins_share) == (1.0, 0.0, 0.0)
    assert south.wer == pytest.approx(0.75)
    assert (south.sub_share, south.del_share, south.ins_share) == pytest.approx((0.0, 1 / 3, 2 / 3))
    assert s["error_share"].tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="null labels"):
        group_summary(t, ["north", None, "south"])
    with pytest.raises(ValueError, match="2 labels but the table has 3"):
        group_summary(t, ["north", "south"])


def test_k_anonymity_helpers():
    t = table_of([1] * 8, [10] * 8)
    groups = ["a"] * 5 + ["b"] * 2 + ["c"]
    s = group_summary(t, groups)
    assert k_anonymous(s, k=5).tolist() == [True, False, False]
    merged = merge_small_groups(groups, k=5)
    assert merged.tolist() == ["a"] * 5 + ["other"] * 3
    assert k_anonymous(group_summary(t, merged), k=3).tolist() == [True, True]
    with pytest.raises(ValueError, match="already a group label"):
        merge_small_groups(["other"] * 5 + ["x"], k=5)
    with pytest.raises(ValueError, match="k must be"):
        k_anonymous(s, k=0)


# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_resamples_speakers_by_hand():
    # Group x: speaker 0 has 6 errors in 10 words, speaker 1 none in 30. Drawing 2 speakers with replacement
    # gives {0,0} -> 12/20 = 0.6, {0,1} -> 6/40 = 0.15 (probability 1/2), {1,1} -> 0. Resampling utterances
    # instead would give other values. Group y has one speaker: every replicate is its own WER.
    t = table_of([6, 0, 1], [10, 30, 10])
    groups = ["x", "x", "y"]
    res = speaker_bootstrap(t, groups, n_boot=4000, seed=3)
    assert res.replicates.shape == (4000, 2)
    x = res.replicates[:, 0]
    values, counts = np.unique(np.round(x, 12), return_counts=True)
    assert values.tolist() == [0.0, 0.15, 0.6]
    assert counts / 4000 == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert res.estimate.tolist() == pytest.approx([0.15, 0.1])
    assert res.interval("x") == pytest.approx((0.0, 0.6))
    assert res.interval("y") == pytest.approx((0.1, 0.1))  # one speaker: the interval is a point
    assert res.overall == pytest.approx(7 / 50)

    # Differences, replicate by replicate: x - y is x's replicate minus the constant 0.1.
    d = difference_interval(res, "x", "y")
    assert d.estimate == pytest.approx(0.05)
    assert (d.low, d.high) == pytest.approx((-0.1, 0.5))
    assert not d.excludes_zero
    assert difference_interval(res, "x", REST).estimate == pytest.approx(0.05)  # the rest is y
    assert difference_interval(res, "x", OVERALL).estimate == pytest.approx(0.15 - 0.14)
    with pytest.raises(ValueError, match="not one of the bootstrapped groups"):
        difference_interval(res, "z")

    s = group_summary(t, groups, bootstrap=res)
    assert s["wer_low"].tolist() == pytest.approx([0.0, 0.1])
    assert s["excludes_overall"].tolist() == [False, True]


def test_bootstrap_matches_a_reference_loop_on_the_same_draws():
    rng = np.random.default_rng(0)
    n = 40
    t = table_of(rng.integers(0, 20, n), rng.integers(5, 40, n))
    groups = np.repeat([0, 1, 2, 3], [15, 10, 14, 1])  # already sorted by group, so no reordering
    res = speaker_bootstrap(t, groups, n_boot=50, seed=11)
    # Same generator, same draws: 50 x 40 is one batch, as in speaker_bootstrap.
    sizes = np.array([15, 10, 14, 1])
    starts = np.array([0, 15, 25, 39])
    idx = _resample_indices(np.random.default_rng(11), starts, sizes, 50)
    expected = np.empty((50, 4))
    for b in range(50):
        for g in range(4):
            drawn = idx[b, starts[g]: starts[g] + sizes[g]]
            assert all(starts[g] <= i < starts[g] + sizes[g] for i in drawn)  # never outside its group
            expected[b, g] = sum(t.errors[i] for i in drawn) / sum(t.words[i] for i in drawn)
    np.testing.assert_allclose(res.replicates, expected)
    np.testing.assert_allclose(res.overall_replicates, res.replicate_errors.sum(1) / res.replicate_words.sum(1))


def test_bootstrap_intervals_cover_estimates_and_validate():
    rng = np.random.default_rng(5)
    t = table_of(rng.integers(0, 30, 300), rng.integers(20, 60, 300))
    groups = rng.integers(0, 6, 300)
    res = speaker_bootstrap(t, groups, n_boot=300, seed=1)
    assert (res.low <= res.estimate).all() and (res.estimate <= res.high).all()
    lo, hi = res.overall_interval
    assert lo <= res.overall <= hi
    # Same seed, same replicates; another seed, others.
    np.testing.assert_array_equal(speaker_bootstrap(t, groups, n_boot=300, seed=1).replicates, res.replicates)
    assert not np.array_equal(speaker_bootstrap(t, groups, n_boot=300, seed=2).replicates, res.replicates)
    with pytest.raises(ValueError, match="n_boot"):
        speaker_bootstrap(t, groups, n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        speaker_bootstrap(t, groups, confidence=1.0)


# ------------------------------------------------------------------------------------------ regions

BOX = (36.0, 42.0, -105.0, -90.0)  # planted high-WER box: lat_min, lat_max, lon_min, lon_max


def synthetic(n=2000, *, planted=True, seed=0, inside=0.3, outside=0.1):
    """n speakers uniform over lat 30-50, lon -120..-70, each with 100 reference words; WER 30% inside BOX
    and 10% outside when planted, else 15% everywhere (binomial noise per speaker)."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(30, 50, n), rng.uniform(-120, -70, n)
    in_box = (lat >= BOX[0]) & (lat < BOX[1]) & (lon >= BOX[2]) & (lon < BOX[3])
    p = np.where(in_box, inside, outside) if planted else np.full(n, 0.15)
    words = np.full(n, 100)
    return table_of(rng.binomial(words, p), words, lat, lon), in_box


def test_region_tree_recovers_a_planted_box():
    t, in_box = synthetic()
    regions = region_tree(t, min_words=1000, min_speakers=20, max_regions=16, seed=0)
    assert 2 <= len(regions) <= 16
    assert [r.id for r in regions] == list(range(1, len(regions) + 1))
    assert all(a.wer >= b.wer for a, b in zip(regions, regions[1:], strict=False))  # ranked, worst first
    worst = regions[0]
    assert worst.wer > 0.25
    assert in_box[worst.speaker_indices].mean() > 0.9  # the worst region lies inside the box
    # Its cell lies inside the box too (cut points fall between speakers, so allow a thin margin).
    overlap_lat = max(0.0, min(worst.lat_max, BOX[1]) - max(worst.lat_min, BOX[0]))
    overlap_lon = max(0.0, min(worst.lon_max, BOX[3]) - max(worst.lon_min, BOX[2]))
    cell_area = (worst.lat_max - worst.lat_min) * (worst.lon_max - worst.lon_min)
    assert overlap_lat * overlap_lon / cell_area > 0.9
    # The high-WER regions together cover most of the box's speakers, and little else (cells on the box's
    # edge mix both sides).
    high = np.concatenate([r.speaker_indices for r in regions if r.wer > 0.2])
    assert in_box[high].mean() > 0.8
    assert np.isin(np.flatnonzero(in_box), high).mean() > 0.8
    # Cells tile the extent: every speaker in exactly one region, and assign_regions agrees with the fit.
    labels = assign_regions(regions, t.lat, t.lon)
    for r in regions:
        np.testing.assert_array_equal(np.flatnonzero(labels == r.id), r.speaker_indices)
    assert (labels > 0).all()
    area = sum((r.lat_max - r.lat_min) * (r.lon_max - r.lon_min) for r in regions)
    assert area == pytest.approx((t.lat.max() - t.lat.min()) * (t.lon.max() - t.lon.min()))
    assert regions[0].path and all(" < " in p or " >= " in p for p in regions[0].path)


def test_region_tree_refuses_to_split_noise():
    t, _ = synthetic(planted=False, seed=1)
    regions = region_tree(t, min_words=1000, min_speakers=20, max_regions=16, seed=0)
    assert len(regions) == 1
    assert regions[0].speakers == len(t) and regions[0].path == ()
    assert regions[0].wer == pytest.approx(t.errors.sum() / t.words.sum())
    # It is the stopping rule that refuses: without the test the same data is cut up to max_regions.
    assert len(region_tree(t, min_words=1000, min_speakers=20, max_regions=16, alpha=1.0)) == 16


def test_region_tree_respects_minimums_and_maximum():
    t, _ = synthetic(seed=2)
    for min_words, min_speakers in ((5000, 20), (1000, 150)):
        regions = region_tree(t, min_words=min_words, min_speakers=min_speakers, max_regions=64, alpha=1.0)
        assert len(regions) > 1
        assert min(r.words for r in regions) >= min_words
        assert min(r.speakers for r in regions) >= min_speakers
    assert len(region_tree(t, max_regions=3, min_words=500, min_speakers=10)) <= 3
    assert len(region_tree(t, max_regions=1)) == 1
    with pytest.raises(ValueError, match="min_words"):
        region_tree(t, min_words=0)
    with pytest.raises(ValueError, match="alpha"):
        region_tree(t, alpha=0.0)


def test_region_tree_leaves_out_speakers_without_a_place_and_honours_extent():
    t, _ = synthetic(n=500, seed=3)
    lat, lon = t.lat.copy(), t.lon.copy()
    lat[:10] = np.nan
    t = table_of(t.errors, t.words, lat, lon)
    regions = region_tree(t, min_words=500, min_speakers=10, extent=(25.0, 55.0, -125.0, -65.0), seed=0)
    placed = np.concatenate([r.speaker_indices for r in regions])
    assert len(placed) == 490 and not np.isin(np.arange(10), placed).any()
    assert (assign_regions(regions, t.lat, t.lon)[:10] == -1).all()
    assert min(r.lat_min for r in regions) == 25.0 and max(r.lon_max for r in regions) == -65.0
    with pytest.raises(ValueError, match="does not contain"):
        region_tree(t, extent=(35.0, 55.0, -125.0, -65.0))


def test_regions_geojson_is_valid():
    t, _ = synthetic(seed=4)
    regions = region_tree(t, min_words=1000, min_speakers=20, max_regions=8, seed=0)
    labels = assign_regions(regions, t.lat, t.lon)
    res = speaker_bootstrap(t, labels, n_boot=200)
    summary = group_summary(t, labels, bootstrap=res)
    gj = regions_geojson(regions, summary)
    json.dumps(gj, allow_nan=False)  # strict JSON: no NaN, no NumPy scalars
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(regions)
    for f, r in zip(gj["features"], regions, strict=True):
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        ring = f["geometry"]["coordinates"][0]
        assert len(ring) == 5 and ring[0] == ring[-1]  # closed
        xs, ys = np.array(ring).T
        assert np.sum(xs[:-1] * ys[1:] - xs[1:] * ys[:-1]) > 0  # counter-clockwise exterior (RFC 7946)
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (r.lon_min, r.lon_max, r.lat_min, r.lat_max)
        p = f["properties"]
        assert p["region"] == r.id and p["speakers"] == r.speakers and p["words"] == r.words
        assert p["wer"] == pytest.approx(r.wer)
        assert p["wer_low"] <= p["wer"] <= p["wer_high"]
    # Only regions present in the (k-anonymity filtered) summary are exported.
    kept = summary[summary["group"] != regions[-1].id]
    assert len(regions_geojson(regions, kept)["features"]) == len(regions) - 1
    assert regions_geojson(regions)["features"][0]["properties"]["wer_low"] is None


def test_region_stability_high_on_planted_structure_lower_on_noise():
    # Strong structure: a western cluster of speakers served much worse than an eastern one, with a gap
    # between them, so every refit finds the same cut.
    rng = np.random.default_rng(6)
    n = 1000
    lat, lon = rng.uniform(30, 50, n), np.where(rng.random(n) < 0.5, rng.uniform(-120, -100, n),
                                                rng.uniform(-90, -70, n))
    words = np.full(n, 100)
    t = table_of(rng.binomial(words, np.where(lon < -95, 0.4, 0.05)), words, lat, lon)
    params = {"min_words": 1000, "min_speakers": 20, "max_regions": 8}
    stable = region_stability(t, n_boot=8, seed=0, **params)
    assert stable > 0.9
    # Noise cut into 8 regions without a stopping rule: refits cut elsewhere and pairs part.
    noise, _ = synthetic(n=1000, planted=False, seed=7)
    unstable = region_stability(noise, n_boot=8, seed=0, alpha=1.0, **params)
    assert unstable < 0.8 and unstable < stable - 0.15
    with pytest.raises(ValueError, match="unknown region_tree parameters"):
        region_stability(t, n_boot=2, depth=3)


def test_region_stability_gives_every_region_its_own_figure():
    # 600 speakers in the east served well and 30 in a western corner served much worse: the small region holds
    # 435 of about 180,000 same-region pairs, so 200 pairs drawn over all of them almost surely miss it.
    rng = np.random.default_rng(3)
    n_big, n_small = 600, 30
    lat = np.r_[rng.uniform(30, 48, n_big), rng.uniform(30, 34, n_small)]
    lon = np.r_[rng.uniform(-95, -70, n_big), rng.uniform(-122, -118, n_small)]
    words = np.full(n_big + n_small, 200)
    t = table_of(rng.binomial(words, np.r_[np.full(n_big, 0.05), np.full(n_small, 0.4)]), words, lat, lon)
    params = {"min_words": 1000, "min_speakers": 20, "max_regions": 8}
    detail = region_stability_detail(t, n_boot=5, seed=0, max_pairs=200, pairs_per_region=50, **params)
    regions = region_tree(t, seed=0, **params)
    assert len(regions) >= 2 and min(r.speakers for r in regions) <= n_small
    assert detail.by_region["region"].tolist() == [r.id for r in regions]
    assert (detail.by_region["pairs"] == 50).all()
    assert detail.by_region["together"].between(0, 1).all()  # every region, the smallest included
    # the overall figure keeps its own draws, whatever the per-region sample
    again = region_stability_detail(t, n_boot=5, seed=0, max_pairs=200, pairs_per_region=7, **params)
    assert again.mean == detail.mean and np.array_equal(again.per_refit, detail.per_refit)
    assert region_stability(t, n_boot=5, seed=0, max_pairs=200, **params) == detail.mean
    with pytest.raises(ValueError, match="pairs_per_region"):
        region_stability_detail(t, n_boot=2, pairs_per_region=0, **params)


def test_summary_table_types_for_the_page():
    t = table_of([1, 2, 3], [10, 10, 10])
    s = group_summary(t, [2, 1, 2])
    assert isinstance(s, pd.DataFrame) and s["group"].tolist() == [1, 2]
