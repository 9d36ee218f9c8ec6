"""Review: the queues (QueueSpec), the append-only decision log and its slots, reviewers, simulated
reviewers' decisions, bulk accepts with their audits, and what reviewers settled (agreement, conflicts,
calibration, reviewed labels)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import duckdb
import pandas as pd
import pyarrow as pa

from analysis.names import normalise_name
from app import __version__
from app.store import sql
from app.store.connection import _CONFLICT_LIMIT, IngestConflictError, transaction

# ----------------------------------------------------------------------------------------- queues

ORDERS = ("score_asc", "score_desc", "random", "disagreement")
STATUSES = ("undecided", "decided", "all")


@dataclass(frozen=True)
class QueueSpec:
    """Which candidates a review queue holds and in what order. Every field has a URL form."""

    dataset: str
    task: str | None = None
    value: str | None = None  # a proposed value, as its canonical JSON text
    score_min: float = 0.0
    score_max: float = 1.0
    run_id: int | None = None
    domain: str | None = None
    status: str = "undecided"
    order: str = "score_asc"
    seed: int = 0
    overlap: int = 1  # each candidate goes to this many reviewers
    audit_bulk_id: int | None = None  # the audit sample of one bulk accept, instead of the filters above

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if not (0 <= self.score_min <= self.score_max <= 1):
            raise ValueError("need 0 <= score_min <= score_max <= 1")
        if self.overlap < 1:
            raise ValueError("overlap must be at least 1")


def list_queue(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, *, limit: int = 20) -> list[int]:
    """The next candidate ids of this reviewer's queue, in order."""
    query, params = sql.queue_sql(reviewer, spec, select="ids", order=True, limit=limit)
    return [r[0] for r in conn.cursor().execute(query, params).fetchall()]


def count_queue(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec) -> int:
    query, params = sql.queue_sql(reviewer, spec, select="count", order=False)
    return conn.cursor().execute(query, params).fetchone()[0]


def count_my_decided(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec) -> int:
    """Candidates matching the queue's filters that this reviewer has a standing decision on."""
    query, params = sql.queue_sql(reviewer, replace(spec, status="all"), select="count", order=False,
                                  standing_only=True)
    return conn.cursor().execute(query, params).fetchone()[0]


def is_open(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, candidate_id: int) -> bool:
    """Whether a candidate is still in this reviewer's queue (another reviewer may have taken it)."""
    return open_slots(conn, reviewer, spec, candidate_id) > 0


def open_slots(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, candidate_id: int) -> int:
    """How many more reviewers an undecided-queue candidate may get (0: not for this reviewer any more).

    Reads this one candidate's rows of review_state and candidate_state (kept on write), so it stays cheap however
    long the decision log grows."""
    if spec.status != "undecided":
        return 1
    if spec.audit_bulk_id is not None:
        audited = conn.cursor().execute(
            "SELECT count(*) FROM current_decisions WHERE candidate_id = ? AND role = 'audit'",
            [candidate_id]).fetchone()[0]
        return 0 if audited else 1
    mine, taken = conn.cursor().execute("""
        SELECT (SELECT last_real FROM review_state WHERE candidate_id = ? AND reviewer = ?),
               coalesce((SELECT n_taken FROM candidate_state WHERE candidate_id = ?), 0)
    """, [candidate_id, reviewer, candidate_id]).fetchone()
    if mine is not None and mine != "retract":
        return 0
    return max(spec.overlap - taken, 0)


def below_threshold(spec: QueueSpec, threshold: float) -> QueueSpec | None:
    """The queue of spec's candidates scoring below threshold: the complement of a bulk accept at threshold
    (score >= threshold). The queue's score range is inclusive (BETWEEN), so its score_max is the largest
    double below threshold: the two sets are disjoint and together hold every candidate of spec. None when
    no score can be below threshold (threshold <= spec.score_min)."""
    if threshold <= spec.score_min:
        return None
    return replace(spec, score_max=min(math.nextafter(threshold, 0.0), spec.score_max))


def list_current_decisions(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> pd.DataFrame:
    """Each reviewer's current decision on a candidate (adjudications included, marked by role)."""
    return conn.cursor().execute("""
        SELECT reviewer, role, verdict, corrected_value, decided_at FROM current_decisions
        WHERE candidate_id = ? ORDER BY decided_at
    """, [candidate_id]).df()


# -------------------------------------------------------------------------------------- decisions

VERDICTS = ("accept", "reject", "correct", "skip", "retract")
ROLES = ("review", "bulk", "audit", "adjudicate")
SLOT_VERDICTS = ("accept", "reject", "correct")  # the verdicts that take one of a candidate's review slots
# Which standing decisions fill a candidate's slots, per deciding role: a review queue counts every person's
# and bulk accept's (as its queue does), an audit only the other audits (one audit per sampled item).
_SLOT_ROLES = {"review": ["review", "bulk", "audit"], "audit": ["audit"]}
# Every decision write of this process takes this lock, for two reasons.
# 1. ON CONFLICT DO NOTHING sees committed rows only: two threads submitting one decision id at once would
#    both pass it and one would fail at commit.
# 2. The slot check (insert_decision's overlap) runs inside the INSERT statement, but DuckDB gives each
#    statement a snapshot: two concurrent INSERTs would each count the other's reviewer as absent. Taken one
#    at a time, each INSERT's snapshot holds every decision committed before it.
# This is how the database side guarantees "at most `overlap` reviewers per candidate": DuckDB has no triggers
# and no partial unique indexes to state it, and one process owns the database file (DuckDB's file lock), so
# every writer goes through here. It cannot cover SQL that bypasses this module, nor decisions written without
# an overlap (decided/all queues, adjudications, the Query rewrites page), which are not slot-limited.
# Decision inserts take ~4 ms; bulk accepts hold the lock for their whole transaction.
_DECISION_LOCK = threading.Lock()


class SlotTakenError(ValueError):
    """The candidate already has as many reviewers as its queue's overlap: the decision was not stored."""


def reviewer_name(reviewer: str) -> str:
    """The stored form of a reviewer name (analysis.names.normalise_name): ``alice`` and ``alice`` + a
    zero-width space are one reviewer. Raises ValueError (InvalidNameError) for an empty or unusable name."""
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ValueError("a reviewer name is required to decide")
    return normalise_name(reviewer, what="reviewer name")


def decision_slots(spec: QueueSpec) -> int | None:
    """How many reviewers' standing decisions a candidate of this queue may hold, for insert_decision's
    overlap: the overlap of an undecided queue, 1 in an audit (one audit per sampled item, as open_slots);
    None for decided and all queues, which revisit decided candidates on purpose."""
    if spec.status != "undecided":
        return None
    return 1 if spec.audit_bulk_id is not None else spec.overlap


def insert_decision(conn: duckdb.DuckDBPyConnection, *, decision_id: str, candidate_id: int, reviewer: str,
                    verdict: str, corrected_value: str | None = None, role: str = "review",
                    overlap: int | None = None) -> bool:
    """Append one decision; committed when this returns. Returns False if decision_id was already stored
    (a double submit: the database's primary key makes a duplicate impossible, not unlikely) or the
    candidate does not exist. The reviewer name is stored normalised (reviewer_name).

    overlap (review and audit roles): an accept, reject or correction is stored only while fewer than overlap
    OTHER reviewers hold a standing decision on the candidate (their latest non-skip decision, not a
    retraction: current_decisions), checked in the INSERT statement itself; otherwise SlotTakenError is
    raised and nothing is stored. A reviewer's own earlier decision never blocks their new one."""
    reviewer = reviewer_name(reviewer)
    if verdict not in VERDICTS or role not in ROLES or role == "bulk":
        raise ValueError(f"bad verdict or role: {verdict!r}, {role!r}")
    if overlap is not None and (role not in _SLOT_ROLES or isinstance(overlap, bool) or not isinstance(overlap, int)
                                or overlap < 1):
        raise ValueError(f"overlap must be a positive int, for the review and audit roles: {overlap!r}, {role!r}")
    limit = overlap if verdict in SLOT_VERDICTS else None
    cur = conn.cursor()
    try:
        with _DECISION_LOCK, transaction(cur):
            rows = cur.execute("""
            INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, corrected_value, role, app_version)
            SELECT ?, candidate_id, ?, ?, ?, ?, ? FROM candidates WHERE candidate_id = ?
              AND (?::INTEGER IS NULL OR (
                  SELECT count(*) FROM (
                      SELECT arg_max(verdict, seq) AS verdict, arg_max(role, seq) AS role FROM decisions
                      WHERE candidate_id = ? AND reviewer <> ? AND verdict <> 'skip' AND role <> 'adjudicate'
                      GROUP BY reviewer)
                  WHERE verdict <> 'retract' AND list_contains(?::VARCHAR[], role)) < ?::INTEGER)
            ON CONFLICT DO NOTHING RETURNING decision_id
            """, [decision_id, reviewer, verdict, corrected_value, role, __version__, candidate_id,
                  limit, candidate_id, reviewer, _SLOT_ROLES.get(role, []), limit]).fetchall()
            if rows:
                _refresh_review_state(cur, "one", [candidate_id, reviewer])
            if not rows and limit is not None and _slot_was_taken(cur, decision_id, candidate_id):
                raise SlotTakenError(f"candidate #{candidate_id} already has its {limit} reviewer(s) in this "
                                     "queue; the decision was not stored")
    except (duckdb.ConstraintException, duckdb.TransactionException):
        # Another process-level writer (not through this lock) committed the same id first: still one row.
        if cur.execute("SELECT count(*) FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()[0]:
            return False
        raise
    finally:
        cur.close()
    return bool(rows)


def _refresh_review_state(cur: duckdb.DuckDBPyConnection, touched: str, params: list) -> None:
    """Bring review_state and candidate_state up to date for the pairs a decision write touched (a key of
    sql.TOUCHED_PAIRS and its parameters), inside that write's transaction: the queue reads these instead of
    aggregating the whole decision log. Recomputed from the log for those pairs only (one candidate's rows for a
    decision), not patched, so they cannot drift from it."""
    for statement in sql.review_state_refresh(touched):
        cur.execute(statement, params)


def _slot_was_taken(cur: duckdb.DuckDBPyConnection, decision_id: str, candidate_id: int) -> bool:
    """Why a slot-checked INSERT stored nothing: not a double submit, not an unknown candidate: the slots."""
    known, duplicate = cur.execute("""
        SELECT EXISTS (SELECT 1 FROM candidates WHERE candidate_id = ?),
               EXISTS (SELECT 1 FROM decisions WHERE decision_id = ?)
    """, [candidate_id, decision_id]).fetchone()
    return known and not duplicate


def count_decisions(conn: duckdb.DuckDBPyConnection, *, reviewer: str | None = None) -> int:
    if reviewer is None:
        return conn.cursor().execute("SELECT count(*) FROM decisions").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM decisions WHERE reviewer = ?", [reviewer]).fetchone()[0]


def list_reviewers(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every name that has decided or imported anything, in its normal form (reviewer_name), sorted: new names
    are checked against them. Names stored before decisions were normalised (and import names, stored as
    given) are folded to that form; one that has none (nothing visible, too long) names nobody who could
    type it, and is left out so that it cannot make every look-alike check fail."""
    names = set()
    for (raw,) in conn.cursor().execute("""
        SELECT DISTINCT reviewer FROM decisions
        UNION SELECT DISTINCT imported_by FROM imports WHERE imported_by IS NOT NULL
    """).fetchall():
        try:
            names.add(reviewer_name(raw))
        except ValueError:
            continue
    return sorted(names)


def get_reviewer_rate(conn: duckdb.DuckDBPyConnection, reviewer: str) -> int:
    """Decisions (not skips or undos) this reviewer made in the last hour."""
    return conn.cursor().execute("""
        SELECT count(*) FROM decisions WHERE reviewer = ? AND verdict IN ('accept', 'reject', 'correct')
          AND role <> 'bulk' AND decided_at > current_timestamp - INTERVAL 1 HOUR
    """, [reviewer]).fetchone()[0]


def list_decision_log(conn: duckdb.DuckDBPyConnection, candidate_id: int) -> pd.DataFrame:
    """The full history of one candidate, oldest first."""
    return conn.cursor().execute("""
        SELECT seq, decision_id, reviewer, role, verdict, corrected_value, decided_at, app_version
        FROM decisions WHERE candidate_id = ? ORDER BY seq
    """, [candidate_id]).df()


# ------------------------------------------------------------------------------- simulated reviewers
# What they read is list_candidate_targets (candidates) and list_turn_gold (turns); their decisions are
# appended many at once.


@dataclass(frozen=True)
class DecisionImportResult:
    rows_read: int
    rows_added: int
    rows_already_present: int


def insert_simulated_decisions(conn: duckdb.DuckDBPyConnection, decisions: pa.Table) -> DecisionImportResult:
    """Append simulated reviewers' decisions (columns decision_id, candidate_id, reviewer, verdict, corrected_value;
    analysis.simulated_reviewers.DECISION_SCHEMA) in one transaction, through Arrow, as role 'review'. Decisions
    are append-only: nothing stored is changed.

    Idempotent: a row whose decision_id is stored already, identical, is skipped, so storing the same simulation
    twice adds nothing. Refused with IngestConflictError, writing nothing, when a reviewer of the batch already
    has a stored decision on a candidate of the batch's datasets that the batch does not hold identically (the
    simulation was stored with another seed,
    error rate or share, or a person decided under the name), when a decision id is stored with other content,
    or when a candidate does not exist. Raises ValueError, writing nothing, for a batch that is not simulated
    decisions: a reviewer name that is not in its stored form, is not marked "(simulated)" or looks like another
    stored name; a verdict other than accept, reject or correct; a correction without a value or a value
    without a correction; a repeated decision id or (reviewer, candidate)."""
    from analysis.names import find_lookalike
    from analysis.simulated_reviewers import DECISION_SCHEMA, SIMULATED_MARK

    missing = [c for c in DECISION_SCHEMA.names if c not in decisions.column_names]
    if missing:
        raise ValueError(f"simulated decisions need the columns {', '.join(DECISION_SCHEMA.names)}; missing "
                         f"{', '.join(missing)}")
    decisions = decisions.select(DECISION_SCHEMA.names).cast(DECISION_SCHEMA)
    rows = decisions.to_pylist()
    names = sorted({r["reviewer"] for r in rows})
    for name in names:
        if name is None or reviewer_name(name) != name or not name.endswith(f" {SIMULATED_MARK}"):
            raise ValueError(f"{name!r} is not a simulated reviewer's name: it must be in its stored form and end "
                             f"with {SIMULATED_MARK!r}")
    for r in rows:
        if r["verdict"] not in SLOT_VERDICTS or (r["verdict"] == "correct") != (r["corrected_value"] is not None):
            raise ValueError(f"decision {r['decision_id']}: verdict {r['verdict']!r} with corrected value "
                             f"{r['corrected_value']!r}; a simulated reviewer accepts, rejects or corrects to a value")
    if len({r["decision_id"] for r in rows}) < len(rows) or len({(r["reviewer"], r["candidate_id"]) for r in rows}
                                                               ) < len(rows):
        raise ValueError("simulated decisions repeat a decision id or a (reviewer, candidate): one decision each")
    cur = conn.cursor()
    cur.register("incoming_d", decisions)
    try:
        with _DECISION_LOCK, transaction(cur):
            stored = list_reviewers(conn)
            for name in names:
                other = find_lookalike(name, stored)
                if other is not None:
                    raise ValueError(f"the simulated reviewer name {name!r} looks like the stored reviewer name "
                                     f"{other!r}")
            cur.execute("""CREATE OR REPLACE TEMP TABLE staged_d AS
                           SELECT decision_id::UUID AS decision_id, candidate_id, reviewer, verdict, corrected_value
                           FROM incoming_d""")
            problems = [f"candidate #{cid}: no such candidate" for (cid,) in cur.execute(
                "SELECT candidate_id FROM staged_d ANTI JOIN candidates USING (candidate_id) ORDER BY 1 LIMIT ?",
                [_CONFLICT_LIMIT]).fetchall()]
            # sql.SAME_DECISION: a constant (the same id, candidate, reviewer, verdict and value, by a review)
            for reviewer, n in cur.execute(f"""
                SELECT d.reviewer, count(*) FROM decisions d JOIN candidates dc USING (candidate_id)
                WHERE d.reviewer IN (SELECT reviewer FROM staged_d)
                  -- a simulation covers its datasets' candidates: another dataset's decisions are another's
                  AND dc.dataset IN (SELECT c.dataset FROM staged_d JOIN candidates c USING (candidate_id))
                  AND NOT EXISTS (SELECT 1 FROM staged_d s WHERE {sql.SAME_DECISION})
                GROUP BY 1 ORDER BY 1""").fetchall():
                problems.append(f"{reviewer!r} already has {n:,} stored decision(s) that this simulation would not "
                                "make (stored with another seed, error rate or share, or decided by a person under "
                                "that name); decisions are never changed, so use a new database to simulate again "
                                "with other settings")
            # (a reviewer of this batch is covered above; this finds an id stored under another name)
            clash = cur.execute(f"""SELECT count(*) FROM staged_d s JOIN decisions d USING (decision_id)
                                    WHERE NOT ({sql.SAME_DECISION})
                                      AND d.reviewer NOT IN (SELECT reviewer FROM staged_d)
                                 """).fetchone()[0]
            if clash:
                problems.append(f"{clash:,} decision id(s) are stored already, under another reviewer's name")
            if problems:
                raise IngestConflictError(problems)
            added = cur.execute("""
                INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, corrected_value, role, app_version)
                SELECT decision_id, candidate_id, reviewer, verdict, corrected_value, 'review', ? FROM staged_d
                ANTI JOIN decisions USING (decision_id)
                ORDER BY candidate_id, reviewer
            """, [__version__]).fetchone()[0]
            _refresh_review_state(cur, "simulated", [])
            cur.execute("DROP TABLE staged_d")
    finally:
        cur.unregister("incoming_d")
        cur.close()
    return DecisionImportResult(len(rows), int(added), len(rows) - int(added))


# ------------------------------------------------------------------------------ bulk and audits


@dataclass(frozen=True)
class BulkResult:
    bulk_id: int
    accepted: int
    audit_sample: int


def count_bulk_preview(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, threshold: float) -> int:
    """How many candidates a bulk accept with these filters and score threshold would accept."""
    query, params = sql.queue_sql(reviewer, replace(spec, status="undecided"), select="count", order=False,
                                  min_score=threshold)
    return conn.cursor().execute(query, params).fetchone()[0]


def bulk_accept(conn: duckdb.DuckDBPyConnection, reviewer: str, spec: QueueSpec, threshold: float, *,
                audit_size: Callable[[int], int], seed: int = 0) -> BulkResult:
    """Accept every undecided candidate of the queue with score >= threshold, in one transaction, and draw
    a simple random audit sample of them (audit_size(n) items) for people to check. The reviewer name is
    stored normalised (reviewer_name)."""
    reviewer = reviewer_name(reviewer)
    query, params = sql.queue_sql(reviewer, replace(spec, status="undecided"), select="ids", order=False,
                                  min_score=threshold)
    cur = conn.cursor()
    try:
        # Under the decision lock: a review decision committing during the bulk transaction would be unseen by
        # its pick, and the candidate would get one reviewer more than its overlap.
        with _DECISION_LOCK, transaction(cur):
            cur.execute(sql.bulk_pick(query), params)
            n = cur.execute("SELECT count(*) FROM bulk_pick").fetchone()[0]
            if n == 0:
                raise ValueError("no candidate matches: nothing to accept")
            bulk_id = cur.execute("""
                INSERT INTO bulk_actions (reviewer, queue, threshold, n_accepted, app_version)
                VALUES (?, ?, ?, ?, ?) RETURNING bulk_id
            """, [reviewer, json.dumps(asdict(spec), default=str), threshold, n, __version__]).fetchone()[0]
            cur.execute("""
                INSERT INTO decisions (decision_id, candidate_id, reviewer, verdict, role, bulk_id, app_version)
                SELECT uuid(), candidate_id, ?, 'accept', 'bulk', ?, ? FROM bulk_pick
            """, [reviewer, bulk_id, __version__])
            _refresh_review_state(cur, "bulk", [reviewer])
            k = audit_size(n)
            cur.execute("""
                INSERT INTO audit_items (bulk_id, candidate_id)
                SELECT ?, candidate_id FROM bulk_pick ORDER BY hash(candidate_id, ?::BIGINT), candidate_id LIMIT ?
            """, [bulk_id, seed + bulk_id, k])  # a different random sample for every bulk accept
            cur.execute("DROP TABLE bulk_pick")
            return BulkResult(bulk_id, n, k)
    finally:
        cur.close()


def list_bulk_actions(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Bulk accepts with their audit progress: sampled, audited, and how many audits kept the label."""
    return conn.cursor().execute("""
        WITH audits AS (
            SELECT a.bulk_id, count(*) AS sampled, count(d.candidate_id) AS audited,
                   count(*) FILTER (d.verdict = 'accept') AS confirmed
            FROM audit_items a
            LEFT JOIN (SELECT candidate_id, arg_max(verdict, seq) AS verdict FROM current_decisions
                       WHERE role = 'audit' GROUP BY candidate_id) d USING (candidate_id)
            GROUP BY a.bulk_id
        )
        SELECT b.bulk_id, b.reviewer, b.threshold, b.n_accepted, b.created_at, b.queue,
               coalesce(a.sampled, 0) AS sampled, coalesce(a.audited, 0) AS audited,
               coalesce(a.confirmed, 0) AS confirmed
        FROM bulk_actions b LEFT JOIN audits a USING (bulk_id)
        WHERE json_extract_string(b.queue, '$.dataset') = ?
        ORDER BY b.bulk_id DESC
    """, [dataset]).df()


# ------------------------------------------------------------------ agreement, conflicts, calibration


def list_decision_labels(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Every reviewer's current label per candidate (people only: no bulk, no adjudication), for agreement."""
    return conn.cursor().execute("""
        SELECT dl.task, dl.candidate_id AS item, dl.reviewer, dl.label_key AS label
        FROM decision_labels dl JOIN candidates c USING (candidate_id)
        WHERE c.dataset = ? AND dl.role IN ('review', 'audit')
    """, [dataset]).df()


def list_conflicts(conn: duckdb.DuckDBPyConnection, dataset: str, *, task: str | None = None,
                   limit: int = 200) -> pd.DataFrame:
    """Candidates whose reviewers disagree and that no one has adjudicated, with each reviewer's label."""
    return conn.cursor().execute("""
        SELECT c.candidate_id, c.task, c.dialogue_id, c.turn_index, c.value AS proposed_value, c.score,
               list(struct_pack(reviewer := dl.reviewer, label := dl.label_key) ORDER BY dl.reviewer) AS labels
        FROM resolved_labels r JOIN candidates c USING (candidate_id)
        JOIN decision_labels dl ON dl.candidate_id = c.candidate_id AND dl.role <> 'adjudicate'
        WHERE r.status = 'conflict' AND c.dataset = ? AND (? IS NULL OR c.task = ?)
        GROUP BY ALL ORDER BY c.candidate_id LIMIT ?
    """, [dataset, task, task, limit]).df()


def list_scored_verdicts(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Score and resolved verdict of every candidate people decided (bulk accepts excluded: they would
    only echo the threshold), for calibration. accepted is True for accept, False for reject/correct."""
    return conn.cursor().execute("""
        SELECT c.task, c.run_id, r.name AS model, r.version, c.score, (rl.verdict = 'accept') AS accepted
        FROM resolved_labels rl JOIN candidates c USING (candidate_id) JOIN model_runs r USING (run_id)
        WHERE c.dataset = ? AND rl.status IN ('agreed', 'adjudicated')
          AND candidate_id IN (SELECT candidate_id FROM current_decisions
                               WHERE role IN ('review', 'audit', 'adjudicate'))
    """, [dataset]).df()


def list_reviewed_labels(conn: duckdb.DuckDBPyConnection, dataset: str, task: str) -> dict[tuple[str, int], str]:
    """Turn labels people settled for a task (accepted or corrected; agreed or adjudicated), by turn."""
    rows = conn.cursor().execute("""
        SELECT c.dialogue_id, c.turn_index, json_extract_string(rl.label, '$')
        FROM resolved_labels rl JOIN candidates c USING (candidate_id)
        WHERE c.dataset = ? AND c.task = ? AND c.target_kind = 'turn' AND rl.status IN ('agreed', 'adjudicated')
          AND rl.verdict IN ('accept', 'correct')
    """, [dataset, task]).fetchall()
    return {(d, int(t)): label for d, t, label in rows}
