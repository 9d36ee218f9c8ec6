"""Coordination examples: words as a recogniser writes them, tags that line up with the words, values with "and"
kept as one item, unseen slot types never in training, the recognised-text set, and (with SLURP beside the repo)
the list-able types derived from the data and the evaluation split kept out of training."""

from __future__ import annotations

import pytest

from analysis.coordination import examples as cx
from analysis.coordination.baselines import rule_split
from analysis.coordination.config import LISTABLE_SLURP_TYPES, CoordinationConfig
from analysis.coordination.evaluate import as_list, relative_gain, report, row_stats
from analysis.coordination.model import spans_of
from tests.helpers import SLURP_DIR


def utt(uid: str, text: str, *entities: tuple[str, str], asr: str | None = None) -> cx.Utterance:
    tokens = cx.words(text)
    return cx.Utterance(uid, tokens, tuple(cx._entity_spans(tokens, entities)), cx.words(asr) if asr else None)


FOOD = [utt("u1", "add bananas to my shopping list", ("food_type", "bananas")),
        utt("u2", "order peanut butter please", ("food_type", "peanut butter")),
        utt("u3", "i want mac and cheese for dinner", ("food_type", "mac and cheese")),
        utt("u4", "buy paper towels", ("food_type", "paper towels")),
        utt("u5", "get milk", ("food_type", "milk"))]


def test_words_are_lowercase_without_punctuation_with_offsets():
    assert cx.words("Add bananas, peanut-butter & paper towels!") == ("add", "bananas", "peanut", "butter", "and",
                                                                       "paper", "towels")
    assert cx.words("What's at five o'clock?") == ("what's", "at", "five", "o'clock")
    text = "Call Mum, then Dad"
    assert [text[s:e] for _, s, e in cx.tokenize(text)] == ["Call", "Mum", "then", "Dad"]


def test_generated_tags_line_up_with_the_words_and_the_items():
    pools = cx.value_pools(FOOD, ["food_type"])
    gen = cx.build_examples(FOOD, types=["food_type"], pools=pools, seed=3, ks=(1, 2, 3, 4, 5))
    assert gen.carriers == 5 and len(gen.examples) == 25
    for ex in gen.examples:
        assert len(ex.tags) == len(ex.tokens) and set(ex.tags) <= {"O", "B", "I"}
        assert ex.n_items == (1 if not ex.items else len(ex.items))
        assert tuple(ex.items) == tuple(spans_of(ex.tags))  # the tags say exactly the items
        assert [tuple(ex.tokens[s:e]) for s, e in ex.items] == list(ex.values)
        if ex.n_items == 1:  # the utterance as it is: all O
            assert set(ex.tags) == {"O"} and ex.tokens == next(u.tokens for u in FOOD if u.uid == ex.uid)
        else:
            s, e = ex.extent
            between = [w for w, t in zip(ex.tokens[s:e], ex.tags[s:e], strict=True) if t == "O"]
            assert between and set(between) <= {"and", "or", "as", "well", "also"}
            assert "," not in ex.tokens  # as a recogniser writes it
            assert ex.tokens[:s] == next(u.tokens for u in FOOD if u.uid == ex.uid)[:s]  # context kept
    again = cx.build_examples(FOOD, types=["food_type"], pools=pools, seed=3, ks=(1, 2, 3, 4, 5))
    assert again.examples == gen.examples  # deterministic for the seed


def test_join_styles_as_people_speak():
    vals = [("bananas",), ("peanut", "butter"), ("paper", "towels")]
    assert " ".join(cx.join(vals, "and")[0]) == "bananas peanut butter and paper towels"
    assert " ".join(cx.join(vals, "or")[0]) == "bananas peanut butter or paper towels"
    assert " ".join(cx.join(vals, "and_and")[0]) == "bananas and peanut butter and paper towels"
    assert " ".join(cx.join(vals, "as_well_as")[0]) == "bananas peanut butter as well as paper towels"
    assert " ".join(cx.join(vals[:2], "and_also")[0]) == "bananas and also peanut butter"
    assert cx.join(vals, "and")[1] == [(0, 1), (1, 3), (4, 6)]


def test_a_value_containing_and_stays_one_chunk():
    pools = cx.value_pools(FOOD, ["food_type"])
    assert ("mac", "and", "cheese") in pools["food_type"]
    ex = cx.make_example(FOOD[0], FOOD[0].entities[0], [("milk",), ("mac", "and", "cheese"), ("bananas",)], "and")
    assert ex.item_texts() == ["milk", "mac and cheese", "bananas"]
    s = ex.items[1][0]
    assert ex.tags[s:s + 3] == ("B", "I", "I")  # "and" inside the item is I, not a joiner
    # a value that IS a coordination of two values of its type is not an item: it leaves the pool
    more = FOOD + [utt("u6", "make milk and bananas", ("food_type", "milk and bananas"))]
    assert ("milk", "and", "bananas") not in cx.value_pools(more, ["food_type"])["food_type"]
    # ... and cannot carry a list
    assert cx.carriers(more[-1], {"food_type"}, cx.value_pools(more, ["food_type"])) == []


def test_unseen_types_never_reach_training():
    data = FOOD + [utt("p1", "call mum and then bananas", ("person", "mum"), ("food_type", "bananas")),
                   utt("p2", "text dad", ("person", "dad")), utt("p3", "ring granny", ("person", "granny"))]
    pools = cx.value_pools(data, ["food_type"])
    gen = cx.build_examples(data, types=["food_type", "person"], pools=pools, seed=0, variants=5,
                            exclude_types=["person"])
    assert gen.skipped_excluded == 3
    assert {ex.slot_type for ex in gen.examples} == {"food_type"}
    assert not {ex.uid for ex in gen.examples} & {"p1", "p2", "p3"}  # not even as context or a single value
    assert all("mum" not in ex.tokens and "granny" not in ex.tokens for ex in gen.examples)
    from analysis.coordination.model import CoordinationModel

    held = cx.make_example(data[6], data[6].entities[0], [("dad",), ("granny",)], "and")
    with pytest.raises(ValueError, match="held-out slot types: person"):
        CoordinationModel(CoordinationConfig(slot_types=("food_type", "person"), held_out_types=("person",),
                                             word_vectors="trained")).fit(gen.examples + [held])
    assert cx.unseen_types(LISTABLE_SLURP_TYPES) == cx.unseen_types(tuple(reversed(LISTABLE_SLURP_TYPES)))


def test_recognised_examples_only_where_the_value_survived():
    data = [utt("r1", "add bananas to my list", ("food_type", "bananas"), asr="had bananas to my list"),
            utt("r2", "order milk please", ("food_type", "milk"), asr="older mill please"),
            utt("r3", "buy paper towels", ("food_type", "paper towels"), asr="by paper towels")]
    pools = cx.value_pools(data, ["food_type"])
    gold, rec = cx.evaluation_examples(data, types=["food_type"], pools=pools, seed=0, ks=(1, 2, 3))
    assert {ex.uid for ex in rec} == {"r1", "r3"}  # "milk" did not survive recognition
    by = {(ex.uid, ex.n_items): ex for ex in gold}
    for ex in rec:
        g = by[(ex.uid, ex.n_items)]
        assert ex.values == g.values and ex.style == g.style and ex.text == "recognised"
        assert ex.tokens[0] in ("had", "by")  # the recogniser's words around the list
        assert len(ex.tags) == len(ex.tokens)


def test_rule_splitter_and_metrics():
    toks = cx.words("add bananas peanut butter and paper towels to my list")
    assert rule_split(toks, (1, 7)) == [(1, 4), (5, 7)]  # no commas: "bananas peanut butter" stays together
    assert rule_split(toks, (1, 2)) == []
    ex = cx.make_example(FOOD[0], FOOD[0].entities[0], [("milk",), ("eggs",)], "and")
    single = cx.make_example(FOOD[0], FOOD[0].entities[0], [("bananas",)], "and")
    assert as_list([(1, 2)]) == ()
    stats = row_stats([ex, single], [ex.items, [(1, 2)]])  # one chunk is no list: right for the single value
    assert stats.tolist() == [[1, 2, 0, 0], [1, 0, 0, 0]]
    r = report([ex, single], [[(1, 2), (3, 4)], []], n_boot=50)
    assert r["all"]["exact_match"] == 1.0 and r["items_2"]["f1"] == 1.0 and r["items_1"]["n"] == 1
    g = relative_gain([ex, single], [ex.items, []], [[], []], n_boot=20)
    assert g["model"] == 1.0 and g["base"] == 0.5 and g["relative_gain"] == pytest.approx(1.0)


@pytest.mark.skipif(not (SLURP_DIR / "test.jsonl").exists(), reason="SLURP is not beside the repository")
def test_slurp_listable_types_are_derived_and_the_evaluation_split_stays_out():
    train = cx.slurp_utterances(SLURP_DIR, "train")
    assert cx.listable_types(cx.type_stats(train)) == LISTABLE_SLURP_TYPES
    ids, test_ids = {int(u.uid.split(":")[1]) for u in train}, _test_ids()
    assert ids and not any(i % 5 == 0 for i in ids & test_ids)  # devel ids are free; test ids only off the split
    ev = cx.slurp_utterances(SLURP_DIR, "eval")
    assert ev and all(int(u.uid.split(":")[1]) % 5 == 0 for u in ev)


def _test_ids() -> set[int]:
    import json

    with open(SLURP_DIR / "test.jsonl") as f:
        return {json.loads(line)["slurp_id"] for line in f if line.strip()}
