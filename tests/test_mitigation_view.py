"""The Mitigation section's table builders (components/mitigation_view.py) on hand-made stored results."""

from __future__ import annotations

import pandas as pd

from components.mitigation_view import ewc_across, ewc_per_group, groupings, verification_table


def _m(v, lo, hi):
    return {"value": v, "ci": [lo, hi]}


def _block(v):
    return {"overall": _m(v, v - 0.1, v + 0.1), "mean": _m(v, 0, 1), "max": _m(v + 0.2, 0, 1),
            "variance": _m(0.01, 0.0, 0.02), "per_group": {"0": _m(v, 0, 1), "1": _m(v + 0.2, 0, 1)}}


def test_ewc_tables_show_every_system_with_intervals_and_the_differences():
    summary = {"target": "1", "table": {
        "groups": ["0", "1"], "counts": {"0": {"speakers": 5, "lists": 9}, "1": {"speakers": 6, "lists": 7}},
        "systems": {"first pass": _block(0.5), "none": _block(0.45), "finetune": _block(0.44), "ewc": _block(0.43)},
        "differences": {"ewc vs none": _block(-0.02), "ewc vs finetune": _block(-0.01)}}}
    across = ewc_across(summary)
    assert list(across["system"]) == ["first pass (logged)", "rescorer before", "plain fine-tuning",
                                      "fine-tuning with EWC", "EWC − before", "EWC − plain fine-tuning"]
    assert across.loc[3, "overall WER"] == "0.430 [0.330, 0.530]"
    per = ewc_per_group(summary)
    assert list(per["target"]) == [False, True] and per.loc[1, "fine-tuning with EWC"] == "0.630 [0.000, 1.000]"
    assert per.loc[0, "EWC − before"] == "-0.0200 [0.0000, 1.0000]"


def test_verification_table_and_the_groupings_offered():
    one = {"value": 0.1, "low": 0.05, "high": 0.2}
    scorer = {"overall": one, "groupings": {"automatic cohorts": {"gap": one, "groups": {"0": one, "1": one}}}}
    table = verification_table({"cohorting": "automatic cohorts",
                                "scorers": {"cosine": scorer, "plain": scorer, "arw": scorer}})
    assert list(table.columns) == ["scorer", "EER", "gap between groups", "group 0", "group 1"]
    assert table.loc[0, "EER"] == "0.100 [0.050, 0.200]"
    summaries = {"learned regions": pd.DataFrame({"group": [0], "wer": [0.3], "shown": [True]}),
                 "automatic cohorts": pd.DataFrame({"group": [-1, 0, 1, 2], "wer": [0.9, 0.2, 0.5, 0.4],
                                                    "shown": [True, True, True, False]})}
    # one region is no disparity; "no voice" (-1) and hidden groups are not targets; worst first
    assert groupings(summaries) == {"automatic cohorts": ["1", "0"]}
