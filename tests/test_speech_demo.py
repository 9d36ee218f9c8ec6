"""The bundled speech demo (sample_data/speech_demo/, scripts/build_speech_demo.py): a valid format 1.1 log of full
turn records with real pocketsphinx n-best lists, every audio file present, Ogg, and within the size budget, no
SLURP evaluation-split sentence, a manifest that agrees with the log, and a rebuild of its first turns that gives
the bundled bytes (real espeak-ng, sox and pocketsphinx; skipped, saying why, when they or SLURP are missing)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import asdict

import pytest

from analysis.log_format import json_schema
from analysis.logs import read_log, resolve_audio
from analysis.speech import demo
from analysis.speech.lm import EvaluationTextError, evaluation_sentences, normalise
from tests.helpers import ROOT, SLURP_DIR, speech_tools_or_skip

DEMO = ROOT / "sample_data" / "speech_demo"
LOG = DEMO / demo.LOG_FILE
AUDIO_ROOT = DEMO / demo.AUDIO_DIR
BUDGET_BYTES = 5_000_000  # the repository's budget for the demo: log and audio together
FILE_BUDGET_BYTES = 40_000  # one turn's Ogg file (a 6 s request at quality 0 is about 27 KB)
needs_slurp = pytest.mark.skipif(not (SLURP_DIR / "test.jsonl").is_file(), reason=f"SLURP not found at {SLURP_DIR}")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    if not LOG.is_file():
        pytest.fail(f"{LOG} is missing: run python scripts/build_speech_demo.py")
    with gzip.open(LOG, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((DEMO / demo.MANIFEST_FILE).read_text())


def test_the_log_is_valid_format_1_1(records):
    import jsonschema

    parsed = read_log(LOG)  # the reader's own validation, FILE:LINE errors on any problem
    assert parsed.table.num_rows == len(records) >= 200
    validator = jsonschema.Draft202012Validator(json_schema())
    for rec in records:
        validator.validate(rec)


def test_every_turn_is_a_full_record_in_a_dialogue_of_a_few_turns(records):
    full = {"user_id", "speaker_id", "device_type", "latitude", "longitude", "reference_text", "nlu_intent",
            "nlu_slots", "nlu_confidence", "er_status", "response_skill", "response_text", "response_status",
            "tts_status", "barge_in", "speaker_embedding", "gold_intent", "gold_slots", "gold_goal_start",
            "gold_goal_success", "gold_failure_point", "gold_skills"}
    for rec in records:
        assert full <= rec.keys(), full - rec.keys()
        assert rec["speaker_id"].startswith("sim-")  # simulated speakers say so in their ids
    by_dialogue: dict[str, list[int]] = {}
    for rec in records:
        by_dialogue.setdefault(rec["dialogue_id"], []).append(rec["turn_index"])
    assert all(sorted(ix) == list(range(len(ix))) for ix in by_dialogue.values())
    lengths = Counter(len(ix) for ix in by_dialogue.values())
    assert sum(n for k, n in lengths.items() if k >= 2) >= 0.4 * len(by_dialogue), lengths
    assert max(lengths) <= 6
    # the failure points come from this recognition and NLU: ASR and NLU failures both occur, and successes
    points = Counter(r["gold_failure_point"] for r in records)
    assert points["ASR"] > 0 and points["NLU"] > 0 and points["NO_FAILURE"] > 0, points


def test_recognition_is_real_pocketsphinx_with_scored_nbest_lists_and_posteriors(records):
    for rec in records:
        assert rec["audio_source"] == "synthetic"
        assert rec["speech_recognition"]["engine"].startswith("pocketsphinx ")
        assert rec["speech_recognition"]["lm"]["name"] == "slurp-dev-3gram.arpa"
        assert rec["speech_synthesis"]["engine"].startswith("espeak-ng")
        nbest = rec["asr_nbest"]
        assert isinstance(nbest, list) and 2 <= len(nbest) <= 10
        assert all(isinstance(h["text"], str) and isinstance(h["score"], float) for h in nbest)
        assert len({h["text"] for h in nbest}) == len(nbest)  # distinct hypotheses
        assert 0 <= rec["asr_confidence"] <= 1
        if rec["asr_word_confidence"] is not None:
            assert len(rec["asr_word_confidence"]) == len(rec["asr_text"].split())
    # a recogniser, not a copy of the reference: many 1-bests differ from what was said, some are exact
    exact = sum(r["asr_text"] == r["reference_text"] for r in records)
    assert 0.05 * len(records) < exact < 0.6 * len(records)
    assert sum(r["asr_word_confidence"] is not None for r in records) > 0.9 * len(records)


def test_every_audio_file_exists_is_ogg_and_within_budget(records):
    names = {r["audio"] for r in records}
    assert all(n.startswith(f"{demo.DEMO_PREFIX}/") and n.endswith(".ogg") for n in names)
    for name in names:
        path = resolve_audio(name, AUDIO_ROOT)  # never outside the root
        assert path.is_file(), name
        assert path.read_bytes()[:4] == b"OggS", name
        assert path.stat().st_size < FILE_BUDGET_BYTES, (name, path.stat().st_size)
    bundled = {str(p.relative_to(AUDIO_ROOT)) for p in AUDIO_ROOT.rglob("*") if p.is_file()}
    assert bundled == names  # nothing bundled that no turn plays
    total = sum((AUDIO_ROOT / n).stat().st_size for n in names) + LOG.stat().st_size
    assert total < BUDGET_BYTES
    assert total <= demo.DemoConfig().max_bytes  # the build's own, tighter budget


def test_no_evaluation_split_sentence_is_in_the_demo(records):
    assert all(r["slurp_id"] % 5 != 0 and r["slurp_split"] == "dev" for r in records)
    demo.check_no_evaluation(records)


@needs_slurp
def test_no_evaluation_split_text_is_in_the_demo(records):
    forbidden = evaluation_sentences(SLURP_DIR)
    assert not {normalise(r["reference_text"]) for r in records} & forbidden
    demo.check_no_evaluation(records, forbidden)


def test_the_evaluation_check_refuses_by_id_split_and_text():
    ok = {"slurp_id": 11, "reference_text": "wake me up at seven"}
    demo.check_no_evaluation([ok], frozenset({"what's the time"}))
    for bad in ({"slurp_id": 10, "reference_text": "x"}, {**ok, "slurp_split": "eval"},
                {**ok, "reference_text": "What's  the time"}):
        with pytest.raises(EvaluationTextError):
            demo.check_no_evaluation([ok, bad], frozenset({"what's the time"}))


def test_the_manifest_describes_the_log(records, manifest):
    assert manifest["turns"] == len(records)
    assert manifest["log_sha256"] == hashlib.sha256(LOG.read_bytes()).hexdigest()
    assert manifest["recognition"] == demo.recognition_figures(records)
    assert manifest["recognition"]["wer_nbest_oracle"] < manifest["recognition"]["wer_1best"]
    assert manifest["lm"]["evaluation_check"].startswith("passed")
    assert manifest["evaluation_check"].startswith("passed")
    assert manifest["audio_files"] == len({r["audio"] for r in records})


def test_ogg_seconds_reads_the_length_without_decoding(records):
    lengths = [demo.ogg_seconds(AUDIO_ROOT / r["audio"]) for r in records[:20]]
    assert all(0.8 < s < 15 for s in lengths)  # 0.4 s of padding either side, a spoken request between


def test_the_nlu_runs_on_what_was_heard():
    training = [demo.Sentence(1, "wake me up at seven am", "alarm_set", (("time", "seven am"),)),
                demo.Sentence(2, "set an alarm for six", "alarm_set", (("time", "six"),)),
                demo.Sentence(3, "what's the weather in paris", "weather_query", (("place_name", "paris"),)),
                demo.Sentence(4, "will it rain today", "weather_query", (("date", "today"),))]
    nlu = demo.DemoNLU(training)
    alarm, weather, nothing = nlu.predict(["please wake me at seven am", "weather in paris today", ""])
    assert (alarm.intent, alarm.domain, alarm.slots) == ("alarm_set", "alarm", (("time", "seven am"),))
    # only slot types the intent was trained with: "today" is a date of weather_query, "paris" a place
    assert weather.intent == "weather_query" and set(weather.slots) == {("place_name", "paris"), ("date", "today")}
    assert 0 < alarm.confidence <= 1
    assert nothing == demo.NLUResult(None, None, (), None)


# ------------------------------------------------------------------------------------ the rebuild, for real




@needs_slurp
def test_a_rebuild_of_the_first_turns_gives_the_bundled_bytes(records, manifest, tmp_path):
    """The build with the bundled settings, stopped after 3 turns, makes exactly the bundled first turns of the
    first three dialogues: the same audio bytes and the same recognition, NLU and simulated fields (each dialogue
    draws from its own seeded generator). Only whether a goal succeeded differs: it depends on later turns."""
    speech_tools_or_skip()
    from analysis.simulate import load_pool
    from analysis.speech import lm as speech_lm

    lm = tmp_path / "slurp-dev-3gram.arpa"  # the name the bundled turns carry (its sha256 must match too)
    forbidden = speech_lm.evaluation_sentences(SLURP_DIR)
    info = speech_lm.build_lm(speech_lm.slurp_training_sentences(SLURP_DIR), lm, sources=["test"],
                              forbidden=forbidden)
    pool = load_pool()
    config = demo.DemoConfig(**{**manifest["config"], "turns": 3, "workers": 1})
    out = tmp_path / "demo"
    result = demo.build_demo(pool, out, lm=lm, lm_provenance=asdict(info),
                             nlu_training=demo.slurp_nlu_training(SLURP_DIR, pool), forbidden=forbidden,
                             config=config)
    bundled = {(r["dialogue_id"], r["turn_index"]): r for r in records}
    assert [(r["dialogue_id"], r["turn_index"]) for r in result.records] == [(f"sd-{i:04d}", 0) for i in range(3)]
    for rec in result.records:
        want = bundled[(rec["dialogue_id"], rec["turn_index"])]
        assert {k: v for k, v in rec.items() if k != "gold_goal_success"} == \
            {k: v for k, v in want.items() if k != "gold_goal_success"}
        fresh = (out / demo.AUDIO_DIR / rec["audio"]).read_bytes()
        assert fresh == (AUDIO_ROOT / rec["audio"]).read_bytes(), rec["audio"]
