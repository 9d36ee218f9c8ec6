"""Training and scoring the label model on a stored dataset: one candidate per turn and task, with scores,
the intent distribution, and reviewed labels feeding the next training."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from analysis.labels.model import TASKS, LabelConfig
from analysis.simulate import load_pool, simulate_turns, write_log
from app import store
from app.ingest import ingest_files
from app.jobs import labels as label_jobs
from tests.test_label_model import random_embed

SMALL = LabelConfig(hidden=32, heads=2, layers=1, word_dim=16, epochs=2, pretrain_epochs=1, batch_size=32)


@pytest.fixture
def ldb(db, tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=300, seed=12), path)
    ingest_files(db, [path], dataset="t")
    return db


def test_train_score_and_review_loop(ldb, tmp_path):
    embed = random_embed(16)
    summary = label_jobs.train(ldb, "t", tmp_path / "m", config=SMALL, embed=embed)
    assert summary["turns"] == 300 and summary["reviewed_labels_used"] == 0
    assert [h["stage"] for h in summary["history"]] == ["pretraining", "training", "training"]
    result = label_jobs.score(ldb, "t", tmp_path / "m", embed=embed)
    assert (result.rows_read, result.rows_added) == (300 * len(TASKS), 300 * len(TASKS))
    again = label_jobs.score(ldb, "t", tmp_path / "m", embed=embed)
    assert again.rows_added == 0 and again.rows_already_present == 300 * len(TASKS)  # same model, same labels
    counts = dict(ldb.execute("SELECT task, count(*) FROM candidates GROUP BY task").fetchall())
    assert counts == {task: 300 for task in TASKS}
    for cid, value, score in ldb.execute("SELECT candidate_id, value, score FROM candidates WHERE task = 'intent' "
                                         "LIMIT 50").fetchall():
        dist = store.get_candidate_distribution(ldb, cid)
        assert sum(dist.values()) == pytest.approx(1.0) and len(dist) <= label_jobs.TOP_INTENTS + 1
        assert dist[json.loads(value)] == max(v for k, v in dist.items() if k != "(other)") == score
    for task in ("goal_start", "goal_success", "defect"):
        values = {json.loads(v) for (v,) in ldb.execute("SELECT DISTINCT value FROM candidates WHERE task = ?",
                                                         [task]).fetchall()}
        assert values <= {True, False}
        assert ldb.execute("SELECT min(score) FROM candidates WHERE task = ?", [task]).fetchone()[0] >= 0.5
    slots = [json.loads(v) for (v,) in ldb.execute("SELECT value FROM candidates WHERE task = 'slots'").fetchall()]
    assert all(isinstance(s, list) and all(set(x) == {"type", "value"} for x in s) for s in slots)
    # a reviewer corrects one intent; training with reviewed labels uses it
    cid, = ldb.execute("SELECT candidate_id FROM candidates WHERE task = 'intent' ORDER BY candidate_id "
                       "LIMIT 1").fetchone()
    store.insert_decision(ldb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="ana", verdict="correct",
                          corrected_value='"alarm_set"')
    # ... and one label of every other task, each in its own JSON type (a list of slots, true / false)
    for task, fixed in (("slots", '[{"type":"time","value":"seven am"}]'), ("goal_start", "false"),
                        ("goal_success", "true"), ("defect", "false")):
        cid, = ldb.execute("SELECT candidate_id FROM candidates WHERE task = ? ORDER BY candidate_id LIMIT 1",
                           [task]).fetchone()
        store.insert_decision(ldb, decision_id=str(uuid.uuid4()), candidate_id=cid, reviewer="ana",
                              verdict="correct", corrected_value=fixed)
    summary = label_jobs.train(ldb, "t", tmp_path / "m2", config=SMALL, embed=embed, with_reviewed=True)
    assert summary["reviewed_labels_used"] == 5


def test_scoring_reads_production_fields_only(ldb):
    turns = store.list_turn_records(ldb, "t", production_only=True)
    assert len(turns) == 300
    assert not {k for k in turns[0] if k.startswith("gold_") or k in ("reference_text", "speaker_embedding")}
    assert "gold_intent" in store.list_turn_records(ldb, "t")[0]  # training reads the targets


def test_a_retrained_checkpoint_is_a_new_model_run(ldb, tmp_path):
    embed = random_embed(16)
    label_jobs.train(ldb, "t", tmp_path / "m", config=SMALL, embed=embed)
    label_jobs.score(ldb, "t", tmp_path / "m", tasks=("intent",), embed=embed)
    # new weights in the same folder with the same config and data (as after a code change): copy them in
    label_jobs.train(ldb, "t", tmp_path / "other", config=replace(SMALL, seed=1), embed=embed)
    (tmp_path / "m" / "weights.pt").write_bytes((tmp_path / "other" / "weights.pt").read_bytes())
    result = label_jobs.score(ldb, "t", tmp_path / "m", tasks=("intent",), embed=embed)
    assert result.rows_added == 300  # not a conflict with the first run's scores
    assert ldb.execute("SELECT count(DISTINCT run_id) FROM candidates").fetchone()[0] == 2


def test_intent_distribution_keeps_the_top_and_the_rest():
    import numpy as np

    dist = label_jobs.intent_distribution(["a", "b", "c", "d"], np.array([0.1, 0.6, 0.2, 0.1]), top=2)
    assert dist == pytest.approx({"b": 0.6, "c": 0.2, "(other)": 0.2})
    assert label_jobs.intent_distribution(["a", "b"], np.array([0.25, 0.75]), top=5) == {"b": 0.75, "a": 0.25}


def test_scoring_checks_its_inputs(ldb, tmp_path):
    embed = random_embed(16)
    label_jobs.train(ldb, "t", tmp_path / "m", config=SMALL, embed=embed)
    with pytest.raises(ValueError, match="tasks must be among"):
        label_jobs.score(ldb, "t", tmp_path / "m", tasks=("intent", "colour"), embed=embed)
    with pytest.raises(ValueError, match="has no turns to score"):
        label_jobs.score(ldb, "none", tmp_path / "m", embed=embed)
    result = label_jobs.score(ldb, "t", tmp_path / "m", tasks=("intent",), embed=embed)
    assert result.rows_added == 300


def test_training_needs_intent_labels(db, tmp_path):
    from tests.helpers import make_turn, write_jsonl

    ingest_files(db, [write_jsonl(tmp_path / "l.jsonl", [make_turn("d", 0, gold_intent=None)])], dataset="x")
    with pytest.raises(ValueError, match="at least 20 are needed"):
        label_jobs.train(db, "x", tmp_path / "m", config=SMALL, embed=random_embed(16))
