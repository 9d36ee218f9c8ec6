"""Scoring on Ray (app/engines/ray_scoring.py) on a real local cluster of 2 CPUs, started once for the module: for
every family that scores turns, a small folder of Parquet parts scored on Ray with 2 workers gives the candidates
the local score action gives (read back through the candidate reader, as `turnlens candidates import` does), and
what cannot run says why."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.candidates import read_candidates
from analysis.failure_points.model import FailurePointConfig
from analysis.labels.model import LabelConfig
from analysis.parquet_parts import list_parts, read_parts
from analysis.simulate import load_pool, simulate_turns
from app import store
from app.engines.ray_scoring import MANIFEST, EngineError, EngineRunError, score_on_ray
from app.ingest import ingest_files
from app.jobs import failure_points as fp_jobs
from app.jobs import labels as label_jobs
from app.jobs.registry import get
from tests.coordination_fixtures import coordination_run
from tests.rescoring_fixtures import SPEECH_LOG, rescoring_run

ray = pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster (2 CPUs, no dashboard) for the module; the engine finds it connected. Only inside the
    private network namespace tests/test_ray_private_network.py runs this module in: the cluster's servers listen
    on every interface."""
    if os.environ.get("TURNLENS_PRIVATE_NETWORK") != "1":
        pytest.skip("runs inside a private network namespace (tests/test_ray_private_network.py): a local Ray "
                    "cluster listens on every interface")
    cache = os.environ.get("TURNLENS_CACHE")
    # set before the cluster starts: its workers inherit it, so the label model's actors share the test's cache
    os.environ["TURNLENS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if cache is None:
        os.environ.pop("TURNLENS_CACHE", None)
    else:
        os.environ["TURNLENS_CACHE"] = cache


def _write_parts(records: list[dict], root: Path) -> Path:
    """The records as three hive-partitioned parts cut at row boundaries, so some dialogues span two parts."""
    records = sorted(records, key=lambda r: (r["dialogue_id"], r["turn_index"]))
    cut = [0, len(records) // 3 + 1, 2 * len(records) // 3 + 1, len(records)]
    for i in range(3):
        folder = root / f"day=2026-12-0{i + 1}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(records[cut[i]:cut[i + 1]]), folder / f"part-{i:05d}.parquet")
    return root


def _simulated(seed: int, n: int = 300) -> list[dict]:
    return list(simulate_turns(load_pool(), n_turns=n, seed=seed))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, cluster):
    """300 simulated turns: stored as dataset t, written as Parquet parts; small failure-point and label models."""
    tmp = tmp_path_factory.mktemp("sim")
    records = _simulated(11)
    log = tmp / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    conn = store.connect(tmp / "db.duckdb")
    try:
        ingest_files(conn, [log], dataset="t")
        fp_jobs.train(conn, "t", tmp / "fp", config=FailurePointConfig(epochs=2))
        label_jobs.train(conn, "t", tmp / "labels", config=LabelConfig(hidden=32, heads=2, layers=1, word_dim=16,
                                                                       epochs=1, pretrain_epochs=0, batch_size=32))
    finally:
        conn.close()
    return {"db": tmp / "db.duckdb", "parts": _write_parts(records, tmp / "parts"), "failure-points": tmp / "fp",
            "labels": tmp / "labels"}


def _jsonl_records(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def coordination(tmp_path_factory, cluster):
    run = coordination_run(tmp_path_factory)
    log = next(run.folder.glob("*.jsonl"))
    return {"db": run.db, "dataset": "t", "model": run.model,
            "parts": _write_parts(_jsonl_records(log), tmp_path_factory.mktemp("coord") / "parts")}


@pytest.fixture(scope="module")
def rescoring(tmp_path_factory, cluster):
    run = rescoring_run(tmp_path_factory)
    return {"db": run.db, "dataset": "speech", "model": run.model,
            "parts": _write_parts(_jsonl_records(SPEECH_LOG), tmp_path_factory.mktemp("speech") / "parts")}


def _local(family: str, db: Path, dataset: str, model: Path, options: dict) -> pa.Table:
    """The local score action's candidates (what its job child computes), read from the stored dataset."""
    fam = get(family)
    action, parsed = fam.action("score"), fam.parse_options("score", options)
    conn = store.connect(db)
    try:
        inputs = action.read(conn, dataset, parsed)
    finally:
        conn.close()
    return action.run(inputs, parsed, model, lambda *event: None)


def _comparable(table: pa.Table) -> list[dict]:
    rows = sorted(table.to_pylist(), key=lambda r: (r["task"], r["target_key"]))
    for r in rows:
        r["distribution"] = json.loads(r["distribution"]) if r["distribution"] else None
    return rows


def _assert_same(ray_rows: list[dict], local_rows: list[dict]) -> None:
    assert len(ray_rows) == len(local_rows) > 0
    for got, want in zip(ray_rows, local_rows, strict=True):
        for column in ("task", "target_key", "value", "model_name", "model_version", "model_parameters"):
            assert got[column] == want[column], (column, got, want)
        # 1e-6: batches of another size may round differently in the kernels
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        if want["distribution"] is None:
            assert got["distribution"] is None
        else:
            assert got["distribution"] == pytest.approx(want["distribution"], abs=1e-6)


CASES = {"failure-points": ("simulated", {}), "labels": ("simulated", {}), "coordination": ("coordination", {}),
         "rescoring": ("rescoring", {})}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
def test_scoring_on_ray_with_two_workers_equals_the_local_path(family, request, tmp_path):
    setup = request.getfixturevalue(CASES[family][0])
    options = CASES[family][1]
    model = setup[family] if family in setup else setup["model"]
    dataset = setup.get("dataset", "t")
    local = _local(family, setup["db"], dataset, model, options)

    out = tmp_path / "out"
    run = score_on_ray(family, source=str(setup["parts"]), output=str(out), checkpoint=model, options=options,
                       workers=2, batch_turns=64)
    imported = read_parts(list_parts(out), lambda path, name: read_candidates(path, name=name))
    _assert_same(_comparable(imported), _comparable(local))

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["family"] == family and manifest["engine"] == f"ray {ray.__version__}"
    assert manifest["parts_read"] == 3 and manifest["candidates"] == local.num_rows == run.candidates
    assert manifest["model_version"] == local.column("model_version")[0].as_py()
    assert manifest["batches"] > 1  # small batches: the rows really were split over several batches
    # provenance in every part: the engine, the input, and the parts its batch came from
    meta = pq.read_schema(list_parts(out)[0].path).metadata
    assert meta[b"turnlens.engine"] == f"ray {ray.__version__}".encode()
    assert meta[b"turnlens.input"] == str(setup["parts"]).encode()
    assert json.loads(meta[b"turnlens.input_parts"])
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]


def test_a_file_url_and_a_glob_are_read_like_a_folder(simulated, tmp_path):
    """(failure points: whole dialogues, regrouped from parts cut mid-dialogue)"""
    local = _local("failure-points", simulated["db"], "t", simulated["failure-points"], {})
    source = f"file://{simulated['parts']}/day=*/*.parquet"
    score_on_ray("failure-points", source=source, output=f"file://{tmp_path / 'out'}",
                 checkpoint=simulated["failure-points"], workers=2)
    imported = read_parts(list_parts(tmp_path / "out"), lambda path, name: read_candidates(path, name=name))
    _assert_same(_comparable(imported), _comparable(local))


def test_an_invalid_row_is_named_by_its_part_and_row_and_nothing_is_written(simulated, tmp_path):
    parts = tmp_path / "parts"
    for i, part in enumerate(list_parts(simulated["parts"])):
        table = pq.read_table(part.path)
        if i == 2:  # the third part's fifth row gets a turn index below the minimum
            index = table.column("turn_index").to_pylist()
            index[4] = -1
            table = table.set_column(table.schema.get_field_index("turn_index"), "turn_index",
                                     pa.array(index, pa.int64()))
        target = parts / Path(part.path).relative_to(simulated["parts"])
        target.parent.mkdir(parents=True)
        pq.write_table(table, target)
    bad = parts / "day=2026-12-03" / "part-00002.parquet"
    with pytest.raises(EngineRunError, match=rf"{bad}:5: turn_index: -1 is below the minimum"):
        score_on_ray("failure-points", source=str(parts), output=str(tmp_path / "out"),
                     checkpoint=simulated["failure-points"], workers=2)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_what_cannot_run_says_why(simulated, tmp_path):
    parts, model = str(simulated["parts"]), simulated["failure-points"]
    with pytest.raises(EngineError, match="no such file or folder"):
        score_on_ray("failure-points", source=str(tmp_path / "missing"), output=str(tmp_path / "o1"), checkpoint=model)
    with pytest.raises(EngineError, match="no trained Failure points model at"):
        score_on_ray("failure-points", source=parts, output=str(tmp_path / "o2"), checkpoint=tmp_path / "none")
    with pytest.raises(EngineError, match="no Ray cluster answers at 127.0.0.1:1 .*ray start --head"):
        score_on_ray("failure-points", source=parts, output=str(tmp_path / "o3"), checkpoint=model,
                     address="127.0.0.1:1")
    with pytest.raises(EngineError, match="expected HOST:PORT"):
        score_on_ray("failure-points", source=parts, output=str(tmp_path / "o4"), checkpoint=model, address="nohost")
    with pytest.raises(EngineError, match="skills cannot be scored on an engine: its proposals come from the training"):
        score_on_ray("skills", source=parts, output=str(tmp_path / "o5"), checkpoint=model)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.parquet").write_text("")
    with pytest.raises(EngineError, match="is not empty"):
        score_on_ray("failure-points", source=parts, output=str(tmp_path / "full"), checkpoint=model)


def test_the_cli_scores_on_ray_and_says_what_it_needs(simulated, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "out"
    code = main(["score", "failure-points", "--engine", "ray", "--input", str(simulated["parts"]), "--output",
                 str(out), "--checkpoint", str(simulated["failure-points"]), "--workers", "2"])
    assert code == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "300 turns from 3 parts -> 300 candidates" in said and f"turnlens candidates import {out}" in said
    assert len(read_parts(list_parts(out), lambda path, name: read_candidates(path, name=name))) == 300

    assert main(["score", "failure-points", "--engine", "ray", "--input", str(simulated["parts"])]) == 2
    assert "--engine needs --input" in capsys.readouterr().err
    assert main(["score", "failure-points", "--engine", "ray", "--input", str(simulated["parts"]), "--output",
                 str(tmp_path / "o")]) == 2
    assert "give --checkpoint FOLDER, or --dataset NAME" in capsys.readouterr().err
    assert main(["score", "failure-points", "--db", str(simulated["db"])]) == 2  # the local path still needs a dataset
    assert "--dataset is required" in capsys.readouterr().err


def test_ray_is_imported_only_by_a_run_on_ray():
    import subprocess
    import sys

    code = ("import sys, app.cli, app.jobs.cli, app.engines.ray_scoring, app.jobs.registry as r; r.load_built_in(); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
