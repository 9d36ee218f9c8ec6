"""SQL for model jobs (tables jobs and job_events, migration m005): small typed functions taking the
connection first, like app/store.py. A job's life is appended as events; nothing is updated."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")


def insert_job(conn: duckdb.DuckDBPyConnection, *, family: str, action: str, dataset: str, config: dict,
               started_by: str | None) -> int:
    """A new job, queued. Returns its id."""
    cur = conn.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")
        job_id = cur.execute("""
            INSERT INTO jobs (family, action, dataset, config, started_by) VALUES (?, ?, ?, ?, ?) RETURNING job_id
        """, [family, action, dataset, json.dumps(config, sort_keys=True), started_by]).fetchone()[0]
        cur.execute("INSERT INTO job_events (job_id, status) VALUES (?, 'queued')", [job_id])
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        cur.close()
    return int(job_id)


def insert_job_event(conn: duckdb.DuckDBPyConnection, job_id: int, status: str, *, message: str | None = None,
                     result: dict | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    conn.cursor().execute("INSERT INTO job_events (job_id, status, message, result) VALUES (?, ?, ?, ?)",
                          [job_id, status, message, None if result is None else json.dumps(result, default=str)])


def mark_interrupted(conn: duckdb.DuckDBPyConnection) -> int:
    """Jobs left queued or running by a server that stopped: marked interrupted (at start-up). Returns how many."""
    rows = conn.cursor().execute("SELECT job_id FROM job_status WHERE status IN ('queued', 'running')").fetchall()
    for (job_id,) in rows:
        insert_job_event(conn, job_id, "interrupted", message="the server stopped before this job finished")
    return len(rows)


def get_job(conn: duckdb.DuckDBPyConnection, job_id: int) -> dict | None:
    cur = conn.cursor()
    cur.execute("SELECT * FROM job_status WHERE job_id = ?", [job_id])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def list_jobs(conn: duckdb.DuckDBPyConnection, *, family: str | None = None, dataset: str | None = None,
              limit: int = 100) -> pd.DataFrame:
    """Jobs, newest first, with their current status, message and result."""
    return conn.cursor().execute("""
        SELECT job_id, family, action, dataset, status, started_by, created_at, status_at, message, result, config
        FROM job_status WHERE (? IS NULL OR family = ?) AND (? IS NULL OR dataset = ?)
        ORDER BY job_id DESC LIMIT ?
    """, [family, family, dataset, dataset, limit]).df()


def get_latest_checkpoint(conn: duckdb.DuckDBPyConnection, family: str, dataset: str) -> str | None:
    """The checkpoint of the newest finished training job of a family on a dataset, if any."""
    row = conn.cursor().execute("""
        SELECT json_extract_string(result, '$.checkpoint') FROM job_status
        WHERE family = ? AND dataset = ? AND action = 'train' AND status = 'done'
        ORDER BY job_id DESC LIMIT 1
    """, [family, dataset]).fetchone()
    return None if row is None else row[0]


def list_latest_checkpoints(conn: duckdb.DuckDBPyConnection, family: str) -> list[tuple[str, int, str]]:
    """(dataset, job id, checkpoint) of a family's newest finished training job on each dataset, newest first."""
    return [(d, int(j), c) for d, j, c in conn.cursor().execute("""
        SELECT dataset, max(job_id) AS job_id, arg_max(json_extract_string(result, '$.checkpoint'), job_id)
        FROM job_status WHERE family = ? AND action = 'train' AND status = 'done'
        GROUP BY dataset ORDER BY job_id DESC
    """, [family]).fetchall()]


def get_run_for_checkpoint(conn: duckdb.DuckDBPyConnection, checkpoint: str | None) -> int:
    """The newest model run whose candidates came from this checkpoint (an evaluation belongs to a run)."""
    from pathlib import Path

    run_id = conn.cursor().execute("""
        SELECT max(run_id) FROM model_runs WHERE json_extract_string(parameters, '$.checkpoint') = ?
    """, [str(Path(checkpoint).resolve()) if checkpoint else None]).fetchone()[0]
    if run_id is None:
        raise ValueError("this checkpoint has not scored the dataset yet: score first, then evaluate")
    return int(run_id)
