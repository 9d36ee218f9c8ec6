"""analysis.rates: per-domain event rates and pooled WER with intervals that take the dialogue as the unit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import wilson_interval
from analysis.rates import (
    EVENTS,
    RATE_COLUMNS,
    WER_COLUMNS,
    clustered_rate_interval,
    clustered_ratio_interval,
    group_rates,
    group_wer,
    rate_interval_from_sums,
    ratio_interval_from_sums,
    wilson,
)

Z95 = 1.959963984540054


def test_wilson_on_whole_counts_is_the_calibration_modules_interval():
    for successes, n in ((0, 10), (3, 10), (10, 10), (17, 240)):
        assert wilson(successes / n, n, Z95) == pytest.approx(wilson_interval(successes, n))


def test_independent_turns_get_the_plain_wilson_interval():
    # one turn per dialogue: the dialogue is the turn, nothing is clustered
    events = np.array([1] * 12 + [0] * 88)
    rate, low, high, n_eff = clustered_rate_interval(events, np.ones(100))
    assert rate == 0.12
    assert n_eff == pytest.approx(100, rel=0.02)  # the sample variance of independent 0/1 draws, up to k/(k-1)
    plain = wilson_interval(12, 100)
    assert low == pytest.approx(plain[0], abs=0.003) and high == pytest.approx(plain[1], abs=0.003)


def test_all_or_nothing_dialogues_count_once_each():
    # 30 dialogues of 5 turns, every turn of a dialogue alike: 150 turns carry the information of 30 draws
    turns = np.full(30, 5)
    events = np.array([5] * 6 + [0] * 24)
    rate, low, high, n_eff = clustered_rate_interval(events, turns)
    assert rate == pytest.approx(0.2)
    assert n_eff == pytest.approx(30 * 29 / 30)  # k / (k - 1) widens the between-dialogue variance a little
    assert (low, high) == pytest.approx(wilson(0.2, n_eff, Z95))
    independent = clustered_rate_interval(np.array([1] * 30 + [0] * 120), np.ones(150))
    assert high - low > 1.8 * (independent[2] - independent[1])  # clustering widens the interval


def test_rates_of_zero_and_one_use_the_number_of_dialogues():
    low_high = clustered_rate_interval([0, 0, 0], [4, 4, 2])
    assert low_high[:2] == (0.0, 0.0) and low_high[3] == 3
    assert low_high[2] == pytest.approx(wilson_interval(0, 3)[1])
    everything = clustered_rate_interval([4, 2], [4, 2])
    assert everything[:3] == (1.0, pytest.approx(wilson_interval(2, 2)[0]), 1.0)
    single = clustered_rate_interval([1], [3])  # one dialogue: no spread between dialogues to measure
    assert single[0] == pytest.approx(1 / 3) and single[3] == 1.0
    assert all(math.isnan(v) for v in clustered_rate_interval([], []))
    assert all(math.isnan(v) for v in clustered_rate_interval([0], [0]))


def test_the_effective_size_never_exceeds_the_turns():
    # dialogues more alike than chance (every one at the same rate): the spread is below binomial, but the
    # interval is never narrower than the turn-level one
    rate, low, high, n_eff = clustered_rate_interval([1, 1, 1, 1], [4, 4, 4, 4])
    assert n_eff == 16 and (low, high) == pytest.approx(wilson_interval(4, 16))


def test_clustered_intervals_cover_where_turn_level_ones_do_not():
    """Seeded simulation: dialogues whose turns share a rate drawn around 20% (intra-dialogue correlation
    0.3). The dialogue-clustered interval covers the true rate about 95% of the time; a turn-level Wilson
    interval, treating the turns as independent, far less."""
    rng = np.random.default_rng(7)
    mean, icc, reps = 0.2, 0.3, 400
    a, b = mean * (1 - icc) / icc, (1 - mean) * (1 - icc) / icc
    clustered = turn_level = 0
    for _ in range(reps):
        sizes = rng.integers(1, 12, size=120)
        events = rng.binomial(sizes, rng.beta(a, b, size=120))
        rate, low, high, _ = clustered_rate_interval(events, sizes)
        clustered += low <= mean <= high
        naive = wilson_interval(int(events.sum()), int(sizes.sum()))
        turn_level += naive[0] <= mean <= naive[1]
    assert 0.92 <= clustered / reps <= 0.99
    assert turn_level / reps < 0.85


def test_sums_give_what_the_arrays_give():
    rng = np.random.default_rng(3)
    turns = rng.integers(1, 9, size=50)
    events = rng.binomial(turns, 0.3)
    y, m = events.astype(float), turns.astype(float)
    assert rate_interval_from_sums(y.sum(), m.sum(), (y * y).sum(), (y * m).sum(), (m * m).sum(), 50) == \
        pytest.approx(clustered_rate_interval(events, turns))
    words = rng.integers(2, 15, size=50).astype(float)
    errors = rng.binomial(words.astype(int), 0.2).astype(float)
    assert ratio_interval_from_sums(errors.sum(), words.sum(), (errors ** 2).sum(), (errors * words).sum(),
                                    (words ** 2).sum(), 50) == pytest.approx(clustered_ratio_interval(errors, words))


def test_pooled_wer_interval_by_hand():
    errors, words = np.array([1.0, 0.0, 3.0]), np.array([5.0, 5.0, 10.0])
    wer, low, high = clustered_ratio_interval(errors, words)
    assert wer == pytest.approx(4 / 20)
    # residuals e - r w: 0, -1, 1; variance 3/2 * 2 / 20^2
    se = math.sqrt(1.5 * 2) / 20
    assert (low, high) == pytest.approx((0.2 - Z95 * se, 0.2 + Z95 * se))
    assert clustered_ratio_interval([0, 0], [3, 4]) == (0.0, 0.0, 0.0)  # no error anywhere
    assert clustered_ratio_interval([5, 0], [1, 30])[1] == 0.0  # clipped at 0, not negative
    one = clustered_ratio_interval([2], [10])
    assert one[0] == 0.2 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in clustered_ratio_interval([], []))


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="cannot exceed"):
        clustered_rate_interval([3], [2])
    with pytest.raises(ValueError, match="non-negative"):
        clustered_rate_interval([-1], [2])
    with pytest.raises(ValueError, match="equal length"):
        clustered_rate_interval([1, 0], [2])
    with pytest.raises(ValueError, match="confidence"):
        clustered_rate_interval([1], [2], confidence=1.0)
    with pytest.raises(ValueError, match="between 0 and turns"):
        rate_interval_from_sums(5, 4, 25, 20, 16, 1)
    with pytest.raises(ValueError, match="lack the column"):
        group_rates(pd.DataFrame({"domain": ["a"], "turns": [1]}))


def sums_frame(per_dialogue: pd.DataFrame) -> pd.DataFrame:
    """What app.store.list_domain_signal_sums returns, computed here from one row per (domain, dialogue)."""
    rows = []
    for domain, d in per_dialogue.groupby("domain", dropna=False, sort=False):
        m = d["turns"]
        row = {"domain": None if pd.isna(domain) else domain, "dialogues": len(d), "turns": m.sum(),
               "turns_sq": (m * m).sum()}
        for e in EVENTS:
            y = d[e]
            row |= {e: y.sum(), f"{e}_dialogues": (y > 0).sum(), f"{e}_sq": (y * y).sum(),
                    f"{e}_by_turns": (y * m).sum()}
        ref = d[d["wer_turns"] > 0]
        err, w = ref["errors"], ref["words"]
        row |= {"wer_dialogues": len(ref), "wer_turns": ref["wer_turns"].sum(), "wer_errors": err.sum(),
                "wer_ref_words": w.sum(), "wer_errors_sq": (err * err).sum(), "wer_errors_by_words": (err * w).sum(),
                "wer_words_sq": (w * w).sum()}
        rows.append(row)
    return pd.DataFrame(rows)


def per_dialogue_frame() -> pd.DataFrame:
    zero = dict.fromkeys(EVENTS, 0)
    rows = [
        {"domain": "music", "turns": 2, **zero, "unhandled": 1, "wer_turns": 2, "errors": 1, "words": 6},
        {"domain": "music", "turns": 3, **zero, "barge_in": 1, "wer_turns": 3, "errors": 0, "words": 9},
        {"domain": "music", "turns": 1, **zero, "wer_turns": 0, "errors": 0, "words": 0},
        {"domain": "weather", "turns": 1, **zero, "unhandled": 1, "wer_turns": 1, "errors": 2, "words": 4},
        {"domain": None, "turns": 4, **zero, "unhandled": 4, "wer_turns": 0, "errors": 0, "words": 0},
    ]
    return pd.DataFrame(rows)


def test_group_rates_per_domain_and_event():
    per = per_dialogue_frame()
    out = group_rates(sums_frame(per))
    assert list(out.columns) == RATE_COLUMNS
    groups = out["group"].tolist()[::len(EVENTS)]  # by turns: music 6, no domain 4, weather 1
    assert groups[0] == "music" and pd.isna(groups[1]) and groups[2] == "weather"
    assert out["event"].tolist()[:len(EVENTS)] == list(EVENTS)
    music = out[(out["group"] == "music") & (out["event"] == "unhandled")].iloc[0]
    assert (music["turns"], music["dialogues"], music["events"], music["event_dialogues"]) == (6, 3, 1, 1)
    music_rows = per[per["domain"] == "music"]
    assert (music["rate"], music["ci_low"], music["ci_high"], music["n_eff"]) == pytest.approx(
        clustered_rate_interval(music_rows["unhandled"], music_rows["turns"]))
    none = out[out["group"].isna() & (out["event"] == "unhandled")].iloc[0]
    assert none["rate"] == 1.0 and none["ci_high"] == 1.0 and none["n_eff"] == 1


def test_group_wer_worst_first_and_only_with_references():
    out = group_wer(sums_frame(per_dialogue_frame()))
    assert list(out.columns) == WER_COLUMNS
    assert out["group"].tolist() == ["weather", "music"]  # the domain without a reference has no WER
    music = out.iloc[1]
    assert (music["dialogues"], music["turns"], music["ref_words"], music["errors"]) == (2, 5, 15, 1)
    assert (music["pooled_wer"], music["ci_low"], music["ci_high"]) == pytest.approx(
        clustered_ratio_interval([1, 0], [6, 9]))
    weather = out.iloc[0]
    assert weather["pooled_wer"] == 0.5 and math.isnan(weather["ci_low"])  # one dialogue: no interval
