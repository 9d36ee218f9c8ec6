"""Training the skill router on a stored dataset and proposing its pseudo-labels as `skill` candidates."""

from __future__ import annotations

import json

import pytest

from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.skills.model import RoutingConfig, SkillRouter, build_examples
from app import store
from app.ingest import ingest_files
from app.jobs import skills as skill_jobs
from tests.test_label_model import random_embed

CFG = RoutingConfig(epochs=6, r=2, hidden=32)


@pytest.fixture
def sdb(db, tmp_path):
    for name, seed in (("t", 13), ("other", 14)):
        path = tmp_path / f"{name}.jsonl"
        write_log(simulate_turns(load_pool(), n_turns=600, seed=seed, id_prefix=f"{name}-"), path)
        ingest_files(db, [path], dataset=name)
    return db


def test_train_and_propose_pseudo_labels(sdb, tmp_path):
    embed = random_embed(16)
    summary = skill_jobs.train(sdb, "t", tmp_path / "m", config=CFG, embed=embed)
    assert summary["examples"] > 0 and summary["epochs"] == 6
    router = SkillRouter.from_pretrained(tmp_path / "m")
    expected = router.pseudo_labels()
    assert expected, "the tiny run should propose some pseudo-labels"
    result = skill_jobs.propose(sdb, "t", tmp_path / "m")
    assert result.rows_added == len(expected)  # one candidate per turn with pseudo-labels
    examples = build_examples(store.list_turn_records(sdb, "t", production_only=True))
    stored = sdb.execute("SELECT dialogue_id, turn_index, value, score FROM candidates WHERE task = 'skill' "
                         "ORDER BY dialogue_id, turn_index").fetchall()
    by_key = {(d, t): (json.loads(v), s) for d, t, v, s in stored}
    for i, found in expected.items():
        skill, _, score = max(found, key=lambda t: (t[2], -t[0]))
        ex = examples[i]
        assert by_key[ex.key] == (router.skills[skill], pytest.approx(score))
        assert router.skills[skill] != ex.skill  # a pseudo-label is another skill than the logged one
    again = skill_jobs.propose(sdb, "t", tmp_path / "m")
    assert again.rows_added == 0 and again.rows_already_present == len(expected)
    looser = skill_jobs.propose(sdb, "t", tmp_path / "m", p=2, r=1)  # other p, r: a new run, from the same dynamics
    assert looser.rows_added >= len(expected)
    with pytest.raises(ValueError, match="was not trained on dataset 'other'"):
        skill_jobs.propose(sdb, "other", tmp_path / "m")


def test_training_needs_routed_turns(db, tmp_path):
    from tests.helpers import make_turn, write_jsonl

    ingest_files(db, [write_jsonl(tmp_path / "l.jsonl", [make_turn("d", 0, response_skill=None)])], dataset="x")
    with pytest.raises(ValueError, match="no turns with a routed skill"):
        skill_jobs.train(db, "x", tmp_path / "m", config=CFG, embed=random_embed(16))
