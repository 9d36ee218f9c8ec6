"""Command-line stage bars: a stage that gave way to the next ends at 100%, a failed one stays where it stood,
and no bar is redrawn at 0% after its stage finished (what the old single reset bar printed)."""

from __future__ import annotations

import re

from app.stage_bars import StageBars


def last_draw(err: str, label: str) -> str:
    draws = [part for part in re.split(r"[\r\n]", err) if part.strip().startswith(label)]
    assert draws, (label, err)
    return draws[-1]


def test_each_stage_ends_at_100_percent_when_the_next_starts(capsys):
    with StageBars(labels={"wer": "word error counts", "write": "writing"}, unit=" turns") as bars:
        bars.update("read", 500, None)
        bars.update("wer", 40, 100)  # the last report came before the end of the stage
        bars.update("write", 0, 100)
        bars.update("write", 100, 100)
    err = capsys.readouterr().err
    assert "100%" in last_draw(err, "word error counts") and "100/100" in last_draw(err, "word error counts")
    assert "100/100" in last_draw(err, "writing")
    assert "500 turns" in last_draw(err, "read")
    # after the writing bar started, no earlier stage is drawn again
    assert err.rfind("word error counts") < err.find("writing")


def test_a_failed_stage_stays_where_it_stood(capsys):
    try:
        with StageBars() as bars:
            bars.update("scoring", 30, 100)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    draw = last_draw(capsys.readouterr().err, "scoring")
    assert "30/100" in draw and "100/100" not in draw


def test_quiet_prints_nothing(capsys):
    with StageBars(disable=True) as bars:
        bars.update("scoring", 1, 2)
    assert capsys.readouterr().err == ""
