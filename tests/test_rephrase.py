"""Sessions and rephrase detection: normalisation, sessions on hand-built users, every feature of a hand-built
session worked out in the comments, gold labels from the goal structure, the two detectors (fit, storage,
thresholds), chains, and the contextual detector beating the text-similarity baseline on a held-out log; and
what counts as the same request (analysis/rewrites/meaning.py): content words, the rephrase rule and the
catch-all intents worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analysis.rewrites import meaning
from analysis.rewrites import rephrase as rp
from analysis.simulate import load_pool, records_to_table, simulate_turns
from tests.helpers import make_turn

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)


def _ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _turns(records: list[dict]) -> tuple:
    table = records_to_table(records)
    return table, rp.Turns.from_table(table)


def _keys(turns: rp.Turns) -> list[tuple[str, int]]:
    return list(zip(turns.dialogue_id.tolist(), turns.turn_index.tolist(), strict=True))


def _f(name: str) -> int:
    return rp.FEATURES.index(name)


# ---------------------------------------------------------------- normalisation


def test_normalise_case_punctuation_apostrophes_spaces():
    assert rp.normalise("Play Maj-and  Dragons!") == "play maj and dragons"
    assert rp.normalise("What's the weather?") == "whats the weather"
    assert rp.normalise("rock 'n' roll, please.") == "rock n roll please"
    assert rp.normalise("  Wake me\tup at 7:30 ") == "wake me up at 7 30"
    assert rp.normalise("Café au lait") == "café au lait"  # letters beyond ASCII are words
    assert rp.normalise("?!") == rp.normalise("") == rp.normalise(None) == ""


def test_interpretation_key_sorts_slots_and_normalises_values():
    slots = [{"type": "artist_name", "value": "Imagine Dragons!"}, {"type": "album", "value": "Evolve"}]
    key = "play_music|album=evolve|artist_name=imagine dragons"
    assert rp.interpretation_key("play_music", slots) == key
    assert rp.interpretation_key("play_music", slots[::-1]) == key  # slot order does not matter
    assert rp.interpretation_key("play_music", []) == rp.interpretation_key("play_music", None) == "play_music"
    assert rp.interpretation_key(None, slots) == rp.interpretation_key("", slots) == ""


# ---------------------------------------------------------------- sessions


def _session_records() -> list[dict]:
    return [
        # u1: a0 -179 s- a1 -180 s- b0 (exactly the gap: same session) -181 s- b1 (just above: new session)
        make_turn("a", 0, timestamp=_ts(0), user_id="u1"),
        make_turn("a", 1, timestamp=_ts(179), user_id="u1"),
        make_turn("b", 0, timestamp=_ts(359), user_id="u1"),
        make_turn("b", 1, timestamp=_ts(540), user_id="u1"),
        # u2 interleaved with u1 in time: gaps 10, 80, 100 -> one session over two dialogues
        make_turn("c", 0, timestamp=_ts(10), user_id="u2"),
        make_turn("c", 1, timestamp=_ts(20), user_id="u2"),
        make_turn("c", 2, timestamp=_ts(100), user_id="u2"),
        make_turn("e", 0, timestamp=_ts(200), user_id="u2"),
        # no user id: each dialogue is its own user, although they interleave in time
        make_turn("n1", 0, timestamp=_ts(5), user_id=None),
        make_turn("n1", 1, timestamp=_ts(15), user_id=None),
        make_turn("n2", 0, timestamp=_ts(8), user_id=None),
    ]


def _groups(turns: rp.Turns, sessions: np.ndarray) -> set[frozenset]:
    out: dict[int, set] = {}
    for key, s in zip(_keys(turns), sessions.tolist(), strict=True):
        out.setdefault(s, set()).add(key)
    return {frozenset(v) for v in out.values()}


def test_session_ids_split_users_and_gaps():
    _, turns = _turns(_session_records()[::-1])  # given backwards: Turns sorts them
    sessions = rp.session_ids(turns)
    assert sessions[0] == 0 and set(np.diff(sessions).tolist()) <= {0, 1}  # consecutive in sorted order
    assert _groups(turns, sessions) == {
        frozenset({("a", 0), ("a", 1), ("b", 0)}), frozenset({("b", 1)}),
        frozenset({("c", 0), ("c", 1), ("c", 2), ("e", 0)}),
        frozenset({("n1", 0), ("n1", 1)}), frozenset({("n2", 0)})}
    # a shorter gap: 179 and 180 now split u1; u2's gap of exactly 100 does not split
    assert _groups(turns, rp.session_ids(turns, gap=100)) == {
        frozenset({("a", 0)}), frozenset({("a", 1)}), frozenset({("b", 0)}), frozenset({("b", 1)}),
        frozenset({("c", 0), ("c", 1), ("c", 2), ("e", 0)}),
        frozenset({("n1", 0), ("n1", 1)}), frozenset({("n2", 0)})}
    assert rp.has_predecessor(sessions).sum() == len(turns) - 5


def test_turns_sorted_by_user_then_time_and_order_maps_back():
    table, turns = _turns(_session_records()[::-1])
    assert len(turns) == table.num_rows
    ids = table.column("dialogue_id").to_pylist()
    assert [ids[i] for i in turns.order.tolist()] == turns.dialogue_id.tolist()
    for u in np.unique(turns.user):
        assert np.all(np.diff(turns.seconds[turns.user == u]) >= 0)
    users = {k: u for k, u in zip(_keys(turns), turns.user.tolist(), strict=True)}
    assert users[("a", 0)] == users[("b", 1)] != users[("c", 0)]
    assert users[("n1", 0)] == users[("n1", 1)] != users[("n2", 0)]


@pytest.mark.parametrize("gap", [0, -1.0, math.inf, math.nan])
def test_session_ids_reject_bad_gaps(gap):
    _, turns = _turns(_session_records())
    with pytest.raises(ValueError, match="session gap"):
        rp.session_ids(turns, gap=gap)


def test_turns_need_the_input_columns():
    table, _ = _turns(_session_records())
    with pytest.raises(ValueError, match="barge_in"):
        rp.Turns.from_table(table.drop_columns(["barge_in"]))


# ---------------------------------------------------------------- features

MAJ = [{"type": "artist_name", "value": "maj and dragons"}]
IMAGINE = [{"type": "artist_name", "value": "Imagine Dragons"}]


def _feature_records() -> list[dict]:
    music = dict(nlu_domain="music", nlu_intent="play_music")
    return [
        # u1, one session m0 m1 m2, then m3 a new session (988 s later)
        make_turn("m", 0, timestamp=_ts(0), user_id="u1", asr_text="play maj and dragons", nlu_slots=MAJ,
                  response_status="error", er_status="unresolved", barge_in=True, user_feedback="negative",
                  asr_confidence=0.4, nlu_confidence=0.3, **music),
        make_turn("m", 1, timestamp=_ts(9), user_id="u1", asr_text="Play Imagine Dragons!", nlu_slots=IMAGINE,
                  asr_confidence=None, nlu_confidence=0.9, **music),
        make_turn("m", 2, timestamp=_ts(12), user_id="u1", asr_text="play imagine dragons", nlu_domain="radio",
                  nlu_intent="play_radio", nlu_alt_intent="play_music", response_status="unhandled",
                  tts_status="failed"),
        make_turn("m", 3, timestamp=_ts(1000), user_id="u1"),
        # u2: a cut-off request with no intent whose alternative reading is the next turn's intent
        make_turn("p", 0, timestamp=_ts(30), user_id="u2", asr_text="play", nlu_domain=None, nlu_intent=None,
                  nlu_slots=None, nlu_alt_intent="play_music", response_status="unhandled"),
        make_turn("p", 1, timestamp=_ts(35), user_id="u2", asr_text="play imagine dragons", nlu_slots=IMAGINE,
                  **music),
        make_turn("q", 0, timestamp=_ts(50), user_id="u3"),  # alone
    ]


def _indel_similarity(a: str, b: str) -> float:
    """2 * LCS / (len a + len b): the normalised indel similarity (what rapidfuzz's ratio computes)."""
    lcs = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, ca in enumerate(a):
        for j, cb in enumerate(b):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if ca == cb else max(lcs[i][j + 1], lcs[i + 1][j])
    return 2 * lcs[-1][-1] / (len(a) + len(b))


def test_features_by_name_on_a_hand_built_session():
    _, turns = _turns(_feature_records())
    sessions = rp.session_ids(turns)
    x, pred = rp.features(turns, sessions)
    assert x.shape == (7, len(rp.FEATURES))
    rows = {k: x[i] for i, k in enumerate(_keys(turns))}
    has_pred = dict(zip(_keys(turns), pred.tolist(), strict=True))
    assert [k for k, v in has_pred.items() if v] == [("m", 1), ("m", 2), ("p", 1)]
    for k in [("m", 0), ("m", 3), ("p", 0), ("q", 0)]:  # no predecessor: all zeros
        assert not rows[k].any(), k

    # m1 after m0: 9 s; words {play, dragons} of {play, maj, and, dragons, imagine}; m0 failed in many ways
    m1 = rows[("m", 1)]
    assert m1[_f("log_gap")] == pytest.approx(math.log(10))
    assert m1[_f("word_jaccard")] == pytest.approx(2 / 5)
    assert m1[_f("char_similarity")] == pytest.approx(_indel_similarity("play maj and dragons",
                                                                        "play imagine dragons"))
    assert 0 < m1[_f("char_similarity")] < 1
    expected = dict(same_text=0, prev_error=1, prev_unhandled=0, prev_unresolved=1, prev_tts_failed=0,
                    prev_barge_in=1, prev_negative=1, prev_no_intent=0, prev_asr_confidence=0.4,
                    prev_nlu_confidence=0.3, same_intent=1, alt_agrees=0, same_domain=1,
                    log_position=math.log(2))
    assert {k: m1[_f(k)] for k in expected} == pytest.approx(expected)

    # m2 after m1: 3 s, the same normalised words; m1 was fine but its ASR confidence is missing (-> 0.5);
    # another intent, but m2's alternative reading is m1's intent
    m2 = rows[("m", 2)]
    expected = dict(log_gap=math.log(4), word_jaccard=1, char_similarity=1, same_text=1, prev_error=0,
                    prev_unhandled=0, prev_unresolved=0, prev_tts_failed=0, prev_barge_in=0, prev_negative=0,
                    prev_no_intent=0, prev_asr_confidence=0.5, prev_nlu_confidence=0.9, same_intent=0,
                    alt_agrees=1, same_domain=0, log_position=math.log(3))
    assert {k: m2[_f(k)] for k in expected} == pytest.approx(expected)

    # p1 after p0: 5 s; p0 had no intent (and no domain) but its alternative reading is p1's intent
    p1 = rows[("p", 1)]
    expected = dict(log_gap=math.log(6), word_jaccard=1 / 3, same_text=0, prev_error=0, prev_unhandled=1,
                    prev_no_intent=1, same_intent=0, alt_agrees=1, same_domain=0, log_position=math.log(2))
    assert {k: p1[_f(k)] for k in expected} == pytest.approx(expected)


def test_features_of_one_turn_and_of_no_turns():
    _, turns = _turns(_feature_records()[-1:])
    x, pred = rp.features(turns, rp.session_ids(turns))
    assert x.shape == (1, len(rp.FEATURES)) and not x.any() and not pred.any()


# ---------------------------------------------------------------- gold labels


def test_gold_rephrase_from_goal_structure():
    records = [
        make_turn("g", 0, timestamp=_ts(0), gold_goal_start=True),
        make_turn("g", 1, timestamp=_ts(5), gold_goal_start=False),  # continues the goal: a rephrase
        make_turn("g", 2, timestamp=_ts(10), gold_goal_start=True),  # a new goal
        # a new dialogue of the same user, 10 s later: not a rephrase whatever its goal flag says
        make_turn("h", 0, timestamp=_ts(20), gold_goal_start=False),
        make_turn("h", 1, timestamp=_ts(25), gold_goal_start=False),
        make_turn("k", 0, timestamp=_ts(1000), gold_goal_start=True),
        make_turn("k", 1, timestamp=_ts(1500), gold_goal_start=False),  # after a session gap: no predecessor
        make_turn("z", 0, timestamp=_ts(6), user_id="u2", gold_goal_start=False),  # another user
    ]
    table, turns = _turns(records[::-1])
    sessions = rp.session_ids(turns)
    goal_start = table.column("gold_goal_start").to_numpy(zero_copy_only=False)[turns.order]
    gold = dict(zip(_keys(turns), rp.gold_rephrase(turns, sessions, goal_start).tolist(), strict=True))
    assert [k for k, v in gold.items() if v] == [("g", 1), ("h", 1)]


# ---------------------------------------------------------------- detectors


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random features; a rephrase iff the predecessor failed and the two requests are similar."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(rp.FEATURES)))
    x[:, _f("prev_error")] = rng.random(n) < 0.5
    y = (x[:, _f("prev_error")] == 1) & (x[:, _f("char_similarity")] > 0.5)
    return x, y


def test_detector_separates_and_round_trips():
    x, y = _synthetic(600, 0)
    det = rp.RephraseDetector.fit(x, y)
    weights = np.abs(det.coef)
    top = set(np.argsort(weights)[-2:].tolist())
    assert top == {_f("prev_error"), _f("char_similarity")}
    assert det.coef[_f("prev_error")] > 0 and det.coef[_f("char_similarity")] > 0

    xt, yt = _synthetic(400, 1)
    pred = np.ones(len(yt), dtype=bool)
    assert np.mean(det.detect(xt, pred) == yt) > 0.95
    assert not det.detect(xt, np.zeros(len(yt), dtype=bool)).any()  # no predecessor: never a rephrase
    proba = det.predict_proba(xt)
    assert proba[yt].mean() > 0.8 and proba[~yt].mean() < 0.2

    stored = json.loads(json.dumps(det.to_dict()))
    assert stored["features"] == list(rp.FEATURES)
    again = rp.RephraseDetector.from_dict(stored)
    assert np.array_equal(again.predict_proba(xt), proba) and again.threshold == det.threshold

    with pytest.raises(ValueError, match="other features"):
        rp.RephraseDetector.from_dict({**stored, "features": list(rp.FEATURES)[::-1]})
    with pytest.raises(ValueError, match="other features"):
        rp.RephraseDetector.from_dict({k: v for k, v in stored.items() if k != "features"})


def test_detector_needs_both_classes():
    x, _ = _synthetic(10, 2)
    with pytest.raises(ValueError, match="both rephrases and other turns"):
        rp.RephraseDetector.fit(x, np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match="both rephrases and other turns"):
        rp.RephraseDetector.fit(x, np.ones(10, dtype=bool))
    with pytest.raises(ValueError, match="both rephrases"):
        rp.RephraseDetector.fit(x[:1], np.array([True]))


def _with_similarity(sims: list[float]) -> np.ndarray:
    x = np.zeros((len(sims), len(rp.FEATURES)))
    x[:, _f("char_similarity")] = sims
    return x


def test_similarity_baseline_threshold_maximises_f1():
    # similarities 0.95 T, 0.9 T, 0.72 T, 0.68 F, 0.4 F, 0.3 T
    #   threshold 0.75: 2 flagged, 2 right -> F1 = 4 / (2 + 4) = 0.667
    #   threshold 0.70: 3 flagged, 3 right -> F1 = 6 / (3 + 4) = 0.857  (the best, the only grid point in
    #                                                                      (0.68, 0.72])
    #   threshold 0.65: 4 flagged, 3 right -> F1 = 6 / (4 + 4) = 0.75
    #   threshold 0.30: 6 flagged, 4 right -> F1 = 8 / (6 + 4) = 0.8
    x = _with_similarity([0.95, 0.9, 0.72, 0.68, 0.4, 0.3])
    y = np.array([True, True, True, False, False, True])
    base = rp.SimilarityBaseline.fit(x, y)
    assert base.threshold == pytest.approx(0.7)
    pred = np.array([True, True, True, True, True, False])
    assert base.detect(x, pred).tolist() == [True, True, True, False, False, False]
    # ties: every threshold in 0.55 ... 0.9 separates perfectly; the lowest is kept
    assert rp.SimilarityBaseline.fit(_with_similarity([0.9, 0.5]), np.array([True, False])).threshold == (
        pytest.approx(0.55))


def test_chain_ids():
    f, t = False, True
    assert rp.chain_ids(np.array([f, t, t, f, t, f])).tolist() == [0, 0, 0, 1, 1, 2]
    assert rp.chain_ids(np.array([t, t, f])).tolist() == [0, 0, 1]  # the first turn always starts a chain
    assert rp.chain_ids(np.array([f, f])).tolist() == [0, 1]
    assert rp.chain_ids(np.zeros(0, dtype=bool)).tolist() == []


# ---------------------------------------------------------------- end to end


def _f1(detected: np.ndarray, gold: np.ndarray) -> float:
    tp = np.sum(detected & gold)
    return 2 * tp / (detected.sum() + gold.sum())


@pytest.fixture(scope="module")
def pool():
    return load_pool()


def _simulated(pool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = records_to_table(simulate_turns(pool, n_turns=3000, seed=seed))
    turns = rp.Turns.from_table(table)
    sessions = rp.session_ids(turns)
    x, pred = rp.features(turns, sessions)
    goal_start = table.column("gold_goal_start").to_numpy(zero_copy_only=False)[turns.order]
    return x, pred, rp.gold_rephrase(turns, sessions, goal_start)


def test_contextual_detector_beats_the_similarity_baseline_on_a_held_out_log(pool):
    x, pred, gold = _simulated(pool, 5)
    assert 0.2 < gold[pred].mean() < 0.8  # both classes are well represented among turns with a predecessor
    assert not (gold & ~pred).any()
    det = rp.RephraseDetector.fit(x[pred], gold[pred])
    base = rp.SimilarityBaseline.fit(x[pred], gold[pred])

    x2, pred2, gold2 = _simulated(pool, 6)
    det_f1, base_f1 = _f1(det.detect(x2, pred2), gold2), _f1(base.detect(x2, pred2), gold2)
    assert det_f1 > 0.8
    assert det_f1 > base_f1 + 0.05


def test_fitted_detector_on_hand_built_sessions(pool):
    """A detector fitted on a simulated log, applied to three hand-built users: a failed request re-asked
    5 s later is a rephrase; the same request 5 s after a successful, unrelated one is not; after a gap
    longer than the session gap there is no predecessor, so it is not either."""
    x, pred, gold = _simulated(pool, 5)
    det = rp.RephraseDetector.fit(x[pred], gold[pred])
    music = dict(nlu_domain="music", nlu_intent="play_music", nlu_slots=[{"type": "artist_name",
                                                                        "value": "the beatles"}])
    failed = dict(response_status="error", barge_in=True, asr_confidence=0.5, nlu_confidence=0.4, **music)
    alarm = dict(nlu_domain="alarm", nlu_intent="alarm_set", nlu_slots=[{"type": "time", "value": "seven"}])
    late = rp.DEFAULT_SESSION_GAP + 60
    records = [
        make_turn("r", 0, timestamp=_ts(0), user_id="u1", asr_text="play the beatles", **failed),
        make_turn("r", 1, timestamp=_ts(5), user_id="u1", asr_text="play the beatles please", **music),
        make_turn("s", 0, timestamp=_ts(0), user_id="u2", asr_text="set an alarm for seven", **alarm),
        make_turn("s", 1, timestamp=_ts(5), user_id="u2", asr_text="play the beatles please", **music),
        make_turn("t", 0, timestamp=_ts(0), user_id="u3", asr_text="play the beatles", **failed),
        make_turn("t", 1, timestamp=_ts(late), user_id="u3", asr_text="play the beatles please", **music),
    ]
    _, turns = _turns(records)
    x_hand, pred_hand = rp.features(turns, rp.session_ids(turns))
    detected = dict(zip(_keys(turns), det.detect(x_hand, pred_hand).tolist(), strict=True))
    proba = dict(zip(_keys(turns), det.predict_proba(x_hand).tolist(), strict=True))
    assert dict(zip(_keys(turns), pred_hand.tolist(), strict=True)) == {
        ("r", 0): False, ("r", 1): True, ("s", 0): False, ("s", 1): True, ("t", 0): False, ("t", 1): False}
    assert detected == {("r", 0): False, ("r", 1): True, ("s", 0): False, ("s", 1): False, ("t", 0): False,
                        ("t", 1): False}
    assert proba[("r", 1)] > 0.8 and proba[("s", 1)] < 0.2


# ---------------------------------------------------------------- the same request (meaning.py)


def test_content_words():
    assert meaning.content_words("Olly, please tell me the NEWS about trains!") == {"tell", "news", "train"}
    # plurals lose their "s" from four letters on; "news", "bus", "class", "this" keep theirs (or are dropped)
    assert meaning.content_words("alarms news bus class this lights") == {"alarm", "news", "bus", "class", "light"}
    assert meaning.content_words("what is it") == frozenset() and meaning.content_words(None) == frozenset()


def test_is_rephrase():
    volume = "audio_volume_up"
    assert meaning.is_rephrase("turn the volume up", "raise volume", volume, volume)  # "volume"
    assert not meaning.is_rephrase("where is the car", "raise volume", volume, volume)  # a stranger, same label
    assert not meaning.is_rephrase("turn the volume up", "raise volume", volume, "audio_volume_down")
    assert not meaning.is_rephrase("set an alarm for seven", "set an alarm for six", "alarm_set|time=seven",
                                   "alarm_set|time=six")  # other slot values
    quirky = "general_quirky"
    assert meaning.is_rephrase("hello how is your day", "how is your day going", quirky, quirky)
    assert not meaning.is_rephrase("hello how is your day", "how is your day going", quirky, quirky, [quirky])
    # the same sentence is always itself, catch-all or not
    assert meaning.is_rephrase("Hello, how is your day?", "hello how is your day", quirky, quirky, {quirky})
    assert not meaning.is_rephrase("", "", quirky, quirky)


# Three intents of three sentences each, and two sentences that share an intent but not slot values:
#   coffee: {make, coffee} {coffee, now} {want, coffee}        3 pairs, all share "coffee"      -> 3/3
#   chat:   {sing, song} {love} {tell, story}                  3 pairs, none shares a word      -> 0/3
#   lights: {turn, light} {light} {make, light, brighter}      3 pairs, all share "light"       -> 3/3
#   play_music|genre=jazz, play_music|genre=rock: one each, so no pair: play_music is not judged
# Pairs of different intents: 11 sentences, 55 pairs, 9 within coffee/chat/lights and 1 within play_music
# (its two sentences differ in slots but share the intent), so 45; those sharing a word: "make" (coffee 1 -
# lights 3) and "play" (the two play_music sentences share an intent: not counted), so 1/45.
SENTENCES = [("make me a coffee", "coffee"), ("coffee please now", "coffee"), ("i want coffee", "coffee"),
             ("sing a song", "chat"), ("what is love", "chat"), ("tell a story", "chat"),
             ("turn on the light", "lights"), ("lights on please", "lights"), ("make the lights brighter", "lights"),
             ("play jazz", "play_music|genre=jazz"), ("play rock", "play_music|genre=rock")]


def test_catch_all_intents_by_hand():
    texts, interps = zip(*SENTENCES, strict=True)
    c = meaning.catch_all_intents(list(texts) * 2, list(interps) * 2, min_pairs=1)  # repeats count once
    assert c.pairs == {"coffee": 3, "chat": 3, "lights": 3}
    assert c.share == {"coffee": 1.0, "chat": 0.0, "lights": 1.0}
    assert c.base_pairs == 45 and c.base_share == pytest.approx(1 / 45)
    assert c.intents == ("chat",)
    # a ratio that puts the line above 1 makes every judged intent catch-all; too few pairs judge none
    assert meaning.catch_all_intents(texts, interps, min_pairs=1, ratio=50).intents == ("chat", "coffee", "lights")
    assert meaning.catch_all_intents(texts, interps, min_pairs=4).intents == ()
    assert json.loads(json.dumps(c.to_dict()))["intents"] == ["chat"]


def test_catch_all_intents_samples_deterministically_beyond_max_pairs():
    texts, interps = zip(*SENTENCES, strict=True)
    a = meaning.catch_all_intents(texts, interps, min_pairs=1, max_pairs=2, seed=3)
    assert a == meaning.catch_all_intents(texts, interps, min_pairs=1, max_pairs=2, seed=3)
    assert a.base_pairs == 2 and set(a.pairs.values()) == {2}
    with pytest.raises(ValueError):
        meaning.catch_all_intents(texts, interps, ratio=0)
    with pytest.raises(ValueError, match="one entry per sentence"):
        meaning.catch_all_intents(texts, interps[:-1])
