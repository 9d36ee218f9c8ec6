"""The rescoring LM and its training text: tokenisation and BIO tags, SLURP training text without the evaluation
split (and without the tuning subset when asked), workbench turns (evaluation turns refused), and a tiny model that
fits, prefers seen sentences, scores through its prefix trie exactly as a plain LSTM pass, saves and loads, and
learns intents in multitask fine-tuning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.rescoring.config import TASKS, RescoringConfig
from analysis.rescoring.model import RescoringModel, split_dev
from analysis.rescoring.rescore import NBest, Rescorer
from analysis.rescoring.text import (
    NLUExample,
    bio_tags,
    examples_from_turns,
    is_tune_utterance,
    slurp_training_text,
    words,
)
from tests.helpers import SLURP_DIR

# ------------------------------------------------------------------------------------------------ text


def test_words_is_wer_tokenisation_lower_cased():
    assert words("  Play THE  Beatles ") == ["play", "the", "beatles"]
    assert words("what's the u. s. d. rate") == ["what's", "the", "u.", "s.", "d.", "rate"]
    assert words(None) == [] and words("") == []


def test_bio_tags_find_each_value_at_its_first_unused_place():
    tokens = tuple(words("wake me up at seven am tomorrow"))
    slots = [{"type": "time", "value": "seven am"}, {"type": "date", "value": "Tomorrow"}]
    assert bio_tags(tokens, slots) == ("O", "O", "O", "O", "B-time", "I-time", "B-date")
    tokens = tuple(words("flights from london to london city"))
    slots = [{"type": "place_name", "value": "london"}, {"type": "place_name", "value": "london city"},
             {"type": "person", "value": "nobody here"}]
    assert bio_tags(tokens, slots) == ("O", "O", "B-place_name", "O", "B-place_name", "I-place_name")
    # the second "london" cannot take words the first took
    assert bio_tags(("london",), [{"type": "a", "value": "london"}, {"type": "b", "value": "london"}]) == ("B-a",)
    assert bio_tags(("x",), []) == ("O",) and bio_tags(("x",), None) == ("O",)


def test_examples_from_turns():
    turns = [{"dialogue_id": "d1", "turn_index": 0, "reference_text": "Set an alarm for Seven",
              "gold_intent": "alarm_set", "gold_slots": [{"type": "time", "value": "seven"}]},
             {"dialogue_id": "d1", "turn_index": 1, "reference_text": "thanks"},  # no intent: LM text only
             {"dialogue_id": "d1", "turn_index": 2, "reference_text": None, "gold_intent": "x"},  # no text: skipped
             {"dialogue_id": "d2", "turn_index": 0, "reference_text": "play jazz", "gold_intent": "play_music",
              "gold_slots": json.dumps([{"type": "music_genre", "value": "jazz"}])},
             {"dialogue_id": "d2", "turn_index": 1, "reference_text": "stop", "gold_intent": "stop",
              "gold_slots": None, "slurp_split": "dev"}]
    sentences, nlu = examples_from_turns(turns)
    assert sentences == ["set an alarm for seven", "thanks", "play jazz", "stop"]
    assert nlu == [NLUExample(("set", "an", "alarm", "for", "seven"), "alarm_set", ("O", "O", "O", "O", "B-time")),
                   NLUExample(("play", "jazz"), "play_music", ("O", "B-music_genre")),
                   NLUExample(("stop",), "stop", None)]


@pytest.mark.parametrize("turn", [{"dialogue_id": "sd-1", "turn_index": 4, "slurp_split": "eval"},
                                  {"dialogue_id": "eval-0007", "turn_index": 4}])
def test_examples_from_turns_refuses_an_evaluation_turn_by_name(turn):
    ok = {"dialogue_id": "d", "turn_index": 0, "reference_text": "hello"}
    with pytest.raises(ValueError, match=rf"{turn['dialogue_id']}.*#4.*evaluation split"):
        examples_from_turns([ok, {**turn, "reference_text": "what time is it", "gold_intent": "datetime_query"}])


def _slurp_or_skip():
    if not SLURP_DIR.exists():
        pytest.skip(f"{SLURP_DIR} is not here")


def _test_sentences(rule) -> set[str]:
    """Normalised sentences of the SLURP test utterances whose slurp_id satisfies rule, read independently."""
    out = set()
    with open(SLURP_DIR / "test.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                u = json.loads(line)
                if rule(int(u["slurp_id"])):
                    out.add(" ".join(u["sentence"].lower().split()))
    return out


def test_slurp_training_text_never_holds_an_evaluation_sentence():
    _slurp_or_skip()
    evaluation = _test_sentences(lambda sid: sid % 5 == 0)
    assert len(evaluation) > 500
    sentences, nlu = slurp_training_text(SLURP_DIR)
    assert len(sentences) == len(nlu) > 4000
    assert not set(sentences) & evaluation
    assert not {" ".join(ex.tokens) for ex in nlu} & evaluation
    assert all(ex.intent and ex.tags is not None and len(ex.tags) == len(ex.tokens) for ex in nlu)
    assert sum(any(t != "O" for t in ex.tags) for ex in nlu) > 2000  # the annotation reached the tags
    # the tuning subset is in by default, out when excluded (by id and by text)
    tuning = _test_sentences(lambda sid: sid % 5 != 0 and is_tune_utterance(sid))
    assert set(sentences) & tuning
    held, held_nlu = slurp_training_text(SLURP_DIR, exclude=is_tune_utterance)
    assert not set(held) & (tuning | evaluation)
    assert not {" ".join(ex.tokens) for ex in held_nlu} & (tuning | evaluation)
    assert 0.7 * len(sentences) < len(held) < len(sentences)


def test_the_tuning_rule_never_takes_an_evaluation_utterance():
    assert not any(is_tune_utterance(sid) for sid in range(0, 10_000, 5))
    assert sum(is_tune_utterance(sid) for sid in range(10_000)) == 2_000


# ------------------------------------------------------------------------------------------------ the model

TINY = dict(embed_dim=16, hidden=32, dropout=0.0, min_count=1, cutoff=20, pretrain_epochs=25, finetune_epochs=15,
            batch_size=16, lr=1e-2, finetune_lr=1e-2, dev_share=0.0, seed=0)

TEMPLATES = [  # (template, intent, slot type): a corpus where one hypothesis is clearly more likely
    ("play some {} music", "play_music", "music_genre", ["jazz", "rock", "classical", "pop"]),
    ("what is the weather in {}", "weather_query", "place_name", ["boston", "paris", "london", "tokyo"]),
    ("set an alarm for {}", "alarm_set", "time", ["seven", "eight", "nine", "noon"]),
    ("turn off the {} lights", "iot_lights_off", "house_place", ["kitchen", "bedroom", "garden", "hall"]),
]


def _corpus() -> tuple[list[str], list[NLUExample]]:
    sentences, nlu = [], []
    for template, intent, kind, values in TEMPLATES:
        for v in values:
            s = template.format(v)
            tokens = tuple(words(s))
            for _ in range(3):
                sentences.append(s)
                nlu.append(NLUExample(tokens, intent, bio_tags(tokens, [{"type": kind, "value": v}])))
    return sentences, nlu


@pytest.fixture(scope="module")
def pretrained() -> RescoringModel:
    sentences, _ = _corpus()
    return RescoringModel(RescoringConfig(**TINY, weighting="rwm")).pretrain(sentences)


@pytest.fixture(scope="module")
def multitask(pretrained) -> RescoringModel:
    _, nlu = _corpus()
    model = pretrained.copy()
    return model.finetune(nlu, dev_nlu=nlu[::5])


def test_the_lm_prefers_a_seen_sentence_over_its_scramble(pretrained):
    lp = pretrained.log_prob(["what is the weather in paris", "paris in weather the is what",
                              "set an alarm for noon", "for noon alarm an set"])
    assert lp[0] > lp[1] + 5 and lp[2] > lp[3] + 5
    assert np.all(lp < 0) and lp.dtype == np.float64


def test_trie_scoring_equals_a_plain_lstm_pass(pretrained):
    sentences = ["play some jazz music", "play some jazz", "play some", "", "play some unheard-of music",
                 "what is the weather in boston", "what is the weather in boston please", "turn off the lights",
                 ["turn", "off"], "play some jazz music"]
    trie = pretrained.log_prob(sentences)
    assert trie == pytest.approx(pretrained.log_prob_reference(sentences), abs=1e-4)
    assert trie[0] == trie[-1]
    # chunks of the trie do not change anything
    assert pretrained.log_prob(sentences, chunk=3) == pytest.approx(trie, abs=1e-5)


def test_trie_scoring_with_two_layers_and_the_adaptive_softmax():
    sentences, _ = _corpus()
    cfg = RescoringConfig(**{**TINY, "layers": 2, "cutoff": 8, "pretrain_epochs": 2})
    model = RescoringModel(cfg).pretrain(sentences)
    assert type(model.net.softmax).__name__ == "AdaptiveLogSoftmaxWithLoss"
    probe = sentences[::4] + ["set an alarm for jazz", "what is"]
    assert model.log_prob(probe) == pytest.approx(model.log_prob_reference(probe), abs=1e-4)


def test_vocabulary_and_word_counts(pretrained):
    assert pretrained.vocab[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert pretrained.count("the") == 2 * 12 and pretrained.count("Jazz") == 3 and pretrained.count("zebra") == 0
    cfg = RescoringConfig(**{**TINY, "min_count": 4, "pretrain_epochs": 1})
    model = RescoringModel(cfg).pretrain(_corpus()[0])
    assert "jazz" not in model.vocab and "play" in model.vocab and model.count("jazz") == 3
    # <unk>'s probability is shared among the 16 training words below min_count (the values, 3 times each)
    assert model.unk_cost == pytest.approx(-np.log(16))
    probe = ["play some jazz music", "play some zebra music", "play some music"]
    with_cost = model.log_prob(probe)
    model.config.unk_penalty = 0.0
    assert with_cost == pytest.approx(model.log_prob(probe) + np.log(16) * np.array([-1, -1, 0]))
    assert with_cost[0] == with_cost[1]  # two unknown words cost the same


def test_save_and_load_give_identical_log_probs(multitask, tmp_path):
    probe = ["play some rock music", "set an alarm for nine", "unseen words entirely", ""]
    multitask.save_pretrained(tmp_path / "m")
    loaded = RescoringModel.from_pretrained(tmp_path / "m")
    assert np.array_equal(loaded.log_prob(probe), multitask.log_prob(probe))
    assert loaded.fingerprint == multitask.fingerprint and loaded.history == multitask.history
    assert loaded.intents == multitask.intents and loaded.count("the") == multitask.count("the")
    assert loaded.predict_intent(probe) == multitask.predict_intent(probe)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["version"] == "rescoring-lm/1" and meta["config"]["weighting"] == "rwm"


def test_rescorer_round_trip_keeps_lam_and_beta(multitask, tmp_path):
    nb = NBest("k", ["play some jazz music", "play sum jazz music"], [-1.0, -0.9])
    rescorer = Rescorer(multitask, lam=0.5, beta=-0.25, info={"tune_wer": 0.1})
    rescorer.save_pretrained(tmp_path / "r")
    loaded = Rescorer.from_pretrained(tmp_path / "r")
    assert (loaded.lam, loaded.beta, loaded.info) == (0.5, -0.25, {"tune_wer": 0.1})
    assert loaded.rescore([nb])[0].totals == rescorer.rescore([nb])[0].totals
    assert loaded.rescore([nb])[0].text == "play some jazz music"


def test_multitask_fine_tuning_learns_intents_and_records_the_weights(pretrained, multitask):
    _, nlu = _corpus()
    assert pretrained.predict_intent([ex.tokens for ex in nlu]) == [None] * len(nlu)
    predicted = multitask.predict_intent([ex.tokens for ex in nlu])
    accuracy = np.mean([p == ex.intent for p, ex in zip(predicted, nlu, strict=True)])
    assert accuracy > 0.75  # chance: 0.25
    tuned = [h for h in multitask.history if h["stage"] == "finetune"]
    assert len(tuned) == TINY["finetune_epochs"] + 1 and tuned[0]["epoch"] == 0
    assert all(set(h["weights"]) == set(TASKS) and sum(h["weights"].values()) == pytest.approx(1.0) for h in tuned)
    assert set(tuned[-1]["dev"]) == set(TASKS) and set(tuned[-1]["train"]) == set(TASKS)
    # RWM: a task's weight falls exactly when it made a mistake
    for before, after in zip(tuned, tuned[1:], strict=False):
        ratio = {t: after["weights"][t] / before["weights"][t] for t in TASKS}
        wrong = [t for t in TASKS if after["mistakes"][t]]
        right = [t for t in TASKS if not after["mistakes"][t]]
        if wrong and right:
            assert max(ratio[t] for t in wrong) < min(ratio[t] for t in right)
    # the pretrained model is untouched by its copy's fine-tuning
    assert [h["stage"] for h in pretrained.history] == ["pretrain"] * TINY["pretrain_epochs"]


def test_lm_only_fine_tuning_has_no_nlu_heads(pretrained):
    _, nlu = _corpus()
    model = pretrained.copy()
    model.config = RescoringConfig(**{**TINY, "finetune_epochs": 2}, weighting="lm_only")
    model.finetune(nlu)
    assert model.intents == [] and model.net.intent is None
    tuned = [h for h in model.history if h["stage"] == "finetune"]
    assert [h["weights"] for h in tuned[1:]] == [{"lm": 1.0, "intent": 0.0, "slots": 0.0}] * 2
    assert model.fingerprint != pretrained.fingerprint


def test_fit_carves_a_dev_set_and_refuses_rwm_without_labels():
    sentences, nlu = _corpus()
    train_s, train_n, dev_s, dev_n = split_dev(sentences, nlu, share=0.25, seed=1)
    assert len({ex.tokens for ex in dev_n}) == 4 and not {ex.tokens for ex in dev_n} & set(train_s)
    assert set(dev_s) == {ex.tokens for ex in dev_n} and len(train_s) + len(dev_s) == len(sentences)
    assert split_dev(sentences, nlu, share=0.25, seed=1) == (train_s, train_n, dev_s, dev_n)
    cfg = RescoringConfig(**{**TINY, "pretrain_epochs": 1, "finetune_epochs": 1, "dev_share": 0.25})
    model = RescoringModel(cfg).fit(sentences, nlu)
    assert model.n_sentences == len(train_s) and model.n_nlu == len(train_n)
    assert model.history[-1]["dev"] and model.history[-1]["stage"] == "finetune"
    with pytest.raises(ValueError, match="NLU examples"):
        RescoringModel(cfg).fit(sentences, [])
    with pytest.raises(ValueError, match="dev set"):
        RescoringModel(RescoringConfig(**{**cfg.to_dict(), "dev_share": 0.0})).fit(sentences, nlu)


def test_progress_reports_both_stages():
    sentences, nlu = _corpus()
    seen = []
    cfg = RescoringConfig(**{**TINY, "pretrain_epochs": 1, "finetune_epochs": 1, "dev_share": 0.25})
    RescoringModel(cfg).fit(sentences, nlu, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert {s for s, _, _ in seen} == {"pretraining", "fine-tuning"}
    assert all(d <= t for _, d, t in seen) and seen[-1][1] == seen[-1][2]
