"""Word error counts equal jiwer's (the oracle) on hand-picked, random and real sample pairs."""

from __future__ import annotations

import random

import jiwer
import numpy as np
import pytest

from analysis.wer import align, error_counts, pooled_wer, words
from analysis.wer_normalise import ENGLISH_V1, normalise
from app import store
from app.ingest import ingest_files


def jiwer_counts(ref: str, hyp: str) -> tuple[int, int, int, int]:
    out = jiwer.process_words(ref, hyp)
    return out.substitutions, out.deletions, out.insertions, out.hits + out.substitutions + out.deletions


HAND = [
    ("turn on the lights", "turn on the lights"),
    ("turn on the lights", "turn the light on please"),
    ("what's the weather", "what is the weather"),
    ("a b c d", ""),
    ("set an alarm  for   seven", "set alarm for seven am"),
    ("  leading and trailing  ", "leading trailing"),
    ("repeat repeat repeat", "repeat"),
]


@pytest.mark.parametrize("ref,hyp", HAND)
def test_hand_pairs_match_jiwer(ref, hyp):
    s, d, i, n = error_counts([ref], [hyp])
    assert (s[0], d[0], i[0], n[0]) == jiwer_counts(ref, hyp)


def test_random_pairs_match_jiwer():
    rng = random.Random(7)
    vocab = ["play", "the", "music", "set", "alarm", "a", "for", "seven", "stop", "lights", "on", "off"]
    refs, hyps = [], []
    for _ in range(2000):
        ref = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12)))
        hyp_words = ref.split()
        for _ in range(rng.randint(0, 4)):
            op = rng.choice("sdi")
            pos = rng.randint(0, max(len(hyp_words) - 1, 0))
            if op == "s" and hyp_words:
                hyp_words[pos] = rng.choice(vocab)
            elif op == "d" and hyp_words:
                del hyp_words[pos]
            else:
                hyp_words.insert(pos, rng.choice(vocab))
        refs.append(ref)
        hyps.append(" ".join(hyp_words))
    s, d, i, n = error_counts(refs, hyps)
    for k, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        assert (s[k], d[k], i[k], n[k]) == jiwer_counts(ref, hyp), (ref, hyp)


def test_missing_reference_is_minus_one_and_ignored_by_pooling():
    s, d, i, n = error_counts([None, "a b"], ["x", "a c"])
    assert list(n) == [-1, 2]
    assert pooled_wer(s, d, i, n) == 0.5


def test_pooled_wer_is_not_the_mean_of_rates():
    # One long clean utterance, one short bad one: pooled 1/11, mean of rates (0 + 1)/2.
    s, d, i, n = error_counts(["a b c d e f g h i j", "x"], ["a b c d e f g h i j", "y"])
    assert pooled_wer(s, d, i, n) == pytest.approx(1 / 11)


def test_pooled_wer_without_reference_words_is_nan():
    assert np.isnan(pooled_wer([], [], [], []))


def test_alignment_columns_add_up_to_the_counts():
    ref, hyp = "set an alarm for seven", "set alarm for seven thirty"
    cols = align(ref, hyp)
    ops = [c.op for c in cols]
    s, d, i, _ = jiwer_counts(ref, hyp)
    assert (ops.count("sub"), ops.count("del"), ops.count("ins")) == (s, d, i)
    assert [c.ref for c in cols if c.ref] == words(ref)
    assert [c.hyp for c in cols if c.hyp] == words(hyp)


def test_stored_counts_equal_jiwer_on_the_sample_data(db, sample_log):
    ingest_files(db, [sample_log], dataset="sample")
    pairs = store.list_wer_pairs(db, "sample").to_pylist()
    assert len(pairs) > 1000
    for p in pairs:
        expected = jiwer_counts(p["reference_text"], p["asr_text"])
        assert (p["wer_sub"], p["wer_del"], p["wer_ins"], p["wer_ref_words"]) == expected, p
    # and the pooled figure over the whole set equals jiwer's corpus-level WER
    total = store.get_overview_counts(db, "sample", "raw")
    corpus = jiwer.wer([p["reference_text"] for p in pairs], [p["asr_text"] for p in pairs])
    assert total.pooled_wer == pytest.approx(corpus)
    # the dataset's default, english-v1, equals jiwer's on the normalised texts (empty references left out)
    english = store.list_wer_pairs(db, "sample", "english-v1").to_pylist()
    refs = [normalise(p["reference_text"], ENGLISH_V1) for p in english]
    hyps = [normalise(p["asr_text"], ENGLISH_V1) for p in english]
    keep = [k for k, r in enumerate(refs) if r.strip()]
    assert len(keep) == len(refs) > 1000
    assert store.get_overview_counts(db, "sample").pooled_wer == pytest.approx(
        jiwer.wer([refs[k] for k in keep], [hyps[k] for k in keep]))
