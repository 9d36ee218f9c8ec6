"""Stored evaluations: the held-out split, the quick evaluators of the three trained families (on tiny models
trained with a fake embedder), the store's round trip, and the pages showing a run's stored evaluation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.evaluation import HELDOUT, Evaluation, Metric, describe_kind, production_view, turns_fingerprint
from analysis.failure_points import evaluation as failure_eval
from analysis.failure_points.model import (
    LABEL_INDEX,
    FailurePointClassifier,
    FailurePointConfig,
    build_examples,
    gold_labels,
)
from analysis.holdout import is_heldout, split_turns
from analysis.labels import evaluation as label_metrics
from analysis.labels.model import LabelConfig, LabelModel, build_dialogues, gold_targets
from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.skills import evaluation as skill_eval
from analysis.skills.model import RoutingConfig, SkillRouter
from analysis.skills.model import build_examples as skill_examples
from app import store
from app.ingest import ingest_files
from app.store import evaluations as store_evaluations
from components.evaluation_view import NONE_YET
from components.markdown import escape_markdown
from tests.helpers import ROOT, make_turn, open_app_page, write_jsonl
from tests.test_label_model import random_embed

N_BOOT = 200
SENTINEL = "SENTINEL REFERENCE TEXT"  # every turn's reference_text: a model input would show it to embed

# --- the held-out split --------------------------------------------------------------------------------------


def test_holdout_is_a_stable_fifth_of_whole_dialogues():
    ids = [f"dlg-{i}" for i in range(10_000)]
    held = [d for d in ids if is_heldout(d)]
    assert 0.18 < len(held) / len(ids) < 0.22
    # pinned: a change of salt or hash would move every dataset's split, and old quick evaluations with it
    assert [d for d in ids[:40] if is_heldout(d)] == PINNED
    # the same in a fresh interpreter with another hash seed (nothing depends on Python's hash())
    code = "from analysis.holdout import is_heldout; print([f'dlg-{i}' for i in range(40) if is_heldout(f'dlg-{i}')])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == str(PINNED)
    # nested: what is held out at a tenth is held out at a fifth
    assert {d for d in ids if is_heldout(d, 0.1)} < set(held)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="share"):
            is_heldout("x", bad)


PINNED = ["dlg-0", "dlg-10", "dlg-11", "dlg-15", "dlg-16", "dlg-23", "dlg-25", "dlg-27", "dlg-31", "dlg-32"]


def test_split_keeps_dialogues_whole_and_order():
    turns = [{"dialogue_id": f"d{i % 50}", "turn_index": i // 50, "n": i} for i in range(400)]
    train, held = split_turns(turns)
    assert sorted(t["n"] for t in train + held) == list(range(400))
    assert [t["n"] for t in train] == sorted(t["n"] for t in train)  # input order kept
    assert [t["n"] for t in held] == sorted(t["n"] for t in held)
    assert {t["dialogue_id"] for t in train}.isdisjoint({t["dialogue_id"] for t in held})
    assert held and all(is_heldout(t["dialogue_id"]) for t in held)
    assert split_turns([]) == ([], [])


# --- the typed record --------------------------------------------------------------------------------------------


def test_evaluation_json_round_trip_keeps_undefined_numbers():
    ev = Evaluation(family="f", kind=HELDOUT, metrics={"a": Metric(0.5, 0.4, 0.6), "b": Metric(0.2)},
                    markdown="# x\n", data_fingerprint="abc", config={"seed": 0}, n_items=7)
    text = ev.to_json()
    assert "NaN" not in text and json.loads(text)["metrics"]["b"] == {"value": 0.2, "low": None, "high": None}
    back = Evaluation.from_json(text)
    assert back.metrics["a"] == Metric(0.5, 0.4, 0.6) and math.isnan(back.metrics["b"].low)
    assert (back.family, back.kind, back.markdown, back.data_fingerprint, back.config, back.n_items) == \
        ("f", HELDOUT, "# x\n", "abc", {"seed": 0}, 7)
    with pytest.raises(ValueError, match="low"):
        Metric(0.5, 0.7, 0.6)
    assert "held-out fifth" in describe_kind(HELDOUT) and describe_kind("my own") == "my own"


# --- the quick evaluators on tiny trained models ----------------------------------------------------------------


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A simulated dataset read back from the store as list_turn_records gives it, split by dialogue; every
    reference_text replaced by SENTINEL (so a model that read it would embed it)."""
    tmp = tmp_path_factory.mktemp("evals")
    log = tmp / "log.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=700, seed=21, id_prefix="e-"), log)
    conn = store.connect(tmp / "e.duckdb")
    ingest_files(conn, [log], dataset="t")
    turns = [dict(t, reference_text=SENTINEL) for t in store.list_turn_records(conn, "t")]
    conn.close()
    train, held = split_turns(turns)
    assert len(held) > 80 and len(train) > 400
    return train, held


def guarded_embed():
    """random_embed that fails if it is ever asked for the reference transcript."""
    inner = random_embed(16)

    def embed(texts: list[str]) -> np.ndarray:
        assert SENTINEL not in texts, "a model read reference_text"
        return inner(texts)

    return embed


def check_metrics(ev: Evaluation, family: str, expected: set[str]) -> None:
    assert ev.family == family and ev.kind == HELDOUT and expected <= set(ev.metrics)
    for name, m in ev.metrics.items():
        assert 0.0 <= m.value <= 1.0, name
        assert m.low <= m.value <= m.high, (name, m)  # defined intervals (dozens of dialogues resampled)
    assert ev.markdown.startswith("## ") and "held-out fifth" in ev.markdown
    assert Evaluation.from_json(ev.to_json()) == ev


def test_failure_point_evaluation(split):
    train, held = split
    ex = build_examples(production_view(train))
    model = FailurePointClassifier(FailurePointConfig(hidden=32, heads=2, layers=1, epochs=2, use_text=True)).fit(
        ex, gold_labels(train, ex), embed=guarded_embed())
    ev = failure_eval.evaluate_heldout(held, model, guarded_embed(), n_boot=N_BOOT)
    check_metrics(ev, "failure-points", {"accuracy", "macro_f1", "baseline.majority.accuracy", "f1.NO_FAILURE"})
    gold = [t["gold_failure_point"] for t in held]
    majority = max(set(gold), key=gold.count)
    assert ev.metrics["baseline.majority.accuracy"].value == pytest.approx(gold.count(majority) / len(gold))
    assert ev.n_items == len(held) and ev.data_fingerprint == turns_fingerprint(held)
    assert ev.config["trained_on"] == model.fingerprint and ev.config["baseline"] == majority
    # gold is only the target: with every gold label NO_FAILURE, accuracy is the share predicted NO_FAILURE
    flipped = failure_eval.evaluate_heldout([dict(t, gold_failure_point="NO_FAILURE") for t in held], model,
                                            guarded_embed(), n_boot=0)
    probs = model.predict_proba(build_examples(production_view(held)), embed=guarded_embed())
    assert flipped.metrics["accuracy"].value == pytest.approx(np.mean(probs.argmax(1) == LABEL_INDEX["NO_FAILURE"]))
    assert math.isnan(flipped.metrics["accuracy"].low)  # n_boot=0: no interval, said as NaN
    with pytest.raises(ValueError, match="no held-out turns"):
        failure_eval.evaluate_heldout([], model, guarded_embed())
    with pytest.raises(ValueError, match="gold_failure_point"):
        failure_eval.evaluate_heldout([dict(t, gold_failure_point=None) for t in held], model, guarded_embed())


def test_label_model_evaluation(split):
    train, held = split
    cfg = LabelConfig(hidden=32, heads=2, layers=1, word_dim=16, epochs=2, pretrain_epochs=1, batch_size=32)
    model = LabelModel(cfg).fit(build_dialogues(production_view(train)), gold_targets(train), embed=guarded_embed())
    ev = label_metrics.evaluate_heldout(held, model, guarded_embed(), n_boot=N_BOOT)
    check_metrics(ev, "labels", {"intent.accuracy", "intent.macro_f1", "slots.f1", "goal_start.f1",
                                 "goal_success.accuracy", "defect.accuracy", "baseline.logged_nlu.intent.accuracy"})
    with_gold = [t for t in held if t["gold_intent"] is not None]
    logged = np.mean([t["nlu_intent"] == t["gold_intent"] for t in with_gold])
    assert ev.metrics["baseline.logged_nlu.intent.accuracy"].value == pytest.approx(logged)
    pred = model.predict(build_dialogues(production_view(held)), embed=guarded_embed())
    intents = dict(zip(pred.keys, pred.intent(), strict=True))
    direct = np.mean([intents[(t["dialogue_id"], t["turn_index"])] == t["gold_intent"] for t in with_gold])
    assert ev.metrics["intent.accuracy"].value == pytest.approx(direct)
    assert ev.config["rows"]["intent"] == len(with_gold)
    # a task without gold is left out and said so; no gold at all is an error
    no_slots = label_metrics.evaluate_heldout([dict(t, gold_slots=None) for t in held], model, guarded_embed(),
                                              n_boot=0)
    assert "slots.f1" not in no_slots.metrics and "Not measured, no gold labels here: slots" in no_slots.markdown
    bare = [{k: v for k, v in t.items() if not k.startswith("gold_")} for t in held]
    with pytest.raises(ValueError, match="has a gold label"):
        label_metrics.evaluate_heldout(bare, model, guarded_embed())
    with pytest.raises(ValueError, match="no held-out turns"):
        label_metrics.evaluate_heldout([], model, guarded_embed())


def test_skill_router_evaluation(split):
    train, held = split
    router = SkillRouter(RoutingConfig(epochs=3, hidden=32)).fit(skill_examples(production_view(train)),
                                                                  embed=guarded_embed())
    ev = skill_eval.evaluate_heldout(held, router, guarded_embed(), n_boot=N_BOOT)
    check_metrics(ev, "skills", {"routing.top1_accuracy", "routing.top1_shortlister", "routing.recall_at_k",
                                 "routing.f1", "baseline.logged_routing.top1_accuracy"})
    routed = [t for t in held if t["response_skill"] and t["gold_skills"]]
    assert ev.n_items == len(routed)
    logged = np.mean([t["response_skill"] in t["gold_skills"] for t in routed])
    assert ev.metrics["baseline.logged_routing.top1_accuracy"].value == pytest.approx(logged)
    with pytest.raises(ValueError, match="gold_skills"):
        skill_eval.evaluate_heldout([dict(t, gold_skills=None) for t in held], router, guarded_embed())
    with pytest.raises(ValueError, match="no held-out turns"):
        skill_eval.evaluate_heldout([], router, guarded_embed())


# --- the store ---------------------------------------------------------------------------------------------------


def evaluation(family: str, value: float = 0.75, kind: str = HELDOUT) -> Evaluation:
    return Evaluation(family=family, kind=kind, metrics={"accuracy": Metric(value, value - 0.05, value + 0.05),
                                                         "macro_f1": Metric(0.5), "f1.ASR": Metric(0.25, 0.2, 0.3)},
                      markdown="## Report\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n", data_fingerprint="fp16",
                      config={"model": {"epochs": 2}, "confidence": 0.95}, n_items=120)


def new_run(conn, name: str) -> int:
    return conn.execute("INSERT INTO model_runs (name, version) VALUES (?, '1') RETURNING run_id", [name]).fetchone()[0]


def test_store_round_trip(db):
    run, other = new_run(db, "failure-points"), new_run(db, "label-model")
    assert store_evaluations.get_latest_evaluation(db, run) is None
    first = store_evaluations.insert_evaluation(db, run, "t", evaluation("failure-points", 0.6))
    second = store_evaluations.insert_evaluation(db, run, "t", evaluation("failure-points", 0.8))
    store_evaluations.insert_evaluation(db, other, "u", evaluation("labels"))
    assert second > first
    latest = store_evaluations.get_latest_evaluation(db, run)
    assert latest == evaluation("failure-points", 0.8)  # everything back, NaN bounds included
    assert math.isnan(latest.metrics["macro_f1"].low)
    every = store_evaluations.list_evaluations(db)
    assert every["family"].tolist() == ["labels", "failure-points", "failure-points"]  # newest first
    mine = store_evaluations.list_evaluations(db, dataset="t", family="failure-points")
    assert mine["evaluation_id"].tolist() == [second, first]
    assert mine[["run_name", "run_version"]].iloc[0].tolist() == ["failure-points", "1"]
    assert json.loads(mine["metrics"].iloc[0])["n_items"] == 120
    assert store_evaluations.list_evaluations(db, family="skills").empty
    with pytest.raises(ValueError, match="no model run #999"):
        store_evaluations.insert_evaluation(db, 999, "t", evaluation("x"))
    assert db.execute("SELECT count(*) FROM evaluations").fetchone()[0] == 3


# --- the pages ------------------------------------------------------------------------------------------------

# (page, task, model name, stored family, a metric the page puts on top)
PAGES = {"failures": ("failure_point", "failure-points", "failure-points", "accuracy"),
         "labels": ("intent", store.LABEL_MODEL, "labels", "intent.accuracy"),
         "skills": ("skill", store.SKILL_ROUTER, "skills", "routing.top1_accuracy")}
VALUES = {"failure_point": '"ASR"', "intent": '"weather_query"', "skill": '"weather.pro"'}
ODD_KIND = "**bold** [link](http://example.com) :red[x]"


def page_db(tmp_path, monkeypatch, *, with_evaluation: bool) -> dict[str, int]:
    """Dataset demo: four turns with gold, and one run per page's model, each with a candidate per turn; with an
    evaluation stored for each run (its kind a text with Markdown in it) when asked. Returns run ids by page."""
    path = tmp_path / "pages.duckdb"
    conn = store.connect(path)
    turns = [make_turn(f"p{i}", 0, gold_intent="weather_query", gold_skills=["weather.basic"]) for i in range(4)]
    ingest_files(conn, [write_jsonl(tmp_path / "log.jsonl", turns)], dataset="demo")
    runs = {}
    for page, (task, model, family, headline) in PAGES.items():
        rows = []
        for i in range(4):
            kind, key = target_key(f"p{i}", 0)
            rows.append({"task": task, "target_kind": kind, "dialogue_id": f"p{i}", "turn_index": 0,
                         "other_dialogue_id": None, "other_turn_index": None, "target_key": key,
                         "value": VALUES[task], "score": 0.9, "distribution": None, "model_name": model,
                         "model_version": "1", "model_parameters": canonical_json({"p": 2, "r": 4}), "run_at": None})
        store.insert_candidates(conn, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA))
        runs[page] = int(conn.execute("SELECT run_id FROM model_runs WHERE name = ?", [model]).fetchone()[0])
        if with_evaluation:
            ev = evaluation(family, 0.75, kind=ODD_KIND)
            ev = replace(ev, metrics={headline: Metric(0.75, 0.7, 0.8), **ev.metrics})
            store_evaluations.insert_evaluation(conn, runs[page], "demo", ev)
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(path))
    return runs


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_show_the_runs_stored_evaluation(page, tmp_path, monkeypatch):
    page_db(tmp_path, monkeypatch, with_evaluation=True)
    at = open_app_page(f"app_pages/{page}.py")
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["metric", "value", "low", "high"])
    rows = table.set_index("metric")
    headline = PAGES[page][3]
    assert rows.loc[headline].tolist() == [0.75, 0.7, 0.8]
    assert rows.loc["f1.ASR"].tolist() == [0.25, 0.2, 0.3] and math.isnan(rows.loc["macro_f1", "low"])
    top = next(m for m in at.metric if m.label == escape_markdown(headline))
    assert top.value == "0.750" and "0.700 – 0.800" in top.help
    # the kind is stored text: stated, escaped (no live link or colour)
    caption = next(c.value for c in at.caption if "Measured on 120 items" in c.value)
    assert escape_markdown(ODD_KIND) in caption and "[link](" not in caption
    report = next(e for e in at.expander if e.label == "The evaluation's report")
    assert "## Report" in report.markdown[0].value
    assert NONE_YET not in [i.value for i in at.info]


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_say_when_a_run_has_no_stored_evaluation(page, tmp_path, monkeypatch):
    page_db(tmp_path, monkeypatch, with_evaluation=False)
    at = open_app_page(f"app_pages/{page}.py")
    assert NONE_YET in [i.value for i in at.info]
    assert not any(list(d.value.columns) == ["metric", "value", "low", "high"] for d in at.dataframe)
