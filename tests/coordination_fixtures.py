"""One small coordination run shared by the coordination tests (built once per session: training is the costly
part): dataset "t" of 600 simulated turns, a small chunker trained on it, its items candidates stored and its
quick evaluation stored with the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.coordination.config import CoordinationConfig

SMALL = CoordinationConfig(word_vectors="trained", epochs=3, hidden=32, word_dim=32, variants=4)


@dataclass(frozen=True)
class Run:
    folder: Path
    db: Path
    model: Path
    summary: dict
    scored: object  # store.CandidateImportResult
    run_id: int


_BUILT: dict[str, Run] = {}


def coordination_run(tmp_path_factory) -> Run:
    if "run" in _BUILT:
        return _BUILT["run"]
    from analysis.coordination.evaluate import evaluate_heldout
    from analysis.coordination.model import CoordinationModel
    from app import store
    from app.jobs import coordination as coord_jobs
    from app.store import coordination as store_coordination
    from app.store import evaluations as store_evaluations
    from tests.helpers import simulated_db

    tmp = tmp_path_factory.mktemp("coordination")
    db = simulated_db(tmp / "c.duckdb", n_turns=600, seed=12)
    conn = store.connect(db)
    try:
        summary = coord_jobs.train(conn, "t", tmp / "m", config=SMALL)
        scored = coord_jobs.score(conn, "t", tmp / "m")
        run_id = int(store_coordination.list_coordination_runs(conn, "t").iloc[0]["run_id"])
        turns = store.list_turn_records(conn, "t")
        evaluation = evaluate_heldout(turns[:150], CoordinationModel.from_pretrained(tmp / "m"), n_boot=50)
        store_evaluations.insert_evaluation(conn, run_id, "t", evaluation)
    finally:
        conn.close()
    _BUILT["run"] = Run(tmp, db, tmp / "m", summary, scored, run_id)
    return _BUILT["run"]
