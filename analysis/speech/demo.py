"""The bundled speech demo (sample_data/speech_demo/): a few hundred dialogue turns whose reference texts are real
SLURP dev-pool sentences, said by simulated speakers (espeak-ng), stored as Ogg Vorbis, and recognised for real
by pocketsphinx from those very files (1-best, 10-best with scores, utterance and word posteriors).

What is real and what is simulated, per turn (sample_data/README.md says it for readers):
* real: ``reference_text``, ``gold_intent`` and ``gold_slots`` (SLURP's annotation of the sentence); the
  recognition (``asr_text``, ``asr_confidence``, ``asr_nbest``, ``asr_word_confidence``: pocketsphinx 5.1.1 with
  an in-domain 3-gram LM built from SLURP's training text, which includes these dev sentences, so its WER is
  optimistic); the NLU is a real but simple classifier run on that recognition (``DemoNLU``: a linear SVM over
  TF-IDF features trained on SLURP dev sentences, and slot values looked up in a gazetteer of training slots;
  none of the demo's own sentences is in its training text);
* synthetic: the audio (``audio_source: "synthetic"``, with ``speech_synthesis`` saying how it was made);
* simulated: users, speakers and their voices, devices, places, voice embeddings, dialogues (a defective turn
  is usually followed by another sentence of the same gold intent), timestamps, skills, responses, entity
  resolution, TTS, barge-ins and feedback (``analysis.simulate``'s machinery, fed with this demo's real
  recognition and NLU), so ``gold_failure_point`` is real for ASR and NLU (SLURP's rule on this recognition) and
  simulated for ENTITY_RESOLUTION, RESPONSE and TTS. No false wakes or cut-off requests (both need a turn
  without its spoken request).

SLURP's evaluation split (slurp_id % 5 == 0) never enters the demo: ``check_no_evaluation`` refuses a record of
it, by id and (given the evaluation sentences) by text, before anything is rendered and again before the log is
written. Deterministic: every draw is seeded per dialogue, sox runs in repeatable mode without dither, and the
decoder is reset before each turn, so a rebuild with the same tools gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.slurp import failure_label, is_eval_utterance
from analysis.speech.audio import require_tools, run_tool
from analysis.speech.lm import EvaluationTextError, normalise
from analysis.speech.recognition import RecogniserConfig, package_version, recognise_records
from analysis.speech.synthesis import SYNTHESIS_FIELD, SynthesisConfig, synthesize_records

DEMO_PREFIX = "speech-demo"  # the folder under the audio root: audio paths are "speech-demo/<hash>.ogg"
LOG_FILE = "turns.jsonl.gz"
AUDIO_DIR = "audio"  # <out>/audio is itself an audio root: <out>/audio/speech-demo/<hash>.ogg
MANIFEST_FILE = "manifest.json"
START = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
SPAN_SECONDS = 14 * 24 * 3600
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoConfig:
    """How the demo is built. turns: the most turns (the last dialogues end early once it is reached);
    dialogues: how many start; sentences: the dev-pool sentences dialogues draw from (a seeded sample; the NLU
    never trains on them); users: simulated accounts (1-3 speakers each, ``analysis.simulate.build_population``);
    snr_db / pad_seconds: white noise and silence of each rendering (as the speech benchmark: pocketsphinx does
    much worse on noiseless espeak-ng audio); vorbis_quality: sox's -C for Ogg Vorbis (0: about 36 kbit/s at
    16 kHz mono; -1 saves a fifth of the bytes but raised the WER from 0.53 to 0.61 in a trial); max_bytes: the
    budget of log plus audio, refused above it; workers: parallel rendering and decoding."""

    turns: int = 260
    dialogues: int = 130
    sentences: int = 600
    users: int = 40
    seed: int = 0
    snr_db: float = 30.0
    pad_seconds: float = 0.4
    vorbis_quality: int = 0
    nbest: int = 10
    max_bytes: int = 4_000_000
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("turns", "dialogues", "sentences", "users", "nbest", "max_bytes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not -1 <= self.vorbis_quality <= 10:
            raise ValueError(f"vorbis_quality must be in -1..10, got {self.vorbis_quality}")


# ---------------------------------------------------------------------------------- the evaluation split


def check_no_evaluation(records: Iterable[dict], forbidden: frozenset[str] | None = None) -> None:
    """Raise EvaluationTextError if any record belongs to SLURP's evaluation split: a slurp_id with
    slurp_id % 5 == 0, ``slurp_split: "eval"``, or (when forbidden, the normalised evaluation sentences of
    ``analysis.speech.lm.evaluation_sentences``, is given) a reference_text equal to an evaluation sentence."""
    bad = []
    for r in records:
        sid = r.get("slurp_id")
        text = r.get("reference_text")
        if (sid is not None and is_eval_utterance(int(sid))) or r.get("slurp_split") == "eval" or (
                forbidden is not None and isinstance(text, str) and normalise(text) in forbidden):
            bad.append(r)
    if bad:
        raise EvaluationTextError(f"{len(bad):,} records are from SLURP's evaluation split (e.g. slurp_id "
                                  f"{bad[0].get('slurp_id')}: {bad[0].get('reference_text')!r}); the speech demo "
                                  "is built from the dev pool only")


# ------------------------------------------------------------------------------------------------ the NLU


@dataclass(frozen=True)
class Sentence:
    """A sentence with its SLURP annotation: what the demo's speakers say and what the NLU learns from."""

    slurp_id: int
    text: str
    intent: str
    slots: tuple[tuple[str, str], ...]  # (type, value)


@dataclass(frozen=True)
class NLUResult:
    """domain, intent: None for an empty text. confidence: the intent's share of a softmax over the classifier's
    scores (0..1, higher is surer; not calibrated). slots: (type, value) pairs found in the text."""

    domain: str | None
    intent: str | None
    slots: tuple[tuple[str, str], ...]
    confidence: float | None


class DemoNLU:
    """A small, transparent NLU for the demo: the intent from a linear SVM (scikit-learn's LinearSVC) over TF-IDF
    of words, word pairs and character 2-5-grams; slots are training slot values found in the text as whole words
    (longest first, no overlaps), kept only with a slot type the intent was seen with in training. Not SLURP's
    HerMiT: weaker (0.80 intent accuracy on the demo's reference sentences, 0.57 slot precision and recall),
    but it runs on whatever the recogniser heard."""

    TEMPERATURE = 0.25  # of the softmax over the SVM's scores that makes the confidence (a squashing, uncalibrated)

    def __init__(self, training: Sequence[Sentence]):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline, make_union
        from sklearn.svm import LinearSVC

        if not training:
            raise ValueError("the NLU needs training sentences")
        features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b[\w']+\b"),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))
        self._model = make_pipeline(features, LinearSVC(C=1.0, random_state=0))
        self._model.fit([s.text.lower() for s in training], [s.intent for s in training])
        types: dict[str, Counter] = {}
        self._types_of_intent: dict[str, set[str]] = {}
        for s in training:
            for t, v in s.slots:
                value = " ".join(v.lower().split())
                if value:
                    types.setdefault(value, Counter())[t] += 1
                    self._types_of_intent.setdefault(s.intent, set()).add(t)
        # each value's types, most frequent first (ties by name, so the order never depends on the input's)
        self._gazetteer = {v: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
                           for v, c in types.items()}
        self._longest = max((len(v.split()) for v in self._gazetteer), default=0)

    def predict(self, texts: Sequence[str]) -> list[NLUResult]:
        """One result per text; an empty text (the recogniser heard nothing) gets no intent."""
        said = [i for i, t in enumerate(texts) if t.split()]
        out = [NLUResult(None, None, (), None)] * len(texts)
        if not said:
            return out
        scores = np.asarray(self._model.decision_function([texts[i].lower() for i in said]))
        if scores.ndim == 1:  # two intents: one score, for the second
            scores = np.stack([-scores, scores], axis=1)
        classes = self._model.classes_
        for i, row in zip(said, scores, strict=True):
            best = int(np.argmax(row))
            z = np.exp((row - row[best]) / self.TEMPERATURE)
            intent = str(classes[best])
            out[i] = NLUResult(intent.split("_", 1)[0], intent, self._slots(texts[i], intent),
                               round(float(1.0 / z.sum()), 3))
        return out

    def _slots(self, text: str, intent: str) -> tuple[tuple[str, str], ...]:
        words = text.lower().split()
        allowed = self._types_of_intent.get(intent, set())
        used = [False] * len(words)
        found: list[tuple[int, str, str]] = []
        for n in range(min(self._longest, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                if any(used[i:i + n]):
                    continue
                value = " ".join(words[i:i + n])
                kinds = [t for t in self._gazetteer.get(value, ()) if t in allowed]
                if kinds:
                    found.append((i, kinds[0], value))
                    used[i:i + n] = [True] * n
        return tuple((t, v) for _, t, v in sorted(found))


# ------------------------------------------------------------------------------------------- the dialogues


@dataclass(eq=False)
class _Dialogue:
    """One dialogue as it unfolds round by round: its speaker, device, seeded draws and the turns so far."""

    index: int
    dialogue_id: str
    user_id: str
    speaker: object  # analysis.simulate.Speaker
    device: str
    rng: random.Random
    noise: np.random.Generator
    when: float
    next: Sentence | None
    goal_start: bool = True
    turns: list[dict] = field(default_factory=list)


def _sentences_from_pool(pool: Sequence[dict]) -> list[Sentence]:
    """One Sentence per slurp_id of a recording pool (``analysis.simulate.load_pool``), by slurp_id."""
    seen: dict[int, Sentence] = {}
    for r in pool:
        sid = int(r["slurp_id"])
        if sid not in seen:
            seen[sid] = Sentence(sid, str(r["reference_text"]), str(r["gold_intent"]),
                                 tuple((s["type"], s["value"]) for s in r["gold_slots"]))
    return [seen[k] for k in sorted(seen)]


def _speaker_id(simulated_id: str) -> str:
    return f"sim-demo-{simulated_id}"  # simulated speaker ids start with sim- (docs/speech.md)


def _start_dialogues(sentences: list[Sentence], config: DemoConfig) -> list[_Dialogue]:
    from analysis.simulate import build_population

    users = build_population(n_users=config.users, seed=config.seed)
    out = []
    for d in range(config.dialogues):
        rng = random.Random(f"turnlens-speech-demo-{config.seed}-{d}")  # a str seed: stable across runs
        # users drawn uniformly, not by their simulated activity: a demo wants many voices more than realistic skew
        user = users[int(rng.random() * len(users))]
        speaker = user.speakers[0] if len(user.speakers) == 1 else rng.choices(
            user.speakers, weights=(0.6, 0.3, 0.1)[: len(user.speakers)])[0]
        device = user.devices[int(rng.random() * len(user.devices))]
        when = START.timestamp() + (d + rng.random()) / config.dialogues * SPAN_SECONDS
        out.append(_Dialogue(d, f"sd-{d:04d}", _speaker_id(user.user_id), speaker, device, rng,
                             np.random.default_rng([config.seed, 3, d]), when, rng.choice(sentences)))
    return out


def _request(d: _Dialogue) -> dict:
    """The turn's record before it is rendered and recognised."""
    s = d.next
    assert s is not None
    return {"dialogue_id": d.dialogue_id, "turn_index": len(d.turns),
            "timestamp": datetime.fromtimestamp(d.when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "asr_text": "", "reference_text": s.text, "user_id": d.user_id,
            "speaker_id": _speaker_id(d.speaker.speaker_id), "slurp_id": s.slurp_id, "slurp_split": "dev"}


def _finish(d: _Dialogue, said: Sentence, rec: dict, heard: NLUResult, alt: NLUResult, on_reference: NLUResult,
            by_intent: dict[str, list[Sentence]]) -> None:
    """Complete one turn from its real recognition and NLU (the simulated parts through analysis.simulate), then
    decide what the speaker says next, if anything."""
    from analysis import simulate as sim

    failure = failure_label(gold_intent=said.intent, nlu_intent=heard.intent, gold_nlu_intent=on_reference.intent,
                            asr_text=rec["asr_text"], reference_text=said.text)
    slots = [{"type": t, "value": v} for t, v in heard.slots]
    (prepared,) = sim._prepare([{  # the simulator's view of this turn: a "recording" with this turn's real outputs
        "slurp_id": said.slurp_id, "file": rec["audio"], "reference_text": said.text, "asr_text": rec["asr_text"],
        "nlu_domain": heard.domain, "nlu_intent": heard.intent, "nlu_slots": slots, "gold_intent": said.intent,
        "gold_slots": [{"type": t, "value": v} for t, v in said.slots], "gold_nlu_intent": on_reference.intent,
        "alt_intent": alt.intent, "failure": failure}])
    # n_asr_words 0: the simulator never cuts this request short (that would change the real transcript)
    (failure, _, _, _, _, _, er_status, skill, answer, response_status, tts_status) = sim._turn(
        d.rng, dataclasses.replace(prepared, n_asr_words=0), False, sorted(sim.SKILLS))
    lat, lon = d.speaker.latitude, d.speaker.longitude
    if d.device in sim.MOBILE_DEVICES:
        jitter = d.noise.normal(0.0, sim.MOBILE_SD_KM / sim.KM_PER_DEGREE, 2)
        lat, lon = round(lat + float(jitter[0]), 5), round(lon + float(jitter[1]), 5)
    embedding = np.asarray(d.speaker.embedding) + d.noise.normal(0.0, sim.TURN_SD, len(d.speaker.embedding))
    u = d.rng.random()
    defect = failure != "NO_FAILURE"
    turn = {
        "dialogue_id": rec["dialogue_id"], "turn_index": rec["turn_index"], "timestamp": rec["timestamp"],
        "asr_text": rec["asr_text"], "user_id": rec["user_id"], "device_type": d.device, "locale": sim.LOCALE,
        "speaker_id": rec["speaker_id"], "latitude": lat, "longitude": lon,
        "asr_confidence": None if rec["asr_confidence"] is None else round(rec["asr_confidence"], 4),
        "reference_text": said.text, "asr_nbest": rec["asr_nbest"], "nlu_domain": heard.domain,
        "nlu_intent": heard.intent, "nlu_slots": slots, "nlu_confidence": heard.confidence,
        "nlu_alt_intent": alt.intent, "er_status": er_status, "response_skill": skill, "response_text": answer,
        "response_status": response_status, "tts_status": tts_status,
        "barge_in": d.rng.random() < sim.P_BARGE_IN[failure],
        "user_feedback": ("negative" if u < sim.P_NEGATIVE[failure]
                          else "positive" if not defect and u > 1.0 - sim.P_POSITIVE else None),
        "speaker_embedding": [round(float(x), 4) for x in embedding],
        "gold_intent": said.intent, "gold_slots": [{"type": t, "value": v} for t, v in said.slots],
        "gold_goal_start": d.goal_start, "gold_goal_success": False,  # set once the dialogue has ended
        "gold_failure_point": failure, "gold_skills": list(prepared.gold_skills),
        "audio": rec["audio"], "audio_source": rec["audio_source"],
        "asr_word_confidence": (None if rec["asr_word_confidence"] is None
                                else [round(p, 4) for p in rec["asr_word_confidence"]]),
        "slurp_id": said.slurp_id, "slurp_split": "dev",
        SYNTHESIS_FIELD: rec[SYNTHESIS_FIELD], "speech_recognition": rec["speech_recognition"],
    }
    d.turns.append(turn)
    d.when += 2.0 + min(d.rng.expovariate(0.25), 20.0)  # a few seconds to the next request
    d.next, d.goal_start = None, False
    if len(d.turns) >= sim.MAX_TURNS:
        return
    if defect and d.rng.random() < sim.P_REPHRASE:
        others = [s for s in by_intent[said.intent] if s.slurp_id != said.slurp_id]
        if others:  # the user asks again in other words: another sentence of the same gold intent
            d.next = d.rng.choice(others)
            return
    if d.rng.random() < sim.P_ANOTHER_GOAL:
        d.next, d.goal_start = d.rng.choice([s for v in by_intent.values() for s in v]), True


# -------------------------------------------------------------------------------------- audio and the build


def encode_vorbis(wav: Path, out: Path, *, quality: int) -> None:
    """WAV -> Ogg Vorbis at sox's quality -C, byte for byte reproducible: -R (repeatable mode: a fixed Ogg stream
    serial number, which is random otherwise), -D (no dither), no comment. Written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".partial-{out.name}")
    try:
        run_tool(["sox", "-R", "-q", "-D", str(wav), "-C", str(quality), "--comment", "", str(tmp)],
                 what=f"encoding {wav.name}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _tool_version(name: str) -> str:
    first = run_tool([name, "--version"], what=f"{name} --version").decode(errors="replace").split("\n")[0]
    return next((w.lstrip("v") for w in first.replace(":", " ").split() if w.lstrip("v")[:1].isdigit()), "")


@dataclass
class DemoResult:
    """records: the log written; manifest: what manifest.json says (counts, WER, sizes, tools, LM provenance)."""

    records: list[dict]
    manifest: dict


def build_demo(pool: Sequence[dict], out_dir: str | Path, *, lm: str | Path, lm_provenance: dict,
               nlu_training: Sequence[Sentence], forbidden: frozenset[str] | None, config: DemoConfig | None = None,
               progress: Progress | None = None) -> DemoResult:
    """Build the demo into out_dir (emptied first): ``turns.jsonl.gz`` (format 1.1), ``audio/speech-demo/*.ogg``
    and ``manifest.json``. pool: the dev recording pool (``analysis.simulate.load_pool``); lm: the in-domain ARPA
    LM (training text only), lm_provenance its ``<lm>.json``; nlu_training: the NLU's sentences (the demo's own
    sentences are removed from them here); forbidden: SLURP's normalised evaluation sentences (None: the id
    check only). Raises EvaluationTextError for any evaluation-split sentence, ValueError when the result is over
    ``config.max_bytes``, SpeechToolError / RecognitionError when a tool is missing or fails."""
    from analysis.logs import read_log
    from analysis.speech.logio import write_records

    config = config or DemoConfig()
    require_tools("espeak-ng", "sox")
    out = Path(out_dir)
    all_sentences = _sentences_from_pool(pool)
    check_no_evaluation(({"slurp_id": s.slurp_id, "reference_text": s.text} for s in all_sentences), forbidden)
    chosen = sorted(random.Random(f"turnlens-speech-demo-sentences-{config.seed}").sample(
        all_sentences, min(config.sentences, len(all_sentences))), key=lambda s: s.slurp_id)
    said_texts = {normalise(s.text) for s in chosen}
    nlu = DemoNLU([s for s in nlu_training if normalise(s.text) not in said_texts])
    by_intent: dict[str, list[Sentence]] = {}
    for s in chosen:
        by_intent.setdefault(s.intent, []).append(s)

    if out.exists():
        shutil.rmtree(out)
    audio_root = out / AUDIO_DIR
    audio_root.mkdir(parents=True)
    synth = SynthesisConfig(audio_format="wav", snr_db=config.snr_db, pad_seconds=config.pad_seconds,
                            seed=config.seed, workers=config.workers, prefix=DEMO_PREFIX)
    recogniser = RecogniserConfig(lm=str(lm), nbest=config.nbest, nbest_scan=max(200, config.nbest),
                                  workers=config.workers)
    encoding = {"format": "ogg", "codec": "vorbis", "quality": config.vorbis_quality,
                "encoder": f"sox {_tool_version('sox')}"}
    dialogues = _start_dialogues(chosen, config)
    total = 0
    with tempfile.TemporaryDirectory(prefix="turnlens-speech-demo-") as scratch:
        round_no = 0
        while True:
            pending = [d for d in dialogues if d.next is not None]
            for d in pending[config.turns - total:]:  # past the turn budget: these dialogues end here
                d.next = None
            pending = pending[: config.turns - total]
            if not pending:
                break
            round_no += 1
            said = [d.next for d in pending]
            requests = [_request(d) for d in pending]

            def report(stage: str, label: str = f"round {round_no}"):
                return (lambda done, n: progress(f"{stage} ({label})", done, n)) if progress else None

            rendered = synthesize_records(requests, scratch, config=synth, progress=report("synthesising")).records
            for rec in rendered:  # the WAV is a scratch file: the bundle holds, and the recogniser reads, the Ogg
                name = f"{DEMO_PREFIX}/{Path(rec['audio']).stem}.ogg"
                if not (audio_root / name).is_file():
                    encode_vorbis(Path(scratch) / rec["audio"], audio_root / name, quality=config.vorbis_quality)
                rec["audio"] = name
                rec[SYNTHESIS_FIELD] = {**rec[SYNTHESIS_FIELD], "encoding": encoding}
            heard = recognise_records(rendered, audio_root, config=recogniser, keep_nlu=True,
                                      progress=report("recognising")).records
            alt_texts = [next((h["text"] for h in r["asr_nbest"] or () if h["text"] != r["asr_text"]), "")
                         for r in heard]
            nlu_heard = nlu.predict([r["asr_text"] for r in heard])
            nlu_alt = nlu.predict(alt_texts)
            nlu_ref = nlu.predict([s.text for s in said])
            for i, d in enumerate(pending):
                _finish(d, said[i], heard[i], nlu_heard[i], nlu_alt[i], nlu_ref[i], by_intent)
            total += len(pending)

    from analysis.simulate import goal_success

    records: list[dict] = []
    for d in dialogues:
        if not d.turns:
            continue
        ok = goal_success([t["gold_failure_point"] for t in d.turns], [t["gold_goal_start"] for t in d.turns])
        for t, success in zip(d.turns, ok, strict=True):
            t["gold_goal_success"] = success
        records.extend(d.turns)
    check_no_evaluation(records, forbidden)
    log = out / LOG_FILE
    write_records(records, log)
    read_log(log)  # a valid format 1.1 log, or this says where it is not
    manifest = _manifest(records, out, config=config, lm_provenance=lm_provenance, encoding=encoding,
                         forbidden=forbidden, rounds=round_no)
    if manifest["bytes"]["total"] > config.max_bytes:
        raise ValueError(f"the speech demo takes {manifest['bytes']['total']:,} bytes, over its budget of "
                         f"{config.max_bytes:,}: fewer turns or a lower vorbis quality")
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return DemoResult(records, manifest)


def recognition_figures(records: Sequence[dict]) -> dict:
    """Pooled WER of the 1-best and of the best n-best entry (the oracle), the share of exact 1-bests, and the
    n-best lengths, over records with a reference text."""
    from analysis.wer import error_counts

    rows = [r for r in records if isinstance(r.get("reference_text"), str)]
    refs = [r["reference_text"] for r in rows]
    s, d, i, n = error_counts(refs, [r["asr_text"] for r in rows])
    oracle = 0
    for r, ref in zip(rows, refs, strict=True):
        texts = [h["text"] for h in r.get("asr_nbest") or ()] or [r["asr_text"]]
        os_, od, oi, _ = error_counts([ref] * len(texts), texts)
        oracle += int((os_ + od + oi).min())
    words = int(n.sum())
    lengths = [len(r.get("asr_nbest") or ()) for r in rows]
    return {"turns": len(rows), "reference_words": words,
            "wer_1best": round(float((s + d + i).sum()) / words, 4) if words else None,
            "wer_nbest_oracle": round(oracle / words, 4) if words else None,
            "exact_1best_share": round(float(np.mean([(e == 0) for e in (s + d + i)])), 4) if rows else None,
            "nbest_mean_length": round(float(np.mean(lengths)), 2) if lengths else None,
            "with_word_posteriors": sum(r.get("asr_word_confidence") is not None for r in rows)}


def _manifest(records: list[dict], out: Path, *, config: DemoConfig, lm_provenance: dict, encoding: dict,
              forbidden: frozenset[str] | None, rounds: int) -> dict:
    files = sorted((out / AUDIO_DIR).rglob("*.ogg"))
    audio_bytes = sum(f.stat().st_size for f in files)
    log_bytes = (out / LOG_FILE).stat().st_size
    intents_right = sum(r["nlu_intent"] == r["gold_intent"] for r in records)
    return {
        "what": "turnlens speech demo: real SLURP dev-pool sentences, synthetic audio (espeak-ng, simulated "
                "speakers), real pocketsphinx recognition of the bundled Ogg files, a simple real NLU on it, the "
                "rest of each record simulated (sample_data/README.md)",
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "workers"},  # never changes a result
        "rounds": rounds,
        "dialogues": len({r["dialogue_id"] for r in records}),
        "turns": len(records),
        "speakers": len({r["speaker_id"] for r in records}),
        "audio_files": len(files),
        "bytes": {"audio": audio_bytes, "log": log_bytes, "total": audio_bytes + log_bytes,
                  "largest_audio_file": max((f.stat().st_size for f in files), default=0)},
        "audio_seconds": round(sum(ogg_seconds(f) for f in files), 1),
        "recognition": recognition_figures(records),
        "nlu_intent_accuracy": round(intents_right / len(records), 4) if records else None,
        "failure_points": dict(sorted(Counter(r["gold_failure_point"] for r in records).items())),
        "tools": {"espeak-ng": records[0][SYNTHESIS_FIELD]["engine"] if records else None,
                  "encoder": encoding["encoder"], "pocketsphinx": package_version()},
        "lm": {k: v for k, v in lm_provenance.items() if k != "path"},
        "evaluation_check": ("passed: no slurp_id % 5 == 0" + (
            f" and none of the {len(forbidden):,} evaluation-split sentences" if forbidden is not None
            else " (the evaluation sentences were not available: checked by id only)")),
        "log_sha256": hashlib.sha256((out / LOG_FILE).read_bytes()).hexdigest(),
    }


_OGG_PAGE = re.compile(rb"OggS\x00")  # capture pattern and version 0; the granule position follows the flags byte


def ogg_seconds(path: str | Path, rate: int = 16_000) -> float:
    """The length of an Ogg Vorbis file at ``rate`` samples per second, from its last page's granule position
    (the number of samples so far), without decoding."""
    data = Path(path).read_bytes()
    last = max((m.start() for m in _OGG_PAGE.finditer(data)), default=None)
    if last is None:
        return 0.0
    return max(int.from_bytes(data[last + 6:last + 14], "little", signed=True), 0) / rate


# ------------------------------------------------------------------------------------------- from SLURP


def slurp_nlu_training(slurp_dir: str | Path, pool: Sequence[dict]) -> list[Sentence]:
    """The NLU's training sentences: SLURP's devel.jsonl and the dev pool's sentences (the demo's own are removed
    by build_demo), with SLURP's intents and slots."""
    from analysis.slurp import gold_slots, read_jsonl

    out = [Sentence(int(u["slurp_id"]), str(u["sentence"]), f"{u['scenario']}_{u['action']}",
                    tuple((s["type"], s["value"]) for s in gold_slots(u)))
           for _, u in read_jsonl(Path(slurp_dir) / "devel.jsonl",
                                  ("slurp_id", "sentence", "scenario", "action", "tokens", "entities"))]
    return out + _sentences_from_pool(pool)
