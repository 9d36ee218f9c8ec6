"""Streamed failure-point scoring: batches of whole dialogues read from the store, scored and written in one
transaction per batch give what scoring the whole log at once gives (up to float rounding, which the store
takes for the same proposal); the column-wise candidate rows match the
row-by-row ones. A deterministic stand-in embedder keeps it fast (no MiniLM)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, DISTRIBUTIONS_CHECKED, canonical_json, checked_mark, target_key
from analysis.failure_points.model import (
    FIELDS_READ,
    LABELS,
    FailurePointClassifier,
    FailurePointConfig,
    build_examples,
    gold_labels,
)
from analysis.failure_points.scoring import candidate_table, distribution_json
from analysis.simulate import load_pool, simulate_turns, write_log
from app import store
from app.ingest import ingest_files
from app.jobs import failure_points as failure_jobs
from app.store import candidates as store_candidates
from app.store import streaming
from app.store.candidates import ROUNDING


def fake_embed(texts: list[str]) -> np.ndarray:
    """A vector per text that depends only on the text (16 dimensions)."""
    return np.array([np.random.default_rng(list(hashlib.sha1(t.encode()).digest()[:8])).standard_normal(16)
                     for t in texts], dtype=np.float32).reshape(len(texts), 16)


@pytest.fixture(scope="module")
def log_and_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp-stream")
    turns = list(simulate_turns(load_pool(), n_turns=300, seed=3))
    write_log(turns, folder / "log.jsonl")
    examples = build_examples(turns)
    FailurePointClassifier(FailurePointConfig(epochs=1, use_text=True, hidden=32, heads=2)).fit(
        examples, gold_labels(turns, examples), embed=fake_embed).save_pretrained(folder / "model")
    return folder / "log.jsonl", folder / "model"


def stored(conn) -> list[tuple]:
    return conn.execute("""
        SELECT c.target_key, c.value, c.score, d.distribution, r.name, r.version, r.parameters
        FROM candidates c JOIN candidate_distributions d USING (candidate_id) JOIN model_runs r USING (run_id)
        ORDER BY c.target_key""").fetchall()


def test_batched_scoring_stores_what_unbatched_scoring_stores(tmp_path, log_and_model):
    log, model = log_and_model
    results = {}
    for batch in (20, 10**6):  # 20 dialogues at a time, and the whole log as one batch
        conn = store.connect(tmp_path / f"{batch}.duckdb")
        ingest_files(conn, [log], dataset="t")
        seen: list[tuple] = []
        result = failure_jobs.score(conn, "t", model, embed=fake_embed, batch_dialogues=batch,
                                    progress=lambda *args, seen=seen: seen.append(args))
        assert (result.rows_read, result.rows_added, result.distributions_added) == (300, 300, 300)
        assert seen[-1] == ("scoring", 300, 300) and [s[1] for s in seen] == sorted(s[1] for s in seen)
        results[batch] = stored(conn)
        conn.close()
    assert len(results[20]) == 300
    # The same candidates of the same run; the numbers may differ in their last bits, because the last layer's
    # [CLS]-row-only kernels round differently for batches of another shape (not so for the whole-layer path)
    for a, b in zip(results[20], results[10**6], strict=True):
        assert (a[0], a[1], a[4:]) == (b[0], b[1], b[4:])
        assert a[2] == pytest.approx(b[2], abs=ROUNDING)
        assert json.loads(a[3]) == pytest.approx(json.loads(b[3]), abs=ROUNDING)
    # ... which the store takes for the same proposals: scoring again in other batches stores nothing new
    conn = store.connect(tmp_path / "20.duckdb")
    again = failure_jobs.score(conn, "t", model, embed=fake_embed, batch_dialogues=10**6)
    assert (again.rows_added, again.rows_already_present, again.distributions_added) == (0, 300, 0)
    assert stored(conn) == results[20]  # the stored numbers are kept
    conn.close()


def test_turn_batches_hold_whole_dialogues_in_order(db, log_and_model):
    log, _ = log_and_model
    ingest_files(db, [log], dataset="t")
    batches = list(streaming.iter_turn_records(db, "t", batch_dialogues=5))
    every = store.list_turn_records(db, "t", production_only=True)
    assert [t for b in batches for t in b] == every
    assert len(batches) > 10
    ids = [{t["dialogue_id"] for t in b} for b in batches]
    assert all(len(i) <= 5 for i in ids)
    assert sum(len(i) for i in ids) == len({t["dialogue_id"] for t in every})  # no dialogue in two batches
    assert not any("gold_failure_point" in t or "reference_text" in t for t in batches[0])
    with pytest.raises(ValueError, match="at least 1"):
        next(streaming.iter_turn_records(db, "t", batch_dialogues=0))


def test_a_failing_batch_keeps_the_batches_before_it_and_a_rerun_completes(db, log_and_model):
    log, model = log_and_model
    ingest_files(db, [log], dataset="t")
    turns = store.list_turn_records(db, "t", production_only=True)
    table = failure_jobs.candidates(turns, model, embed=fake_embed)

    def batches():
        yield table.slice(0, 100)
        yield table.slice(100, 100).set_column(8, "score", pa.array([2.0] * 100))  # refused: not a probability
        yield table.slice(200)

    with pytest.raises(ValueError):
        streaming.insert_candidate_batches(db, batches())
    assert store.count_candidates(db) == 100  # the first batch, whole; nothing of the refused one
    result = streaming.insert_candidate_batches(db, [table.slice(0, 150), table.slice(150)])
    assert (result.rows_read, result.rows_added, result.rows_already_present) == (300, 200, 100)


def test_candidate_rows_match_the_row_by_row_construction():
    turns = list(simulate_turns(load_pool(), n_turns=60, seed=4))
    examples = build_examples(turns)
    probs = np.random.default_rng(0).dirichlet(np.ones(len(LABELS)), size=len(examples))
    probs[0] = np.eye(len(LABELS))[3]  # exact zeros and one
    run = ("failure-points", "v1", '{"a":1}')
    rows = []
    for ex, p in zip(examples, probs.tolist(), strict=True):
        b = int(np.argmax(p))
        kind, key = target_key(ex.dialogue_id, ex.turn_index)
        rows.append({"task": "failure_point", "target_kind": kind, "dialogue_id": ex.dialogue_id,
                     "turn_index": ex.turn_index, "other_dialogue_id": None, "other_turn_index": None,
                     "target_key": key, "value": json.dumps(LABELS[b]), "score": p[b],
                     "distribution": canonical_json(dict(zip(LABELS, p, strict=True))),
                     "model_name": run[0], "model_version": run[1], "model_parameters": run[2], "run_at": None})
    assert candidate_table(examples, probs, run).equals(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
    assert candidate_table([], np.zeros((0, len(LABELS))), run).num_rows == 0
    odd = np.full((1, len(LABELS)), np.nan)
    assert distribution_json(odd) == [canonical_json(dict(zip(LABELS, odd[0].tolist(), strict=True)))]
    with pytest.raises(ValueError, match="one row"):
        candidate_table(examples, probs[:3], run)


def test_checked_probabilities_mark_the_table_and_the_store_skips_only_an_intact_marks_rows(db, log_and_model,
                                                                                            monkeypatch):
    log, model = log_and_model
    ingest_files(db, [log], dataset="t")
    turns = store.list_turn_records(db, "t", production_only=True)
    table = failure_jobs.candidates(turns, model, embed=fake_embed)
    assert table.schema.metadata[DISTRIBUTIONS_CHECKED] == checked_mark(table)
    # numbers check_distribution refuses leave the table unmarked, and the store's row check names the row
    examples, run = build_examples(turns)[:3], ("m", "v", "{}")
    for bad, message in ((np.nan, "must be a number"), (1.1 / len(LABELS), "sum to 1.1")):
        probs = np.full((3, len(LABELS)), 1 / len(LABELS))
        probs[2] = bad
        unmarked = candidate_table(examples, probs, run)
        assert DISTRIBUTIONS_CHECKED not in (unmarked.schema.metadata or {})
        with pytest.raises(ValueError, match=f"candidate row 2 .*{message}"):
            store.insert_candidates(db, unmarked)
    checked = []
    real = store_candidates.check_distribution
    monkeypatch.setattr(store_candidates, "check_distribution", lambda *a, **k: checked.append(1) or real(*a, **k))
    # a slice keeps the metadata, but the mark no longer fits the rows: every row is checked
    assert store.insert_candidates(db, table.slice(0, 100)).rows_added == 100 and len(checked) == 100
    checked.clear()
    # a score changed after marking (still a probability, no longer its label's): checked, and refused
    scores = table.column("score").to_pylist()
    changed = table.set_column(table.schema.get_field_index("score"), "score",
                               pa.array([scores[0] - 1e-3] + scores[1:]))
    with pytest.raises(ValueError, match="candidate row 0 .*but its score is"):
        store.insert_candidates(db, changed)
    # a value swapped for a label of the same length ("ASR" for "NLU"), or two rows swapped: checked again
    values = table.column("value").to_pylist()
    swap = {'"ASR"': '"NLU"', '"NLU"': '"ASR"', '"TTS"': '"ASR"'}
    i = next(k for k, v in enumerate(values) if k >= 100 and v in swap)
    relabelled = table.set_column(table.schema.get_field_index("value"), "value",
                                  pa.array(values[:i] + [swap[values[i]]] + values[i + 1:]))
    with pytest.raises(ValueError, match=f"candidate row {i} .*has no probability|candidate row {i} .*but its score"):
        store.insert_candidates(db, relabelled)
    order = list(range(table.num_rows))
    order[150], order[151] = order[151], order[150]
    reordered = table.take(order).replace_schema_metadata(table.schema.metadata)
    assert checked_mark(reordered) != checked_mark(table)
    checked.clear()
    result = store.insert_candidates(db, table)  # the intact mark: no row parsed again
    assert checked == [] and (result.rows_added, result.rows_already_present) == (200, 100)


def test_a_table_of_other_column_types_has_no_mark_and_is_checked_as_before():
    rows = [{"value": '"ASR"', "score": 0.5, "distribution": None}]
    untyped = pa.Table.from_pylist(rows)  # an all-null distribution column of Arrow's null type
    assert checked_mark(untyped) == b""
    assert store_candidates._checked_distributions(untyped) is untyped  # nothing to check, no error
    marked = untyped.replace_schema_metadata({DISTRIBUTIONS_CHECKED: b""})
    assert store_candidates._checked_distributions(marked) is marked


def test_the_mark_stays_out_of_the_parquet_parts_an_engine_writes(log_and_model, tmp_path):
    import pyarrow.fs
    import pyarrow.parquet as pq

    from app.engines.candidate_parts import write_parts

    log, model = log_and_model
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    table = failure_jobs.candidates(turns, model, embed=fake_embed)
    assert DISTRIBUTIONS_CHECKED in table.schema.metadata
    (path, rows), = write_parts(table, pyarrow.fs.LocalFileSystem(), str(tmp_path / "out"), {"engine": "test"})
    meta = pq.read_schema(path).metadata
    assert rows == 300 and meta[b"turnlens.engine"] == b"test" and DISTRIBUTIONS_CHECKED not in meta


def test_scoring_reads_only_the_fields_the_model_reads_and_builds_the_same_inputs(db, log_and_model):
    log, _ = log_and_model
    ingest_files(db, [log], dataset="t")
    narrow = [t for batch in streaming.iter_turn_records(db, "t", batch_dialogues=7, fields=FIELDS_READ)
              for t in batch]
    every = store.list_turn_records(db, "t", production_only=True)
    assert all(list(t) == list(FIELDS_READ) for t in narrow) and len(narrow) == len(every) == 300
    # the model's inputs from the narrow records are those from every production field: nothing it reads is left out
    assert build_examples(narrow) == build_examples(every)
    for fields, named in ((["asr_text", "nope"], "nope"), (["gold_failure_point"], "gold_failure_point"),
                          ([], "none given")):
        with pytest.raises(ValueError, match=named):
            next(streaming.iter_turn_records(db, "t", fields=fields))
