"""The review queue as it was before migration 11 (issue 22), kept only as the benchmark's baseline: every refill
aggregated the whole decision log (each reviewer's latest verdict per candidate) instead of reading review_state
and candidate_state. Copied from app/store/sql.py and app/store/review.py at commit 0bd1172; not used by the app."""

from __future__ import annotations

from app.store.review import QueueSpec
from app.store.sql import ORDER_SQL, QUEUE_SELECT


def legacy_queue_sql(reviewer: str, spec: QueueSpec, *, select: str, order: bool, standing_only: bool = False,
              min_score: float | None = None, limit: int | None = None) -> tuple[str, list]:
    """The queue's query and its parameters. Only fixed SQL fragments are joined here; every value (the
    reviewer, the spec's filters, min_score, limit) is a parameter.

    select: a key of QUEUE_SELECT. standing_only: only candidates this reviewer has a standing decision on
    (accept, reject or correct). min_score: only candidates scoring at least this. limit: at most this many
    rows (with order)."""
    params: list = [reviewer]
    ctes = ["""mine AS (
        SELECT candidate_id, arg_max(verdict, seq) AS last_verdict,
               arg_max(verdict, seq) FILTER (verdict <> 'skip') AS last_real
        FROM decisions WHERE reviewer = ? AND role IN ('review', 'bulk', 'audit') GROUP BY candidate_id)"""]
    where = ["c.dataset = ?"]
    params_where: list = [spec.dataset]
    joins = ["LEFT JOIN mine USING (candidate_id)"]
    if spec.audit_bulk_id is not None:
        ctes.append("""audited AS (SELECT DISTINCT candidate_id FROM current_decisions WHERE role = 'audit')""")
        where.append("c.candidate_id IN (SELECT candidate_id FROM audit_items WHERE bulk_id = ?)")
        params_where.append(spec.audit_bulk_id)
        if spec.status == "undecided":
            where.append("c.candidate_id NOT IN (SELECT candidate_id FROM audited)")
    else:
        # Each reviewer's latest non-skip verdict per candidate, by aggregation: the same as current_decisions,
        # without its window over the whole log (that costs ~4x more with hundreds of thousands of decisions).
        ctes.append("""latest AS (SELECT candidate_id, reviewer, arg_max(verdict, seq) AS verdict,
                              arg_max(CASE verdict WHEN 'correct' THEN corrected_value WHEN 'reject' THEN '<rejected>'
                                      ELSE '<accepted>' END, seq) AS label_key
                       FROM decisions WHERE verdict <> 'skip' AND role IN ('review', 'bulk', 'audit')
                       GROUP BY candidate_id, reviewer)""")
        ctes.append("""taken AS (SELECT candidate_id, count(*) AS n FROM latest WHERE verdict <> 'retract'
                       GROUP BY candidate_id)""")
        joins.append("LEFT JOIN taken USING (candidate_id)")
        for column, value in (("c.task", spec.task), ("c.value", spec.value), ("c.run_id", spec.run_id),
                              ("c.domain", spec.domain)):
            if value is not None:
                where.append(f"{column} = ?")  # column names come from the fixed list above
                params_where.append(value)
        if spec.score_min > 0 or spec.score_max < 1:
            where.append("c.score BETWEEN ? AND ?")
            params_where += [spec.score_min, spec.score_max]
        if spec.status == "undecided":
            where.append("(mine.last_real IS NULL OR mine.last_real = 'retract') AND coalesce(taken.n, 0) < ?")
            params_where.append(spec.overlap)
        elif spec.status == "decided":
            where.append("coalesce(taken.n, 0) > 0")
    if standing_only:
        where.append("mine.last_real IN ('accept', 'reject', 'correct')")
    if min_score is not None:
        where.append("c.score >= ?")
        params_where.append(min_score)
    if order and spec.order == "disagreement":
        ctes.append("""src AS (SELECT task, target_key, count(DISTINCT value) AS n_values FROM candidates
                       WHERE dataset = ? GROUP BY ALL)""")
        params.append(spec.dataset)
        if spec.audit_bulk_id is None:
            ctes.append("""rev AS (SELECT candidate_id, count(DISTINCT label_key) AS n_labels FROM latest
                           WHERE verdict <> 'retract' GROUP BY candidate_id)""")
        else:
            ctes.append("""rev AS (SELECT candidate_id, count(DISTINCT label_key) AS n_labels FROM decision_labels
                           WHERE role <> 'adjudicate' GROUP BY candidate_id)""")
        joins += ["LEFT JOIN src USING (task, target_key)", "LEFT JOIN rev USING (candidate_id)"]
    sql = (f"WITH {', '.join(ctes)} SELECT {QUEUE_SELECT[select]} FROM candidates c {' '.join(joins)} "
           f"WHERE {' AND '.join(where)}")
    params += params_where
    if order:
        # A candidate this reviewer skipped comes back, but after everything not yet seen.
        sql += f" ORDER BY coalesce(mine.last_verdict = 'skip', false), {ORDER_SQL[spec.order]}"
        if spec.order == "random":
            params.append(spec.seed)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params



def legacy_open_slots(conn, reviewer, spec, candidate_id: int) -> int:
    if spec.status != "undecided":
        return 1
    if spec.audit_bulk_id is not None:
        audited = conn.cursor().execute(
            "SELECT count(*) FROM current_decisions WHERE candidate_id = ? AND role = 'audit'",
            [candidate_id]).fetchone()[0]
        return 0 if audited else 1
    mine, taken = conn.cursor().execute("""
        SELECT (SELECT arg_max(verdict, seq) FILTER (verdict <> 'skip') FROM decisions
                WHERE candidate_id = ? AND reviewer = ? AND role IN ('review', 'bulk', 'audit')),
               (SELECT count(*) FROM current_decisions
                WHERE candidate_id = ? AND role IN ('review', 'bulk', 'audit'))
    """, [candidate_id, reviewer, candidate_id]).fetchone()
    if mine is not None and mine != "retract":
        return 0
    return max(spec.overlap - taken, 0)
