"""The rescoring study's evaluation (analysis/rescoring/evaluate.py, benchmark.py): WER, oracle and WERR on a
hand-built case, the paired cluster bootstrap, the rare-word rule, and the leak guard: no evaluation-split
utterance (slurp_id % 5 == 0, or its sentence) in any training or tuning input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.rescoring import evaluate as ev
from analysis.rescoring.rescore import NBest
from tests.helpers import SLURP_DIR

needs_slurp = pytest.mark.skipif(not SLURP_DIR.is_dir(), reason="SLURP data not available")


def _lists() -> list[NBest]:
    return [NBest("l1", ["a b x d", "a b c d", "y"], [0.0, -1.0, -2.0], reference="a b c d", speaker="s1"),
            NBest("l2", ["e g", "e f g"], [0.0, -1.0], reference="e f", speaker="s2")]


def test_wer_oracle_and_werr_by_hand():
    nbs = _lists()
    assert ev.first_pass_texts(nbs) == ["a b x d", "e g"]
    assert ev.oracle_texts(nbs) == ["a b c d", "e g"]  # "e g" and "e f g" both have one error: the first wins
    res = ev.evaluate_lists(nbs, {"r": ["a b c d", "e f g"], "same": ["a b x d", "e g"]}, rare_words=None,
                            unit="speaker", resamples=0, lm_only="same")
    a = res["all"]
    assert a["lists"] == 2 and a["units"] == 2 and a["reference_words"] == 6
    assert a["wer"]["first_pass"]["value"] == pytest.approx(2 / 6)
    assert a["wer"]["oracle"]["value"] == pytest.approx(1 / 6)
    assert a["wer"]["r"]["value"] == pytest.approx(1 / 6)
    assert a["werr"]["oracle vs first_pass"]["value"] == pytest.approx(0.5)
    assert a["werr"]["r vs first_pass"]["value"] == pytest.approx(0.5)
    assert a["werr"]["r vs same"]["value"] == pytest.approx(0.5)  # every other system against the LM-only one
    assert a["werr"]["same vs first_pass"]["value"] == 0.0
    assert res["rare"] is None


def test_evaluate_lists_refuses_bad_input():
    nbs = _lists()
    with pytest.raises(ValueError):
        ev.evaluate_lists(nbs, {"r": ["a"]}, rare_words=None, unit="speaker")
    with pytest.raises(ValueError):
        ev.evaluate_lists(nbs, {"oracle": ["a", "b"]}, rare_words=None, unit="speaker")
    with pytest.raises(ValueError):  # no such unit on the lists
        ev.evaluate_lists(nbs, {"r": ["a", "b"]}, rare_words=None, unit="slurp_id")


def test_paired_bootstrap_over_units():
    rng = np.random.default_rng(0)
    n = 200
    groups = [f"u{i // 4}" for i in range(n)]  # 50 units of 4 lists
    ref = rng.integers(3, 9, n)
    base = rng.integers(0, 4, n).astype(float)
    better = np.maximum(base - (rng.random(n) < 0.3), 0)  # never worse, sometimes one error fewer
    res = ev.evaluate_errors({"base": base, "better": better}, ref, groups,
                             pairs=[("better", "base"), ("base", "base")], resamples=500, seed=1)
    w = res["werr"]["better vs base"]
    assert res["units"] == 50
    assert 0 < w["ci"][0] <= w["value"] <= w["ci"][1]  # paired: a system never worse has a positive interval
    assert res["werr"]["base vs base"]["ci"] == [0.0, 0.0]
    lo, hi = res["wer"]["base"]["ci"]
    assert lo < res["wer"]["base"]["value"] < hi
    again = ev.evaluate_errors({"base": base, "better": better}, ref, groups, pairs=[("better", "base")],
                               resamples=500, seed=1)
    assert again["werr"]["better vs base"] == w  # seeded
    # resampling whole units: one unit holding every list cannot be resampled, so no interval
    one = ev.evaluate_errors({"base": base}, ref, ["u"] * n, resamples=100)
    assert np.isnan(one["wer"]["base"]["ci"][0])


def test_fractional_errors_average_over_seeds():
    ref = np.array([4, 2])
    seed_errors = [np.array([1, 0]), np.array([0, 1])]
    res = ev.evaluate_errors({"m": np.mean(seed_errors, axis=0)}, ref, ["a", "b"], resamples=0)
    per_seed = [ev.evaluate_errors({"m": e}, ref, ["a", "b"], resamples=0)["wer"]["m"]["value"] for e in seed_errors]
    assert res["wer"]["m"]["value"] == pytest.approx(np.mean(per_seed))


def test_rare_word_rule_for_k():
    counts = {"play": 40, "jazz": 3, "by": 12, "miles": 1}
    cands = ["play", "jazz", "by", "miles", "davis"]
    assert ev.rare_vocabulary(counts, cands, k=1) == {"davis"}  # never seen
    assert ev.rare_vocabulary(counts, cands, k=2) == {"davis", "miles"}  # seen fewer than 2 times
    assert ev.rare_vocabulary(counts, cands, k=5) == {"davis", "miles", "jazz"}
    assert ev.rare_vocabulary(lambda w: counts.get(w, 0), cands, k=13) == {"davis", "miles", "jazz", "by"}
    with pytest.raises(ValueError):
        ev.rare_vocabulary(counts, cands, k=0)
    nbs = [NBest("1", ["x"], [0.0], reference="Play jazz"), NBest("2", ["x"], [0.0], reference="play by")]
    assert ev.rare_mask(nbs, ev.rare_vocabulary(counts, ev.reference_words(nbs), k=5)).tolist() == [True, False]
    res = ev.evaluate_lists(nbs, {}, rare_words={"jazz"}, unit="key", resamples=0)
    assert res["rare"]["lists"] == 1 and res["rare"]["reference_words"] == 2


def test_intent_accuracy_difference_by_hand():
    correct = {"first": np.array([1, 0, 0, 1.0]), "new": np.array([1, 1, 0, 1.0])}
    res = ev.evaluate_accuracy(correct, ["a", "b", "c", "d"], pairs=[("new", "first")], resamples=200)
    assert res["accuracy"]["first"]["value"] == 0.5 and res["accuracy"]["new"]["value"] == 0.75
    assert res["difference"]["new vs first"]["value"] == pytest.approx(0.25)
    assert res["difference"]["new vs first"]["ci"][0] >= 0


# ----------------------------------------------------------------------------- the leak guard

@pytest.fixture(scope="module")
def small_inputs():
    """The study's inputs, built with the benchmark's own functions at a small size: the LM's training text, the
    simulated tuning and evaluation lists, source (a)'s tuning records (before synthesis) and first-pass corpus."""
    from analysis.rescoring import benchmark as bm
    from analysis.rescoring import sources as src

    inputs = bm.study_inputs(SLURP_DIR, speech=False, sim_tune=300, sim_eval=50)
    cfg = src.SpeechSourceConfig(tune_utterances=60, eval_utterances=20)
    inputs.lists["speech"] = {"tune": src.lists_from_records(src.speech_records(SLURP_DIR, "tune", cfg)),
                              "eval": src.lists_from_records(src.speech_records(SLURP_DIR, "eval", cfg))}
    inputs.first_pass_corpus = src.first_pass_corpus(SLURP_DIR)
    return inputs


@needs_slurp
def test_no_evaluation_utterance_in_any_training_or_tuning_input(small_inputs):
    from analysis.rescoring import benchmark as bm
    from analysis.rescoring.text import evaluation_sentences, sentence_key

    summary = bm.leak_check(SLURP_DIR, small_inputs, nlu_training=[s.text for s in bm._nlu_sentences(
        small_inputs.nlu)])
    assert summary["result"].startswith("passed")
    forbidden = evaluation_sentences(SLURP_DIR)
    # and directly, whatever leak_check does:
    assert not {sentence_key(s) for s in small_inputs.sentences} & forbidden
    assert not {" ".join(ex.tokens) for ex in small_inputs.nlu} & forbidden
    assert not {sentence_key(s) for s in small_inputs.first_pass_corpus} & forbidden
    for source, by in small_inputs.lists.items():
        assert by["tune"], source
        for nb in by["tune"]:
            assert nb.extra["slurp_id"] % 5 != 0 and sentence_key(nb.reference) not in forbidden
        assert all(nb.extra["slurp_id"] % 5 == 0 for nb in by["eval"])
    # the tuning sentences are unseen by both LMs
    tune = {sentence_key(nb.reference) for by in small_inputs.lists.values() for nb in by["tune"]}
    assert not tune & {sentence_key(s) for s in small_inputs.sentences}
    assert not tune & {sentence_key(s) for s in small_inputs.first_pass_corpus}


@needs_slurp
@pytest.mark.parametrize("where", ["sentences", "nlu", "corpus", "tune_id", "tune_text", "tune_in_training"])
def test_the_leak_guard_fails_on_a_planted_leak(small_inputs, where):
    import copy

    from analysis.rescoring import benchmark as bm
    from analysis.rescoring.text import NLUExample, words

    inputs = copy.copy(small_inputs)
    inputs.lists = {k: dict(v) for k, v in small_inputs.lists.items()}
    eval_nb = small_inputs.lists["simulated"]["eval"][0]
    leaked = eval_nb.reference
    if where == "sentences":
        inputs.sentences = [*small_inputs.sentences, leaked]
    elif where == "nlu":
        inputs.nlu = [*small_inputs.nlu, NLUExample(tuple(words(leaked.lower())), "x_y", None)]
    elif where == "corpus":
        inputs.first_pass_corpus = [*small_inputs.first_pass_corpus, leaked.upper()]
    elif where == "tune_id":  # an evaluation utterance's list among the tuning lists
        inputs.lists["simulated"]["tune"] = [*small_inputs.lists["simulated"]["tune"], eval_nb]
    elif where == "tune_text":  # another id, the evaluation text
        nb = small_inputs.lists["speech"]["tune"][0]
        fake = NBest(nb.key, nb.hypotheses, nb.scores, reference=leaked, speaker=nb.speaker, extra=dict(nb.extra))
        inputs.lists["speech"]["tune"] = [*small_inputs.lists["speech"]["tune"], fake]
    else:  # a tuning sentence in the LM's training text
        inputs.sentences = [*small_inputs.sentences, small_inputs.lists["speech"]["tune"][0].reference]
    with pytest.raises(bm.EvaluationLeak):
        bm.leak_check(SLURP_DIR, inputs)


# ----------------------------------------------------------------------------- the whole study, small

@needs_slurp
@pytest.mark.slow
def test_quick_study_runs_renders_and_checks(tmp_path):
    from analysis.rescoring import benchmark as bm

    out = tmp_path / "rescoring.md"
    assert bm.main(["--quick", "--no-speech", "--sim-eval-recordings", "120", "--sim-tune-recordings", "120",
                    "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    sim = res["sources"]["simulated"]
    assert set(sim["all"]["wer"]) == set(bm.SYSTEMS)
    assert sim["all"]["wer"]["oracle"]["value"] <= sim["all"]["wer"]["first_pass"]["value"]
    assert sim["eval"]["lists"] == 120 and "speech" not in res["sources"]
    text = out.read_text()
    assert "simulation" in text and "## NLU effect" in text and "Leak guard" in text
    assert bm.render(res) == text  # the Markdown is a function of the JSON
    assert bm.main(["--check", "--out", str(out), "--tolerance", "1e-9"]) == 0
