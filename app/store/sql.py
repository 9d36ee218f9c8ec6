"""Every piece of SQL text the store splices into a statement instead of passing it as a parameter.

Values never come through here: everything below is either a constant of this module, an identifier taken from
a fixed list (the log format's fields, a whitelist checked before use), or a statement assembled only from such
pieces, with a ``?`` wherever a value goes. Each entry says why splicing it is safe. The other modules of the
store splice nothing but names from this module into their statements; a new dynamic fragment belongs here,
with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from analysis import wer_normalise
from analysis.candidates import is_task_name
from analysis.log_format import FIELDS, FIELDS_1_1, NBEST_CONFIDENCE, NBEST_SCORE

if TYPE_CHECKING:
    from app.store.review import QueueSpec
    from app.store.turns import DialogueFilter

# ------------------------------------------------------------------------------------------ turns

# The stored columns of the log format, in its order: the format's fixed field list, never input.
V1_COLUMNS = [f.name for f in FIELDS]
# Quoted, for the INSERT of new turns (insert_turns).
TURN_COLUMNS = ", ".join(f'"{c}"' for c in V1_COLUMNS)
# Format 1.1's flat fields, stored beside the 1.0 columns since m008 (audio, audio_source, asr_word_confidence):
# the format's fixed list of 1.1 fields, quoted. The n-best's scores and confidences are stored inside
# asr_hypotheses (HYPOTHESES below), not as columns of their own.
V1_1_COLUMNS = [f.name for f in FIELDS_1_1]
TURN_COLUMNS_1_1 = ", ".join(f'"{c}"' for c in V1_1_COLUMNS)
# The incoming row's n-best as whole hypotheses, for the asr_hypotheses column (m008): the texts (asr_nbest) with
# the reader's parallel score and confidence lists (log_format.NBEST_SCORE, NBEST_CONFIDENCE; NULL for a 1.0
# n-best of plain strings, and a confidence NULL where a 1.1 object has none); NULL without an n-best. Column
# names of the format only.
HYPOTHESES = (f"""CASE WHEN i.asr_nbest IS NULL THEN NULL ELSE list_transform(generate_series(1, len(i.asr_nbest)), """
              f"""lambda k: {{'text': i.asr_nbest[k], 'score': i."{NBEST_SCORE}"[k]::DOUBLE, """
              f"""'confidence': i."{NBEST_CONFIDENCE}"[k]::DOUBLE}}) END""")
# Which stored fields of a turn differ from the incoming row, by name (insert_turns' conflict report): one CASE
# per field of the fixed lists (and extras); the names appear as identifiers and as their own string literals.
# The n-best is compared whole (texts, scores, confidences) and reported by its field's name, asr_nbest.
CHANGED_FIELDS = ", ".join(
    [f"""CASE WHEN ({HYPOTHESES}) IS DISTINCT FROM t.asr_hypotheses THEN 'asr_nbest' END""" if c == "asr_nbest"
     else f"""CASE WHEN i."{c}" IS DISTINCT FROM t."{c}" THEN '{c}' END"""
     for c in V1_COLUMNS + V1_1_COLUMNS + ["extras"]])

# What production traffic has: scoring reads only these (no reference transcript, no gold labels; the speaker
# embedding is left out too, as no turn-level model reads it and it is the largest field). Both lists are
# the format's fixed field list (list_turn_records).
PRODUCTION_COLUMNS = [c for c in V1_COLUMNS
                      if not c.startswith("gold_") and c not in ("reference_text", "speaker_embedding")]
RECORD_COLUMNS = ", ".join(V1_COLUMNS)
PRODUCTION_RECORD_COLUMNS = ", ".join(PRODUCTION_COLUMNS)


def production_columns(fields: Iterable[str]) -> str:
    """A column list of production fields for a SELECT: each name checked against PRODUCTION_COLUMNS (so only a
    known column name is ever spliced, never a value); ValueError names one that is not."""
    fields = list(fields)
    unknown = [f for f in fields if f not in PRODUCTION_COLUMNS]
    if unknown or not fields:
        raise ValueError(f"not production fields of the log format: {unknown or 'none given'}")
    return ", ".join(fields)



def dialogue_page_sql(columns: str, where: str) -> str:
    """One page of a dataset's turns, whole dialogues at a time (streaming.iter_dialogue_pages: keyset paging on
    dialogue_id). columns and where are fragments of this module (RECORD_COLUMNS, NBEST_SCORED_WHERE, ...);
    the values (dataset, the last dialogue id, the page size) are parameters."""
    return f"""
        WITH page AS (SELECT DISTINCT dialogue_id FROM turns
                      WHERE dataset = ? AND ({where}) AND (? IS NULL OR dialogue_id > ?)
                      ORDER BY dialogue_id LIMIT ?)
        SELECT {columns} FROM turns SEMI JOIN page USING (dialogue_id)
        WHERE dataset = ? AND ({where}) ORDER BY dialogue_id, turn_index
    """


# What rescoring reads of a turn with an n-best list (app/store/rescoring.py): fixed column lists and conditions.
NBEST_COLUMNS = "dialogue_id, turn_index, speaker_id, asr_text, asr_hypotheses"
NBEST_HAS_LIST = "asr_hypotheses IS NOT NULL AND len(asr_hypotheses) > 0"
NBEST_SCORED = "len(list_filter(asr_hypotheses, lambda h: h.score IS NULL)) = 0"  # every hypothesis has a score
NBEST_SCORED_WHERE = f"{NBEST_HAS_LIST} AND {NBEST_SCORED}"

# The quoted names of the log format's gold fields (list_turn_gold), fixed in code.
GOLD_COLUMNS = ", ".join(f'"{f.name}"' for f in FIELDS if f.name.startswith("gold_"))

# The logged NLU output of a turn (list_nlu_outputs): a fixed column list.
NLU_COLUMNS = ", ".join(("dialogue_id", "turn_index", "nlu_intent", "nlu_slots", "nlu_confidence"))

# Pooled WER and CER and the rate of each failure signal, for any grouping of turns (of turns_with_wer: the
# CER needs its character counts): a constant.
SIGNALS = """
    count(*) AS turns,
    sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0)
      / nullif(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0) AS pooled_wer,
    sum(char_edits) FILTER (ref_chars >= 0) / nullif(sum(ref_chars) FILTER (ref_chars >= 0), 0) AS pooled_cer,
    avg(CASE WHEN response_status = 'unhandled' THEN 1 ELSE 0 END) AS unhandled_rate,
    avg(CASE WHEN response_status = 'error' THEN 1 ELSE 0 END) AS error_rate,
    avg(CASE WHEN barge_in THEN 1 ELSE 0 END) AS barge_in_rate,
    avg(CASE WHEN user_feedback = 'negative' THEN 1 ELSE 0 END) AS negative_feedback_rate
"""

# The categorical columns a filter menu may list (list_values): the column is checked against this set
# before it is spliced.
FILTERABLE_COLUMNS = frozenset({"nlu_domain", "nlu_intent", "response_status", "user_id", "device_type",
                                "response_skill", "user_feedback"})

# A turn with a visible component failure in the log: the response was unhandled or an error, entity resolution
# left the request unresolved, or speech synthesis failed (the components the dialogue view marks FAILED). A
# barge-in is not one: the user interrupting is a signal, not a failure of a component. A constant.
FAILED_TURN = "(response_status IN ('unhandled', 'error') OR er_status = 'unresolved' OR tts_status = 'failed')"

# The orders of the Dialogues page's list (list_dialogues checks the name against this table): constants over
# the list's own result columns.
DIALOGUE_ORDERS = {"newest": "started DESC, dialogue_id",
                   "wer": "pooled_wer DESC NULLS LAST, started DESC, dialogue_id"}


# ------------------------------------------------------------------------------------------ word error rates


def turns_with_wer(normaliser: str) -> str:
    """The turns table as a subquery (``FROM {source} t``) whose wer_sub, wer_del, wer_ins and wer_ref_words are
    the counts under ``normaliser`` (m010's turn_wer), with char_edits and ref_chars beside them; all -1 where a
    turn has no reference, as in the turns table. ``raw`` keeps the turns' own word counts (stored with every
    turn since m001) and takes only the character counts from turn_wer.

    The normaliser is spliced as a string literal only after it is checked against
    analysis.wer_normalise.NAMES, a fixed tuple of names made of lowercase letters, digits and '-': ValueError
    for anything else, so no input reaches the SQL text."""
    if normaliser not in wer_normalise.NAMES:
        raise ValueError(f"unknown WER normaliser {normaliser!r}: known are {', '.join(wer_normalise.NAMES)}")
    counts = "" if normaliser == wer_normalise.RAW else (
        " REPLACE (coalesce(w.wer_sub, -1) AS wer_sub, coalesce(w.wer_del, -1) AS wer_del, "
        "coalesce(w.wer_ins, -1) AS wer_ins, coalesce(w.wer_ref_words, -1) AS wer_ref_words)")
    return f"""(SELECT t.*{counts}, coalesce(w.char_edits, -1) AS char_edits, coalesce(w.ref_chars, -1) AS ref_chars
        FROM turns t LEFT JOIN turn_wer w
          ON w.dialogue_id = t.dialogue_id AND w.turn_index = t.turn_index AND w.normaliser = '{normaliser}')"""

def distinct_values(column: str) -> str:
    """The distinct values of one filterable column of a dataset's turns (parameter: dataset). Raises
    ValueError for a column not in FILTERABLE_COLUMNS: only a whitelisted identifier is spliced."""
    if column not in FILTERABLE_COLUMNS:
        raise ValueError(f"not a filterable column: {column}")
    return f"SELECT DISTINCT {column} FROM turns WHERE dataset = ? AND {column} IS NOT NULL ORDER BY 1"


def dialogue_where(dataset: str, flt: DialogueFilter) -> tuple[str, list]:
    """The WHERE condition of the Dialogues page's filter and its parameters: only the fixed fragments below
    are joined; the dataset and every filter value go into the parameters."""
    clauses, params = ["dataset = ?"], [dataset]
    if flt.text:
        # ILIKE with the user's text as a parameter; % and _ in it are escaped to match literally.
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(asr_text ILIKE ? ESCAPE '\\' OR response_text ILIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    for column, value in (("nlu_domain", flt.domain), ("nlu_intent", flt.intent),
                          ("response_status", flt.response_status), ("user_id", flt.user_id),
                          ("user_feedback", flt.user_feedback)):
        if value:
            clauses.append(f"{column} = ?")  # column names come from the fixed list above
            params.append(value)
    if flt.no_domain:
        clauses.append("nlu_domain IS NULL")
    if flt.barge_in_only:
        clauses.append("barge_in")
    if flt.failure_only:
        clauses.append(FAILED_TURN)
    if flt.since:
        clauses.append("timestamp >= ?::DATE")
        params.append(flt.since)
    if flt.until:
        clauses.append("timestamp < ?::DATE + INTERVAL 1 DAY")
        params.append(flt.until)
    return " AND ".join(clauses), params


# ----------------------------------------------------------------------------------------- queues

# The queue orders (QueueSpec.order is checked against ORDERS); the random order's seed is a parameter.
ORDER_SQL = {
    "score_asc": "c.score ASC, c.candidate_id",
    "score_desc": "c.score DESC, c.candidate_id",
    "random": "hash(c.candidate_id, ?::BIGINT), c.candidate_id",
    "disagreement": "(coalesce(src.n_values, 1) > 1)::INT + (coalesce(rev.n_labels, 1) > 1)::INT DESC, "
                    "c.score ASC, c.candidate_id",
}
# What a queue query selects, by name: its candidate ids or their count.
QUEUE_SELECT = {"ids": "c.candidate_id", "count": "count(*)"}


def queue_sql(reviewer: str, spec: QueueSpec, *, select: str, order: bool, standing_only: bool = False,
              min_score: float | None = None, limit: int | None = None) -> tuple[str, list]:
    """The queue's query and its parameters. Only fixed SQL fragments are joined here; every value (the
    reviewer, the spec's filters, min_score, limit) is a parameter.

    select: a key of QUEUE_SELECT. standing_only: only candidates this reviewer has a standing decision on
    (accept, reject or correct). min_score: only candidates scoring at least this. limit: at most this many
    rows (with order)."""
    params: list = [reviewer]
    # This reviewer's latest verdicts and every candidate's standing decisions come from review_state and
    # candidate_state (migration 11), kept current on every decision write: no scan of the decision log.
    ctes = ["""mine AS (SELECT candidate_id, last_verdict, last_real FROM review_state WHERE reviewer = ?)"""]
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
        joins.append("LEFT JOIN candidate_state taken USING (candidate_id)")
        for column, value in (("c.task", spec.task), ("c.value", spec.value), ("c.run_id", spec.run_id),
                              ("c.domain", spec.domain)):
            if value is not None:
                where.append(f"{column} = ?")  # column names come from the fixed list above
                params_where.append(value)
        if spec.score_min > 0 or spec.score_max < 1:
            where.append("c.score BETWEEN ? AND ?")
            params_where += [spec.score_min, spec.score_max]
        if spec.status == "undecided":
            where.append("(mine.last_real IS NULL OR mine.last_real = 'retract') AND coalesce(taken.n_taken, 0) < ?")
            params_where.append(spec.overlap)
        elif spec.status == "decided":
            where.append("coalesce(taken.n_taken, 0) > 0")
    if standing_only:
        where.append("mine.last_real IN ('accept', 'reject', 'correct')")
    if min_score is not None:
        where.append("c.score >= ?")
        params_where.append(min_score)
    if order and spec.order == "disagreement":
        # each target's distinct proposed values, kept on candidate import (migration 12)
        ctes.append("""src AS (SELECT task, target_key, n_values FROM target_state WHERE dataset = ?)""")
        params.append(spec.dataset)
        if spec.audit_bulk_id is None:
            ctes.append("""rev AS (SELECT candidate_id, n_labels FROM candidate_state)""")
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


# The (candidate, reviewer) pairs a decision write touched, by kind of write (their values are parameters).
TOUCHED_PAIRS = {
    "one": "SELECT ?::BIGINT AS candidate_id, ?::VARCHAR AS reviewer",
    "bulk": "SELECT candidate_id, ?::VARCHAR AS reviewer FROM bulk_pick",
    "simulated": "SELECT DISTINCT candidate_id, reviewer FROM staged_d",
}


def review_state_refresh(touched: str) -> tuple[str, str]:
    """The two statements that recompute, from the decision log, the review_state rows of the pairs a write
    touched and the candidate_state rows of their candidates (migration 11 says what they hold). touched: a key
    of TOUCHED_PAIRS, a fixed fragment; each statement takes that fragment's parameters."""
    pairs = TOUCHED_PAIRS[touched]
    return (f"""
        INSERT OR REPLACE INTO review_state
        SELECT candidate_id, reviewer, arg_max(verdict, seq),
               arg_max(verdict, seq) FILTER (verdict <> 'skip'),
               arg_max(CASE verdict WHEN 'correct' THEN corrected_value WHEN 'reject' THEN '<rejected>'
                       ELSE '<accepted>' END, seq) FILTER (verdict <> 'skip')
        FROM decisions SEMI JOIN ({pairs}) t USING (candidate_id, reviewer)
        WHERE role IN ('review', 'bulk', 'audit')
        GROUP BY candidate_id, reviewer""", f"""
        INSERT OR REPLACE INTO candidate_state
        SELECT candidate_id, count(*) FILTER (last_real <> 'retract'),
               count(DISTINCT label_key) FILTER (last_real <> 'retract')
        FROM review_state SEMI JOIN (SELECT DISTINCT candidate_id FROM ({pairs})) t USING (candidate_id)
        GROUP BY candidate_id""")


def bulk_pick(queue: str) -> str:
    """The temporary table of the candidates a bulk accept takes: queue is a query built by queue_sql."""
    return f"CREATE OR REPLACE TEMP TABLE bulk_pick AS {queue}"


# One stored decision is the same as one simulated (staged_d s, decisions d): the same id, candidate, reviewer,
# verdict and value, by a review. A constant; the values are the rows' own (insert_simulated_decisions).
SAME_DECISION = """s.decision_id = d.decision_id AND s.candidate_id = d.candidate_id AND s.reviewer = d.reviewer
                      AND s.verdict = d.verdict AND s.corrected_value IS NOT DISTINCT FROM d.corrected_value
                      AND d.role = 'review'"""

# ------------------------------------------------------------------------------------------ export

# A stored value (candidates.value, decisions.corrected_value: JSON text as the review app writes it) as a JSON
# value; a value that is not JSON text (a hand-made correction such as `+1+cmd`) is that text, a JSON string.
# A constant, applied to the fixed column names below.
_AS_JSON = "coalesce(try_cast({v} AS JSON), to_json({v}))"  # one parse of a valid value, not two
# The export's rows, typed (docs/review.md, Export): values and labels as JSON values, list_slot a struct, the
# reviewers and roles lists; dataset and task are parameters. Each format's projection (export_query) reads it.
_EXPORT_SELECT = f"""
    SELECT c.candidate_id, c.task, c.target_kind, c.dialogue_id, c.turn_index, c.other_dialogue_id,
           c.other_turn_index, t.asr_text AS text, {_AS_JSON.format(v="c.value")} AS proposed_value, c.score,
           rl.status, rl.verdict, {_AS_JSON.format(v="rl.label")} AS label,
           -- an accepted or corrected coordination split, as the list-valued slot other tools read (#18)
           CASE WHEN c.task = 'items' AND rl.verdict IN ('accept', 'correct')
                THEN json_transform(json_object('type', json_extract(rl.label, '$.slot_type'),
                                                'value', json_extract(rl.label, '$.items')),
                                    '{{"type": "VARCHAR", "value": ["VARCHAR"]}}') END AS list_slot,
           -- an accepted or corrected transcript (#19), as plain text: what a speech team trains on
           CASE WHEN c.task = 'transcript' AND rl.verdict IN ('accept', 'correct')
                THEN json_extract_string(rl.label, '$.text') END AS transcript,
           rl.reviewers AS reviewers, rl.roles AS decided_by_roles, rl.adjudicator,
           rl.decided_at,
           r.name AS model_name, r.version AS model_version, {_AS_JSON.format(v="r.parameters")} AS model_parameters,
           r.run_at AS model_run_at, c.dataset
    FROM candidates c JOIN model_runs r USING (run_id)
    LEFT JOIN resolved_labels rl USING (candidate_id)
    LEFT JOIN turns t ON t.dialogue_id = c.dialogue_id AND t.turn_index = c.turn_index
    WHERE c.dataset = ? AND (? IS NULL OR c.task = ?)
"""
# Each export kind's condition, by kind (the caller checks kind against EXPORT_KINDS): constants.
EXPORT_WHERE = {
    "accepted": " AND rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('accept', 'correct')",
    "resolved": " AND rl.status IN ('agreed', 'adjudicated')",
    "candidates": "",
}
# COPY's options, by format (checked against EXPORT_FORMATS): constants. CSV is written by analysis.csv_safety.
COPY_OPTIONS = {"jsonl": "FORMAT json", "parquet": "FORMAT parquet"}
# The columns holding a value of the row's task: typed per task in Parquet (export_by_task).
TASK_VALUE_COLUMNS = ("proposed_value", "label")


def export_query(kind: str) -> str:
    """The labels export's typed rows for kind (parameters: dataset, task, task), from the fixed fragments
    above, in candidate order. JSON Lines writes it as it is; as_csv_text and export_by_task project it."""
    return f"{_EXPORT_SELECT}{EXPORT_WHERE[kind]} ORDER BY c.candidate_id"


def task_structures(query: str) -> str:
    """Per task of query's rows (export_query's), the JSON structure (DuckDB's json_group_structure) shared by
    its proposed values and labels: the shape export_by_task gives that task's values in Parquet."""
    # one pass over the rows: each row's values unnested into rows of their own
    values = ", ".join(TASK_VALUE_COLUMNS)
    return (f"SELECT task, json_group_structure(v) FROM (SELECT task, unnest([{values}]) AS v FROM ({query})) "
            "WHERE v IS NOT NULL GROUP BY task ORDER BY task")


def export_by_task(query: str, tasks: list[str]) -> str:
    """query (export_query's) with each column of TASK_VALUE_COLUMNS a struct holding one field per task, the
    row's value under its own task, json_transform'ed to that task's structure, the other fields null.
    Parameters: the structures, one per task in the order of tasks, for each column in turn; then the query's
    own. tasks come from the rows; each must be a task name by the candidate files' rule (checked here) before
    it is spliced as a field name."""
    if not tasks or not all(is_task_name(t) for t in tasks):
        raise ValueError(f"tasks must be task names (lowercase identifiers): {tasks!r}")

    def by_task(col: str) -> str:
        fields = ", ".join(f"\"{t}\" := CASE WHEN x.task = '{t}' THEN json_transform(x.{col}, ?::VARCHAR) END"
                           for t in tasks)
        return f"CASE WHEN x.{col} IS NOT NULL THEN struct_pack({fields}) END AS {col}"

    replaced = ", ".join(by_task(col) for col in TASK_VALUE_COLUMNS)
    return f"SELECT * REPLACE ({replaced}) FROM ({query}) x ORDER BY x.candidate_id"


# The dataset card's provenance (app.store.export.write_dataset_card), each over the rows of an export query
# (export_query's, parameters: dataset, task, task): model runs, reviewers, adjudicators with their row counts.
def export_provenance(query: str) -> dict[str, str]:
    """name -> a statement over query's rows (query built here): 'runs' (model name, version, first run time
    as ISO text, rows), 'reviewers' and 'adjudicators' (name, rows)."""
    return {
        "runs": f"""SELECT model_name, model_version,
                           strftime(timezone('UTC', min(model_run_at)), '%Y-%m-%dT%H:%M:%SZ'), count(*)
                    FROM ({query}) GROUP BY model_name, model_version ORDER BY model_name, model_version""",
        "reviewers": f"""SELECT u.reviewer, count(*) FROM ({query}) x, unnest(x.reviewers) AS u(reviewer)
                         GROUP BY u.reviewer ORDER BY u.reviewer""",
        "adjudicators": f"""SELECT adjudicator, count(*) FROM ({query}) WHERE adjudicator IS NOT NULL
                            GROUP BY adjudicator ORDER BY adjudicator""",
    }


def no_rows(query: str) -> str:
    """query (built here) returning no rows, to read its result columns and types."""
    return f"SELECT * FROM ({query}) LIMIT 0"


def as_csv_text(query: str, columns: list[tuple]) -> str:
    """query (built here, its rows having a candidate_id) with every JSON, list, struct or map column as its
    JSON text, so every CSV cell is text or a number that parses back, in candidate order. columns: the query's
    own cursor description, so the names are those of our own fixed SELECT."""
    def cell(name: str, kind: str) -> str:
        if kind == "JSON":
            return f'json(x."{name}")::VARCHAR AS "{name}"'  # minified, as to_json writes
        if kind.endswith("[]") or kind.startswith(("STRUCT", "MAP", "UNION")):
            return f'to_json(x."{name}")::VARCHAR AS "{name}"'
        return f'x."{name}"'

    return f"SELECT {', '.join(cell(name, str(kind)) for name, kind, *_ in columns)} FROM ({query}) x " \
           "ORDER BY x.candidate_id"


def copy_to(query: str, target: str, fmt: str) -> str:
    """COPY (query) to the file target in fmt. COPY cannot take the file name as a parameter: it is quoted here
    as a string literal (its quotes doubled), the only value ever spliced into SQL."""
    quoted = "'" + target.replace("'", "''") + "'"
    return f"COPY ({query}) TO {quoted} ({COPY_OPTIONS[fmt]})"


# --------------------------------------------------------------------------------- family results

# The groupings of the failure-point pages, name -> expression over the turns t: callers pass a name, checked
# against this table (FAILURE_GROUPS) before its expression is spliced.
FAILURE_GROUPS = {"domain": "t.nlu_domain", "device": "t.device_type", "locale": "t.locale",
                  "day": "strftime(date_trunc('day', t.timestamp), '%Y-%m-%d')"}


def failure_turn_filter(by: str | None, with_gold: bool) -> str:
    """list_failure_turns' extra conditions: one group of FAILURE_GROUPS (by, already checked), one gold label;
    the group and the label are parameters."""
    group_sql = f" AND coalesce({FAILURE_GROUPS[by]}, '(none)') = ?" if by else ""
    group_sql += " AND coalesce(t.gold_failure_point, '(none)') = ?" if with_gold else ""
    return group_sql


# Each label task's gold label in the log, as JSON text (NULL where the log has none); the task is checked
# against this table before its expression is spliced.
LABEL_GOLD = {"intent": "to_json(t.gold_intent)", "slots": "to_json(t.gold_slots)",
              "goal_start": "to_json(t.gold_goal_start)", "goal_success": "to_json(t.gold_goal_success)",
              "defect": "to_json(t.gold_failure_point <> 'NO_FAILURE')"}

# A skill candidate's review status from the resolved label: accepted (the proposal itself), rejected (a
# rejection, or a correction to another skill, which rejects the proposal); undecided otherwise (no
# decision yet, or reviewers who disagree and no adjudication). A constant.
SKILL_STATUS = """CASE WHEN rl.status IN ('agreed', 'adjudicated') AND rl.verdict = 'accept' THEN 'accepted'
                        WHEN rl.status IN ('agreed', 'adjudicated') AND rl.verdict IN ('reject', 'correct')
                             THEN 'rejected'
                        ELSE 'undecided' END"""

# The turn columns rewrite mining reads (list_rewrite_inputs): production fields, and the gold fields the
# detector is fitted on and the replay judged against. Fixed column lists.
REWRITE_INPUT = ", ".join(("dialogue_id", "turn_index", "timestamp", "user_id", "asr_text", "asr_confidence",
                           "nlu_domain", "nlu_intent", "nlu_slots", "nlu_confidence", "nlu_alt_intent", "er_status",
                           "response_status", "tts_status", "barge_in", "user_feedback"))
REWRITE_INPUT_WITH_GOLD = ", ".join((REWRITE_INPUT, "gold_intent", "gold_slots", "gold_goal_start",
                                     "gold_failure_point"))

# The tables a mining run's rows are appended to through Arrow (insert_rows).
REWRITE_TABLES = frozenset({"rewrites", "rewrite_evidence", "rewrite_states", "rewrite_transitions",
                            "rewrite_metrics"})


def insert_rows(table: str, columns: list[str]) -> str:
    """Append the registered Arrow table incoming_rows to table. Raises ValueError unless table is one of
    REWRITE_TABLES; the columns are the keys of the dicts our own code builds (insert_rewrite_run), never
    input."""
    if table not in REWRITE_TABLES:
        raise ValueError(f"not a rewrite table: {table}")
    cols = ", ".join(columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming_rows"
