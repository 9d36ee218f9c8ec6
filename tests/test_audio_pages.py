"""The Review and Dialogues pages through AppTest with audio, n-best lists and word posteriors (#17): the player
(served by the app from under the audio root, http(s) URLs passed through, synthetic audio labelled), the notices
for audio that cannot play, the n-best view with its differences from the 1-best, the low-confidence marks, and
log text in all of them kept as text."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from analysis.audio_clips import MAX_AUDIO_BYTES, SYNTHETIC_LABEL
from analysis.candidates import candidates_from_logged_nlu
from app import store
from app.ingest import ingest_files
from components.markdown import escape_markdown
from tests.helpers import make_turn, open_app_page, write_jsonl
from tests.test_audio_clips import write_wav

XSS = "<img src=x onerror=alert(1)> **bold**"


def turns() -> list[dict]:
    """Dialogue aud-1: a synthetic wav with word posteriors and a 1.1 n-best; a missing file; an http(s) URL; a
    file too large to play; a file the test turns into a way out of the root after ingest; and an n-best holding
    markup. The logged NLU's confidence puts turn 0's intent first in the review queue."""
    common = {"nlu_slots": [], "nlu_intent": "music_play", "nlu_domain": "music"}
    return [
        make_turn("aud-1", 0, asr_text="play some jazz please", audio="clips/a.wav", audio_source="synthetic",
                  asr_word_confidence=[0.9, 0.3, 0.95, 0.8], nlu_confidence=0.1,
                  asr_nbest=[{"text": "play sam jazz", "score": -120.5},
                             {"text": "play some jazz please", "score": -100.0, "confidence": 0.7}], **common),
        make_turn("aud-1", 1, audio="clips/gone.wav", audio_source="recorded", nlu_confidence=0.2, **common),
        make_turn("aud-1", 2, audio="https://audio.example.com/aud/2.mp3", nlu_confidence=0.3, **common),
        make_turn("aud-1", 3, audio="clips/big.wav", nlu_confidence=0.4, **common),
        make_turn("aud-1", 4, audio="clips/later-a-link.wav", nlu_confidence=0.5, **common),
        make_turn("aud-1", 5, asr_text="hello", asr_nbest=["hello", XSS], nlu_confidence=0.6, **common),
    ]


@pytest.fixture
def audio_db(tmp_path, monkeypatch):
    root = tmp_path / "audio"
    wav = write_wav(root / "clips" / "a.wav")
    with open(root / "clips" / "big.wav", "wb") as fh:
        fh.truncate(MAX_AUDIO_BYTES + 1)
    write_wav(root / "clips" / "later-a-link.wav")
    path = tmp_path / "audio.duckdb"
    conn = store.connect(path)
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns())], dataset="demo", audio_root=root,
                 allow_missing_audio=True)
    store.insert_candidates(conn, candidates_from_logged_nlu(store.list_nlu_outputs(conn, "demo")))
    conn.close()
    # after ingest, a stored path becomes a symbolic link out of the root: the page must refuse it all the same
    (tmp_path / "secret.wav").write_bytes(wav.read_bytes())
    (root / "clips" / "later-a-link.wav").unlink()
    (root / "clips" / "later-a-link.wav").symlink_to(tmp_path / "secret.wav")
    monkeypatch.setenv("TURNLENS_DB", str(path))
    monkeypatch.setenv("TURNLENS_AUDIO_ROOT", str(root))
    return root


@pytest.fixture
def media(monkeypatch) -> list:
    """The media file storages AppTest makes (one per run; the server's /media route reads the same kind)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    made, init = [], MemoryMediaFileStorage.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(MemoryMediaFileStorage, "__init__", keep)
    return made


def served(media: list, url: str) -> tuple[bytes, str]:
    """The bytes and MIME type the app serves at url, from the storage of the last run."""
    file = media[-1].get_file(url.rsplit("/", 1)[1])
    return file.content, file.mimetype


def cards_sent(at) -> list[dict]:
    node = next(n for n in at._tree if n.type == "bidi_component")
    which = node.proto.WhichOneof("data")
    return json.loads(node.proto.mixed.json if which == "mixed" else node.proto.json)["cards"]


def test_the_review_card_plays_the_target_turns_audio_and_marks_low_confidence_words(audio_db, media):
    at = open_app_page("app_pages/review.py", params={"task": "intent"}, timeout=60)
    sent = cards_sent(at)
    card = sent[0]["html"]
    src = unescape(re.search(r'<audio [^>]*src="([^"]+)"', card).group(1))
    assert "data-tl-audio" in card and "/media/" in src and src.endswith(".wav")  # AppTest serves under /mock
    assert served(media, src) == ((audio_db / "clips" / "a.wav").read_bytes(), "audio/wav")  # the file, offline
    assert SYNTHETIC_LABEL in unescape(card) and "p play / pause" in unescape(card)
    assert re.search(r'<span class="tl-low"[^>]*title="word confidence 0.30">some</span>', card)
    # the next card, prefetched: its file is missing, so a notice and no player
    assert "<audio" not in sent[1]["html"] and "audio file not found under the audio root" in sent[1]["html"]
    assert "recorded audio" in sent[1]["html"]
    # the context below the card: the dialogue view with a player in every turn that can play, and notices
    players = [a.proto.url for a in at.get("audio")]
    assert src in players and "https://audio.example.com/aud/2.mp3" in players
    captions = [c.value for c in at.caption]
    assert any("audio refused" in c for c in captions) and any("too large" in c for c in captions)


def test_the_dialogues_turn_view_has_players_n_best_and_low_confidence_marks(audio_db, media):
    at = open_app_page("app_pages/dialogues.py", params={"dialogue": "aud-1"}, timeout=60)
    players = at.get("audio")
    # one player for each turn that can play: the wav (served by the app) and the URL (passed through)
    assert len(players) == 2
    local, remote = (p.proto.url for p in players)
    assert served(media, local) == ((audio_db / "clips" / "a.wav").read_bytes(), "audio/wav")
    assert remote == "https://audio.example.com/aud/2.mp3"
    captions = [c.value for c in at.caption]
    for notice in (SYNTHETIC_LABEL, "audio file not found under the audio root", "audio file too large to play here",
                   "audio refused: its path leads outside the audio root"):
        assert any(escape_markdown(notice) in c for c in captions), notice  # shown as text
    bodies = [h.proto.body for h in at.get("html")]
    low = next(b for b in bodies if "tl-asr" in b)
    assert re.search(r'class="tl-low"[^>]*title="word confidence 0.30">some</span>', low)
    assert low.count('class="tl-low"') == 1  # 0.8 and above are not marked
    assert [e.label for e in at.expander if e.label.startswith("n-best")] == ["n-best: 2 hypotheses"] * 2
    nbest = next(b for b in bodies if "tl-nbest" in b and "sam" in b)
    assert re.search(r'<mark class="tl-diff tl-changed"[^>]*>sam</mark>', nbest)
    assert re.search(r'<del class="tl-diff tl-missing"[^>]*>please</del>', nbest)
    assert "-120.5" in nbest and "-20.5" in nbest and "0.70" in nbest and "(= 1-best)" in nbest
    # a 1.0 n-best: texts only, no score columns; its markup is text
    plain = next(b for b in bodies if "tl-nbest" in b and "hello" in b)
    assert "score" not in plain and "<img" not in plain and "**" not in plain
    assert XSS in unescape(re.sub(r"<[^>]+>", "", plain))
