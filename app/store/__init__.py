"""Every SQL statement of turnlens: small typed functions taking the DuckDB connection first.

Reads return Arrow tables or pandas DataFrames; writes run inside ``transaction``. Every value is a parameter:
the only SQL text spliced into a statement is in ``sql``, each piece with why that is safe. Tables holding
what a person did (imports, review decisions, bulk accepts and their audits, model runs and candidates, ...:
APPEND_ONLY_TABLES) are append-only: no module of the store updates or deletes their rows
(``tests/test_store.py`` checks it).

The package is split by concern; callers use this facade (``from app import store``; ``store.insert_decision``),
which re-exports every public name of its modules:

- ``connection``: connect (DuckDB's one-process file lock: StoreLockedError), transaction, schema version,
  the default database path, and the errors every writer shares (IngestConflictError).
- ``turns``: ingest of the logs (insert_turns, imports) and every read of turns: datasets, overview counts,
  failure signals (by domain, with the per-dialogue sums their intervals need), dialogues, filter values, turn
  records, WER pairs, gold fields, speaker turns.
- ``candidates``: candidate import (with model runs and probability vectors) and the reads of candidates.
- ``review``: review queues, the decision log and its slots, reviewers, simulated reviewers' decisions, bulk
  accepts with their audits, agreement, conflicts, calibration verdicts, reviewed labels.
- ``export``: the labels export (typed JSONL and Parquet, CSV made safe for spreadsheets) and the dataset card.
- ``results``: each model family's reads (failure points, generated labels, skill routing, query rewrites and
  their stored mining runs) and the logged NLU output.
- ``jobs``: model jobs and their append-only events (job_status is the latest), checkpoints of finished runs;
  ``evaluations``: evaluations tied to their model run, and stored analyses (disparity). These two are used
  as modules (``from app.store import jobs as store_jobs``), not through this facade.
- ``sql``: the SQL fragments spliced into statements (column lists, whitelisted expressions, the queue and
  dialogue-filter builders, the export's COPY): constants and whitelisted identifiers only.

Functions call each other inside the package directly: patching a name on this facade (as tests do with
``store.insert_decision``) changes what callers of the facade get, not the store's own internal calls.
"""

from __future__ import annotations

from app.store.candidates import (
    CandidateImportResult,
    count_candidates,
    get_candidate,
    get_candidate_distribution,
    get_turn_texts,
    insert_candidates,
    list_candidate_targets,
    list_known_values,
    list_model_runs,
    list_proposals,
    list_tasks,
)
from app.store.connection import (
    IngestConflictError,
    StoreLockedError,
    connect,
    default_db_path,
    get_schema_version,
    transaction,
)
from app.store.export import (
    CARD_NAME,
    EXPORT_FORMATS,
    EXPORT_KINDS,
    INTEROP_FORMATS,
    export_interop,
    export_labels,
    list_export_rows,
    write_dataset_card,
)
from app.store.results import (
    LABEL_MODEL,
    REWRITE_MODEL,
    SKILL_ROUTER,
    count_skill_review,
    insert_rewrite_run,
    list_approved_rewrites,
    list_failure_runs,
    list_failure_shares,
    list_failure_turns,
    list_failure_vs_gold,
    list_gold_skills,
    list_intent_disagreements,
    list_label_candidates,
    list_label_runs,
    list_nlu_outputs,
    list_rewrite_evidence,
    list_rewrite_graph,
    list_rewrite_inputs,
    list_rewrite_metrics,
    list_rewrite_runs,
    list_rewrites,
    list_skill_candidates,
    list_skill_runs,
)
from app.store.review import (
    ORDERS,
    ROLES,
    SLOT_VERDICTS,
    STATUSES,
    VERDICTS,
    BulkResult,
    DecisionImportResult,
    QueueSpec,
    SlotTakenError,
    below_threshold,
    bulk_accept,
    count_bulk_preview,
    count_decisions,
    count_my_decided,
    count_queue,
    decision_slots,
    get_reviewer_rate,
    insert_decision,
    insert_simulated_decisions,
    is_open,
    list_bulk_actions,
    list_conflicts,
    list_current_decisions,
    list_decision_labels,
    list_decision_log,
    list_queue,
    list_reviewed_labels,
    list_reviewers,
    list_scored_verdicts,
    open_slots,
    reviewer_name,
)
from app.store.sql import FAILURE_GROUPS, LABEL_GOLD
from app.store.turns import (
    DIALOGUE_ORDERS,
    DialogueFilter,
    IngestResult,
    OverviewCounts,
    count_turns,
    get_dialogue_turns,
    get_overview_counts,
    get_wer_normaliser,
    insert_turns,
    list_datasets,
    list_dialogues,
    list_domain_signal_sums,
    list_imports,
    list_signals_by_day,
    list_signals_by_domain,
    list_speaker_turns,
    list_speaker_utterances,
    list_turn_audio,
    list_turn_gold,
    list_turn_records,
    list_values,
    list_wer_pairs,
    list_worst_utterances,
    set_wer_normaliser,
)

APPEND_ONLY_TABLES = ("imports", "decisions", "bulk_actions", "audit_items", "model_runs", "candidates",
                      "candidate_distributions", "jobs", "job_events", "evaluations", "analyses", "account_events")

__all__ = [
    "APPEND_ONLY_TABLES",
    # connection
    "IngestConflictError", "StoreLockedError", "connect", "default_db_path", "get_schema_version", "transaction",
    # turns
    "DIALOGUE_ORDERS", "DialogueFilter", "IngestResult", "OverviewCounts", "count_turns", "get_dialogue_turns",
    "get_overview_counts", "get_wer_normaliser", "set_wer_normaliser", "insert_turns", "list_datasets",
    "list_dialogues", "list_domain_signal_sums",
    "list_imports", "list_signals_by_day", "list_signals_by_domain", "list_speaker_turns", "list_speaker_utterances",
    "list_turn_audio", "list_turn_gold", "list_turn_records", "list_values", "list_wer_pairs", "list_worst_utterances",
    # candidates
    "CandidateImportResult", "count_candidates", "get_candidate", "get_candidate_distribution", "get_turn_texts",
    "insert_candidates", "list_candidate_targets", "list_known_values", "list_model_runs", "list_proposals",
    "list_tasks",
    # review
    "ORDERS", "ROLES", "SLOT_VERDICTS", "STATUSES", "VERDICTS", "BulkResult", "DecisionImportResult", "QueueSpec",
    "SlotTakenError", "below_threshold", "bulk_accept", "count_bulk_preview", "count_decisions",
    "count_my_decided", "count_queue", "decision_slots", "get_reviewer_rate", "insert_decision",
    "insert_simulated_decisions", "is_open", "list_bulk_actions", "list_conflicts", "list_current_decisions",
    "list_decision_labels", "list_decision_log", "list_queue", "list_reviewed_labels", "list_reviewers",
    "list_scored_verdicts", "open_slots", "reviewer_name",
    # export
    "CARD_NAME", "EXPORT_FORMATS", "EXPORT_KINDS", "INTEROP_FORMATS", "export_interop", "export_labels",
    "list_export_rows", "write_dataset_card",
    # results
    "FAILURE_GROUPS", "LABEL_GOLD", "LABEL_MODEL", "REWRITE_MODEL", "SKILL_ROUTER", "count_skill_review",
    "insert_rewrite_run", "list_approved_rewrites", "list_failure_runs", "list_failure_shares",
    "list_failure_turns", "list_failure_vs_gold", "list_gold_skills", "list_intent_disagreements",
    "list_label_candidates", "list_label_runs", "list_nlu_outputs", "list_rewrite_evidence", "list_rewrite_graph",
    "list_rewrite_inputs", "list_rewrite_metrics", "list_rewrite_runs", "list_rewrites", "list_skill_candidates",
    "list_skill_runs",
]
