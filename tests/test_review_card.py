"""The review card's HTML (components/review_card.py): escaping, slot spans, and what each kind of target shows."""

from __future__ import annotations

import html
import json
import string
from datetime import datetime

from components.review_card import card_html, escape_html, slot_spans, utterance_html


def test_escape_html_leaves_no_markup_and_keeps_the_text():
    text = "<script>alert('x')</script> **b** [l](http://e) &amp; é 東京 42"
    escaped = escape_html(text)
    assert not set(escaped) & (set(string.punctuation) - {"&", "#", ";"})
    assert html.unescape(escaped) == text
    assert escape_html("a\nb\r\tc") == "a b  c"  # line breaks as spaces
    assert escape_html(None) == "None"


def test_slot_spans_prefer_whole_words_and_do_not_overlap():
    text = "Play the party mix at the party in Hartford"
    spans, missing = slot_spans(text, [{"type": "playlist", "value": "party mix"}, {"type": "event", "value": "party"},
                                       {"type": "genre", "value": "art"}, {"type": "date", "value": "today"},
                                       {"type": "empty", "value": ""}])
    # "party" is taken inside "party mix", so the event is the second one; "art" is in no word of its own, so it
    # is marked inside the first word holding it that no other span took
    assert [(s, text[s:e], t) for s, e, t in spans] == [(9, "party mix", "playlist"), (26, "party", "event"),
                                                         (36, "art", "genre")]
    assert [m["type"] for m in missing] == ["date", "empty"]


def test_slot_spans_ignore_case_and_keep_offsets_when_lowercasing_would_move_them():
    assert slot_spans("Wake me in BOSTON", [{"type": "city", "value": "boston"}])[0] == [(11, 17, "city")]
    text = "İstanbul weather"  # "İ".lower() is two characters: matched as written instead
    assert slot_spans(text, [{"type": "city", "value": "İstanbul"}])[0] == [(0, 8, "city")]


def test_utterance_html_marks_spans_with_their_type():
    shown = utterance_html("set a <i>timer</i>", [{"type": "x<y", "value": "<i>timer</i>"}])
    assert shown == ('<div class="tl-utt">set a <mark class="tl-span tl-c' + shown.split("tl-c")[1][0] + '">'
                     "&#60;i&#62;timer&#60;&#47;i&#62;<span class=\"tl-span-label\">x&#60;y</span></mark></div>")


def turn(dialogue: str, index: int, text: str, **fields) -> dict:
    return {"dialogue_id": dialogue, "turn_index": index, "timestamp": datetime(2026, 1, 1), "asr_text": text,
            "nlu_slots": None, **fields}


def card(task: str, value, *, turn_index: int | None = 0, other: tuple[str, int] | None = None) -> dict:
    return {"candidate_id": 7, "task": task, "value": json.dumps(value), "score": 0.5, "model_name": "m",
            "model_version": "1", "dialogue_id": "d", "turn_index": turn_index,
            "other_dialogue_id": other and other[0], "other_turn_index": other and other[1]}


def test_a_dialogue_target_shows_every_request_and_a_pair_its_second_utterance():
    turns = [turn("d", 0, "first request"), turn("d", 1, "second request")]
    shown = html.unescape(card_html(card("goal_success", True, turn_index=None), turns))
    assert "first request" in shown and "second request" in shown and "(whole dialogue)" in shown
    pair = card_html(card("rewrite", {"source": "a", "rewrite": "b"}, other=("e", 2)), turns,
                     [turn("e", 2, "the rephrase")])
    assert "the rephrase" in pair and "then" in pair
    assert 'data-card-id="7"' in pair


def test_ground_truth_only_in_the_evaluation_view():
    turns = [turn("d", 0, "hello", gold_intent="greet", gold_slots=[{"type": "a", "value": "b"}])]
    assert "greet" not in card_html(card("intent", "hi"), turns)
    assert "gold&#95;intent = greet" in card_html(card("intent", "hi"), turns, ground_truth=True)


def test_an_items_card_highlights_each_proposed_item_in_the_utterance():
    value = {"items": ["bananas", "<b>peanut</b> butter"], "spans": [[4, 11], [12, 32]], "chunk_scores": [0.9, 0.8],
             "slot_type": "food", "logged": []}
    shown = card_html(card("items", value), [turn("d", 0, "add bananas <b>peanut</b> butter to my list")])
    assert shown.count('class="tl-span ') == 2
    assert 'bananas<span class="tl-span-label">item 1</span>' in shown
    assert "&#60;b&#62;peanut&#60;&#47;b&#62; butter<span class=\"tl-span-label\">item 2</span>" in shown
    assert "<b>" not in shown  # log text stays text
    assert "bananas | <b>peanut</b> butter (food)" in html.unescape(shown.split('class="tl-value">')[1])


def test_a_transcript_card_shows_the_rescored_nbest_with_the_differences_marked():
    from analysis.rescoring.transcripts import candidate_value
    from components.review_card import show_value

    hyps = ["play jaz by miles davis", "play jazz by miles davis", "<b>play</b> jazz miles davis"]
    value = candidate_value("play jaz by miles davis", hyps, [-1.0, -1.2, -1.5], [-30.0, -20.0, -25.0],
                            [-4.0, -3.2, -4.0], 1, lam=0.1, beta=0.0)
    shown = card_html(card("transcript", value), [turn("d", 0, "play jaz by miles davis")])
    assert show_value(json.dumps(value)) == "play jazz by miles davis"
    assert shown.count('class="tl-hyp') == 3 and shown.count("tl-chosen") == 1
    # the proposal's changed word is marked; the third hypothesis lacks "by" (struck through) and keeps its markup as
    # text
    assert '<mark class="tl-diff tl-changed"' in shown and "tl-missing" in shown
    assert "<b>" not in shown and "&#60;b&#62;play" in shown
    text = html.unescape(shown)
    assert "-3.20" in text and "-20.00" in text and "proposed" in text and "logged" in text
    assert value["margin"] == 0.8


# ----------------------------------------------------------------------- audio and low-confidence words (#17)


def test_low_confidence_words_are_marked_inside_and_outside_slot_spans():
    from components.review_card import utterance_html

    text = "play <b>jazz</b> in the kitchen"
    shown = utterance_html(text, [{"type": "room", "value": "the kitchen"}], [0.9, 0.2, 0.95, 0.99, 0.4])
    # "<b>jazz</b>" (0.2) outside any span, "kitchen" (0.4) inside the room span, each wrapped on its own
    assert '<span class="tl-low"' in shown and shown.count('class="tl-low"') == 2
    assert 'title="word confidence 0.20"' in shown and 'title="word confidence 0.40"' in shown
    assert "<b>" not in shown and "&#60;b&#62;jazz&#60;&#47;b&#62;" in shown
    span = shown[shown.index('<mark class="tl-span'):shown.index("</mark>")]
    assert "the " in span and 'word confidence 0.40">kitchen</span>' in span  # nested inside the mark
    assert "the recogniser&#39;s word confidence is below 0.5" in shown  # the legend
    assert html.unescape(re_text(shown)).startswith(text)
    # without posteriors (or with a wrong number of them) the utterance is as before
    assert utterance_html(text, [], None) == utterance_html(text, [], [0.1]) == \
        f'<div class="tl-utt">{escape_html(text)}</div>'


def re_text(fragment: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", fragment)


def test_the_card_player_escapes_its_source_and_labels_synthetic_audio():
    from analysis.audio_clips import AudioClip
    from components.review_card import audio_html

    url = 'https://audio.example.com/a.mp3?x="><script>alert(1)</script>&y=1'
    shown = audio_html(AudioClip(url=url, label="synthetic voice (espeak-ng)"), url)
    assert "<script>" not in shown and '">' not in shown.split("src=")[1].split('"', 2)[1]
    assert html.unescape(shown.split('src="')[1].split('"')[0]) == url
    assert "<audio" in shown and "data-tl-audio" in shown and "synthetic voice (espeak-ng)" in html.unescape(shown)
    notice = audio_html(AudioClip(notice="audio file not found under the audio root"), None)
    assert "<audio" not in notice and "audio file not found under the audio root" in notice
    assert audio_html(None, None) == ""


def test_the_card_shows_the_target_turns_player_and_its_low_confidence_words():
    turns = [turn("d", 0, "play some jazz", asr_word_confidence=[0.9, 0.1, 0.9])]
    shown = card_html(card("intent", "play_music"), turns, audio='<div class="tl-audio">PLAYER</div>')
    assert shown.index("PLAYER") < shown.index('class="tl-utt"')  # the player above the utterance
    assert 'word confidence 0.10">some</span>' in shown
