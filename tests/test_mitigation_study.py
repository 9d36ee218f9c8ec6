"""The mitigation study (analysis/mitigation/benchmark.py): the leak guard (no evaluation-split utterance, sentence
or speaker in any tuning, selection, adaptation, Fisher or cohort-fitting input), the target rule, the voice
cohorts, --check's comparison and the report as a pure function of the JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.mitigation import benchmark as bm
from analysis.mitigation.groups import group_wer_errors
from analysis.rescoring.benchmark import EvaluationLeak
from analysis.rescoring.rescore import NBest
from tests.helpers import SLURP_DIR

needs_slurp = pytest.mark.skipif(not SLURP_DIR.is_dir(), reason="SLURP data not available")


@pytest.fixture(scope="module")
def small_inputs():
    """The study's inputs at a small size, built with the study's own functions (source (a)'s records before
    synthesis: the lists' texts, ids and speakers are what the guard reads)."""
    from analysis.rescoring import sources as src
    from analysis.rescoring.text import is_tune_utterance, slurp_training_text

    cfg = src.SpeechSourceConfig(tune_utterances=80, eval_utterances=40)
    tune = src.lists_from_records(src.speech_records(SLURP_DIR, "tune", cfg))
    ev = src.lists_from_records(src.speech_records(SLURP_DIR, "eval", cfg))
    sentences, nlu = slurp_training_text(SLURP_DIR, exclude=is_tune_utterance)
    speakers = sorted({nb.speaker for nb in tune + ev})
    tune_spk = sorted({nb.speaker for nb in tune})
    return bm.MitigationInputs(sentences, nlu, tune, ev,
                               {"accent": bm.accent_groups(speakers), "cohort": {s: "cohort 0" for s in speakers}},
                               {"cohort_fit_speakers": tune_spk})


@needs_slurp
def test_leak_guard_passes_on_the_study_inputs(small_inputs):
    res = bm.leak_check(SLURP_DIR, small_inputs)
    assert res["result"].startswith("passed")
    assert res["inputs"]["tuning lists"] == len(small_inputs.tune) > 0
    tune_speakers = {nb.speaker for nb in small_inputs.tune}
    assert tune_speakers.isdisjoint({nb.speaker for nb in small_inputs.eval})  # different people, by design
    group = [nb for nb in small_inputs.tune if bm.accent_groups([nb.speaker])[nb.speaker] == "en-us"]
    bm.leak_check(SLURP_DIR, small_inputs, adaptation=group, fisher_sentences=small_inputs.sentences[:100])


@needs_slurp
def test_leak_guard_catches_every_kind_of_leak(small_inputs):
    inp = small_inputs
    ev0 = inp.eval[0]
    with pytest.raises(EvaluationLeak, match="adaptation lists"):  # an evaluation list adapted on
        bm.leak_check(SLURP_DIR, inp, adaptation=[*inp.tune[:5], ev0])
    disguised = NBest("tune-copy", ev0.hypotheses, ev0.scores, reference=ev0.reference, speaker="sim-dev-x",
                      extra={"slurp_id": 1})  # another id and speaker, but an evaluation sentence
    with pytest.raises(EvaluationLeak, match="evaluation sentences"):
        bm.leak_check(SLURP_DIR, inp, adaptation=[disguised])
    voice = NBest("t", ["play jazz"], [0.0], reference="play some jazz please now", speaker=ev0.speaker,
                  extra={"slurp_id": 1})  # an evaluation speaker's voice in the adaptation data
    with pytest.raises(EvaluationLeak, match="evaluation speakers"):
        bm.leak_check(SLURP_DIR, inp, adaptation=[voice])
    with pytest.raises(EvaluationLeak, match="Fisher sentences"):
        bm.leak_check(SLURP_DIR, inp, fisher_sentences=[*inp.sentences[:10], ev0.reference])
    leaky = bm.MitigationInputs(inp.sentences, inp.nlu, [*inp.tune, ev0], inp.eval, inp.group_of, inp.info)
    with pytest.raises(EvaluationLeak, match="tuning lists"):
        bm.leak_check(SLURP_DIR, leaky)
    fit = bm.MitigationInputs(inp.sentences, inp.nlu, inp.tune, inp.eval, inp.group_of,
                              {"cohort_fit_speakers": [ev0.speaker]})
    with pytest.raises(EvaluationLeak, match="cohort fit"):
        bm.leak_check(SLURP_DIR, fit)


def test_worst_group_uses_eligible_groups_only():
    table = {"a": {"speakers": 8, "rescored": 0.5}, "b": {"speakers": 8, "rescored": 0.7},
             "c": {"speakers": 2, "rescored": 0.9}}  # c is worst but too small to adapt on
    assert bm.worst_group(table) == "b"
    with pytest.raises(ValueError):
        bm.worst_group({"c": table["c"]})
    lists = [NBest(f"k{i}", ["a b"], [0.0], reference="a b" if i < 2 else "a c", speaker=f"s{i}") for i in range(4)]
    t = bm.tune_side_table(lists, {"rescored": ["a b"] * 4}, ["x", "x", "y", "y"])
    assert t["x"] == {"lists": 2, "speakers": 2, "rescored": 0.0} and t["y"]["rescored"] == 0.5


def test_voice_cohorts_fit_on_tuning_speakers_and_assign_evaluation_speakers():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    tune = {f"t{i}": centres[i % 3] + rng.normal(0, 0.1, 3) for i in range(30)}
    ev = {f"e{i}": centres[i % 3] + rng.normal(0, 0.1, 3) for i in range(9)}
    cohorts, info = bm.voice_cohorts(tune, ev)
    assert info["k"] == 3
    for i in range(9):  # an evaluation speaker joins the cohort of the tuning speakers near it
        assert cohorts[f"e{i}"] == cohorts[f"t{i % 3}"]
    assert sum(info["speakers"]["tune"].values()) == 30 and sum(info["speakers"]["eval"].values()) == 9


# ----------------------------------------------------------------------------- check and report

def fake_results() -> dict:
    """A results dict of the study's shape with made-up errors (no training)."""
    rng = np.random.default_rng(1)
    n = 40
    ref = rng.integers(3, 9, n)
    errors = {s: rng.integers(0, 4, n).astype(float) for s in ("first_pass", *bm.SYSTEMS)}
    units = [f"s{i // 4}" for i in range(n)]
    pairs = [(s, bm.NONE) for s in bm.SYSTEMS if s != bm.NONE]
    pairs += [(f"ewc@{g}", f"finetune@{g}") for g in bm.GROUPINGS]
    pairs += [(f"{m}@cohort", f"{m}@accent") for m in bm.METHODS]
    groups = {"accent": [f"acc{i // 8}" for i in range(n)], "cohort": [f"cohort {i // 20}" for i in range(n)]}
    tables = {g: group_wer_errors(errors, ref, groups[g], units, pairs=pairs, resamples=50) for g in bm.GROUPINGS}
    per_seed = {g: [{s: {f: 0.5 for f in ("overall", "mean", "max", "variance")} for s in bm.SYSTEMS}]
                for g in bm.GROUPINGS}
    adapt = {s: {"lists": 10, "speakers": 2, "ewc_lam": 10.0 if s.startswith("ewc") else None,
                 "dev": {"unadapted_wer": 0.5, "wer": {"10": 0.4}} if s.startswith("ewc") else None,
                 "fisher_sentences": 500, "seconds": 1.0, "final_epoch": None} for s in bm.SYSTEMS if s != bm.NONE}
    seed = {"seed": 0, "lam": 0.01, "beta": -0.03, "tune_wer": 0.6, "targets": {"accent": "acc0", "cohort": "cohort 0"},
            "tune_groups": {g: {"acc0" if g == "accent" else "cohort 0": {"lists": 5, "speakers": 4, "first_pass": 0.7,
                                                                          "rescored": 0.6}} for g in bm.GROUPINGS},
            "adapt": adapt, "changed": {s: 3 for s in adapt}, "seconds": 12.0}
    return {"command": "python scripts/evaluate_mitigation.py", "args": {"n_boot": 50, "seeds": 1},
            "machine": "x", "runtime_seconds": 60.0, "inputs_seconds": 1.0,
            "rescoring_config": {"pretrain_epochs": 10, "finetune_epochs": 4},
            "adapt_config": bm.AdaptConfig().to_dict(), "min_target_speakers": 4,
            "lists": {"tune": 50, "eval": n, "tune_speakers": 10, "eval_speakers": 10, "training_sentences": 100},
            "source_fingerprint": "f", "cohorts": {"k": 2, "silhouette": {"2": 0.3}, "speakers": {
                "tune": {"cohort 0": 5, "cohort 1": 5}, "eval": {"cohort 0": 5, "cohort 1": 5}}},
            "published": bm.PUBLISHED,
            "leak_check": {"result": "passed", "inputs": {"tuning lists": 50}, "evaluation_lists": n,
                           "evaluation_speakers": 10, "evaluation_sentences": n},
            "tables": tables, "per_seed": per_seed, "seeds": [seed]}


def test_report_is_a_pure_function_of_the_json():
    res = fake_results()
    text = bm.render(res)
    assert bm.render(json.loads(json.dumps(res))) == text
    assert "Speaker verification with adversarial reweighting: see [verification.md](verification.md)." in text
    assert "## What limits the comparison" in text and "## Beside the published direction" in text
    ewc = res["tables"]["accent"]["differences"]["ewc@accent vs none"]["overall"]
    assert f"{ewc['value']:+.4f}" in text


def test_check_ignores_timings_and_reports_changed_figures():
    a = fake_results()
    b = json.loads(json.dumps(a))
    b["runtime_seconds"], b["seeds"][0]["seconds"] = 99.0, 1.0
    assert bm.compare(a, b) == []
    b["tables"]["accent"]["systems"]["none"]["overall"]["value"] += 0.01
    diffs = bm.compare(a, b)
    assert len(diffs) == 1 and "tables/accent/systems/none/overall/value" in diffs[0]
    assert bm.compare(a, b, tolerance=0.02) == []
