"""The SQL of the rescoring family: each turn's n-best hypotheses with their first-pass scores (m008's
asr_hypotheses), the rescorer's runs on a dataset, its ``transcript`` candidates with their settled decisions, and
the transcripts reviewers settled. The conventions of app/store: the connection first, every value a parameter."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pandas as pd

from app.store import sql
from app.store.streaming import iter_dialogue_pages

RESCORER = "nlu-rescorer"  # the model runs of `turnlens score rescoring` (app.jobs.rescoring.MODEL_NAME)


def list_nbest_turns(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_reference: bool = False) -> list[dict]:
    """Every turn of a dataset that has an n-best list, in (dialogue_id, turn_index) order, as dicts: dialogue_id,
    turn_index, speaker_id, asr_text, asr_hypotheses (a list of {text, score, confidence}; score NULL where the log
    carried none) and, with_reference, reference_text and the gold intent (evaluation only; scoring never reads
    them)."""
    cur = conn.cursor()
    cur.execute("""
        SELECT dialogue_id, turn_index, speaker_id, asr_text, asr_hypotheses,
               CASE WHEN ? THEN reference_text END AS reference_text,
               CASE WHEN ? THEN gold_intent END AS gold_intent
        FROM turns
        WHERE dataset = ? AND asr_hypotheses IS NOT NULL AND len(asr_hypotheses) > 0
        ORDER BY dialogue_id, turn_index
    """, [with_reference, with_reference, dataset])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if not with_reference:
        for r in rows:
            del r["reference_text"], r["gold_intent"]
    return rows


def count_nbest_turns(conn: duckdb.DuckDBPyConnection, dataset: str) -> tuple[int, int]:
    """(turns with an n-best list, those whose every hypothesis has a first-pass score)."""
    cur = conn.cursor()
    try:
        lists, scored = cur.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE {sql.NBEST_SCORED}) FROM turns
            WHERE dataset = ? AND {sql.NBEST_HAS_LIST}
        """, [dataset]).fetchone()
    finally:
        cur.close()
    return int(lists), int(scored)


def iter_scored_nbest_turns(conn: duckdb.DuckDBPyConnection, dataset: str, *, batch_dialogues: int
                            ) -> Iterator[list[dict]]:
    """The turns of list_nbest_turns (no reference fields) whose every hypothesis has a first-pass score, in the
    same order, the turns of at most batch_dialogues dialogues at a time (streaming.iter_dialogue_pages)."""
    return iter_dialogue_pages(conn, dataset, columns=sql.NBEST_COLUMNS, where=sql.NBEST_SCORED_WHERE,
                               batch_dialogues=batch_dialogues)


def list_rescoring_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Rescorer runs with transcript candidates on this dataset, newest first: run_id, run_number (from 1 within
    the dataset), name, version, parameters and their candidate count."""
    return conn.cursor().execute("""
        SELECT r.run_id, row_number() OVER (ORDER BY r.run_id) AS run_number, r.name, r.version, r.parameters,
               count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? AND c.task = 'transcript'
        GROUP BY r.run_id, r.name, r.version, r.parameters
        ORDER BY r.run_id DESC
    """, [dataset, RESCORER]).df()


def list_transcript_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> pd.DataFrame:
    """Every transcript candidate of one run: candidate_id, dialogue_id, turn_index, logged (the turn's asr_text),
    value (its JSON text), score, verdict and label (the settled decision and its label JSON, None while
    undecided); largest score first."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, t.asr_text AS logged, c.value, c.score,
               CASE WHEN rl.status IN ('agreed', 'adjudicated') THEN rl.verdict END AS verdict,
               CASE WHEN rl.status IN ('agreed', 'adjudicated') THEN rl.label END AS label
        FROM candidates c JOIN turns t
             ON t.dataset = c.dataset AND t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'transcript'
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index
    """, [dataset, run_id]).df()


def list_reviewed_transcripts(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """The transcripts reviewers settled (accepted or corrected, agreed or adjudicated) with the turn they belong to:
    dialogue_id, turn_index, speaker_id, asr_text (the logged 1-best), reference_text (the log's, if any), label
    (the settled value's JSON) and verdict; one row per turn (the latest settled candidate wins)."""
    return conn.cursor().execute("""
        SELECT dialogue_id, turn_index, speaker_id, asr_text, reference_text, label, verdict
        FROM (
            SELECT c.dialogue_id, c.turn_index, t.speaker_id, t.asr_text, t.reference_text, rl.label, rl.verdict,
                   row_number() OVER (PARTITION BY c.dialogue_id, c.turn_index ORDER BY c.candidate_id DESC) AS k
            FROM resolved_labels rl JOIN candidates c USING (candidate_id)
                 JOIN turns t ON t.dataset = c.dataset AND t.dialogue_id = c.dialogue_id
                             AND t.turn_index = c.turn_index
            WHERE c.dataset = ? AND c.task = 'transcript' AND c.target_kind = 'turn'
              AND rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('accept', 'correct')
        ) WHERE k = 1
        ORDER BY dialogue_id, turn_index
    """, [dataset]).df()


def list_rescored_datasets(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The datasets with transcript candidates of the rescorer, by name (a page on another dataset points there)."""
    return [r[0] for r in conn.cursor().execute("""
        SELECT DISTINCT c.dataset FROM candidates c JOIN model_runs r USING (run_id)
        WHERE r.name = ? AND c.task = 'transcript' ORDER BY c.dataset
    """, [RESCORER]).fetchall()]
