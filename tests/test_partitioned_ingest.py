"""Folders and globs of Parquet parts (what Spark, Ray and Hive write) as inputs of `turnlens ingest` and
`turnlens candidates import`: read as one input, all or nothing, each error naming the part and its row."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.candidates import candidates_from_logged_nlu, read_candidates
from analysis.logs import LogFormatError
from analysis.simulate import write_log
from app import cli, store
from app.engines.candidate_parts import by_task
from tests.helpers import make_turn


def turns(day: int, n: int) -> list[dict]:
    return [make_turn(f"d{day}-{i}", t, nlu_intent="weather_query", nlu_confidence=0.5,
                      timestamp=f"2026-12-0{day}T10:00:0{t}Z")
            for i in range(n) for t in range(2)]


@pytest.fixture
def hive(tmp_path):
    """logs/day=2026-12-0{1,2,3}/part-00000.parquet (2, 3 and 2 dialogues of two turns), plus a _SUCCESS file."""
    root = tmp_path / "logs"
    for day, n in ((1, 2), (2, 3), (3, 2)):
        folder = root / f"day=2026-12-0{day}"
        folder.mkdir(parents=True)
        write_log(turns(day, n), folder / "part-00000.parquet")
    (root / "_SUCCESS").write_text("")
    return root


def ingest(tmp_path, *sources, capsys=None) -> tuple[int, str]:
    code = cli.main(["ingest", *map(str, sources), "--dataset", "t", "--db", str(tmp_path / "t.duckdb"), "--quiet"])
    return code, capsys.readouterr().err if capsys else ""


def stored_turns(tmp_path) -> int:
    conn = store.connect(tmp_path / "t.duckdb")
    try:
        return store.count_turns(conn)
    finally:
        conn.close()


def test_a_hive_partitioned_folder_ingests_as_one_input(tmp_path, hive, capsys):
    assert ingest(tmp_path, hive, capsys=capsys)[0] == 0
    assert stored_turns(tmp_path) == 14
    conn = store.connect(tmp_path / "t.duckdb")
    try:
        sources = json.loads(conn.execute("SELECT sources FROM imports").fetchone()[0])
        assert len(sources) == 3 and all(f"day=2026-12-0{d}" in s for d, s in zip((1, 2, 3), sources, strict=True))
    finally:
        conn.close()
    assert ingest(tmp_path, hive, capsys=capsys)[0] == 0  # the same parts again: already there, nothing added
    assert stored_turns(tmp_path) == 14


def test_a_glob_of_parts(tmp_path, hive, capsys):
    assert ingest(tmp_path, f"{hive}/day=2026-12-0[12]/*.parquet", capsys=capsys)[0] == 0
    assert stored_turns(tmp_path) == 10


def test_an_error_in_the_third_part_names_the_file_and_row_and_nothing_is_written(tmp_path, hive, capsys):
    bad = hive / "day=2026-12-03" / "part-00000.parquet"
    table = pq.read_table(bad)
    confidences = table["nlu_confidence"].to_pylist()
    confidences[3] = 7.5  # row 4 of the third part: a confidence outside [0, 1]
    pq.write_table(table.set_column(table.schema.get_field_index("nlu_confidence"), "nlu_confidence",
                                    pa.array(confidences, table.schema.field("nlu_confidence").type)), bad)
    code, err = ingest(tmp_path, hive, capsys=capsys)
    assert code == 1
    assert "day=2026-12-03/part-00000.parquet:4: nlu_confidence" in err
    assert "day=2026-12-01" not in err and "day=2026-12-02" not in err
    assert stored_turns(tmp_path) == 0


def test_a_url_is_refused_by_ingest(tmp_path, capsys):
    code, err = ingest(tmp_path, "s3://bucket/logs/", capsys=capsys)
    assert code == 1 and "ingest reads local files" in err


def candidate_parts(tmp_path, hive) -> tuple[pa.Table, object]:
    assert ingest(tmp_path, hive)[0] == 0
    conn = store.connect(tmp_path / "t.duckdb")
    try:
        table = candidates_from_logged_nlu(store.list_nlu_outputs(conn, "t"))
    finally:
        conn.close()
    folder = tmp_path / "scored"
    (folder / "task=intent").mkdir(parents=True)
    # as `turnlens score --engine ray` writes them: the file format's columns, values typed (app/engines)
    intents = by_task(table)["intent"]
    half = intents.num_rows // 2
    pq.write_table(intents.slice(0, half), folder / "task=intent" / "part-0.parquet")
    pq.write_table(intents.slice(half), folder / "task=intent" / "part-1.parquet")
    return intents, folder


def test_candidates_import_takes_a_folder_of_parts_all_or_nothing(tmp_path, hive, capsys):
    intents, folder = candidate_parts(tmp_path, hive)
    assert read_candidates(folder).num_rows == intents.num_rows == 14
    # a proposal repeated in two parts is refused like one repeated in a file, and nothing is stored
    pq.write_table(intents.slice(0, 1), folder / "task=intent" / "part-2.parquet")
    with pytest.raises(LogFormatError, match="in 2 parts"):
        read_candidates(folder)
    code = cli.main(["candidates", "import", str(folder), "--db", str(tmp_path / "t.duckdb")])
    assert code == 1 and "in 2 parts" in capsys.readouterr().err
    (folder / "task=intent" / "part-2.parquet").unlink()
    assert cli.main(["candidates", "import", str(folder), "--db", str(tmp_path / "t.duckdb")]) == 0
    conn = store.connect(tmp_path / "t.duckdb")
    try:
        assert store.count_candidates(conn) == 14
    finally:
        conn.close()
