"""Voice embeddings from audio (`turnlens speech embed`, analysis/speech/embeddings.py): resemblyzer's encoder run
for real on a few espeak-ng turns; per-speaker means written to every turn of the speaker, unit norm, 256-d; the log
still a valid format 1.1 log; resuming and determinism; and the Disparity analysis taking 256-d embeddings."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pytest

from analysis.logs import read_log
from tests.helpers import make_turn, write_jsonl

SENTENCES = ["turn on the kitchen lights", "what is the weather tomorrow", "play some jazz music",
             "set an alarm for seven in the morning", "remind me to call my sister tonight"]
SPEAKERS = ["ann", "ben", "cat", "dan", "eve"]
# Five speakers, two turns each, a false wake of ann's (no text, so no audio: it still gets ann's mean), and
# a speaker whose only turn has no audio (no embedding: the 3-d one make_turn gives is removed).
TURNS = [make_turn(f"d-{s}", i, reference_text=SENTENCES[(k + i) % len(SENTENCES)], speaker_id=s, user_id=f"u-{s}")
         for k, s in enumerate(SPEAKERS) for i in range(2)]
TURNS += [make_turn("d-ann", 2, reference_text=None, speaker_id="ann", user_id="u-ann"),
          make_turn("d-zed", 0, reference_text=None, speaker_id="zed", user_id="u-zed")]


def _tools_or_skip() -> None:
    from analysis.speech.embeddings import available

    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if (why := available()) is not None:
        missing.append(f"resemblyzer ({why})")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing in CI: make install should have installed them")
        pytest.skip(f"{', '.join(missing)} not installed (make install)")


def speech(*argv: str) -> int:
    """`turnlens speech ...` through the real command line (app/cli.py)."""
    from app import cli

    return cli.main(["speech", *argv])


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The turns synthesised and embedded through the command line: (folder, audio root, output records)."""
    _tools_or_skip()
    tmp = tmp_path_factory.mktemp("embed")
    root = tmp / "audio"
    write_jsonl(tmp / "in.jsonl", TURNS)
    assert speech("synthesize", str(tmp / "in.jsonl"), "--out", str(tmp / "syn.jsonl"), "--audio-root", str(root),
                  "--snr-db", "30", "--quiet") == 0
    assert speech("embed", str(tmp / "syn.jsonl"), "--out", str(tmp / "emb.jsonl.gz"), "--audio-root", str(root),
                  "--quiet") == 0
    assert not (tmp / "emb.jsonl.gz.partial.jsonl").exists()  # removed once the output is written
    return tmp, root, read_log(tmp / "emb.jsonl.gz").table.to_pylist()  # read_log: a valid format 1.1 log


def test_each_speaker_gets_one_unit_norm_256d_mean(embedded):
    _, _, rows = embedded
    by_speaker: dict[str, list] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker_id"], []).append(r["speaker_embedding"])
    assert by_speaker.pop("zed") == [None]  # no audio at all: no embedding, the earlier 3-d one removed
    assert set(by_speaker) == set(SPEAKERS) and len(by_speaker["ann"]) == 3  # the false wake has ann's mean too
    means = {}
    for s, vectors in by_speaker.items():
        assert all(v == vectors[0] for v in vectors), s  # identical on every turn of the speaker
        v = np.asarray(vectors[0])
        assert v.shape == (256,) and np.isfinite(v).all() and (v >= 0).all()  # the encoder ends in a ReLU
        assert abs(np.linalg.norm(v) - 1.0) < 1e-5
        means[s] = v
    assert len({tuple(v) for v in means.values()}) == len(SPEAKERS)  # different voices, different means


def test_the_output_matches_the_json_schema_and_says_which_encoder(embedded):
    import jsonschema

    from analysis.log_format import json_schema

    tmp, _, _ = embedded
    records = [json.loads(line) for line in gzip.open(tmp / "emb.jsonl.gz", "rt", encoding="utf-8")]
    validator = jsonschema.Draft202012Validator(json_schema())
    for rec in records:
        assert not list(validator.iter_errors(rec)), rec["dialogue_id"]
    ann = [r for r in records if r["speaker_id"] == "ann"]
    assert {r["speech_embedding"]["turns_averaged"] for r in ann} == {2}
    assert ann[0]["speech_embedding"]["encoder"].startswith("resemblyzer 0.1.4")
    assert "speech_embedding" not in next(r for r in records if r["speaker_id"] == "zed")


def test_resume_and_determinism(embedded):
    """A partial file from an interrupted run is used (nothing embedded again); one worker gives the same numbers
    as two."""
    from analysis.speech.embeddings import EmbeddingConfig, embed_records
    from analysis.speech.logio import read_records

    tmp, root, _ = embedded
    records = read_records(tmp / "syn.jsonl")
    partial = tmp / "again.partial.jsonl"
    first = embed_records(records, root, config=EmbeddingConfig(workers=1), partial=partial)
    assert (first.embedded, first.reused, first.no_audio, first.speakers, first.speakers_without) == (10, 0, 2, 5, 1)
    again = embed_records(records, root, config=EmbeddingConfig(workers=2), partial=partial)
    assert (again.embedded, again.reused) == (0, 10)
    assert [r["speaker_embedding"] for r in first.records] == [r["speaker_embedding"] for r in again.records]
    cli = [json.loads(line) for line in gzip.open(tmp / "emb.jsonl.gz", "rt", encoding="utf-8")]  # 2 workers
    assert [r["speaker_embedding"] for r in first.records] == [r["speaker_embedding"] for r in cli]
    # a turn's own embedding is nearer its speaker's mean than the other speakers' means, for most turns
    means = first.speaker_embeddings
    own = [max(means, key=lambda s: float(v @ means[s])) == first.records[i]["speaker_id"]
           for i, v in first.turn_embeddings.items()]
    assert sum(own) >= len(own) // 2


def test_silence_has_no_voice():
    from analysis.speech.embeddings import VoiceEmbedder, available

    if (why := available()) is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    embedder = VoiceEmbedder()
    assert embedder.embed_pcm(np.zeros(16_000, dtype=np.int16)) is None
    assert embedder.embed_pcm(b"") is None


def test_missing_audio_is_a_usage_error(embedded, capsys):
    tmp, root, _ = embedded
    rec = make_turn("d-x", 0, speaker_id="x", audio="synthetic/00/nothing-here.wav", audio_source="synthetic")
    write_jsonl(tmp / "missing.jsonl", [rec])
    assert speech("embed", str(tmp / "missing.jsonl"), "--out", str(tmp / "m.jsonl"), "--audio-root", str(root),
                  "--quiet") == 2
    assert "does not exist" in capsys.readouterr().err
    assert speech("embed", str(tmp / "missing.jsonl"), "--out", str(tmp / "m.txt"), "--quiet") == 2


def test_the_disparity_analysis_takes_256d_embeddings(embedded):
    """The stored turns' columns as the Disparity page reads them (speaker_table_from_turns), then the whole
    analysis: automatic cohorts over the 256-d means, and a UMAP-free path through every cohorting."""
    from analysis.disparity import cohorts as co
    from analysis.disparity import report as dr

    _, _, rows = embedded
    rows = [r for r in rows if r["reference_text"]]  # the turns a WER is computed for
    n = len(rows)
    turns = pa.table({
        "speaker_id": [r["speaker_id"] for r in rows], "wer_sub": [i % 3 for i in range(n)],
        "wer_del": [0] * n, "wer_ins": [0] * n, "wer_ref_words": [len(r["reference_text"].split()) for r in rows],
        "latitude": [r["latitude"] for r in rows], "longitude": [r["longitude"] for r in rows],
        "speaker_embedding": pa.array([r["speaker_embedding"] for r in rows], type=pa.list_(pa.float32())),
    })
    table = dr.speaker_table_from_turns(turns)
    assert table.embedding.shape == (5, 256)
    fit = co.kmeans_cohorts(table.embedding, k_range=range(2, 4), seed=0)
    assert fit.centroids.shape == (fit.k, 256) and len(fit.labels) == 5
    report = dr.analyse(table, dr.Options(k=1, n_boot=20, stability_refits=2, cohorts=2))
    assert report.cohort_fit is not None and report.cohort_fit.k == 2
    assert len(report.labels[dr.AUTOMATIC]) == 5
