"""The two n-best sources of the rescoring study (issue 19 item 2), reported separately and never pooled:

(a) REAL recognition of SYNTHESISED speech: SLURP sentences said by simulated speakers (espeak-ng, the voices of
    analysis/speech/voices.py) and recognised by pocketsphinx with 10-best lists and first-pass scores, the first
    pass using a 3-gram LM built from the rescoring LM's own training text (SLURP devel + non-evaluation test
    text, without the tuning subset). Two sets: the tuning subset (``is_tune_utterance``) and the evaluation split.
    Bootstrap unit: the simulated speaker. Generated once and cached under a fingerprint of every parameter.

(b) SIMULATED n-best lists around SLURP's REAL 1-best recognitions (multi_slurp_hermit_predictions.jsonl, one per
    test recording): the real 1-best first, alternatives made by substituting words with phonetically confusable
    words (pocketsphinx's pronunciation dictionary), the reference put in at a fixed rate, first-pass scores from a
    fixed rule. Every parameter is a constant below, set before any rescoring result was seen. SLURP has no
    speaker ids: the bootstrap unit is the utterance (slurp_id, all its recordings together).

Pure Python (no torch): the workbench and the tests import it. Nothing here reads or writes the evaluation split
for training: the evaluation lists are built only when asked for by name ("eval"), and tuning lists leave out
every utterance whose sentence equals an evaluation-split sentence (SLURP repeats short requests under other ids).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analysis.rescoring.rescore import MissingScoresError, NBest, nbest_from_turn
from analysis.rescoring.text import evaluation_sentences, is_tune_utterance, sentence_key, slurp_training_text, words
from analysis.slurp import is_eval_utterance

Progress = Callable[[str, int, int], None]
SUBSETS = ("tune", "eval")

# ----------------------------------------------------------------------------- (b) the simulation's parameters
# Fixed before any rescoring result was computed (docs/results/rescoring.md repeats them). Do not tune them on
# rescoring results: they define the simulated source, not the method.
SIM_N = 10  # hypotheses per list (at most: a 1-best with few confusable words gives a shorter list)
SIM_P_REFERENCE = 0.5  # P(the reference is in the list | the real 1-best is wrong); when it is right it is first
SIM_P_ALT_FROM_REFERENCE = 0.5  # in a list holding the reference: P(an alternative is built from it, not the 1-best)
SIM_SUBSTITUTIONS = {1: 0.6, 2: 0.3, 3: 0.1}  # words substituted per alternative (capped by the confusable words)
SIM_MAX_PHONE_EDITS = 1  # confusable: a pronunciation within 1 phone edit (substitution, insertion, deletion)
SIM_SCORE_PER_EDIT = 1.0  # first-pass score (nats) lost per word edit away from the real 1-best
SIM_SCORE_NOISE = 1.0  # plus this times an Exponential(1) draw per alternative (the real 1-best scores 0, the best)
SIM_ATTEMPTS = 20  # draws per missing alternative before a list is left shorter
SIM_SEED = 0
_WORD = re.compile(r"^[a-z][a-z']*$")


def simulation_parameters() -> dict:
    """The (b) simulation's parameters, as the report records them."""
    return {"n": SIM_N, "p_reference": SIM_P_REFERENCE, "p_alternative_from_reference": SIM_P_ALT_FROM_REFERENCE,
            "substitutions": {str(k): v for k, v in SIM_SUBSTITUTIONS.items()},
            "max_phone_edits": SIM_MAX_PHONE_EDITS, "score_per_edit": SIM_SCORE_PER_EDIT,
            "score_noise": SIM_SCORE_NOISE, "attempts": SIM_ATTEMPTS, "seed": SIM_SEED,
            "substitute_weights": "unigram probability in pocketsphinx's general en-us LM (en-us.lm.bin)",
            "dictionary": "pocketsphinx's cmudict-en-us.dict, words also in the general LM's vocabulary"}


# ----------------------------------------------------------------------------- confusable words

def pocketsphinx_model_dir() -> Path:
    """The en-us model folder inside the installed pocketsphinx package (dictionary, general LM)."""
    try:
        import pocketsphinx
    except ImportError:
        raise RuntimeError("pocketsphinx is not installed; install it with: "
                           "pip install -c constraints.txt pocketsphinx==5.1.1 (make install does)") from None
    return Path(os.path.dirname(pocketsphinx.__file__)) / "model" / "en-us"


def read_dictionary(path: str | Path) -> dict[str, set[tuple[str, ...]]]:
    """A pronunciation dictionary (CMUdict format: ``word(2) PH O N E S``) -> word -> its phone sequences
    (variants merged; pocketsphinx's copy carries no stress marks)."""
    out: dict[str, set[tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2 or parts[0].startswith(";;;"):
                continue
            word = re.sub(r"\(\d+\)$", "", parts[0]).lower()
            out.setdefault(word, set()).add(tuple(re.sub(r"\d", "", p) for p in parts[1:]))
    return out


def general_unigram_logprobs(words_: Iterable[str], model_dir: str | Path | None = None) -> dict[str, float]:
    """Natural-log unigram probabilities of words in pocketsphinx's general en-us LM (en-us.lm.bin; a general
    English LM, nothing of SLURP); words outside its vocabulary are left out."""
    from pocketsphinx import LogMath, NGramModel

    lm = NGramModel.readfile(str(Path(model_dir or pocketsphinx_model_dir()) / "en-us.lm.bin"))
    logmath = LogMath()
    out = {}
    for w in words_:
        p = lm.prob([w])
        if p > -500_000_000:  # pocketsphinx's log-zero (-536870912) marks a word outside the vocabulary
            out[w] = float(logmath.log_to_ln(p))
    return out


class Confusions:
    """Phonetically confusable words: v is a neighbour of w when some pronunciation of v is within
    ``max_edits`` (1) phone edits of some pronunciation of w (homophones included), v != w. Neighbours come from
    ``vocabulary`` (word -> weight, e.g. a unigram probability); ``neighbours(w)`` gives them with their weights
    normalised to sum 1 (empty for a word not in the dictionary)."""

    def __init__(self, prons: dict[str, set[tuple[str, ...]]], vocabulary: dict[str, float], *,
                 max_edits: int = SIM_MAX_PHONE_EDITS):
        if max_edits != 1:
            raise ValueError("only max_edits = 1 is implemented (all one-edit variants are enumerated)")
        self.prons = prons
        self.vocabulary = {w: float(p) for w, p in vocabulary.items() if w in prons and p > 0}
        self.phones = sorted({ph for w in self.vocabulary for p in prons[w] for ph in p})
        self.by_pron: dict[tuple[str, ...], list[str]] = {}
        for w in sorted(self.vocabulary):
            for p in prons[w]:
                self.by_pron.setdefault(p, []).append(w)
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}

    def _variants(self, p: tuple[str, ...]) -> set[tuple[str, ...]]:
        out = {p}
        for i in range(len(p)):
            out.add(p[:i] + p[i + 1:])
            for ph in self.phones:
                out.add(p[:i] + (ph,) + p[i + 1:])
        for i in range(len(p) + 1):
            for ph in self.phones:
                out.add(p[:i] + (ph,) + p[i:])
        return out

    def neighbours(self, word: str) -> tuple[list[str], np.ndarray]:
        """(words, probabilities) of word's confusable neighbours, sorted by word; probabilities sum to 1."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        found: set[str] = set()
        for p in self.prons.get(word, ()):
            for v in self._variants(p):
                found.update(self.by_pron.get(v, ()))
        found.discard(word)
        ws = sorted(found)
        weights = np.array([self.vocabulary[w] for w in ws], dtype=np.float64)
        out = (ws, weights / weights.sum() if len(ws) else weights)
        self._cache[word] = out
        return out


def default_confusions() -> Confusions:
    """Confusions over pocketsphinx's dictionary, neighbours drawn from the words of its general LM weighted by
    their unigram probability (SIM_MAX_PHONE_EDITS edits)."""
    d = pocketsphinx_model_dir()
    prons = read_dictionary(d / "cmudict-en-us.dict")
    logp = general_unigram_logprobs([w for w in prons if _WORD.match(w)], d)
    return Confusions(prons, {w: math.exp(lp) for w, lp in logp.items()})


# ----------------------------------------------------------------------------- (b) simulated lists

def _rng_for(key: str, seed: int) -> np.random.Generator:
    """A generator seeded by the list's own key: a list does not depend on the order lists are built in."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big"))


def _word_edits(a: Sequence[str], b: Sequence[str]) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(list(a), list(b)))


def _substitute(base: list[str], confusions: Confusions, rng: np.random.Generator) -> list[str] | None:
    """base with k words (k drawn from SIM_SUBSTITUTIONS, capped by the confusable positions) each replaced by a
    neighbour drawn by weight; None when no word of base has a neighbour."""
    positions = [i for i, w in enumerate(base) if confusions.neighbours(w)[0]]
    if not positions:
        return None
    ks, ps = zip(*sorted(SIM_SUBSTITUTIONS.items()), strict=True)
    k = min(int(rng.choice(ks, p=np.array(ps) / sum(ps))), len(positions))
    out = list(base)
    for i in rng.choice(positions, size=k, replace=False):
        ws, p = confusions.neighbours(base[int(i)])
        out[int(i)] = ws[int(rng.choice(len(ws), p=p))]
    return out


def simulate_nbest(one_best: str, reference: str, *, confusions: Confusions, key: str, seed: int = SIM_SEED
                   ) -> tuple[list[str], list[float], bool]:
    """One simulated n-best list around a real 1-best: (hypotheses, first-pass scores, reference inserted).

    * the real 1-best is first with score 0, the best of the list (so lam = beta = 0 keeps it);
    * when it differs from the reference, the reference is in the list with probability SIM_P_REFERENCE;
    * the other places (up to SIM_N in all) go to alternatives, each the 1-best (or, in a list holding the
      reference, with probability SIM_P_ALT_FROM_REFERENCE the reference) with 1-3 words substituted by
      confusable words (``Confusions``), distinct from every entry so far (SIM_ATTEMPTS draws per place);
    * every entry but the 1-best scores -(SIM_SCORE_PER_EDIT x its word edits from the 1-best +
      SIM_SCORE_NOISE x Exponential(1)), and the list is sorted by score (ties: in the order made).
    Seeded by (seed, key): the same key always gives the same list."""
    rng = _rng_for(key, seed)
    h0 = words(one_best.lower())
    ref = words(reference.lower())
    entries: list[list[str]] = [h0]
    inserted = False
    if ref != h0 and rng.random() < SIM_P_REFERENCE:
        entries.append(ref)
        inserted = True
    seen = {tuple(e) for e in entries}
    misses = 0
    while len(entries) < SIM_N and misses < SIM_ATTEMPTS * (SIM_N - len(entries)):
        base = ref if inserted and rng.random() < SIM_P_ALT_FROM_REFERENCE else h0
        alt = _substitute(base, confusions, rng)
        if alt is None or tuple(alt) in seen:
            misses += 1
            continue
        seen.add(tuple(alt))
        entries.append(alt)
    scores = [0.0] + [-(SIM_SCORE_PER_EDIT * _word_edits(e, h0) + SIM_SCORE_NOISE * float(rng.exponential(1.0)))
                      for e in entries[1:]]
    order = [0] + sorted(range(1, len(entries)), key=lambda i: -scores[i])
    return [" ".join(entries[i]) for i in order], [round(scores[i], 6) for i in order], inserted


def slurp_recordings(slurp_dir: str | Path, subset: str) -> list[dict]:
    """SLURP test recordings (``analysis.slurp.load_recordings``) of a subset: "tune" (``is_tune_utterance``,
    leaving out any whose sentence equals an evaluation-split sentence) or "eval" (the evaluation split)."""
    from analysis.slurp import load_recordings

    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    if subset == "eval":
        return load_recordings(slurp_dir, "eval")
    forbidden = evaluation_sentences(slurp_dir)
    return [r for r in load_recordings(slurp_dir, "dev")
            if is_tune_utterance(int(r["slurp_id"])) and sentence_key(r["reference_text"]) not in forbidden]


def simulated_lists(recordings: Sequence[dict], *, confusions: Confusions, seed: int = SIM_SEED) -> list[NBest]:
    """Source (b): one simulated NBest per recording (key: its audio file name). speaker None (SLURP has none);
    extra: slurp_id (the bootstrap unit), gold_intent, logged_intent (SLURP's HerMiT NLU on the real 1-best),
    reference_inserted."""
    out = []
    for r in recordings:
        hyps, scores, inserted = simulate_nbest(r["asr_text"], r["reference_text"], confusions=confusions,
                                                key=str(r["file"]), seed=seed)
        out.append(NBest(key=str(r["file"]), hypotheses=hyps, scores=scores, reference=r["reference_text"],
                         speaker=None, extra={"slurp_id": int(r["slurp_id"]), "gold_intent": r["gold_intent"],
                                              "logged_intent": r["nlu_intent"], "reference_inserted": inserted}))
    return out


# ----------------------------------------------------------------------------- (a) real recognition

@dataclass(frozen=True)
class SpeechSourceConfig:
    """Source (a). utterances: per subset, how many sentences (None: all; a seeded sample otherwise, the sample of
    analysis/speech/slurp_log.py); speakers_per_accent: simulated speakers per espeak-ng accent (8 accents);
    seed: sentences, speaker ids and noise; snr_db, pad_seconds: as the speech benchmark and the speech demo
    (white noise at 30 dB, 0.4 s of silence: pocketsphinx does much worse on clean espeak-ng audio); nbest: distinct
    hypotheses kept; workers: synthesis and decoding processes (not part of the fingerprint: results do not depend
    on it)."""

    eval_utterances: int | None = None
    tune_utterances: int | None = None
    speakers_per_accent: int = 8
    seed: int = 0
    snr_db: float = 30.0
    pad_seconds: float = 0.4
    nbest: int = 10
    workers: int = 1

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "workers"}


def first_pass_corpus(slurp_dir: str | Path) -> list[str]:
    """The text of source (a)'s first-pass LM: the rescoring LM's training text, i.e. SLURP devel + non-evaluation
    test sentences without the tuning subset (``slurp_training_text(exclude=is_tune_utterance)``), so neither the
    tuning nor the evaluation sentences are memorised by the first pass."""
    return slurp_training_text(slurp_dir, exclude=is_tune_utterance)[0]


def speech_records(slurp_dir: str | Path, subset: str, config: SpeechSourceConfig) -> list[dict]:
    """Text-only speech-log records (``analysis.speech.slurp_log.slurp_speech_records``) of a subset: "eval" is
    that function's evaluation split; "tune" is its dev pool (all of it, the same speakers' deal) kept to the
    tuning subset, leaving out sentences equal to an evaluation sentence, then sampled if asked."""
    import random

    from analysis.speech.slurp_log import slurp_speech_records

    if subset == "eval":
        return slurp_speech_records(slurp_dir, split="eval", utterances=config.eval_utterances or 10**6,
                                    seed=config.seed, speakers_per_accent=config.speakers_per_accent)
    if subset != "tune":
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    forbidden = evaluation_sentences(slurp_dir)
    recs = [r for r in slurp_speech_records(slurp_dir, split="dev", utterances=10**6, seed=config.seed,
                                            speakers_per_accent=config.speakers_per_accent)
            if is_tune_utterance(int(r["slurp_id"])) and sentence_key(r["reference_text"]) not in forbidden]
    if config.tune_utterances is not None and config.tune_utterances < len(recs):
        rng = random.Random(f"turnlens-rescoring-tune-{config.seed}")
        recs = sorted(rng.sample(recs, config.tune_utterances), key=lambda r: int(r["slurp_id"]))
    return recs


def lists_from_records(records: Sequence[dict]) -> list[NBest]:
    """Source (a)'s NBest per recognised record (``nbest_from_turn``: the logged 1-best put first where the n-best
    lacks it); a record whose decoder gave no n-best list is kept as a list of its 1-best alone (score 0,
    extra["no_nbest"]), so no utterance drops out of the evaluation. extra: slurp_id, gold_intent."""
    out = []
    for r in records:
        try:
            nb = nbest_from_turn(r)
        except MissingScoresError:
            nb = NBest(key=f"{r['dialogue_id']}:{r['turn_index']}", hypotheses=[r.get("asr_text") or ""],
                       scores=[0.0], reference=r["reference_text"], speaker=r.get("speaker_id"),
                       extra={"no_nbest": True})
        nb.extra.update(slurp_id=int(r["slurp_id"]), gold_intent=r.get("gold_intent"))
        out.append(nb)
    return out


def _sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def speech_fingerprint(slurp_dir: str | Path, config: SpeechSourceConfig) -> tuple[str, dict]:
    """(short fingerprint, what it covers): the source's parameters, the first-pass corpus, the tool versions."""
    from analysis.speech.recognition import RECOGNITION_VERSION, package_version
    from analysis.speech.synthesis import SYNTHESIS_VERSION, _engine

    spec = {"config": config.describe(), "corpus_sha256": _sha(first_pass_corpus(slurp_dir)),
            "synthesis_version": SYNTHESIS_VERSION, "recognition_version": RECOGNITION_VERSION,
            "pocketsphinx": package_version(), "espeak": _engine(), "format": "flac"}
    return _sha(spec)[:16], spec


def speech_lists(slurp_dir: str | Path, cache_dir: str | Path, config: SpeechSourceConfig, *,
                 progress: Progress | None = None) -> tuple[dict[str, list[NBest]], dict]:
    """Source (a): ({"tune": lists, "eval": lists}, info). Builds (or reuses, by fingerprint) under
    cache_dir/speech/<fingerprint>/: the first-pass ARPA LM (``first_pass_corpus``; build_lm refuses evaluation
    text), the recognised logs tune.jsonl and eval.jsonl; the audio goes to cache_dir/audio/ (content-addressed
    FLAC, reused across fingerprints). Decoding resumes from a partial file after an interruption. Never commit
    the cache: it holds evaluation-split audio and logs (data/ is git-ignored)."""
    from analysis.speech import lm as speech_lm
    from analysis.speech.logio import write_records
    from analysis.speech.recognition import RecogniserConfig, recognise_records
    from analysis.speech.synthesis import SynthesisConfig, synthesize_records

    fp, spec = speech_fingerprint(slurp_dir, config)
    root = Path(cache_dir) / "speech" / fp
    audio_root = Path(cache_dir) / "audio"
    root.mkdir(parents=True, exist_ok=True)
    lm_path = root / "first-pass.arpa"
    forbidden = speech_lm.evaluation_sentences(slurp_dir)
    corpus = first_pass_corpus(slurp_dir)
    tune_keys = {sentence_key(r["reference_text"]) for r in speech_records(slurp_dir, "tune", config)}
    if set(corpus) & tune_keys:  # the first pass must not have memorised the tuning sentences
        raise AssertionError("tuning sentences in the first-pass LM corpus")
    timings: dict[str, float] = {}
    if not lm_path.is_file():
        t0 = time.perf_counter()
        speech_lm.build_lm(corpus, lm_path, sources=["SLURP devel.jsonl",
                                                     "SLURP test.jsonl, slurp_id % 5 not in (0, 1)"],
                           forbidden=forbidden)
        timings["lm_seconds"] = time.perf_counter() - t0
    (root / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    out: dict[str, list[NBest]] = {}
    counts: dict[str, dict] = {}
    for subset in SUBSETS:
        log = root / f"{subset}.jsonl"
        if log.is_file():
            records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            counts[subset] = {"reused": True}
        else:
            records = speech_records(slurp_dir, subset, config)
            synth = SynthesisConfig(audio_format="flac", snr_db=config.snr_db, pad_seconds=config.pad_seconds,
                                    seed=config.seed, workers=config.workers, prefix="rescoring")
            t0 = time.perf_counter()
            s = synthesize_records(records, audio_root, config=synth,
                                   progress=(lambda d, n, s_=subset: progress(f"synthesising ({s_})", d, n))
                                   if progress else None)
            timings[f"{subset}_synthesis_seconds"] = time.perf_counter() - t0
            rc = RecogniserConfig(lm=str(lm_path), nbest=config.nbest, nbest_scan=max(200, config.nbest),
                                  workers=config.workers)
            t0 = time.perf_counter()
            partial = root / f"{subset}.partial.jsonl"
            r = recognise_records(s.records, audio_root, config=rc, partial=partial,
                                  progress=(lambda d, n, s_=subset: progress(f"recognising ({s_})", d, n))
                                  if progress else None)
            timings[f"{subset}_recognition_seconds"] = time.perf_counter() - t0
            records = r.records
            write_records(records, log)
            partial.unlink(missing_ok=True)
            counts[subset] = {"reused": False, "decoded": r.decoded, "reused_decodes": r.reused}
        out[subset] = lists_from_records(records)
    if timings:
        (root / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    elif (root / "timings.json").is_file():
        timings = json.loads((root / "timings.json").read_text())
    info = {"fingerprint": fp, "spec": spec, "lm": speech_lm.provenance(lm_path), "timings": timings,
            "cache": counts}
    return out, info


def check_subsets(lists_by_subset: dict[str, Sequence[NBest]]) -> None:
    """Raise AssertionError unless every "tune" list is a tuning-subset utterance and every "eval" list an
    evaluation-split one (by extra["slurp_id"])."""
    for subset, lists in lists_by_subset.items():
        for nb in lists:
            sid = int(nb.extra["slurp_id"])
            ok = is_eval_utterance(sid) if subset == "eval" else (is_tune_utterance(sid) and not is_eval_utterance(sid))
            if not ok:
                raise AssertionError(f"{subset} list {nb.key} has slurp_id {sid}")
