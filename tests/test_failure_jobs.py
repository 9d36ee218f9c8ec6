"""Training and scoring the failure-point model on a stored dataset; scores become review candidates, and
reviewed corrections feed the next training (--with-reviewed)."""

from __future__ import annotations

import json
import uuid

import pytest

from analysis.failure_points.model import LABELS, FailurePointClassifier, FailurePointConfig, build_examples
from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.text_encoder import EmbeddingCache, TextEncoder
from app import store
from app.ingest import ingest_files
from app.jobs import failure_points as failure_jobs


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    cache, encoder = EmbeddingCache(tmp_path_factory.mktemp("emb")), TextEncoder.load()
    return lambda texts: cache.encode(encoder, texts)


def whole_layer_scoring(from_pretrained):
    """from_pretrained whose model scores through every layer whole, as training does (the pre-66b812c path),
    its logits shifted by at most 6e-7 so that the numbers differ in their last bits even on a machine whose
    kernels round both paths alike."""
    def load(*args, **kwargs):
        import torch

        clf = from_pretrained(*args, **kwargs)
        m = clf.model
        shift = 1e-7 * torch.arange(len(LABELS), dtype=torch.float32)
        m.forward = lambda text, meta: m.head(m.norm(m.encoder(m.tokens(text, meta))[:, 0])) + shift
        return clf
    return load


@pytest.fixture
def fdb(db, tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=300, seed=11), path)
    ingest_files(db, [path], dataset="t")
    return db


def test_train_score_and_review_loop(fdb, tmp_path, embed, monkeypatch):
    summary = failure_jobs.train(fdb, "t", tmp_path / "m", config=FailurePointConfig(epochs=2, use_text=True),
                                 embed=embed)
    assert summary["turns"] == 300 and summary["reviewed_labels_used"] == 0
    seen, timings = [], {}
    result = failure_jobs.score(fdb, "t", tmp_path / "m", embed=embed, timings=timings,
                                progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert (result.rows_read, result.rows_added, result.distributions_added) == (300, 300, 300)
    assert seen[-1] == ("scoring", 300, 300)
    assert set(timings) == {"read", "inputs", "text_encoder", "model", "write"}
    assert all(v >= 0 for v in timings.values()) and timings["text_encoder"] > 0
    again = failure_jobs.score(fdb, "t", tmp_path / "m", embed=embed)
    assert (again.rows_added, again.distributions_added) == (0, 0)  # same checkpoint, same scores: nothing new
    # Scored by the whole last layer (the code before the [CLS]-row-only scoring): the same run, the numbers
    # changed in their last bits, so an upgraded turnlens scoring a stored run again must not call it a conflict.
    monkeypatch.setattr(FailurePointClassifier, "from_pretrained", whole_layer_scoring(
        FailurePointClassifier.from_pretrained))
    turns = store.list_turn_records(fdb, "t", production_only=True)
    stored_text = dict(fdb.execute("SELECT c.target_key, d.distribution FROM candidates c JOIN candidate_distributions "
                                   "d USING (candidate_id)").fetchall())
    whole = failure_jobs.candidates(turns, tmp_path / "m", embed=embed).to_pylist()
    assert any(row["distribution"] != stored_text[row["target_key"]] for row in whole)  # really other bits
    rescored = failure_jobs.score(fdb, "t", tmp_path / "m", embed=embed)
    assert (rescored.rows_added, rescored.rows_already_present, rescored.distributions_added) == (0, 300, 0)
    # every candidate keeps the whole vector: all the labels, its value the most likely, its score that probability
    stored = fdb.execute("SELECT c.candidate_id, c.dialogue_id, c.turn_index, c.value, c.score FROM candidates c "
                         "ORDER BY c.dialogue_id, c.turn_index").fetchall()
    vectors = {(d, t): store.get_candidate_distribution(fdb, cid) for cid, d, t, _, _ in stored}
    for _, d, t, value, score in stored:
        vector = vectors[(d, t)]
        assert set(vector) == set(LABELS) and sum(vector.values()) == pytest.approx(1, abs=1e-9)
        assert vector[json.loads(value)] == max(vector.values()) == score
    # ... and each probability belongs to its own label (the model's output, column by column)
    examples = build_examples(store.list_turn_records(fdb, "t"))[:20]
    probs = FailurePointClassifier.from_pretrained(tmp_path / "m").predict_proba(examples, embed=embed)
    # (1e-6: the stored scores came from batches of another size, and kernels may round differently per batch)
    for ex, p in zip(examples, probs, strict=True):
        assert vectors[(ex.dialogue_id, ex.turn_index)] == pytest.approx(dict(zip(LABELS, p, strict=True)), abs=1e-6)
    runs = store.list_failure_runs(fdb, "t")
    assert len(runs) == 1 and runs.iloc[0]["name"] == "failure-points" and runs.iloc[0]["turns"] == 300
    values = {json.loads(v) for (v,) in fdb.execute("SELECT DISTINCT value FROM candidates").fetchall()}
    assert values <= {"NO_FAILURE", "WAKEWORD", "ASR", "NLU", "ENTITY_RESOLUTION", "RESPONSE", "TTS"}
    # a reviewer corrects one attribution; training with --with-reviewed uses it over the gold label
    cid, = fdb.execute("SELECT candidate_id FROM candidates ORDER BY candidate_id LIMIT 1").fetchone()
    store.insert_decision(fdb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="ana",
                          verdict="correct", corrected_value='"TTS"')
    reviewed = store.list_reviewed_labels(fdb, "t", "failure_point")
    assert list(reviewed.values()) == ["TTS"]
    summary = failure_jobs.train(fdb, "t", tmp_path / "m2", config=FailurePointConfig(epochs=1), embed=embed,
                                 with_reviewed=True)
    assert summary["reviewed_labels_used"] == 1


def test_training_needs_labels(db, tmp_path, embed):
    from tests.helpers import make_turn, write_jsonl

    ingest_files(db, [write_jsonl(tmp_path / "l.jsonl", [make_turn("d", 0, gold_failure_point=None)])],
                 dataset="nolabels")
    with pytest.raises(ValueError, match="at least 20 are needed"):
        failure_jobs.train(db, "nolabels", tmp_path / "m", config=FailurePointConfig(epochs=1), embed=embed)


def test_scoring_an_empty_dataset_is_a_clean_error(fdb, tmp_path, embed):
    failure_jobs.train(fdb, "t", tmp_path / "m", config=FailurePointConfig(epochs=1), embed=embed)
    with pytest.raises(ValueError, match="dataset 'nothing' has no turns to score"):
        failure_jobs.score(fdb, "nothing", tmp_path / "m", embed=embed)
    assert fdb.execute("SELECT count(*) FROM candidates").fetchone()[0] == 0
