"""Speech recognition with pocketsphinx (the en-us acoustic model, dictionary and LM its wheel ships): per turn,
the 1-best with its utterance posterior, per-word posteriors, and the n-best list with scores, written back into
the log (format 1.1).

pocketsphinx 5.1.1, as measured (ENVIRONMENT.md): ``nbest()`` returns None when there is no lattice and its
iterator can yield None; an n-best entry's ``score`` is ``logmath.exp`` of the path score, so the score comes
back with ``logmath.log`` (then to natural log); n-best entries carry no posterior; the first n-best entry is
not always ``hyp()`` (two searches); ``hyp().prob`` is the utterance posterior, informative only with an
in-domain LM; noise removal carries state across utterances (reset per turn here, so a result does not depend on
the order of decoding); ``seg()`` gives per-word posteriors, with fillers (<s>, <sil>, [NOISE]) and pronunciation
variants ("tomorrow(2)") to strip.

Resumable: each result is appended to a partial file as it arrives, keyed by the turn, its audio and the
decoder's fingerprint (package version, LM file hash, options); a rerun decodes only what is missing. Parallel:
``workers`` processes, each with its own decoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.log_format import is_audio_url
from analysis.logs import AudioPathError, resolve_audio
from analysis.speech.audio import read_pcm
from analysis.speech.workers import map_in_workers

RECOGNITION_VERSION = 1  # part of the fingerprint: bump when what a result holds changes
RECOGNITION_FIELD = "speech_recognition"  # the (unknown, kept in extras) field naming the recogniser of a turn
# Fields computed from the previous transcript: dropped when a turn is recognised again (unless kept on request).
NLU_FIELDS = ("nlu_domain", "nlu_intent", "nlu_slots", "nlu_confidence", "nlu_alt_intent")
_VARIANT = re.compile(r"\(\d+\)$")


class RecognitionError(RuntimeError):
    """The recogniser cannot run (not installed, a bad LM); the message says what to do."""


@dataclass(frozen=True)
class RecogniserConfig:
    """lm: an ARPA or binary LM file (e.g. built by ``analysis.speech.lm.build_lm`` from training text), or None
    for pocketsphinx's general en-us LM. nbest: distinct hypotheses kept (10). nbest_scan: n-best entries read
    to find them (the lattice repeats texts with other silences or pronunciations). workers: decoding
    processes (2: this machine's cores)."""

    lm: str | None = None
    nbest: int = 10
    nbest_scan: int = 200
    workers: int = 2

    def __post_init__(self) -> None:
        if self.nbest < 1 or self.nbest_scan < self.nbest:
            raise ValueError(f"need 1 <= nbest <= nbest_scan, got {self.nbest} and {self.nbest_scan}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.lm is not None and not Path(self.lm).is_file():
            raise ValueError(f"LM file not found: {self.lm}")


@dataclass
class Recognition:
    """One turn's recognition. text: the 1-best (may be empty). confidence: its utterance posterior (0..1).
    word_confidence: one posterior per word of text (None if the segmentation did not match the 1-best's
    words, which is counted, never padded). nbest: up to ``nbest`` {text, score} objects with distinct texts,
    in the decoder's order; score is the natural log of the path score."""

    text: str
    confidence: float | None
    word_confidence: list[float] | None
    nbest: list[dict]


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise RecognitionError("pocketsphinx is not installed; install it with: "
                               "pip install -c constraints.txt pocketsphinx==5.1.1 (make install does)") from None
    return pocketsphinx


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pocketsphinx")
    except PackageNotFoundError:
        return "not installed"


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe(config: RecogniserConfig) -> dict:
    """What produced a result: engine and version, the LM (default, or the file's name and sha256), options."""
    lm = {"name": "pocketsphinx default en-us LM"} if config.lm is None else {
        "name": Path(config.lm).name, "sha256": _file_sha256(config.lm)}
    return {"engine": f"pocketsphinx {package_version()}", "lm": lm, "nbest": config.nbest,
            "nbest_scan": config.nbest_scan, "version": RECOGNITION_VERSION}


def fingerprint(config: RecogniserConfig) -> str:
    return hashlib.sha256(json.dumps(describe(config), sort_keys=True).encode()).hexdigest()[:16]


class Recogniser:
    """A pocketsphinx decoder (about 0.8 s to load) that decodes one utterance at a time."""

    def __init__(self, config: RecogniserConfig | None = None):
        self.config = config or RecogniserConfig()
        ps = _pocketsphinx()
        kwargs = {"loglevel": "FATAL"}
        if self.config.lm is not None:
            kwargs["lm"] = str(self.config.lm)
        try:
            self._decoder = ps.Decoder(**kwargs)
        except (RuntimeError, ValueError) as exc:
            raise RecognitionError(f"pocketsphinx could not start with LM {self.config.lm or 'default'}: "
                                   f"{exc}") from None
        self._logmath = self._decoder.get_logmath()

    def decode(self, pcm: bytes) -> Recognition:
        """Recognise 16 kHz mono 16-bit PCM."""
        d = self._decoder
        # Noise removal keeps statistics from one utterance to the next: without a fresh start a turn's result
        # would depend on which turns its worker decoded before it (measured: 2 of 8 differed in another order).
        d.reinit_feat()
        d.start_utt()
        if pcm:
            d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None:
            return Recognition(text="", confidence=None, word_confidence=[], nbest=self._nbest())
        text = " ".join(hyp.hypstr.split())
        confidence = min(max(float(hyp.prob), 0.0), 1.0) if math.isfinite(hyp.prob) else None
        return Recognition(text=text, confidence=confidence, word_confidence=self._word_posteriors(text),
                           nbest=self._nbest())

    def _word_posteriors(self, text: str) -> list[float] | None:
        segs = self._decoder.seg()
        words, probs = [], []
        for s in segs or ():
            w = s.word
            if w.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], ++GARBAGE++: not words of the text
                continue
            words.append(_VARIANT.sub("", w))
            probs.append(min(max(float(s.prob), 0.0), 1.0))  # Segment.prob is logmath.exp'd already
        return probs if words == text.split() else None

    def _nbest(self) -> list[dict]:
        it = self._decoder.nbest()
        if it is None:  # no lattice
            return []
        out: list[dict] = []
        seen: set[str] = set()
        for k, h in enumerate(it):
            if k >= self.config.nbest_scan or len(out) >= self.config.nbest:
                break
            if h is None or h.score <= 0:  # the iterator yields None; a score below double range is lost
                continue
            text = " ".join(h.hypstr.split())
            if text in seen:
                continue
            seen.add(text)
            # .score is logmath.exp(path score): log() restores the integer score, log_to_ln makes it a natural log
            out.append({"text": text, "score": round(float(self._logmath.log_to_ln(self._logmath.log(h.score))), 4)})
        return out


# ------------------------------------------------------------------------------------ whole logs


@dataclass
class RecognitionResult:
    """records: the input records, recognised where they had local audio. decoded/reused: turns decoded now /
    taken from the partial file of an earlier run; no_audio: turns without audio; remote: turns whose audio
    is a URL (not fetched); words_unmatched: turns whose word posteriors were left out (segmentation and
    1-best disagreed)."""

    records: list[dict]
    decoded: int = 0
    reused: int = 0
    no_audio: int = 0
    remote: int = 0
    words_unmatched: int = 0


_worker: Recogniser | None = None


def _init_worker(config: RecogniserConfig) -> None:
    global _worker
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker = Recogniser(config)


def _decode_file(job: tuple[int, str]) -> tuple[int, dict]:
    i, path = job
    assert _worker is not None
    return i, asdict(_worker.decode(read_pcm(path)))


def _turn_key(rec: dict) -> str:
    return json.dumps([rec.get("dialogue_id"), rec.get("turn_index"), rec.get("audio")])


def _read_partial(path: Path, fp: str) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when the last run was killed
                continue
            if isinstance(entry, dict) and entry.get("fingerprint") == fp and "key" in entry:
                done[entry["key"]] = entry["result"]
    return done


def _decode_all(jobs: list[tuple[int, str]], config: RecogniserConfig) -> Iterator[tuple[int, dict]]:
    if config.workers == 1 or len(jobs) <= 1:
        _init_worker(config)
        for job in jobs:
            yield _decode_file(job)
        return
    yield from map_in_workers(_decode_file, jobs, workers=config.workers, initializer=_init_worker,
                              initargs=(config,))


def recognise_records(records: Sequence[dict], audio_root: str | Path, *, config: RecogniserConfig | None = None,
                      partial: str | Path | None = None, keep_nlu: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> RecognitionResult:
    """Recognise the audio of each record that has a local ``audio`` path (resolved under audio_root, never
    outside it) and write the results into a copy of it: asr_text (1-best), asr_confidence (its posterior),
    asr_word_confidence, asr_nbest ({text, score} objects) and speech_recognition (engine, LM, options). The
    NLU fields were computed from the previous transcript: they are dropped unless keep_nlu. partial: a file
    that collects results as they come (a rerun after an interruption decodes only the rest); deleted by the
    caller once the output is written. progress(done, total) after each turn."""
    config = config or RecogniserConfig()
    _pocketsphinx()
    desc = describe(config)
    fp = fingerprint(config)
    partial_path = Path(partial) if partial is not None else None
    done_before = _read_partial(partial_path, fp) if partial_path else {}
    out = [dict(r) for r in records]
    result = RecognitionResult(records=out)
    jobs: list[tuple[int, str]] = []
    results: dict[int, dict] = {}
    for i, rec in enumerate(out):
        audio = rec.get("audio")
        if not isinstance(audio, str):
            result.no_audio += 1
        elif is_audio_url(audio):
            result.remote += 1
        elif _turn_key(rec) in done_before:
            results[i] = done_before[_turn_key(rec)]
            result.reused += 1
        else:
            try:
                jobs.append((i, str(resolve_audio(audio, audio_root))))
            except AudioPathError as exc:
                raise RecognitionError(f"dialogue {rec.get('dialogue_id')!r} turn {rec.get('turn_index')}: "
                                       f"{exc}") from None
    missing = [out[i] for i, path in jobs if not Path(path).is_file()]
    if missing:
        raise RecognitionError(f"{len(missing):,} turns name audio files that do not exist under {audio_root}, "
                               f"e.g. {missing[0].get('audio')!r}")
    total = len(results) + len(jobs)
    if progress:
        progress(len(results), total)
    sink = open(partial_path, "a", encoding="utf-8") if partial_path else None  # noqa: SIM115
    try:
        for i, res in _decode_all(jobs, config):
            results[i] = res
            result.decoded += 1
            if sink:
                sink.write(json.dumps({"key": _turn_key(out[i]), "fingerprint": fp, "result": res}) + "\n")
                sink.flush()
            if progress:
                progress(len(results), total)
    finally:
        if sink:
            sink.close()
    for i, res in results.items():
        rec = out[i]
        rec["asr_text"] = res["text"]
        rec["asr_confidence"] = res["confidence"]
        rec["asr_nbest"] = res["nbest"] or None
        rec["asr_word_confidence"] = res["word_confidence"]
        if res["word_confidence"] is None:
            result.words_unmatched += 1
        rec[RECOGNITION_FIELD] = desc
        if not keep_nlu:
            for f in NLU_FIELDS:
                rec.pop(f, None)
    return result
