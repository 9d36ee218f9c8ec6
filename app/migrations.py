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


MIGRATIONS: list[tuple[int, str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    (1, "m001_turns_and_imports", m001_turns_and_imports),
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
