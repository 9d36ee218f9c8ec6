"""The store reads behind the Overview's per-domain intervals and the Dialogues page's list: per-domain sums equal
what the per-dialogue arrays give; each dialogue's WER and failure flag (a barge-in is not a failure); the new
filters and the WER order."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.rates import EVENTS, clustered_rate_interval, clustered_ratio_interval, group_rates, group_wer
from app import store
from app.ingest import ingest_files
from tests.helpers import make_turn, write_jsonl


def records() -> list[dict]:
    return [
        # a barge-in on a successful response: no failure
        make_turn("barge", 0, timestamp="2026-01-01T10:00:00Z", nlu_domain="music", asr_text="play jazz",
                  reference_text="play jazz", barge_in=True),
        # entity resolution failed on the second turn; one word error in two turns
        make_turn("unresolved", 0, timestamp="2026-01-02T10:00:00Z", asr_text="weather in boston",
                  reference_text="weather in boston"),
        make_turn("unresolved", 1, timestamp="2026-01-02T10:00:10Z", asr_text="and in austin",
                  reference_text="and in boston", er_status="unresolved"),
        # no domain, speech synthesis failed, negative feedback, no reference transcript
        make_turn("tts", 0, timestamp="2026-01-03T10:00:00Z", nlu_domain=None, reference_text=None,
                  tts_status="failed", user_feedback="negative"),
        # unhandled twice, and a high WER
        make_turn("unhandled", 0, timestamp="2026-01-04T10:00:00Z", asr_text="what wet her",
                  reference_text="what's the weather", response_status="unhandled"),
        make_turn("unhandled", 1, timestamp="2026-01-04T10:00:10Z", asr_text="wet her",
                  reference_text="weather", response_status="unhandled", barge_in=True),
    ]


@pytest.fixture
def conn(tmp_path):
    c = store.connect(tmp_path / "t.duckdb")
    ingest_files(c, [write_jsonl(tmp_path / "log.jsonl", records())], dataset="demo")
    yield c
    c.close()


def test_domain_sums_give_the_per_dialogue_intervals(conn):
    sums = store.list_domain_signal_sums(conn, "demo", "raw")  # the raw counts: compared with the turns' own
    assert sums["domain"].tolist()[:2] == ["weather", "music"] and pd.isna(sums["domain"].iloc[2])  # by turns
    weather = sums.iloc[0]
    assert (weather["dialogues"], weather["turns"], weather["unhandled"], weather["unhandled_dialogues"]) == \
        (2, 4, 2, 1)
    rates = group_rates(sums)
    unhandled = rates[(rates["group"] == "weather") & (rates["event"] == "unhandled")].iloc[0]
    # per dialogue in weather: "unresolved" 0 of 2 turns, "unhandled" 2 of 2
    assert (unhandled["rate"], unhandled["ci_low"], unhandled["ci_high"]) == pytest.approx(
        clustered_rate_interval([0, 2], [2, 2])[:3])
    assert set(rates["event"]) == set(EVENTS)
    none = rates[rates["group"].isna()].set_index("event")
    assert none.loc["negative_feedback", "events"] == 1 and none.loc["unhandled", "events"] == 0
    wer = group_wer(sums).set_index("group")
    assert pd.isna(wer.index).sum() == 0  # the turn without a domain has no reference: no WER row
    errors = {d: sum(t["wer_sub"] + t["wer_del"] + t["wer_ins"] for t in store.get_dialogue_turns(conn, d, "demo"))
              for d in ("unresolved", "unhandled")}
    words = {d: sum(t["wer_ref_words"] for t in store.get_dialogue_turns(conn, d, "demo"))
             for d in ("unresolved", "unhandled")}
    expected = clustered_ratio_interval([errors["unresolved"], errors["unhandled"]],
                                        [words["unresolved"], words["unhandled"]])
    assert tuple(wer.loc["weather", ["pooled_wer", "ci_low", "ci_high"]]) == pytest.approx(expected)
    assert wer.loc["music", "pooled_wer"] == 0.0


def test_dialogue_list_has_wer_and_failure_and_keeps_barge_ins_apart(conn):
    rows, total = store.list_dialogues(conn, "demo", store.DialogueFilter())
    assert total == 4
    by_id = rows.set_index("dialogue_id")
    assert list(rows["dialogue_id"]) == ["unhandled", "tts", "unresolved", "barge"]  # newest first
    assert by_id.loc["barge", "barge_ins"] == 1 and not by_id.loc["barge", "has_failure"]
    assert by_id.loc["barge", "failed_turns"] == 0 and by_id.loc["barge", "pooled_wer"] == 0.0
    assert by_id.loc["unresolved", "has_failure"] and by_id.loc["unresolved", "failed_turns"] == 1
    assert by_id.loc["tts", "has_failure"] and pd.isna(by_id.loc["tts", "pooled_wer"])  # no reference: no WER
    assert by_id.loc["unhandled", "failed_turns"] == 2 and by_id.loc["unhandled", "barge_ins"] == 1
    assert by_id.loc["unresolved", "pooled_wer"] == pytest.approx(1 / 6)


def test_dialogue_filters_and_wer_order(conn):
    def ids(flt: store.DialogueFilter, **kw) -> list[str]:
        return store.list_dialogues(conn, "demo", flt, **kw)[0]["dialogue_id"].tolist()

    assert ids(store.DialogueFilter(failure_only=True)) == ["unhandled", "tts", "unresolved"]
    assert ids(store.DialogueFilter(user_feedback="negative")) == ["tts"]
    assert ids(store.DialogueFilter(no_domain=True)) == ["tts"]
    assert ids(store.DialogueFilter(domain="weather", barge_in_only=True)) == ["unhandled"]
    # highest WER first; a dialogue without a reference (no WER) last
    assert ids(store.DialogueFilter(), order="wer") == ["unhandled", "unresolved", "barge", "tts"]
    with pytest.raises(ValueError, match="unknown dialogue order"):
        store.list_dialogues(conn, "demo", store.DialogueFilter(), order="started; DROP TABLE turns")
    assert store.list_values(conn, "demo", "user_feedback") == ["negative"]


def test_a_filter_value_is_a_parameter_not_sql(conn):
    flt = store.DialogueFilter(user_feedback="negative' OR 1=1 --", domain="x' OR '1'='1")
    assert store.list_dialogues(conn, "demo", flt)[1] == 0
