"""The SLURP loader: joins, the three-way failure label, the evaluation-split rule, errors naming files."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest

from analysis.slurp import (
    ALT_PREDICTIONS_FILE,
    ASR_PREDICTIONS_FILE,
    GOLD_PREDICTIONS_FILE,
    TEST_FILE,
    failure_label,
    in_split,
    load_recordings,
)

ROOT = Path(__file__).resolve().parent.parent
SLURP_DIR = ROOT.parent / "shared" / "datasets" / "slurp"
needs_slurp = pytest.mark.skipif(not (SLURP_DIR / TEST_FILE).is_file(),
                                 reason=f"SLURP files not found in {SLURP_DIR}")


# ---------------------------------------------------------------- a tiny hand-made SLURP directory

def _tokens(sentence: str) -> list[dict]:
    return [{"surface": w, "id": i, "lemma": w, "pos": "NN"} for i, w in enumerate(sentence.split())]


def _utt(slurp_id: int, sentence: str, scenario: str, action: str, entities: list[dict], files: list[str],
         intent: str | None = None) -> dict:
    return {"slurp_id": slurp_id, "sentence": sentence, "sentence_annotation": sentence,
            "intent": intent or f"{scenario}_{action}", "action": action, "scenario": scenario,
            "tokens": _tokens(sentence), "entities": entities,
            "recordings": [{"file": f, "wer": 0.0, "ent_wer": 0.0, "status": "correct"} for f in files]}


def _pred(scenario: str, action: str, entities: list[tuple[str, str]] = (), **key) -> dict:
    return {"scenario": scenario, "action": action,
            "entities": [{"type": t, "filler": v} for t, v in entities], **key}


def _write(path: Path, objs: list[dict]) -> None:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Utterances 1 and 2 (dev) and 5 (eval), with one recording of each failure kind."""
    _write(tmp_path / TEST_FILE, [
        _utt(1, "wake me up at five am", "alarm", "set", [{"span": [4, 5], "type": "time"}],
             ["a-clean.flac", "a-recovered.flac", "a-asr.flac", "a-missing.flac"]),
        # malformed "intent" field as in 37 real utterances: the gold intent comes from scenario/action
        _utt(2, "will it rain tomorrow", "weather", "query", [{"span": [2], "type": "weather_descriptor"},
                                                             {"span": [3], "type": "date"}],
             ["w-nlu.flac", "w-same-text.flac"], intent="query"),
        _utt(5, "mute please", "audio", "volume_mute", [], ["m.flac"]),
    ])
    _write(tmp_path / ASR_PREDICTIONS_FILE, [
        {"text": "wake me up at five am", **_pred("alarm", "set", [("time", "five am")],
                                                  file="a-clean.flac")},
        {"text": "wake me at five am", **_pred("alarm", "set", [("time", "five am")],
                                               file="a-recovered.flac")},
        {"text": "make me a five", **_pred("cooking", "recipe", file="a-asr.flac")},
        {"text": "will it rain tomorrow", **_pred("weather", "query", file="w-nlu.flac")},
        {"text": "will it rain tomorrow", **_pred("calendar", "query", file="w-same-text.flac")},
        {"text": "mute please", **_pred("audio", "volume_mute", file="m.flac")},
    ])
    _write(tmp_path / GOLD_PREDICTIONS_FILE, [
        _pred("alarm", "set", slurp_id="1"), _pred("weather", "query", slurp_id="2"),
        _pred("audio", "volume_mute", slurp_id="5"),
    ])
    _write(tmp_path / ALT_PREDICTIONS_FILE, [_pred("alarm", "query", file="a-asr.flac")])
    return tmp_path


def test_join_fields_and_slots(tiny: Path) -> None:
    recs = {r["file"]: r for r in load_recordings(tiny, "dev")}
    assert "a-missing.flac" not in recs  # no recogniser output: left out
    r = recs["a-recovered.flac"]
    assert r["slurp_id"] == 1 and r["reference_text"] == "wake me up at five am"
    assert r["asr_text"] == "wake me at five am"
    assert (r["nlu_domain"], r["nlu_intent"]) == ("alarm", "alarm_set")
    assert r["nlu_slots"] == [{"type": "time", "value": "five am"}]
    assert r["gold_slots"] == [{"type": "time", "value": "five am"}]  # two tokens joined by a space
    assert recs["w-nlu.flac"]["gold_intent"] == "weather_query"
    assert recs["w-nlu.flac"]["gold_slots"] == [{"type": "weather_descriptor", "value": "rain"},
                                                {"type": "date", "value": "tomorrow"}]
    assert recs["a-asr.flac"]["alt_intent"] == "alarm_query"
    assert recs["a-clean.flac"]["alt_intent"] is None


def test_failure_labels_on_hand_made_recordings(tiny: Path) -> None:
    labels = {r["file"]: r["failure"] for r in load_recordings(tiny, "dev")}
    assert labels == {
        "a-clean.flac": "NO_FAILURE",
        "a-recovered.flac": "NO_FAILURE",  # recognition error, intent still right
        "a-asr.flac": "ASR",  # wrong on the recognised text, right on the reference
        "w-nlu.flac": "NO_FAILURE",
        "w-same-text.flac": "NLU",  # perfect transcript: recognition cannot be to blame
    }


def test_failure_label_rule() -> None:
    def label(nlu: str, gold_nlu: str, asr: str = "x y", ref: str = "x z") -> str:
        return failure_label(gold_intent="a_b", nlu_intent=nlu, gold_nlu_intent=gold_nlu, asr_text=asr,
                             reference_text=ref)

    assert label("a_b", "c_d") == "NO_FAILURE"
    assert label("c_d", "a_b") == "ASR"
    assert label("c_d", "c_d") == "NLU"
    assert label("c_d", "a_b", asr="x z") == "NLU"


def test_split_rule(tiny: Path) -> None:
    assert {r["slurp_id"] for r in load_recordings(tiny, "dev")} == {1, 2}
    assert [r["slurp_id"] for r in load_recordings(tiny, "eval")] == [5]
    assert in_split(7, "dev") and not in_split(10, "dev") and in_split(10, "eval")
    with pytest.raises(ValueError, match="split"):
        load_recordings(tiny, "test")


@pytest.mark.parametrize("name", [TEST_FILE, ASR_PREDICTIONS_FILE, GOLD_PREDICTIONS_FILE,
                                  ALT_PREDICTIONS_FILE])
def test_missing_file_is_named(tiny: Path, name: str) -> None:
    (tiny / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        load_recordings(tiny, "dev")


def test_malformed_lines_are_named(tiny: Path) -> None:
    with open(tiny / ASR_PREDICTIONS_FILE, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match=rf"{ASR_PREDICTIONS_FILE}, line 7: not valid JSON"):
        load_recordings(tiny, "dev")
    _write(tiny / ASR_PREDICTIONS_FILE, [{"text": "hi", "scenario": "a", "entities": [], "file": "x.flac"}])
    with pytest.raises(ValueError, match=rf"{ASR_PREDICTIONS_FILE}, line 1: missing key\(s\) action"):
        load_recordings(tiny, "dev")


def test_missing_gold_prediction_is_an_error(tiny: Path) -> None:
    _write(tiny / GOLD_PREDICTIONS_FILE, [_pred("alarm", "set", slurp_id="1")])
    with pytest.raises(ValueError, match=rf"{GOLD_PREDICTIONS_FILE}: no prediction for slurp_id 2"):
        load_recordings(tiny, "dev")


# ---------------------------------------------------------------- the real files

@pytest.fixture(scope="module")
def real() -> dict[str, list[dict]]:
    return {split: load_recordings(SLURP_DIR, split) for split in ("dev", "eval")}


@needs_slurp
def test_real_counts_match_the_dataset_readme(real: dict[str, list[dict]]) -> None:
    recs = real["dev"] + real["eval"]
    assert len(recs) == 13_071 and len({r["file"] for r in recs}) == 13_071
    labels = collections.Counter(r["failure"] for r in recs)
    assert labels == {"NO_FAILURE": 10_239, "ASR": 1_156, "NLU": 1_676}
    no_failure = [r for r in recs if r["failure"] == "NO_FAILURE"]
    assert sum(r["asr_text"] == r["reference_text"] for r in no_failure) == 5_602  # clean; 4,637 recovered


@needs_slurp
def test_real_split_rule(real: dict[str, list[dict]]) -> None:
    assert real["dev"] and all(r["slurp_id"] % 5 != 0 for r in real["dev"])
    assert real["eval"] and all(r["slurp_id"] % 5 == 0 for r in real["eval"])
    assert len(real["dev"]) == 10_427 and len(real["eval"]) == 2_644
    assert real["dev"] == sorted(real["dev"], key=lambda r: (r["slurp_id"], r["file"]))


@needs_slurp
def test_real_hand_checked_recordings(real: dict[str, list[dict]]) -> None:
    """Checked by reading the four files by hand."""
    by_file = {r["file"]: r for r in real["dev"]}
    asr = by_file["audio-1502376954.flac"]  # "lower the overhead lights" heard as "what is the ..."
    assert asr["failure"] == "ASR" and asr["asr_text"] == "what is the overhead lights"
    assert (asr["nlu_intent"], asr["gold_nlu_intent"], asr["gold_intent"]) == (
        "iot_volume_other", "iot_hue_lightdim", "iot_hue_lightdim")
    assert asr["alt_intent"] == "iot_hue_lightdim"
    assert asr["gold_slots"] == [{"type": "house_place", "value": "overhead"}]
    same_text = by_file["audio-1497884153.flac"]  # "erase all", perfectly recognised, NLU said calendar
    assert same_text["failure"] == "NLU" and same_text["asr_text"] == same_text["reference_text"]
    gold_wrong = by_file["audio-1498565975-headset.flac"]  # NLU wrong on the reference sentence too
    assert gold_wrong["failure"] == "NLU" and gold_wrong["gold_nlu_intent"] == "music_query"
    assert gold_wrong["gold_intent"] == "play_audiobook"
    malformed = by_file["audio-1498576546.flac"]  # slurp_id 348: its "intent" field says just "query"
    assert malformed["gold_intent"] == "weather_query" and malformed["failure"] == "NO_FAILURE"
    assert malformed["nlu_slots"] == [{"type": "weather_descriptor", "value": "rain"},
                                      {"type": "date", "value": "tomorrow"}]


@needs_slurp
def test_real_alt_predictions_are_partial(real: dict[str, list[dict]]) -> None:
    recs = real["dev"] + real["eval"]
    missing = sum(r["alt_intent"] is None for r in recs)
    assert 0 < missing < 13_071 - 12_000  # the second recogniser covers 12,393 recordings


@needs_slurp
def test_real_copy_with_a_broken_file(tmp_path: Path) -> None:
    for name in (TEST_FILE, ASR_PREDICTIONS_FILE, GOLD_PREDICTIONS_FILE, ALT_PREDICTIONS_FILE):
        shutil.copyfile(SLURP_DIR / name, tmp_path / name)
    with open(tmp_path / GOLD_PREDICTIONS_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"scenario": "a", "action": "b", "entities": [], "slurp_id": "0"}\n')  # a duplicate key
    with pytest.raises(ValueError, match=rf"{GOLD_PREDICTIONS_FILE}, line 2975: duplicate slurp_id 0"):
        load_recordings(tmp_path, "dev")
