"""`turnlens mine rewrites` from the command line: a stored run with its candidates, and clean errors that
write nothing."""

from __future__ import annotations

import json

import duckdb
import pytest

from tests.test_cli import turnlens

# turnlens() runs in this process, without a timeout of its own (tests/test_cli.py)
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rwcli")
    log, db = tmp / "rw.parquet", tmp / "t.duckdb"
    assert turnlens("demo-data", "--turns", "20000", "--seed", "4", "--rephrase", "meaning", "--out", str(log),
                    "--quiet").returncode == 0
    assert turnlens("ingest", str(log), "--db", str(db), "--dataset", "rw").returncode == 0
    assert turnlens("demo-data", "--turns", "300", "--id-prefix", "s-", "--out", str(tmp / "small.jsonl"),
                    "--quiet").returncode == 0
    assert turnlens("ingest", str(tmp / "small.jsonl"), "--db", str(db), "--dataset", "small").returncode == 0
    return db


def rows(db, sql: str) -> list[tuple]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_mine_stores_a_run_with_its_candidates(demo_db):
    p = turnlens("mine", "rewrites", "--dataset", "rw", "--db", str(demo_db), "--no-online", "--n-boot", "50")
    assert p.returncode == 0, p.stderr
    assert "rewrites mined from" in p.stdout and "chain:" in p.stdout and "wins /" in p.stdout
    assert " inf" not in p.stdout and " nan" not in p.stdout  # an undefined ratio is left out, never printed raw
    (run_id, n_rewrites, n_cand, n_metrics), = rows(demo_db, """
        SELECT w.run_id, (SELECT count(*) FROM rewrites), (SELECT count(*) FROM candidates WHERE task = 'rewrite'),
               (SELECT count(*) FROM rewrite_metrics) FROM rewrite_runs w""")
    assert n_rewrites == n_cand > 0 and n_metrics > 0
    assert f"run 1 of the dataset: {n_rewrites:,} rewrites" in p.stdout  # numbered per dataset, not by run_id
    values = [json.loads(v) for (v,) in rows(demo_db, "SELECT value FROM candidates WHERE task = 'rewrite'")]
    assert all(set(v) == {"source", "rewrite"} and v["source"] != v["rewrite"] for v in values)
    # every rewrite's candidate is the rewrite's own pair of turns (its first evidence)
    bad = rows(demo_db, """SELECT count(*) FROM rewrites w JOIN candidates c USING (candidate_id)
                           WHERE json_extract_string(c.value, '$.source') <> w.source""")
    assert bad == [(0,)]
    # the same run again is refused and writes nothing
    again = turnlens("mine", "rewrites", "--dataset", "rw", "--db", str(demo_db), "--no-online", "--n-boot", "50")
    assert again.returncode == 1 and "already stored" in again.stderr
    assert rows(demo_db, "SELECT count(*) FROM rewrite_runs") == [(1,)]


@pytest.mark.parametrize("args, code, message", [
    (["--dataset", "nope"], 2, "no dataset 'nope'"),
    (["--dataset", "rw", "--min-support", "0"], 2, "min_support: 0 is below the minimum 1"),
    (["--dataset", "rw", "--min-reach", "2"], 2, "min_reach: 2.0 is above the maximum 1"),
    (["--dataset", "rw", "--evaluate-from", "yesterday"], 2, "not an ISO 8601 time"),
    (["--dataset", "rw", "--session-gap", "-5"], 2, "session_gap: -5.0 is below the minimum"),
    (["--dataset", "rw", "--evaluate-days", "-1"], 2, "evaluate_days: -1.0 is below the minimum 0"),
    (["--dataset", "rw", "--states", "words"], 2, "invalid choice: 'words'"),
    (["--dataset", "rw", "--evaluate-from", "2030-01-01T00:00:00Z"], 1, "no turns in the evaluation period"),
    (["--dataset", "small"], 1, "no rewrite met the thresholds"),
    (["--dataset", "rw", "--evaluate-from", "2020-01-01"], 1, "no turns before the evaluation period"),
])
def test_mine_errors_are_clean_and_write_nothing(demo_db, args, code, message):
    before = rows(demo_db, "SELECT (SELECT count(*) FROM candidates), (SELECT count(*) FROM model_runs)")
    p = turnlens("mine", "rewrites", "--db", str(demo_db), "--no-online", *args)
    assert p.returncode == code, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert rows(demo_db, "SELECT (SELECT count(*) FROM candidates), (SELECT count(*) FROM model_runs)") == before


def test_mine_on_a_missing_database(tmp_path):
    p = turnlens("mine", "rewrites", "--dataset", "x", "--db", str(tmp_path / "none.duckdb"))
    assert p.returncode == 2 and "no such database" in p.stderr


def test_the_summary_line_gives_a_ratio_only_where_it_is_defined():
    from app.jobs import rewrites as jobs

    result = {"run_id": 1, "run_number": 1,
              "rewrites": 3, "mining_turns": 100, "rephrases": 9, "evaluate_from": "2024-03-17",
              "eval_turns": 50, "overall": {
                  "chain": {"wins": 4, "losses": 0, "win_loss_ratio": float("inf")},
                  "online": {"wins": 0, "losses": 0, "win_loss_ratio": float("nan")},
                  "combined": {"wins": 6, "losses": 4, "win_loss_ratio": 1.5}}}
    line = jobs._describe("mine", result)
    assert "chain: 4 wins / 0 losses;" in line and "online: 0 wins / 0 losses;" in line
    assert line.endswith("combined: 6 wins / 4 losses (win/loss 1.5)")
    assert "inf" not in line and "nan" not in line
