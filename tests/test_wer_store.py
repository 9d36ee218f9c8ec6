"""WER counts per normaliser in the store (m010's turn_wer): ingest writes raw and english-v1, reads follow the
normaliser asked for (else the dataset's default), and a database made before m010 migrates."""

from __future__ import annotations

import pytest

from app import migrations, store
from app.ingest import ingest_files
from app.migrations import MIGRATIONS
from app.store import sql
from app.store import turns as store_turns
from tests.helpers import make_turn, write_jsonl

# make_turn's pair: reference "what's the weather in boston", recognised "what is the weather in boston".
# raw: "what's" -> "what" substituted, "is" inserted: 2 errors over 5 words. english-v1: both sides read
# "what is the weather in boston": no error over 6 words.


def _ingest(conn, tmp_path, name="t", **kwargs):
    records = [make_turn("d1", 0), make_turn("d1", 1, reference_text=None),
               make_turn("d2", 0, reference_text="let's play < unk > jazz", asr_text="let 's play jazz")]
    return ingest_files(conn, [write_jsonl(tmp_path / f"{name}.jsonl", records)], dataset=name,
                        allow_missing_audio=True, **kwargs)[0]


def test_ingest_stores_every_normaliser_and_defaults_new_datasets_to_english(db, tmp_path):
    _ingest(db, tmp_path)
    rows = db.execute("SELECT dialogue_id, turn_index, normaliser, wer_sub, wer_del, wer_ins, wer_ref_words, "
                      "char_edits, ref_chars FROM turn_wer ORDER BY 1, 2, 3").fetchall()
    assert rows == [
        ("d1", 0, "english-v1", 0, 0, 0, 6, 0, 29), ("d1", 0, "raw", 1, 0, 1, 5, 2, 28),
        # "let's play < unk > jazz" / "let 's play jazz", raw: "let" inserted, "let's" -> "'s", "<", "unk", ">"
        # deleted; a space inserted and "< unk > " deleted (9 characters). english-v1: "let us play jazz" twice.
        ("d2", 0, "english-v1", 0, 0, 0, 4, 0, 16), ("d2", 0, "raw", 1, 3, 1, 6, 9, 23),
    ]  # d1/1 has no reference: no rows
    assert store_turns.get_wer_normaliser(db, "t") == "english-v1"


def test_reads_follow_the_normaliser_asked_for_else_the_default(db, tmp_path):
    _ingest(db, tmp_path)
    english, raw = store.get_overview_counts(db, "t"), store.get_overview_counts(db, "t", "raw")
    assert (english.normaliser, english.errors, english.ref_words, english.pooled_wer) == ("english-v1", 0, 10, 0)
    assert (raw.normaliser, raw.errors, raw.ref_words, raw.pooled_wer) == ("raw", 7, 11, 7 / 11)
    assert (raw.char_edits, raw.ref_chars, english.char_edits) == (11, 51, 0)
    assert raw.turns_with_reference == english.turns_with_reference == 2
    flt = store.DialogueFilter()
    by_raw = store.list_dialogues(db, "t", flt, normaliser="raw")[0].set_index("dialogue_id")["pooled_wer"]
    assert by_raw.to_dict() == {"d1": pytest.approx(2 / 5), "d2": pytest.approx(5 / 6)}
    assert store.list_dialogues(db, "t", flt)[0]["pooled_wer"].tolist() == [0, 0]
    speakers = store.list_speaker_turns(db, "t", "raw").to_pydict()
    assert (speakers["wer_sub"], speakers["wer_ref_words"]) == ([1, 1], [5, 6])
    assert store.list_speaker_turns(db, "t").to_pydict()["wer_ref_words"] == [6, 4]
    sums = store.list_domain_signal_sums(db, "t", "raw")
    assert (sums["wer_errors"].tolist(), sums["wer_ref_words"].tolist()) == ([7], [11])
    assert store.list_signals_by_domain(db, "t")["pooled_cer"].tolist() == [0]
    assert store.list_wer_pairs(db, "t", "english-v1").column("wer_ref_words").to_pylist() == [6, 4]
    worst = store.list_worst_utterances(db, "t", ["s1"], normaliser="raw")
    assert worst["wer_sub"].tolist() == [1, 1]


def test_a_dataset_keeps_its_default_and_can_be_set(db, tmp_path):
    _ingest(db, tmp_path, name="r", wer_normaliser="raw")
    assert store_turns.get_wer_normaliser(db, "r") == "raw"
    assert store.get_overview_counts(db, "r").normaliser == "raw"
    store_turns.set_wer_normaliser(db, "r", "english-v1")
    assert store.get_overview_counts(db, "r").errors == 0
    with pytest.raises(ValueError, match="unknown WER normaliser 'whisper'"):
        store_turns.set_wer_normaliser(db, "r", "whisper")
    assert store_turns.get_wer_normaliser(db, "never-stored") == "raw"


def test_an_unknown_normaliser_is_refused_before_anything_is_written(db, tmp_path):
    with pytest.raises(ValueError, match="unknown WER normaliser 'english'"):
        _ingest(db, tmp_path, wer_normaliser="english")
    assert store.count_turns(db) == 0
    with pytest.raises(ValueError, match="unknown WER normaliser"):
        sql.turns_with_wer("raw' OR 1=1 --")
    with pytest.raises(ValueError, match="unknown WER normaliser"):
        store.get_overview_counts(db, "t", "x")


def test_a_database_made_before_m010_gets_both_normalisers_and_keeps_raw(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:9])
    old = store.connect(path)
    assert store.get_schema_version(old) == 9
    old.execute("INSERT INTO imports (dataset, sources, content_sha256, rows_read, rows_added, app_version) "
                "VALUES ('t', '[]', 'x', 3, 3, '0')")
    # as the code before m010 stored them: the raw counts on the turn, -1 without a reference
    for did, ti, ref, hyp, counts in (("d1", 0, "what's the weather in boston", "what is the weather in boston",
                                       (1, 0, 1, 5)),
                                      ("d1", 1, None, "stop", (-1, -1, -1, -1)),
                                      ("d2", 0, "let's play < unk > jazz", "let 's play jazz", (1, 3, 1, 6))):
        old.execute("INSERT INTO turns (dataset, dialogue_id, turn_index, timestamp, asr_text, reference_text, "
                    "speaker_id, wer_sub, wer_del, wer_ins, wer_ref_words, import_id) "
                    "VALUES ('t', ?, ?, TIMESTAMPTZ '2026-01-05 10:00:00+00' + to_seconds(?), ?, ?, 's1', "
                    "?, ?, ?, ?, 1)",
                    [did, ti, ti, hyp, ref, *counts])
    # the pooled counts as the Overview read them before m010
    before = old.execute("SELECT sum(wer_sub + wer_del + wer_ins), sum(wer_ref_words) FROM turns "
                         "WHERE wer_ref_words >= 0").fetchone()
    old.close()
    monkeypatch.undo()

    conn = store.connect(path)
    assert store.get_schema_version(conn) == MIGRATIONS[-1][0] >= 10
    assert store_turns.get_wer_normaliser(conn, "t") == "raw"  # an existing dataset's figures do not change
    after = store.get_overview_counts(conn, "t")
    assert (after.errors, after.ref_words, after.turns_with_reference) == (*before, 2) == (7, 11, 2)
    assert (after.char_edits, after.ref_chars) == (11, 51)
    english = store.get_overview_counts(conn, "t", "english-v1")
    assert (english.errors, english.ref_words) == (0, 10)
    assert conn.execute("SELECT normaliser, count(*) FROM turn_wer GROUP BY 1 ORDER BY 1").fetchall() == [
        ("english-v1", 2), ("raw", 2)]
    conn.close()
