"""Numbered, append-only schema migrations. Never edit one that has landed: add the next number."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

# Written out in full on purpose: a migration is frozen text, never derived from code that may change.
_M001_TURNS = """CREATE TABLE turns (
    dataset VARCHAR NOT NULL,
    "dialogue_id" VARCHAR NOT NULL,
    "turn_index" BIGINT NOT NULL,
    "timestamp" TIMESTAMPTZ NOT NULL,
    "asr_text" VARCHAR NOT NULL,
    "user_id" VARCHAR,
    "device_type" VARCHAR,
    "locale" VARCHAR,
    "speaker_id" VARCHAR,
    "latitude" DOUBLE,
    "longitude" DOUBLE,
    "asr_confidence" DOUBLE,
    "reference_text" VARCHAR,
    "asr_nbest" VARCHAR[],
    "nlu_domain" VARCHAR,
    "nlu_intent" VARCHAR,
    "nlu_slots" STRUCT("type" VARCHAR, "value" VARCHAR)[],
    "nlu_confidence" DOUBLE,
    "nlu_alt_intent" VARCHAR,
    "er_status" VARCHAR,
    "response_skill" VARCHAR,
    "response_text" VARCHAR,
    "response_status" VARCHAR,
    "tts_status" VARCHAR,
    "barge_in" BOOLEAN,
    "user_feedback" VARCHAR,
    "speaker_embedding" FLOAT[],
    "gold_intent" VARCHAR,
    "gold_slots" STRUCT("type" VARCHAR, "value" VARCHAR)[],
    "gold_goal_start" BOOLEAN,
    "gold_goal_success" BOOLEAN,
    "gold_failure_point" VARCHAR,
    "gold_skills" VARCHAR[],
    extras VARCHAR,
    wer_sub INTEGER,
    wer_del INTEGER,
    wer_ins INTEGER,
    wer_ref_words INTEGER,
    import_id BIGINT NOT NULL,
    PRIMARY KEY (dialogue_id, turn_index)
)
"""


def m001_turns_and_imports(conn: duckdb.DuckDBPyConnection) -> None:
    """The turns of every ingested log, and the append-only log of imports."""
    conn.execute("CREATE SEQUENCE import_id_seq START 1")
    conn.execute("""
        CREATE TABLE imports (
            import_id BIGINT PRIMARY KEY DEFAULT nextval('import_id_seq'),
            dataset VARCHAR NOT NULL,
            sources VARCHAR NOT NULL,
            content_sha256 VARCHAR NOT NULL,
            rows_read BIGINT NOT NULL,
            rows_added BIGINT NOT NULL,
            unknown_fields VARCHAR,
            imported_by VARCHAR,
            imported_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            app_version VARCHAR NOT NULL
        )
    """)
    conn.execute(_M001_TURNS)


def m002_review(conn: duckdb.DuckDBPyConnection) -> None:
    """Label candidates from model runs, the append-only decision log, bulk accepts and their audits.

    Nothing a person decided is ever updated: undo and changes of mind are new decision rows, and the
    current label is computed by the views below.
    """
    conn.execute("CREATE SEQUENCE model_run_id_seq START 1")
    conn.execute("""
        CREATE TABLE model_runs (
            run_id BIGINT PRIMARY KEY DEFAULT nextval('model_run_id_seq'),
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            parameters VARCHAR NOT NULL DEFAULT '{}',
            run_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            UNIQUE (name, version, parameters)
        )
    """)
    conn.execute("CREATE SEQUENCE candidate_id_seq START 1")
    conn.execute("""
        CREATE TABLE candidates (
            candidate_id BIGINT PRIMARY KEY DEFAULT nextval('candidate_id_seq'),
            run_id BIGINT NOT NULL,
            task VARCHAR NOT NULL,
            target_kind VARCHAR NOT NULL CHECK (target_kind IN ('turn', 'dialogue', 'pair')),
            dialogue_id VARCHAR NOT NULL,
            turn_index BIGINT,
            other_dialogue_id VARCHAR,
            other_turn_index BIGINT,
            target_key VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            score DOUBLE NOT NULL CHECK (score >= 0 AND score <= 1),
            dataset VARCHAR NOT NULL,
            domain VARCHAR,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            UNIQUE (run_id, task, target_key)
        )
    """)
    conn.execute("CREATE SEQUENCE decision_seq START 1")
    conn.execute("""
        CREATE TABLE decisions (
            decision_id UUID PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('decision_seq'),
            candidate_id BIGINT NOT NULL,
            reviewer VARCHAR NOT NULL CHECK (length(trim(reviewer)) > 0),
            verdict VARCHAR NOT NULL CHECK (verdict IN ('accept', 'reject', 'correct', 'skip', 'retract')),
            corrected_value VARCHAR,
            role VARCHAR NOT NULL CHECK (role IN ('review', 'bulk', 'audit', 'adjudicate')),
            bulk_id BIGINT,
            decided_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            app_version VARCHAR NOT NULL,
            CHECK ((verdict = 'correct') = (corrected_value IS NOT NULL)),
            CHECK ((role = 'bulk') = (bulk_id IS NOT NULL)),
            UNIQUE (bulk_id, candidate_id)
        )
    """)
    conn.execute("CREATE SEQUENCE bulk_id_seq START 1")
    conn.execute("""
        CREATE TABLE bulk_actions (
            bulk_id BIGINT PRIMARY KEY DEFAULT nextval('bulk_id_seq'),
            reviewer VARCHAR NOT NULL,
            queue VARCHAR NOT NULL,
            threshold DOUBLE NOT NULL,
            n_accepted BIGINT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            app_version VARCHAR NOT NULL
        )
    """)
    conn.execute("""
        CREATE TABLE audit_items (
            bulk_id BIGINT NOT NULL,
            candidate_id BIGINT NOT NULL,
            PRIMARY KEY (bulk_id, candidate_id)
        )
    """)
    # The current decision of each reviewer on each candidate: the latest row that is not a skip, unless
    # that row is a retraction (undo). Adjudications are kept apart from the same person's own review.
    conn.execute("""
        CREATE VIEW current_decisions AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT d.*, row_number() OVER (
                PARTITION BY candidate_id, reviewer, role = 'adjudicate' ORDER BY seq DESC) AS rn
            FROM decisions d WHERE verdict <> 'skip'
        ) WHERE rn = 1 AND verdict <> 'retract'
    """)
    # label: the value the decision stands for (NULL for a rejection); label_key compares decisions.
    conn.execute("""
        CREATE VIEW decision_labels AS
        SELECT cd.*, c.task, c.value AS proposed_value,
               CASE cd.verdict WHEN 'accept' THEN c.value WHEN 'correct' THEN cd.corrected_value END AS label,
               CASE cd.verdict WHEN 'accept' THEN c.value WHEN 'correct' THEN cd.corrected_value
                               ELSE '<rejected>' END AS label_key
        FROM current_decisions cd JOIN candidates c USING (candidate_id)
    """)
    # One resolved label per candidate: an adjudication wins; otherwise the people's decisions if they all
    # agree (a bulk accept counts only until a person has decided the candidate, e.g. in its audit);
    # candidates whose reviewers disagree and that no one adjudicated are 'conflict'. The verdict follows
    # from the label: the proposal itself is 'accept' however it was entered, another value 'correct'.
    conn.execute("""
        CREATE VIEW resolved_labels AS
        WITH adj AS (
            SELECT candidate_id,
                   arg_max(struct_pack(label := label, label_key := label_key, reviewer := reviewer), seq) AS last,
                   max(decided_at) AS decided_at
            FROM decision_labels WHERE role = 'adjudicate' GROUP BY candidate_id
        ), people AS (
            SELECT DISTINCT candidate_id FROM decision_labels WHERE role IN ('review', 'audit')
        ), rev AS (
            SELECT candidate_id, count(*) AS n_reviewers, count(DISTINCT label_key) AS n_labels,
                   any_value(label) AS label, any_value(label_key) AS label_key,
                   list(reviewer ORDER BY reviewer) AS reviewers, list(DISTINCT role ORDER BY role) AS roles,
                   max(decided_at) AS decided_at
            FROM decision_labels dl
            WHERE role IN ('review', 'audit')
               OR (role = 'bulk' AND candidate_id NOT IN (SELECT candidate_id FROM people))
            GROUP BY candidate_id
        ), settled AS (
            SELECT coalesce(adj.candidate_id, rev.candidate_id) AS candidate_id,
                   CASE WHEN adj.candidate_id IS NOT NULL THEN 'adjudicated'
                        WHEN rev.n_labels = 1 THEN 'agreed' ELSE 'conflict' END AS status,
                   CASE WHEN adj.candidate_id IS NOT NULL THEN adj.last.label
                        WHEN rev.n_labels = 1 THEN rev.label END AS label,
                   CASE WHEN adj.candidate_id IS NOT NULL THEN adj.last.label_key
                        WHEN rev.n_labels = 1 THEN rev.label_key END AS label_key,
                   coalesce(rev.reviewers, []) AS reviewers, coalesce(rev.roles, []) AS roles,
                   adj.last.reviewer AS adjudicator, coalesce(rev.n_reviewers, 0) AS n_reviewers,
                   greatest(adj.decided_at, rev.decided_at) AS decided_at
            FROM adj FULL OUTER JOIN rev USING (candidate_id)
        )
        SELECT s.candidate_id, s.status, s.label,
               CASE WHEN s.label_key IS NULL THEN NULL WHEN s.label_key = '<rejected>' THEN 'reject'
                    WHEN s.label = c.value THEN 'accept' ELSE 'correct' END AS verdict,
               s.reviewers, s.roles, s.adjudicator, s.n_reviewers, s.decided_at
        FROM settled s JOIN candidates c USING (candidate_id)
    """)


def m003_candidate_distributions(conn: duckdb.DuckDBPyConnection) -> None:
    """The full probability vector behind a candidate, for models that have one (any task): canonical JSON
    object label -> probability. A table of its own, not a column, so candidates stored before it stay as
    they are and a candidate without a vector simply has no row. Append-only like the candidates."""
    conn.execute("""
        CREATE TABLE candidate_distributions (
            candidate_id BIGINT PRIMARY KEY,
            distribution VARCHAR NOT NULL
        )
    """)


def m004_rewrites(conn: duckdb.DuckDBPyConnection) -> None:
    """Query-rewrite mining runs: the run (a model run, so its rewrites are ordinary `rewrite` candidates in
    the review queue), each mined rewrite with its replayed wins and losses, the chains' states and
    transitions (for the chain diagram), evidence sessions, and the win/loss metrics with their intervals.
    Written once per run, in one transaction with the candidates; never updated."""
    conn.execute("""
        CREATE TABLE rewrite_runs (
            run_id BIGINT PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            states VARCHAR NOT NULL,
            evaluate_from TIMESTAMPTZ,
            n_mining_turns BIGINT NOT NULL,
            n_eval_turns BIGINT NOT NULL,
            n_rephrases BIGINT NOT NULL,
            n_chains BIGINT NOT NULL,
            summary VARCHAR NOT NULL
        )
    """)
    conn.execute("""
        CREATE TABLE rewrites (
            run_id BIGINT NOT NULL,
            source VARCHAR NOT NULL,
            target VARCHAR NOT NULL,
            source_support BIGINT NOT NULL,
            source_failure_rate DOUBLE NOT NULL,
            source_success DOUBLE NOT NULL,
            target_support BIGINT NOT NULL,
            target_success DOUBLE NOT NULL,
            gain DOUBLE NOT NULL,
            reach DOUBLE NOT NULL,
            direct BIGINT NOT NULL,
            target_interpretation VARCHAR NOT NULL,
            wins BIGINT,
            losses BIGINT,
            ties BIGINT,
            retire_probability DOUBLE,
            candidate_id BIGINT NOT NULL,
            PRIMARY KEY (run_id, source)
        )
    """)
    conn.execute("""
        CREATE TABLE rewrite_evidence (
            run_id BIGINT NOT NULL,
            source VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            dialogue_id VARCHAR NOT NULL,
            turn_index BIGINT NOT NULL,
            other_dialogue_id VARCHAR NOT NULL,
            other_turn_index BIGINT NOT NULL,
            PRIMARY KEY (run_id, source, rank)
        )
    """)
    conn.execute("""
        CREATE TABLE rewrite_states (
            run_id BIGINT NOT NULL,
            state VARCHAR NOT NULL,
            support BIGINT NOT NULL,
            failure_rate DOUBLE NOT NULL,
            success DOUBLE NOT NULL,
            PRIMARY KEY (run_id, state)
        )
    """)
    conn.execute("""
        CREATE TABLE rewrite_transitions (
            run_id BIGINT NOT NULL,
            from_state VARCHAR NOT NULL,
            to_state VARCHAR NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (run_id, from_state, to_state)
        )
    """)
    conn.execute("""
        CREATE TABLE rewrite_metrics (
            run_id BIGINT NOT NULL,
            rewriter VARCHAR NOT NULL,
            grouping VARCHAR NOT NULL,
            grp VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            ci_low DOUBLE,
            ci_high DOUBLE,
            PRIMARY KEY (run_id, rewriter, grouping, grp, metric)
        )
    """)


# A job's current state: its latest event. m006 recreates it over the rebuilt jobs table.
_JOB_STATUS_VIEW = """
    CREATE VIEW job_status AS
    SELECT j.*, e.status, e.message, e.result, e.happened_at AS status_at
    FROM jobs j JOIN (SELECT job_id, arg_max(status, seq) AS status, arg_max(message, seq) AS message,
                             arg_max(result, seq) AS result, max(happened_at) AS happened_at
                      FROM job_events GROUP BY job_id) e USING (job_id)
"""


def m005_jobs_and_evaluations(conn: duckdb.DuckDBPyConnection) -> None:
    """Model jobs started from the app, and evaluations stored with the model run they measured.

    A job's life is an append-only list of events (queued, running, done, failed, cancelled, interrupted):
    one writer per job, no updates, and the history stays. job_status is the latest event of each job."""
    conn.execute("CREATE SEQUENCE job_id_seq START 1")
    conn.execute("""
        CREATE TABLE jobs (
            job_id BIGINT PRIMARY KEY DEFAULT nextval('job_id_seq'),
            family VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('train', 'score', 'evaluate')),
            dataset VARCHAR NOT NULL,
            config VARCHAR NOT NULL DEFAULT '{}',
            started_by VARCHAR,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)
    conn.execute("CREATE SEQUENCE job_event_seq START 1")
    conn.execute("""
        CREATE TABLE job_events (
            seq BIGINT PRIMARY KEY DEFAULT nextval('job_event_seq'),
            job_id BIGINT NOT NULL,
            status VARCHAR NOT NULL
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
            message VARCHAR,
            result VARCHAR,
            happened_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)
    conn.execute(_JOB_STATUS_VIEW)
    conn.execute("CREATE SEQUENCE evaluation_id_seq START 1")
    conn.execute("""
        CREATE TABLE evaluations (
            evaluation_id BIGINT PRIMARY KEY DEFAULT nextval('evaluation_id_seq'),
            run_id BIGINT NOT NULL,
            family VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            metrics VARCHAR NOT NULL,
            config VARCHAR NOT NULL DEFAULT '{}',
            data_fingerprint VARCHAR,
            markdown VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)


def m006_family_actions_and_analyses(conn: duckdb.DuckDBPyConnection) -> None:
    """A job's action is any a registered family declares (mine, analyse, ...), not only train, score and
    evaluate: the jobs table is rebuilt without that CHECK (DuckDB cannot drop a constraint), keeping every row
    and id. And analyses: the stored result of an analysis family's job (disparity), one row per run, with its
    options, the data's fingerprint, the summary as strict JSON and the Markdown."""
    conn.execute("DROP VIEW job_status")
    conn.execute("ALTER TABLE jobs RENAME TO jobs_m005")
    conn.execute("""
        CREATE TABLE jobs (
            job_id BIGINT PRIMARY KEY DEFAULT nextval('job_id_seq'),
            family VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (regexp_full_match(action, '[a-z][a-z-]{0,31}')),
            dataset VARCHAR NOT NULL,
            config VARCHAR NOT NULL DEFAULT '{}',
            started_by VARCHAR,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)
    conn.execute("INSERT INTO jobs SELECT * FROM jobs_m005")
    conn.execute("DROP TABLE jobs_m005")
    conn.execute(_JOB_STATUS_VIEW)
    conn.execute("CREATE SEQUENCE analysis_id_seq START 1")
    conn.execute("""
        CREATE TABLE analyses (
            analysis_id BIGINT PRIMARY KEY DEFAULT nextval('analysis_id_seq'),
            family VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            options VARCHAR NOT NULL DEFAULT '{}',
            data_fingerprint VARCHAR NOT NULL,
            summary VARCHAR NOT NULL,
            markdown VARCHAR NOT NULL,
            job_id BIGINT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)


def m007_disparity_reports(conn: duckdb.DuckDBPyConnection) -> None:
    """Disparity reports as the page draws them, computed once per (dataset, data fingerprint, options) by the
    analyse job or the page and read back instead of recomputed (analysis/disparity/snapshot.py): the
    scalars as strict JSON, each frame as an Arrow IPC stream (data, never pickle). A key is stored once
    (a second writer of the same key stores nothing). And the UMAP layouts of the speakers' voices, keyed by
    the dataset and the voices' key (their embeddings and the layout method), whatever the options."""
    conn.execute("CREATE SEQUENCE disparity_report_id_seq START 1")
    conn.execute("""
        CREATE TABLE disparity_reports (
            report_id BIGINT PRIMARY KEY DEFAULT nextval('disparity_report_id_seq'),
            dataset VARCHAR NOT NULL,
            data_fingerprint VARCHAR NOT NULL,
            options VARCHAR NOT NULL,
            format INTEGER NOT NULL,
            meta VARCHAR NOT NULL,
            computed_by VARCHAR NOT NULL CHECK (computed_by IN ('job', 'page')),
            analysis_id BIGINT,
            seconds DOUBLE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            UNIQUE (dataset, data_fingerprint, options, format)
        )
    """)
    conn.execute("""
        CREATE TABLE disparity_report_parts (
            report_id BIGINT NOT NULL,
            part VARCHAR NOT NULL,
            arrow BLOB NOT NULL,
            PRIMARY KEY (report_id, part)
        )
    """)
    conn.execute("""
        CREATE TABLE disparity_layouts (
            dataset VARCHAR NOT NULL,
            voices_key VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            arrow BLOB NOT NULL,
            seconds DOUBLE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (dataset, voices_key)
        )
    """)


def m008_turn_audio_and_hypotheses(conn: duckdb.DuckDBPyConnection) -> None:
    """Log format 1.1 in the turns table: the request's audio (a path under the audio root, or an http(s) URL)
    and where it came from (recorded or synthetic), the n-best as whole hypotheses (text, the recogniser's score,
    its confidence) and the 1-best's per-word posteriors. asr_nbest keeps the hypotheses' texts, so every reader
    of the 1.0 column works as before; asr_hypotheses is filled here from the texts of the turns stored earlier
    (their score and confidence were never stored: NULL), so every stored n-best reads the same way. Columns are
    added, nothing is rebuilt: every row, import id and key stays."""
    conn.execute("ALTER TABLE turns ADD COLUMN audio VARCHAR")
    conn.execute("ALTER TABLE turns ADD COLUMN audio_source VARCHAR")
    conn.execute("ALTER TABLE turns ADD COLUMN asr_hypotheses STRUCT(text VARCHAR, score DOUBLE, confidence DOUBLE)[]")
    conn.execute("ALTER TABLE turns ADD COLUMN asr_word_confidence DOUBLE[]")
    conn.execute("""
        UPDATE turns
        SET asr_hypotheses = list_transform(asr_nbest, lambda x: {'text': x, 'score': NULL::DOUBLE,
                                                                   'confidence': NULL::DOUBLE})
        WHERE asr_nbest IS NOT NULL
    """)


def m009_reviewer_accounts(conn: duckdb.DuckDBPyConnection) -> None:
    """Reviewer accounts (issue 21): who may decide, with which role, proved by a password (a salted scrypt hash,
    never the password) or by single sign-on. Kept as an append-only log of account events, like every table of
    what a person did: an account's state is its latest event, so a disabled account keeps its history and who
    disabled it. event: 'add', 'disable', 'enable', 'password', 'role'; each row repeats the account's full state
    after the event (role, password_hash, disabled) and the actor who made it (an admin, or `cli:<os user>`), so
    the current state is one arg_max, not a replay."""
    conn.execute("CREATE SEQUENCE account_events_seq START 1")
    conn.execute("""
        CREATE TABLE account_events (
            seq BIGINT PRIMARY KEY DEFAULT nextval('account_events_seq'),
            name VARCHAR NOT NULL CHECK (length(trim(name)) > 0),
            event VARCHAR NOT NULL CHECK (event IN ('add', 'disable', 'enable', 'password', 'role')),
            role VARCHAR NOT NULL CHECK (role IN ('reviewer', 'adjudicator', 'admin')),
            password_hash VARCHAR,
            disabled BOOLEAN NOT NULL,
            actor VARCHAR NOT NULL,
            at_time TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)
    conn.execute("""
        CREATE VIEW accounts AS
        SELECT name, last.role AS role, last.password_hash AS password_hash, last.disabled AS disabled,
               created_at, last.at_time AS updated_at
        FROM (
            SELECT name, arg_max(struct_pack(role := role, password_hash := password_hash, disabled := disabled,
                                             at_time := at_time), seq) AS last,
                   min(at_time) AS created_at
            FROM account_events GROUP BY name
        )
    """)



def m010_turn_wer_by_normaliser(conn: duckdb.DuckDBPyConnection) -> None:
    """Word and character error counts per turn under each named text normaliser (issue 21, docs/wer.md), so a
    dataset's WER can be read raw and normalised: ``turn_wer`` holds one row per turn with a reference and
    normaliser (the turns table's wer_* columns stay the raw counts, as every reader before this one knew them),
    ``dataset_wer_normaliser`` the normaliser a dataset's figures use unless a person picks another.

    Existing turns get ``raw`` from their stored word counts and ``english-v1`` computed here, both with character
    counts; existing datasets keep ``raw`` as their default, so no figure they showed changes. The counts come from
    analysis.wer.turn_counts: a normaliser's rules never change under its name, so what this computes is fixed.
    """
    import pyarrow as pa

    from analysis.wer import turn_counts

    conn.execute("""
        CREATE TABLE turn_wer (
            dataset VARCHAR NOT NULL,
            dialogue_id VARCHAR NOT NULL,
            turn_index BIGINT NOT NULL,
            normaliser VARCHAR NOT NULL,
            wer_sub INTEGER NOT NULL CHECK (wer_sub >= 0),
            wer_del INTEGER NOT NULL CHECK (wer_del >= 0),
            wer_ins INTEGER NOT NULL CHECK (wer_ins >= 0),
            wer_ref_words INTEGER NOT NULL CHECK (wer_ref_words >= 0),
            char_edits INTEGER NOT NULL CHECK (char_edits >= 0),
            ref_chars INTEGER NOT NULL CHECK (ref_chars >= 0),
            PRIMARY KEY (dialogue_id, turn_index, normaliser)
        )
    """)
    conn.execute("""
        CREATE TABLE dataset_wer_normaliser (
            dataset VARCHAR PRIMARY KEY,
            normaliser VARCHAR NOT NULL
        )
    """)
    conn.execute("INSERT INTO dataset_wer_normaliser SELECT DISTINCT dataset, 'raw' FROM turns")
    stored = conn.sql("""
        SELECT dataset, dialogue_id, turn_index, reference_text, asr_text, wer_sub, wer_del, wer_ins, wer_ref_words
        FROM turns WHERE reference_text IS NOT NULL AND wer_ref_words >= 0
    """).to_arrow_table()
    if stored.num_rows == 0:
        return
    refs, hyps = stored.column("reference_text").to_pylist(), stored.column("asr_text").to_pylist()
    for normaliser in ("raw", "english-v1"):
        c = turn_counts(refs, hyps, normaliser=normaliser)
        counts = {"wer_sub": c.sub, "wer_del": c.dele, "wer_ins": c.ins, "wer_ref_words": c.ref_words}
        if normaliser == "raw":  # the stored word counts are the raw ones: keep them as they are
            counts = {k: stored.column(k) for k in counts}
        rows = pa.table({"dataset": stored.column("dataset"), "dialogue_id": stored.column("dialogue_id"),
                         "turn_index": stored.column("turn_index"), **counts,
                         "char_edits": c.char_edits, "ref_chars": c.ref_chars})
        conn.register("m010_rows", rows)
        try:
            conn.execute("""
                INSERT INTO turn_wer (dataset, dialogue_id, turn_index, normaliser, wer_sub, wer_del, wer_ins,
                                      wer_ref_words, char_edits, ref_chars)
                SELECT dataset, dialogue_id, turn_index, ?, wer_sub, wer_del, wer_ins, wer_ref_words, char_edits,
                       ref_chars
                FROM m010_rows
            """, [normaliser])
        finally:
            conn.unregister("m010_rows")

def m011_review_state(conn: duckdb.DuckDBPyConnection) -> None:
    """The review queue's current state, kept on write (issue 22): refilling a queue used to aggregate the whole
    decision log (116-413 ms p99 with 400k decisions). Both tables are derived from decisions and rebuilt from it
    here; app.store.review keeps them current in the transaction of every decision write (insert_decision,
    bulk_accept, insert_simulated_decisions), and tests/test_review_state.py checks them against the log.
    Not append-only: they are a summary of the append-only log, not a record of what someone did.

    review_state: per candidate and reviewer, over the queue roles (review, bulk, audit): the latest verdict
    (skips included), the latest that is not a skip (a retraction included) and its label key (the corrected
    value, '<rejected>' or '<accepted>'). candidate_state: per candidate, how many reviewers hold a standing
    decision (latest non-skip, not a retraction) and how many distinct labels those decisions give."""
    conn.execute("""
        CREATE TABLE review_state (
            candidate_id BIGINT NOT NULL,
            reviewer VARCHAR NOT NULL,
            last_verdict VARCHAR NOT NULL,
            last_real VARCHAR,
            label_key VARCHAR,
            PRIMARY KEY (candidate_id, reviewer)
        )
    """)
    conn.execute("""
        CREATE TABLE candidate_state (
            candidate_id BIGINT PRIMARY KEY,
            n_taken INTEGER NOT NULL,
            n_labels INTEGER NOT NULL
        )
    """)
    conn.execute("""
        INSERT INTO review_state
        SELECT candidate_id, reviewer, arg_max(verdict, seq),
               arg_max(verdict, seq) FILTER (verdict <> 'skip'),
               arg_max(CASE verdict WHEN 'correct' THEN corrected_value WHEN 'reject' THEN '<rejected>'
                       ELSE '<accepted>' END, seq) FILTER (verdict <> 'skip')
        FROM decisions WHERE role IN ('review', 'bulk', 'audit')
        GROUP BY candidate_id, reviewer
    """)
    conn.execute("""
        INSERT INTO candidate_state
        SELECT candidate_id, count(*) FILTER (last_real <> 'retract'),
               count(DISTINCT label_key) FILTER (last_real <> 'retract')
        FROM review_state GROUP BY candidate_id
    """)


def m012_target_state(conn: duckdb.DuckDBPyConnection) -> None:
    """How many distinct values the sources propose for each target (issue 22): the review queue's
    "disagreement first" order used to count them over every candidate of the dataset at each refill (over a
    second at 1M candidates). Derived from candidates and rebuilt from them here; app.store.candidates keeps it
    current in the transaction of every candidate import, and tests/test_review_state.py checks it against
    the candidates table."""
    conn.execute("""
        CREATE TABLE target_state (
            dataset VARCHAR NOT NULL,
            task VARCHAR NOT NULL,
            target_key VARCHAR NOT NULL,
            n_values INTEGER NOT NULL,
            PRIMARY KEY (dataset, task, target_key)
        )
    """)
    conn.execute("""
        INSERT INTO target_state
        SELECT dataset, task, target_key, count(DISTINCT value) FROM candidates GROUP BY ALL
    """)


MIGRATIONS: list[tuple[int, str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    (1, "m001_turns_and_imports", m001_turns_and_imports),
    (2, "m002_review", m002_review),
    (3, "m003_candidate_distributions", m003_candidate_distributions),
    (4, "m004_rewrites", m004_rewrites),
    (5, "m005_jobs_and_evaluations", m005_jobs_and_evaluations),
    (6, "m006_family_actions_and_analyses", m006_family_actions_and_analyses),
    (7, "m007_disparity_reports", m007_disparity_reports),
    (8, "m008_turn_audio_and_hypotheses", m008_turn_audio_and_hypotheses),
    (9, "m009_reviewer_accounts", m009_reviewer_accounts),
    (10, "m010_turn_wer_by_normaliser", m010_turn_wer_by_normaliser),
    (11, "m011_review_state", m011_review_state),
    (12, "m012_target_state", m012_target_state),
]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet applied, each in its own transaction. Returns the versions applied."""
    conn.execute("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        )
    """)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, fn in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            fn(conn)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
