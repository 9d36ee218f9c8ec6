"""A turn's audio located for the player (analysis.audio_clips), the n-best against the 1-best and the 1-best's
low-confidence words (analysis.nbest_diff): pure functions, no Streamlit."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from analysis.audio_clips import (
    AUDIO_MIME_TYPES,
    MAX_AUDIO_BYTES,
    RECORDED_LABEL,
    SYNTHETIC_LABEL,
    locate_audio,
)
from analysis.nbest_diff import LOW_CONFIDENCE, DiffWord, nbest_view, word_confidences, word_diff


def write_wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    """A tiny mono 16-bit wav of silence, made here (no binary fixture in the repository)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "audio"
    write_wav(root / "clips" / "a.wav")
    for suffix in (".flac", ".ogg", ".opus", ".mp3", ".OGG", ".aiff"):
        (root / "clips" / f"x{suffix}").write_bytes(b"data")
    with open(root / "clips" / "big.wav", "wb") as fh:  # sparse: its size without writing it
        fh.truncate(MAX_AUDIO_BYTES + 1)
    (root / "clips" / "folder.wav").mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (root / "clips" / "escape.wav").symlink_to(tmp_path / "secret.wav")
    (root / "up").symlink_to(tmp_path)
    return root


def test_a_file_under_the_root_plays_with_its_mime_type_and_label(root):
    clip = locate_audio("clips/a.wav", "synthetic", root)
    assert (clip.path, clip.mime, clip.url, clip.notice) == ((root / "clips" / "a.wav").resolve(), "audio/wav", None,
                                                             None)
    assert clip.label == SYNTHETIC_LABEL == "synthetic voice (espeak-ng)"
    assert locate_audio("clips/a.wav", "recorded", root).label == RECORDED_LABEL
    assert locate_audio("clips/a.wav", None, root).label is None
    assert locate_audio(None, "synthetic", root) is None  # no audio: no player, no notice


@pytest.mark.parametrize("name, mime", [("x.flac", "audio/flac"), ("x.ogg", "audio/ogg"), ("x.OGG", "audio/ogg"),
                                        ("x.opus", "audio/ogg; codecs=opus"), ("x.mp3", "audio/mpeg")])
def test_every_supported_format_has_its_mime_type(root, name, mime):
    clip = locate_audio(f"clips/{name}", None, root)
    assert clip.mime == mime and clip.path is not None and clip.notice is None
    assert set(AUDIO_MIME_TYPES) >= {".wav", ".flac", ".ogg", ".opus", ".mp3"}


@pytest.mark.parametrize("value, notice", [
    ("clips/gone.wav", "audio file not found under the audio root"),
    ("clips/folder.wav", "audio file not found under the audio root"),
    ("clips/x.aiff", "audio format not supported: wav, flac, ogg/opus and mp3 play"),
    ("clips/big.wav", f"audio file too large to play here ({(MAX_AUDIO_BYTES + 1) / 1e6:.1f} MB; the limit is "
                      f"{MAX_AUDIO_BYTES / 1e6:.0f} MB)"),
    ("clips/escape.wav", "audio refused: its path leads outside the audio root"),
    ("up/secret.wav", "audio refused: its path leads outside the audio root"),
    ("../secret.wav", "audio refused: its path leads outside the audio root"),
    ("/etc/passwd", "audio refused: its path leads outside the audio root"),
    ("file:///etc/passwd", "audio link refused: not an http(s) URL the app can pass on"),
    ("javascript:alert(1)", "audio link refused: not an http(s) URL the app can pass on"),
])
def test_audio_that_cannot_play_gives_a_short_notice_never_an_error(root, value, notice):
    clip = locate_audio(value, "synthetic", root)
    assert (clip.notice, clip.path, clip.url) == (notice, None, None)
    assert clip.label == SYNTHETIC_LABEL  # synthetic audio is said to be, playable or not


def test_no_audio_root_is_a_notice(tmp_path):
    for root in (None, tmp_path / "nowhere"):
        assert "no audio root" in locate_audio("clips/a.wav", None, root).notice


def test_urls_are_passed_through_with_the_mime_type_their_suffix_says(root):
    clip = locate_audio("https://audio.example.com/a/1.mp3?sig=x&t=1", "recorded", None)
    assert (clip.url, clip.mime, clip.path, clip.notice) == ("https://audio.example.com/a/1.mp3?sig=x&t=1",
                                                             "audio/mpeg", None, None)
    assert locate_audio("http://h/stream", None, root).mime is None


def test_word_diff_marks_what_differs_from_the_1_best():
    assert word_diff("play some jazz please", "play sam jazz") == [
        DiffWord("play", "same"), DiffWord("sam", "changed"), DiffWord("jazz", "same"), DiffWord("please", "missing")]
    assert word_diff("stop", "stop it") == [DiffWord("stop", "same"), DiffWord("it", "added")]
    assert word_diff("", "") == []


def test_nbest_view_keeps_the_order_and_says_scores_gaps_and_confidence():
    hyps = [{"text": "play sam jazz", "score": -120.5, "confidence": None},
            {"text": "play some jazz please", "score": -100.0, "confidence": 0.7}]
    view = nbest_view("play some jazz please", hyps)
    assert [(h.rank, h.text, h.score, h.gap, h.confidence, h.same_as_best) for h in view] == [
        (1, "play sam jazz", -120.5, -20.5, None, False), (2, "play some jazz please", -100.0, 0.0, 0.7, True)]
    # a 1.0 n-best: texts only
    plain = nbest_view("a b", [{"text": "a b", "score": None, "confidence": None}, {"text": "a c"}])
    assert [(h.score, h.gap, h.confidence) for h in plain] == [(None, None, None)] * 2
    assert nbest_view("a", None) == [] and nbest_view("a", []) == []


def test_word_confidences_mark_the_words_below_the_threshold():
    text = "  play  some\tjazz "
    words = word_confidences(text, [0.9, 0.3, LOW_CONFIDENCE])
    assert [(text[w.start:w.end], w.confidence, w.low) for w in words] == [
        ("play", 0.9, False), ("some", 0.3, True), ("jazz", LOW_CONFIDENCE, False)]  # below, not at, the threshold
    assert word_confidences(text, [0.9, 0.3]) == []  # not one per word: nothing is guessed
    assert word_confidences(text, None) == []
    assert [w.low for w in word_confidences("a b", [0.6, 0.9], threshold=0.7)] == [True, False]
    with pytest.raises(ValueError):
        word_confidences("a", [0.5], threshold=1.5)
