"""Win/loss counting and its report on hand-built tables (analysis/rewrite_eval.py)."""

import numpy as np
import pytest

from analysis import rewrite_eval as ev

# logged interpretation, gold, defective, rewrite (None: left alone) -> expected outcome
TABLE = [
    ("weather_query", "weather_query", False, None, ev.NONE),          # not rewritten
    ("play_music|artist_name=maj", "play_music|artist_name=imagine dragons", True,
     "play_music|artist_name=imagine dragons", ev.WIN),                # wrong -> right on a defective turn
    ("datetime_query", "datetime_query", False, "alarm_query", ev.LOSS),  # right -> wrong
    ("datetime_query", "datetime_query", True, "alarm_query", ev.LOSS),   # right (TTS defect) -> wrong
    ("alarm_set", "alarm_query", True, "calendar_set", ev.TIE),       # wrong -> still wrong
    ("alarm_set", "alarm_set", True, "alarm_set", ev.TIE),            # right, defect elsewhere: nothing fixed
    ("alarm_set", "alarm_query", False, "alarm_query", ev.TIE),       # not defective: no win to claim
    ("", None, True, "general_greet", ev.TIE),                        # no gold: never a win or a loss
]


def test_outcomes_by_hand():
    logged, gold, defective, rewritten, expected = zip(*TABLE, strict=True)
    assert ev.outcomes(list(logged), list(gold), list(defective), list(rewritten)).tolist() == list(expected)


def test_outcomes_need_equal_lengths():
    with pytest.raises(ValueError, match="one entry per turn"):
        ev.outcomes(["a"], ["a", "b"], [True], [None])


def test_report_counts_and_rates_by_hand():
    logged, gold, defective, rewritten, _ = zip(*TABLE, strict=True)
    out = ev.outcomes(list(logged), list(gold), list(defective), list(rewritten))
    users = ["u1", "u1", "u2", "u2", "u3", "u3", "u4", "u4"]
    r = ev.winloss_report(out, list(defective), users, n_boot=200, seed=1)
    assert (r["turns"], r["rewritten"], r["wins"], r["losses"], r["ties"], r["defects"]) == (8, 7, 1, 2, 4, 5)
    assert r["win_rate"] == pytest.approx(1 / 7) and r["loss_rate"] == pytest.approx(2 / 7)
    assert r["win_loss_ratio"] == pytest.approx(0.5)
    assert r["rewrite_rate"] == pytest.approx(7 / 8)
    assert r["defect_rate_without"] == pytest.approx(5 / 8)
    assert r["defect_rate_with"] == pytest.approx((5 - 1 + 2) / 8)
    assert r["defect_reduction"] == pytest.approx((1 - 2) / 5)
    lo, hi = r["defect_rate_without_ci"]
    assert lo <= 5 / 8 <= hi and r["resampled"] == "users" and r["n_groups"] == 4


def test_bootstrap_resamples_users_not_turns():
    # one user with every win, one with every loss: resampling users makes the ratio swing widely, and a
    # replicate never mixes half a user's turns
    out = np.array([ev.WIN] * 10 + [ev.LOSS] * 10)
    r = ev.winloss_report(out, [True] * 10 + [False] * 10, ["a"] * 10 + ["b"] * 10, n_boot=500, seed=0)
    lo, hi = r["win_rate_ci"]
    assert (lo, hi) == (0.0, 1.0)  # all-a or all-b replicates exist; per-turn resampling would be narrow


def test_no_loss_gives_nan_ratio_and_grouping():
    out = np.array([ev.WIN, ev.NONE, ev.TIE, ev.WIN])
    r = ev.winloss_report(out, [True, False, True, True], ["a", "b", "c", "d"], n_boot=0)
    assert np.isnan(r["win_loss_ratio"]) and r["wins"] == 2
    g = ev.grouped_reports(out, [True, False, True, True], ["a", "b", "c", "d"], ["x", "x", "y", "y"], n_boot=0)
    assert set(g) == {"x", "y"} and g["x"]["wins"] == 1 and g["y"]["ties"] == 1 and g["y"]["wins"] == 1


def test_week_of():
    start = 1_700_000_000.0
    assert ev.week_of(np.array([start, start + 6.9 * 86400, start + 7 * 86400]), start).tolist() == [1, 1, 2]
