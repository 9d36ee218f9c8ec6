"""What each model family produced, read for its page and its jobs: failure points, generated labels, skill
routing and query rewrites (whose mining runs are stored here too), and the logged NLU output the
logged-NLU label source reads."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from app.store import sql
from app.store.candidates import _checked_distributions, _insert_candidates
from app.store.connection import IngestConflictError, transaction
from app.store.sql import FAILURE_GROUPS, LABEL_GOLD


def list_nlu_outputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """The logged NLU output of every turn of a dataset (the input of the logged-NLU label source)."""
    # sql.NLU_COLUMNS: a fixed column list
    return conn.cursor().sql(f"SELECT {sql.NLU_COLUMNS} FROM turns WHERE dataset = ? "
                             "ORDER BY dialogue_id, turn_index", params=[dataset]).to_arrow_table()


# ------------------------------------------------------------------------------- failure points


def list_failure_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Model runs that proposed failure points for turns of this dataset, newest first; run_number counts them
    from 1 within the dataset (run_id is global to the database)."""
    return conn.cursor().execute("""
        SELECT r.run_id, row_number() OVER (ORDER BY r.run_id) AS run_number, r.name, r.version, r.parameters,
               count(*) AS turns
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND c.task = 'failure_point' AND c.target_kind = 'turn'
        GROUP BY r.run_id, r.name, r.version, r.parameters
        ORDER BY r.run_id DESC
    """, [dataset]).df()


def list_failure_shares(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, by: str) -> pd.DataFrame:
    """Turns per (group, predicted failure point) for one run; by is one of FAILURE_GROUPS."""
    if by not in FAILURE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(FAILURE_GROUPS)}")
    # the group expression comes from the fixed FAILURE_GROUPS table (sql); values are parameters
    return conn.cursor().execute(f"""
        SELECT coalesce({FAILURE_GROUPS[by]}, '(none)') AS grp, json_extract_string(c.value, '$') AS label,
               count(*) AS turns
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point' AND c.target_kind = 'turn'
        GROUP BY ALL ORDER BY 1, 2
    """, [dataset, run_id]).df()


def list_failure_vs_gold(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> pd.DataFrame:
    """Turns per (gold failure point, predicted one) where the log has a gold label."""
    return conn.cursor().execute("""
        SELECT t.gold_failure_point AS gold, json_extract_string(c.value, '$') AS predicted, count(*) AS turns
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point' AND t.gold_failure_point IS NOT NULL
        GROUP BY ALL ORDER BY 1, 2
    """, [dataset, run_id]).df()


def list_failure_turns(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, label: str, *,
                       by: str | None = None, group: str | None = None, gold: str | None = None,
                       limit: int = 100) -> pd.DataFrame:
    """The turns behind one bar or cell: predicted label (optionally within one group, optionally with one
    gold label, '(none)' for turns without one), most confident first."""
    if by is not None and by not in FAILURE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(FAILURE_GROUPS)}")
    # fixed fragments from sql.failure_turn_filter (by is checked above); group and gold are parameters
    query = f"""
        SELECT c.dialogue_id, c.turn_index, c.score, t.asr_text, t.response_text, t.nlu_intent,
               t.gold_failure_point AS gold, c.candidate_id
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'failure_point'
          AND json_extract_string(c.value, '$') = ?{sql.failure_turn_filter(by, gold is not None)}
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index LIMIT ?
    """
    params = [dataset, run_id, label] + ([group] if by else []) + ([gold] if gold is not None else []) + [limit]
    return conn.cursor().execute(query, params).df()


# ---------------------------------------------------------------------------- label generation

LABEL_MODEL = "label-model"  # the model runs of `turnlens score labels` (app.jobs.labels.MODEL_NAME)


def list_label_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Label-model runs that proposed candidates for this dataset, newest first, with their candidate count;
    run_number counts them from 1 within the dataset."""
    return conn.cursor().execute("""
        SELECT r.run_id, row_number() OVER (ORDER BY r.run_id) AS run_number, r.name, r.version, r.parameters,
               count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? GROUP BY r.run_id, r.name, r.version, r.parameters
        ORDER BY r.run_id DESC
    """, [dataset, LABEL_MODEL]).df()


def list_label_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, task: str) -> pd.DataFrame:
    """Every turn candidate of one run and task: candidate_id, dialogue_id, turn_index, value (its JSON text),
    score and gold (the log's gold label for the task as JSON text, None where the log has none; see
    LABEL_GOLD). In turn order."""
    if task not in LABEL_GOLD:
        raise ValueError(f"task must be one of {', '.join(LABEL_GOLD)}")
    # the gold expression comes from the fixed LABEL_GOLD table (sql); values are parameters
    df = conn.cursor().execute(f"""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, c.value, c.score, {LABEL_GOLD[task]}::VARCHAR AS gold
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = ? AND c.target_kind = 'turn'
        ORDER BY c.dialogue_id, c.turn_index
    """, [dataset, run_id, task]).df()
    df["gold"] = df["gold"].astype(object).where(df["gold"].notna(), None)  # pandas reads NULL text as NaN
    return df


def list_intent_disagreements(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, *,
                              limit: int = 100) -> pd.DataFrame:
    """Turns whose intent candidate from this run differs from the intent the logged NLU chose (turns without
    a logged intent are left out), most confident first: dialogue_id, turn_index, request (the ASR text),
    logged_intent, model_intent, score, gold (gold_intent, None where the log has none)."""
    return conn.cursor().execute("""
        SELECT c.dialogue_id, c.turn_index, t.asr_text AS request, t.nlu_intent AS logged_intent,
               json_extract_string(c.value, '$') AS model_intent, c.score, t.gold_intent AS gold
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'intent' AND t.nlu_intent IS NOT NULL
          AND json_extract_string(c.value, '$') <> t.nlu_intent
        ORDER BY c.score DESC, c.dialogue_id, c.turn_index LIMIT ?
    """, [dataset, run_id, limit]).df()


# ---------------------------------------------------------------------------------------- skill routing

SKILL_ROUTER = "skill-router"  # the model runs of `turnlens score skills` (app.jobs.skills.MODEL_NAME)


def list_skill_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Skill-router runs with `skill` candidates for this dataset, newest first: run_id, name, version,
    parameters (JSON text: checkpoint, p, r, ...) and their candidate count; run_number counts them from 1
    within the dataset."""
    return conn.cursor().execute("""
        SELECT r.run_id, row_number() OVER (ORDER BY r.run_id) AS run_number, r.name, r.version, r.parameters,
               count(*) AS candidates
        FROM candidates c JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND r.name = ? AND c.task = 'skill'
        GROUP BY r.run_id, r.name, r.version, r.parameters
        ORDER BY r.run_id DESC
    """, [dataset, SKILL_ROUTER]).df()


def list_skill_candidates(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int, *,
                          limit: int = 200) -> pd.DataFrame:
    """A skill run's pseudo-label candidates, most confident first: candidate_id, dialogue_id, turn_index,
    request (the ASR text), logged_skill (response_skill), proposed_skill, score, status (accepted /
    rejected / undecided, see sql.SKILL_STATUS)."""
    # sql.SKILL_STATUS is a constant
    return conn.cursor().execute(f"""
        SELECT c.candidate_id, c.dialogue_id, c.turn_index, t.asr_text AS request, t.response_skill AS logged_skill,
               json_extract_string(c.value, '$') AS proposed_skill, c.score, {sql.SKILL_STATUS} AS status
        FROM candidates c JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
        LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'skill' AND c.target_kind = 'turn'
        ORDER BY c.score DESC, c.candidate_id LIMIT ?
    """, [dataset, run_id, limit]).df()


def count_skill_review(conn: duckdb.DuckDBPyConnection, dataset: str, run_id: int) -> dict[str, int]:
    """How many skill candidates the run proposed for the dataset, and how many are accepted, rejected and
    undecided (see sql.SKILL_STATUS)."""
    # sql.SKILL_STATUS is a constant
    rows = conn.cursor().execute(f"""
        SELECT {sql.SKILL_STATUS} AS status, count(*)
        FROM candidates c LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE c.dataset = ? AND c.run_id = ? AND c.task = 'skill' GROUP BY ALL
    """, [dataset, run_id]).fetchall()
    out = {"accepted": 0, "rejected": 0, "undecided": 0} | {s: int(n) for s, n in rows}
    return {"proposed": sum(out.values())} | out


def list_gold_skills(conn: duckdb.DuckDBPyConnection, dataset: str) -> dict[tuple[str, int], list[str] | None]:
    """The log's gold_skills per turn (None where the log has none), for evaluation only."""
    rows = conn.cursor().execute("SELECT dialogue_id, turn_index, gold_skills FROM turns WHERE dataset = ?",
                                 [dataset]).fetchall()
    return {(d, int(t)): (None if g is None else list(g)) for d, t, g in rows}


# ---------------------------------------------------------------------------- query rewrites

REWRITE_MODEL = "rewrite-miner"  # the model runs of `turnlens mine rewrites` (app.jobs.rewrites.MODEL_NAME)


def list_rewrite_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, with_gold: bool) -> pa.Table:
    """A dataset's turns as Arrow columns for rewrite mining: production fields, plus, when with_gold, the
    gold fields the detector is fitted on and the replay is judged against, and reference_text (what was
    said: the replay judges whether a rewrite is a rephrase of it)."""
    columns = sql.REWRITE_INPUT_WITH_GOLD + ", reference_text" if with_gold else sql.REWRITE_INPUT
    # the column list is one of two fixed lists (sql), reference_text a fixed column name
    return conn.cursor().sql(
        f"SELECT {columns} FROM turns WHERE dataset = ? ORDER BY dialogue_id, turn_index",
        params=[dataset]).to_arrow_table()


def insert_rewrite_run(conn: duckdb.DuckDBPyConnection, *, candidates: pa.Table, run: dict, rewrites: list[dict],
                       evidence: list[dict], states: list[dict], transitions: list[dict],
                       metrics: list[dict]) -> int:
    """Store one mining run atomically: its `rewrite` candidates (one per rewrite, creating the model run),
    the run's row and its rewrites, evidence, states, transitions and metrics. Rewrites name their candidate
    by target_key. Returns the run id. A run already stored (same model, version and parameters) raises
    IngestConflictError and writes nothing."""
    candidates = _checked_distributions(candidates)
    cur = conn.cursor()
    try:
        with transaction(cur):
            names = candidates.column("model_name").to_pylist()[:1]
            if not names:
                raise ValueError("a rewrite run needs at least one candidate (no rewrites were mined)")
            key = (names[0], candidates.column("model_version")[0].as_py(),
                   candidates.column("model_parameters")[0].as_py())
            if cur.execute("SELECT 1 FROM model_runs r JOIN rewrite_runs USING (run_id) WHERE r.name = ? AND "
                           "r.version = ? AND r.parameters = ?", list(key)).fetchone():
                raise IngestConflictError(["this rewrite run (same data and parameters) is already stored"])
            _insert_candidates(cur, candidates)
            run_id = cur.execute("SELECT run_id FROM model_runs WHERE name = ? AND version = ? AND parameters = ?",
                                 list(key)).fetchone()[0]
            ids = dict(cur.execute("SELECT target_key, candidate_id FROM candidates WHERE run_id = ? AND "
                                   "task = 'rewrite'", [run_id]).fetchall())
            unnamed = [r["source"] for r in rewrites if r["target_key"] not in ids]
            if unnamed:
                raise ValueError(f"{len(unnamed)} rewrite(s) name no candidate of the run, e.g. {unnamed[0]!r}")
            cur.execute("""INSERT INTO rewrite_runs (run_id, dataset, states, evaluate_from, n_mining_turns,
                               n_eval_turns, n_rephrases, n_chains, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                        [run_id, run["dataset"], run["states"], run["evaluate_from"], run["n_mining_turns"],
                         run["n_eval_turns"], run["n_rephrases"], run["n_chains"], run["summary"]])
            _insert_rows(cur, "rewrites", [{**{k: v for k, v in r.items() if k != "target_key"},
                                            "candidate_id": ids[r["target_key"]], "run_id": run_id}
                                           for r in rewrites])
            for table, rows in (("rewrite_evidence", evidence), ("rewrite_states", states),
                                ("rewrite_transitions", transitions), ("rewrite_metrics", metrics)):
                _insert_rows(cur, table, [{**r, "run_id": run_id} for r in rows])
            return int(run_id)
    finally:
        cur.close()


def _insert_rows(cur: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    """Append dicts to one of the rewrite tables (sql.REWRITE_TABLES) through Arrow (fast for many rows)."""
    if table not in sql.REWRITE_TABLES:
        raise ValueError(f"not a rewrite table: {table}")
    if not rows:
        return
    arrow = pa.Table.from_pylist(rows)
    cur.register("incoming_rows", arrow)
    try:
        # sql.insert_rows: table checked against sql.REWRITE_TABLES, columns the keys our own code builds
        cur.execute(sql.insert_rows(table, arrow.column_names))
    finally:
        cur.unregister("incoming_rows")


def list_rewrite_runs(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Mining runs of a dataset, newest first; run_number counts them from 1 within the dataset."""
    return conn.cursor().execute("""
        SELECT w.run_id, row_number() OVER (ORDER BY w.run_id) AS run_number, r.version, r.created_at, w.states,
               w.evaluate_from, w.n_mining_turns, w.n_eval_turns,
               w.n_rephrases, w.n_chains, w.summary, (SELECT count(*) FROM rewrites x WHERE x.run_id = w.run_id)
               AS n_rewrites
        FROM rewrite_runs w JOIN model_runs r USING (run_id) WHERE w.dataset = ? ORDER BY w.run_id DESC
    """, [dataset]).df()


def list_rewrites(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    """A run's rewrites with their review status (accepted / rejected / corrected / conflict / undecided)
    and the reviewed rewrite text where someone corrected it; most support x gain first."""
    return conn.cursor().execute("""
        SELECT w.*, CASE WHEN rl.status = 'conflict' THEN 'conflict'
                         WHEN rl.verdict = 'accept' THEN 'accepted' WHEN rl.verdict = 'reject' THEN 'rejected'
                         WHEN rl.verdict = 'correct' THEN 'corrected' ELSE 'undecided' END AS status,
               json_extract_string(rl.label, '$.rewrite') AS reviewed_rewrite
        FROM rewrites w LEFT JOIN resolved_labels rl USING (candidate_id)
        WHERE w.run_id = ? ORDER BY w.source_support * w.gain DESC, w.source
    """, [run_id]).df()


def list_rewrite_evidence(conn: duckdb.DuckDBPyConnection, run_id: int, source: str) -> pd.DataFrame:
    """A rewrite's evidence sessions: the source turn and the later turn of the same chain with the target."""
    return conn.cursor().execute("""
        SELECT e.rank, e.dialogue_id, e.turn_index, s.asr_text AS source_request, e.other_dialogue_id,
               e.other_turn_index, o.asr_text AS target_request, s.timestamp
        FROM rewrite_evidence e
        JOIN turns s ON s.dialogue_id = e.dialogue_id AND s.turn_index = e.turn_index
        JOIN turns o ON o.dialogue_id = e.other_dialogue_id AND o.turn_index = e.other_turn_index
        WHERE e.run_id = ? AND e.source = ? ORDER BY e.rank
    """, [run_id, source]).df()


def list_rewrite_graph(conn: duckdb.DuckDBPyConnection, run_id: int, source: str, *, depth: int = 2) -> pd.DataFrame:
    """The transitions within ``depth`` moves of a source, with each edge's probability (its count over the
    from-state's outgoing count) and the states' support and success probability."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    return conn.cursor().execute("""
        WITH RECURSIVE reach(state, d) AS (
            SELECT ?::VARCHAR, 0
            UNION
            SELECT t.to_state, r.d + 1 FROM reach r JOIN rewrite_transitions t
              ON t.run_id = ? AND t.from_state = r.state
            WHERE r.d < ? AND t.to_state NOT IN ('<SUCCESS>', '<FAILURE>')
        ), nodes AS (SELECT state, min(d) AS d FROM reach GROUP BY state),
        out AS (SELECT from_state, sum(n) AS total FROM rewrite_transitions WHERE run_id = ? GROUP BY from_state)
        SELECT t.from_state, t.to_state, t.n, t.n / o.total AS probability, nd.d AS depth,
               fs.support AS from_support, fs.success AS from_success, ts.success AS to_success
        FROM rewrite_transitions t JOIN nodes nd ON nd.state = t.from_state
        JOIN out o ON o.from_state = t.from_state
        LEFT JOIN rewrite_states fs ON fs.run_id = t.run_id AND fs.state = t.from_state
        LEFT JOIN rewrite_states ts ON ts.run_id = t.run_id AND ts.state = t.to_state
        WHERE t.run_id = ? AND nd.d < ?
        ORDER BY nd.d, t.from_state, t.n DESC, t.to_state
    """, [source, run_id, depth, run_id, run_id, depth]).df()


def list_rewrite_metrics(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT rewriter, grouping, grp, metric, value, ci_low, ci_high FROM rewrite_metrics
        WHERE run_id = ? ORDER BY rewriter, grouping, grp, metric
    """, [run_id]).df()


def list_approved_rewrites(conn: duckdb.DuckDBPyConnection, run_id: int) -> pd.DataFrame:
    """The rewrite table to deploy: rewrites people accepted or corrected (agreed or adjudicated), with the
    rewrite text they settled on."""
    return conn.cursor().execute("""
        SELECT w.source, json_extract_string(rl.label, '$.rewrite') AS rewrite, w.target AS mined_rewrite,
               rl.verdict, w.source_support, w.source_success, w.target_success, w.gain, w.wins, w.losses,
               w.retire_probability,
               array_to_string(rl.reviewers, ',') AS reviewers, rl.decided_at
        FROM rewrites w JOIN resolved_labels rl USING (candidate_id)
        WHERE w.run_id = ? AND rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('accept', 'correct')
        ORDER BY w.source
    """, [run_id]).df()
