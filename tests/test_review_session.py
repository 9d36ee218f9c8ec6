"""The review session logic without a browser: claims keep concurrent reviewers within the overlap, the
decided/all queues move on, undo retracts under the name that decided, the URL round trip."""

from __future__ import annotations

import pytest

from app import store
from app.review import session as review_session
from app.review.claims import ClaimRegistry
from tests.helpers import ingest_log, simulated_log


@pytest.fixture
def rdb(db, tmp_path):
    ingest_log(db, simulated_log(tmp_path / "log.jsonl", n_turns=120, seed=5), "t", candidates=True)
    return db


class Sessions:
    """Several browser sessions: review_session.state() answers with the session 'in front'."""

    def __init__(self, monkeypatch):
        self.states: dict[str, review_session.ReviewState] = {}
        self.current = None
        monkeypatch.setattr(review_session, "state", lambda: self.states[self.current])

    def use(self, name: str) -> None:
        self.states.setdefault(name, review_session.ReviewState())
        self.current = name


def test_claims_registry():
    now = [0.0]
    reg = ClaimRegistry(ttl=10, clock=lambda: now[0])
    assert reg.try_claim(1, "ana", slots=1)
    assert not reg.try_claim(1, "bob", slots=1)
    assert reg.try_claim(1, "bob", slots=2)  # overlap 2: room for a second reviewer
    assert reg.try_claim(1, "ana", slots=1)  # renewing one's own claim always works
    reg.release(1, "ana")
    assert reg.holders(1) == ["bob"]
    now[0] = 11.0  # expired: a closed tab does not hold the card forever
    assert reg.try_claim(1, "carl", slots=1) and reg.holders(1) == ["carl"]


@pytest.mark.parametrize("order", ["score_asc", "random"])
def test_two_reviewers_at_once_stay_within_the_overlap(rdb, monkeypatch, order):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    spec = store.QueueSpec(dataset="t", task="intent", order=order, seed=3)
    shown: dict[str, dict] = {}
    for name in ("ana", "bob"):  # both open the Review page: each gets a card
        sessions.use(name)
        shown[name] = review_session.current_card(rdb, name, spec, claims)
    assert shown["ana"]["candidate_id"] != shown["bob"]["candidate_id"]
    for step in range(40):  # they take turns deciding, each on the card they hold
        name = ("ana", "bob")[step % 2]
        sessions.use(name)
        card = shown[name]
        review_session.decide(rdb, name, spec, claims, card["candidate_id"], card["decision_id"], "accept")
        shown[name] = review_session.current_card(rdb, name, spec, claims)
        other = shown[("bob", "ana")[step % 2]]
        assert shown[name]["candidate_id"] != other["candidate_id"]
    per_candidate = rdb.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM decisions GROUP BY candidate_id)")
    assert per_candidate.fetchone()[0] == 1


def test_decided_queue_moves_past_what_was_just_decided(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    first = store.QueueSpec(dataset="t", task="intent")
    for _ in range(25):  # decide some candidates first
        card = review_session.current_card(rdb, "ana", first, claims)
        review_session.decide(rdb, "ana", first, claims, card["candidate_id"], card["decision_id"], "accept")
    again = store.QueueSpec(dataset="t", task="intent", status="decided")
    seen = []
    for _ in range(25):
        card = review_session.current_card(rdb, "ana", again, claims)
        seen.append(card["candidate_id"])
        review_session.decide(rdb, "ana", again, claims, card["candidate_id"], card["decision_id"], "reject")
    assert len(set(seen)) == 25  # never the same card twice
    assert review_session.current_card(rdb, "ana", again, claims) is None


def test_undo_retracts_under_the_name_that_decided(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("tab")
    spec = store.QueueSpec(dataset="t", task="intent")
    card = review_session.current_card(rdb, "ana", spec, claims)
    review_session.decide(rdb, "ana", spec, claims, card["candidate_id"], card["decision_id"], "accept")
    review_session.undo(rdb, spec)  # the sidebar name may have changed since: the retraction is still ana's
    rows = rdb.execute("SELECT reviewer, verdict FROM decisions ORDER BY seq").fetchall()
    assert rows == [("ana", "accept"), ("ana", "retract")]
    assert rdb.execute("SELECT count(*) FROM current_decisions").fetchone()[0] == 0
    assert review_session.current_card(rdb, "ana", spec, claims)["candidate_id"] == card["candidate_id"]


def test_correcting_to_the_proposal_is_an_accept(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    spec = store.QueueSpec(dataset="t", task="intent")
    card = review_session.current_card(rdb, "ana", spec, claims)
    review_session.decide(rdb, "ana", spec, claims, card["candidate_id"], card["decision_id"], "correct",
                          card["value"])
    assert rdb.execute("SELECT verdict, corrected_value FROM decisions").fetchall() == [("accept", None)]


@pytest.mark.parametrize("params", [
    {}, {"task": "intent", "order": "random", "seed": "9"}, {"smin": "0.2", "smax": "0.8", "overlap": "3"},
    {"status": "decided", "domain": "music", "value": '"play_music"'}, {"audit": "4"}, {"run": "2"},
])
def test_queue_url_round_trip(params):
    spec, warnings = review_session.spec_from_params(params, "t")
    assert warnings == []
    assert review_session.spec_to_params(spec) == params


def test_a_bare_value_in_a_link_means_that_string():
    spec, _ = review_session.spec_from_params({"value": "weather_query"}, "t")
    assert spec.value == '"weather_query"'
    spec, _ = review_session.spec_from_params({"value": "[1, 2]"}, "t")
    assert spec.value == "[1,2]"


@pytest.mark.parametrize("raw", ['"\\ud800"', '["a", "\\udfff"]', '{"k\\ud83d": 1}', "x\ud800"])
def test_a_value_that_is_not_valid_unicode_is_ignored_with_a_warning(raw):
    spec, warnings = review_session.spec_from_params({"task": "intent", "value": raw}, "t")
    assert spec.value is None and spec.task == "intent"
    assert warnings == [f"ignored value={raw!r}: not valid Unicode"]
    "".join(warnings).encode("utf-8")  # the warning itself is valid text (this raises otherwise)
    with pytest.raises(ValueError, match="not valid Unicode"):
        review_session.value_json(raw)


def test_any_parameter_with_a_lone_surrogate_is_ignored():
    spec, warnings = review_session.spec_from_params({"task": "in\ud800tent", "domain": "music"}, "t")
    assert spec.task is None and spec.domain == "music"
    assert warnings == ["ignored task='in\\ud800tent': not valid Unicode"]


def test_a_surrogate_pair_escape_is_valid_unicode():
    spec, warnings = review_session.spec_from_params({"value": '"\\ud83d\\ude00"'}, "t")
    assert warnings == [] and spec.value == '"\U0001f600"'


def test_decide_in_an_undecided_queue_asks_the_store_to_check_the_slots(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    seen = []
    real = store.insert_decision
    monkeypatch.setattr(store, "insert_decision", lambda conn, **kw: seen.append(kw["overlap"]) or real(conn, **kw))
    for spec in (store.QueueSpec(dataset="t", task="intent", overlap=2),
                 store.QueueSpec(dataset="t", task="intent", status="all", overlap=2)):
        card = review_session.current_card(rdb, "ana", spec, claims)
        review_session.decide(rdb, "ana", spec, claims, card["candidate_id"], card["decision_id"], "accept")
    assert seen == [2, None]  # the queue's overlap; decided/all queues revisit candidates on purpose
    assert claims.holders(card["candidate_id"]) == []  # the claim is released with the decision


# ------------------------------------------------------------------------ prefetched cards and key events


def key(seq: int, verdict: str, card: dict | None = None, **extra) -> dict:
    """A key event as the browser's card sends it (app/static/review_keys.js)."""
    return {"seq": seq, "verdict": verdict, "card": card and card["candidate_id"],
            "token": card and card["decision_id"], **extra}


def decided(db) -> list[tuple[int, str]]:
    return db.execute("SELECT candidate_id, verdict FROM decisions ORDER BY seq").fetchall()


def test_prefetched_cards_are_claimed_and_released_when_no_longer_offered(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    spec = store.QueueSpec(dataset="t", task="intent")
    sessions.use("ana")
    ahead = review_session.cards(rdb, "ana", spec, claims)
    assert len(ahead) == 1 + review_session.PREFETCH
    sessions.use("bob")  # the same queue, overlap 1: bob is handed none of ana's cards
    theirs = review_session.cards(rdb, "bob", spec, claims)
    assert not {c["candidate_id"] for c in theirs} & {c["candidate_id"] for c in ahead}
    sessions.use("ana")
    review_session.cards(rdb, "ana", store.QueueSpec(dataset="t", task="slots"), claims)  # another queue
    assert all(claims.holders(c["candidate_id"]) == [] for c in ahead)


def test_key_events_land_on_the_card_they_name_each_once(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    spec = store.QueueSpec(dataset="t", task="intent")
    first, second, third = review_session.cards(rdb, "ana", spec, claims)
    # two keys before the page ran again: the card on screen and the prefetched one after it
    events = [key(1, "accept", first), key(2, "reject", second)]
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": events})
    # the next event comes with the two again (not acknowledged yet when it was sent): each is handled once
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": [*events, key(3, "skip", third)]})
    assert decided(rdb) == [(first["candidate_id"], "accept"), (second["candidate_id"], "reject"),
                            (third["candidate_id"], "skip")]
    s = review_session.state()
    assert (s.key_client, s.key_seq) == ("p1", 3)
    assert review_session.cards(rdb, "ana", spec, claims)[0]["candidate_id"] not in {
        first["candidate_id"], second["candidate_id"]}


def test_a_key_for_a_card_no_longer_shown_is_ignored(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    spec = store.QueueSpec(dataset="t", task="intent")
    card = review_session.cards(rdb, "ana", spec, claims)[0]
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": [key(1, "accept", card)]})
    # the same card again, under a new number (a second page, a forged event): its decision id is spent
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p2", "events": [key(1, "reject", card)]})
    assert decided(rdb) == [(card["candidate_id"], "accept")]
    assert review_session.state().ignored == f"Ignored a reject on #{card['candidate_id']}: that card is no " \
                                             "longer on screen."
    # a card of a queue the page has left since
    old = review_session.cards(rdb, "ana", spec, claims)[0]
    slots = store.QueueSpec(dataset="t", task="slots")
    review_session.cards(rdb, "ana", slots, claims)
    review_session.keys_pressed(rdb, "ana", slots, claims, {"client": "p2", "events": [key(2, "accept", old)]})
    assert decided(rdb) == [(card["candidate_id"], "accept")]
    # a forged card id or token decides nothing either
    review_session.keys_pressed(rdb, "ana", slots, claims, {"client": "p2", "events": [
        {"seq": 3, "verdict": "accept", "card": 1, "token": "not-a-token"}, {"seq": 4, "verdict": "accept"}]})
    assert decided(rdb) == [(card["candidate_id"], "accept")]


def test_undo_and_correct_by_key(rdb, monkeypatch):
    sessions, claims = Sessions(monkeypatch), ClaimRegistry()
    sessions.use("ana")
    spec = store.QueueSpec(dataset="t", task="intent")
    first, second, _ = review_session.cards(rdb, "ana", spec, claims)
    events = [key(1, "accept", first), key(2, "undo", second, undo_of=first["decision_id"])]
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": events})
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": events})  # resent: once
    assert decided(rdb) == [(first["candidate_id"], "accept"), (first["candidate_id"], "retract")]
    again = review_session.cards(rdb, "ana", spec, claims)[0]
    assert again["candidate_id"] == first["candidate_id"]  # the card taken back is on screen again
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": [key(3, "correct", second)]})
    assert not review_session.state().correcting  # not the card on screen: ignored
    review_session.keys_pressed(rdb, "ana", spec, claims, {"client": "p1", "events": [key(4, "correct", again)]})
    assert review_session.state().correcting
