"""The store: exact schema after all migrations, idempotent ingest, conflicts, locking, append-only."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from app import migrations, store
from app.ingest import ingest_files
from app.migrations import MIGRATIONS, migrate
from app.store import jobs as store_jobs
from tests.helpers import make_turn, write_jsonl

# The exact schema after every migration, as DuckDB prints it. A change here needs a new migration.
EXPECTED_TABLES = {
    'target_state': ", ".join([
        'CREATE TABLE target_state(dataset VARCHAR',
        'task VARCHAR',
        'target_key VARCHAR',
        'n_values INTEGER NOT NULL',
        'PRIMARY KEY(dataset',
        'task',
        'target_key));',
    ]),
    'review_state': ", ".join([
        'CREATE TABLE review_state(candidate_id BIGINT',
        'reviewer VARCHAR',
        'last_verdict VARCHAR NOT NULL',
        'last_real VARCHAR',
        'label_key VARCHAR',
        'PRIMARY KEY(candidate_id',
        'reviewer));',
    ]),
    'candidate_state': ", ".join([
        'CREATE TABLE candidate_state(candidate_id BIGINT PRIMARY KEY',
        'n_taken INTEGER NOT NULL',
        'n_labels INTEGER NOT NULL);',
    ]),
    'account_events': ", ".join([
        "CREATE TABLE account_events(seq BIGINT DEFAULT(nextval('account_events_seq')) PRIMARY KEY",
        '"name" VARCHAR NOT NULL',
        '"event" VARCHAR NOT NULL',
        '"role" VARCHAR NOT NULL',
        'password_hash VARCHAR',
        'disabled BOOLEAN NOT NULL',
        'actor VARCHAR NOT NULL',
        'at_time TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        'CHECK((length("trim"("name")) > 0))',
        'CHECK(("event" IN (\'add\'',
        "'disable'",
        "'enable'",
        "'password'",
        "'role')))",
        'CHECK(("role" IN (\'reviewer\'',
        "'adjudicator'",
        "'admin'))));",
    ]),
    'audit_items': ", ".join([
        'CREATE TABLE audit_items(bulk_id BIGINT',
        'candidate_id BIGINT',
        'PRIMARY KEY(bulk_id',
        'candidate_id));',
    ]),
    'bulk_actions': ", ".join([
        "CREATE TABLE bulk_actions(bulk_id BIGINT DEFAULT(nextval('bulk_id_seq')) PRIMARY KEY",
        'reviewer VARCHAR NOT NULL',
        'queue VARCHAR NOT NULL',
        'threshold DOUBLE NOT NULL',
        'n_accepted BIGINT NOT NULL',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        'app_version VARCHAR NOT NULL);',
    ]),
    'candidate_distributions': ", ".join([
        'CREATE TABLE candidate_distributions(candidate_id BIGINT PRIMARY KEY',
        'distribution VARCHAR NOT NULL);',
    ]),
    'candidates': ", ".join([
        "CREATE TABLE candidates(candidate_id BIGINT DEFAULT(nextval('candidate_id_seq')) PRIMARY KEY",
        'run_id BIGINT NOT NULL',
        'task VARCHAR NOT NULL',
        'target_kind VARCHAR NOT NULL',
        'dialogue_id VARCHAR NOT NULL',
        'turn_index BIGINT',
        'other_dialogue_id VARCHAR',
        'other_turn_index BIGINT',
        'target_key VARCHAR NOT NULL',
        '"value" VARCHAR NOT NULL',
        'score DOUBLE NOT NULL',
        'dataset VARCHAR NOT NULL',
        '"domain" VARCHAR',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        "CHECK((target_kind IN ('turn'",
        "'dialogue'",
        "'pair')))",
        'CHECK(((score >= 0) AND (score <= 1)))',
        'UNIQUE(run_id',
        'task',
        'target_key));',
    ]),
    'decisions': ", ".join([
        'CREATE TABLE decisions(decision_id UUID PRIMARY KEY',
        "seq BIGINT DEFAULT(nextval('decision_seq')) NOT NULL",
        'candidate_id BIGINT NOT NULL',
        'reviewer VARCHAR NOT NULL',
        'verdict VARCHAR NOT NULL',
        'corrected_value VARCHAR',
        '"role" VARCHAR NOT NULL',
        'bulk_id BIGINT',
        'decided_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        'app_version VARCHAR NOT NULL',
        'CHECK((length("trim"(reviewer)) > 0))',
        "CHECK((verdict IN ('accept'",
        "'reject'",
        "'correct'",
        "'skip'",
        "'retract')))",
        'CHECK(("role" IN (\'review\'',
        "'bulk'",
        "'audit'",
        "'adjudicate')))",
        "CHECK(((verdict = 'correct') = (corrected_value IS NOT NULL)))",
        'CHECK((("role" = \'bulk\') = (bulk_id IS NOT NULL)))',
        'UNIQUE(bulk_id',
        'candidate_id));',
    ]),
    'imports': ", ".join([
        "CREATE TABLE imports(import_id BIGINT DEFAULT(nextval('import_id_seq')) PRIMARY KEY",
        'dataset VARCHAR NOT NULL',
        'sources VARCHAR NOT NULL',
        'content_sha256 VARCHAR NOT NULL',
        'rows_read BIGINT NOT NULL',
        'rows_added BIGINT NOT NULL',
        'unknown_fields VARCHAR',
        'imported_by VARCHAR',
        'imported_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        'app_version VARCHAR NOT NULL);',
    ]),
    'model_runs': ", ".join([
        "CREATE TABLE model_runs(run_id BIGINT DEFAULT(nextval('model_run_id_seq')) PRIMARY KEY",
        '"name" VARCHAR NOT NULL',
        '"version" VARCHAR NOT NULL',
        "parameters VARCHAR DEFAULT('{}') NOT NULL",
        'run_at TIMESTAMP WITH TIME ZONE',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        'UNIQUE("name"',
        '"version"',
        'parameters));',
    ]),
    'schema_migrations': ", ".join([
        'CREATE TABLE schema_migrations("version" INTEGER PRIMARY KEY',
        '"name" VARCHAR NOT NULL',
        'applied_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL);',
    ]),
    'turns': ", ".join([
        'CREATE TABLE turns(dataset VARCHAR NOT NULL',
        'dialogue_id VARCHAR',
        'turn_index BIGINT',
        '"timestamp" TIMESTAMP WITH TIME ZONE NOT NULL',
        'asr_text VARCHAR NOT NULL',
        'user_id VARCHAR',
        'device_type VARCHAR',
        'locale VARCHAR',
        'speaker_id VARCHAR',
        'latitude DOUBLE',
        'longitude DOUBLE',
        'asr_confidence DOUBLE',
        'reference_text VARCHAR',
        'asr_nbest VARCHAR[]',
        'nlu_domain VARCHAR',
        'nlu_intent VARCHAR',
        'nlu_slots STRUCT("type" VARCHAR',
        '"value" VARCHAR)[]',
        'nlu_confidence DOUBLE',
        'nlu_alt_intent VARCHAR',
        'er_status VARCHAR',
        'response_skill VARCHAR',
        'response_text VARCHAR',
        'response_status VARCHAR',
        'tts_status VARCHAR',
        'barge_in BOOLEAN',
        'user_feedback VARCHAR',
        'speaker_embedding FLOAT[]',
        'gold_intent VARCHAR',
        'gold_slots STRUCT("type" VARCHAR',
        '"value" VARCHAR)[]',
        'gold_goal_start BOOLEAN',
        'gold_goal_success BOOLEAN',
        'gold_failure_point VARCHAR',
        'gold_skills VARCHAR[]',
        'extras VARCHAR',
        'wer_sub INTEGER',
        'wer_del INTEGER',
        'wer_ins INTEGER',
        'wer_ref_words INTEGER',
        'import_id BIGINT NOT NULL',
        'PRIMARY KEY(dialogue_id',
        'turn_index));',
    ]),
    'rewrite_evidence': ", ".join([
        'CREATE TABLE rewrite_evidence(run_id BIGINT',
        '"source" VARCHAR',
        'rank INTEGER',
        'dialogue_id VARCHAR NOT NULL',
        'turn_index BIGINT NOT NULL',
        'other_dialogue_id VARCHAR NOT NULL',
        'other_turn_index BIGINT NOT NULL',
        'PRIMARY KEY(run_id',
        '"source"',
        'rank));',
    ]),
    'rewrite_metrics': ", ".join([
        'CREATE TABLE rewrite_metrics(run_id BIGINT',
        'rewriter VARCHAR',
        '"grouping" VARCHAR',
        'grp VARCHAR',
        'metric VARCHAR',
        '"value" DOUBLE',
        'ci_low DOUBLE',
        'ci_high DOUBLE',
        'PRIMARY KEY(run_id',
        'rewriter',
        '"grouping"',
        'grp',
        'metric));',
    ]),
    'rewrite_runs': ", ".join([
        'CREATE TABLE rewrite_runs(run_id BIGINT PRIMARY KEY',
        'dataset VARCHAR NOT NULL',
        'states VARCHAR NOT NULL',
        'evaluate_from TIMESTAMP WITH TIME ZONE',
        'n_mining_turns BIGINT NOT NULL',
        'n_eval_turns BIGINT NOT NULL',
        'n_rephrases BIGINT NOT NULL',
        'n_chains BIGINT NOT NULL',
        'summary VARCHAR NOT NULL);',
    ]),
    'rewrite_states': ", ".join([
        'CREATE TABLE rewrite_states(run_id BIGINT',
        'state VARCHAR',
        'support BIGINT NOT NULL',
        'failure_rate DOUBLE NOT NULL',
        'success DOUBLE NOT NULL',
        'PRIMARY KEY(run_id',
        'state));',
    ]),
    'rewrite_transitions': ", ".join([
        'CREATE TABLE rewrite_transitions(run_id BIGINT',
        'from_state VARCHAR',
        'to_state VARCHAR',
        'n BIGINT NOT NULL',
        'PRIMARY KEY(run_id',
        'from_state',
        'to_state));',
    ]),
    'rewrites': ", ".join([
        'CREATE TABLE rewrites(run_id BIGINT',
        '"source" VARCHAR',
        '"target" VARCHAR NOT NULL',
        'source_support BIGINT NOT NULL',
        'source_failure_rate DOUBLE NOT NULL',
        'source_success DOUBLE NOT NULL',
        'target_support BIGINT NOT NULL',
        'target_success DOUBLE NOT NULL',
        'gain DOUBLE NOT NULL',
        'reach DOUBLE NOT NULL',
        'direct BIGINT NOT NULL',
        'target_interpretation VARCHAR NOT NULL',
        'wins BIGINT',
        'losses BIGINT',
        '"ties" BIGINT',
        'retire_probability DOUBLE',
        'candidate_id BIGINT NOT NULL',
        'PRIMARY KEY(run_id',
        '"source"));',
    ]),
}
EXPECTED_VIEWS = {
    'accounts': ", ".join([
        'CREATE VIEW accounts AS SELECT "name"',
        '"last"."role" AS "role"',
        '"last".password_hash AS password_hash',
        '"last".disabled AS disabled',
        'created_at',
        '"last".at_time AS updated_at FROM (SELECT "name"',
        'arg_max(struct_pack("role" := "role"',
        'password_hash := password_hash',
        'disabled := disabled',
        'at_time := at_time)',
        'seq) AS "last"',
        'min(at_time) AS created_at FROM account_events GROUP BY "name");',
    ]),
    'current_decisions': ", ".join([
        'CREATE VIEW current_decisions AS SELECT * EXCLUDE (rn) FROM (SELECT d.*',
        'row_number() OVER (PARTITION BY candidate_id',
        'reviewer',
        '("role" = \'adjudicate\') ORDER BY seq DESC) AS rn FROM decisions AS d WHERE (verdict != \'skip\')) WHERE ((rn = 1) AND (verdict != \'retract\'));',
    ]),
    'decision_labels': ", ".join([
        'CREATE VIEW decision_labels AS SELECT cd.*',
        'c.task',
        'c."value" AS proposed_value',
        'CASE  WHEN ((cd.verdict = \'accept\')) THEN (c."value") WHEN ((cd.verdict = \'correct\')) THEN (cd.corrected_value) ELSE NULL END AS "label"',
        'CASE  WHEN ((cd.verdict = \'accept\')) THEN (c."value") WHEN ((cd.verdict = \'correct\')) THEN (cd.corrected_value) ELSE \'<rejected>\' END AS label_key FROM (current_decisions AS cd INNER JOIN candidates AS c USING (candidate_id));',
    ]),
    'resolved_labels': ", ".join([
        'CREATE VIEW resolved_labels AS WITH adj AS (SELECT candidate_id',
        'arg_max(struct_pack("label" := "label"',
        'label_key := label_key',
        'reviewer := reviewer)',
        'seq) AS "last"',
        'max(decided_at) AS decided_at FROM decision_labels WHERE ("role" = \'adjudicate\') GROUP BY candidate_id)',
        'people AS (SELECT DISTINCT candidate_id FROM decision_labels WHERE ("role" IN (\'review\'',
        "'audit')))",
        'rev AS (SELECT candidate_id',
        'count_star() AS n_reviewers',
        'count(DISTINCT label_key) AS n_labels',
        'any_value("label") AS "label"',
        'any_value(label_key) AS label_key',
        'list(reviewer ORDER BY reviewer) AS reviewers',
        'list(DISTINCT "role" ORDER BY "role") AS roles',
        'max(decided_at) AS decided_at FROM decision_labels AS dl WHERE (("role" IN (\'review\'',
        '\'audit\')) OR (("role" = \'bulk\') AND (NOT (candidate_id = ANY(SELECT candidate_id FROM people))))) GROUP BY candidate_id)',
        'settled AS (SELECT COALESCE(adj.candidate_id',
        'rev.candidate_id) AS candidate_id',
        "CASE  WHEN ((adj.candidate_id IS NOT NULL)) THEN ('adjudicated') WHEN ((rev.n_labels = 1)) THEN ('agreed') ELSE 'conflict' END AS status",
        'CASE  WHEN ((adj.candidate_id IS NOT NULL)) THEN (adj."last"."label") WHEN ((rev.n_labels = 1)) THEN (rev."label") ELSE NULL END AS "label"',
        'CASE  WHEN ((adj.candidate_id IS NOT NULL)) THEN (adj."last".label_key) WHEN ((rev.n_labels = 1)) THEN (rev.label_key) ELSE NULL END AS label_key',
        'COALESCE(rev.reviewers',
        'list_value()) AS reviewers',
        'COALESCE(rev.roles',
        'list_value()) AS roles',
        'adj."last".reviewer AS adjudicator',
        'COALESCE(rev.n_reviewers',
        '0) AS n_reviewers',
        'greatest(adj.decided_at',
        'rev.decided_at) AS decided_at FROM (adj FULL JOIN rev USING (candidate_id))) SELECT s.candidate_id',
        's.status',
        's."label"',
        'CASE  WHEN ((s.label_key IS NULL)) THEN (NULL) WHEN ((s.label_key = \'<rejected>\')) THEN (\'reject\') WHEN ((s."label" = c."value")) THEN (\'accept\') ELSE \'correct\' END AS verdict',
        's.reviewers',
        's.roles',
        's.adjudicator',
        's.n_reviewers',
        's.decided_at FROM (settled AS s INNER JOIN candidates AS c USING (candidate_id));',
    ]),
    'job_status': ", ".join([
        'CREATE VIEW job_status AS SELECT j.*', 'e.status', 'e.message', 'e.result',
        'e.happened_at AS status_at FROM (jobs AS j INNER JOIN (SELECT job_id',
        'arg_max(status', 'seq) AS status', 'arg_max(message', 'seq) AS message', 'arg_max(result', 'seq) AS result',
        'max(happened_at) AS happened_at FROM job_events GROUP BY job_id) AS e USING (job_id));',
    ]),
}
# m005: jobs and their events, evaluations
EXPECTED_TABLES.update({
    'evaluations': ", ".join([
        "CREATE TABLE evaluations(evaluation_id BIGINT DEFAULT(nextval('evaluation_id_seq')) PRIMARY KEY",
        'run_id BIGINT NOT NULL', '"family" VARCHAR NOT NULL', 'dataset VARCHAR NOT NULL', 'kind VARCHAR NOT NULL',
        'metrics VARCHAR NOT NULL', "config VARCHAR DEFAULT('{}') NOT NULL", 'data_fingerprint VARCHAR',
        'markdown VARCHAR NOT NULL', 'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL);',
    ]),
    'job_events': ", ".join([
        "CREATE TABLE job_events(seq BIGINT DEFAULT(nextval('job_event_seq')) PRIMARY KEY",
        'job_id BIGINT NOT NULL', 'status VARCHAR NOT NULL', 'message VARCHAR', 'result VARCHAR',
        'happened_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        "CHECK((status IN ('queued'", "'running'", "'done'", "'failed'", "'cancelled'", "'interrupted'))));",
    ]),
    'jobs': ", ".join([
        "CREATE TABLE jobs(job_id BIGINT DEFAULT(nextval('job_id_seq')) PRIMARY KEY",
        '"family" VARCHAR NOT NULL', '"action" VARCHAR NOT NULL', 'dataset VARCHAR NOT NULL',
        "config VARCHAR DEFAULT('{}') NOT NULL", 'started_by VARCHAR',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        "CHECK((\"action\" IN ('train'", "'score'", "'evaluate'))));",
    ]),
})
# m006: a job's action is any a family declares (the jobs table rebuilt without the fixed list); analyses
EXPECTED_TABLES.update({
    'jobs': ", ".join([
        "CREATE TABLE jobs(job_id BIGINT DEFAULT(nextval('job_id_seq')) PRIMARY KEY",
        '"family" VARCHAR NOT NULL', '"action" VARCHAR NOT NULL', 'dataset VARCHAR NOT NULL',
        "config VARCHAR DEFAULT('{}') NOT NULL", 'started_by VARCHAR',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        "CHECK(regexp_full_match(\"action\", '[a-z][a-z-]{0,31}')));",
    ]),
    'analyses': ", ".join([
        "CREATE TABLE analyses(analysis_id BIGINT DEFAULT(nextval('analysis_id_seq')) PRIMARY KEY",
        '"family" VARCHAR NOT NULL', 'dataset VARCHAR NOT NULL', "\"options\" VARCHAR DEFAULT('{}') NOT NULL",
        'data_fingerprint VARCHAR NOT NULL', 'summary VARCHAR NOT NULL', 'markdown VARCHAR NOT NULL',
        'job_id BIGINT', 'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL);',
    ]),
})
# m007: disparity reports as the page draws them (JSON + Arrow IPC parts), and the voices' UMAP layouts
EXPECTED_TABLES.update({
    'disparity_layouts': ", ".join([
        'CREATE TABLE disparity_layouts(dataset VARCHAR', 'voices_key VARCHAR', '"method" VARCHAR NOT NULL',
        'arrow BLOB NOT NULL', '"seconds" DOUBLE',
        'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL', 'PRIMARY KEY(dataset, voices_key));',
    ]),
    'disparity_report_parts': ", ".join([
        'CREATE TABLE disparity_report_parts(report_id BIGINT', 'part VARCHAR', 'arrow BLOB NOT NULL',
        'PRIMARY KEY(report_id, part));',
    ]),
    'disparity_reports': ", ".join([
        "CREATE TABLE disparity_reports(report_id BIGINT DEFAULT(nextval('disparity_report_id_seq')) PRIMARY KEY",
        'dataset VARCHAR NOT NULL', 'data_fingerprint VARCHAR NOT NULL', '"options" VARCHAR NOT NULL',
        'format INTEGER NOT NULL', 'meta VARCHAR NOT NULL', 'computed_by VARCHAR NOT NULL', 'analysis_id BIGINT',
        '"seconds" DOUBLE', 'created_at TIMESTAMP WITH TIME ZONE DEFAULT(current_timestamp) NOT NULL',
        "CHECK((computed_by IN ('job'", "'page')))", 'UNIQUE(dataset, data_fingerprint, "options", format));',
    ]),
})
# m008: format 1.1 in the turns table (columns added after import_id: DuckDB appends them)
EXPECTED_TABLES['turns'] = EXPECTED_TABLES['turns'].replace(
    'import_id BIGINT NOT NULL, PRIMARY KEY(',
    'import_id BIGINT NOT NULL, audio VARCHAR, audio_source VARCHAR, '
    'asr_hypotheses STRUCT("text" VARCHAR, score DOUBLE, confidence DOUBLE)[], asr_word_confidence DOUBLE[], '
    'PRIMARY KEY(')
assert 'asr_hypotheses' in EXPECTED_TABLES['turns']
# m010: word and character error counts per turn and normaliser, and each dataset's default normaliser
EXPECTED_TABLES.update({
    'dataset_wer_normaliser': 'CREATE TABLE dataset_wer_normaliser(dataset VARCHAR PRIMARY KEY, normaliser VARCHAR NOT NULL);',
    'turn_wer': ", ".join([
        'CREATE TABLE turn_wer(dataset VARCHAR NOT NULL', 'dialogue_id VARCHAR', 'turn_index BIGINT',
        'normaliser VARCHAR', 'wer_sub INTEGER NOT NULL', 'wer_del INTEGER NOT NULL', 'wer_ins INTEGER NOT NULL',
        'wer_ref_words INTEGER NOT NULL', 'char_edits INTEGER NOT NULL', 'ref_chars INTEGER NOT NULL',
        'CHECK((wer_sub >= 0))', 'CHECK((wer_del >= 0))', 'CHECK((wer_ins >= 0))', 'CHECK((wer_ref_words >= 0))',
        'CHECK((char_edits >= 0))', 'CHECK((ref_chars >= 0))', 'PRIMARY KEY(dialogue_id, turn_index, normaliser));',
    ]),
})
EXPECTED_SEQUENCES = ['account_events_seq', 'analysis_id_seq', 'bulk_id_seq', 'candidate_id_seq', 'decision_seq', 'disparity_report_id_seq',
                      'evaluation_id_seq', 'import_id_seq', 'job_event_seq', 'job_id_seq', 'model_run_id_seq']


def test_exact_schema_after_all_migrations(db):
    tables = dict(db.execute("SELECT table_name, sql FROM duckdb_tables() ORDER BY table_name").fetchall())
    assert tables == dict(sorted(EXPECTED_TABLES.items()))
    sequences = [r[0] for r in db.execute("SELECT sequence_name FROM duckdb_sequences() ORDER BY 1").fetchall()]
    assert sequences == EXPECTED_SEQUENCES
    views = dict(db.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall())
    assert views == EXPECTED_VIEWS
    versions = db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert versions == [(v, n) for v, n, _ in MIGRATIONS]


def test_migrate_is_idempotent(db):
    assert migrate(db) == []
    assert store.get_schema_version(db) == MIGRATIONS[-1][0]


def test_migrations_are_numbered_in_order():
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert all(name.startswith(f"m{v:03d}_") for v, name, _ in MIGRATIONS)


def test_m003_applies_to_a_database_made_at_m002(tmp_path, monkeypatch):
    """A database created before candidate distributions existed migrates, and its candidates keep working
    (no vector, none shown) while new imports store theirs."""
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:2])
    old = store.connect(path)
    assert store.get_schema_version(old) == 2
    # a candidate written as the m002 code wrote it: straight into candidates, no distribution anywhere
    kind, key = target_key("d1", 0)
    old.execute("INSERT INTO model_runs (name, version) VALUES ('fp', '1')")
    old.execute("INSERT INTO candidates (run_id, task, target_kind, dialogue_id, turn_index, target_key, value, "
                "score, dataset) VALUES (1, 'failure_point', ?, 'd1', 0, ?, '\"ASR\"', 0.6, 't')", [kind, key])
    assert "candidate_distributions" not in {r[0] for r in old.execute("SELECT table_name FROM duckdb_tables()")
                                             .fetchall()}
    old.close()
    monkeypatch.undo()

    conn = store.connect(path)
    assert store.get_schema_version(conn) == MIGRATIONS[-1][0]
    # the turns come now: today's ingest writes columns a database at m002 does not have yet (m008)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0), make_turn("d2", 0)])],
                 dataset="t")
    assert store.get_candidate_distribution(conn, 1) is None
    assert store.count_candidates(conn, "t") == 1
    assert store.list_failure_turns(conn, "t", 1, "ASR")["candidate_id"].tolist() == [1]

    def row(dialogue: str, distribution: dict | None) -> dict:
        kind, key = target_key(dialogue, 0)
        return {"task": "failure_point", "target_kind": kind, "dialogue_id": dialogue, "turn_index": 0,
                "other_dialogue_id": None, "other_turn_index": None, "target_key": key, "value": '"ASR"',
                "score": 0.6, "distribution": None if distribution is None else canonical_json(distribution),
                "model_name": "fp", "model_version": "1", "model_parameters": "{}", "run_at": None}

    vector = {"ASR": 0.6, "NLU": 0.3, "NO_FAILURE": 0.1}
    # the old candidate re-imported without a vector is a skip; the new one stores its vector
    result = store.insert_candidates(conn, pa.Table.from_pylist([row("d1", None), row("d2", vector)],
                                                                schema=CANDIDATE_SCHEMA))
    assert (result.rows_added, result.rows_already_present, result.distributions_added) == (1, 1, 1)
    new_id = conn.execute("SELECT candidate_id FROM candidates WHERE dialogue_id = 'd2'").fetchone()[0]
    assert store.get_candidate_distribution(conn, new_id) == vector
    assert store.get_candidate_distribution(conn, 1) is None
    # re-scored with a vector, the old candidate gets one (a new row; the candidate itself is unchanged)
    result = store.insert_candidates(conn, pa.Table.from_pylist([row("d1", vector)], schema=CANDIDATE_SCHEMA))
    assert (result.rows_added, result.rows_already_present, result.distributions_added) == (0, 1, 1)
    assert store.get_candidate_distribution(conn, 1) == vector
    assert json.loads(store.get_candidate(conn, 1)["value"]) == "ASR"
    conn.close()


def test_reingest_is_idempotent(db, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0), make_turn("d1", 1), make_turn("d2", 0)])
    first, _ = ingest_files(db, [path], dataset="t")
    assert (first.rows_added, first.rows_already_present) == (3, 0)
    again, _ = ingest_files(db, [path], dataset="t")
    assert (again.import_id, again.rows_added, again.rows_already_present) == (None, 0, 3)
    assert store.count_turns(db) == 3
    assert len(store.list_imports(db)) == 1  # nothing new, nothing logged


def test_overlapping_file_adds_only_new_turns(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])], dataset="t")
    result, _ = ingest_files(db, [write_jsonl(tmp_path / "b.jsonl", [make_turn("d1", 0), make_turn("d1", 1)])],
                             dataset="t")
    assert (result.rows_added, result.rows_already_present) == (1, 1)
    assert store.count_turns(db) == 2


def test_conflicting_content_is_refused_and_nothing_written(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])], dataset="t")
    changed = write_jsonl(tmp_path / "b.jsonl", [make_turn("d2", 0), make_turn("d1", 0, asr_text="changed")])
    with pytest.raises(store.IngestConflictError) as info:
        ingest_files(db, [changed], dataset="t")
    assert info.value.problems == [f"{changed}:2: asr_text: turn 0 of dialogue 'd1' is already stored with "
                                   "different content (differs in: asr_text)"]
    assert store.count_turns(db) == 1
    assert len(store.list_imports(db)) == 1


def test_time_order_is_checked_against_stored_turns(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0, timestamp="2026-01-05T10:00:00Z")])],
                 dataset="t")
    late = write_jsonl(tmp_path / "b.jsonl", [make_turn("d1", 1, timestamp="2026-01-05T09:00:00Z")])
    with pytest.raises(store.IngestConflictError) as info:
        ingest_files(db, [late], dataset="t")
    assert info.value.problems == [f"{late}:1: timestamp: turn 1 of dialogue 'd1' is earlier than its turn 0, "
                                   "already stored"]
    assert store.count_turns(db) == 1
    assert len(store.list_imports(db)) == 1


def test_same_turns_in_another_dataset_are_refused(db, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])
    ingest_files(db, [path], dataset="t")
    with pytest.raises(store.IngestConflictError, match="already stored in dataset 't', not 'other'"):
        ingest_files(db, [path], dataset="other")
    assert store.list_datasets(db) == ["t"]


def test_import_log_records_provenance(db, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0, mood="x")])
    ingest_files(db, [path], dataset="t", imported_by="ana")
    row = store.list_imports(db).iloc[0]
    assert (row["dataset"], row["rows_read"], row["rows_added"], row["imported_by"]) == ("t", 1, 1, "ana")
    assert row["unknown_fields"] == '{"mood": 1}'


def test_wer_counts_are_stored(db, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [
        make_turn("d1", 0, reference_text="turn on the lights", asr_text="turn the light on please"),
        make_turn("d1", 1, reference_text=None)])
    ingest_files(db, [path], dataset="t")
    rows = db.execute("SELECT wer_sub, wer_del, wer_ins, wer_ref_words FROM turns ORDER BY turn_index").fetchall()
    import jiwer

    out = jiwer.process_words("turn on the lights", "turn the light on please")
    assert rows[0] == (out.substitutions, out.deletions, out.insertions, 4)
    assert rows[1] == (-1, -1, -1, -1)  # no reference: unknown, not perfect


def test_second_process_gets_a_plain_lock_message(tmp_path):
    """While one process holds the file, the CLI says who holds it and what to do, with no traceback."""
    db_path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from app import store
        conn = store.connect({str(db_path)!r})
        print("ready", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        log = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])
        out = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(log), "--db", str(db_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 3
        assert f"is in use by process {holder.pid}" in out.stderr
        assert "Traceback" not in out.stderr
        assert "stop that process" in out.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


# The store is a package, app/store/, one module per concern; app/store.py was its single-module form.
STORE_DIR = Path(store.__file__).resolve().parent
ROOT = STORE_DIR.parent.parent
# A statement run against DuckDB (duckdb may be imported for type hints elsewhere; a nearest-neighbour
# tree's .query( is not SQL).
RUNS_SQL = re.compile(r"(?<!tree)\.(execute|sql|query)\(|duckdb\.connect")


def store_modules() -> list[Path]:
    """Every module of the store package (its subpackages too, should it grow some)."""
    modules = sorted(STORE_DIR.rglob("*.py"))
    # the facade and its modules: an empty or wrong folder would make the checks below pass vacuously
    assert STORE_DIR.name == "store" and len(modules) > 1 and STORE_DIR / "__init__.py" in modules, modules
    return modules


def test_append_only_tables_are_never_updated_or_deleted():
    """No statement in any module of the store may UPDATE or DELETE FROM a table that records what a person
    did."""
    sources = {path.name: path.read_text() for path in store_modules()}
    # the scan reads the modules that write these tables
    assert any("INSERT INTO decisions" in text for text in sources.values())
    for name, source in sources.items():
        for table in store.APPEND_ONLY_TABLES:
            assert not re.search(rf"\bUPDATE\s+{table}\b", source, re.I), (name, table)
            assert not re.search(rf"\bDELETE\s+FROM\s+{table}\b", source, re.I), (name, table)
            assert not re.search(rf"\bINSERT\s+OR\s+REPLACE\s+INTO\s+{table}\b", source, re.I), (name, table)


def test_sql_lives_only_in_the_store():
    """Only the store (every module of the app/store/ package, jobs and evaluations included, and
    evaluations) and app/migrations.py talk to DuckDB; analysis/ is pure."""
    exempt = {*store_modules(), ROOT / "app" / "migrations.py"}
    # the pattern does find the store's statements: the check below is not vacuous
    assert sum(bool(RUNS_SQL.search(path.read_text())) for path in store_modules()) > 1
    offenders = []
    for folder in ("analysis", "components", "app"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.resolve() in exempt:
                continue
            if RUNS_SQL.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# SQL text (upper-case keywords, as the store writes them; messages to people are in lower case).
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|COPY|CREATE|ORDER BY|AND)\b")


def spliced_outside_sql(path: Path) -> list[str]:
    """Where a store module other than sql.py builds SQL text from anything but app/store/sql.py: a piece of an
    f-string holding SQL that names nothing from the sql module (directly, through a name imported from it,
    or through a local variable assigned from it), or SQL text joined with + or .format()."""
    tree = ast.parse(path.read_text(), filename=str(path))
    from_sql = {"sql"} | {a.asname or a.name for node in ast.walk(tree)
                          if isinstance(node, ast.ImportFrom) and node.module == "app.store.sql" for a in node.names}

    def names(node) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}

    # local variables assigned from the sql module (one step: where, params = sql.dialogue_where(...))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and names(node.value) & from_sql:
            from_sql |= {n for t in node.targets for n in names(t)}

    def is_sql(node) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(SQL_WORDS.search(node.value))

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and any(is_sql(v) for v in node.values):
            found += [v.lineno for v in node.values
                      if isinstance(v, ast.FormattedValue) and not names(v.value) & from_sql]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)) and \
                (is_sql(node.left) or is_sql(node.right)):
            found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
                and is_sql(node.func.value):
            found.append(node.lineno)
    return [f"{path.name}:{line}" for line in sorted(set(found))]


def test_spliced_sql_lives_in_the_sql_module():
    """Every piece of SQL the store splices into a statement instead of passing it as a parameter is in
    app/store/sql.py (each with why splicing it is safe); the other modules splice only what it gives them."""
    offenders = [where for path in store_modules() if path.name != "sql.py" for where in spliced_outside_sql(path)]
    assert offenders == []
    # the check does see splicing: sql.py itself builds its statements so, and a value spliced is caught
    assert spliced_outside_sql(STORE_DIR / "sql.py")


def test_the_splice_check_catches_a_value(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from app.store import sql\n\n"
                      "def ok(cur, flt):\n"
                      "    where, params = sql.dialogue_where('t', flt)\n"
                      "    cur.execute(f'SELECT {sql.SIGNALS} FROM turns WHERE {where}', params)\n\n"
                      "def bad(cur, dataset, column):\n"
                      "    cur.execute(f\"SELECT * FROM turns WHERE dataset = '{dataset}'\")\n"
                      "    cur.execute('SELECT ' + column + ' FROM turns')\n"
                      "    cur.execute('SELECT {} FROM turns'.format(column))\n")
    assert spliced_outside_sql(module) == ["module.py:8", "module.py:9", "module.py:10"]


def test_analysis_imports_no_streamlit_or_app():
    for path in (ROOT / "analysis").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(streamlit|app|components|duckdb)\b", text, re.M), path


# ---------------------------------------------------------------------------- query rewrites


def _rewrite_run(parameters: str = '{"run": 1}', transitions: list[tuple[str, str, int]] | None = None) -> dict:
    """insert_rewrite_run's arguments for a hand-built run: rewrites a -> b (its candidate the pair of turns
    d1/0, d1/1) and c -> b (the turn d2/0), states a, b, c and the given transitions."""
    pair, pair_key = target_key("d1", 0, "d1", 1)
    turn, turn_key = target_key("d2", 0)

    def cand(kind: str, key: str, d: str, t: int, od: str | None, ot: int | None, source: str) -> dict:
        return {"task": "rewrite", "target_kind": kind, "dialogue_id": d, "turn_index": t, "other_dialogue_id": od,
                "other_turn_index": ot, "target_key": key, "value": canonical_json({"source": source, "rewrite": "b"}),
                "score": 0.9, "distribution": None, "model_name": store.REWRITE_MODEL, "model_version": "1-test",
                "model_parameters": parameters, "run_at": None}

    def rewrite(source: str, support: int, gain: float, key: str) -> dict:
        return {"source": source, "target": "b", "source_support": support, "source_failure_rate": 0.8,
                "source_success": 0.5, "target_support": 5, "target_success": 0.9, "gain": gain, "reach": 0.5,
                "direct": 3, "target_interpretation": "play_music|artist_name=b", "wins": 2, "losses": 1,
                "ties": 0, "retire_probability": 0.3, "target_key": key}

    if transitions is None:
        transitions = [("a", "b", 3), ("a", "a", 1), ("a", "<SUCCESS>", 0), ("a", "<FAILURE>", 2),
                       ("b", "<SUCCESS>", 4), ("b", "c", 1), ("c", "<SUCCESS>", 1)]
    return dict(
        candidates=pa.Table.from_pylist([cand(pair, pair_key, "d1", 0, "d1", 1, "a"),
                                         cand(turn, turn_key, "d2", 0, None, None, "c")], schema=CANDIDATE_SCHEMA),
        run={"dataset": "t", "states": "utterance", "evaluate_from": None, "n_mining_turns": 3, "n_eval_turns": 0,
             "n_rephrases": 1, "n_chains": 2, "summary": "{}"},
        rewrites=[rewrite("a", 6, 0.4, pair_key), rewrite("c", 1, 0.3, turn_key)],
        evidence=[{"source": "a", "rank": 0, "dialogue_id": "d1", "turn_index": 0, "other_dialogue_id": "d1",
                   "other_turn_index": 1}],
        states=[{"state": "a", "support": 6, "failure_rate": 0.8, "success": 0.55},
                {"state": "b", "support": 5, "failure_rate": 0.1, "success": 0.9},
                {"state": "c", "support": 1, "failure_rate": 0.0, "success": 1.0}],
        transitions=[{"from_state": f, "to_state": t, "n": n} for f, t, n in transitions],
        metrics=[{"rewriter": "chain", "grouping": "overall", "grp": "all", "metric": "wins", "value": 2.0,
                  "ci_low": None, "ci_high": None}],
    )


@pytest.fixture
def rewrite_db(db, tmp_path):
    ingest_files(db, [write_jsonl(tmp_path / "rw.jsonl", [make_turn("d1", 0), make_turn("d1", 1),
                                                          make_turn("d2", 0)])], dataset="t")
    return db


def _rewrite_counts(conn) -> tuple:
    return conn.execute("""SELECT (SELECT count(*) FROM candidates), (SELECT count(*) FROM model_runs),
        (SELECT count(*) FROM rewrite_runs), (SELECT count(*) FROM rewrites), (SELECT count(*) FROM rewrite_evidence),
        (SELECT count(*) FROM rewrite_states), (SELECT count(*) FROM rewrite_transitions),
        (SELECT count(*) FROM rewrite_metrics)""").fetchone()


def test_rewrite_graph_probabilities_depth_and_states(rewrite_db):
    import pandas as pd

    run_id = store.insert_rewrite_run(rewrite_db, **_rewrite_run())
    # another run with other counts out of a: must not change this run's probabilities
    other = store.insert_rewrite_run(rewrite_db, **_rewrite_run('{"run": 2}', [("a", "b", 100), ("a", "c", 7)]))
    assert other != run_id

    def edges(depth: int) -> list[tuple]:
        g = store.list_rewrite_graph(rewrite_db, run_id, "a", depth=depth)
        return [(r.from_state, r.to_state, int(r.n), pytest.approx(float(r.probability)), int(r.depth))
                for r in g.itertuples()]

    a_edges = [("a", "b", 3, 3 / 6, 0), ("a", "<FAILURE>", 2, 2 / 6, 0), ("a", "a", 1, 1 / 6, 0),
               ("a", "<SUCCESS>", 0, 0.0, 0)]
    b_edges = [("b", "<SUCCESS>", 4, 4 / 5, 1), ("b", "c", 1, 1 / 5, 1)]
    assert edges(1) == a_edges  # depth 1: only the source's own moves
    assert edges(2) == a_edges + b_edges  # a's self-loop does not put a at depth 1 too
    assert edges(3) == a_edges + b_edges + [("c", "<SUCCESS>", 1, 1.0, 2)]
    assert edges(10) == edges(3)

    g = store.list_rewrite_graph(rewrite_db, run_id, "a", depth=2).set_index(["from_state", "to_state"])
    assert g.loc[("a", "b"), "from_support"] == 6
    assert g.loc[("a", "b"), "from_success"] == pytest.approx(0.55)
    assert g.loc[("a", "b"), "to_success"] == pytest.approx(0.9)
    assert g.loc[("b", "c"), "to_success"] == pytest.approx(1.0)
    assert g.loc[("a", "a"), "to_success"] == pytest.approx(0.55)
    assert pd.isna(g.loc[("a", "<SUCCESS>"), "to_success"])  # absorbing states have no row

    # from b: its edges, then c's
    g = store.list_rewrite_graph(rewrite_db, run_id, "b", depth=2)
    assert [(r.from_state, r.to_state, int(r.depth)) for r in g.itertuples()] == [
        ("b", "<SUCCESS>", 0), ("b", "c", 0), ("c", "<SUCCESS>", 1)]
    assert store.list_rewrite_graph(rewrite_db, run_id, "nowhere").empty
    other_graph = store.list_rewrite_graph(rewrite_db, other, "a", depth=1)
    assert other_graph["probability"].tolist() == pytest.approx([100 / 107, 7 / 107])
    with pytest.raises(ValueError, match="depth"):
        store.list_rewrite_graph(rewrite_db, run_id, "a", depth=0)


def test_rewrite_review_status_and_approved_rewrites(rewrite_db):
    run_id = store.insert_rewrite_run(rewrite_db, **_rewrite_run())
    rw = store.list_rewrites(rewrite_db, run_id)
    assert rw["source"].tolist() == ["a", "c"]  # support x gain: 2.4, then 0.3
    assert rw["status"].tolist() == ["undecided", "undecided"] and rw["reviewed_rewrite"].isna().all()
    assert store.list_approved_rewrites(rewrite_db, run_id).empty
    cid = dict(zip(rw["source"], rw["candidate_id"].astype(int), strict=True))

    store.insert_decision(rewrite_db, decision_id="00000000-0000-0000-0000-00000000000a", candidate_id=cid["a"],
                          reviewer="ana", verdict="accept")
    rw = store.list_rewrites(rewrite_db, run_id).set_index("source")
    assert (rw.loc["a", "status"], rw.loc["a", "reviewed_rewrite"]) == ("accepted", "b")
    assert rw.loc["c", "status"] == "undecided"
    approved = store.list_approved_rewrites(rewrite_db, run_id)
    assert approved[["source", "rewrite", "mined_rewrite", "verdict", "reviewers"]].values.tolist() == [
        ["a", "b", "b", "accept", "ana"]]

    corrected = canonical_json({"source": "c", "rewrite": "play the beatles"})
    store.insert_decision(rewrite_db, decision_id="00000000-0000-0000-0000-00000000000c", candidate_id=cid["c"],
                          reviewer="ana", verdict="correct", corrected_value=corrected)
    rw = store.list_rewrites(rewrite_db, run_id).set_index("source")
    assert (rw.loc["c", "status"], rw.loc["c", "reviewed_rewrite"]) == ("corrected", "play the beatles")
    approved = store.list_approved_rewrites(rewrite_db, run_id)
    assert approved[["source", "rewrite", "mined_rewrite", "verdict"]].values.tolist() == [
        ["a", "b", "b", "accept"], ["c", "play the beatles", "b", "correct"]]

    # a second reviewer disagrees on a: a conflict, no longer approved
    store.insert_decision(rewrite_db, decision_id="00000000-0000-0000-0000-00000000000b", candidate_id=cid["a"],
                          reviewer="bo", verdict="reject")
    assert store.list_rewrites(rewrite_db, run_id).set_index("source").loc["a", "status"] == "conflict"
    assert store.list_approved_rewrites(rewrite_db, run_id)["source"].tolist() == ["c"]


def test_rewrite_run_is_stored_once(rewrite_db):
    store.insert_rewrite_run(rewrite_db, **_rewrite_run())
    before = _rewrite_counts(rewrite_db)
    assert before == (2, 1, 1, 2, 1, 3, 7, 1)
    with pytest.raises(store.IngestConflictError, match="already stored"):
        store.insert_rewrite_run(rewrite_db, **_rewrite_run())
    assert _rewrite_counts(rewrite_db) == before


def test_rewrite_run_fails_whole(rewrite_db):
    """A failure after the candidates were written (a rewrite naming no candidate) leaves nothing behind."""
    args = _rewrite_run()
    args["rewrites"][1]["target_key"] = '["nowhere", 0]'
    with pytest.raises((KeyError, ValueError)):
        store.insert_rewrite_run(rewrite_db, **args)
    assert _rewrite_counts(rewrite_db) == (0, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="at least one candidate"):
        store.insert_rewrite_run(rewrite_db, **{**_rewrite_run(), "candidates": CANDIDATE_SCHEMA.empty_table()})


def test_m006_keeps_the_jobs_of_a_database_made_at_m005(tmp_path, monkeypatch):
    """The jobs table is rebuilt (its fixed list of actions goes): every job, its id and its status survive,
    new ids follow the old ones, and an action must still look like one."""
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:5])
    old = store.connect(path)
    assert store.get_schema_version(old) == 5
    job_id = store_jobs.insert_job(old, family="labels", action="train", dataset="t", config={"epochs": 1},
                                   started_by="ana")
    store_jobs.insert_job_event(old, job_id, "done", message="trained")
    old.close()
    monkeypatch.undo()

    conn = store.connect(path)
    assert store.get_schema_version(conn) == MIGRATIONS[-1][0]
    jobs = store_jobs.list_jobs(conn)
    assert jobs[["job_id", "family", "action", "status", "started_by", "message"]].values.tolist() == [
        [job_id, "labels", "train", "done", "ana", "trained"]]
    assert store_jobs.insert_job(conn, family="rewrites", action="mine", dataset="t", config={},
                                 started_by=None) == job_id + 1
    with pytest.raises(duckdb.ConstraintException):
        conn.execute("INSERT INTO jobs (family, action, dataset) VALUES ('x', 'DROP TABLE jobs', 't')")
    conn.close()


# ------------------------------------------------------------------------------- m008: log format 1.1 stored

NBEST_11 = [{"text": "what is the weather in boston", "score": -3120.5, "confidence": 0.8},
            {"text": "what is the weather in austin", "score": -3177.0}]
WORD_CONF = [0.99, 0.98, 0.97, 0.9, 0.95, 0.42]


def v11_turns() -> list[dict]:
    """A 1.0 n-best (plain strings), a 1.1 one with audio under the root, an audio URL, and no n-best at all."""
    return [make_turn("v11", 0, asr_nbest=["what is the weather in boston", "what is the weather in austin"]),
            make_turn("v11", 1, audio="clips/v11/1.wav", audio_source="synthetic", asr_nbest=NBEST_11,
                      asr_word_confidence=WORD_CONF),
            make_turn("v11", 2, audio="https://audio.example.com/v11/2.flac?sig=abc", audio_source="recorded"),
            make_turn("v11", 3, asr_text="stop", asr_nbest=[{"text": "stop", "score": -10}],
                      asr_word_confidence=[0.5])]


def audio_root_with(tmp_path: Path, *paths: str) -> Path:
    root = tmp_path / "audio"
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"RIFF")
    return root


def test_m008_keeps_the_turns_of_a_database_made_at_m007(tmp_path, monkeypatch):
    """Turns stored before format 1.1 had columns keep every value; their n-best texts become hypotheses without
    score or confidence, so they read like any other n-best, and re-ingesting their log stays a no-op."""
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:7])
    old = store.connect(path)
    assert store.get_schema_version(old) == 7
    # written as the m007 code wrote them: the 1.0 columns only
    old.execute("INSERT INTO imports (dataset, sources, content_sha256, rows_read, rows_added, app_version) "
                "VALUES ('t', '[]', 'x', 2, 2, '0')")
    kept = ("dialogue_id", "turn_index", "timestamp", "asr_text", "reference_text", "user_id", "asr_confidence",
            "asr_nbest", "nlu_slots")
    records = [{k: v for k, v in make_turn("old", index, asr_nbest=nbest).items() if k in kept and v is not None}
               for index, nbest in ((0, ["what is the weather in boston", "what is the weather in austin"]),
                                    (1, None))]
    for index, rec in enumerate(records):
        nbest = rec.get("asr_nbest")
        old.execute("INSERT INTO turns (dataset, dialogue_id, turn_index, timestamp, asr_text, reference_text, "
                    "user_id, asr_confidence, asr_nbest, nlu_slots, wer_sub, wer_del, wer_ins, wer_ref_words, "
                    "import_id) VALUES ('t', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 0, 5, 1)",
                    [rec["dialogue_id"], index, rec["timestamp"], rec["asr_text"], rec["reference_text"],
                     rec["user_id"], rec["asr_confidence"], nbest, rec["nlu_slots"]])
    before = old.execute("SELECT * FROM turns ORDER BY turn_index").fetchall()
    old.execute("INSERT INTO model_runs (name, version) VALUES ('fp', '1')")
    old.close()
    monkeypatch.undo()

    conn = store.connect(path)
    assert store.get_schema_version(conn) == MIGRATIONS[-1][0] >= 8
    after = conn.execute("SELECT * EXCLUDE (audio, audio_source, asr_hypotheses, asr_word_confidence) FROM turns "
                         "ORDER BY turn_index").fetchall()
    assert after == before  # every value, key and import id as it was
    turns = store.get_dialogue_turns(conn, "old", "t")
    assert turns[0]["asr_hypotheses"] == [{"text": "what is the weather in boston", "score": None, "confidence": None},
                                          {"text": "what is the weather in austin", "score": None, "confidence": None}]
    assert turns[1]["asr_hypotheses"] is None
    assert all(t["audio"] is None and t["audio_source"] is None and t["asr_word_confidence"] is None for t in turns)
    assert conn.execute("SELECT count(*) FROM model_runs").fetchone()[0] == 1
    # the same 1.0 turns ingested again are the stored ones: nothing added, nothing refused
    result, _ = ingest_files(conn, [write_jsonl(tmp_path / "old.jsonl", records)], dataset="t")
    assert (result.rows_added, result.rows_already_present) == (0, 2)
    # and new 1.1 turns beside them store every part
    root = audio_root_with(tmp_path, "clips/v11/1.wav")
    result, _ = ingest_files(conn, [write_jsonl(tmp_path / "v11.jsonl", v11_turns())], dataset="t",
                             audio_root=root)
    assert result.rows_added == 4
    conn.close()


def stored_as_records(turns: list[dict]) -> list[dict]:
    """Stored turns written back as format 1.1 records: the n-best from its hypotheses (plain strings where no
    hypothesis has a score: a 1.0 n-best)."""
    out = []
    for t in turns:
        rec = {k: v for k, v in t.items() if k not in ("dataset", "import_id", "asr_hypotheses") and
               not k.startswith("wer_") and v is not None}
        rec["timestamp"] = t["timestamp"].isoformat()
        hyps = t["asr_hypotheses"]
        if hyps is not None:
            rec["asr_nbest"] = [h["text"] for h in hyps] if all(h["score"] is None for h in hyps) else [
                {k: v for k, v in h.items() if v is not None} for h in hyps]
        out.append(rec)
    return out


def test_ingest_stores_format_1_1_and_round_trips(db, tmp_path):
    from analysis.logs import read_log

    root = audio_root_with(tmp_path, "clips/v11/1.wav")
    log = write_jsonl(tmp_path / "v11.jsonl", v11_turns())
    result, unknown = ingest_files(db, [log], dataset="t", audio_root=root)
    assert (result.rows_added, unknown) == (4, {})
    turns = store.get_dialogue_turns(db, "v11", "t")
    assert [t["audio"] for t in turns] == [None, "clips/v11/1.wav", "https://audio.example.com/v11/2.flac?sig=abc",
                                           None]
    assert [t["audio_source"] for t in turns] == [None, "synthetic", "recorded", None]
    assert [t["asr_word_confidence"] for t in turns] == [None, WORD_CONF, None, [0.5]]
    assert [t["asr_hypotheses"] for t in turns] == [
        [{"text": "what is the weather in boston", "score": None, "confidence": None},
         {"text": "what is the weather in austin", "score": None, "confidence": None}],
        [{"text": "what is the weather in boston", "score": -3120.5, "confidence": 0.8},
         {"text": "what is the weather in austin", "score": -3177.0, "confidence": None}],
        None,
        [{"text": "stop", "score": -10.0, "confidence": None}]]
    # asr_nbest keeps the texts, as every 1.0 reader expects
    assert [t["asr_nbest"] for t in turns] == [[h["text"] for h in t["asr_hypotheses"]] if t["asr_hypotheses"]
                                               else None for t in turns]
    # written back as a log, the stored turns read as the original did
    again = write_jsonl(tmp_path / "again.jsonl", stored_as_records(turns))
    assert read_log(again).table.drop_columns(["extras"]).equals(read_log(log).table.drop_columns(["extras"]))
    # and ingesting either is a no-op: the stored 1.1 parts are the incoming ones
    for path in (log, again):
        result, _ = ingest_files(db, [path], dataset="t", audio_root=root)
        assert (result.rows_added, result.rows_already_present) == (0, 4)


@pytest.mark.parametrize("change, field", [
    ({"asr_nbest": [{**NBEST_11[0], "score": -1.0}, NBEST_11[1]]}, "asr_nbest"),  # a score
    ({"asr_nbest": [NBEST_11[0], {**NBEST_11[1], "confidence": 0.1}]}, "asr_nbest"),  # a confidence
    ({"audio_source": "recorded"}, "audio_source"),
    ({"asr_word_confidence": [0.1] * 6}, "asr_word_confidence"),
    ({"audio": "clips/v11/other.wav"}, "audio"),
])
def test_a_turn_stored_with_other_1_1_parts_is_a_conflict(db, tmp_path, change, field):
    root = audio_root_with(tmp_path, "clips/v11/1.wav", "clips/v11/other.wav")
    ingest_files(db, [write_jsonl(tmp_path / "a.jsonl", v11_turns())], dataset="t", audio_root=root)
    changed = v11_turns()
    changed[1].update(change)
    with pytest.raises(store.IngestConflictError) as info:
        ingest_files(db, [write_jsonl(tmp_path / "b.jsonl", changed)], dataset="t", audio_root=root)
    assert f"b.jsonl:2: {field}: turn 1 of dialogue 'v11' is already stored with different content" in str(
        info.value)
    assert db.execute("SELECT count(*) FROM imports").fetchone()[0] == 1
