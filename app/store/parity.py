"""The SQL of model vs human parity (the Agreement page): every reviewer's current label on a candidate beside the
candidate's proposal. The conventions of app/store: the connection first, every value a parameter."""

from __future__ import annotations

import duckdb
import pandas as pd


def list_parity_labels(conn: duckdb.DuckDBPyConnection, dataset: str, *, task: str | None = None) -> pd.DataFrame:
    """One row per (candidate, reviewer) of people's current decisions on this dataset's candidates (roles review
    and audit: no bulk accepts, no adjudications, as list_decision_labels), for analysis.parity.parity_table:
    task, item (the candidate id), reviewer, label (the accepted or corrected value's JSON text, or "<rejected>")
    and proposal (the candidate's value: an accept's label is exactly it). Only one task when ``task`` is given."""
    return conn.cursor().execute("""
        SELECT dl.task, dl.candidate_id AS item, dl.reviewer, dl.label_key AS label, dl.proposed_value AS proposal
        FROM decision_labels dl JOIN candidates c USING (candidate_id)
        WHERE c.dataset = ? AND dl.role IN ('review', 'audit') AND (?::VARCHAR IS NULL OR dl.task = ?)
        ORDER BY dl.task, dl.candidate_id, dl.reviewer
    """, [dataset, task, task]).df()
