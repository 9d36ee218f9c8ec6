"""The review card's audio in a real browser (#17): the <audio> element is on the card, the app serves its file
offline and answers a Range request with 206, `p` plays and pauses the card on screen, and a card that leaves the
screen stops playing (so `p` then plays the new card's audio, never the old one)."""

from __future__ import annotations

import math
import struct
import urllib.request
import wave

import pytest

from analysis.candidates import candidates_from_logged_nlu
from app import store
from app.ingest import ingest_files
from tests.e2e.server import AppServer, sign_in, wait_idle
from tests.helpers import make_turn, write_jsonl

pytestmark = pytest.mark.e2e

SHOWN_AUDIO = ".tl-cards .tl-slot:not([hidden]) audio[data-tl-audio]"


def write_tone(path, seconds: float = 3.0, rate: int = 8000, hz: float = 440.0):
    """A quiet sine tone as a mono 16-bit wav, made here (no binary fixture in the repository): long enough to be
    still playing when the test looks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * hz * i / rate)))
                      for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


@pytest.fixture
def audio_server(tmp_path):
    root = tmp_path / "audio"
    write_tone(root / "clips" / "0.wav")
    write_tone(root / "clips" / "1.wav", hz=660.0)
    turns = [make_turn(f"aud-{i}", 0, asr_text=f"request {i}", audio=f"clips/{i}.wav", audio_source="synthetic",
                       nlu_intent=intent, nlu_domain=intent.split("_")[0], nlu_confidence=conf, nlu_slots=[],
                       timestamp=f"2026-01-0{i + 1}T10:00:00Z")
             for i, (intent, conf) in enumerate([("weather_query", 0.1), ("music_play", 0.2)])]
    db_path = tmp_path / "audio.duckdb"
    conn = store.connect(db_path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo", audio_root=root)
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    server = AppServer(db_path, env={"TURNLENS_AUDIO_ROOT": str(root)})
    yield server, root
    server.stop()


def shown_audio(page, attribute: str):
    return page.eval_on_selector(SHOWN_AUDIO, f"a => a.{attribute}")


def press(page, key: str) -> None:
    page.locator("h1").first.click()  # focus the page, not an input: keys go to the card
    page.keyboard.press(key)


# Null-safe: while Streamlit redraws the cards there is a moment with no shown audio element (a predicate that
# throws fails the wait at once instead of waiting on)
PLAYING = f"() => {{ const a = document.querySelector('{SHOWN_AUDIO}'); return !!a && !a.paused; }}"
PAUSED = f"() => {{ const a = document.querySelector('{SHOWN_AUDIO}'); return !!a && a.paused; }}"


def test_the_card_plays_its_audio_served_by_the_app_with_range_requests_and_p(audio_server, page):
    server, root = audio_server
    sign_in(page, f"{server.url}/review?task=intent", "ana")
    page.wait_for_selector(SHOWN_AUDIO, timeout=30_000)
    wait_idle(page)
    assert "synthetic voice (espeak-ng)" in page.inner_text(".tl-cards .tl-slot:not([hidden])")
    src = page.get_attribute(SHOWN_AUDIO, "src")
    assert src.startswith("/media/") and src.endswith(".wav")

    # The app serves the file itself, in byte ranges (what a player's seeking asks for).
    data = (root / "clips" / "0.wav").read_bytes()
    request = urllib.request.Request(server.url + src, headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert r.headers["Content-Type"].startswith("audio/wav")
        assert r.read() == data[100:200]
    with urllib.request.urlopen(server.url + src, timeout=10) as r:
        assert r.status == 200 and r.read() == data

    # p plays the card on screen, p again pauses it.
    assert shown_audio(page, "paused") is True
    press(page, "p")
    page.wait_for_function(PLAYING, timeout=10_000)
    page.wait_for_function(f"() => (document.querySelector('{SHOWN_AUDIO}') || {{}}).currentTime > 0", timeout=10_000)
    press(page, "p")
    page.wait_for_function(PAUSED, timeout=10_000)

    # Playing, then decided: the card leaves the screen and stops; p now plays the next card's audio only.
    press(page, "p")
    page.wait_for_function(PLAYING, timeout=10_000)
    first = page.query_selector(SHOWN_AUDIO)
    press(page, "a")
    page.wait_for_function("a => a.paused", arg=first, timeout=10_000)
    page.wait_for_function(f"s => document.querySelector('{SHOWN_AUDIO}') &&"
                           f" document.querySelector('{SHOWN_AUDIO}').getAttribute('src') !== s",
                           arg=src, timeout=20_000)
    wait_idle(page)
    press(page, "p")
    page.wait_for_function(PLAYING, timeout=10_000)
    assert page.evaluate("a => a.isConnected ? a.paused : true", first)  # the old card's audio stays silent
    assert page.outside_requests == []
