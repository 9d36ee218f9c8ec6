"""The SQL of stored results: evaluations (table ``evaluations``, m005), one row per evaluation of a model run,
and analyses (table ``analyses``, m006), one row per run of an analysis family (disparity).

The conventions of app/store.py: functions take the connection first, every value is a parameter, writes run
inside ``store.transaction``, and the table is append-only (a new evaluation of a run is a new row; the
latest one is what the pages show). Columns: ``metrics`` holds ``{"n_items": int, "metrics": {name:
{"value", "low", "high"}}}`` (undefined numbers as null), ``config`` the evaluation's configuration, both as
strict JSON text.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from analysis.evaluation import Evaluation, Metric
from app.store import transaction


def insert_evaluation(conn: duckdb.DuckDBPyConnection, run_id: int, dataset: str, evaluation: Evaluation) -> int:
    """Store an evaluation of model run ``run_id`` measured on ``dataset``; returns its evaluation_id.
    ValueError when the run does not exist."""
    metrics = json.dumps({"n_items": int(evaluation.n_items), "metrics": evaluation.metrics_dict()}, allow_nan=False)
    config = json.dumps(evaluation.config, allow_nan=False, default=str)
    cur = conn.cursor()
    try:
        with transaction(cur):
            if cur.execute("SELECT 1 FROM model_runs WHERE run_id = ?", [run_id]).fetchone() is None:
                raise ValueError(f"there is no model run #{run_id} to attach the evaluation to")
            (evaluation_id,) = cur.execute("""
                INSERT INTO evaluations (run_id, family, dataset, kind, metrics, config, data_fingerprint, markdown)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING evaluation_id
            """, [run_id, evaluation.family, dataset, evaluation.kind, metrics, config, evaluation.data_fingerprint,
                  evaluation.markdown]).fetchone()
    finally:
        cur.close()
    return int(evaluation_id)


def list_evaluations(conn: duckdb.DuckDBPyConnection, *, dataset: str | None = None,
                     family: str | None = None) -> pd.DataFrame:
    """Stored evaluations, newest first, optionally of one dataset and / or family: evaluation_id, run_id,
    run_name, run_version (from model_runs), family, dataset, kind, metrics, config (JSON texts),
    data_fingerprint, markdown, created_at."""
    # NULL filters match everything: one statement, every value a parameter
    return conn.cursor().execute("""
        SELECT e.evaluation_id, e.run_id, r.name AS run_name, r.version AS run_version, e.family, e.dataset,
               e.kind, e.metrics, e.config, e.data_fingerprint, e.markdown, e.created_at
        FROM evaluations e JOIN model_runs r USING (run_id)
        WHERE (?::VARCHAR IS NULL OR e.dataset = ?) AND (?::VARCHAR IS NULL OR e.family = ?)
        ORDER BY e.created_at DESC, e.evaluation_id DESC
    """, [dataset, dataset, family, family]).df()


def get_latest_evaluation(conn: duckdb.DuckDBPyConnection, run_id: int) -> Evaluation | None:
    """The newest stored evaluation of a model run, or None when it has none."""
    row = conn.cursor().execute("""
        SELECT family, kind, metrics, config, data_fingerprint, markdown FROM evaluations WHERE run_id = ?
        ORDER BY created_at DESC, evaluation_id DESC LIMIT 1
    """, [run_id]).fetchone()
    if row is None:
        return None
    family, kind, metrics, config, fingerprint, markdown = row
    stored = json.loads(metrics)
    return Evaluation(family=family, kind=kind, metrics={k: Metric.from_dict(v) for k, v in stored["metrics"].items()},
                      markdown=markdown, data_fingerprint=fingerprint, config=json.loads(config),
                      n_items=int(stored.get("n_items") or 0))


# ------------------------------------------------------------------------- analyses (m006)


def insert_analysis(conn: duckdb.DuckDBPyConnection, *, family: str, dataset: str, options: dict,
                    data_fingerprint: str, summary: dict, markdown: str, job_id: int | None = None) -> int:
    """Store the result of an analysis family's job (options and summary as strict JSON); its analysis_id."""
    cur = conn.cursor()
    try:
        with transaction(cur):
            (analysis_id,) = cur.execute("""
                INSERT INTO analyses (family, dataset, options, data_fingerprint, summary, markdown, job_id)
                VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING analysis_id
            """, [family, dataset, json.dumps(options, allow_nan=False, default=str), data_fingerprint,
                  json.dumps(summary, allow_nan=False), markdown, job_id]).fetchone()
    finally:
        cur.close()
    return int(analysis_id)


def list_analyses(conn: duckdb.DuckDBPyConnection, *, dataset: str | None = None,
                  family: str | None = None) -> pd.DataFrame:
    """Stored analyses, newest first: analysis_id, family, dataset, options, data_fingerprint, markdown,
    job_id, created_at (the summary is left out: get_latest_analysis reads it)."""
    return conn.cursor().execute("""
        SELECT analysis_id, family, dataset, options, data_fingerprint, markdown, job_id, created_at
        FROM analyses
        WHERE (?::VARCHAR IS NULL OR dataset = ?) AND (?::VARCHAR IS NULL OR family = ?)
        ORDER BY created_at DESC, analysis_id DESC
    """, [dataset, dataset, family, family]).df()


def get_latest_analysis(conn: duckdb.DuckDBPyConnection, family: str, dataset: str) -> dict | None:
    """The newest stored analysis of a dataset by a family: {analysis_id, options, data_fingerprint, summary,
    markdown, created_at} with options and summary parsed, or None."""
    row = conn.cursor().execute("""
        SELECT analysis_id, options, data_fingerprint, summary, markdown, created_at FROM analyses
        WHERE family = ? AND dataset = ? ORDER BY created_at DESC, analysis_id DESC LIMIT 1
    """, [family, dataset]).fetchone()
    if row is None:
        return None
    analysis_id, options, fingerprint, summary, markdown, created_at = row
    return {"analysis_id": int(analysis_id), "options": json.loads(options), "data_fingerprint": fingerprint,
            "summary": json.loads(summary), "markdown": markdown, "created_at": created_at}
