"""Voice embeddings from audio: each turn's audio through resemblyzer's pretrained speaker encoder (a 3-layer LSTM
over 40 mel bands, 256-d, its weights shipped in the PyPI wheel), averaged per ``speaker_id`` and L2-normalised
into every turn of that speaker as ``speaker_embedding`` (what the Disparity page clusters into automatic cohorts).

Why a per-speaker mean: on short clips the encoder's embedding follows the sentence as much as the voice
(ENVIRONMENT.md; docs/results/voices.md measures it), so one turn says little about who spoke and the mean of a
speaker's turns says more. A file holds embeddings of one length only, so a speaker with no usable audio gets no
embedding at all (any earlier one, e.g. the simulator's 16-d vectors, is removed), never a mix of encoders.

Resumable and fast: each audio file is embedded once (keyed by the sha256 of its bytes, so turns sharing a file
share the work) and each result is appended to a partial file as it arrives, with the encoder's fingerprint; a
rerun embeds only what is missing. Parallel: ``workers`` processes, each with its own encoder on one torch
thread. Deterministic: the same audio gives the same numbers whatever the order, the worker or the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.log_format import is_audio_url
from analysis.logs import AudioPathError, resolve_audio
from analysis.speech.audio import SAMPLE_RATE, read_pcm
from analysis.speech.workers import map_in_workers

EMBEDDING_VERSION = 1  # part of the fingerprint: bump when what a result holds changes
EMBEDDING_DIM = 256  # resemblyzer's model_embedding_size
EMBEDDING_FIELD = "speech_embedding"  # the (unknown, kept in extras) field naming the encoder of a turn's embedding
_INSTALL_HINT = ("install it with: pip install -c constraints.txt librosa==0.11.0 webrtcvad-wheels==2.0.14.post1 "
                 "&& pip install --no-deps resemblyzer==0.1.4 (make install does)")


class EmbeddingError(RuntimeError):
    """The encoder cannot run (not installed) or a turn's audio cannot be read; the message says what to do."""


@dataclass(frozen=True)
class EmbeddingConfig:
    """workers: embedding processes (2: this machine's cores). threads: torch threads per process (1: the
    LSTM is small, and one thread gives the same numbers whatever the machine's core count). decimals: the
    per-speaker means are rounded to this many decimals in the log (6: about float32's precision on a unit
    vector, and half the file size of full floats)."""

    workers: int = 2
    threads: int = 1
    decimals: int = 6

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 3 <= self.decimals <= 9:
            raise ValueError(f"decimals must be in 3..9, got {self.decimals}")


def _resemblyzer():
    """The resemblyzer package (imported on first use: it imports torch and librosa, about 2 s)."""
    try:
        with warnings.catch_warnings():
            # resemblyzer 0.1.4 imports binary_dilation from scipy.ndimage.morphology (deprecated, still there)
            warnings.simplefilter("ignore", DeprecationWarning)
            import resemblyzer
    except ImportError as exc:
        raise EmbeddingError(f"the voice encoder cannot be imported ({exc}); {_INSTALL_HINT}") from None
    return resemblyzer


def available() -> str | None:
    """None when the encoder can run here, else why not (for tests and the command's error)."""
    try:
        _resemblyzer()
    except EmbeddingError as exc:
        return str(exc)
    return None


def package_version(name: str = "resemblyzer") -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _weights_path() -> Path:
    return Path(_resemblyzer().__file__).resolve().parent / "pretrained.pt"


def describe(config: EmbeddingConfig | None = None) -> dict:
    """What produced an embedding: the encoder and its version, the weights' sha256, torch's version and threads,
    and how turns become a speaker's embedding."""
    config = config or EmbeddingConfig()
    h = hashlib.sha256(_weights_path().read_bytes()).hexdigest()
    return {"encoder": f"resemblyzer {package_version()} VoiceEncoder", "weights_sha256": h,
            "torch": package_version("torch"), "threads": config.threads, "dim": EMBEDDING_DIM,
            "per_speaker": "mean of the turns' unit embeddings, L2-normalised", "version": EMBEDDING_VERSION}


def fingerprint(config: EmbeddingConfig | None = None) -> str:
    return hashlib.sha256(json.dumps(describe(config), sort_keys=True).encode()).hexdigest()[:16]


def warm_up() -> None:
    """Run librosa's mel spectrogram once. numba compiles librosa's helpers at their first call (about 20 s on
    a fresh install, cached in the venv after; about 2 s to load the cache in each new process): done in the
    parent, forked workers inherit the compiled code. make install calls this once so the cache is written."""
    _resemblyzer()
    from resemblyzer.audio import wav_to_mel_spectrogram

    wav_to_mel_spectrogram(np.zeros(SAMPLE_RATE // 10, dtype=np.float32))


class VoiceEmbedder:
    """resemblyzer's VoiceEncoder on the CPU: 16 kHz mono audio in, one unit-norm 256-d vector out."""

    def __init__(self, *, threads: int = 1):
        rz = _resemblyzer()
        import torch

        torch.set_num_threads(threads)  # this process only: a worker's, or the caller's (see embed_records)
        self._rz = rz
        self._encoder = rz.VoiceEncoder(device="cpu", verbose=False)

    def embed_pcm(self, pcm: bytes | np.ndarray) -> np.ndarray | None:
        """The utterance embedding of 16-bit PCM at 16 kHz (bytes or int16 samples): resemblyzer's own
        preprocessing (volume normalised up to -30 dBFS, long silences cut by WebRTC's VAD) then the encoder
        over 1.6 s windows, their mean L2-normalised. Shape (256,), float32, unit norm, every value >= 0 (the
        encoder ends in a ReLU). None when there is no voice to embed (silence, or nothing left after the VAD)."""
        samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray) else np.asarray(pcm)
        wav = samples.astype(np.float32) / 32768.0
        if not len(wav) or not np.any(wav):
            return None  # resemblyzer's volume normalisation divides by the RMS
        wav = self._rz.preprocess_wav(wav)  # no source_sr: already 16 kHz, nothing resampled
        if not len(wav):
            return None
        emb = np.asarray(self._encoder.embed_utterance(wav), dtype=np.float32)
        return emb if np.isfinite(emb).all() and np.linalg.norm(emb) > 0 else None


# ------------------------------------------------------------------------------------ whole logs


@dataclass
class EmbeddingResult:
    """records: copies of the input records; every turn of a speaker with at least one embedded turn carries the
    speaker's mean as ``speaker_embedding`` and ``speech_embedding`` (encoder, turns averaged); every other turn
    has no speaker_embedding. turn_embeddings: record index -> that turn's own unit embedding (turns with
    audio and a voice). speaker_embeddings: speaker_id -> the mean written.

    Counts: embedded/reused are audio files (each embedded once, however many turns share it) embedded now /
    taken from the partial file of an interrupted run; no_audio: turns without audio; remote: turns whose audio
    is a URL (not fetched); no_voice: turns whose audio held no voice (silence); no_speaker: turns with audio
    but no speaker_id (nothing to average under); speakers: speakers given an embedding; speakers_without:
    speakers left without one (no usable audio); replaced: turns whose earlier speaker_embedding was replaced
    or removed."""

    records: list[dict]
    turn_embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    speaker_embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    embedded: int = 0
    reused: int = 0
    no_audio: int = 0
    remote: int = 0
    no_voice: int = 0
    no_speaker: int = 0
    speakers: int = 0
    speakers_without: int = 0
    replaced: int = 0


_worker: VoiceEmbedder | None = None


def _init_worker(config: EmbeddingConfig) -> None:
    global _worker
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    _worker = VoiceEmbedder(threads=config.threads)


def _embed_file(job: tuple[str, str]) -> tuple[str, list[float] | None]:
    key, path = job
    assert _worker is not None
    emb = _worker.embed_pcm(read_pcm(path))
    return key, None if emb is None else [float(x) for x in emb]  # float32 values, exact in JSON


def _embed_all(jobs: list[tuple[str, str]], config: EmbeddingConfig) -> Iterator[tuple[str, list[float] | None]]:
    if config.workers == 1 or len(jobs) <= 1:
        import torch

        before = torch.get_num_threads()
        try:
            _init_worker(config)
            for job in jobs:
                yield _embed_file(job)
        finally:
            torch.set_num_threads(before)  # the caller's torch as it was
        return
    # The parent has imported torch but run nothing on it (no thread pool to copy) and has compiled librosa's
    # helpers (warm_up), which the forked workers inherit.
    yield from map_in_workers(_embed_file, jobs, workers=config.workers, initializer=_init_worker,
                              initargs=(config,))


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_partial(path: Path | None, fp: str) -> dict[str, list[float] | None]:
    done: dict[str, list[float] | None] = {}
    if path is None or not path.exists():
        return done
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when the last run was killed
                continue
            if isinstance(entry, dict) and entry.get("fingerprint") == fp and "key" in entry:
                emb = entry.get("embedding")
                if emb is None or (isinstance(emb, list) and len(emb) == EMBEDDING_DIM):
                    done[entry["key"]] = emb
    return done


def speaker_mean(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The L2-normalised mean of unit vectors, shape (d,), float64 (resemblyzer's ``embed_speaker`` rule).
    Summed in the order given: callers pass a fixed order so the result never depends on the run."""
    if not len(vectors):
        raise ValueError("no vectors to average")
    m = np.mean(np.asarray(vectors, dtype=np.float64), axis=0)
    norm = float(np.linalg.norm(m))
    if norm == 0.0:
        raise ValueError("the vectors cancel out: no direction to normalise")
    return m / norm


def embed_records(records: Sequence[dict], audio_root: str | Path, *, config: EmbeddingConfig | None = None,
                  partial: str | Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> EmbeddingResult:
    """Embed the audio of each record with a local ``audio`` path (resolved under audio_root, never outside it),
    average per speaker_id and write the mean into a copy of every record of that speaker (``speaker_embedding``,
    rounded to ``config.decimals``, and ``speech_embedding``: the encoder's description and the number of turns
    averaged). Records of speakers without any embedded turn lose any speaker_embedding they had (one length per
    file). partial: a file that collects per-file results as they come (a rerun embeds only the rest); deleted
    by the caller once the output is written. progress(done, total) in turns, after each audio file. Raises
    EmbeddingError when the encoder is missing or an audio path is invalid or names no file."""
    config = config or EmbeddingConfig()
    _resemblyzer()
    desc = describe(config)
    fp = fingerprint(config)
    partial_path = Path(partial) if partial is not None else None
    done_before = _read_partial(partial_path, fp)
    out = [dict(r) for r in records]
    result = EmbeddingResult(records=out)
    key_of: dict[int, str] = {}  # record index -> sha256 of its audio file
    paths: dict[str, str] = {}  # sha256 -> one file with those bytes
    for i, rec in enumerate(out):
        audio = rec.get("audio")
        if not isinstance(audio, str):
            result.no_audio += 1
            continue
        if is_audio_url(audio):
            result.remote += 1
            continue
        where = f"dialogue {rec.get('dialogue_id')!r} turn {rec.get('turn_index')}"
        try:
            path = resolve_audio(audio, audio_root)
        except AudioPathError as exc:
            raise EmbeddingError(f"{where}: {exc}") from None
        if not path.is_file():
            raise EmbeddingError(f"{where}: audio file {audio!r} does not exist under {audio_root}")
        if not rec.get("speaker_id"):
            result.no_speaker += 1
            continue
        key_of[i] = key = _file_sha256(path)
        paths.setdefault(key, str(path))
    results: dict[str, list[float] | None] = {k: done_before[k] for k in paths if k in done_before}
    jobs = [(k, p) for k, p in paths.items() if k not in results]
    result.reused = len(results)
    turns_of: dict[str, int] = {}  # progress counts turns, as the other speech tools do
    for key in key_of.values():
        turns_of[key] = turns_of.get(key, 0) + 1
    total = len(key_of)
    done = sum(turns_of[k] for k in results)
    if progress:
        progress(done, total)
    if jobs:
        warm_up()
    sink = open(partial_path, "a", encoding="utf-8") if partial_path else None  # noqa: SIM115
    try:
        for key, emb in _embed_all(jobs, config):
            results[key] = emb
            result.embedded += 1
            done += turns_of[key]
            if sink:
                sink.write(json.dumps({"key": key, "fingerprint": fp, "embedding": emb}) + "\n")
                sink.flush()
            if progress:
                progress(done, total)
    finally:
        if sink:
            sink.close()
    by_speaker: dict[str, list[np.ndarray]] = {}
    for i in sorted(key_of):  # record order: the mean is summed in the same order on every run
        emb = results[key_of[i]]
        if emb is None:
            result.no_voice += 1
            continue
        vec = np.asarray(emb, dtype=np.float32)
        result.turn_embeddings[i] = vec
        by_speaker.setdefault(str(out[i]["speaker_id"]), []).append(vec)
    for speaker, vectors in by_speaker.items():
        result.speaker_embeddings[speaker] = speaker_mean(vectors)
    result.speakers = len(result.speaker_embeddings)
    result.speakers_without = len({str(r["speaker_id"]) for r in out if r.get("speaker_id")}
                                  - set(result.speaker_embeddings))
    rounded = {s: [round(float(x), config.decimals) for x in v] for s, v in result.speaker_embeddings.items()}
    for rec in out:
        had = rec.get("speaker_embedding") is not None
        speaker = str(rec["speaker_id"]) if rec.get("speaker_id") else None
        if speaker in rounded:
            rec["speaker_embedding"] = list(rounded[speaker])  # each record its own list: callers may change one
            rec[EMBEDDING_FIELD] = {**desc, "turns_averaged": len(by_speaker[speaker])}
            result.replaced += had
        else:
            rec.pop(EMBEDDING_FIELD, None)
            if had:
                rec["speaker_embedding"] = None
                result.replaced += 1
    return result
