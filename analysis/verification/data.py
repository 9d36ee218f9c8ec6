"""The verification study's speakers and turns: simulated espeak-ng voices saying distinct sentences of the bundled
SLURP dev pool, split into training and held-out speakers (disjoint, stratified by accent), synthesised and
embedded per turn with resemblyzer, cached under data/cache/verification/ (git-ignored)."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from analysis.slurp import is_eval_utterance

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DATA_VERSION = 1  # part of the cache key: bump when the records change shape


def dev_sentences() -> list[tuple[int, str]]:
    """Distinct (slurp_id, sentence) of the bundled dev pool, by slurp_id; raises on any evaluation-split id."""
    from analysis.simulate import load_pool

    seen: dict[int, str] = {}
    for rec in load_pool():
        sid = int(rec["slurp_id"])
        if is_eval_utterance(sid):
            raise ValueError(f"slurp_id {sid} is in the evaluation split: the verification study reads dev text only")
        seen.setdefault(sid, str(rec["reference_text"]))
    return sorted(seen.items())


def study_records(*, speakers_per_accent: int, turns: int, seed: int) -> list[dict]:
    """Text-only turns: ``turns`` per simulated speaker (``speakers_per_accent`` per accent), every turn a
    different sentence (no two turns share one, so a same-sentence pair never looks like a same-speaker pair),
    a seeded sample of the dev pool. One turn per dialogue, ids ``verif-<speaker>-<turn>``."""
    from analysis.speech.slurp_log import simulated_speakers

    speakers = simulated_speakers(speakers_per_accent, split="dev", seed=seed)
    pool = dev_sentences()
    need = len(speakers) * turns
    if need > len(pool):
        raise ValueError(f"{need} sentences needed, the dev pool has {len(pool)}")
    chosen = random.Random(f"turnlens-verification-{seed}").sample(pool, need)  # str seed: stable across runs
    out = []
    for i, sid in enumerate(speakers):
        for t in range(turns):
            slurp_id, sentence = chosen[i * turns + t]
            out.append({"dialogue_id": f"verif-{sid}-{t}", "turn_index": 0,
                        "timestamp": (START + timedelta(seconds=30 * len(out))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "asr_text": "", "reference_text": sentence, "user_id": sid, "speaker_id": sid,
                        "locale": "en-US", "slurp_id": slurp_id, "slurp_split": "dev"})
    return out


def split_speakers(speakers: Sequence[str], strata: Sequence[str], *, held_out: float, seed: int
                   ) -> tuple[list[str], list[str]]:
    """(training, held-out) speaker ids: within each stratum (accent) a seeded shuffle, the first
    round(held_out * size) held out. Disjoint by construction."""
    by: dict[str, list[str]] = {}
    for s, g in zip(speakers, strata, strict=True):
        by.setdefault(str(g), [])
        if s not in by[str(g)]:
            by[str(g)].append(str(s))
    rng = random.Random(f"turnlens-verification-split-{seed}")
    train, test = [], []
    for g in sorted(by):
        members = sorted(by[g])
        rng.shuffle(members)
        cut = round(held_out * len(members))
        test += members[:cut]
        train += members[cut:]
    return sorted(train), sorted(test)


@dataclass
class TurnEmbeddings:
    """Per-turn resemblyzer embeddings of the study's records: x (n, 256) float32 unit vectors, the speaker and
    slurp_id of each row, and how they were made."""

    x: np.ndarray
    speakers: np.ndarray
    slurp_ids: np.ndarray
    meta: dict


def cache_key(records: Sequence[dict], *, snr_db: float, pad_seconds: float, seed: int) -> str:
    from analysis.speech.embeddings import fingerprint

    h = hashlib.sha256(json.dumps([DATA_VERSION, snr_db, pad_seconds, seed, fingerprint()]).encode())
    for r in records:
        h.update(json.dumps([r["speaker_id"], r["reference_text"]]).encode())
    return h.hexdigest()[:16]


def embed_study(records: Sequence[dict], cache_dir: Path, *, snr_db: float, pad_seconds: float, seed: int,
                workers: int, fresh: bool = False,
                progress: Callable[[str, int, int], None] | None = None) -> TurnEmbeddings:
    """Synthesise (FLAC under cache_dir/audio) and embed every record's turn, or read them from
    cache_dir/turns-<key>.npz. fresh: ignore the cache and render into a temporary folder (what --check does).
    progress(stage, done, total)."""
    import tempfile

    from analysis.speech.embeddings import EmbeddingConfig, describe, embed_records
    from analysis.speech.synthesis import SYNTHESIS_FIELD, SynthesisConfig, synthesize_records

    key = cache_key(records, snr_db=snr_db, pad_seconds=pad_seconds, seed=seed)
    path = Path(cache_dir) / f"turns-{key}.npz"
    if not fresh and path.exists():
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return TurnEmbeddings(x=z["x"], speakers=z["speakers"].astype(object), slurp_ids=z["slurp_ids"],
                              meta={**meta, "from_cache": True})
    scratch = tempfile.TemporaryDirectory(prefix="turnlens-verification-") if fresh else None
    root = Path(scratch.name) if scratch else Path(cache_dir) / "audio"
    try:
        t0 = time.time()
        synth = synthesize_records(records, root, config=SynthesisConfig(
            snr_db=snr_db, pad_seconds=pad_seconds, seed=seed, workers=workers, audio_format="flac"),
            progress=(lambda d, t: progress("synthesising", d, t)) if progress else None)
        t1 = time.time()
        res = embed_records(synth.records, root, config=EmbeddingConfig(workers=workers),
                            progress=(lambda d, t: progress("embedding", d, t)) if progress else None)
        t2 = time.time()
    finally:
        if scratch:
            scratch.cleanup()
    missing = [i for i in range(len(records)) if i not in res.turn_embeddings]
    if missing:
        raise RuntimeError(f"{len(missing)} turns got no embedding (no voice found), e.g. record {missing[0]}")
    x = np.stack([res.turn_embeddings[i] for i in range(len(records))]).astype(np.float32)
    speakers = np.array([r["speaker_id"] for r in records], dtype=str)
    slurp_ids = np.array([int(r["slurp_id"]) for r in records], dtype=np.int64)
    meta = {"key": key, "synthesis_engine": synth.records[0][SYNTHESIS_FIELD]["engine"], "embedding": describe(),
            "synthesis_seconds": t1 - t0, "embedding_seconds": t2 - t1, "rendered": synth.rendered}
    if not fresh:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, speakers=speakers, slurp_ids=slurp_ids, meta=json.dumps(meta))
        tmp.replace(path)
    return TurnEmbeddings(x=x, speakers=speakers.astype(object), slurp_ids=slurp_ids,
                          meta={**meta, "from_cache": False})
