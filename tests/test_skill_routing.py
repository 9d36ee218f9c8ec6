"""Skill routing: production inputs only, recent skills, the pseudo-label rule on hand-built dynamics, the
negative-feedback loss, pseudo-labels on a tiny catalogue built to need them, checkpoints and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.simulate import load_pool, simulate_turns
from analysis.skills import model as sr
from tests.test_label_model import random_embed

SMALL = dict(hidden=32, token_dim=8, epochs=8, lr=3e-3, batch_size=16, top_k=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are tiny: one thread is much faster than two contending on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def logs():
    return list(simulate_turns(load_pool(), n_turns=600, seed=31, id_prefix="s"))


def _rec(dialogue_id, turn_index, ts, user="u1", skill="weather", status="success", barge_in=False, **kw):
    return {"dialogue_id": dialogue_id, "turn_index": turn_index, "timestamp": f"2026-01-01T10:{ts}Z",
            "user_id": user, "asr_text": f"request {dialogue_id} {turn_index}", "device_type": "speaker",
            "nlu_domain": "weather", "nlu_intent": "weather_query", "response_skill": skill,
            "response_status": status, "barge_in": barge_in, **kw}


# ---------------------------------------------------------------- inputs

def test_inputs_never_read_reference_text_or_gold_fields(logs):
    poisoned = [{**r, "reference_text": "LEAK", **{k: ["LEAK"] for k in r if k.startswith("gold_")}} for r in logs]
    stripped = [{k: v for k, v in r.items() if k != "reference_text" and not k.startswith("gold_")} for r in logs]
    examples = sr.build_examples(logs)
    assert sr.build_examples(poisoned) == sr.build_examples(stripped) == examples
    assert len(examples) == sum(1 for r in logs if r["response_skill"])
    assert "LEAK" not in repr(sr.build_examples(poisoned))


def test_examples_fields_failures_and_targets():
    records = [_rec("a", 0, "00:00", nlu_intent=None),
               _rec("a", 1, "00:05", skill="fallback", status="unhandled"),
               _rec("a", 2, "00:09", status="error"),
               _rec("a", 3, "00:14", barge_in=True),
               _rec("a", 4, "00:20", skill=None)]  # nothing routed: no example
    examples = sr.build_examples(records)
    assert [e.key for e in examples] == [("a", 0), ("a", 1), ("a", 2), ("a", 3)]
    first = examples[0]
    assert first.request == "request a 0" and first.context == ("speaker", "weather", "none")
    assert first.timestamp == "2026-01-01T10:00:00Z" and first.user_id == "u1"
    assert [e.failed for e in examples] == [False, True, True, True]
    gt, negative = sr.targets(examples)
    assert gt == ["weather", None, None, None] and negative == [None, "fallback", "weather", "weather"]


def test_recent_skills_are_the_users_earlier_successful_turns():
    records = [  # given out of order; user u1 over three dialogues, u2 interleaved
        _rec("d3", 0, "30:00", skill="music"),
        _rec("d1", 1, "00:10", skill="alarm"),
        _rec("d1", 0, "00:00", skill="weather"),
        _rec("d2", 0, "10:00", skill="jokes", status="unhandled"),  # failed: never a recent skill
        _rec("d2", 1, "10:10", skill="news"),
        _rec("d2", 2, "10:20", skill="lists"),
        _rec("x1", 0, "05:00", user="u2", skill="radio"),  # another user
        _rec("x2", 0, "10:20", user="u1", skill="timer"),  # the same instant as d2/2: neither sees the other
        _rec("n1", 0, "20:00", user=None, skill="clock"),  # no user: no history
    ]
    by_key = {e.key: e.recent_skills for e in sr.build_examples(records)}
    assert by_key[("d1", 0)] == ()
    assert by_key[("d1", 1)] == ("weather",)
    assert by_key[("d2", 0)] == ("weather", "alarm")
    assert by_key[("d2", 1)] == ("weather", "alarm")  # the failed jokes turn is not there
    assert by_key[("d2", 2)] == by_key[("x2", 0)] == ("weather", "alarm", "news")
    assert by_key[("d3", 0)] == ("news", "lists", "timer")  # the last three, oldest first
    assert by_key[("x1", 0)] == () and by_key[("n1", 0)] == ()


# ---------------------------------------------------------------- the pseudo-label rule

def test_rank_scores_orders_by_score_then_skill_index():
    scores = np.array([[0.2, 0.7, 0.7, 0.1], [0.2, 0.7, 0.7, 0.1]], np.float32)
    top, top_scores, gt_score, gt_rank = sr.rank_scores(scores, np.array([2, 1]), 3)
    assert top.tolist() == [[1, 2, 0], [1, 2, 0]] and top_scores[0].tolist() == pytest.approx([0.7, 0.7, 0.2])
    assert gt_score.tolist() == pytest.approx([0.7, 0.7]) and gt_rank.tolist() == [2, 1]


def _dynamics(tables: list[np.ndarray], gt: np.ndarray, depth: int = 4) -> sr.Dynamics:
    """One (examples, skills) score table per epoch, epochs from 1."""
    ex = np.arange(len(gt))
    return sr.Dynamics.concat([sr.Dynamics.record(e, ex, t, gt, depth) for e, t in enumerate(tables, 1)])


HI, LO = 0.9, 0.1


def _table(epoch: int) -> np.ndarray:
    """Six examples over five skills; see the comments for which skill is where at which epoch."""
    t = np.full((6, 5), 0.05, np.float32)
    t[0, 0], t[0, 1] = 0.6, (HI if epoch <= 4 else LO)  # gt 0; skill 1 above it in epochs 1-4 only
    t[1, 0], t[1, 2] = 0.6, (LO if epoch == 4 else HI)  # gt 0; skill 2 above in 1-3 and 5-6 (broken at 4)
    t[2, 0], t[2, 3] = HI, 0.6  # gt 0 first; skill 3 second: in the top p but below the ground truth
    t[3, 1], t[3, 2] = 0.7, 0.7  # gt 2 tied with skill 1: skill 1 ranks above it (lower index)
    t[4, 1], t[4, 3] = 0.7, 0.7  # gt 1 tied with skill 3: the ground truth ranks above
    t[5, 4], t[5, 3], t[5, 2], t[5, 0] = 0.9, 0.8, 0.7, 0.6  # gt 0 fourth: skills 4, 3, 2 above it
    return t


GT = np.array([0, 0, 0, 2, 1, 0])


def test_pseudo_label_rule_on_a_hand_built_table():
    dyn = _dynamics([_table(e) for e in range(1, 7)], GT)
    assert len(dyn) == 36 and dyn.depth == 4
    assert dyn.gt_rank[dyn.example == 2].tolist() == [1] * 6 and dyn.gt_rank[dyn.example == 3].tolist() == [2] * 6
    pls = sr.pseudo_labels(dyn, p=2, r=4)
    assert pls == {0: [(1, 1, pytest.approx(HI))],  # streak of 4 kept (its score at the 4th epoch)
                   3: [(1, 1, pytest.approx(0.7))],  # a tie ranked above the ground truth counts
                   5: [(3, 1, pytest.approx(0.8)), (4, 1, pytest.approx(0.9))]}  # the top p only
    # example 1: three epochs, broken by one, then two: no streak of 4; example 2: never above its ground truth;
    # example 4: a tie the ground truth wins
    assert sr.pseudo_labels(dyn, p=2, r=5) == {3: [(1, 1, pytest.approx(0.7))], 5: pls[5]}
    r3 = sr.pseudo_labels(dyn, p=2, r=3)
    assert r3[1] == [(2, 1, pytest.approx(HI))] and set(r3) == {0, 1, 3, 5}
    assert sr.pseudo_labels(dyn, p=2, r=2)[1] == [(2, 1, pytest.approx(HI))]  # only the first streak counts
    assert [s for s, *_ in sr.pseudo_labels(dyn, p=3, r=4)[5]] == [2, 3, 4]
    assert sr.pseudo_labels(dyn, p=1, r=4) == {0: pls[0], 3: pls[3], 5: [(4, 1, pytest.approx(0.9))]}
    assert sr.pseudo_labels(dyn, p=2, r=7) == {}
    with pytest.raises(ValueError, match="deeper"):
        sr.pseudo_labels(dyn, p=5, r=2)


def test_a_missing_epoch_breaks_the_streak_and_a_late_streak_counts_from_its_start():
    gt = np.array([0, 0])
    tables = []
    for e in range(1, 9):
        t = np.full((2, 3), 0.05, np.float32)
        t[:, 0] = 0.5
        t[0, 1] = HI if e != 3 else LO  # example 0: above in every epoch but 3
        t[1, 2] = HI if e >= 3 else LO  # example 1: above from epoch 3 on
        tables.append(t)
    dyn = _dynamics(tables, gt, depth=3)
    assert sr.pseudo_labels(dyn, 2, 4) == {0: [(1, 4, pytest.approx(HI))], 1: [(2, 3, pytest.approx(HI))]}
    gap = sr.Dynamics(*(getattr(dyn, f)[~((dyn.example == 1) & (dyn.epoch == 5))] for f in (
        "epoch", "example", "top_skills", "top_scores", "gt_skill", "gt_score", "gt_rank")))
    assert sr.pseudo_labels(gap, 2, 4) == {0: [(1, 4, pytest.approx(HI))]}  # 3, 4, (no 5), 6, 7, 8
    assert sr.pseudo_labels(gap, 2, 3)[1] == [(2, 6, pytest.approx(HI))]


def test_dynamics_frame_and_file_round_trip(tmp_path):
    dyn = _dynamics([_table(e) for e in range(1, 4)], GT)
    frame = dyn.to_frame()
    assert list(frame.columns[:5]) == ["epoch", "example", "gt_skill", "gt_score", "gt_rank"]
    assert len(frame) == 18 and {"skill_4", "score_4"} <= set(frame.columns)
    back = sr.Dynamics.from_frame(frame)
    dyn.save(tmp_path / "d.npz")
    for other in (back, sr.Dynamics.load(tmp_path / "d.npz")):
        for f in ("epoch", "example", "top_skills", "top_scores", "gt_skill", "gt_score", "gt_rank"):
            np.testing.assert_array_equal(getattr(other, f), getattr(dyn, f))


# ---------------------------------------------------------------- losses

def test_negative_feedback_loss_value_and_gradient():
    import torch

    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, 0.0, 3.0]], requires_grad=True)
    loss = sr.negative_feedback_loss(logits, torch.tensor([1, -1]))
    s = torch.sigmoid(torch.tensor(2.0))
    assert loss.tolist() == pytest.approx([-torch.log(1 - s).item(), 0.0])  # no failed skill: no term
    loss.sum().backward()
    grad = logits.grad
    assert grad[0, 1].item() == pytest.approx(s.item()) and grad[0, 1] > 0  # a higher logit costs more
    assert grad[0, [0, 2]].abs().sum() == 0 and grad[1].abs().sum() == 0
    low, high = (sr.negative_feedback_loss(torch.tensor([[v]]), torch.tensor([0])).item() for v in (-3.0, 3.0))
    assert high > 3.0 > low > 0  # confident failed predictions are penalised hardest


# ---------------------------------------------------------------- training

KINDS = {"x": ("A", "B"), "w": ("B",), "y": ("C",), "z": ("D",)}
DOMAIN = {"x": "dx", "w": "dx", "y": "dy", "z": "dz"}  # x shares its domain with w, served by B alone


def _tiny(prefix: str, n: int = 40) -> list[dict]:
    """Requests of kind x are logged with A half the time and B the other half (both valid)."""
    return [_rec(f"{prefix}{kind}{i:03d}", 0, f"{i % 60:02d}:00", user=f"u{i % 7}", skill=valid[i % len(valid)],
                 asr_text=f"{kind} request {prefix} {i}", nlu_domain=DOMAIN[kind], nlu_intent=f"i{kind}",
                 gold_skills=list(valid))
            for kind, valid in KINDS.items() for i in range(n)]


def _kind_embed():
    """Requests of one kind are paraphrases: the kind's vector plus a little per-request noise."""
    base = random_embed()
    return lambda texts: base([t.split()[0] for t in texts]) + 0.1 * base(list(texts))


def test_pseudo_labels_recover_the_second_valid_skill():
    train, test = _tiny("t"), _tiny("e")
    examples, held_out, embed = sr.build_examples(train), sr.build_examples(test), _kind_embed()
    gold = {(r["dialogue_id"], 0): r["gold_skills"] for r in train + test}
    runs = {pl: sr.SkillRouter(sr.RoutingConfig(**SMALL, threshold=0.6, pseudo_labels=pl)).fit(examples, embed=embed)
            for pl in (False, True)}
    router = runs[True]
    pls = router.pseudo_labels()
    b = router.skills.index("B")
    a_logged = [i for i, e in enumerate(examples) if e.skill == "A"]
    assert all([s for s, *_ in pls.get(i, [])] == [b] for i in a_logged)  # B proposed for every A-logged x
    assert set(pls) == set(a_logged)  # and nothing else anywhere
    assert sr.pseudo_label_precision(pls, [gold[e.key] for e in examples], router.skills) == 1.0
    assert router.history[-1 - SMALL["epochs"]]["pseudo_labels"] == len(a_logged)

    f1, x_scores = {}, {}
    x_rows = [i for i, e in enumerate(held_out) if e.request.startswith("x")]
    for pl, model in runs.items():
        pred = model.predict(held_out, embed=embed)
        f1[pl] = sr.multilabel_f1(pred.predicted_sets(0.6), [gold[k] for k in pred.keys])
        x_scores[pl] = pred.scores[x_rows, b].mean()
        # the shortlist holds both valid skills; the re-ranker puts one of them first
        assert sr.recall_at_k(pred.topk(), [gold[k] for k in pred.keys]) == 1.0
        assert sr.top1_accuracy(pred.top1(), [gold[k] for k in pred.keys]) == 1.0
    assert x_scores[False] < 0.6 < 0.9 < x_scores[True]  # an even split leaves B at about 0.5 without them
    assert f1[True] > f1[False] + 0.1, f1


def test_all_switches_train_on_simulated_logs_and_checkpoints_round_trip(logs, tmp_path):
    examples = sr.build_examples(logs)
    train, test = examples[:450], examples[450:]
    embed = random_embed()
    seen = []
    cfg = sr.RoutingConfig(**{**SMALL, "epochs": 3, "r": 2}, pseudo_labels=True, negative_feedback=True,
                           self_distill=True)
    router = sr.SkillRouter(cfg).fit(train, embed=embed, progress=lambda *a: seen.append(a))
    assert seen[0][0] == "shortlister" and seen[-1][0] == "re-ranker" and seen[-1][1] == seen[-1][2]
    assert [h["stage"] for h in router.history] == ["shortlister"] * 3 + ["re-ranker"] * 3
    assert "fallback" in router.skills and any(e.failed for e in train)
    n_gt = sum(not e.failed for e in train)
    assert len(router.dynamics) == 3 * n_gt and router.dynamics.depth == 3
    pred = router.predict(test, embed=embed)
    n, k = len(test), router.k
    assert pred.scores.shape == (n, len(router.skills)) and pred.shortlist.shape == pred.reranked.shape == (n, k)
    assert (np.sort(pred.shortlist, 1) == np.sort(pred.reranked, 1)).all()  # the same skills, re-ordered
    np.testing.assert_allclose(pred.rerank_proba.sum(1), 1.0, atol=1e-9)
    assert (np.diff(pred.rerank_proba, axis=1) <= 0).all()

    router.save_pretrained(tmp_path / "ckpt")
    loaded = sr.SkillRouter.from_pretrained(tmp_path / "ckpt")
    again = loaded.predict(test, embed=embed)
    for f in ("scores", "shortlist", "reranked", "rerank_proba"):
        np.testing.assert_array_equal(getattr(again, f), getattr(pred, f))
    assert loaded.config == router.config and loaded.skills == router.skills and loaded.tokens == router.tokens
    assert loaded.fingerprint == router.fingerprint == sr.data_fingerprint(train)
    assert loaded.history == router.history and loaded.pseudo_labels(2, 2) == router.pseudo_labels(2, 2)
    np.testing.assert_array_equal(loaded.dynamics.top_scores, router.dynamics.top_scores)


def test_config_and_inputs_are_checked():
    with pytest.raises(ValueError, match=">= 1"):
        sr.RoutingConfig(r=0)
    with pytest.raises(ValueError, match="threshold"):
        sr.RoutingConfig(threshold=1.0)
    with pytest.raises(ValueError, match="no training examples"):
        sr.SkillRouter().fit([], embed=random_embed())
    failed_only = sr.build_examples([_rec("a", 0, "00:00", status="unhandled")])
    with pytest.raises(ValueError, match="no successful"):
        sr.SkillRouter().fit(failed_only, embed=random_embed())
    with pytest.raises(RuntimeError, match="not trained"):
        sr.SkillRouter().predict(failed_only, embed=random_embed())


# ---------------------------------------------------------------- metrics

def test_metrics_on_hand_computed_examples():
    gold = [{"a", "b"}, {"c"}, None, {"a"}]
    # pairs: predicted {a} {c, d} {e} {} -> tp 2 (a, c), predicted 4, gold 4 -> F1 = 4 / 8
    assert sr.multilabel_f1([{"a"}, {"c", "d"}, {"e"}, set()], gold) == pytest.approx(0.5)
    assert sr.multilabel_f1([{"a", "b"}, {"c"}, set(), {"a"}], gold) == 1.0
    assert np.isnan(sr.multilabel_f1([set()], [set()]))
    # shares 1/2, 1, (skipped), 0 -> 1/2
    assert sr.recall_at_k([["a", "c"], ["x", "c"], ["a"], ["b"]], gold) == pytest.approx(0.5)
    assert sr.top1_accuracy(["b", "a", "z", "a"], gold) == pytest.approx(2 / 3)
    pls = {0: [(1, 2, 0.8)], 1: [(0, 1, 0.7), (3, 4, 0.6)]}  # b for 0 (valid); a, d for 1 (neither)
    assert sr.pseudo_label_precision(pls, gold, ["a", "b", "c", "d"]) == pytest.approx(1 / 3)
    assert sr.pseudo_label_precision({0: [("b", 1, 0.5)]}, {0: ["b"]}) == 1.0
    assert np.isnan(sr.pseudo_label_precision({}, gold))
