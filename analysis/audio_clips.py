"""Which audio a turn can play: its ``audio`` value located under the audio root (never outside it), or passed
through as an http(s) URL, with the MIME type the browser needs and the label a synthetic voice must carry; or, for
a file that cannot be played, a short notice saying why (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from analysis.log_format import audio_problem, is_audio_url
from analysis.logs import AudioPathError, resolve_audio

# The formats the app plays (every browser the app supports decodes them), by file suffix, with the MIME type the
# app serves them as: Ogg Opus is an Ogg file (RFC 7845), named so the browser knows the codec.
AUDIO_MIME_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg; codecs=opus",
    ".mp3": "audio/mpeg",
}

# The largest file the app serves: the app holds a file in memory while a page shows it, and a turn's request is
# seconds long (a 16 kHz 16-bit mono wav is 32 kB a second), so anything larger is not one request.
MAX_AUDIO_BYTES = 16 * 1024 * 1024

# What every page says of audio whose source is "synthetic": the demo and evaluation data's text-to-speech.
SYNTHETIC_LABEL = "synthetic voice (espeak-ng)"
RECORDED_LABEL = "recorded audio"


@dataclass(frozen=True)
class AudioClip:
    """A turn's audio as a page shows it. Exactly one of: ``path`` (a file under the audio root, resolved, to
    serve), ``url`` (an http(s) URL the browser fetches itself), ``notice`` (why nothing plays, a short sentence of
    fixed text). mime: the MIME type for path, and for url when its suffix says it (else None). label: what the
    audio is (SYNTHETIC_LABEL, RECORDED_LABEL) or None when the log does not say."""

    path: Path | None = None
    url: str | None = None
    mime: str | None = None
    notice: str | None = None
    label: str | None = None


def audio_label(source: str | None) -> str | None:
    """The label of audio from ``source`` (the log's audio_source): synthetic audio is always said to be."""
    return {"synthetic": SYNTHETIC_LABEL, "recorded": RECORDED_LABEL}.get(source or "")


def locate_audio(value: str | None, source: str | None, root: str | Path | None, *,
                 max_bytes: int = MAX_AUDIO_BYTES) -> AudioClip | None:
    """The playable audio of a turn whose ``audio`` is value (None: the turn has none, and None is returned).

    A path is resolved under ``root`` with ``analysis.logs.resolve_audio`` (symbolic links followed; anything
    leading outside the root is refused); it plays when it is a file of a known suffix (AUDIO_MIME_TYPES) of at
    most max_bytes. An http(s) URL valid for the log format is passed through, not fetched. Anything else gives a
    clip with a notice: refused, no audio root, not found, too large, or an unsupported format."""
    if value is None:
        return None
    label = audio_label(source)
    if is_audio_url(value):
        if audio_problem(value) is not None:
            return AudioClip(notice="audio link refused: not an http(s) URL the app can pass on", label=label)
        suffix = PurePosixPath(urlsplit(value).path).suffix.lower()
        return AudioClip(url=value, mime=AUDIO_MIME_TYPES.get(suffix), label=label)
    if root is None or not Path(root).is_dir():
        return AudioClip(notice="audio not available: no audio root on this server (TURNLENS_AUDIO_ROOT)",
                         label=label)
    try:
        path = resolve_audio(value, root)
    except AudioPathError:
        return AudioClip(notice="audio refused: its path leads outside the audio root", label=label)
    mime = AUDIO_MIME_TYPES.get(path.suffix.lower())
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    if size is None:
        return AudioClip(notice="audio file not found under the audio root", label=label)
    if mime is None:
        return AudioClip(notice="audio format not supported: wav, flac, ogg/opus and mp3 play", label=label)
    if size > max_bytes:
        return AudioClip(notice=f"audio file too large to play here ({size / 1e6:.1f} MB; the limit is "
                                f"{max_bytes / 1e6:.0f} MB)", label=label)
    return AudioClip(path=path, mime=mime, label=label)
