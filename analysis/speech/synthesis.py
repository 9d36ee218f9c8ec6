"""Text to speech with espeak-ng: a log's reference texts rendered in each simulated speaker's voice
(``voices.voice_for``), resampled to 16 kHz with sox, padded with silence, optionally mixed with white noise at
a stated signal-to-noise ratio, and written under an audio root. Every file is marked synthetic in its record.

Resumable: a file's name is a hash of everything that shapes it (text, voice, padding, noise, seed, format), so
a rerun skips every file already written (files are written atomically) and a changed setting never reuses a
stale one. Parallel: espeak-ng and sox run as child processes, ``workers`` at a time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.speech.audio import FORMATS, SAMPLE_RATE, SpeechToolError, require_tools, run_tool, write_audio
from analysis.speech.voices import Voice, voice_for

SYNTHESIS_VERSION = 1  # part of every file's name: bump when rendering changes, so no stale file is reused
SYNTHESIS_FIELD = "speech_synthesis"  # the (unknown, kept in extras) field describing how a turn's audio was made


@dataclass(frozen=True)
class SynthesisConfig:
    """How to render. audio_format: wav, flac (lossless, about half the size) or ogg (Vorbis, lossy, about a
    tenth). snr_db: white noise mixed in at this signal-to-noise ratio in dB (speech power measured between
    the paddings), None for none. pad_seconds: silence before and after the speech (a device's endpointer
    keeps some; pocketsphinx recognises espeak-ng's clipped starts better with it). seed: of the noise (each
    file's noise also depends on its own text and voice, never on the order or the worker). workers: parallel
    renderings (2: this machine's cores). prefix: the folder under the audio root."""

    audio_format: str = "wav"
    snr_db: float | None = None
    pad_seconds: float = 0.4
    seed: int = 0
    workers: int = 2
    prefix: str = "synthetic"

    def __post_init__(self) -> None:
        if self.audio_format not in FORMATS:
            raise ValueError(f"audio_format must be one of {', '.join(FORMATS)}, got {self.audio_format!r}")
        if self.snr_db is not None and not -10 <= self.snr_db <= 100:
            raise ValueError(f"snr_db must be in -10..100 dB (or None for no noise), got {self.snr_db}")
        if not 0 <= self.pad_seconds <= 5:
            raise ValueError(f"pad_seconds must be in 0..5, got {self.pad_seconds}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not self.prefix or self.prefix.startswith("/") or ".." in self.prefix.split("/") or "\\" in self.prefix:
            raise ValueError(f"prefix must be a relative folder without '..', got {self.prefix!r}")


def speaker_key(record: dict) -> str:
    """Whose voice a turn is said in: its speaker_id, else its user_id, else its dialogue_id."""
    return str(record.get("speaker_id") or record.get("user_id") or record["dialogue_id"])


def audio_name(text: str, voice: Voice, config: SynthesisConfig) -> str:
    """The audio path (relative to the root) of one rendering: <prefix>/<2 hex>/<24 hex>.<format>, a hash of
    everything that shapes the file."""
    spec = json.dumps({"version": SYNTHESIS_VERSION, "text": text, "voice": voice.describe(),
                       "pad_seconds": config.pad_seconds, "snr_db": config.snr_db, "seed": config.seed,
                       "format": config.audio_format}, sort_keys=True)
    h = hashlib.sha256(spec.encode()).hexdigest()
    return f"{config.prefix}/{h[:2]}/{h[:24]}.{config.audio_format}"


def render(text: str, voice: Voice, *, pad_seconds: float = 0.4, snr_db: float | None = None,
           noise_seed: int = 0) -> np.ndarray:
    """One utterance as int16 samples at 16 kHz: espeak-ng (22,050 Hz) -> sox (16 kHz mono, 1 dB gain
    reduction as resampling clips a few samples, padding; -D: no dither, which sox adds at random and which would
    make every rendering differ) -> white noise at snr_db if given (seeded: the same file every time)."""
    wav = run_tool(["espeak-ng", "-v", voice.espeak_voice, "-s", str(voice.speed), "-p", str(voice.pitch),
                    "--stdout"], data=text.encode("utf-8"), what=f"synthesising {text[:40]!r}")
    raw = run_tool(["sox", "-q", "-D", "-t", "wav", "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
                    "-r", str(SAMPLE_RATE), "-L", "-", "gain", "-1", "pad", f"{pad_seconds:g}", f"{pad_seconds:g}"],
                   data=wav, what=f"resampling {text[:40]!r}")
    pcm = np.frombuffer(raw, dtype="<i2")
    if snr_db is None or not len(pcm):
        return pcm.copy()
    x = pcm.astype(np.float64)
    pad = int(round(pad_seconds * SAMPLE_RATE))
    speech = x[pad:len(x) - pad] if len(x) > 2 * pad else x
    power = float(np.mean(speech ** 2)) if len(speech) else 0.0
    if power > 0:
        rng = np.random.default_rng(noise_seed)
        x = x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return np.clip(np.rint(x), -32768, 32767).astype("<i2")


@dataclass
class SynthesisResult:
    """records: the input records, each with audio, audio_source "synthetic" and a speech_synthesis description
    where it was rendered (the others unchanged). rendered/reused: files written now / found from an earlier
    run; no_text: turns without a reference text (nothing to say, no audio)."""

    records: list[dict]
    rendered: int = 0
    reused: int = 0
    no_text: int = 0
    voices: dict[str, Voice] = field(default_factory=dict)  # speaker key -> voice


def _noise_seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:8], "big")


def synthesize_records(records: Sequence[dict], audio_root: str | Path, *, config: SynthesisConfig | None = None,
                       progress: Callable[[int, int], None] | None = None) -> SynthesisResult:
    """Render each record's reference_text in its speaker's voice under audio_root (created if missing) and set
    its ``audio`` (the path relative to the root), ``audio_source`` ("synthetic") and ``speech_synthesis``
    (engine, voice, speed, pitch, padding, SNR). Records are copied, never changed in place. progress(done,
    total) after each file. Raises SpeechToolError when espeak-ng or sox is missing or fails (naming the turn)."""
    config = config or SynthesisConfig()
    require_tools("espeak-ng", "sox")
    root = Path(audio_root)
    root.mkdir(parents=True, exist_ok=True)
    out: list[dict] = []
    todo: dict[str, tuple[str, Voice, tuple]] = {}  # name -> (text, voice, turn), each file rendered once
    result = SynthesisResult(records=out)
    engine = _engine()
    for rec in records:
        rec = dict(rec)
        out.append(rec)
        text = rec.get("reference_text")
        if not isinstance(text, str) or not text.split():
            result.no_text += 1
            continue
        key = speaker_key(rec)
        voice = result.voices.setdefault(key, voice_for(key))
        name = audio_name(text, voice, config)
        rec["audio"] = name
        rec["audio_source"] = "synthetic"
        rec[SYNTHESIS_FIELD] = {"engine": engine, "speaker": key, **voice.describe(),
                                "pad_seconds": config.pad_seconds, "snr_db": config.snr_db}
        if name not in todo and not (root / name).is_file():
            todo[name] = (text, voice, (rec.get("dialogue_id"), rec.get("turn_index")))
    total = sum(1 for r in out if "audio" in r and r.get(SYNTHESIS_FIELD))
    result.reused = total - sum(1 for r in out if r.get("audio") in todo)
    done = result.reused
    if progress:
        progress(done, total)

    def one(name: str) -> str:
        text, voice, _ = todo[name]
        pcm = render(text, voice, pad_seconds=config.pad_seconds, snr_db=config.snr_db,
                     noise_seed=_noise_seed(name, config.seed))
        write_audio(root / name, pcm, audio_format=config.audio_format)
        return name

    per_file = {name: sum(1 for r in out if r.get("audio") == name) for name in todo}
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        futures = {pool.submit(one, name): name for name in todo}
        try:
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    fut.result()
                except SpeechToolError as exc:
                    did, ti = todo[name][2]
                    raise SpeechToolError(f"dialogue {did!r} turn {ti}: {exc}") from None
                result.rendered += 1
                done += per_file[name]
                if progress:
                    progress(done, total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return result


def _engine() -> str:
    """espeak-ng and its version, as it reports it (e.g. "espeak-ng 1.51")."""
    path = shutil.which("espeak-ng")
    if path is None:
        return "espeak-ng"
    first = run_tool([path, "--version"], what="espeak-ng --version").decode(errors="replace").split("\n")[0]
    version = next((w for w in first.replace(":", " ").split() if w[:1].isdigit()), "")
    return f"espeak-ng {version}".strip()
