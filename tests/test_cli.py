"""The turnlens command line, checking output and exit codes: through its entry point (app.cli.main, what the
`turnlens` script calls) in this process, output captured; one test runs the installed script as a subprocess,
as a user would. (A subprocess per call cost about a second of start-up each, 70 calls in the suite.)"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import duckdb
import pytest

from analysis.simulate import load_pool, simulate_turns, write_log
from tests.helpers import make_turn, write_jsonl


def turnlens(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`turnlens ARGS` in this process with env added to the environment (then restored): its exit code,
    standard output and standard error, as the script would give them (app.cli.run_in_process: an exception
    that escapes is exit code 1 with its traceback on standard error). A call runs to its end: the tests of this
    file carry a timeout instead (pytestmark)."""
    from app.cli import run_in_process
    from app.settings import environment

    out, err = io.StringIO(), io.StringIO()
    with environment(env or {}), redirect_stdout(out), redirect_stderr(err):
        code = run_in_process(list(args))
    return subprocess.CompletedProcess(["turnlens", *args], code, out.getvalue(), err.getvalue())


# In-process calls have no timeout of their own: a command that hangs fails its test after this long instead
# of holding an xdist worker for good (pytest-timeout).
pytestmark = pytest.mark.timeout(600)


def turnlens_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed `turnlens` console script, a process of its own, as a user runs it."""
    script = Path(sys.executable).parent / "turnlens"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout)


def count_rows(db_path) -> int:
    conn = duckdb.connect(str(db_path), read_only=True)
    try:
        return conn.execute("SELECT count(*) FROM turns").fetchone()[0]
    finally:
        conn.close()


def test_ingest_ok_then_idempotent(tmp_path):
    log = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0), make_turn("d1", 1, mood="x")])
    db = tmp_path / "t.duckdb"
    out = turnlens_script("ingest", str(log), "--db", str(db), "--quiet")  # the installed script, once
    assert out.returncode == 0, out.stderr
    assert "2 turns read, 2 added, 0 already present" in out.stdout
    assert "unknown fields kept in extras: mood (1 rows)" in out.stdout
    again = turnlens("ingest", str(log), "--db", str(db), "--quiet")
    assert "2 turns read, 0 added, 2 already present" in again.stdout
    assert count_rows(db) == 2


def test_ingest_refuses_bad_input_with_locations_and_no_traceback(tmp_path):
    db = tmp_path / "t.duckdb"
    good = write_jsonl(tmp_path / "good.jsonl", [make_turn("d1", 0)])
    lines = [make_turn("d2", i, er_status="bad") for i in range(70)]
    bad = write_jsonl(tmp_path / "bad.jsonl", lines)
    out = turnlens("ingest", str(good), str(bad), "--db", str(db), "--quiet")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "nothing was written; 70 problem(s)" in out.stderr
    assert f"{bad}:1: er_status: unknown value 'bad'" in out.stderr
    assert "and 20 more problems (70 in all)" in out.stderr
    assert count_rows(db) == 0  # the good file of the same call was not written either


def test_ingest_shows_a_progress_bar(tmp_path):
    log = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", i) for i in range(5)])
    out = turnlens("ingest", str(log), "--db", str(tmp_path / "t.duckdb"))
    assert out.returncode == 0
    assert "turns" in out.stderr and "%" in out.stderr  # tqdm writes the bar to stderr


def test_info_reports_datasets(tmp_path):
    db = tmp_path / "t.duckdb"
    turnlens("ingest", str(write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])), "--db", str(db),
             "--dataset", "pilot", "--quiet")
    out = turnlens("info", "--db", str(db))
    assert out.returncode == 0
    assert "dataset 'pilot': 1 turns, 1 dialogues, 1 users" in out.stdout


def test_info_on_missing_database(tmp_path):
    out = turnlens("info", "--db", str(tmp_path / "none.duckdb"))
    assert out.returncode == 2
    assert "no such database" in out.stderr


def test_demo_data_generates_an_ingestable_log(tmp_path):
    log = tmp_path / "demo.jsonl.gz"
    out = turnlens("demo-data", "--turns", "500", "--out", str(log), "--seed", "3", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "wrote 500 turns" in out.stdout
    db = tmp_path / "t.duckdb"
    ingested = turnlens("ingest", str(log), "--db", str(db), "--quiet")
    assert ingested.returncode == 0, ingested.stderr
    assert count_rows(db) == 500


def test_demo_data_rejects_bad_arguments(tmp_path):
    assert turnlens("demo-data", "--turns", "0", "--out", str(tmp_path / "x.jsonl")).returncode == 2
    wrong = turnlens("demo-data", "--turns", "5", "--out", str(tmp_path / "x.txt"))
    assert wrong.returncode == 2 and "unsupported output type" in wrong.stderr
    no_dir = turnlens("demo-data", "--turns", "5", "--out", str(tmp_path / "x.jsonl"), "--split", "eval")
    assert no_dir.returncode == 2 and "--split eval needs --slurp-dir" in no_dir.stderr
    bad = turnlens("demo-data", "--turns", "5", "--out", str(tmp_path / "x.jsonl"), "--id-prefix", "a b")
    assert bad.returncode == 2 and "--id-prefix" in bad.stderr and not (tmp_path / "x.jsonl").exists()


def test_demo_logs_with_their_own_prefixes_share_a_database(tmp_path):
    db = tmp_path / "t.duckdb"
    for prefix in ("a-", "b-"):
        out = turnlens("demo-data", "--turns", "40", "--out", str(tmp_path / f"{prefix}.jsonl"), "--id-prefix",
                       prefix, "--quiet")
        assert out.returncode == 0, out.stderr
        ingest = turnlens("ingest", str(tmp_path / f"{prefix}.jsonl"), "--db", str(db), "--dataset", prefix,
                          "--quiet")
        assert ingest.returncode == 0, ingest.stderr
    conn = duckdb.connect(str(db), read_only=True)
    try:
        assert conn.execute("SELECT dataset, count(*) FROM turns GROUP BY 1 ORDER BY 1").fetchall() == [
            ("a-", 40), ("b-", 40)]
        assert conn.execute("SELECT count(*) FROM turns WHERE dataset = 'b-' AND dialogue_id NOT LIKE 'b-%'"
                            ).fetchone()[0] == 0
    finally:
        conn.close()


def test_demo_data_from_the_evaluation_split(tmp_path):
    """--split eval builds dialogues only from held-out recordings (slurp_id % 5 == 0), prefixed eval-."""
    import gzip
    import json

    import pytest

    from analysis.slurp import load_recordings
    from tests.helpers import ROOT, SLURP_DIR

    if not SLURP_DIR.exists():
        pytest.skip(f"{SLURP_DIR} is not here")
    out = tmp_path / "eval.jsonl"
    done = turnlens("demo-data", "--turns", "300", "--out", str(out), "--split", "eval", "--slurp-dir",
                    str(SLURP_DIR), "--quiet")
    assert done.returncode == 0, done.stderr
    turns = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(turns) == 300 and all(t["dialogue_id"].startswith("eval-") for t in turns)
    eval_pairs = {(r["reference_text"], r["asr_text"]) for r in load_recordings(SLURP_DIR, "eval")}
    real = [t for t in turns if t["reference_text"] is not None and t["gold_failure_point"] != "WAKEWORD"]
    assert real and all((t["reference_text"], t["asr_text"]) in eval_pairs for t in real)
    # and the bundled sample holds none of the evaluation split's recordings
    with gzip.open(ROOT / "sample_data" / "turns.jsonl.gz", "rt") as fh:
        bundled = {(t["reference_text"], t["asr_text"]) for t in map(json.loads, fh)}
    dev_pairs = {(r["reference_text"], r["asr_text"]) for r in load_recordings(SLURP_DIR, "dev")}
    assert not (bundled & eval_pairs) - dev_pairs  # a pair may occur in both splits only if dev has it too


def test_score_without_a_checkpoint_says_how_to_get_one(tmp_path):
    db = tmp_path / "t.duckdb"
    log = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0)])
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "x", "--quiet").returncode == 0
    out = turnlens("score", "failure-points", "--dataset", "x", "--db", str(db))
    assert out.returncode == 2 and "no trained Failure points model for dataset 'x' yet: train one first" in out.stderr
    out = turnlens("score", "failure-points", "--dataset", "x", "--checkpoint", str(tmp_path / "none"), "--db", str(db))
    assert out.returncode == 2 and "train one first" in out.stderr


def test_the_model_commands_are_built_from_the_registry():
    """train, score and evaluate list the model families; mine and analyse the analysis families; every family
    option is a flag of its action, with its documented help."""
    for action, families in (("train", ("failure-points", "labels", "skills")),
                             ("score", ("failure-points", "labels", "skills")),
                             ("evaluate", ("failure-points", "labels", "skills")),
                             ("mine", ("rewrites",)), ("analyse", ("disparity",))):
        out = turnlens(action, "--help")
        assert out.returncode == 0 and all(f in out.stdout for f in families), out.stdout
    # the installed script, in a process of its own: its commands come from the shipped registry alone (in this
    # process a test may have registered a toy family)
    out = turnlens_script("train", "--help")
    assert out.returncode == 0 and "failure-points" in out.stdout and "toy-majority" not in out.stdout, out.stderr
    out = turnlens("train", "labels", "--help")
    assert "--pretrain-epochs" in out.stdout and "--no-context" in out.stdout and "--hold-out" in out.stdout
    out = turnlens("mine", "rewrites", "--help")
    assert "--min-support" in out.stdout and "--no-online" in out.stdout and "--states" in out.stdout
    out = turnlens("train", "rewrites", "--dataset", "x")  # rewrites are mined, not trained
    assert out.returncode == 2 and "invalid choice: 'rewrites'" in out.stderr


def test_train_without_labels_is_a_clean_error(tmp_path):
    db = tmp_path / "t.duckdb"
    log = write_jsonl(tmp_path / "a.jsonl", [make_turn("d1", 0, gold_failure_point=None)])
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "t", "--quiet").returncode == 0
    out = turnlens("train", "failure-points", "--dataset", "t", "--out", str(tmp_path / "m"), "--db", str(db))
    assert out.returncode == 1 and "at least 20 are needed" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "m").exists()  # a failed job leaves no checkpoint


def test_train_rejects_bad_hyper_parameters_before_touching_the_database(tmp_path):
    db = tmp_path / "t.duckdb"
    out = turnlens("train", "failure-points", "--dataset", "t", "--with-text", "--text-dropout", "1.5", "--db", str(db))
    assert out.returncode == 2 and "text_dropout: 1.5 is above the maximum 0.99" in out.stderr
    out = turnlens("train", "failure-points", "--dataset", "t", "--text-dropout", "0.2", "--db", str(db))
    assert out.returncode == 2 and "text_dropout applies only with with_text" in out.stderr
    out = turnlens("train", "failure-points", "--dataset", "t", "--epochs", "0", "--db", str(db))
    assert out.returncode == 2 and "epochs: 0 is below the minimum 1" in out.stderr
    out = turnlens("train", "failure-points", "--dataset", "t", "--epochs", "two", "--db", str(db))
    assert out.returncode == 2 and "invalid int value: 'two'" in out.stderr
    assert not db.exists()


def test_train_and_score_failure_points_from_the_command_line(tmp_path):
    db = tmp_path / "t.duckdb"
    log = tmp_path / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=200, seed=3), log)
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "t", "--quiet").returncode == 0
    env = {"TURNLENS_CACHE": str(tmp_path / "cache")}
    out = turnlens("train", "failure-points", "--dataset", "t", "--out", str(tmp_path / "m"), "--epochs", "1",
                   "--with-text", "--no-hold-out", "--db", str(db), env=env)
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert config["use_text"] is True and config["text_dropout"] == 0.3 and config["epochs"] == 1
    assert "trained on 200 turns" in out.stdout
    assert f"checkpoint: {tmp_path / 'm'}" in out.stdout
    out = turnlens("score", "failure-points", "--dataset", "t", "--checkpoint", str(tmp_path / "m"), "--db", str(db),
                   env=env)
    assert out.returncode == 0, out.stderr
    assert "200 failure_point candidates" in out.stdout
    # without --checkpoint: the newest trained on the dataset
    out = turnlens("score", "failure-points", "--dataset", "t", "--db", str(db), env=env)
    assert out.returncode == 0 and "0 failure_point candidates" in out.stdout  # already present: none added
    out = turnlens("score", "failure-points", "--dataset", "none", "--checkpoint", str(tmp_path / "m"),
                   "--db", str(db), env=env)
    assert out.returncode == 2 and "no dataset 'none'" in out.stderr and "Traceback" not in out.stderr
    out = turnlens("evaluate", "failure-points", "--dataset", "t", "--db", str(db), env=env)
    assert out.returncode == 1 and "trained on every dialogue (hold out was off)" in out.stderr


def test_train_and_score_labels_from_the_command_line(tmp_path):
    db = tmp_path / "t.duckdb"
    log = tmp_path / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=150, seed=4), log)
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "t", "--quiet").returncode == 0
    env = {"TURNLENS_CACHE": str(tmp_path / "cache")}
    out = turnlens("train", "labels", "--dataset", "t", "--out", str(tmp_path / "m"), "--epochs", "1",
                   "--pretrain-epochs", "1", "--finetune-encoder", "--no-hold-out", "--db", str(db), env=env)
    assert out.returncode == 0, out.stderr
    assert "trained on 150 turns" in out.stdout
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["finetune_encoder"] is True
    out = turnlens("score", "labels", "--dataset", "t", "--checkpoint", str(tmp_path / "m"), "--tasks",
                   "intent,defect", "--db", str(db), env=env)
    assert out.returncode == 0, out.stderr
    assert "300 label candidates" in out.stdout
    out = turnlens("score", "labels", "--dataset", "t", "--checkpoint", str(tmp_path / "m"), "--tasks", "colour",
                   "--db", str(db), env=env)
    assert out.returncode == 2 and "tasks: choose among" in out.stderr and "Traceback" not in out.stderr
    out = turnlens("train", "labels", "--dataset", "t", "--epochs", "0", "--db", str(db))
    assert out.returncode == 2 and "epochs: 0 is below the minimum 1" in out.stderr


def test_train_skills_and_propose_pseudo_labels_from_the_command_line(tmp_path):
    db = tmp_path / "t.duckdb"
    log = tmp_path / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=300, seed=5), log)
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "t", "--quiet").returncode == 0
    env = {"TURNLENS_CACHE": str(tmp_path / "cache")}
    out = turnlens("train", "skills", "--dataset", "t", "--out", str(tmp_path / "m"), "--epochs", "5", "--r", "2",
                   "--pseudo-labels", "--negative-feedback", "--self-distill", "--db", str(db), env=env)
    assert out.returncode == 0, out.stderr
    assert "trained on" in out.stdout
    config = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert config["pseudo_labels"] and config["negative_feedback"] and config["self_distill"] and config["r"] == 2
    out = turnlens("score", "skills", "--dataset", "t", "--r", "2", "--db", str(db), env=env)
    assert out.returncode == 0, out.stderr
    assert "skill candidates" in out.stdout
    out = turnlens("score", "skills", "--dataset", "t", "--p", "0", "--db", str(db))
    assert out.returncode == 2 and "p: 0 is below the minimum 1" in out.stderr
