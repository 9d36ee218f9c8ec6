"""Candidates (pseudo-labels proposed by a model run or a log source) and their probability vectors: the
import, which creates the model runs, and the reads of one candidate, of the runs, tasks and counts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from analysis.candidates import DISTRIBUTIONS_CHECKED, check_distribution, checked_mark
from app.store.connection import _CONFLICT_LIMIT, IngestConflictError, transaction

# How many candidates without a target a refused import lists before "... and more".
_MISSING_LIMIT = 50
# Scoring the same model run again can change scores and probabilities in their last bits (another batch
# layout or thread count, the Ray engine's workers, a faster exact path such as failure points' [CLS]-row-only
# last layer): a proposal within this of the stored one, label by label, is the same proposal, not a conflict.
ROUNDING = 1e-6


@dataclass(frozen=True)
class CandidateImportResult:
    rows_read: int
    rows_added: int
    rows_already_present: int
    distributions_added: int = 0  # probability vectors stored, for new candidates or ones stored without


def _checked_distributions(candidates: pa.Table) -> pa.Table:
    """candidates with a `distribution` column of canonical JSON (null where a row has none), each checked
    against its row's value and score; tables made before the column existed get an all-null one. Raises
    ValueError naming the first bad row: file imports were checked already, so this guards the producers
    in code (a vector that contradicts its candidate would mislead a reviewer)."""
    if "distribution" not in candidates.column_names:
        return candidates.append_column("distribution", pa.nulls(candidates.num_rows, pa.string()))
    mark = (candidates.schema.metadata or {}).get(DISTRIBUTIONS_CHECKED)
    if mark and mark == checked_mark(candidates):
        return candidates  # its producer checked the numbers it built them from (analysis.candidates)
    column = candidates.column("distribution")
    if column.null_count == candidates.num_rows:
        return candidates
    values, scores = candidates.column("value").to_pylist(), candidates.column("score").to_pylist()
    checked = []
    for i, text in enumerate(column.to_pylist()):
        if text is None:
            checked.append(None)
            continue
        try:
            checked.append(check_distribution(json.loads(text), value=json.loads(values[i]), score=scores[i]))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise ValueError(f"candidate row {i} ({candidates.column('task')[i].as_py()} for target "
                             f"{candidates.column('target_key')[i].as_py()}): distribution: {exc}") from exc
    return candidates.set_column(candidates.column_names.index("distribution"), "distribution",
                                 pa.array(checked, pa.string()))


def insert_candidates(conn: duckdb.DuckDBPyConnection, candidates: pa.Table) -> CandidateImportResult:
    """Append candidates (``analysis.candidates.CANDIDATE_SCHEMA``) atomically, creating their model runs
    and storing each one's probability vector (the optional ``distribution`` column) in the same transaction.

    Every target must exist among the stored turns. A proposal already stored (same run, task and target)
    with the same value, score and distribution (up to ROUNDING in the numbers) is skipped, the stored one
    kept; with a different one, the call fails. Either
    failure raises IngestConflictError and writes nothing. A missing vector is not a difference: one stored
    before vectors were kept gets its vector now (a new row, nothing updated); an import without vectors
    changes nothing stored. A vector that contradicts its own row raises ValueError (check_distribution).
    """
    candidates = _checked_distributions(candidates)
    cur = conn.cursor()
    try:
        with transaction(cur):
            return _insert_candidates(cur, candidates)
    finally:
        cur.close()


def _insert_candidates(cur: duckdb.DuckDBPyConnection, candidates: pa.Table) -> CandidateImportResult:
    """insert_candidates' work inside the caller's transaction (candidates already checked)."""
    cur.register("incoming_c", candidates)
    try:
        # Every turn a target can name lies in this range of dialogue ids. Saying so lets each subquery below read
        # only the row groups of turns whose ids overlap it (zone maps; a scored batch is a run of whole
        # dialogues) instead of hashing every stored turn per batch: 10 of a million-turn scoring's 20 s of
        # imports went there.
        ids = cur.execute("""
            SELECT min(least(dialogue_id, coalesce(other_dialogue_id, dialogue_id))),
                   max(greatest(dialogue_id, coalesce(other_dialogue_id, dialogue_id))) FROM incoming_c
        """).fetchone()
        missing = cur.execute("""
            SELECT i.task, i.dialogue_id, i.turn_index FROM incoming_c i
            WHERE (i.turn_index IS NULL AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.dialogue_id BETWEEN $1 AND $2
                    AND t.dialogue_id = i.dialogue_id))
               OR (i.turn_index IS NOT NULL AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.dialogue_id BETWEEN $1 AND $2
                    AND t.dialogue_id = i.dialogue_id AND t.turn_index = i.turn_index))
               OR (i.other_dialogue_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM turns t
                    WHERE t.dialogue_id BETWEEN $1 AND $2
                    AND t.dialogue_id = i.other_dialogue_id AND t.turn_index = i.other_turn_index))
            ORDER BY 2, 3 LIMIT $3
        """, [*ids, _MISSING_LIMIT + 1]).fetchall()
        if missing:
            problems = [f"{task} candidate for {'dialogue' if ti is None else f'turn {ti} of dialogue'} {did!r}: "
                        "no such target among the stored turns (ingest the logs first)"
                        for task, did, ti in missing[:_MISSING_LIMIT]]
            if len(missing) > _MISSING_LIMIT:
                problems.append("... and more candidates without a target")
            raise IngestConflictError(problems)
        cur.execute("""
            INSERT INTO model_runs (name, version, parameters, run_at)
            SELECT model_name, model_version, model_parameters, min(run_at)
            FROM incoming_c GROUP BY ALL
            ON CONFLICT DO NOTHING
        """)
        cur.execute("""
            CREATE OR REPLACE TEMP TABLE staged_c AS
            SELECT r.run_id, i.* EXCLUDE (model_name, model_version, model_parameters, run_at)
            FROM incoming_c i JOIN model_runs r
              ON r.name = i.model_name AND r.version = i.model_version AND r.parameters = i.model_parameters
        """)
        conflicts = cur.execute("""
            SELECT s.task, s.target_key FROM staged_c s JOIN candidates c USING (run_id, task, target_key)
            WHERE s.value <> c.value OR abs(s.score - c.score) > ? LIMIT ?
        """, [ROUNDING, _CONFLICT_LIMIT]).fetchall()
        if not conflicts:
            conflicts = _vectors_beyond_rounding(cur)
        if conflicts:
            raise IngestConflictError([f"{task} candidate for target {key} is already stored from the same "
                                       "model run with another value, score or distribution"
                                       for task, key in conflicts])
        present = cur.execute(
            "SELECT count(*) FROM staged_c SEMI JOIN candidates USING (run_id, task, target_key)").fetchone()[0]
        # The domain and dataset of the target's (first) turn, kept on the candidate for fast filtering.
        # (A target key is made of its dialogue ids, so stored candidates with the same key lie in the range too.)
        cur.execute("""
            INSERT INTO candidates (run_id, task, target_kind, dialogue_id, turn_index, other_dialogue_id,
                                    other_turn_index, target_key, value, score, dataset, domain)
            SELECT s.run_id, s.task, s.target_kind, s.dialogue_id, s.turn_index, s.other_dialogue_id,
                   s.other_turn_index, s.target_key, s.value, s.score, t.dataset, t.nlu_domain
            FROM staged_c s
            JOIN (SELECT * FROM turns WHERE dialogue_id BETWEEN $1 AND $2) t
              ON t.dialogue_id = s.dialogue_id AND t.turn_index = coalesce(s.turn_index, (
                SELECT min(t2.turn_index) FROM turns t2 WHERE t2.dialogue_id BETWEEN $1 AND $2
                AND t2.dialogue_id = s.dialogue_id))
            ANTI JOIN (SELECT run_id, task, target_key FROM candidates WHERE dialogue_id BETWEEN $1 AND $2) c
              USING (run_id, task, target_key)
            ORDER BY s.dialogue_id, s.turn_index, s.task
        """, ids)
        # The queue's disagreement order reads each target's number of distinct proposed values (migration 12):
        # recounted for the targets this import touched.
        cur.execute("""
            INSERT OR REPLACE INTO target_state
            SELECT dataset, task, target_key, count(DISTINCT value) FROM candidates
            SEMI JOIN (SELECT DISTINCT task, target_key FROM staged_c) USING (task, target_key)
            GROUP BY ALL
        """)
        # The vectors of the candidates just added, and of stored ones that had none.
        distributions = cur.execute("""
            INSERT INTO candidate_distributions (candidate_id, distribution)
            SELECT c.candidate_id, s.distribution
            FROM staged_c s JOIN candidates c USING (run_id, task, target_key)
            ANTI JOIN candidate_distributions d ON d.candidate_id = c.candidate_id
            WHERE s.distribution IS NOT NULL
            ORDER BY c.candidate_id
        """).fetchone()[0]
        cur.execute("DROP TABLE staged_c")
        return CandidateImportResult(candidates.num_rows, candidates.num_rows - present, present,
                                     distributions)
    finally:
        cur.unregister("incoming_c")


def _vectors_beyond_rounding(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(task, target_key) of staged candidates whose stored twin (same run, task and target) has a probability
    vector that differs from theirs by more than ROUNDING in some label, or has other labels (at most
    _CONFLICT_LIMIT). Compared in Python: only the vectors whose JSON text differs are read, which are none
    unless the same run is scored again."""
    differing = cur.execute("""
        SELECT s.task, s.target_key, s.distribution, d.distribution
        FROM staged_c s JOIN candidates c USING (run_id, task, target_key)
        JOIN candidate_distributions d ON d.candidate_id = c.candidate_id
        WHERE s.distribution <> d.distribution
    """).fetchall()
    out = []
    for task, key, new, stored in differing:
        a, b = json.loads(new), json.loads(stored)
        if a.keys() != b.keys() or any(abs(a[label] - b[label]) > ROUNDING for label in a):
            out.append((task, key))
            if len(out) == _CONFLICT_LIMIT:
                break
    return out


def get_candidate_distribution(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> dict[str, float] | None:
    """A candidate's full probability vector, label -> probability, most likely first (ties by label);
    None when its model stored none."""
    row = conn.cursor().execute("SELECT distribution FROM candidate_distributions WHERE candidate_id = ?",
                                [candidate_id]).fetchone()
    if row is None:
        return None
    return dict(sorted(json.loads(row[0]).items(), key=lambda kv: (-kv[1], kv[0])))


def list_model_runs(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT run_id, name, version, parameters, run_at, created_at FROM model_runs ORDER BY run_id
    """).df()


def list_tasks(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT task FROM candidates WHERE dataset = ? ORDER BY 1", [dataset]).fetchall()]


def count_candidates(conn: duckdb.DuckDBPyConnection, dataset: str | None = None) -> int:
    if dataset is None:
        return conn.cursor().execute("SELECT count(*) FROM candidates").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM candidates WHERE dataset = ?", [dataset]).fetchone()[0]


def get_candidate(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> dict | None:
    cur = conn.cursor()
    cur.execute("""
        SELECT c.*, r.name AS model_name, r.version AS model_version, r.parameters AS model_parameters
        FROM candidates c JOIN model_runs r USING (run_id) WHERE c.candidate_id = ?
    """, [candidate_id])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def list_proposals(conn: duckdb.DuckDBPyConnection, task: str, target: str, dialogue_id: str) -> pd.DataFrame:
    """Every source's proposal for one task and target, side by side, best score first.

    dialogue_id is implied by target but filtering on it too lets DuckDB skip row groups by their min/max
    (candidates are stored in dialogue order): a point lookup instead of a scan at a million candidates."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, r.name AS model, r.version, c.value, c.score
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dialogue_id = ? AND c.task = ? AND c.target_key = ? ORDER BY c.score DESC, c.candidate_id
    """, [dialogue_id, task, target]).df()


def list_known_values(conn: duckdb.DuckDBPyConnection, dataset: str, task: str) -> list[str]:
    """Values proposed for a task (canonical JSON), for correction menus."""
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT value FROM candidates WHERE dataset = ? AND task = ? ORDER BY 1", [dataset, task]).fetchall()]


def list_candidate_targets(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """Every candidate of a dataset with its target: candidate_id, task, value (canonical JSON), score,
    dialogue_id, turn_index (null for a dialogue target), by candidate id (what simulated reviewers decide)."""
    return conn.cursor().sql("""
        SELECT candidate_id, task, value, score, dialogue_id, turn_index FROM candidates WHERE dataset = ?
        ORDER BY candidate_id
    """, params=[dataset]).to_arrow_table()


def get_turn_texts(conn: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """{(dialogue_id, turn_index): asr_text} for those of keys that are stored turns: what the interop adapters
    (analysis/interop) check another tool's items against (the turn exists; its text is the one the item's
    span offsets count)."""
    if not keys:
        return {}
    wanted = pa.table({"dialogue_id": [k[0] for k in keys], "turn_index": pa.array([k[1] for k in keys],
                                                                                     pa.int64())})
    cur = conn.cursor()
    cur.register("wanted_turns", wanted)
    try:
        rows = cur.execute("""
            SELECT t.dialogue_id, t.turn_index, t.asr_text FROM turns t
            SEMI JOIN wanted_turns w ON w.dialogue_id = t.dialogue_id AND w.turn_index = t.turn_index
        """).fetchall()
    finally:
        cur.unregister("wanted_turns")
        cur.close()
    return {(did, ti): text for did, ti, text in rows}
