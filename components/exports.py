"""Downloads built from log data, made safe to open in a spreadsheet."""

from __future__ import annotations

import pandas as pd

from analysis.csv_safety import safe_frame


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell a spreadsheet would run as a formula (=, +, -, @, tab or carriage return
    first) prefixed with an apostrophe: rewrites, speaker ids and cohort labels come from logs. The rule is
    analysis.csv_safety's, shared with the labels export."""
    return safe_frame(frame)
