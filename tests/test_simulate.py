"""The dialogue simulator and the bundled sample data: determinism, format v1 validity, dialogue and goal
structure, the failure-point cascade, regions and cohorts served worse, and writing every log format."""

from __future__ import annotations

import collections
import csv
import gzip
import json
import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import jiwer
import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis import simulate
from analysis.log_format import FIELD_BY_NAME, FIELDS
from analysis.rewrites import meaning
from analysis.rewrites.rephrase import normalise
from analysis.simulate import (
    EMBEDDING_DIM,
    MAX_TURNS,
    POOL_FIELDS,
    SKILLS,
    START,
    WORSE_COHORT,
    WORSE_STATES,
    build_population,
    goal_success,
    load_eval_pool,
    load_pool,
    n_users_for,
    simulate_turns,
    write_log,
)

ROOT = Path(__file__).resolve().parent.parent
SLURP_DIR = ROOT.parent / "shared" / "datasets" / "slurp"
SAMPLE = ROOT / "sample_data"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
N = 20_000  # a simulated log big enough for rates, small enough to build in about a second


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return load_pool()


@pytest.fixture(scope="module")
def turns(pool: list[dict]) -> list[dict]:
    return list(simulate_turns(pool, n_turns=N, seed=0))


@pytest.fixture(scope="module")
def bundled() -> list[dict]:
    with gzip.open(SAMPLE / "turns.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def dialogues(records: list[dict]) -> list[list[dict]]:
    """Records grouped by dialogue, in file order; fails if a dialogue's turns are not adjacent."""
    out: list[list[dict]] = []
    seen: set[str] = set()
    for r in records:
        if out and out[-1][0]["dialogue_id"] == r["dialogue_id"]:
            out[-1].append(r)
        else:
            assert r["dialogue_id"] not in seen, f"dialogue {r['dialogue_id']} is split"
            seen.add(r["dialogue_id"])
            out.append([r])
    return out


def violations(rec: dict) -> list[str]:
    """What makes a record invalid against log format v1 (an independent re-reading of FIELDS)."""
    bad = [f"unknown field {k}" for k in rec if k not in FIELD_BY_NAME]
    for f in FIELDS:
        v = rec.get(f.name)
        if v is None:
            if f.required:
                bad.append(f"{f.name} missing")
            continue
        number = isinstance(v, int | float) and not isinstance(v, bool)
        ok = {
            "string": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": number and math.isfinite(v),
            "bool": isinstance(v, bool),
            "timestamp": isinstance(v, str) and bool(TIMESTAMP.match(v)),
            "string_list": isinstance(v, list) and all(isinstance(x, str) for x in v),
            "float_list": isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                      for x in v),
            "slots": isinstance(v, list) and all(isinstance(s, dict) and set(s) == {"type", "value"}
                                                 and all(isinstance(x, str) for x in s.values()) for s in v),
        }[f.kind]
        if not ok:
            bad.append(f"{f.name}: {v!r} is not {f.kind}")
            continue
        if f.minimum is not None and v < f.minimum or f.maximum is not None and v > f.maximum:
            bad.append(f"{f.name}: {v} out of range")
        if f.enum is not None and v not in f.enum:
            bad.append(f"{f.name}: {v!r} not in {f.enum}")
    return bad


# ---------------------------------------------------------------- the bundled files

def test_bundled_pool_is_dev_split_only(pool: list[dict]) -> None:
    assert len(pool) > 10_000
    assert all(r["slurp_id"] % 5 != 0 for r in pool)
    assert all(set(r) == set(POOL_FIELDS) for r in pool)
    assert {r["failure"] for r in pool} == {"NO_FAILURE", "ASR", "NLU"}


def test_bundled_files_are_small() -> None:
    sizes = [(SAMPLE / name).stat().st_size for name in ("slurp_pool.jsonl.gz", "turns.jsonl.gz")]
    assert sum(sizes) < 3_000_000
    assert (SAMPLE / "LICENSE-SLURP.txt").is_file() and (SAMPLE / "README.md").is_file()


def test_bundled_turns_are_what_the_simulator_makes(pool: list[dict], bundled: list[dict]) -> None:
    """The committed turns are what the committed pool gives (if not: python scripts/build_sample_data.py)."""
    assert len(bundled) == 3000
    assert bundled == list(simulate_turns(pool, n_turns=3000, seed=0))


def test_bundled_turns_are_valid(bundled: list[dict]) -> None:
    problems = [(r["dialogue_id"], r["turn_index"], v) for r in bundled for v in violations(r)]
    assert problems == []


# ---------------------------------------------------------------- determinism and shape

def test_deterministic_for_a_seed(pool: list[dict]) -> None:
    a = list(simulate_turns(pool, n_turns=700, seed=3))
    assert a == list(simulate_turns(pool, n_turns=700, seed=3))
    assert a != list(simulate_turns(pool, n_turns=700, seed=4))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 333])
def test_exact_number_of_turns(pool: list[dict], n: int) -> None:
    records = list(simulate_turns(pool, n_turns=n, seed=1, id_prefix="eval-"))
    assert len(records) == n
    assert all(r["dialogue_id"].startswith("eval-") for r in records)


def test_negative_turns_and_empty_pool_are_errors(pool: list[dict]) -> None:
    with pytest.raises(ValueError, match="n_turns"):
        list(simulate_turns(pool, n_turns=-1))
    with pytest.raises(ValueError, match="empty"):
        list(simulate_turns([], n_turns=5))
    with pytest.raises(ValueError, match="lacks"):
        list(simulate_turns([{"slurp_id": 1}], n_turns=5))


def test_every_record_is_valid_and_complete(turns: list[dict]) -> None:
    names = [f.name for f in FIELDS]
    assert all(list(r) == names for r in turns)  # every v1 field, in declaration order, nothing else
    problems = [(r["dialogue_id"], v) for r in turns for v in violations(r)]
    assert problems == []


def test_records_are_independent(turns: list[dict]) -> None:
    lists = [id(r[k]) for r in turns[:2000] for k in ("nlu_slots", "gold_skills", "speaker_embedding")]
    assert len(lists) == len(set(lists))


def test_dialogue_structure_and_time(turns: list[dict]) -> None:
    ds = dialogues(turns)
    assert max(len(d) for d in ds) == MAX_TURNS and min(len(d) for d in ds) == 1
    end = START + timedelta(days=31)
    for d in ds:
        assert [r["turn_index"] for r in d] == list(range(len(d)))
        times = [datetime.fromisoformat(r["timestamp"]) for r in d]
        assert all(START <= t < end for t in times)
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert all(1.0 <= g <= 30.0 for g in gaps), gaps  # strictly increasing, a few seconds apart
        assert len({(r["user_id"], r["speaker_id"], r["device_type"]) for r in d}) == 1


def test_users_speakers_devices(turns: list[dict]) -> None:
    speakers: dict[str, set[str]] = collections.defaultdict(set)
    devices: dict[str, set[str]] = collections.defaultdict(set)
    for r in turns:
        speakers[r["user_id"]].add(r["speaker_id"])
        devices[r["user_id"]].add(r["device_type"])
        assert r["speaker_id"].startswith(r["user_id"] + "-")
        assert r["locale"] == "en-US"
        assert 18 < r["latitude"] < 72 and -180 < r["longitude"] < -65  # the United States
        assert len(r["speaker_embedding"]) == EMBEDDING_DIM
    assert max(len(s) for s in speakers.values()) == 3
    assert max(len(d) for d in devices.values()) == 2
    assert {d for ds in devices.values() for d in ds} == {"speaker", "phone", "car", "tv", "tablet"}


# ---------------------------------------------------------------- goals, rephrasing, failure points

def test_goal_success_helper() -> None:
    f = ["ASR", "NO_FAILURE", "NLU", "NLU", "NO_FAILURE"]
    assert goal_success(f, [True, False, True, False, True]) == [True, True, False, False, True]


def test_rephrase_and_goal_labels(turns: list[dict]) -> None:
    rephrases = give_ups = 0
    for d in dialogues(turns):
        assert d[0]["gold_goal_start"]
        goals: list[list[dict]] = []
        for r in d:
            if r["gold_goal_start"]:
                goals.append([r])
            else:
                prev = goals[-1][-1]
                assert prev["gold_failure_point"] != "NO_FAILURE"  # users rephrase after a defect only
                assert r["gold_intent"] == prev["gold_intent"]
                goals[-1].append(r)
                rephrases += 1
        for g in goals:
            ok = g[-1]["gold_failure_point"] == "NO_FAILURE"
            assert all(r["gold_goal_success"] == ok for r in g)
            assert all(r["gold_failure_point"] != "NO_FAILURE" for r in g[:-1])  # a goal ends at its success
            ended_by_user = g is not goals[-1] or len(d) < MAX_TURNS  # not cut short by the turn limit
            give_ups += not ok and ended_by_user
    assert rephrases > 0.1 * len(turns) and give_ups > 0.02 * len(turns)


@pytest.fixture(scope="module")
def meaning_turns(pool: list[dict]) -> list[dict]:
    return list(simulate_turns(pool, n_turns=N, seed=0, rephrase="meaning"))


def rephrase_pairs(records: list[dict]) -> list[tuple[dict, dict]]:
    """(turn, the rephrase that followed it) for every goal that went on after a defect."""
    return [(a, b) for a, b in zip(records, records[1:], strict=False)
            if a["dialogue_id"] == b["dialogue_id"] and not b["gold_goal_start"]]


def slot_values(r: dict) -> list[tuple[str, str]]:
    return sorted((s["type"], s["value"].lower()) for s in r["gold_slots"])


def test_catch_all_intents_of_the_pool_are_derived(pool: list[dict]) -> None:
    """The rule (meaning.catch_all_intents) finds SLURP's catch-all intents in the pool's gold sentences; nobody
    listed them."""
    sampler = simulate._Sampler(simulate._prepare(pool), "meaning")
    assert sampler.catch_all == ("general_quirky", "qa_factoid")
    assert simulate._Sampler(simulate._prepare(pool), "intent").catch_all == ()  # the default style is unchanged


def test_meaning_rephrases_keep_intent_and_slot_values(meaning_turns: list[dict]) -> None:
    pairs = rephrase_pairs(meaning_turns)
    assert len(pairs) > 0.1 * len(meaning_turns)
    assert [(a["reference_text"], b["reference_text"]) for a, b in pairs
            if a["gold_intent"] != b["gold_intent"] or slot_values(a) != slot_values(b)] == []


def test_meaning_rephrases_are_the_same_sentence_or_a_paraphrase(pool: list[dict], meaning_turns: list[dict]) -> None:
    """Another sentence only when it shares a content word and the intent is not catch-all: never a catch-all
    intent's random member, never a stranger that shares a label ("where is the car" for "raise volume")."""
    catch_all = set(simulate._Sampler(simulate._prepare(pool), "meaning").catch_all)
    same = other = in_catch_all = 0
    for a, b in rephrase_pairs(meaning_turns):
        if normalise(a["reference_text"]) == normalise(b["reference_text"]):
            same += 1
            in_catch_all += a["gold_intent"] in catch_all
            continue
        other += 1
        assert a["gold_intent"] not in catch_all, (a["reference_text"], b["reference_text"])
        assert meaning.content_words(a["reference_text"]) & meaning.content_words(b["reference_text"]), (
            a["reference_text"], b["reference_text"])
    # both kinds happen, and catch-all requests were rephrased (by saying them again)
    assert same > other > 0.05 * (same + other) and in_catch_all > 0


def test_paraphrases_by_the_rule(pool: list[dict]) -> None:
    recs = simulate._prepare(pool)
    catch_all, para = simulate.paraphrases(recs)
    by_id = {r.slurp_id: r for r in recs}
    assert para and all(by_id[k].gold_intent not in catch_all for k in para)
    for k, indices in list(para.items())[:300]:
        a = by_id[k]
        others = {recs[i].slurp_id for i in indices}
        assert k not in others
        for o in others:
            b = by_id[o]
            assert simulate.interpretation(b) == simulate.interpretation(a)
            assert meaning.share_a_word(a.reference_text, b.reference_text)
        # every recording of every paraphrase is there to draw from
        assert sorted(indices) == sorted(r.index for r in recs if r.slurp_id in others)
    # "where is the car" is labelled like "raise volume" (audio_volume_up, no slot) but has no paraphrase there
    car = [r for r in recs if r.reference_text == "where is the car"]
    assert car and all(recs[i].reference_text != "raise volume" for i in para.get(car[0].slurp_id, []))


def test_failure_point_cascade(turns: list[dict], pool: list[dict]) -> None:
    real = {(r["reference_text"], r["asr_text"], r["nlu_intent"]): r["failure"] for r in pool}
    for r in turns:
        fp = r["gold_failure_point"]
        understood = r["nlu_intent"] is not None and r["nlu_intent"] == r["gold_intent"]
        if fp in ("ASR", "NLU", "NO_FAILURE", "ENTITY_RESOLUTION", "RESPONSE", "TTS"):
            # the recognition/NLU part is real: the turn is a pool recording with the matching label
            label = real[(r["reference_text"], r["asr_text"], r["nlu_intent"])]
            assert label == (fp if fp in ("ASR", "NLU") else "NO_FAILURE")
        if fp == "ASR":
            assert not understood and r["asr_text"] != r["reference_text"]
        elif fp == "NLU":
            assert not understood
        elif fp == "WAKEWORD":
            false_wake = r["gold_intent"] is None
            assert false_wake or (r["nlu_intent"] is None and r["response_status"] == "unhandled")
            assert not false_wake or (r["reference_text"] is None and r["turn_index"] == 0)
        else:
            assert understood
        # later components fail only where everything before worked
        if fp in ("NO_FAILURE", "RESPONSE", "TTS"):
            assert r["er_status"] != "unresolved"
        if fp in ("NO_FAILURE", "TTS"):
            assert r["response_status"] == "success" or (r["response_status"] == "unhandled"
                                                         and r["gold_skills"] == [])  # can't do: no defect
            assert r["response_skill"] in r["gold_skills"] or r["gold_skills"] == []
        assert (r["tts_status"] == "failed") == (fp == "TTS")
        if fp == "ENTITY_RESOLUTION":
            assert r["er_status"] == "unresolved" and r["response_status"] == "error" and r["nlu_slots"]
        if fp == "RESPONSE":
            assert r["response_status"] == "error" or r["response_skill"] not in r["gold_skills"]
        if r["response_status"] == "unhandled":
            assert r["response_text"] == "Sorry, I don't know that one."
        assert (r["er_status"] == "not_applicable") == (not r["nlu_slots"])


def test_simulated_failure_rates(turns: list[dict]) -> None:
    rate = {k: v / len(turns) for k, v in collections.Counter(r["gold_failure_point"] for r in turns).items()}
    assert 0.012 < rate["WAKEWORD"] < 0.03
    assert 0.02 < rate["ENTITY_RESOLUTION"] < 0.045
    assert 0.02 < rate["RESPONSE"] < 0.045
    assert 0.004 < rate["TTS"] < 0.02
    assert rate["ASR"] > 0.05 and rate["NLU"] > 0.05


def test_symptoms_follow_failures(turns: list[dict]) -> None:
    def share(rows: list[dict], key: str, value: object) -> float:
        return sum(r[key] == value for r in rows) / len(rows)

    ok = [r for r in turns if r["gold_failure_point"] == "NO_FAILURE"]
    bad = [r for r in turns if r["gold_failure_point"] != "NO_FAILURE"]
    assert share(bad, "barge_in", True) > 3 * share(ok, "barge_in", True)
    assert share(bad, "user_feedback", "negative") > 5 * share(ok, "user_feedback", "negative")
    assert share(ok, "user_feedback", None) > 0.95 and share(ok, "user_feedback", "positive") > 0
    assert all(r["asr_nbest"] is None for r in turns)


def test_confidences_follow_real_correctness(turns: list[dict]) -> None:
    real = [r for r in turns if r["reference_text"] is not None and r["nlu_intent"] is not None]
    exact = [r["asr_confidence"] for r in real if r["asr_text"].split() == r["reference_text"].split()]
    wrong = [r["asr_confidence"] for r in real if r["asr_text"].split() != r["reference_text"].split()]
    assert np.mean(exact) > np.mean(wrong) + 0.1
    right = [r["nlu_confidence"] for r in real if r["nlu_intent"] == r["gold_intent"]]
    missed = [r["nlu_confidence"] for r in real if r["nlu_intent"] != r["gold_intent"]]
    assert np.mean(right) > np.mean(missed) + 0.1


def test_skill_catalogue() -> None:
    served = collections.Counter(i for intents in SKILLS.values() for i in intents)
    assert any(len(intents) > 1 for intents in SKILLS.values())  # skills serving several intents
    assert any(n > 1 for n in served.values())  # intents with several valid skills
    assert set(served) <= set(simulate.RESPONSES)
    assert not set(served) & set(simulate.UNSUPPORTED_INTENTS)


def test_gold_skills_and_alt_intent_are_real(turns: list[dict], pool: list[dict]) -> None:
    real = {(r["reference_text"], r["asr_text"], r["alt_intent"]) for r in pool}
    for r in turns:
        if r["gold_intent"] is not None:
            assert r["gold_skills"] == sorted(simulate.INTENT_SKILLS.get(r["gold_intent"], ()))
        if r["nlu_intent"] is not None and r["reference_text"] is not None:  # not a cut-off or a false wake
            assert (r["reference_text"], r["asr_text"], r["nlu_alt_intent"]) in real


# ---------------------------------------------------------------- regions and cohorts served worse

def _truth(n_turns: int, seed: int) -> dict[str, simulate.Speaker]:
    users = build_population(n_users=n_users_for(n_turns), seed=seed)
    return {s.speaker_id: s for u in users for s in u.speakers}


def _pooled_wer(records: list[dict]) -> float:
    rows = [r for r in records if r["reference_text"] is not None]
    return jiwer.wer([r["reference_text"] for r in rows], [r["asr_text"] for r in rows])


@pytest.mark.parametrize("source", ["fresh", "bundled"])
def test_worse_regions_and_cohort_have_higher_pooled_wer(source: str, turns: list[dict],
                                                         bundled: list[dict]) -> None:
    records, n = (turns, N) if source == "fresh" else (bundled, 3000)
    truth = _truth(n, 0)
    region = [r for r in records if truth[r["speaker_id"]].state in WORSE_STATES]
    cohort = [r for r in records if truth[r["speaker_id"]].cohort == WORSE_COHORT]
    rest = [r for r in records if truth[r["speaker_id"]].bias == 0]
    assert len(region) > 0.02 * len(records) and len(cohort) > 0.05 * len(records)
    assert _pooled_wer(region) > _pooled_wer(rest) + 0.03
    assert _pooled_wer(cohort) > _pooled_wer(rest) + 0.03


def test_wer_pairs_stay_real(turns: list[dict], pool: list[dict]) -> None:
    pairs = {(r["reference_text"], r["asr_text"]) for r in pool}
    for r in turns:
        if r["reference_text"] is not None and r["nlu_intent"] is not None:  # all but cut-offs
            assert (r["reference_text"], r["asr_text"]) in pairs


def test_embeddings_carry_cohorts(turns: list[dict]) -> None:
    truth = _truth(N, 0)
    emb = np.array([r["speaker_embedding"] for r in turns[:4000]])
    cohort = np.array([truth[r["speaker_id"]].cohort for r in turns[:4000]])
    centres = simulate.cohort_centres()
    nearest = np.argmin(((emb[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == cohort).mean() > 0.95
    same = [r["speaker_embedding"] for r in turns if r["speaker_id"] == turns[0]["speaker_id"]]
    assert len(same) > 1 and same[0] != same[1]  # per-turn noise
    assert np.abs(np.array(same[0]) - np.array(same[1])).max() < 0.5


def test_population_is_deterministic_and_real_places() -> None:
    a, b = build_population(n_users=50, seed=2), build_population(n_users=50, seed=2)
    assert a == b
    assert all(1 <= len(u.speakers) <= 3 and 1 <= len(u.devices) <= 2 for u in a)
    assert len({u.city for u in a}) > 10


# ---------------------------------------------------------------- writing

def _read_back(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
        for r in rows:
            r["timestamp"] = r["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return rows
    if path.suffix == ".csv":
        out = []
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                rec = {}
                for k, cell in row.items():
                    kind = FIELD_BY_NAME[k].kind
                    rec[k] = (None if cell == "" else cell == "true" if kind == "bool"
                              else int(cell) if kind == "int" else float(cell) if kind == "float"
                              else json.loads(cell) if kind in ("string_list", "float_list", "slots")
                              else cell)
                out.append(rec)
        return out
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet", ".csv"])
def test_write_log_round_trip(tmp_path: Path, turns: list[dict], suffix: str) -> None:
    records = turns[:1500]
    seen: list[int] = []
    path = tmp_path / f"log{suffix}"
    assert write_log(iter(records), path, progress=seen.append) == len(records)
    assert seen and seen[-1] == len(records)
    back = _read_back(path)
    assert len(back) == len(records)
    for a, b in zip(records, back, strict=True):
        if suffix == ".parquet":  # embeddings are float32 in Arrow
            assert np.allclose(a["speaker_embedding"], b["speaker_embedding"], atol=1e-6)
            a, b = {**a, "speaker_embedding": None}, {**b, "speaker_embedding": None}
        assert a == b
    assert not list(tmp_path.glob("*.tmp"))


def test_write_log_reads_back_with_the_log_reader(tmp_path: Path, turns: list[dict]) -> None:
    logs = pytest.importorskip("analysis.logs")
    for suffix in (".jsonl", ".jsonl.gz", ".parquet", ".csv"):
        path = tmp_path / f"log{suffix}"
        write_log(turns[:800], path)
        assert logs.read_log(path).table.num_rows == 800


def test_gzip_output_is_byte_identical(tmp_path: Path, turns: list[dict]) -> None:
    write_log(turns[:300], tmp_path / "a.jsonl.gz")
    write_log(turns[:300], tmp_path / "b.jsonl.gz")
    data = (tmp_path / "a.jsonl.gz").read_bytes()
    assert data == (tmp_path / "b.jsonl.gz").read_bytes()  # the file name is not in the header
    assert data[4:8] == b"\0\0\0\0"  # nor the time: gzip's MTIME field is zero


def test_write_log_rejects_what_it_cannot_write(tmp_path: Path, turns: list[dict]) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        write_log(turns[:3], tmp_path / "log.txt")
    for suffix in (".parquet", ".csv"):
        with pytest.raises(ValueError, match="not in log format v1"):
            write_log([{**turns[0], "mood": "happy"}], tmp_path / f"log{suffix}")
        assert not (tmp_path / f"log{suffix}").exists() and not list(tmp_path.glob("*.tmp"))


def test_load_pool_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl.gz"):
        load_pool(tmp_path / "nowhere.jsonl.gz")
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"slurp_id": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"pool.jsonl, line 1: (missing key|expected the fields)"):
        load_pool(bad)


@pytest.mark.skipif(not SLURP_DIR.is_dir(), reason=f"SLURP files not found in {SLURP_DIR}")
def test_eval_pool(pool: list[dict]) -> None:
    ev = load_eval_pool(SLURP_DIR)
    assert ev and all(r["slurp_id"] % 5 == 0 for r in ev)
    assert all(set(r) == set(POOL_FIELDS) for r in ev)
    assert not {r["file"] for r in ev} & {r["file"] for r in pool}
    records = list(simulate_turns(ev, n_turns=200, seed=0, id_prefix="eval-"))
    assert len(records) == 200 and records[0]["dialogue_id"].startswith("eval-")
