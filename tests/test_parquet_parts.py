"""analysis/parquet_parts.py: listing a folder, glob or URL of Parquet parts, and reading them all or nothing."""

from __future__ import annotations

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.candidates import read_candidates
from analysis.logs import LogFormatError
from analysis.parquet_parts import Part, list_parts, names_parts, read_parts


def _candidate_rows(dialogue: str, n: int, *, score: float = 0.5) -> pa.Table:
    return pa.Table.from_pylist([{"task": "intent", "dialogue_id": dialogue, "turn_index": i, "value": '"play"',
                                  "score": score, "model_name": "m", "model_version": "1"} for i in range(n)])


@pytest.fixture
def hive(tmp_path):
    """Three days of parts, hive-partitioned, with the files a writer leaves beside them."""
    root = tmp_path / "out"
    for day, n in (("2026-12-01", 2), ("2026-12-02", 3), ("2026-12-03", 1)):
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(_candidate_rows(f"d-{day}", n), folder / "part-00000.parquet")
    (root / "_SUCCESS").write_text("")
    (root / "day=2026-12-01" / ".part-00000.parquet.crc").write_text("x")
    (root / "_temporary").mkdir()
    pq.write_table(_candidate_rows("unfinished", 1), root / "_temporary" / "part-9.parquet")
    return root


def test_a_folder_lists_its_parts_in_order_with_their_partition_keys_and_skips_hidden_files(hive):
    parts = list_parts(hive)
    assert [p.path for p in parts] == [str(hive / f"day=2026-12-0{d}" / "part-00000.parquet") for d in (1, 2, 3)]
    assert [p.partition for p in parts] == [{"day": f"2026-12-0{d}"} for d in (1, 2, 3)]


def test_a_glob_a_single_file_and_a_file_url_list_the_same_parts(hive):
    assert [p.path for p in list_parts(f"{hive}/day=2026-12-0[23]/*.parquet")] == [
        str(hive / f"day=2026-12-0{d}" / "part-00000.parquet") for d in (2, 3)]
    assert list_parts(f"{hive}/day=*/*.parquet")[0].partition == {"day": "2026-12-01"}
    one = hive / "day=2026-12-02" / "part-00000.parquet"
    assert list_parts(one) == [Part(str(one))]
    assert [p.path for p in list_parts(f"file://{hive}")] == [
        f"file://{hive}/day=2026-12-0{d}/part-00000.parquet" for d in (1, 2, 3)]


def test_any_fsspec_filesystem_is_listed_through_fsspec():
    fs = fsspec.filesystem("memory")
    for day in ("a", "b"):
        with fs.open(f"/bucket/logs/day={day}/part-0.parquet", "wb") as f:
            pq.write_table(_candidate_rows(day, 1), f)
    fs.pipe("/bucket/logs/_SUCCESS", b"")
    try:
        parts = list_parts("memory://bucket/logs")
        assert [(p.path, p.partition) for p in parts] == [
            ("memory://bucket/logs/day=a/part-0.parquet", {"day": "a"}),
            ("memory://bucket/logs/day=b/part-0.parquet", {"day": "b"})]
        with pytest.raises(LogFormatError, match="no such file or folder"):
            list_parts("memory://bucket/nothing")
    finally:
        fs.rm("/bucket", recursive=True)


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "no such file or folder"),
    (lambda root: root, "holds no Parquet part"),
    (lambda root: f"{root}/*.parquet", "no file matches this pattern"),
    (lambda root: (root / "notes.txt").write_text("x") and root / "notes.txt", "not a Parquet file"),
])
def test_a_source_without_parts_is_refused_naming_it(tmp_path, make, message):
    (tmp_path / "_SUCCESS").write_text("")  # a folder holding only a marker has no parts
    source = make(tmp_path)
    with pytest.raises(LogFormatError, match=message) as err:
        list_parts(source)
    assert str(source) in str(err.value)


def test_reading_every_part_or_nothing_names_the_part_and_row_of_each_problem(hive):
    table = read_parts(list_parts(hive), lambda path, name: read_candidates(path, name=name))
    assert table.num_rows == 6
    assert sorted(set(table.column("dialogue_id").to_pylist())) == [f"d-2026-12-0{d}" for d in (1, 2, 3)]

    bad = hive / "day=2026-12-03" / "part-00000.parquet"
    pq.write_table(_candidate_rows("d-2026-12-03", 3, score=0.5).set_column(
        4, "score", pa.array([0.5, 0.5, 1.5])), bad)
    also_bad = hive / "day=2026-12-01" / "part-00000.parquet"
    pq.write_table(_candidate_rows("d-2026-12-01", 2).drop_columns(["model_name"]), also_bad)
    with pytest.raises(LogFormatError) as err:
        read_parts(list_parts(hive), lambda path, name: read_candidates(path, name=name))
    shown = str(err.value)
    assert f"{bad}:3: score:" in shown  # the third row of the third part
    assert f"{also_bad}:1: model_name:" in shown and f"{also_bad}:2: model_name:" in shown


def test_url_parts_are_left_to_an_engine_that_reads_them():
    with pytest.raises(LogFormatError, match="only local parts"):
        read_parts([Part("s3://bucket/part-0.parquet")], lambda path, name: pa.table({}))


def test_a_folder_a_glob_or_a_url_names_parts_and_a_file_does_not(hive):
    one = hive / "day=2026-12-01" / "part-00000.parquet"
    assert names_parts(hive) and names_parts(f"{hive}/*/*.parquet") and names_parts("s3://bucket/logs")
    assert not names_parts(one) and not names_parts(hive / "missing.parquet")
