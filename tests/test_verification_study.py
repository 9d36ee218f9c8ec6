"""Tests of the verification study's data and guards: no held-out speaker or evaluation-split sentence in
training, speaker splits, automatic cohorts fitted on training speakers only, the evaluation API, and the report
as a pure function of its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.slurp import is_eval_utterance
from analysis.speech.voices import voice_for
from analysis.verification import benchmark
from analysis.verification.data import split_speakers, study_records
from analysis.verification.evaluate import evaluate_verifier, leak_check, per_speaker_groups

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "verification.json"


def test_study_training_rows_hold_no_held_out_speaker_and_no_evaluation_sentence():
    records = study_records(speakers_per_accent=4, turns=3, seed=0)
    speakers = np.array([r["speaker_id"] for r in records])
    slurp_ids = np.array([r["slurp_id"] for r in records])
    assert not any(is_eval_utterance(int(s)) for s in slurp_ids)
    assert len({r["reference_text"] for r in records}) == len(records)  # no sentence said twice
    names = sorted(set(speakers.tolist()))
    train, test = split_speakers(names, [voice_for(s).accent for s in names], held_out=0.5, seed=0)
    assert not set(train) & set(test) and set(train) | set(test) == set(names)
    assert sorted(voice_for(s).accent for s in test) == sorted(voice_for(s).accent for s in train)  # stratified
    rows = np.isin(speakers, train)
    leak_check(speakers[rows], slurp_ids[rows], test)  # what benchmark.run does before training


def test_leak_check_fails_on_a_held_out_speaker_or_an_evaluation_sentence():
    with pytest.raises(ValueError, match="held-out speakers"):
        leak_check(["a", "b"], [1, 2], ["b", "c"])
    with pytest.raises(ValueError, match="evaluation-split"):
        leak_check(["a", "b"], [1, 10], ["c"])  # 10 % 5 == 0
    leak_check(["a", "b"], [1, 2], ["c"])


def test_cohorts_are_fitted_on_training_speakers_and_applied_by_nearest_centroid():
    rng = np.random.default_rng(0)
    centres = np.eye(6)[:3] * 5
    spk = [f"s{i}" for i in range(30) for _ in range(2)]
    x = np.repeat(centres[np.arange(30) % 3], 2, axis=0) + rng.normal(scale=0.1, size=(60, 6))
    speakers = np.array(spk)
    train, test = [f"s{i}" for i in range(20)], [f"s{i}" for i in range(20, 30)]
    cohort, fit = benchmark.cohorts_from_training(x, speakers, train, test, seed=0)
    assert fit["k"] == 3 and sum(fit["train_sizes"]) == 20
    for i in range(30):  # the same centre gets the same cohort, held-out speakers included
        assert cohort[f"s{i}"] == cohort[f"s{i % 3}"]
    # moving the held-out speakers does not move the fit
    x2 = x.copy()
    x2[40:] += 100
    _, fit2 = benchmark.cohorts_from_training(x2, speakers, train, test, seed=0)
    assert fit2 == fit


def test_evaluate_verifier_raw_cosine_per_group():
    rng = np.random.default_rng(1)
    spk = [f"s{i}" for i in range(10) for _ in range(3)]
    centres = rng.normal(size=(10, 8))
    x = np.repeat(centres, 3, axis=0) + rng.normal(scale=np.where(np.arange(30) < 15, 0.1, 2.0)[:, None],
                                                   size=(30, 8))
    groups = {"noise": ["low" if i < 15 else "high" for i in range(30)]}
    out = evaluate_verifier(None, x, spk, groups, n_boot=50, seed=0)
    g = out["groupings"]["noise"]
    assert g["groups"]["low"]["value"] < g["groups"]["high"]["value"]
    assert out["overall"]["targets"] == 30 and out["overall"]["impostors"] == 435 - 30
    assert g["gap"]["value"] == pytest.approx(g["groups"]["high"]["value"] - g["groups"]["low"]["value"])
    with pytest.raises(ValueError, match="two groups"):
        per_speaker_groups(["a", "a"], ["x", "y"])


@pytest.mark.skipif(not RESULTS.exists(), reason="docs/results/verification.json not written yet")
def test_report_is_a_pure_function_of_its_json():
    res = json.loads(RESULTS.read_text())
    assert benchmark.render(res) == RESULTS.with_suffix(".md").read_text()
    assert benchmark.metrics(res)  # the figures --check compares
    assert benchmark.compare(res, res) == []
