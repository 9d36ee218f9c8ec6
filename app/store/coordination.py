"""The SQL of the coordination chunker's page: its model runs on a dataset and their ``items`` candidates with the
turn's recognised text. The conventions of app/store: the connection first, every value a parameter."""

from __future__ import annotations

import duckdb
import pandas as pd

CHUNKER = "coordination-chunker"  # the model runs of `turnlens score coordination` (app.jobs.coordination.MODEL_NAME)


def list_coordination_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Chunker runs with items candidates on this dataset, newest first: run_id, run_number (from 1 within the
    dataset), name, version, parameters and their candidate count."""
    return conn.cursor().execute("""
        SELECT r.run_id, row_number() OVER (ORDER BY r.run_id) AS run_number, r.name, r.version, r.parameters,
               count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? AND c.task = 'items'
        GROUP BY r.run_id, r.name, r.version, r.parameters
        ORDER BY r.run_id DESC
    """, [dataset, CHUNKER]).df()


def list_item_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> pd.DataFrame:
    """Every items candidate of one run: candidate_id, dialogue_id, turn_index, request (the turn's asr_text),
    value (its JSON text), score and verdict (the settled decision, None while undecided); most confident first."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, t.asr_text AS request, c.value, c.score,
               CASE WHEN rl.status IN ('agreed', 'adjudicated') THEN rl.verdict END AS verdict
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'items'
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index
    """, [dataset, run_id]).df()
