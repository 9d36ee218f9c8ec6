"""The one WER normaliser picker: every page that shows a word error rate asks it which normaliser to use."""

from __future__ import annotations

import duckdb
import streamlit as st

from analysis import wer_normalise
from app import state
from app.store import turns as store_turns

_HELP = ("What both transcripts go through before words are aligned. raw: the logged text. english-v1: Whisper's "
         "English normaliser (lower case, no punctuation, contractions and split clitics such as \"let 's\" "
         "expanded, numbers as digits, recogniser markers such as <unk> dropped). Both are stored for every turn; "
         "docs/wer.md gives the rules.")


def wer_normaliser(conn: duckdb.DuckDBPyConnection, dataset: str, *, key: str, fixed: str | None = None) -> str:
    """A select box of the normalisers (analysis/wer_normalise.py) with the dataset's default preselected, and the
    name chosen. The choice is remembered per dataset for the session (state.WER_NORMALISER), so the pages
    showing WER agree until the reader picks another. key: the widget's key, one per page.

    fixed: why this part of a page can only use the dataset's default; the box then shows the default, disabled,
    with that reason, so the reader still sees which normaliser the figures use."""
    default = store_turns.get_wer_normaliser(conn, dataset)
    if fixed is not None:
        st.selectbox("WER normaliser", [default], key=key, disabled=True,
                     format_func=lambda n: f"{n} (this dataset's default)", help=f"{fixed} {_HELP}")
        return default
    remembered: dict[str, str] = st.session_state.setdefault(state.WER_NORMALISER, {})
    names = list(wer_normalise.NAMES)
    current = remembered.get(dataset, default)
    if current not in names:
        current = default

    def remember() -> None:
        remembered[dataset] = st.session_state[key]

    return st.selectbox(
        "WER normaliser", names, index=names.index(current), key=key, on_change=remember,
        format_func=lambda n: f"{n} (this dataset's default)" if n == default else n,
        help=_HELP)
