"""The rescoring family end to end on stored datasets: train on one dataset's transcripts and NLU labels, tune λ
and β on another's scored n-best lists (whose sentences the LM never trains on), score (a transcript candidate per
turn whose rescored choice says other words than the logged 1-best), evaluate on the held-out dialogues, a
reviewer's corrected transcript becoming the reference of the reviewed-WER view and the export's transcript, and
the family in the registry and the CLI."""

from __future__ import annotations

import json
import uuid

import pytest

from analysis.candidates import KNOWN_TASKS
from analysis.rescoring.transcripts import corrected_value, same_words, settled_row
from analysis.rescoring.transcripts import reviewed_wer as reviewed_wer_of
from app import store
from app.ingest import ingest_files
from app.jobs import registry
from app.jobs import rescoring as rs_jobs
from app.store import rescoring as store_rescoring
from tests.helpers import make_turn, write_jsonl
from tests.rescoring_fixtures import SMALL, rescoring_run


@pytest.fixture
def run(tmp_path_factory):
    return rescoring_run(tmp_path_factory)


def test_train_tunes_on_the_other_dataset_and_score_proposes_transcripts(run):
    summary = run.summary
    assert summary["tune_dataset"] == "speech" and summary["tune_lists"] > 100
    assert summary["sentences"] > 100 and summary["nlu_examples"] > 100 and summary["lam"] >= 0
    assert run.scored.rows_added == run.scored.rows_read > 0
    conn = store.connect(run.db, read_only=True)
    try:
        rows = conn.execute("SELECT c.value, c.score, t.asr_text, t.asr_hypotheses FROM candidates c JOIN turns t "
                            "USING (dataset, dialogue_id, turn_index) WHERE c.task = 'transcript'").fetchall()
        assert len(rows) == run.scored.rows_added
        for value, score, asr_text, hyps in rows:
            v = json.loads(value)
            assert not same_words(v["text"], asr_text) and v["logged"] == asr_text
            assert 0 <= score <= 1 and 0 <= v["chosen"] < len(v["hypotheses"])
            assert same_words(v["hypotheses"][v["chosen"]]["text"], v["text"])
            # the chosen total is the best of the list; totals are first pass + λ·LM + β·words
            totals = [h["total"] for h in v["hypotheses"]]
            assert v["hypotheses"][v["chosen"]]["total"] == max(totals) and v["margin"] >= 0
            assert {h["text"] for h in v["hypotheses"]} <= {h["text"] for h in hyps} | {asr_text}
        runs = store_rescoring.list_rescoring_runs(conn, "speech")
        assert len(runs) == 1 and runs.iloc[0]["candidates"] == len(rows)
        assert store_rescoring.list_rescored_datasets(conn) == ["speech"]
        assert store_rescoring.list_rescoring_runs(conn, "t").empty
    finally:
        conn.close()


def test_the_lm_never_trains_on_a_sentence_of_the_tuning_lists(run, monkeypatch):
    from analysis.rescoring import model as rs_model

    seen: list[list[str]] = []
    real_fit = rs_model.RescoringModel.fit

    def spy(self, sentences, nlu, **kw):
        seen.append([" ".join(s.split()) if isinstance(s, str) else " ".join(s) for s in sentences])
        return real_fit(self, sentences, nlu, **kw)

    monkeypatch.setattr(rs_model.RescoringModel, "fit", spy)
    conn = store.connect(run.db)
    try:
        inputs = rs_jobs.train_inputs(conn, "t", tune_dataset="speech")
        tune_refs = {" ".join(t["reference_text"].lower().split()) for t in inputs["tune_turns"]}
        # put one tuning sentence among the training turns: it must be dropped
        inputs["turns"] = inputs["turns"] + [{**inputs["turns"][0], "dialogue_id": "leak", "reference_text":
                                              inputs["tune_turns"][0]["reference_text"]}]
        rs_jobs.fit(inputs, run.folder / "m-leak", config=SMALL)
    finally:
        conn.close()
    (sentences,) = seen
    assert sentences and not tune_refs & {s.lower() for s in sentences}


def test_quick_evaluation_on_held_out_dialogues(run):
    from app.store import evaluations as store_evaluations

    conn = store.connect(run.db, read_only=True)
    try:
        evaluation = store_evaluations.get_latest_evaluation(conn, run.run_id)
    finally:
        conn.close()
    m = evaluation.metrics
    assert evaluation.family == "rescoring" and evaluation.n_items > 10
    assert m["wer_oracle"].value <= m["wer_first_pass"].value and m["wer_oracle"].value <= m["wer_rescored"].value
    assert m["wer_first_pass"].low <= m["wer_first_pass"].value <= m["wer_first_pass"].high
    assert evaluation.config["resampled"] == "speakers" and evaluation.config["training"]["tune_dataset"] == "speech"
    assert "first pass" in rs_jobs._describe("evaluate", evaluation)
    # a checkpoint trained on every dialogue of a dataset is not measured on it
    with pytest.raises(ValueError, match="trained on every dialogue"):
        rs_jobs.check_unseen({"dataset": "speech", "hold_out": False}, "speech")
    rs_jobs.check_unseen({"dataset": "t", "hold_out": False}, "speech")


def test_a_corrected_transcript_is_the_reference_of_the_reviewed_view_and_exported(run, tmp_path):
    db = tmp_path / "copy.duckdb"
    db.write_bytes(run.db.read_bytes())
    conn = store.connect(db)
    try:
        cands = store_rescoring.list_transcript_candidates(conn, "speech", run.run_id)
        first, second = cands.iloc[0], cands.iloc[1]
        fixed = corrected_value(json.loads(first["value"]), "  Set an ALARM  for six ")
        assert fixed["text"] == "Set an ALARM for six" and fixed["corrected"] is True
        store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(first["candidate_id"]),
                              reviewer="ana", verdict="correct", corrected_value=json.dumps(fixed))
        store.insert_decision(conn, decision_id=str(uuid.uuid4()), candidate_id=int(second["candidate_id"]),
                              reviewer="ana", verdict="accept")
        settled = store_rescoring.list_reviewed_transcripts(conn, "speech")
        assert len(settled) == 2 and set(settled["verdict"]) == {"correct", "accept"}
        rows = [settled_row(json.loads(r.label), asr_text=r.asr_text, speaker_id=r.speaker_id,
                            reference_text=r.reference_text) for r in settled.itertuples()]
        by_text = {r["reviewed"]: r for r in rows}
        assert by_text["Set an ALARM for six"]["proposed"] == json.loads(first["value"])["text"]
        wer = reviewed_wer_of(rows, n_boot=50)
        assert wer["turns"] == 2 and wer["edited"] == 1
        # the accepted one: the proposal is the reference, so only the corrected turn's words can count
        assert 0 < wer["wer_proposed"] <= wer["wer_proposed_ci"][1] + 1e-9
        out = tmp_path / "labels.jsonl"
        assert store.export_labels(conn, out, dataset="speech", kind="accepted", fmt="jsonl") == 2
        exported = {json.loads(line)["transcript"] for line in out.read_text().splitlines()}
        assert exported == {"Set an ALARM for six", json.loads(second["value"])["text"]}
        after = store_rescoring.list_transcript_candidates(conn, "speech", run.run_id)
        assert set(after["verdict"].dropna()) == {"correct", "accept"}
    finally:
        conn.close()


def test_the_family_is_registered_with_its_options():
    family = registry.get("rescoring")
    assert family.actions() == ("train", "score", "evaluate") and family.page == "rescoring"
    assert family.module == "app.jobs.rescoring" and family in registry.built_in()
    parsed = family.parse_options("train", {})
    assert parsed["weighting"] == "rwm" and parsed["tune_dataset"] == "" and parsed["hold_out"] is True
    assert rs_jobs.config_from(parsed).weighting == "rwm"
    with pytest.raises(ValueError):
        family.parse_options("train", {"weighting": "majority"})
    with pytest.raises(ValueError):
        family.parse_options("train", {"tune_dataset": "bad\nname"})
    assert "transcript" in KNOWN_TASKS
    assert [a for a, _, _ in family.make_run] == ["train", "score", "evaluate"]


def test_logs_without_scored_nbest_lists_get_a_clear_message(run, tmp_path):
    db = tmp_path / "x.duckdb"
    conn = store.connect(db)
    try:
        ingest_files(conn, [write_jsonl(tmp_path / "plain.jsonl", [make_turn("d", 0)])], dataset="plain")
        with pytest.raises(ValueError, match="no n-best lists to rescore"):
            rs_jobs.score_inputs(conn, "plain")
        texts = [make_turn(f"d{i}", 0, asr_text="play jazz", asr_nbest=["play jazz", "play jas"]) for i in range(3)]
        ingest_files(conn, [write_jsonl(tmp_path / "texts.jsonl", texts)], dataset="texts")
        with pytest.raises(ValueError, match="no n-best lists with first-pass scores"):
            rs_jobs.score_inputs(conn, "texts")
        with pytest.raises(ValueError, match="tune dataset 'nope' does not exist"):
            rs_jobs.train_inputs(conn, "plain", tune_dataset="nope")
        with pytest.raises(ValueError, match="no n-best lists with first-pass scores"):
            rs_jobs.fit(rs_jobs.train_inputs(conn, "plain", tune_dataset="texts"), tmp_path / "m", config=SMALL)
    finally:
        conn.close()


def test_the_cli_trains_scores_and_evaluates(run, tmp_path, monkeypatch, capsys):
    from app.cli import main

    db = tmp_path / "cli.duckdb"
    db.write_bytes(run.db.read_bytes())
    monkeypatch.setenv("TURNLENS_DB", str(db))
    out = tmp_path / "ckpt"
    assert main(["train", "rescoring", "--dataset", "t", "--tune-dataset", "speech", "--pretrain-epochs", "1",
                 "--finetune-epochs", "1", "--weighting", "lm_only", "--out", str(out), "--quiet"]) == 0
    assert main(["score", "rescoring", "--dataset", "speech", "--checkpoint", str(out), "--quiet"]) == 0
    assert main(["evaluate", "rescoring", "--dataset", "speech", "--checkpoint", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "tuned on" in said and "transcript candidates" in said and "WER" in said
    assert main(["score", "rescoring", "--dataset", "t", "--checkpoint", str(out), "--quiet"]) != 0
    assert "no n-best lists" in capsys.readouterr().err


def same_up_to_rounding(a, b, *, step: float) -> bool:
    """a == b for parsed JSON, except that numbers may differ by up to step (not booleans)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_up_to_rounding(a[k], b[k], step=step)
                                                                    for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_up_to_rounding(x, y, step=step)
                                                                for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return type(a) in (int, float) and type(b) in (int, float) and abs(a - b) <= step
    return a == b and type(a) is type(b)


def test_same_up_to_rounding():
    assert same_up_to_rounding({"h": [{"lm": -59.0346, "t": "x"}], "chosen": 1},
                               {"h": [{"lm": -59.0347, "t": "x"}], "chosen": 1}, step=1.5e-4)
    assert not same_up_to_rounding({"lm": -59.0346}, {"lm": -59.0349}, step=1.5e-4)
    assert not same_up_to_rounding({"chosen": 1}, {"chosen": 2}, step=1.5e-4)
    assert not same_up_to_rounding({"t": "x"}, {"t": "y"}, step=1.5e-4)
    assert not same_up_to_rounding({"t": "x"}, {"t": "x", "u": 1}, step=1.5e-4)
    assert not same_up_to_rounding([True], [1], step=1.5e-4)


def test_a_score_job_streams_the_lists_and_stores_what_scoring_at_once_proposes(run, tmp_path, monkeypatch):
    from app.jobs import common
    from app.jobs.runner import JobRunner
    from tests.rescoring_fixtures import ingest_speech_demo

    monkeypatch.setattr(common, "SCORE_BATCH_DIALOGUES", 5)  # many batches
    conn = store.connect(tmp_path / "s.duckdb")
    runner = JobRunner(conn, tmp_path / "models")
    try:
        ingest_speech_demo(conn, tmp_path)
        total, pages = rs_jobs.score_batches(conn, "speech", {})
        whole = rs_jobs.score_inputs(conn, "speech")
        assert [t for page in pages for t in page] == whole and total == len(whole)
        at_once = rs_jobs.candidates_from(rs_jobs.load(run.folder / "m"), whole).to_pylist()
        view = runner.wait(runner.submit("rescoring", "score", "speech", checkpoint=str(run.folder / "m")),
                           timeout=300)
        assert view.status == "done", view.message
        assert view.result["batches"] > 2
        stored = conn.execute("SELECT dialogue_id, turn_index, value, score FROM candidates WHERE task = 'transcript'"
                              " ORDER BY dialogue_id, turn_index").fetchall()
        expected = sorted((c["dialogue_id"], c["turn_index"], c["value"], c["score"]) for c in at_once)
        assert [r[:2] for r in stored] == [e[:2] for e in expected] and stored
        # The lists' LM log-probabilities come from batches of another size, so a kernel may round them
        # differently: a value rounded to 4 decimals can then move by one step (-59.0346 against -59.0347, seen).
        for got, want in zip(stored, expected, strict=True):
            assert same_up_to_rounding(json.loads(got[2]), json.loads(want[2]), step=1.5e-4), (got, want)
        assert [r[3] for r in stored] == pytest.approx([e[3] for e in expected], abs=1e-6)
    finally:
        runner.stop()
        conn.close()


def test_streamed_scoring_refuses_lists_it_cannot_rescore(tmp_path):
    conn = store.connect(tmp_path / "x.duckdb")
    try:
        ingest_files(conn, [write_jsonl(tmp_path / "plain.jsonl", [make_turn("d", 0)])], dataset="plain")
        with pytest.raises(ValueError, match="no n-best lists to rescore"):
            rs_jobs.score_batches(conn, "plain", {})
        texts = [make_turn(f"d{i}", 0, asr_text="play jazz", asr_nbest=["play jazz", "play jas"]) for i in range(3)]
        ingest_files(conn, [write_jsonl(tmp_path / "texts.jsonl", texts)], dataset="texts")
        with pytest.raises(ValueError, match="no n-best lists with first-pass scores"):
            rs_jobs.score_batches(conn, "texts", {})
    finally:
        conn.close()
