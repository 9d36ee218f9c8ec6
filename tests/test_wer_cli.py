"""`turnlens ingest --wer-normaliser` and `turnlens info` name the normaliser a dataset's WER figures use."""

from __future__ import annotations

from analysis import wer_normalise
from app import cli, store
from tests.helpers import make_turn, write_jsonl


def test_the_cli_offers_every_normaliser_and_the_same_default():
    assert cli.WER_NORMALISERS == wer_normalise.NAMES
    assert cli.DEFAULT_WER_NORMALISER == wer_normalise.DEFAULT_FOR_NEW_DATASETS


def test_ingest_sets_a_new_datasets_normaliser_and_info_names_it(tmp_path, capsys):
    log = write_jsonl(tmp_path / "log.jsonl", [make_turn("d1", 0, asr_text="let 's go", reference_text="let's go")])
    db = tmp_path / "t.duckdb"
    assert cli.main(["ingest", str(log), "--dataset", "a", "--db", str(db), "--quiet"]) == 0
    other = write_jsonl(tmp_path / "other.jsonl", [make_turn("d2", 0, asr_text="let 's go", reference_text="let's go")])
    assert cli.main(["ingest", str(other), "--dataset", "b", "--db", str(db), "--quiet",
                     "--wer-normaliser", "raw"]) == 0
    conn = store.connect(db)
    try:
        assert store.get_wer_normaliser(conn, "a") == "english-v1"
        assert store.get_wer_normaliser(conn, "b") == "raw"
    finally:
        conn.close()
    capsys.readouterr()
    assert cli.main(["info", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    # english-v1 joins "let 's" as "let's": no error; raw counts the split clitic
    assert "dataset 'a': 1 turns" in out and "pooled WER 0.0% (english-v1 normaliser)" in out
    assert "dataset 'b': 1 turns" in out and "pooled WER 100.0% (raw normaliser)" in out
