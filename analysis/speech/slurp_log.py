"""Speech logs built on SLURP sentences: a stated, seeded subset of one split's utterances, each said once by
a simulated speaker whose voice (accent, variant, speed, pitch) follows from its id; the speakers are chosen so
every accent has as many. The records are text only until ``synthesize_records`` and ``recognise_records`` give
them audio and a real recognition. Speakers and voices are SIMULATED (ids ``sim-...``); sentences, gold intents
and slots are SLURP's.

The evaluation split (slurp_id % 5 == 0) is for measuring only: its logs get dialogue ids ``eval-speech-...``
and ``slurp_split: "eval"`` on every record, and nothing here writes them anywhere but where the caller says.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analysis.slurp import SPLITS, TEST_FILE, gold_slots, in_split, read_jsonl
from analysis.speech.voices import ACCENTS, voice_for

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def split_utterances(slurp_dir: str | Path, split: str) -> list[dict]:
    """The test.jsonl utterances of one split ("dev": slurp_id % 5 != 0, "eval": == 0), by slurp_id."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = [u for _, u in read_jsonl(Path(slurp_dir) / TEST_FILE, ("slurp_id", "sentence", "scenario", "action",
                                                                   "tokens", "entities"))
            if in_split(int(u["slurp_id"]), split)]
    return sorted(rows, key=lambda u: int(u["slurp_id"]))


def simulated_speakers(n_per_accent: int, *, split: str, seed: int) -> list[str]:
    """Speaker ids, n_per_accent for each accent of voices.ACCENTS (voice_for decides the accent, so ids are
    tried in order and kept while their accent has room), in the order found."""
    if n_per_accent < 1:
        raise ValueError(f"n_per_accent must be at least 1, got {n_per_accent}")
    count = dict.fromkeys(ACCENTS, 0)
    out: list[str] = []
    k = 0
    while len(out) < n_per_accent * len(ACCENTS):
        sid = f"sim-{split}-{seed}-{k:05d}"
        k += 1
        accent = voice_for(sid).accent
        if count[accent] < n_per_accent:
            count[accent] += 1
            out.append(sid)
    return out


def slurp_speech_records(slurp_dir: str | Path, *, split: str, utterances: int, seed: int = 0,
                         speakers_per_accent: int = 8) -> list[dict]:
    """Text-only turn records for ``utterances`` sentences of a SLURP split (all if fewer), sampled with
    random.Random(f"turnlens-speech-{split}-{seed}") and dealt round-robin to the simulated speakers after a
    shuffle. asr_text is empty until recognised. One turn per dialogue: the sentences are independent."""
    if utterances < 1:
        raise ValueError(f"utterances must be at least 1, got {utterances}")
    pool = split_utterances(slurp_dir, split)
    rng = random.Random(f"turnlens-speech-{split}-{seed}")  # a str seed hashes with sha512: stable across runs
    chosen = sorted(rng.sample(pool, min(utterances, len(pool))), key=lambda u: int(u["slurp_id"]))
    order = list(range(len(chosen)))
    rng.shuffle(order)
    speakers = simulated_speakers(speakers_per_accent, split=split, seed=seed)
    speaker_of = {i: speakers[k % len(speakers)] for k, i in enumerate(order)}
    prefix = "eval-speech-" if split == "eval" else "speech-"
    out = []
    for i, u in enumerate(chosen):
        sid = speaker_of[i]
        out.append({
            "dialogue_id": f"{prefix}{int(u['slurp_id']):06d}",
            "turn_index": 0,
            "timestamp": (START + timedelta(seconds=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "asr_text": "",
            "reference_text": str(u["sentence"]),
            "user_id": sid,
            "speaker_id": sid,
            "locale": "en-US",
            "gold_intent": f"{u['scenario']}_{u['action']}",
            "gold_slots": gold_slots(u),
            "slurp_id": int(u["slurp_id"]),
            "slurp_split": split,
        })
    return out
