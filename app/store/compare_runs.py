"""The SQL of the Compare runs page: model runs with turn candidates of a task on a dataset, and two runs' proposals
for the same turns beside their settled review decisions, the turn's slices and the log's gold label. The
conventions of app/store: the connection first, every value a parameter."""

from __future__ import annotations

import duckdb
import pandas as pd

from app.store.sql import LABEL_GOLD


def list_run_tasks(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """One row per (model run, task) with turn candidates on this dataset: run_id, run_number (from 1 within the
    dataset, in run_id order), name, version, task, candidates; newest run first, then task."""
    return conn.cursor().execute("""
        WITH runs AS (
            SELECT run_id, row_number() OVER (ORDER BY run_id) AS run_number
            FROM (SELECT DISTINCT run_id FROM candidates WHERE dataset = ?)
        )
        SELECT c.run_id, runs.run_number, r.name, r.version, c.task, count(*) AS candidates
        FROM candidates c JOIN runs USING (run_id) JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND c.target_kind = 'turn'
        GROUP BY ALL ORDER BY c.run_id DESC, c.task
    """, [dataset, dataset]).df()


def list_run_pair(conn: duckdb.DuckDBPyConnection, dataset: str, task: str, run_a: int, run_b: int) -> pd.DataFrame:
    """The turns both runs proposed a ``task`` value for, in turn order: dialogue_id, turn_index, request (the
    turn's asr_text), the slices nlu_domain, device_type, locale; value_a, value_b (JSON texts); verdict_a,
    label_a, reviewers_a (and _b): each run's candidate's settled decision (agreed or adjudicated; None while
    undecided or in conflict), the accepted or corrected value's JSON text and who decided; gold: the log's gold
    label for the task as JSON text (None where the log has none, or the task has no gold field)."""
    # the gold expression comes from the fixed LABEL_GOLD table (sql); every value is a parameter
    gold = LABEL_GOLD.get(task, "NULL")
    return conn.cursor().execute(f"""
        WITH settled AS (
            SELECT candidate_id, verdict, label, reviewers FROM resolved_labels
            WHERE status IN ('agreed', 'adjudicated')
        )
        SELECT a.dialogue_id, a.turn_index, t.asr_text AS request, t.nlu_domain, t.device_type, t.locale,
               a.value AS value_a, b.value AS value_b,
               sa.verdict AS verdict_a, sa.label AS label_a, sa.reviewers AS reviewers_a,
               sb.verdict AS verdict_b, sb.label AS label_b, sb.reviewers AS reviewers_b,
               {gold}::VARCHAR AS gold
        FROM candidates a
        JOIN candidates b ON b.dataset = a.dataset AND b.task = a.task AND b.target_key = a.target_key
                         AND b.run_id = ? AND b.target_kind = 'turn'
        JOIN turns t ON t.dialogue_id = a.dialogue_id AND t.turn_index = a.turn_index
        LEFT JOIN settled sa ON sa.candidate_id = a.candidate_id
        LEFT JOIN settled sb ON sb.candidate_id = b.candidate_id
        WHERE a.dataset = ? AND a.task = ? AND a.run_id = ? AND a.target_kind = 'turn'
        ORDER BY a.dialogue_id, a.turn_index
    """, [run_b, dataset, task, run_a]).df()
