"""Audio in and out for the speech tools: 16 kHz mono 16-bit PCM in memory; WAV, FLAC or Ogg Vorbis on disk
(written atomically, so an interrupted run never leaves half a file that a resumed run would take as done);
and the checks that espeak-ng and sox are installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # what pocketsphinx's en-us acoustic model was trained on
FORMATS = ("wav", "flac", "ogg")
_TOOLS_HINT = "install them with: apt-get install -y espeak-ng sox (make install does)"


class SpeechToolError(RuntimeError):
    """A speech tool is missing or failed; the message says which and how to fix it."""


def require_tools(*names: str) -> None:
    """Raise SpeechToolError naming every tool of names (e.g. "espeak-ng", "sox") not on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SpeechToolError(f"{', '.join(missing)} not found on PATH; {_TOOLS_HINT}")


def run_tool(args: list[str], *, data: bytes | None = None, what: str) -> bytes:
    """Run a tool with data on standard input; its standard output, or SpeechToolError with its message."""
    try:
        done = subprocess.run(args, input=data, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise SpeechToolError(f"{args[0]} not found; {_TOOLS_HINT}") from None
    except subprocess.TimeoutExpired:
        raise SpeechToolError(f"{what}: {args[0]} took more than 120 s") from None
    if done.returncode != 0:
        raise SpeechToolError(f"{what}: {args[0]} exited with {done.returncode}: "
                              f"{done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout


def read_pcm(path: str | Path) -> bytes:
    """The audio of a file as 16 kHz mono signed 16-bit little-endian PCM. A WAV file already in that form is
    read directly; anything else (another rate, stereo, FLAC, Ogg, MP3 where sox has it) goes through sox."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                if (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) == \
                        (SAMPLE_RATE, 1, 2, "NONE"):
                    return w.readframes(w.getnframes())
        except (wave.Error, EOFError):
            pass  # not a plain PCM WAV: let sox try
    return run_tool(["sox", "-q", "-D", str(path), "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
                     "-r", str(SAMPLE_RATE), "-L", "-"], what=f"reading {path}")


def write_audio(path: str | Path, pcm: np.ndarray, *, audio_format: str) -> None:
    """Write int16 samples (16 kHz mono) to path as wav, flac or ogg, atomically (a temporary file in the same
    folder, renamed into place)."""
    if audio_format not in FORMATS:
        raise ValueError(f"audio_format must be one of {', '.join(FORMATS)}, got {audio_format!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix="." + audio_format)
    os.close(fd)
    try:
        samples = np.ascontiguousarray(pcm, dtype="<i2")
        if audio_format == "wav":
            with wave.open(tmp, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SAMPLE_RATE)
                w.writeframes(samples.tobytes())
        else:
            # -R: repeatable (Ogg Vorbis otherwise gets a random stream serial, so the same audio other bytes)
            run_tool(["sox", "-q", "-R", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
                      "-r", str(SAMPLE_RATE), "-L", "-", "-t", "vorbis" if audio_format == "ogg" else "flac", tmp],
                     data=samples.tobytes(), what=f"writing {path}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
