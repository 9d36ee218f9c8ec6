"""The Coordination chunking page (AppTest): with no run it says how to make one; with a scored and evaluated run it
shows the accuracy by item count, the items proposed most and the turns where the chunker and the logged NLU
disagree."""

from __future__ import annotations

import pytest

from tests.coordination_fixtures import coordination_run
from tests.helpers import app_db_copy, open_app_page, simulated_db

PAGE = "app_pages/coordination.py"


def open_page(**kw):
    return open_app_page(PAGE, **kw)


@pytest.fixture
def scored_db(tmp_path_factory):
    """Dataset "t" with a chunker run's items candidates and its stored evaluation (tests/coordination_fixtures)."""
    return coordination_run(tmp_path_factory).db


def test_the_page_shows_accuracy_by_item_count_top_items_and_disagreements(scored_db, tmp_path, monkeypatch):
    app_db_copy(scored_db, tmp_path, monkeypatch)
    at = open_page()
    assert [h.value for h in at.subheader] == ["Accuracy by item count", "Items the model proposes most",
                                               "Where the chunker and the logged NLU disagree"]
    frames = [d.value for d in at.dataframe]
    by_count = next(v for v in frames if "exact_match" in v.columns and "items" in v.columns)
    assert by_count["items"].tolist() == ["1 (no list)", "2", "3", "4+"]
    top = next(v for v in frames if "mean_chunk_score" in v.columns)
    assert len(top) > 0 and (top["turns"].diff().dropna() <= 0).all()  # most proposed first
    odd = next(v for v in frames if "proposed_items" in v.columns)
    assert set(odd.columns) >= {"request", "proposed_items", "logged_values", "slot_type"}
    assert [m.label for m in at.metric][:3] == ["Turns split into items", "Disagree with the logged NLU", "Undecided"]
    assert not [i.value for i in at.info if "yet" in i.value.lower()]


def test_without_a_run_the_page_says_how_to_get_one(tmp_path, monkeypatch):
    path = simulated_db(tmp_path / "empty.duckdb", n_turns=50, seed=1)
    monkeypatch.setenv("TURNLENS_DB", str(path))
    at = open_page()
    assert any("has not proposed item lists for this dataset yet" in i.value for i in at.info)
