"""Offline speech: voices per speaker, real espeak-ng synthesis and pocketsphinx recognition of three turns (through
`turnlens speech`), resuming, order independence, and in-domain LMs that never contain evaluation-split text."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from analysis.logs import read_log
from analysis.speech import lm as speech_lm
from analysis.speech.voices import ACCENTS, VARIANTS, Voice, voice_for
from tests.helpers import SLURP_DIR, make_turn, speech_tools_or_skip, write_jsonl

needs_slurp = pytest.mark.skipif(not (SLURP_DIR / "test.jsonl").is_file(), reason=f"SLURP not found at {SLURP_DIR}")




@pytest.fixture(scope="module")
def tools():
    speech_tools_or_skip()


def speech(*argv: str) -> int:
    """`turnlens speech ...` through the real command line (app/cli.py)."""
    from app import cli

    return cli.main(["speech", *argv])


# ------------------------------------------------------------------------------------------------ voices


def test_voice_for_is_deterministic_and_covers_every_accent_and_variant():
    assert voice_for("s1") == voice_for("s1")
    voices = [voice_for(f"speaker-{i}") for i in range(400)]
    assert {v.accent for v in voices} == set(ACCENTS) and {v.variant for v in voices} == set(VARIANTS)
    assert all(140 <= v.speed <= 190 and 30 <= v.pitch <= 70 for v in voices)
    with pytest.raises(ValueError):
        Voice("en-xx", "m1", 150, 50)
    with pytest.raises(ValueError):
        voice_for("")


def test_every_accent_takes_its_variant(tools):
    """espeak-ng drops the variant of a voice given by name ("en-gb+f4"): every accent must sound different with
    another variant (voice files are used for that reason)."""
    from analysis.speech.synthesis import render

    for accent in ACCENTS:
        a = render("hello there", Voice(accent, "m1", 160, 50), pad_seconds=0)
        b = render("hello there", Voice(accent, "f4", 160, 50), pad_seconds=0)
        assert hashlib.sha256(a.tobytes()).digest() != hashlib.sha256(b.tobytes()).digest(), accent


def test_rendering_is_reproducible_with_noise(tools):
    from analysis.speech.synthesis import render

    v = Voice("en-us", "m3", 170, 45)
    a = render("set an alarm for seven", v, snr_db=20, noise_seed=3)
    assert (a == render("set an alarm for seven", v, snr_db=20, noise_seed=3)).all()  # no sox dither
    assert not (a == render("set an alarm for seven", v, snr_db=20, noise_seed=4)).all()
    assert len(a) > 2 * 0.4 * 16_000


# ------------------------------------------------------------------------------ synthesize + recognise


THREE = [make_turn("sp1", 0, reference_text="turn on the kitchen lights", speaker_id="alice"),
         make_turn("sp1", 1, reference_text="what is the weather tomorrow", speaker_id="alice"),
         make_turn("sp2", 0, reference_text="play some jazz music", speaker_id="bob"),
         make_turn("sp3", 0, reference_text=None, speaker_id="carol")]  # a false wake: nothing to say


@pytest.fixture(scope="module")
def lm_file(tmp_path_factory, tools):
    """A small in-domain LM over training sentences: the three turns' texts, ~60 of their kind, and 170 sentences
    of dictionary words drawn at random (pocketsphinx takes 10-25 s to load an LM of only a few dozen n-grams,
    training its quantizer; about 1 s with these)."""
    out = tmp_path_factory.mktemp("lm") / "tiny.arpa"
    text = [r["reference_text"] for r in THREE if r.get("reference_text")]
    for place in ("kitchen", "bedroom", "hall", "garden", "office"):
        text += [f"turn {how} the {place} lights" for how in ("on", "off")] + [f"dim the {place} lights"]
    for day in ("today", "tomorrow", "on monday", "this weekend", "tonight"):
        text += [f"what is the weather {day}", f"will it rain {day}", f"what is on my calendar {day}"]
    for genre in ("jazz", "rock", "classical", "pop", "country"):
        text += [f"play some {genre} music", f"play {genre}", f"i want to hear {genre} songs"]
    text += [f"set an alarm for {h} {m}" for h in ("six", "seven", "eight", "nine") for m in ("am", "pm", "thirty")]
    from pocketsphinx import get_model_path

    with open(Path(get_model_path()) / "en-us" / "cmudict-en-us.dict", encoding="utf-8") as fh:
        words = [line.split()[0] for line, _ in zip(fh, range(20_000), strict=False) if line.split()[0].isalpha()]
    rng = random.Random(0)
    filler = [" ".join(rng.sample(words, 6)) for _ in range(170)]
    speech_lm.build_lm(text * 2 + filler, out, sources=["test"], forbidden=None)
    return out


def test_synthesize_then_recognise_three_turns_for_real(tmp_path, lm_file):
    root = tmp_path / "audio"
    src = write_jsonl(tmp_path / "in.jsonl", THREE)
    assert speech("synthesize", str(src), "--out", str(tmp_path / "syn.jsonl"), "--audio-root", str(root),
                  "--snr-db", "30", "--format", "flac", "--quiet") == 0
    syn = [json.loads(line) for line in (tmp_path / "syn.jsonl").read_text().splitlines()]
    assert [r.get("audio_source") for r in syn] == ["synthetic", "synthetic", "synthetic", None]
    assert "audio" not in syn[3]
    for r in syn[:3]:
        assert r["audio"].endswith(".flac") and (root / r["audio"]).is_file()
        assert r["speech_synthesis"]["speaker"] == r["speaker_id"]
        assert r["speech_synthesis"]["accent"] == voice_for(r["speaker_id"]).accent
    assert syn[0]["speech_synthesis"] == {**syn[1]["speech_synthesis"]}  # one speaker, one voice

    assert speech("recognise", str(tmp_path / "syn.jsonl"), "--out", str(tmp_path / "rec.jsonl.gz"),
                  "--audio-root", str(root), "--lm", str(lm_file), "--quiet") == 0
    table = read_log(tmp_path / "rec.jsonl.gz").table  # a valid format 1.1 log
    rows = table.to_pylist()
    for r in rows[:3]:
        assert r["asr_text"] and r["audio_source"] == "synthetic"
        assert 0 <= r["asr_confidence"] <= 1
        assert len(r["asr_word_confidence"]) == len(r["asr_text"].split())
        assert 1 <= len(r["asr_nbest"]) <= 10 and len(set(r["asr_nbest"])) == len(r["asr_nbest"])
        assert len(r["asr_nbest_score"]) == len(r["asr_nbest"])
        assert r["nlu_intent"] is None  # computed from the previous transcript: dropped
    assert rows[3]["asr_text"] == THREE[3]["asr_text"] and rows[3]["audio"] is None
    # With an in-domain LM this close to the sentences, at least one of the three is recognised exactly.
    assert any(r["asr_text"] == r["reference_text"] for r in rows[:3]), [r["asr_text"] for r in rows[:3]]
    assert not (tmp_path / "rec.jsonl.gz.partial.jsonl").exists()
    extras = json.loads(rows[0]["extras"])
    assert extras["speech_recognition"]["engine"].startswith("pocketsphinx")
    assert extras["speech_recognition"]["lm"]["name"] == "tiny.arpa"


def test_both_steps_resume_and_results_do_not_depend_on_order_or_workers(tmp_path, lm_file):
    from analysis.speech.recognition import RecogniserConfig, recognise_records
    from analysis.speech.synthesis import SynthesisConfig, synthesize_records

    root = tmp_path / "audio"
    first = synthesize_records(THREE, root, config=SynthesisConfig(snr_db=30))
    assert (first.rendered, first.reused, first.no_text) == (3, 0, 1)
    again = synthesize_records(THREE, root, config=SynthesisConfig(snr_db=30))
    assert (again.rendered, again.reused) == (0, 3)
    other = synthesize_records(THREE, root, config=SynthesisConfig(snr_db=20))  # another setting, other files
    assert other.rendered == 3 and other.records[0]["audio"] != first.records[0]["audio"]

    recs = first.records[:3]
    partial = tmp_path / "partial.jsonl"
    one = recognise_records(recs[:1], root, config=RecogniserConfig(lm=str(lm_file), workers=1), partial=partial)
    assert one.decoded == 1
    both = recognise_records(recs, root, config=RecogniserConfig(lm=str(lm_file), workers=2), partial=partial)
    assert (both.decoded, both.reused) == (2, 1)  # an interrupted run's work is not redone
    fresh = recognise_records(list(reversed(recs)), root, config=RecogniserConfig(lm=str(lm_file), workers=1))
    assert fresh.decoded == 3
    key = ("asr_text", "asr_nbest", "asr_word_confidence", "asr_confidence")
    assert [[r[k] for k in key] for r in both.records] == [[r[k] for k in key] for r in reversed(fresh.records)]


def test_recognise_never_reads_outside_the_audio_root(tmp_path, lm_file, tools):
    from analysis.speech.recognition import RecognitionError, recognise_records

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "x.wav").write_bytes(b"RIFF")
    (root / "link").symlink_to(outside)
    rec = make_turn("esc", 0, audio="link/x.wav")
    with pytest.raises(RecognitionError, match="outside the audio root"):
        recognise_records([rec], root)
    with pytest.raises(RecognitionError, match="do not exist"):
        recognise_records([make_turn("esc", 0, audio="missing.wav")], root)
    # A traversal in the log itself is refused when the log is read, before any decoding.
    bad = write_jsonl(tmp_path / "bad.jsonl", [make_turn("esc", 0, audio="../outside/x.wav")])
    assert speech("recognise", str(bad), "--out", str(tmp_path / "o.jsonl"), "--audio-root", str(root),
                  "--quiet") == 1


def test_cli_usage_errors(tmp_path, capsys, tools):
    src = write_jsonl(tmp_path / "in.jsonl", THREE[:1])
    assert speech("synthesize", str(src), "--out", str(tmp_path / "o.csv")) == 2
    assert speech("synthesize", str(src), "--out", str(tmp_path / "o.jsonl"), "--workers", "0") == 2
    assert speech("synthesize", str(src), "--out", str(tmp_path / "o.jsonl"), "--snr-db", "500") == 2
    assert speech("recognise", str(src), "--out", str(tmp_path / "o.jsonl"), "--lm", str(tmp_path / "no.arpa")) == 2
    bad = write_jsonl(tmp_path / "bad.jsonl", [make_turn("d", 0), make_turn("d", 1, asr_word_confidence=[2.0])])
    assert speech("synthesize", str(bad), "--out", str(tmp_path / "o.jsonl")) == 1
    assert "bad.jsonl:2: asr_word_confidence" in capsys.readouterr().err


# ------------------------------------------------------------------------- no evaluation text in any LM


@needs_slurp
def test_the_training_lm_holds_no_evaluation_split_text(tmp_path):
    train = speech_lm.slurp_training_sentences(SLURP_DIR)
    held = speech_lm.evaluation_sentences(SLURP_DIR)
    assert len(held) > 500 and not {speech_lm.normalise(s) for s in train} & held
    assert speech("lm", "--out", str(tmp_path / "dev.arpa"), "--slurp-dev", str(SLURP_DIR)) == 0
    info = speech_lm.provenance(tmp_path / "dev.arpa")
    assert info["evaluation_check"].startswith("passed") and info["sentences"] == len(train)
    # What the LM knows: words only the evaluation split uses are not in it, and the dev words are.
    train_words = {w for s in train for w in speech_lm.normalise(s).split()}
    eval_only = {w for s in held for w in s.split()} - train_words
    unigrams = speech_lm.arpa_unigrams(tmp_path / "dev.arpa")
    assert eval_only and not eval_only & unigrams
    assert train_words <= unigrams


@needs_slurp
def test_evaluation_text_is_refused_by_every_lm_route(tmp_path):
    held = sorted(speech_lm.evaluation_sentences(SLURP_DIR))
    with pytest.raises(speech_lm.EvaluationTextError):
        speech_lm.build_lm(["play some music", held[0].upper()], tmp_path / "x.arpa", sources=["t"],
                           forbidden=speech_lm.evaluation_sentences(SLURP_DIR))
    assert not (tmp_path / "x.arpa").exists()
    text = tmp_path / "t.txt"
    text.write_text(f"play some music\n{held[1]}\n")
    assert speech("lm", "--out", str(tmp_path / "t.arpa"), "--text", str(text), "--slurp-dir", str(SLURP_DIR)) == 1
    marked = write_jsonl(tmp_path / "m.jsonl", [make_turn("speech-1", 0, reference_text="play music",
                                                          slurp_split="eval")])
    assert speech("lm", "--out", str(tmp_path / "m.arpa"), "--log", str(marked), "--slurp-dir", str(SLURP_DIR)) == 1
    named = write_jsonl(tmp_path / "n.jsonl", [make_turn("eval-000001", 0, reference_text="play music")])
    assert speech("lm", "--out", str(tmp_path / "n.arpa"), "--log", str(named), "--slurp-dir", str(SLURP_DIR)) == 1
    assert not list(tmp_path.glob("*.arpa"))


@needs_slurp
def test_slurp_speech_records_sample_one_split_with_balanced_accents():
    from analysis.slurp import is_eval_utterance
    from analysis.speech.slurp_log import slurp_speech_records

    ev = slurp_speech_records(SLURP_DIR, split="eval", utterances=100, seed=0, speakers_per_accent=2)
    assert len(ev) == 100 and ev == slurp_speech_records(SLURP_DIR, split="eval", utterances=100, seed=0,
                                                         speakers_per_accent=2)
    assert all(is_eval_utterance(r["slurp_id"]) and r["slurp_split"] == "eval" for r in ev)
    assert all(r["dialogue_id"].startswith("eval-speech-") for r in ev)
    speakers = {r["speaker_id"] for r in ev}
    assert len(speakers) == 16 and all(s.startswith("sim-") for s in speakers)
    assert sorted(voice_for(s).accent for s in speakers) == sorted(list(ACCENTS) * 2)
    dev = slurp_speech_records(SLURP_DIR, split="dev", utterances=50, seed=0, speakers_per_accent=1)
    assert not any(is_eval_utterance(r["slurp_id"]) for r in dev)
    assert slurp_speech_records(SLURP_DIR, split="eval", utterances=100, seed=1)[0] != ev[0]


def test_benchmark_counts_oracle_and_first_entry():
    from analysis.speech.benchmark import utterance_counts

    recs = [{"reference_text": "turn on the lights", "asr_text": "turn of the lights",
             "asr_nbest": [{"text": "turn of the light", "score": -1}, {"text": "turn on the lights", "score": -2}]},
            {"reference_text": "play jazz", "asr_text": "play jazz", "asr_nbest": None},
            {"reference_text": "stop", "asr_text": "", "asr_nbest": [{"text": "top", "score": -1}]}]
    c = utterance_counts(recs)
    assert c["words"].tolist() == [4, 2, 1]
    assert c["errors"].tolist() == [1, 0, 1]
    assert c["nbest_first"].tolist() == [2, 2, 1]  # no n-best: an empty first entry
    assert c["oracle"].tolist() == [0, 2, 1]
    assert c["oracle_with_1best"].tolist() == [0, 0, 1]


def test_speech_paths_never_escape_or_collide(tmp_path):
    from analysis.log_format import audio_problem
    from analysis.speech.synthesis import SynthesisConfig, audio_name

    v = voice_for("x")
    names = {audio_name(t, v, SynthesisConfig()) for t in ("a", "b", "a ")}
    assert len(names) == 3 and all(audio_problem(n) is None for n in names)
    assert audio_name("a", v, SynthesisConfig(audio_format="ogg")).endswith(".ogg")
    for prefix in ("../up", "/abs", "a\\b", ""):
        with pytest.raises(ValueError):
            SynthesisConfig(prefix=prefix)


def test_speech_module_reads_no_database(tmp_path):
    """The speech commands work on files: nothing under analysis/speech or app/speech_cli.py opens DuckDB."""
    root = Path(__file__).resolve().parent.parent
    for path in [*sorted((root / "analysis" / "speech").glob("*.py")), root / "app" / "speech_cli.py"]:
        text = path.read_text()
        assert "duckdb" not in text and "app.store" not in text, path


@needs_slurp
def test_slurp_log_builds_a_recognised_speech_log_of_three_dev_turns(tmp_path, tools):
    out = tmp_path / "dev.jsonl.gz"
    assert speech("slurp-log", "--split", "dev", "--utterances", "3", "--speakers-per-accent", "1", "--out", str(out),
                  "--audio-root", str(tmp_path / "audio"), "--quiet") == 0
    rows = read_log(out).table.to_pylist()
    assert len(rows) == 3 and all(r["audio_source"] == "synthetic" and r["asr_nbest"] for r in rows)
    assert all(json.loads(r["extras"])["slurp_split"] == "dev" for r in rows)
    lm_info = speech_lm.provenance(tmp_path / "slurp-dev-3gram.arpa")
    assert lm_info["evaluation_check"].startswith("passed")
    sample = Path(__file__).resolve().parent.parent / "sample_data" / "eval-speech.jsonl"
    assert speech("slurp-log", "--split", "eval", "--utterances", "3", "--out", str(sample), "--quiet") == 2
    assert not sample.exists()


def test_compressed_audio_is_written_byte_for_byte_the_same(tools, tmp_path):
    """The same samples give the same file: Ogg Vorbis would otherwise get a random stream serial each time."""
    import numpy as np

    from analysis.speech.audio import write_audio

    pcm = (np.sin(np.arange(8000) / 5) * 3000).astype("int16")
    for fmt in ("ogg", "flac"):
        a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        write_audio(a, pcm, audio_format=fmt)
        write_audio(b, pcm, audio_format=fmt)
        assert a.read_bytes() == b.read_bytes(), fmt
