"""The label-generation model: production inputs only, the swapped-response pretraining data, the context
switch, learning on a tiny dataset, and checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis.labels import model as lm
from analysis.simulate import load_pool, simulate_turns

SMALL = dict(hidden=32, heads=2, layers=1, word_dim=16, epochs=3, pretrain_epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def logs():
    pool = load_pool()
    return (list(simulate_turns(pool, n_turns=900, seed=21, id_prefix="a")),
            list(simulate_turns(pool, n_turns=300, seed=22, id_prefix="b")))


def random_embed(dim: int = 24):
    """A fixed random vector per text: fast, deterministic, and as distinct as real sentence vectors."""
    table: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)

    def embed(texts: list[str]) -> np.ndarray:
        for t in texts:
            if t not in table:
                v = rng.normal(size=dim).astype(np.float32)
                table[t] = v / np.linalg.norm(v)
        return np.stack([table[t] for t in texts]) if texts else np.zeros((0, dim), np.float32)

    return embed


def test_inputs_never_read_reference_text_or_gold_fields(logs):
    train, _ = logs
    poisoned = [{**r, "reference_text": "LEAK", **{k: "LEAK" for k in r if k.startswith("gold_")}} for r in train]
    stripped = [{k: v for k, v in r.items() if k != "reference_text" and not k.startswith("gold_")} for r in train]
    assert lm.build_dialogues(poisoned) == lm.build_dialogues(stripped) == lm.build_dialogues(train)


def test_build_dialogues_groups_orders_and_derives_features():
    base = {"asr_text": "play Jazz music", "response_text": "ok", "nlu_slots": [{"type": "genre", "value": "jazz"}],
            "nlu_intent": "music_play", "asr_confidence": 0.9, "nlu_confidence": 0.8}
    records = [{**base, "dialogue_id": "z", "turn_index": 1, "timestamp": "2026-01-01T10:00:07Z"},
               {**base, "dialogue_id": "z", "turn_index": 0, "timestamp": "2026-01-01T10:00:00Z"},
               {**base, "dialogue_id": "a", "turn_index": 0, "timestamp": "2026-01-01T09:00:00Z",
                "asr_confidence": None}]
    dialogues = lm.build_dialogues(records)
    assert [d.dialogue_id for d in dialogues] == ["a", "z"] and [t.turn_index for t in dialogues[1].turns] == [0, 1]
    first, second = dialogues[1].turns
    assert first.words == ("play", "jazz", "music") and first.nlu_tags == ("O", "B-genre", "O")
    assert first.nums[3:] == (0.0, 0.0) and second.nums[3] == pytest.approx(np.log1p(7)) and second.nums[4] == 1.0
    assert dialogues[0].turns[0].nums[1] == -1.0  # a confidence not logged
    assert dict(zip(lm.CAT_FIELDS, first.cats, strict=True))["nlu_intent"] == "music_play"


def test_swapped_response_pretraining_data(logs):
    dialogues = lm.build_dialogues(logs[0])
    flat = [t for d in dialogues for t in d.turns]
    source, swapped = lm.swap_plan(dialogues, rate=0.3, rng=np.random.default_rng(1))
    assert source.shape == swapped.shape == (len(flat),)
    kept = swapped == 0
    assert (source[kept] == np.flatnonzero(kept)).all()  # an original keeps its own response
    for i in np.flatnonzero(swapped):
        j = source[i]
        assert flat[j].dialogue_id != flat[i].dialogue_id  # from another dialogue
        assert flat[j].response != flat[i].response  # and visibly different
    assert 0.2 < swapped.mean() < 0.35  # about the rate (a few tries fail where every response is alike)
    again = lm.swap_plan(dialogues, rate=0.3, rng=np.random.default_rng(1))
    assert (again[0] == source).all() and (again[1] == swapped).all()  # deterministic for a seed
    one = lm.swap_plan(dialogues[:1], rate=0.9, rng=np.random.default_rng(1))
    assert not one[1].any()  # a single dialogue has nothing to swap with


def test_context_switch_isolates_turns(logs):
    train, _ = logs
    dialogues = lm.build_dialogues(train)
    targets = lm.gold_targets(train)
    multi = next(d for d in dialogues if len(d.turns) >= 2)
    changed = dataclasses.replace(multi, turns=(multi.turns[0], dataclasses.replace(
        multi.turns[1], cats=tuple("none" for _ in lm.CAT_FIELDS), response="something else entirely")))
    embed = random_embed()
    for use_context in (True, False):
        model = lm.LabelModel(lm.LabelConfig(**{**SMALL, "epochs": 1, "pretrain_epochs": 0},
                                             use_context=use_context)).fit(dialogues[:60], targets, embed=embed)
        a = model.predict([multi], embed=embed).intent_proba[0]
        b = model.predict([changed], embed=embed).intent_proba[0]
        # turn 0 sees turn 1 only with the context on
        assert (not np.allclose(a, b)) is use_context


@pytest.mark.slow
def test_model_learns_beats_majority_and_round_trips(logs, tmp_path):
    train, test = logs
    embed = random_embed()
    dialogues, targets = lm.build_dialogues(train), lm.gold_targets(train)
    seen = []
    model = lm.LabelModel(lm.LabelConfig(**{**SMALL, "epochs": 12})).fit(
        dialogues, targets, embed=embed, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert seen[0][0] == "pretraining" and seen[-1][0] == "training" and seen[-1][1] == seen[-1][2]
    assert [h["stage"] for h in model.history] == ["pretraining"] + ["training"] * 12
    test_dialogues, gold = lm.build_dialogues(test), lm.gold_targets(test)
    pred = model.predict(test_dialogues, embed=embed)
    assert pred.keys == [t.key for d in test_dialogues for t in d.turns]
    np.testing.assert_allclose(pred.intent_proba.sum(axis=1), 1.0, atol=1e-9)

    truth = [gold.intent[k] for k in pred.keys]
    rows = [i for i, v in enumerate(truth) if v is not None]
    accuracy = np.mean([pred.intent()[i] == truth[i] for i in rows])
    train_intents = [v for v in targets.intent.values() if v]
    majority = max(set(train_intents), key=train_intents.count)
    assert accuracy > np.mean([truth[i] == majority for i in rows]) + 0.3, accuracy
    defect = np.array([gold.defect[k] for k in pred.keys])
    defect_acc = np.mean((pred.binary["defect"] > 0.5) == defect)
    assert defect_acc > max(defect.mean(), 1 - defect.mean()) + 0.03, defect_acc
    # slots: the tagger at least reproduces the logged NLU's spans on most turns that have them
    nlu_turns = [i for i, d in enumerate(t for dd in test_dialogues for t in dd.turns) if any(
        g != "O" for g in d.nlu_tags)]
    assert np.mean([bool(pred.slots[i]) for i in nlu_turns]) > 0.5

    model.save_pretrained(tmp_path / "ckpt")
    loaded = lm.LabelModel.from_pretrained(tmp_path / "ckpt")
    again = loaded.predict(test_dialogues, embed=embed)
    np.testing.assert_array_equal(again.intent_proba, pred.intent_proba)
    assert again.slots == pred.slots and loaded.fingerprint == model.fingerprint
    assert loaded.config == model.config and loaded.history == model.history


def test_config_and_inputs_are_checked(logs):
    with pytest.raises(ValueError, match="multiple of heads"):
        lm.LabelConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="swap_rate"):
        lm.LabelConfig(swap_rate=1.0)
    with pytest.raises(ValueError, match="no training dialogues"):
        lm.LabelModel().fit([], lm.gold_targets([]), embed=random_embed())
    with pytest.raises(RuntimeError, match="not trained"):
        lm.LabelModel().predict(lm.build_dialogues(logs[1][:5]), embed=random_embed())


def test_fine_tuning_the_sentence_encoder(logs, tmp_path):
    import torch

    from analysis.text_encoder import TextEncoder

    train, test = logs
    dialogues = lm.build_dialogues(train)[:30]

    def no_embed(texts):
        raise AssertionError("a fine-tuned encoder must not read frozen vectors")

    cfg = lm.LabelConfig(**{**SMALL, "epochs": 1, "pretrain_epochs": 1, "batch_size": 16}, finetune_encoder=True,
                         encoder_lr=1e-3)
    model = lm.LabelModel(cfg).fit(dialogues, lm.gold_targets(train), embed=no_embed)
    fresh = TextEncoder.load().model.state_dict()
    tuned = {k.removeprefix("encoder."): v for k, v in model.net.state_dict().items() if k.startswith("encoder.")}
    assert tuned.keys() == fresh.keys()
    assert any(not torch.equal(tuned[k], fresh[k]) for k in fresh)  # the encoder itself was trained
    pred = model.predict(lm.build_dialogues(test)[:10], embed=no_embed)
    model.save_pretrained(tmp_path / "ft")
    again = lm.LabelModel.from_pretrained(tmp_path / "ft").predict(lm.build_dialogues(test)[:10], embed=no_embed)
    np.testing.assert_array_equal(again.intent_proba, pred.intent_proba)


def test_located_slot_targets_skip_turns_whose_gold_values_asr_lost():
    import torch

    base = {"response_text": "ok", "nlu_slots": [], "nlu_intent": "alarm_set", "dialogue_id": "d",
            "timestamp": "2026-01-01T10:00:00Z"}
    records = [{**base, "turn_index": 0, "asr_text": "wake me at seven",
                "gold_slots": [{"type": "time", "value": "seven"}], "gold_intent": "alarm_set"},
               {**base, "turn_index": 1, "asr_text": "wake me at heaven", "timestamp": "2026-01-01T10:00:05Z",
                "gold_slots": [{"type": "time", "value": "seven"}], "gold_intent": "alarm_set"}]
    dialogues, targets = lm.build_dialogues(records), lm.gold_targets(records)
    vocab = lm._build_vocab(dialogues, targets, 1)
    vectors = {t: np.zeros(4, np.float32) for t in ("wake me at seven", "wake me at heaven", "ok")}
    for mode, second_row_trained in (("all", True), ("located", False)):
        batch = lm._Batch(torch, dialogues, vocab, vectors, 4, targets=targets, slot_targets=mode)
        first, second = batch.y_tags[0, 0, :4].tolist(), batch.y_tags[0, 1, :4].tolist()
        assert first[3] == vocab.tags.index("B-time") and first[:3] == [0, 0, 0]  # located: trained either way
        assert (second == [0, 0, 0, 0]) is second_row_trained  # 'O' everywhere: "seven" was lost by ASR
        assert (second == [lm.IGNORE] * 4) is (not second_row_trained)
