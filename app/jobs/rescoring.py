"""Training and scoring the second-pass rescorer on stored datasets: the LM (with its intent and slot heads) learns
from a dataset's reference transcripts and gold NLU labels, its weights λ and β are tuned on the scored n-best lists
of a tuning dataset (whose sentences the LM never trains on), and scoring proposes a ``transcript`` candidate for
every turn whose best rescored hypothesis differs from the logged 1-best (analysis/rescoring/transcripts.py: the
value).

The rescoring family's job module and registry entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.rescoring.config import WEIGHTINGS, RescoringConfig
from analysis.rescoring.transcripts import TASK, candidate_value, posterior, same_words
from app import store
from app.jobs.common import (
    HOLD_OUT,
    REVIEWED,
    LoadedModel,
    describe,
    mark_held_out,
    stages,
    train_part,
    weights_version,
)
from app.jobs.registry import BatchScoring, Family, Option, register
from app.store import rescoring as store_rescoring

MODEL_NAME = store_rescoring.RESCORER
TRAINING_FILE = "training.json"  # in a checkpoint: which datasets trained and tuned it (evaluate's leak check)
_DEFAULTS = RescoringConfig()


def _normalised(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _hypotheses(turn: dict) -> list[dict]:
    return [dict(h) for h in turn.get("asr_hypotheses") or []]


def is_scored(turn: dict) -> bool:
    hyps = _hypotheses(turn)
    return bool(hyps) and all(h.get("score") is not None for h in hyps)


def nbest_record(turn: dict) -> dict:
    """A stored turn as analysis.rescoring.rescore.nbest_from_turn reads it."""
    return {"dialogue_id": turn["dialogue_id"], "turn_index": int(turn["turn_index"]), "asr_text": turn["asr_text"],
            "asr_hypotheses": _hypotheses(turn), "speaker_id": turn.get("speaker_id"),
            **({"reference_text": turn["reference_text"]} if turn.get("reference_text") else {})}


def reference_lists(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """The dataset's turns with a scored n-best list and a reference transcript (nbest_record's shape): what tuning,
    evaluation and adaptation read (evaluation-side fields: never what scoring reads)."""
    return [nbest_record(t) for t in store_rescoring.list_nbest_turns(conn, dataset, with_reference=True)
            if is_scored(t) and t.get("reference_text")]


NO_SCORES = ("has no n-best lists with first-pass scores (log format 1.1: asr_nbest objects with a score, as "
             "`turnlens speech recognise` writes them); the rescorer adds an LM score to the recogniser's own")


def train_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, tune_dataset: str = "",
                 with_reviewed: bool = False) -> dict:
    """What training reads: the dataset's turns (reference_text is the LM's text, gold intent and slots the NLU
    heads' targets), the tuning dataset's scored n-best lists with their references, every reference sentence of
    the tuning dataset (the LM never trains on them: λ and β must be tuned, and later measured, on sentences it has
    not memorised) and, with_reviewed, the transcripts reviewers settled on this dataset (more LM text)."""
    tune = tune_dataset or dataset
    if tune not in store.list_datasets(conn):
        raise ValueError(f"tune dataset {tune!r} does not exist (ingest a log with scored n-best lists into it)")
    tune_turns = reference_lists(conn, tune)
    reviewed = []
    if with_reviewed:
        reviewed = [json.loads(v).get("text") or "" for v in store.list_reviewed_labels(conn, dataset, TASK).values()]
    return {"dataset": dataset, "turns": store.list_turn_records(conn, dataset), "tune_dataset": tune,
            "tune_turns": tune_turns, "reviewed_texts": [t for t in reviewed if t.strip()],
            "exclude_sentences": sorted({_normalised(t["reference_text"]) for t in tune_turns})}


def fit(inputs: dict, out: Path, *, config: RescoringConfig, hold_out: bool = True,
        progress: Callable[[str, int, int | None], None] | None = None) -> dict:
    """Train the LM on the inputs' turns (less every sentence of the tuning lists), tune λ and β on the tuning
    dataset's lists outside its held-out dialogues, save the rescorer to out. Pure."""
    from analysis.holdout import split_turns
    from analysis.rescoring.model import RescoringModel
    from analysis.rescoring.rescore import Rescorer, lm_scores, nbest_from_turn, tune
    from analysis.rescoring.text import examples_from_turns

    tune_lists = split_turns(inputs["tune_turns"])[0]  # its held-out dialogues stay for `evaluate`
    if not tune_lists:
        raise ValueError(f"dataset {inputs['tune_dataset']!r} {NO_SCORES}, or none with a reference transcript "
                         "outside its held-out dialogues; they tune the LM's weight (choose another with --tune-"
                         "dataset)")
    excluded = set(inputs["exclude_sentences"])
    turns = [t for t in train_part(inputs["turns"], hold_out) if _normalised(t.get("reference_text")) not in excluded]
    sentences, nlu = examples_from_turns(turns)
    sentences = sentences + [t for t in inputs["reviewed_texts"] if _normalised(t) not in excluded]
    if len(sentences) < 20:
        raise ValueError(f"dataset {inputs['dataset']!r} gives {len(sentences)} training sentences (turns with a "
                         "reference transcript that is not a sentence of the tuning lists); at least 20 are needed")
    model = RescoringModel(config).fit(sentences, nlu, progress=progress)
    nbests = [nbest_from_turn(t) for t in tune_lists]
    if progress:
        progress("tuning the LM weight", 0, len(nbests))
    lam, beta, dev_wer = tune(nbests, lm_scores(model, nbests))
    Rescorer(model, lam=lam, beta=beta).save_pretrained(out)
    (Path(out) / TRAINING_FILE).write_text(json.dumps({
        "dataset": inputs["dataset"], "hold_out": hold_out, "tune_dataset": inputs["tune_dataset"],
        "tune_lists": len(nbests)}, indent=1))
    return {"turns": len(turns), "sentences": len(sentences), "nlu_examples": len(nlu),
            "reviewed_labels_used": len(inputs["reviewed_texts"]), "tune_dataset": inputs["tune_dataset"],
            "tune_lists": len(nbests), "lam": lam, "beta": beta, "tune_wer": dev_wer, "history": model.history}


def train(conn: duckdb.DuckDBPyConnection, dataset: str, out: Path, *, config: RescoringConfig,
          tune_dataset: str = "", with_reviewed: bool = False, hold_out: bool = True,
          progress: Callable[[str, int, int | None], None] | None = None) -> dict:
    """Train on a dataset, tune on tune_dataset (default: the same); save the checkpoint to out."""
    inputs = train_inputs(conn, dataset, tune_dataset=tune_dataset, with_reviewed=with_reviewed)
    return fit(inputs, out, config=config, hold_out=hold_out, progress=progress)


def _no_lists(dataset: str) -> str:
    return f"dataset {dataset!r} has no n-best lists to rescore (ingest a log with asr_nbest)"


def score_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    """What scoring reads: the dataset's turns with a scored n-best list (production fields only)."""
    turns = [nbest_record(t) for t in store_rescoring.list_nbest_turns(conn, dataset)]
    if not turns:
        raise ValueError(_no_lists(dataset))
    scored = [t for t in turns if is_scored(t)]
    if not scored:
        raise ValueError(f"dataset {dataset!r} {NO_SCORES}")
    return scored


def score_batches(conn: duckdb.DuckDBPyConnection, dataset: str, options: dict) -> tuple[int, object]:
    """BatchScoring.read_batches: the turns score_inputs reads, the turns of SCORE_BATCH_DIALOGUES dialogues at a
    time (each turn's list is rescored on its own, so any cut would do; whole dialogues keep the pages simple)."""
    from app.jobs import common

    lists, scored = store_rescoring.count_nbest_turns(conn, dataset)
    if not lists:
        raise ValueError(_no_lists(dataset))
    if not scored:
        raise ValueError(f"dataset {dataset!r} {NO_SCORES}")
    pages = store_rescoring.iter_scored_nbest_turns(conn, dataset, batch_dialogues=common.SCORE_BATCH_DIALOGUES)
    return scored, ([nbest_record(t) for t in page] for page in pages)


def candidates(turns: list[dict], model_dir: Path, *,
               progress: Callable[[str, int, int | None], None] | None = None) -> pa.Table:
    """A transcript candidate (CANDIDATE_SCHEMA) for every turn whose best rescored hypothesis says other words than
    the logged 1-best; its score is that hypothesis's share of the list under the rescored totals. Pure."""
    return candidates_from(load(model_dir), turns, progress=progress)


def load(model_dir: Path, options: dict | None = None) -> LoadedModel:
    """The checkpoint's rescorer and its model run, for scoring batch after batch (registry.BatchScoring)."""
    from analysis.rescoring.rescore import Rescorer

    rescorer = Rescorer.from_pretrained(model_dir)
    model = rescorer.model
    return LoadedModel(rescorer, (MODEL_NAME, weights_version(model.fingerprint, model_dir), canonical_json({
        "config": model.config.to_dict(), "data_fingerprint": model.fingerprint, "lam": rescorer.lam,
        "beta": rescorer.beta, "checkpoint": str(Path(model_dir).resolve())})))


def candidates_from(loaded: LoadedModel, turns: list[dict], *,
                    progress: Callable[[str, int, int | None], None] | None = None) -> pa.Table:
    """candidates() with the rescorer already loaded (load()); each turn's n-best list is rescored on its own."""
    from analysis.rescoring.rescore import nbest_from_turn

    rescorer = loaded.model
    nbests = [nbest_from_turn(t) for t in turns]
    if progress:
        progress("rescoring", 0, len(nbests))
    choices = rescorer.rescore(nbests)
    if progress:
        progress("rescoring", len(nbests), len(nbests))
    run = loaded.run
    rows = []
    for t, nb, c in zip(turns, nbests, choices, strict=True):
        if same_words(c.text, t["asr_text"]):
            continue
        value = candidate_value(t["asr_text"] or "", nb.hypotheses, c.first_pass, c.lm, c.totals, c.index,
                                lam=rescorer.lam, beta=rescorer.beta)
        kind, key = target_key(t["dialogue_id"], int(t["turn_index"]))
        rows.append({"task": TASK, "target_kind": kind, "dialogue_id": t["dialogue_id"],
                     "turn_index": int(t["turn_index"]), "other_dialogue_id": None, "other_turn_index": None,
                     "target_key": key, "value": canonical_json(value), "score": posterior(c.totals, c.index),
                     "distribution": None, "model_name": run[0], "model_version": run[1], "model_parameters": run[2],
                     "run_at": None})
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def score(conn: duckdb.DuckDBPyConnection, dataset: str, model_dir: Path, *,
          progress: Callable[[str, int, int | None], None] | None = None) -> store.CandidateImportResult:
    """Rescore every scored n-best list of a dataset and store its transcript candidates (see candidates())."""
    return store.insert_candidates(conn, candidates(score_inputs(conn, dataset), model_dir, progress=progress))


def evaluate_inputs(conn: duckdb.DuckDBPyConnection, dataset: str) -> dict:
    """What evaluation reads: the held-out dialogues' turns with a scored n-best list and a reference."""
    from analysis.holdout import split_turns

    held = split_turns(reference_lists(conn, dataset))[1]
    if not held:
        raise ValueError(f"dataset {dataset!r} has no held-out turns with a scored n-best list and a reference "
                         "transcript to evaluate the rescorer on")
    return {"dataset": dataset, "turns": held}


def check_unseen(training: dict, dataset: str) -> None:
    """Refuse to measure a rescorer on turns it may have trained on: its training dataset when trained on every
    dialogue (hold out off). Its tuning dataset is fine: tuning read only its non-held-out dialogues, and the LM
    never trained on any of its sentences."""
    if dataset == training.get("dataset") and not training.get("hold_out", False):
        raise ValueError("this checkpoint was trained on every dialogue of this dataset (hold out was off): a "
                         "held-out evaluation would measure it on its own training data. Train it again with hold "
                         "out on, or evaluate it on another dataset.")


def evaluate(inputs: dict, checkpoint: Path, *, progress=None):
    """The quick evaluation (analysis/rescoring/heldout.py) of the checkpoint on the inputs' held-out turns."""
    from analysis.rescoring.heldout import evaluate_heldout
    from analysis.rescoring.rescore import Rescorer, nbest_from_turn

    path = Path(checkpoint) / TRAINING_FILE
    training = json.loads(path.read_text()) if path.exists() else {}
    check_unseen(training, inputs["dataset"])
    rescorer = Rescorer.from_pretrained(checkpoint)
    turns = inputs["turns"]
    nbests = [nbest_from_turn(t) for t in turns]
    if progress:
        progress("rescoring", 0, len(nbests))
    chosen = [c.text for c in rescorer.rescore(nbests)]
    rows = [{**t, "hypotheses": nb.hypotheses} for t, nb in zip(turns, nbests, strict=True)]
    return evaluate_heldout(rows, chosen, config={"model": rescorer.model.config.to_dict(), "lam": rescorer.lam,
                                                  "beta": rescorer.beta, "training": training,
                                                  "data_fingerprint": rescorer.model.fingerprint})


# --------------------------------------------------------------------- the registry entry

def _check_dataset_name(name: str) -> None:
    if name and (name != name.strip() or any(ord(c) < 32 for c in name) or len(name) > 200):
        raise ValueError("not a dataset name")


def config_from(options: dict) -> RescoringConfig:
    return RescoringConfig(pretrain_epochs=options["pretrain_epochs"], finetune_epochs=options["finetune_epochs"],
                           weighting=options["weighting"], rwm_eta=options["rwm_eta"], seed=options["seed"])


def _read_train(conn, dataset: str, options: dict) -> dict:
    return train_inputs(conn, dataset, tune_dataset=options["tune_dataset"], with_reviewed=options["with_reviewed"])


def _rs_train(inputs: dict, options: dict, out: Path, progress) -> dict:
    summary = fit(inputs, out, config=config_from(options), hold_out=options["hold_out"], progress=stages(progress))
    mark_held_out(out, options["hold_out"])
    return summary


def _rs_score(loaded: LoadedModel, turns: list[dict], options: dict, progress=None):
    return candidates_from(loaded, turns, progress=progress and stages(progress))


BATCH = BatchScoring(load=load, score=_rs_score, read_batches=score_batches)


def _rs_evaluate(inputs: dict, options: dict, checkpoint: Path, progress):
    return evaluate(inputs, checkpoint, progress=stages(progress))


def _describe(action: str, result) -> str:
    if action == "train":
        return (f"trained on {result['sentences']:,} sentences; λ {result['lam']:g}, β {result['beta']:g} tuned on "
                f"{result['tune_lists']:,} n-best lists")
    if action == "evaluate":
        m = result.metrics
        return (f"evaluated on {result.n_items:,} held-out turns: WER {m['wer_first_pass'].value:.3f} first pass, "
                f"{m['wer_rescored'].value:.3f} rescored (relative reduction {m['werr_rescored'].value:+.1%} "
                f"[{m['werr_rescored'].low:+.1%}, {m['werr_rescored'].high:+.1%}])")
    return describe(action, result, "transcript")


register(Family(
    name="rescoring", title="Rare-word rescoring",
    page="rescoring",
    description="A second-pass LM trained with intent and slot heads rescores the recogniser's n-best lists (score = "
                "first pass + λ·LM + β·words) and proposes a transcript wherever its choice differs from the logged "
                "1-best.",
    options=(Option("pretrain_epochs", int, _DEFAULTS.pretrain_epochs, "epochs of LM-only pretraining", low=0,
                    high=100),
             Option("finetune_epochs", int, _DEFAULTS.finetune_epochs, "epochs of (multitask) fine-tuning", low=0,
                    high=100),
             Option("weighting", str, "rwm", "task weights in fine-tuning: lm_only (the LM-only rescorer), fixed, "
                                             "ramp (linear ramp of the NLU weights) or rwm (randomized weighted "
                                             "majority)", choices=WEIGHTINGS),
             Option("rwm_eta", float, _DEFAULTS.rwm_eta, "the randomized weighted majority's learning rate (a task's "
                                                         "weight is multiplied by 1 - eta after a mistake)",
                    low=0.0, high=0.99),
             Option("seed", int, _DEFAULTS.seed, "initialisation and batch order", low=0, high=2**31 - 1),
             Option("tune_dataset", str, "", "the dataset whose scored n-best lists tune λ and β (empty: this one); "
                                             "the LM never trains on its sentences", check=_check_dataset_name),
             REVIEWED, HOLD_OUT),
    read_train=_read_train, train=_rs_train,
    read_score=lambda conn, dataset, options: score_inputs(conn, dataset), score=BATCH.local,
    batch=BATCH,
    read_evaluate=lambda conn, dataset, options: evaluate_inputs(conn, dataset), evaluate=_rs_evaluate,
    describe=_describe,
    # make run: train on the sample's transcripts and NLU labels, tune on the speech demo's real n-best lists (its
    # non-held-out dialogues), propose its transcripts, measure on its held-out dialogues
    make_run=(("train", "sample", ("--tune-dataset", "speech-demo")), ("score", "speech-demo", ()),
              ("evaluate", "speech-demo", ())),
))
