"""The coordination chunker's network: the CRF (exact likelihood and chunk probabilities against brute force,
decoding that never puts I after O), the gradient reversal's sign, and a small train / save / load / predict."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from analysis.coordination import examples as cx
from analysis.coordination.config import CoordinationConfig
from analysis.coordination.crf import CRF, B, I, O
from analysis.coordination.model import CoordinationModel, grad_reverse, spans_of


def _valid(path) -> bool:
    return path[0] != I and all(not (a == O and b == I) for a, b in itertools.pairwise(path))


def _brute(crf: CRF, em: torch.Tensor) -> dict[tuple, float]:
    """Every valid tag path of one row and its probability, by enumeration."""
    trans, start, end = (x.detach().double() for x in crf.scores())
    scores = {}
    for path in itertools.product(range(3), repeat=em.shape[0]):
        if not _valid(path):
            continue
        s = start[path[0]] + end[path[-1]] + sum(em[t, p] for t, p in enumerate(path))
        s = s + sum(trans[a, b] for a, b in itertools.pairwise(path))
        scores[path] = float(s)
    z = np.logaddexp.reduce(list(scores.values()))
    return {p: math.exp(s - z) for p, s in scores.items()}


@pytest.fixture
def crf():
    torch.manual_seed(0)
    c = CRF()
    with torch.no_grad():
        c.transitions.normal_()
        c.start.normal_()
        c.end.normal_()
    return c


def test_crf_likelihood_and_chunk_probabilities_match_enumeration(crf):
    em = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    tags = torch.tensor([[B, I, O, B, I], [O, B, B, I, O]])
    nll = crf.double().nll(em, tags, mask) * 2  # the mean over two rows
    probs0, probs1 = _brute(crf, em[0]), _brute(crf, em[1, :4])
    expected = -math.log(probs0[tuple(tags[0].tolist())]) - math.log(probs1[tuple(tags[1, :4].tolist())])
    assert float(nll.detach()) == pytest.approx(expected, rel=1e-9)
    best = crf.decode(em, mask)
    assert best[0] == list(max(probs0, key=probs0.get)) and best[1] == list(max(probs1, key=probs1.get))
    spans = [[(0, 2), (3, 5)], [(1, 2), (2, 4)]]
    got = crf.chunk_probabilities(em, mask, spans)
    for row, probs, n in ((0, probs0, 5), (1, probs1, 4)):
        for (s, e), p in zip(spans[row], got[row], strict=True):
            want = sum(q for path, q in probs.items() if path[s] == B and all(path[t] == I for t in range(s + 1, e))
                       and (e >= n or path[e] != I))
            assert p == pytest.approx(want, rel=1e-9)


def test_crf_decoding_never_puts_i_after_o(crf):
    torch.manual_seed(1)
    for _ in range(20):
        em = torch.randn(16, 12, 3) * 5
        em[:, :, I] += 10  # scores that beg for I everywhere, including after O and first
        em[:, ::3, O] += 30
        lengths = torch.randint(1, 13, (16,))
        mask = torch.arange(12)[None] < lengths[:, None]
        for path in crf.decode(em, mask):
            assert _valid(path), path
    # with the transitions at their most tempting too
    with torch.no_grad():
        crf.transitions.fill_(0)
        crf.transitions[O, I] = 1e6
    em = torch.zeros(1, 4, 3)
    em[0, :, I] = 50
    em[0, 0, O] = 100
    assert _valid(crf.decode(em, torch.ones(1, 4, dtype=torch.bool))[0])


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    (grad_reverse(x, 0.5) * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)
    y = torch.randn(4, 3, requires_grad=True)
    out = grad_reverse(y, 2.0)
    assert torch.equal(out, y)  # identity forward


def test_the_adversary_learns_while_the_encoder_is_pushed_the_other_way():
    """One step's gradients: the adversary's own weights get the ordinary gradient of its loss (they learn to
    tell the types apart); the encoder gets that gradient reversed (it learns to hide them)."""
    model, data = _trained(epochs=1)
    net = model.net
    from analysis.coordination.model import _Batch

    def grads(lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        net.zero_grad()
        batch = _Batch(torch, [ex.tokens for ex in data[:16]], model, examples=data[:16])
        net.eval()  # no dropout: the two passes see the same network
        _, (_, adv) = net(batch, lam)
        adv.backward()
        return net.lstm.weight_ih_l0.grad.clone(), net.adversary[0].weight.grad.clone()

    enc_pos, adv_pos = grads(1.0)
    enc_neg, adv_neg = grads(-1.0)  # lam = -1: no reversal
    assert torch.allclose(adv_pos, adv_neg)  # the adversary itself: same gradient either way
    assert torch.allclose(enc_pos, -enc_neg, atol=1e-7) and enc_pos.abs().sum() > 0  # the encoder: reversed


def _data(n: int = 60):
    foods = [("bananas",), ("peanut", "butter"), ("paper", "towels"), ("milk",), ("mac", "and", "cheese"),
             ("eggs",), ("green", "tea"), ("rice",)]
    places = [("kitchen",), ("living", "room"), ("garden",), ("bed", "room"), ("hall",)]
    utts = []
    for i in range(n):
        food, place = foods[i % len(foods)], places[i % len(places)]
        utts.append(cx.Utterance(f"f{i}", ("add", *food, "to", "my", "list"),
                                 (cx.Entity("food_type", 1, 1 + len(food)),)))
        utts.append(cx.Utterance(f"p{i}", ("lights", "on", "in", "the", *place),
                                 (cx.Entity("house_place", 4, 4 + len(place)),)))
    types = ["food_type", "house_place"]
    return cx.build_examples(utts, types=types, pools=cx.value_pools(utts, types), seed=0, variants=4).examples


def _trained(epochs: int = 4, **kw) -> tuple[CoordinationModel, list]:
    data = _data()
    cfg = CoordinationConfig(**{"word_vectors": "trained", "epochs": epochs, "hidden": 24, "word_dim": 16,
                                "char_filters": 16, "slot_types": ("food_type", "house_place"), **kw})
    return CoordinationModel(cfg).fit(data), data


def test_small_train_save_load_and_predict(tmp_path):
    model, data = _trained(epochs=6)
    assert len(model.history) == 6 and model.history[-1]["loss"] < model.history[0]["loss"]
    out = model.predict([ex.tokens for ex in data] + [()])
    assert out[-1].spans == () and out[-1].tags == ()
    right = np.mean([set(c.spans) == set(ex.items) for c, ex in zip(out, data, strict=False)])
    assert right > 0.6, right  # learned something on its own training data
    for c in out:
        assert tuple(spans_of(c.tags)) == c.spans and len(c.scores) == len(c.spans)
        assert all(0.0 <= p <= 1.0 for p in c.scores)
    model.save_pretrained(tmp_path / "m")
    back = CoordinationModel.from_pretrained(tmp_path / "m")
    assert back.fingerprint == model.fingerprint and back.config == model.config
    again = back.predict([ex.tokens for ex in data])
    assert [c.spans for c in again] == [c.spans for c in out[:-1]]
    assert np.allclose([p for c in again for p in c.scores], [p for c in out[:-1] for p in c.scores])


def test_ablations_build_and_predict():
    for kw in ({"use_crf": False}, {"use_chars": False}, {"adversary_weight": 0.0}):
        model, data = _trained(epochs=1, **kw)
        out = model.predict([ex.tokens for ex in data[:10]])
        assert len(out) == 10 and all(len(c.tags) == len(ex.tokens) for c, ex in zip(out, data, strict=False))


def test_minilm_word_vectors_give_every_word_a_vector(tmp_path):
    from analysis.coordination.model import WordVectors

    vectors = WordVectors.fit(8)
    v = vectors(["garfunkel", "bananas", "garfunkel"])
    assert v.shape == (3, 8) and np.allclose(v[0], v[2]) and not np.allclose(v[0], v[1])
    model, data = _trained(epochs=1, word_vectors="minilm", word_dim=8)
    model.save_pretrained(tmp_path / "m")
    back = CoordinationModel.from_pretrained(tmp_path / "m")
    assert np.allclose(back.vectors(["zyzzyva"]), model.vectors(["zyzzyva"]))  # an unknown word, same vector
