"""`turnlens candidates import --format labelstudio|argilla|prodigy` and `turnlens export --format <tool>`, run
in process (app.cli.main): the store's turns are checked, a bad file writes nothing and says where, and what an
export leaves out or an import skips is said."""

from __future__ import annotations

import json

from analysis.interop import READERS, WRITERS
from app import cli, store
from app.store.export import INTEROP_FORMATS
from tests.helpers import write_jsonl
from tests.test_interop_common import DATASET, candidate_ids, count_candidates, decide, ingest_turns
from tests.test_interop_labelstudio import source_tasks, write_tasks


def test_cli_choices_are_the_adapters():
    assert cli.CANDIDATE_TOOL_FORMATS == tuple(READERS)
    assert cli.EXPORT_TOOL_FORMATS == tuple(WRITERS) == INTEROP_FORMATS
    assert cli.EXPORT_FILE_FORMATS == store.EXPORT_FORMATS


def test_import_decide_export_and_import_again(tmp_path, capsys):
    path = tmp_path / "t.duckdb"
    conn = store.connect(path)
    ingest_turns(conn, tmp_path)
    conn.close()
    tasks = write_tasks(tmp_path / "ls.json", source_tasks())
    assert cli.main(["candidates", "import", tasks, "--format", "labelstudio", "--db", str(path)]) == 0
    assert "7 candidates read, 7 added" in capsys.readouterr().out
    conn = store.connect(path)
    ids = candidate_ids(conn)
    decide(conn, ids[("labelstudio", "d2", 0, "intent")], "correct", "play_radio")
    decide(conn, ids[("labelstudio", "d1", 1, "intent")], "reject")
    conn.close()
    out = tmp_path / "db-out.jsonl"
    assert cli.main(["export", "--out", str(out), "--format", "prodigy", "--what", "resolved", "--dataset", DATASET,
                     "--db", str(path)]) == 0
    assert "wrote 2 items (resolved, prodigy)" in capsys.readouterr().out
    answers = {json.loads(line)["answer"] for line in out.read_text(encoding="utf-8").splitlines()}
    assert answers == {"accept", "reject"}
    assert cli.main(["candidates", "import", str(out), "--format", "prodigy", "--db", str(path)]) == 0
    said = capsys.readouterr().out
    assert "1 candidates read, 1 added" in said and "not imported: 1 answer reject" in said
    conn = store.connect(path)
    assert conn.execute("SELECT value FROM candidates c JOIN model_runs r USING (run_id) "
                        "WHERE r.name = 'prodigy-answer'").fetchall() == [('"play_radio"',)]
    conn.close()


def test_a_bad_file_writes_nothing_and_says_where(tmp_path, capsys):
    path = tmp_path / "t.duckdb"
    conn = store.connect(path)
    ingest_turns(conn, tmp_path)
    conn.close()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "play jazz in the kitchen", "label": "play_music",
                                                "meta": {"dialogue_id": "nope", "turn_index": 0, "score": 0.5}}])
    assert cli.main(["candidates", "import", str(bad), "--format", "prodigy", "--db", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:1: meta.dialogue_id: no turn 0 of dialogue 'nope'" in err and "nothing was written" in err
    conn = store.connect(path)
    assert count_candidates(conn) == 0
    conn.close()


def test_export_refuses_a_file_name_of_another_format(tmp_path, capsys):
    path = tmp_path / "t.duckdb"
    conn = store.connect(path)
    ingest_turns(conn, tmp_path)
    conn.close()
    out = tmp_path / "labels.parquet"
    assert cli.main(["export", "--out", str(out), "--format", "argilla", "--dataset", DATASET,
                     "--db", str(path)]) == cli.EXIT_USAGE
    assert "--format argilla writes a .json file" in capsys.readouterr().err and not out.exists()
