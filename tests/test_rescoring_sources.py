"""The n-best sources of the rescoring study (analysis/rescoring/sources.py): confusable words from a pronunciation
dictionary, the simulated n-best builder (reference rate, score order, determinism), and the SLURP subsets."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.rescoring import sources as S
from analysis.rescoring.text import is_tune_utterance, words
from tests.helpers import SLURP_DIR

# A tiny hand-made dictionary: phone sequences chosen so the neighbours are known by hand.
PRONS = {
    "cat": {("K", "AE", "T")},
    "bat": {("B", "AE", "T")},
    "cap": {("K", "AE", "P")},
    "cats": {("K", "AE", "T", "S")},
    "at": {("AE", "T")},
    "dog": {("D", "AO", "G")},
    "dug": {("D", "AH", "G")},
    "to": {("T", "UW")},
    "two": {("T", "UW")},
    "zebra": {("Z", "IY", "B", "R", "AH")},  # nothing within one edit
    "play": {("P", "L", "EY")},
    "pay": {("P", "EY")},
    "plays": {("P", "L", "EY", "Z")},
}
WEIGHTS = {"cat": 1.0, "bat": 2.0, "cap": 1.0, "cats": 1.0, "at": 4.0, "dog": 1.0, "dug": 1.0, "to": 3.0,
           "two": 1.0, "zebra": 1.0, "play": 1.0, "pay": 1.0, "plays": 1.0}


@pytest.fixture
def conf() -> S.Confusions:
    return S.Confusions(PRONS, WEIGHTS)


def test_confusable_words_within_one_phone_edit(conf):
    ws, p = conf.neighbours("cat")
    assert ws == ["at", "bat", "cap", "cats"]  # substitution (bat, cap), insertion (cats), deletion (at)
    assert p == pytest.approx(np.array([4.0, 2.0, 1.0, 1.0]) / 8.0)  # weights normalised
    assert conf.neighbours("to")[0] == ["two"]  # homophones are confusable, the word itself is not
    assert conf.neighbours("dog")[0] == ["dug"]
    assert conf.neighbours("zebra")[0] == []
    assert conf.neighbours("unknownword")[0] == []


def test_dictionary_reader_merges_variants(tmp_path):
    f = tmp_path / "d.dict"
    f.write_text("read R IY D\nread(2) R EH D\nzoo Z UW\n")
    prons = S.read_dictionary(f)
    assert prons == {"read": {("R", "IY", "D"), ("R", "EH", "D")}, "zoo": {("Z", "UW")}}


def test_simulated_list_shape_scores_and_order(conf):
    hyps, scores, inserted = S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key="k1")
    assert hyps[0] == "play cat to dog" and scores[0] == 0.0  # the real 1-best first, the best score
    assert all(s < 0 for s in scores[1:])
    assert scores == sorted(scores, reverse=True)  # sorted by first-pass score
    assert len(hyps) == len(set(hyps)) <= S.SIM_N
    assert ("pay bat two dog" in hyps) == inserted
    # every alternative that is not the reference differs from the 1-best or the reference only by substitutions
    # of confusable words
    for h in hyps[1:]:
        if h == "pay bat two dog":
            continue
        for base in ("play cat to dog", "pay bat two dog"):
            b, w = base.split(), h.split()
            if len(b) == len(w) and all(x == y or y in conf.neighbours(x)[0] for x, y in zip(b, w, strict=True)):
                break
        else:
            raise AssertionError(f"{h!r} is not a confusable substitution")


def test_alternative_scores_fall_with_edits(conf):
    """On average, an alternative further from the 1-best (more word edits) scores lower: SIM_SCORE_PER_EDIT per
    edit plus non-negative noise, so every entry scores at most -SIM_SCORE_PER_EDIT x its edits."""
    from analysis.rescoring.sources import _word_edits

    for i in range(50):
        hyps, scores, _ = S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key=f"k{i}")
        for h, s in zip(hyps[1:], scores[1:], strict=True):
            assert s <= -S.SIM_SCORE_PER_EDIT * _word_edits(h.split(), hyps[0].split()) + 1e-9


def test_reference_inserted_at_the_stated_rate(conf):
    n = 2000
    got = [S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key=f"r{i}")[2] for i in range(n)]
    rate = np.mean(got)
    se = np.sqrt(S.SIM_P_REFERENCE * (1 - S.SIM_P_REFERENCE) / n)
    assert abs(rate - S.SIM_P_REFERENCE) < 4 * se
    # a correct 1-best is the reference already: never inserted twice
    hyps, _, inserted = S.simulate_nbest("play cat", "play cat", confusions=conf, key="same")
    assert not inserted and hyps.count("play cat") == 1


def test_simulation_is_deterministic_per_key_and_seed(conf):
    a = S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key="x")
    b = S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key="x")
    assert a == b
    others = {tuple(S.simulate_nbest("play cat to dog", "pay bat two dog", confusions=conf, key="x", seed=s)[0])
              for s in range(1, 6)}
    assert len(others | {tuple(a[0])}) > 1  # another seed gives other lists


def test_no_confusable_word_gives_a_short_list(conf):
    hyps, scores, _ = S.simulate_nbest("zebra", "zebra", confusions=conf, key="z")
    assert hyps == ["zebra"] and scores == [0.0]


def test_simulated_lists_carry_the_utterance_and_intents(conf):
    recs = [{"file": "a.flac", "slurp_id": 11, "asr_text": "play cat", "reference_text": "pay cat",
             "gold_intent": "play_music", "nlu_intent": "play_radio"}]
    (nb,) = S.simulated_lists(recs, confusions=conf)
    assert nb.key == "a.flac" and nb.speaker is None and nb.logged == 0
    assert nb.extra["slurp_id"] == 11 and nb.extra["gold_intent"] == "play_music"
    assert nb.extra["logged_intent"] == "play_radio"
    assert words(nb.hypotheses[0]) == ["play", "cat"]


def test_lists_from_records_keep_every_utterance():
    recs = [{"dialogue_id": "eval-speech-000005", "turn_index": 0, "asr_text": "play jazz",
             "reference_text": "play jazz", "speaker_id": "sim-1", "slurp_id": 5, "gold_intent": "play_music",
             "asr_nbest": [{"text": "play jazz", "score": -1.0}, {"text": "play chess", "score": -2.0}]},
            {"dialogue_id": "eval-speech-000010", "turn_index": 0, "asr_text": "", "reference_text": "stop",
             "speaker_id": "sim-2", "slurp_id": 10, "gold_intent": "audio_stop", "asr_nbest": None}]
    a, b = S.lists_from_records(recs)
    assert a.hypotheses == ["play jazz", "play chess"] and a.speaker == "sim-1" and a.extra["slurp_id"] == 5
    assert b.hypotheses == [""] and b.extra["no_nbest"] and b.extra["gold_intent"] == "audio_stop"


@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason="SLURP data not available")
def test_slurp_subsets_are_the_stated_ones():
    tune = S.slurp_recordings(SLURP_DIR, "tune")
    assert tune and all(is_tune_utterance(r["slurp_id"]) for r in tune)
    ev = S.slurp_recordings(SLURP_DIR, "eval")
    assert ev and all(r["slurp_id"] % 5 == 0 for r in ev)
    cfg = S.SpeechSourceConfig(tune_utterances=30, eval_utterances=20)
    recs = S.speech_records(SLURP_DIR, "tune", cfg)
    assert len(recs) == 30 and all(is_tune_utterance(r["slurp_id"]) for r in recs)
    assert all(r["speaker_id"].startswith("sim-") for r in recs)
    assert len(S.speech_records(SLURP_DIR, "eval", cfg)) == 20
    with pytest.raises(ValueError):
        S.slurp_recordings(SLURP_DIR, "train")
