"""The turns of the logs: their ingest (append-only, idempotent) and every read of them, from the Overview's
counts to the Dialogues page, the turn-level models' records and the speech-recognition disparity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd
import pyarrow as pa

from analysis import wer_normalise
from app import __version__
from app.store import sql
from app.store.connection import _CONFLICT_LIMIT, IngestConflictError, transaction

# ---------------------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestResult:
    import_id: int | None  # None when nothing was new
    rows_read: int
    rows_added: int
    rows_already_present: int


def insert_turns(conn: duckdb.DuckDBPyConnection, turns: pa.Table, *, dataset: str, sources: list[str],
                 content_sha256: str, unknown_fields: dict[str, int], imported_by: str | None,
                 wer_rows: pa.Table, wer_normaliser: str = wer_normalise.DEFAULT_FOR_NEW_DATASETS
                 ) -> IngestResult:
    """Append turns (``TURN_SCHEMA`` plus wer_* columns, the raw counts) atomically: the 1.0 fields, the 1.1 fields
    (audio, audio_source, asr_word_confidence) and the n-best as whole hypotheses (asr_hypotheses: text, score,
    confidence; asr_nbest keeps the texts); with them, the new turns' rows of ``wer_rows`` (dialogue_id,
    turn_index, normaliser, wer_sub, wer_del, wer_ins, wer_ref_words, char_edits, ref_chars: their counts under
    each normaliser, app.ingest.with_wer_counts) go to turn_wer. A dataset stored for the first time gets
    ``wer_normaliser`` as the normaliser its WER figures use by default; a dataset stored before keeps its own.

    Turns already stored with the same content are skipped (re-ingest is idempotent); a turn whose
    (dialogue_id, turn_index) is stored with different content, or whose time order contradicts the
    stored turns of its dialogue, makes the whole call fail with IngestConflictError and write nothing.
    """
    cur = conn.cursor()
    # _row: the incoming row, so a conflict can be reported at its file and line.
    cur.register("incoming", turns.append_column("_row", pa.array(range(turns.num_rows), type=pa.int64())))
    try:
        with transaction(cur):
            # Which stored fields differ, by name (sql.CHANGED_FIELDS: from the format's fixed field list).
            conflicts = cur.execute(f"""
                SELECT i._row, i.dialogue_id, i.turn_index, t.dataset,
                       list_filter([{sql.CHANGED_FIELDS}], lambda x: x IS NOT NULL) AS fields
                FROM incoming i JOIN turns t USING (dialogue_id, turn_index)
                WHERE t.dataset IS DISTINCT FROM ?
                   OR len(list_filter([{sql.CHANGED_FIELDS}], lambda x: x IS NOT NULL)) > 0
                ORDER BY i._row LIMIT ?
            """, [dataset, _CONFLICT_LIMIT + 1]).fetchall()
            if conflicts:
                rows = []
                for row, did, ti, ds, fields in conflicts[:_CONFLICT_LIMIT]:
                    if ds != dataset:
                        rows.append((row, "dialogue_id", f"turn {ti} of dialogue {did!r} is already stored in "
                                                         f"dataset {ds!r}, not {dataset!r}"))
                    else:
                        rows.append((row, fields[0], f"turn {ti} of dialogue {did!r} is already stored with "
                                                     f"different content (differs in: {', '.join(fields)})"))
                if len(conflicts) > _CONFLICT_LIMIT:
                    rows.append((None, None, "... and more conflicting turns"))
                raise IngestConflictError([m for _, _, m in rows], rows)
            present = cur.execute(
                "SELECT count(*) FROM incoming i SEMI JOIN turns t USING (dialogue_id, turn_index)").fetchone()[0]
            if present == turns.num_rows:
                return IngestResult(None, turns.num_rows, 0, present)
            import_id = cur.execute("""
                INSERT INTO imports (dataset, sources, content_sha256, rows_read, rows_added, unknown_fields,
                                     imported_by, app_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING import_id
            """, [dataset, json.dumps(sources), content_sha256, turns.num_rows, turns.num_rows - present,
                  json.dumps(unknown_fields) if unknown_fields else None, imported_by, __version__]).fetchone()[0]
            # sql.TURN_COLUMNS, TURN_COLUMNS_1_1: the format's fixed field lists, quoted; sql.HYPOTHESES: the
            # n-best's parts as one list of hypotheses, from those fields
            cur.execute(f"""
                INSERT INTO turns (dataset, {sql.TURN_COLUMNS}, {sql.TURN_COLUMNS_1_1}, asr_hypotheses, extras,
                                   wer_sub, wer_del, wer_ins, wer_ref_words, import_id)
                SELECT ?, {sql.TURN_COLUMNS}, {sql.TURN_COLUMNS_1_1}, {sql.HYPOTHESES}, extras,
                       wer_sub, wer_del, wer_ins, wer_ref_words, ?
                FROM incoming i ANTI JOIN turns t USING (dialogue_id, turn_index)
            """, [dataset, import_id])
            order = _time_order_violations(cur, import_id)
            if order:
                raise IngestConflictError([m for _, _, m in order], order)
            cur.register("incoming_wer", wer_rows)
            cur.execute("""
                INSERT INTO turn_wer (dataset, dialogue_id, turn_index, normaliser, wer_sub, wer_del, wer_ins,
                                      wer_ref_words, char_edits, ref_chars)
                SELECT ?, w.dialogue_id, w.turn_index, w.normaliser, w.wer_sub, w.wer_del, w.wer_ins,
                       w.wer_ref_words, w.char_edits, w.ref_chars
                FROM incoming_wer w SEMI JOIN (SELECT dialogue_id, turn_index FROM turns WHERE import_id = ?) n
                  USING (dialogue_id, turn_index)
            """, [dataset, import_id])
            wer_normalise.get(wer_normaliser)  # a known name, or ValueError before anything is committed
            cur.execute("INSERT INTO dataset_wer_normaliser VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [dataset, wer_normaliser])
            return IngestResult(import_id, turns.num_rows, turns.num_rows - present, present)
    finally:
        cur.unregister("incoming")
        cur.unregister("incoming_wer")
        cur.close()


def _time_order_violations(cur: duckdb.DuckDBPyConnection, import_id: int) -> list[tuple[int | None, str, str]]:
    """New turns must keep each dialogue's turns in time order together with the turns stored before."""
    rows = cur.execute("""
        WITH touched AS (SELECT DISTINCT dialogue_id FROM turns WHERE import_id = ?),
        ordered AS (
            SELECT t.dialogue_id, t.turn_index, t.timestamp, t.import_id,
                   lag(t.turn_index) OVER w AS prev_index, lag(t.timestamp) OVER w AS prev_ts,
                   lead(t.turn_index) OVER w AS next_index, lead(t.import_id) OVER w AS next_import
            FROM turns t SEMI JOIN touched USING (dialogue_id)
            WINDOW w AS (PARTITION BY t.dialogue_id ORDER BY t.turn_index)
        )
        SELECT o.dialogue_id, o.turn_index, o.prev_index, o.import_id = ? AS is_new,
               i._row AS this_row, j._row AS prev_row
        FROM ordered o
        LEFT JOIN incoming i ON i.dialogue_id = o.dialogue_id AND i.turn_index = o.turn_index AND o.import_id = ?
        LEFT JOIN incoming j ON j.dialogue_id = o.dialogue_id AND j.turn_index = o.prev_index
        WHERE o.prev_ts > o.timestamp ORDER BY 1, 2 LIMIT ?
    """, [import_id, import_id, import_id, _CONFLICT_LIMIT]).fetchall()
    # Name the incoming row of the pair (the stored one has no line in this input).
    return [(this_row if this_row is not None else prev_row, "timestamp",
             f"turn {ti} of dialogue {did!r} is earlier than its turn {prev}, "
             + ("already stored" if this_row is not None else "which this input adds"))
            for did, ti, prev, _new, this_row, prev_row in rows]


def list_imports(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return conn.cursor().execute("""
        SELECT import_id, dataset, sources, rows_read, rows_added, unknown_fields, imported_by, imported_at
        FROM imports ORDER BY import_id DESC
    """).df()


# ----------------------------------------------------------------------------------------- reads


def list_datasets(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in conn.cursor().execute(
        "SELECT DISTINCT dataset FROM turns ORDER BY dataset").fetchall()]


def get_wer_normaliser(conn: duckdb.DuckDBPyConnection, dataset: str) -> str:
    """The normaliser a dataset's WER figures use unless one is picked (analysis/wer_normalise.py): the one set
    when it was first stored (english-v1 since m010), ``raw`` for a dataset stored before m010 or none at all."""
    row = conn.cursor().execute("SELECT normaliser FROM dataset_wer_normaliser WHERE dataset = ?",
                                [dataset]).fetchone()
    return row[0] if row else wer_normalise.RAW


def set_wer_normaliser(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str) -> None:
    """Make normaliser the dataset's default for WER figures (ValueError for an unknown name). Every
    normaliser's counts are stored for every turn, so nothing is recomputed."""
    wer_normalise.get(normaliser)
    conn.cursor().execute("INSERT OR REPLACE INTO dataset_wer_normaliser VALUES (?, ?)", [dataset, normaliser])


def _wer_source(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None) -> str:
    """sql.turns_with_wer for normaliser, or for the dataset's default when None."""
    return sql.turns_with_wer(normaliser or get_wer_normaliser(conn, dataset))


@dataclass(frozen=True)
class OverviewCounts:
    turns: int
    dialogues: int
    users: int
    speakers: int
    errors: int  # substitutions + deletions + insertions over turns with a reference
    ref_words: int
    turns_with_reference: int
    unhandled: int
    barge_ins: int
    first: object
    last: object
    char_edits: int = 0  # character edits over turns with a reference and character counts
    ref_chars: int = 0
    normaliser: str = wer_normalise.RAW  # what errors, ref_words and the character counts were counted under

    @property
    def pooled_wer(self) -> float | None:
        return self.errors / self.ref_words if self.ref_words else None

    @property
    def pooled_cer(self) -> float | None:
        return self.char_edits / self.ref_chars if self.ref_chars else None


def get_overview_counts(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None
                        ) -> OverviewCounts:
    """The Overview's headline counts; the word and character counts under normaliser (None: the dataset's
    default, get_wer_normaliser)."""
    normaliser = normaliser or get_wer_normaliser(conn, dataset)
    source = sql.turns_with_wer(normaliser)
    # source: sql.turns_with_wer, a checked normaliser name in a fixed subquery
    row = conn.cursor().execute(f"""
        SELECT count(*), count(DISTINCT dialogue_id), count(DISTINCT user_id), count(DISTINCT speaker_id),
               coalesce(sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0), 0),
               coalesce(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0),
               count(*) FILTER (wer_ref_words >= 0),
               count(*) FILTER (response_status = 'unhandled'),
               count(*) FILTER (barge_in),
               min(timestamp), max(timestamp),
               coalesce(sum(char_edits) FILTER (ref_chars >= 0), 0),
               coalesce(sum(ref_chars) FILTER (ref_chars >= 0), 0)
        FROM {source} t WHERE dataset = ?
    """, [dataset]).fetchone()
    return OverviewCounts(*row, normaliser=normaliser)


def list_signals_by_domain(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None
                           ) -> pd.DataFrame:
    """Per NLU domain: turns, pooled WER and CER (under normaliser; None: the dataset's default), and the rate of
    each failure signal."""
    source = _wer_source(conn, dataset, normaliser)
    # sql.SIGNALS is a constant and source sql.turns_with_wer's checked subquery: no value is spliced into the SQL
    return conn.cursor().execute(f"""
        SELECT coalesce(nlu_domain, '(none)') AS domain, {sql.SIGNALS}
        FROM {source} t WHERE dataset = ? GROUP BY ALL ORDER BY turns DESC
    """, [dataset]).df()


def list_signals_by_day(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None
                        ) -> pd.DataFrame:
    """Per UTC day: turns, pooled WER and CER (under normaliser; None: the dataset's default), and the rate of
    each failure signal."""
    source = _wer_source(conn, dataset, normaliser)
    # sql.SIGNALS is a constant and source sql.turns_with_wer's checked subquery: no value is spliced into the SQL
    return conn.cursor().execute(f"""
        SELECT date_trunc('day', timestamp)::DATE AS day, {sql.SIGNALS}
        FROM {source} t WHERE dataset = ? GROUP BY ALL ORDER BY day
    """, [dataset]).df()


def list_domain_signal_sums(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None
                            ) -> pd.DataFrame:
    """Per NLU domain (NULL: none), sums over its dialogues for intervals with the dialogue as the unit
    (analysis.rates.group_rates and group_wer): with m a dialogue's turns in the domain and y its turns with a
    signal (unhandled, error, barge_in, negative_feedback): dialogues, turns (sum m), turns_sq (sum m^2), and per
    signal its sum y, the dialogues with y > 0 (_dialogues), sum y^2 (_sq) and sum y*m (_by_turns); for WER,
    over the dialogues with a reference transcript (wer_dialogues), with e their word errors and w reference
    words: wer_turns, wer_errors, wer_ref_words, and sums e^2, e*w, w^2, counted under normaliser (None: the
    dataset's default). Aggregated here so the page receives one row per domain, not one per dialogue."""
    source = _wer_source(conn, dataset, normaliser)
    # source: sql.turns_with_wer's checked subquery
    return conn.cursor().execute(f"""
        WITH d AS (
            SELECT nlu_domain AS domain, dialogue_id, count(*) AS m,
                   count(*) FILTER (response_status = 'unhandled') AS unhandled,
                   count(*) FILTER (response_status = 'error') AS error,
                   count(*) FILTER (barge_in) AS barge_in,
                   count(*) FILTER (user_feedback = 'negative') AS negative_feedback,
                   count(*) FILTER (wer_ref_words >= 0) AS wer_turns,
                   coalesce(sum(wer_sub + wer_del + wer_ins) FILTER (wer_ref_words >= 0), 0) AS e,
                   coalesce(sum(wer_ref_words) FILTER (wer_ref_words >= 0), 0) AS w
            FROM {source} t WHERE dataset = ? GROUP BY ALL
        )
        SELECT domain, count(*) AS dialogues, sum(m) AS turns, sum(m * m) AS turns_sq,
               sum(unhandled) AS unhandled, count(*) FILTER (unhandled > 0) AS unhandled_dialogues,
               sum(unhandled * unhandled) AS unhandled_sq, sum(unhandled * m) AS unhandled_by_turns,
               sum(error) AS error, count(*) FILTER (error > 0) AS error_dialogues,
               sum(error * error) AS error_sq, sum(error * m) AS error_by_turns,
               sum(barge_in) AS barge_in, count(*) FILTER (barge_in > 0) AS barge_in_dialogues,
               sum(barge_in * barge_in) AS barge_in_sq, sum(barge_in * m) AS barge_in_by_turns,
               sum(negative_feedback) AS negative_feedback,
               count(*) FILTER (negative_feedback > 0) AS negative_feedback_dialogues,
               sum(negative_feedback * negative_feedback) AS negative_feedback_sq,
               sum(negative_feedback * m) AS negative_feedback_by_turns,
               count(*) FILTER (wer_turns > 0) AS wer_dialogues, sum(wer_turns) AS wer_turns,
               sum(e) AS wer_errors, sum(w) AS wer_ref_words, sum(e * e) AS wer_errors_sq,
               sum(e * w) AS wer_errors_by_words, sum(w * w) AS wer_words_sq
        FROM d GROUP BY domain ORDER BY turns DESC, domain
    """, [dataset]).df()


@dataclass(frozen=True)
class DialogueFilter:
    """Filters of the Dialogues page; every field optional. text matches request or response text."""

    text: str | None = None
    domain: str | None = None
    no_domain: bool = False  # turns NLU gave no domain (the Overview's "(no domain)" bar)
    intent: str | None = None
    response_status: str | None = None
    user_id: str | None = None
    user_feedback: str | None = None
    barge_in_only: bool = False
    failure_only: bool = False  # turns with a visible component failure (sql.FAILED_TURN)
    since: date | None = None
    until: date | None = None


DIALOGUE_ORDERS = tuple(sql.DIALOGUE_ORDERS)  # "newest" first, or highest pooled "wer" first


def list_dialogues(conn: duckdb.DuckDBPyConnection, dataset: str, flt: DialogueFilter, *,
                   limit: int = 50, offset: int = 0, order: str = "newest", normaliser: str | None = None
                   ) -> tuple[pd.DataFrame, int]:
    """Dialogues with at least one turn matching the filter, in ``order`` (DIALOGUE_ORDERS; ValueError for
    another), and how many there are. Per dialogue: its turns, pooled WER and CER over its turns with a reference
    (NaN without one), failed_turns (a visible component failure, sql.FAILED_TURN) and has_failure, and
    barge_ins (counted apart: a barge-in is not a failure). WER under normaliser (None: the dataset's default)."""
    if order not in sql.DIALOGUE_ORDERS:
        raise ValueError(f"unknown dialogue order {order!r}; expected one of {', '.join(DIALOGUE_ORDERS)}")
    where, params = sql.dialogue_where(dataset, flt)
    source = _wer_source(conn, dataset, normaliser)
    cur = conn.cursor()
    # where: fixed fragments from sql.dialogue_where; every value is in params; the order is a fixed fragment
    total = cur.execute(f"SELECT count(DISTINCT dialogue_id) FROM turns WHERE {where}", params).fetchone()[0]
    page = cur.execute(f"""
        WITH hits AS (SELECT DISTINCT dialogue_id FROM turns WHERE {where})
        SELECT t.dialogue_id, any_value(t.user_id) AS user_id, any_value(t.device_type) AS device,
               min(t.timestamp) AS started, count(*) AS turns,
               arg_min(t.asr_text, t.turn_index) AS first_request,
               count(*) FILTER ({sql.FAILED_TURN}) AS failed_turns,
               count(*) FILTER ({sql.FAILED_TURN}) > 0 AS has_failure,
               count(*) FILTER (t.barge_in) AS barge_ins,
               sum(t.wer_sub + t.wer_del + t.wer_ins) FILTER (t.wer_ref_words >= 0)
                 / nullif(sum(t.wer_ref_words) FILTER (t.wer_ref_words >= 0), 0) AS pooled_wer,
               sum(t.char_edits) FILTER (t.ref_chars >= 0)
                 / nullif(sum(t.ref_chars) FILTER (t.ref_chars >= 0), 0) AS pooled_cer
        FROM {source} t SEMI JOIN hits USING (dialogue_id)
        WHERE t.dataset = ?
        GROUP BY t.dialogue_id ORDER BY {sql.DIALOGUE_ORDERS[order]} LIMIT ? OFFSET ?
    """, params + [dataset, limit, offset]).df()
    return page, total


def list_values(conn: duckdb.DuckDBPyConnection, dataset: str, column: str) -> list[str]:
    """Distinct values of one categorical column, for filter menus (sql.FILTERABLE_COLUMNS; ValueError for
    another column)."""
    query = sql.distinct_values(column)
    return [r[0] for r in conn.cursor().execute(query, [dataset]).fetchall()]


def get_dialogue_turns(conn: duckdb.DuckDBPyConnection, dialogue_id: str, dataset: str | None = None) -> list[dict]:
    """Every turn of one dialogue (of one dataset, if given), in order, as plain dicts (all stored columns)."""
    cur = conn.cursor()
    cur.execute("SELECT * FROM turns WHERE dialogue_id = ? AND (? IS NULL OR dataset = ?) ORDER BY turn_index",
                [dialogue_id, dataset, dataset])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def count_turns(conn: duckdb.DuckDBPyConnection, dataset: str | None = None) -> int:
    if dataset is None:
        return conn.cursor().execute("SELECT count(*) FROM turns").fetchone()[0]
    return conn.cursor().execute("SELECT count(*) FROM turns WHERE dataset = ?", [dataset]).fetchone()[0]


def list_wer_pairs(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str = wer_normalise.RAW) -> pa.Table:
    """reference_text, asr_text and the stored counts under normaliser (word and character) of every turn with a
    reference (for audits)."""
    source = sql.turns_with_wer(normaliser)
    # source: sql.turns_with_wer's checked subquery
    return conn.cursor().sql(f"""
        SELECT reference_text, asr_text, wer_sub, wer_del, wer_ins, wer_ref_words, char_edits, ref_chars
        FROM {source} t WHERE dataset = ? AND reference_text IS NOT NULL
    """, params=[dataset]).to_arrow_table()


def list_turn_records(conn: duckdb.DuckDBPyConnection, dataset: str, *, production_only: bool = False) -> list[dict]:
    """Every turn of a dataset as log-format-v1 dicts (the input of the turn-level models); production_only:
    without reference_text, gold_* and speaker_embedding (what scoring may read: sql.PRODUCTION_COLUMNS)."""
    cur = conn.cursor()
    columns = sql.PRODUCTION_RECORD_COLUMNS if production_only else sql.RECORD_COLUMNS
    # the column list is the format's fixed field list
    cur.execute(f"SELECT {columns} FROM turns WHERE dataset = ? ORDER BY dialogue_id, turn_index", [dataset])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def list_turn_audio(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """Every turn of a dataset with an audio reference and a speaker: dialogue_id, turn_index, speaker_id, audio
    (the path under the audio root, or a URL), in (dialogue_id, turn_index) order."""
    cur = conn.cursor()
    cur.execute("""SELECT dialogue_id, turn_index, speaker_id, audio FROM turns
                   WHERE dataset = ? AND audio IS NOT NULL AND speaker_id IS NOT NULL
                   ORDER BY dialogue_id, turn_index""", [dataset])
    return [dict(zip(("dialogue_id", "turn_index", "speaker_id", "audio"), row, strict=True)) for row in cur.fetchall()]


def list_turn_gold(conn: duckdb.DuckDBPyConnection, dataset: str) -> pa.Table:
    """The log's gold fields (evaluation only: simulated reviewers decide by them) of every turn of a dataset:
    dialogue_id, turn_index, gold_* and reference_text (the true transcript)."""
    # sql.GOLD_COLUMNS: the quoted names of the log format's gold fields, fixed in code
    return conn.cursor().sql(f"SELECT dialogue_id, turn_index, {sql.GOLD_COLUMNS}, reference_text FROM turns "
                             "WHERE dataset = ? "
                             "ORDER BY dialogue_id, turn_index", params=[dataset]).to_arrow_table()


# ---------------------------------------------------------------------------- speech-recognition disparity


def list_speaker_turns(conn: duckdb.DuckDBPyConnection, dataset: str, normaliser: str | None = None) -> pa.Table:
    """Per turn with a reference transcript and a speaker: the speaker, where the device was, the stored word
    error counts under normaliser (None: the dataset's default) and the voice embedding (the disparity analysis
    aggregates them per speaker)."""
    source = _wer_source(conn, dataset, normaliser)
    # source: sql.turns_with_wer's checked subquery
    return conn.cursor().sql(f"""
        SELECT speaker_id, latitude, longitude, wer_sub, wer_del, wer_ins, wer_ref_words, speaker_embedding
        FROM {source} t
        WHERE dataset = ? AND wer_ref_words >= 0 AND speaker_id IS NOT NULL
        ORDER BY speaker_id, dialogue_id, turn_index
    """, params=[dataset]).to_arrow_table()


def list_worst_utterances(conn: duckdb.DuckDBPyConnection, dataset: str, speakers: list[str], *,
                          limit: int = 50, normaliser: str | None = None) -> pd.DataFrame:
    """The utterances of these speakers with the most word errors (then the highest WER) under normaliser (None:
    the dataset's default): the evidence behind a region's or cohort's WER, with both transcripts for the
    alignment."""
    source = _wer_source(conn, dataset, normaliser)
    # source: sql.turns_with_wer's checked subquery
    return conn.cursor().execute(f"""
        SELECT dialogue_id, turn_index, speaker_id, reference_text, asr_text, wer_sub, wer_del, wer_ins,
               wer_ref_words, (wer_sub + wer_del + wer_ins) / nullif(wer_ref_words, 0) AS wer
        FROM {source} t
        WHERE dataset = ? AND wer_ref_words > 0 AND speaker_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY wer_sub + wer_del + wer_ins DESC, wer DESC, dialogue_id, turn_index
        LIMIT ?
    """, [dataset, list(speakers), int(limit)]).df()


def list_speaker_utterances(conn: duckdb.DuckDBPyConnection, dataset: str, speakers: list[str], *,
                            limit: int = 500, normaliser: str | None = None) -> pd.DataFrame:
    """Utterances of these speakers (newest first), for a selection of speakers on the page; WER under normaliser
    (None: the dataset's default)."""
    source = _wer_source(conn, dataset, normaliser)
    # source: sql.turns_with_wer's checked subquery
    return conn.cursor().execute(f"""
        SELECT dialogue_id, turn_index, timestamp, speaker_id, asr_text, reference_text,
               (wer_sub + wer_del + wer_ins) / nullif(wer_ref_words, 0) AS wer
        FROM {source} t
        WHERE dataset = ? AND speaker_id IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY timestamp DESC, dialogue_id, turn_index
        LIMIT ?
    """, [dataset, list(speakers), int(limit)]).df()
