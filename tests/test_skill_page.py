"""The Skill routing page on a small simulated dataset with a tiny trained router, and its pure helpers."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analysis.simulate import load_pool, simulate_turns, write_log
from analysis.skills import benchmark
from analysis.skills import model as sr
from analysis.skills.model import Dynamics, RoutingConfig, SkillRouter, build_examples
from app import store
from app.ingest import ingest_files
from app.jobs import skills as skill_jobs
from app.review import session as review_session
from tests.helpers import one_turn_app_db, open_app_page
from tests.test_label_model import random_embed
from tests.test_label_page import charts_values


@pytest.fixture(scope="module")
def skill_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("skills")
    path = tmp / "skills.duckdb"
    conn = store.connect(path)
    log = tmp / "t.jsonl"
    write_log(simulate_turns(load_pool(), n_turns=400, seed=13, id_prefix="t-"), log)
    ingest_files(conn, [log], dataset="t")
    skill_jobs.train(conn, "t", tmp / "m", config=RoutingConfig(epochs=5, r=2, hidden=32), embed=random_embed(16))
    skill_jobs.propose(conn, "t", tmp / "m")
    # decide the two most confident, so both decisions show in the page's table (most confident first)
    ids = [c for (c,) in conn.execute("SELECT candidate_id FROM candidates WHERE task = 'skill' "
                                      "ORDER BY score DESC, candidate_id").fetchall()]
    assert len(ids) >= 3, "the tiny run should propose a few pseudo-labels"
    for n, (cid, verdict) in enumerate(zip(ids, ["accept", "reject"], strict=False)):
        store.insert_decision(conn, decision_id=f"00000000-0000-0000-0000-00000000000{n}", candidate_id=cid,
                              reviewer="zoe", verdict=verdict)
    conn.close()
    return path, tmp / "m"


@pytest.fixture
def env(skill_db, monkeypatch):
    monkeypatch.setenv("TURNLENS_DB", str(skill_db[0]))
    return skill_db


def open_page(**state) -> AppTest:
    return open_app_page("app_pages/skills.py", state=state)


def table(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def query(path, sql: str, params=()):
    conn = store.connect(path)
    try:
        return conn.execute(sql, list(params)).fetchall()
    finally:
        conn.close()


def examples_of(path):
    conn = store.connect(path)
    try:
        return (build_examples(store.list_turn_records(conn, "t", production_only=True)),
                store.list_gold_skills(conn, "t"))
    finally:
        conn.close()


def test_counts_and_review_link(env):
    path, _ = env
    at = open_page()
    (run,) = {r for (r,) in query(path, "SELECT DISTINCT run_id FROM candidates WHERE task = 'skill'")}
    assert at.selectbox(key="skl_run").value == run
    (total,) = query(path, "SELECT count(*) FROM candidates WHERE task = 'skill' AND run_id = ?", [run])[0]
    assert metric(at, "Proposed") == f"{total:,}"
    assert metric(at, "Accepted") == "1" and metric(at, "Rejected") == "1"
    assert metric(at, "Undecided") == f"{total - 2:,}"
    links = {p.proto.label: parse_qs(p.proto.query_string) for p in at.get("page_link")}
    params = links[f"Review this run's skill candidates ({total - 2:,} undecided)"]
    assert params == {"task": ["skill"], "run": [str(run)]}
    assert {k: [v] for k, v in review_session.spec_to_params(
        store.QueueSpec(dataset="t", task="skill", run_id=run)).items()} == params


def test_candidates_table_and_rank_history(env):
    path, model = env
    at = open_page()
    shown = table(at, "proposed_skill")
    stored = query(path, """SELECT c.dialogue_id, c.turn_index, json_extract_string(c.value, '$'), c.score,
                                   t.response_skill, t.asr_text
                            FROM candidates c JOIN turns t USING (dialogue_id, turn_index)
                            WHERE c.task = 'skill' ORDER BY c.score DESC, c.candidate_id LIMIT 200""")
    assert list(zip(shown["dialogue_id"], shown["turn_index"], shown["proposed_skill"], strict=True)) == [
        s[:3] for s in stored]
    np.testing.assert_allclose(shown["score"], [s[3] for s in stored])
    assert shown["logged_skill"].tolist() == [s[4] for s in stored] and shown["request"].tolist() == [
        s[5] for s in stored]
    assert (shown["proposed_skill"] != shown["logged_skill"]).all()
    assert set(shown["status"]) == {"accepted", "rejected", "undecided"}

    router = SkillRouter.from_pretrained(model)
    examples, _ = examples_of(path)
    index = {e.key: i for i, e in enumerate(examples)}
    for pick in (0, min(2, len(shown) - 1)):
        at.selectbox(key="skl_pick").set_value(pick).run()
        assert not at.exception
        row = shown.iloc[pick]
        i, skill = index[(row["dialogue_id"], int(row["turn_index"]))], router.skills.index(row["proposed_skill"])
        d = router.dynamics
        mask = d.example == i
        drawn = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
        np.testing.assert_array_equal(charts_values(drawn[0]["x"]), d.epoch[mask])
        np.testing.assert_array_equal(charts_values(drawn[1]["y"]), d.gt_rank[mask])
        top = d.top_skills[mask]
        expected = [float(np.flatnonzero(t == skill)[0] + 1) if (t == skill).any() else np.nan for t in top]
        np.testing.assert_array_equal(charts_values([np.nan if v is None else v for v in drawn[0]["y"]])
                                      if isinstance(drawn[0]["y"], list) else charts_values(drawn[0]["y"]), expected)
        assert router.skills[d.gt_skill[mask][0]] == row["logged_skill"]


def test_precision_grid(env):
    path, model = env
    at = open_page()
    router = SkillRouter.from_pretrained(model)
    examples, gold = examples_of(path)
    gold_sets = [gold[e.key] for e in examples]
    grid = table(at, "with_gold")
    expected = sr.pseudo_label_grid(router.dynamics, router.skills, gold_sets, range(1, 4), range(1, 7))
    pd.testing.assert_frame_equal(grid.reset_index(drop=True), expected, check_dtype=False)
    assert set(grid["p"]) == {p for p in (1, 2, 3) if p <= router.dynamics.depth} and set(grid["r"]) == set(range(1, 7))
    p, r = router.config.p, router.config.r
    labels = sr.pseudo_labels(router.dynamics, p, r)
    judged = {i: found for i, found in labels.items() if gold_sets[i] is not None}
    direct = sr.pseudo_label_precision(judged, gold_sets, router.skills)
    mine = grid[(grid["p"] == p) & (grid["r"] == r)].iloc[0]
    assert mine["precision"] == pytest.approx(direct)
    assert mine["proposed"] == sum(len(v) for v in labels.values())
    assert metric(at, "Precision at this run's p and r") == f"{direct:.1%}"


def test_a_router_trained_with_hold_out_shows_its_dynamics(skill_db, tmp_path, monkeypatch):
    """Hold out is the train job's default: the router's dynamics index the dataset without its held-out
    dialogues, and the page reads the turns the same way (it once compared them with every turn, so under the
    default it said the checkpoint was not trained on the dataset and showed no rank history nor grid)."""
    from analysis.holdout import is_heldout
    from app.jobs.common import mark_held_out, train_part

    path, _ = skill_db
    copy = tmp_path / "held.duckdb"
    copy.write_bytes(path.read_bytes())
    conn = store.connect(copy)
    try:
        read = skill_jobs.inputs(conn, "t")  # what the train job reads with hold out on (its default)
        read = {**read, "turns": train_part(read["turns"], True)}
        assert 0 < len(read["turns"]) < len(store.list_turn_records(conn, "t"))
        skill_jobs.fit(read, tmp_path / "m", config=RoutingConfig(epochs=5, r=2, hidden=32), embed=random_embed(16))
        mark_held_out(tmp_path / "m", True)
        conn.execute("UPDATE model_runs SET parameters = json_object('checkpoint', ?, 'p', 2, 'r', 2)",
                     [str(tmp_path / "m")])
        examples = skill_jobs.training_examples(conn, "t", tmp_path / "m")
    finally:
        conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(copy))
    at = open_page()
    assert not [w.value for w in at.warning if "not trained on this dataset" in w.value]
    assert "Precision by p and r" in [h.value for h in at.subheader]
    assert "Rank history of" in [b.label for b in at.selectbox]
    assert not any(is_heldout(dialogue) for dialogue, _ in (e.key for e in examples))
    assert len(examples) == SkillRouter.from_pretrained(tmp_path / "m").n_train
    assert table(at, "with_gold")["proposed"].sum() > 0


def test_missing_checkpoint_says_so(env, tmp_path, monkeypatch):
    path, _ = env
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(path.read_bytes())
    conn = store.connect(copy)
    conn.execute("UPDATE model_runs SET parameters = json_object('checkpoint', '/nonexistent/ckpt', 'p', 2, 'r', 2)")
    conn.close()
    monkeypatch.setenv("TURNLENS_DB", str(copy))
    at = open_page()
    assert any("is missing" in w.value for w in at.warning)
    proposed = query(copy, "SELECT count(*) FROM candidates WHERE task = 'skill'")[0][0]
    assert not at.get("plotly_chart") and metric(at, "Proposed") == f"{proposed:,}"  # the counts still show


def test_page_without_a_skill_run(tmp_path, monkeypatch):
    one_turn_app_db(tmp_path, monkeypatch)
    at = open_page()
    assert "has not proposed pseudo-labels for this dataset yet: train and score it above" in at.info[0].value
    assert at.button(key="fam_skills_train_go")  # the page offers the job itself


# --- pure helpers ------------------------------------------------------------------------------------------

def hand_dynamics() -> Dynamics:
    """One example (index 0), skills 0..3, gt skill 3; depth 2. Epochs 1-3: top = [1, 2] (both above the gt,
    rank 3); epoch 4: top = [1, 3] (skill 2 below the gt: its streak breaks; gt rank 2). Example 1, gt 0,
    always rank 1: nothing proposed."""
    top = np.array([[1, 2], [1, 2], [1, 2], [1, 3], [0, 1], [0, 1], [0, 1], [0, 1]])
    return Dynamics(epoch=np.array([1, 2, 3, 4] * 2), example=np.array([0] * 4 + [1] * 4),
                    top_skills=top, top_scores=np.full((8, 2), 0.5, np.float32),
                    gt_skill=np.array([3] * 4 + [0] * 4), gt_score=np.full(8, 0.4, np.float32),
                    gt_rank=np.array([3, 3, 3, 2, 1, 1, 1, 1]))


def test_pseudo_label_grid_by_hand():
    skills = ["a", "b", "c", "d"]
    grid = sr.pseudo_label_grid(hand_dynamics(), skills, [["b", "d"], None], ps=(1, 2, 3), rs=(1, 3, 4, 5))
    assert set(grid["p"]) == {1, 2}  # depth 2: p=3 is left out
    g = grid.set_index(["p", "r"])
    # p=1: skill 1 (b) qualifies at epochs 1-4: proposed for r <= 4; it is in the gold set
    assert g.loc[(1, 1)].tolist() == [1, 1, 1.0] and g.loc[(1, 4)].tolist() == [1, 1, 1.0]
    assert g.loc[(1, 5), "proposed"] == 0 and np.isnan(g.loc[(1, 5), "precision"])
    # p=2: also skill 2 (c) at epochs 1-3 (not in gold): r <= 3 gives 2 labels, precision 1/2
    assert g.loc[(2, 3)].tolist() == [2, 2, 0.5] and g.loc[(2, 4)].tolist() == [1, 1, 1.0]
    # without gold: counted as proposed, not judged
    nogold = sr.pseudo_label_grid(hand_dynamics(), skills, [None, None], ps=(1,), rs=(1,))
    assert nogold[["proposed", "with_gold"]].iloc[0].tolist() == [1, 0] and np.isnan(nogold["precision"].iloc[0])
    assert list(grid.columns) == ["p", "r", "proposed", "with_gold", "precision"]


def test_rank_history_and_ablation_summary_by_hand():
    h = sr.rank_history(hand_dynamics(), 0, 2)
    assert h["epoch"].tolist() == [1, 2, 3, 4] and h["logged_rank"].tolist() == [3, 3, 3, 2]
    np.testing.assert_array_equal(h["proposed_rank"], [2, 2, 2, np.nan])
    table = benchmark.ablation_summary([{"variant": "base", "f1": 0.5}, {"variant": "base", "f1": 0.7},
                              {"variant": "+PL", "f1": 0.9}], metrics=("f1",))
    assert table["variant"].tolist() == ["base", "+PL"] and table["seeds"].tolist() == [2, 1]
    assert table["f1"].tolist() == pytest.approx([0.6, 0.9])
    assert table["f1_sd"].iloc[0] == pytest.approx(np.std([0.5, 0.7], ddof=1)) and np.isnan(table["f1_sd"].iloc[1])
