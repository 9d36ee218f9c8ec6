"""Win/loss counting and its report on hand-built tables (analysis/rewrites/evaluation.py): a win needs the
rewrite's interpretation to be the gold one *and* the rewrite to be a rephrase of what the user said."""

import numpy as np
import pytest

from analysis.rewrites import evaluation as ev

# logged interpretation, gold, defective, rewrite (None: left alone), a rephrase of the source -> outcome
TABLE = [
    ("weather_query", "weather_query", False, None, False, ev.NONE),          # not rewritten
    ("play_music|artist_name=maj", "play_music|artist_name=imagine dragons", True,
     "play_music|artist_name=imagine dragons", True, ev.WIN),                # wrong -> right, a rephrase
    ("datetime_query", "datetime_query", False, "alarm_query", True, ev.LOSS),  # right -> wrong
    ("datetime_query", "datetime_query", True, "alarm_query", False, ev.LOSS),  # right (TTS defect) -> wrong
    ("alarm_set", "alarm_query", True, "calendar_set", True, ev.TIE),       # wrong -> still wrong
    ("alarm_set", "alarm_set", True, "alarm_set", True, ev.TIE),            # right, defect elsewhere: nothing fixed
    ("alarm_set", "alarm_query", False, "alarm_query", True, ev.TIE),       # not defective: no win to claim
    ("", None, True, "general_greet", True, ev.TIE),                        # no gold: never a win or a loss
    ("audio_volume_mute", "audio_volume_up", True, "audio_volume_up", False, ev.TIE),  # right label, a stranger
]


def _outcomes(table=TABLE):
    logged, gold, defective, rewritten, rephrase, _ = zip(*table, strict=True)
    return ev.outcomes(list(logged), list(gold), list(defective), list(rewritten), list(rephrase))


def test_outcomes_by_hand():
    assert _outcomes().tolist() == [row[-1] for row in TABLE]


def test_the_win_rule_needs_both_conditions():
    # a defective turn read wrongly, rewritten to the gold reading: a win only when the rewrite is a rephrase
    turn = (["alarm_query"], ["alarm_set|time=seven"], [True], ["alarm_set|time=seven"])
    assert ev.outcomes(*turn, [True]).tolist() == [ev.WIN]
    assert ev.outcomes(*turn, [False]).tolist() == [ev.TIE]
    # a rephrase to a wrong reading is no win either
    assert ev.outcomes(["alarm_query"], ["alarm_set|time=seven"], [True], ["alarm_set|time=six"],
                       [True]).tolist() == [ev.TIE]


def test_outcomes_need_equal_lengths():
    with pytest.raises(ValueError, match="one entry per turn"):
        ev.outcomes(["a"], ["a", "b"], [True], [None], [False])
    with pytest.raises(ValueError, match="one entry per turn"):
        ev.outcomes(["a"], ["a"], [True], [None], [False, True])


def test_rephrase_of_by_hand():
    sources = ["turn the volume up", "where is the car", "raise the volume please", "hello how is your day",
               "hello how is your day", "what s up", "set an alarm for seven"]
    rewrites = ["raise volume", "raise volume", None, "hello how was your day", "Hello, how is your day?",
                "what is up", "wake me at seven"]
    gold = ["audio_volume_up", "audio_volume_up", "audio_volume_up", "general_quirky", "general_quirky",
            "general_quirky", "alarm_set|time=seven"]
    got = ev.rephrase_of(sources, rewrites, gold, ["general_quirky"])
    # "volume" shared; no content word shared ("where is the car"); not rewritten; a catch-all intent needs the
    # same sentence ("was" and "is" differ); the same sentence once normalised; catch-all again ("up" is a
    # function word and "what s" no content); a slot value shared
    assert got.tolist() == [True, False, False, False, True, False, True]
    # without the catch-all list, a shared content word is enough ("hello" and "day")
    assert ev.rephrase_of(sources[3:4], rewrites[3:4], gold[3:4]).tolist() == [True]
    with pytest.raises(ValueError, match="one entry per turn"):
        ev.rephrase_of(["a"], [None, None], ["x"])


def test_report_counts_and_rates_by_hand():
    table = TABLE[:-1]
    _, _, defective, _, _, _ = zip(*table, strict=True)
    out = _outcomes(table)
    users = ["u1", "u1", "u2", "u2", "u3", "u3", "u4", "u4"]
    r = ev.winloss_report(out, list(defective), users, n_boot=200, seed=1)
    assert (r["turns"], r["rewritten"], r["wins"], r["losses"], r["ties"], r["defects"]) == (8, 7, 1, 2, 4, 5)
    assert r["clean_losses"] == 1  # the loss on the already defective turn adds no defect
    assert r["win_rate"] == pytest.approx(1 / 7) and r["loss_rate"] == pytest.approx(2 / 7)
    assert r["win_loss_ratio"] == pytest.approx(0.5)
    assert r["rewrite_rate"] == pytest.approx(7 / 8)
    assert r["defect_rate_without"] == pytest.approx(5 / 8)
    assert r["defect_rate_with"] == pytest.approx((5 - 1 + 1) / 8)
    assert r["defect_reduction"] == pytest.approx((1 - 1) / 5)
    assert r["win_share"] == pytest.approx(1 / 3)
    lo, hi = r["defect_rate_without_ci"]
    assert lo <= 5 / 8 <= hi and r["resampled"] == "users" and r["n_groups"] == 4


def test_bootstrap_resamples_users_not_turns():
    # one user with every win, one with every loss: resampling users makes the ratio swing widely, and a
    # replicate never mixes half a user's turns
    out = np.array([ev.WIN] * 10 + [ev.LOSS] * 10)
    r = ev.winloss_report(out, [True] * 10 + [False] * 10, ["a"] * 10 + ["b"] * 10, n_boot=500, seed=0)
    lo, hi = r["win_rate_ci"]
    assert (lo, hi) == (0.0, 1.0)  # all-a or all-b replicates exist; per-turn resampling would be narrow


def test_ratio_without_losses_is_infinite_and_its_interval_keeps_those_replicates():
    out = np.array([ev.WIN, ev.NONE, ev.TIE, ev.WIN])
    r = ev.winloss_report(out, [True, False, True, True], ["a", "b", "c", "d"], n_boot=0)
    assert np.isinf(r["win_loss_ratio"]) and r["wins"] == 2
    none = ev.winloss_report(np.array([ev.TIE, ev.NONE]), [False, False], ["a", "b"], n_boot=0)
    assert np.isnan(none["win_loss_ratio"]) and np.isnan(none["defect_reduction"])  # nothing decided, no defect
    # 40 wins and 2 losses over 100 users: replicates without a loss give an infinite upper bound
    out = np.array([ev.WIN] * 40 + [ev.LOSS] * 2 + [ev.NONE] * 58)
    r = ev.winloss_report(out, [True] * 40 + [False] * 60, [f"u{i}" for i in range(100)], n_boot=500, seed=0)
    lo, hi = r["win_loss_ratio_ci"]
    assert r["win_loss_ratio"] == 20.0 and 1.0 < lo < 20.0 and np.isinf(hi)
    assert r["win_loss_ratio_ci"][0] == pytest.approx(r["win_share_ci"][0] / (1 - r["win_share_ci"][0]))


def test_grouping_orders_weeks_numerically():
    out = np.array([ev.WIN, ev.NONE, ev.TIE, ev.WIN])
    g = ev.grouped_reports(out, [True, False, True, True], ["a", "b", "c", "d"], ["x", "x", "y", "y"], n_boot=0)
    assert set(g) == {"x", "y"} and g["x"]["wins"] == 1 and g["y"]["ties"] == 1 and g["y"]["wins"] == 1
    weeks = ev.grouped_reports(out, [True] * 4, ["a", "b", "c", "d"], [10, 2, 1, 2], n_boot=0)
    assert list(weeks) == ["1", "2", "10"]


def test_retirement_stops_a_rewrite_after_its_posterior_turns():
    # rewrite "a": four straight losses (P(worse) = 1 - 0.5**5 = 0.969 > 0.95 after the 4th), then it is
    # left alone; "b" keeps winning; times out of order on purpose
    outcome = np.array([ev.LOSS, ev.LOSS, ev.LOSS, ev.LOSS, ev.LOSS, ev.WIN, ev.WIN, ev.NONE])
    keys = ["a", "a", "a", "a", "a", "b", "b", None]
    seconds = np.array([5.0, 1.0, 2.0, 3.0, 4.0, 1.0, 9.0, 0.0])
    out = ev.with_retirement(outcome, keys, seconds)
    # in time order a's losses come at t=1, 2, 3, 4 (retired after the 4th), so t=5 is left alone
    assert out.tolist() == [ev.NONE, ev.LOSS, ev.LOSS, ev.LOSS, ev.LOSS, ev.WIN, ev.WIN, ev.NONE]
    three = ev.with_retirement(outcome[1:4], keys[1:4], seconds[1:4])
    assert three.tolist() == [ev.LOSS] * 3  # 0.9375 after three losses: not yet


def test_week_of():
    start = 1_700_000_000.0
    assert ev.week_of(np.array([start, start + 6.9 * 86400, start + 7 * 86400]), start).tolist() == [1, 1, 2]
