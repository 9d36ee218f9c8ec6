"""One small rescoring run shared by the rescoring tests (built once per session: training is the costly part):
dataset "t" of 600 simulated turns (reference transcripts and gold NLU labels: the LM's training data), dataset
"speech", the bundled speech demo (real pocketsphinx 10-best lists with first-pass scores, its audio left out),
a small rescorer trained on "t" and tuned on "speech", its transcript candidates on "speech" and its quick
evaluation stored with the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.rescoring.config import RescoringConfig

ROOT = Path(__file__).resolve().parents[1]
SPEECH_LOG = ROOT / "sample_data" / "speech_demo" / "turns.jsonl.gz"
SMALL = RescoringConfig(pretrain_epochs=2, finetune_epochs=1)


@dataclass(frozen=True)
class Run:
    folder: Path
    db: Path
    model: Path
    summary: dict
    scored: object  # store.CandidateImportResult
    run_id: int


_BUILT: dict[str, Run] = {}


def ingest_speech_demo(conn, tmp: Path, dataset: str = "speech") -> None:
    from app.ingest import ingest_files

    ingest_files(conn, [SPEECH_LOG], dataset=dataset, audio_root=tmp / "audio", allow_missing_audio=True)


def rescoring_run(tmp_path_factory) -> Run:
    if "run" in _BUILT:
        return _BUILT["run"]
    from app import store
    from app.jobs import rescoring as rs_jobs
    from app.store import evaluations as store_evaluations
    from app.store import rescoring as store_rescoring
    from tests.helpers import simulated_db

    tmp = tmp_path_factory.mktemp("rescoring")
    db = simulated_db(tmp / "r.duckdb", n_turns=600, seed=21)
    conn = store.connect(db)
    try:
        ingest_speech_demo(conn, tmp)
        summary = rs_jobs.train(conn, "t", tmp / "m", config=SMALL, tune_dataset="speech")
        scored = rs_jobs.score(conn, "speech", tmp / "m")
        run_id = int(store_rescoring.list_rescoring_runs(conn, "speech").iloc[0]["run_id"])
        evaluation = rs_jobs.evaluate(rs_jobs.evaluate_inputs(conn, "speech"), tmp / "m")
        store_evaluations.insert_evaluation(conn, run_id, "speech", evaluation)
    finally:
        conn.close()
    _BUILT["run"] = Run(tmp, db, tmp / "m", summary, scored, run_id)
    return _BUILT["run"]
