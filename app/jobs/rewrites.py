"""The query-rewrite family: mine a stored dataset's rephrase chains for query rewrites, replay them on a held-out
later period, and store the run, the rewrites becoming `rewrite` candidates for review; and its registry entry."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from analysis.candidates import CANDIDATE_SCHEMA, canonical_json, target_key
from analysis.rewrites import pipeline as pl
from app import store
from app.jobs.common import embedder
from app.jobs.registry import Action, Family, Option, register

MODEL_NAME = store.REWRITE_MODEL
VERSION = "1"
_ABSORBING = ("<SUCCESS>", "<FAILURE>")


def _num(x: object) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def metric_rows(reports: dict) -> list[dict]:
    """Long-format rows of the pipeline's win/loss reports (one row per rewriter, grouping, group, metric)."""
    rows = []
    for rewriter, by in reports.items():
        for grouping, groups in (("overall", {"all": by["overall"]}), ("domain", by["domain"]),
                                 ("week", by["week"])):
            for grp, rep in groups.items():
                for name, value in rep.items():
                    if name.endswith("_ci") or isinstance(value, str):
                        continue
                    lo, hi = rep.get(f"{name}_ci", (None, None))
                    rows.append({"rewriter": rewriter, "grouping": grouping, "grp": str(grp), "metric": name,
                                 "value": _num(value), "ci_low": _num(lo), "ci_high": _num(hi)})
    return rows


def held_out_from(table: pa.Table, *, evaluate_from: datetime | None, evaluate_days: float) -> float | None:
    """The start of the evaluation period in seconds, or None to mine everything."""
    if evaluate_from is not None:
        return evaluate_from.timestamp()
    if evaluate_days <= 0 or not pl.has_gold(table) or not table.num_rows:
        return None
    return float(pl.seconds_of(table).max()) - evaluate_days * 86400.0


def mine_inputs(conn: duckdb.DuckDBPyConnection, dataset: str, *, evaluate_from: datetime | None = None,
                evaluate_days: float = 14.0) -> dict:
    """What mining reads from the store: the dataset's turns, split in time into the mining period and the
    later evaluation period (none when the log has no gold labels or evaluate_days is 0)."""
    table = store.list_rewrite_inputs(conn, dataset, with_gold=True)
    if not table.num_rows:
        raise ValueError(f"dataset {dataset!r} has no turns (ingest a log first)")
    cut = held_out_from(table, evaluate_from=evaluate_from, evaluate_days=evaluate_days)
    mine_t, eval_t = pl.split_by_time(table, cut) if cut is not None else (table, None)
    if not mine_t.num_rows:
        raise ValueError("no turns before the evaluation period to mine; choose a later --evaluate-from")
    if eval_t is not None and not eval_t.num_rows:
        raise ValueError("no turns in the evaluation period (it starts after the last turn); choose an earlier "
                         "--evaluate-from, or --evaluate-days 0 to mine everything without evaluating")
    return {"dataset": dataset, "table": table, "cut": cut, "mine": mine_t, "eval": eval_t}


def mine_rows(inputs: dict, *, config: pl.PipelineConfig, embed: Callable | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Mine, replay and evaluate (pure: no database); returns everything a rewrite run stores."""
    dataset, table, cut, mine_t, eval_t = (inputs[k] for k in ("dataset", "table", "cut", "mine", "eval"))
    if config.with_online and embed is None:
        embed = embedder()
    result = pl.run(mine_t, eval_t, embed, config, progress=progress)
    if not result.mining.rewrites:
        raise ValueError(f"no rewrite met the thresholds in {mine_t.num_rows:,} turns (support >= "
                         f"{config.mining.min_support}, gain >= {config.mining.min_gain}); mine a larger log or "
                         "lower --min-support / --min-gain")
    evaluate_iso = datetime.fromtimestamp(cut, UTC).isoformat() if cut is not None else None
    params = canonical_json({"dataset": dataset, "config": config.to_dict(), "evaluate_from": evaluate_iso,
                             "turns": table.num_rows})
    fingerprint = hashlib.sha256(
        ("\n".join(sorted(f"{d}/{t}" for d, t in zip(table.column("dialogue_id").to_pylist(),
                                                      table.column("turn_index").to_pylist(), strict=True)))
         ).encode()).hexdigest()[:12]
    version = f"{VERSION}-{fingerprint}"
    cand_rows, rw_rows, ev_rows = [], [], []
    for r in result.mining.rewrites:
        if r.evidence:
            d, t, od, ot = r.evidence[0]
            kind, key = target_key(d, t, od, ot)
        else:
            (d, t), od, ot = r.example, None, None
            kind, key = target_key(d, t)
        cand_rows.append({"task": "rewrite", "target_kind": kind, "dialogue_id": d, "turn_index": t,
                          "other_dialogue_id": od, "other_turn_index": ot, "target_key": key,
                          "value": canonical_json({"source": r.source, "rewrite": r.target}),
                          "score": min(max(r.target_success, 0.0), 1.0), "distribution": None,
                          "model_name": MODEL_NAME, "model_version": version, "model_parameters": params,
                          "run_at": None})
        rec = result.per_rewrite.get(r.source, {})
        rw_rows.append({"source": r.source, "target": r.target, "source_support": r.source_support,
                        "source_failure_rate": r.source_failure_rate, "source_success": r.source_success,
                        "target_support": r.target_support, "target_success": r.target_success, "gain": r.gain,
                        "reach": r.reach, "direct": r.direct, "target_interpretation": r.target_interpretation,
                        "wins": rec.get("wins"), "losses": rec.get("losses"), "ties": rec.get("ties"),
                        "retire_probability": rec.get("retire_probability"), "target_key": key})
        ev_rows += [{"source": r.source, "rank": k, "dialogue_id": a, "turn_index": b, "other_dialogue_id": c,
                     "other_turn_index": e} for k, (a, b, c, e) in enumerate(r.evidence)]
    m = result.mining
    present = np.flatnonzero(m.support > 0)
    states = [{"state": m.states[i], "support": int(m.support[i]), "failure_rate": float(m.failure_rate[i]),
               "success": float(min(max(m.success[i], 0.0), 1.0))} for i in present.tolist()]
    coo = m.transitions.tocoo()
    transitions = [{"from_state": m.states[i], "to_state": m.states[j], "n": int(v)}
                   for i, j, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True)]
    for col, name in enumerate(_ABSORBING):
        transitions += [{"from_state": m.states[i], "to_state": name, "n": int(m.absorbed[i, col])}
                        for i in np.flatnonzero(m.absorbed[:, col] > 0).tolist()]
    catch_all = ({**result.catch_all.to_dict(), "from": result.catch_all_from} if result.catch_all else None)
    summary = {"detection": result.detection, "detector": result.detector.to_dict(), "catch_all": catch_all,
               "baseline_threshold": result.baseline.threshold, "timings": result.timings,
               "online": ({"ranker": result.online.ranker.to_dict(), "trigger": result.online.trigger.to_dict(),
                           "chosen": {"trigger": result.online.config.trigger,
                                      "threshold": result.online.config.threshold},
                           "validation": (result.online.validation or {}).get("chosen")}
                          if result.online else None),
               "config": config.to_dict()}
    n_eval = eval_t.num_rows if eval_t is not None else 0
    run = {"dataset": dataset, "states": config.mining.states, "evaluate_from": evaluate_iso,
           "n_mining_turns": result.n_mining_turns, "n_eval_turns": n_eval, "n_rephrases": result.n_rephrases,
           "n_chains": m.n_chains, "summary": canonical_json(summary)}
    overall = {k: v["overall"] for k, v in result.reports.items()}
    return {"store": {"candidates": pa.Table.from_pylist(cand_rows, schema=CANDIDATE_SCHEMA), "run": run,
                      "rewrites": rw_rows, "evidence": ev_rows, "states": states, "transitions": transitions,
                      "metrics": metric_rows(result.reports)},
            "summary": {"rewrites": len(m.rewrites), "mining_turns": result.n_mining_turns, "eval_turns": n_eval,
                        "rephrases": result.n_rephrases, "evaluate_from": evaluate_iso, "overall": overall,
                        "retired": sum(bool(r.get("retire")) for r in result.per_rewrite.values())}}


def write_run(conn: duckdb.DuckDBPyConnection, rows: dict) -> dict:
    """Store a rewrite run (its rewrites becoming `rewrite` candidates) in one transaction; its summary with
    the run id."""
    run_id = store.insert_rewrite_run(conn, **rows["store"])
    runs = store.list_rewrite_runs(conn, rows["store"]["run"]["dataset"])
    number = int(runs.set_index("run_id").loc[run_id, "run_number"])  # counted per dataset, from 1
    return {"run_id": run_id, "run_number": number, **rows["summary"]}


def mine(conn: duckdb.DuckDBPyConnection, dataset: str, *, config: pl.PipelineConfig,
         evaluate_from: datetime | None = None, evaluate_days: float = 14.0, embed: Callable | None = None,
         progress: Callable[[str], None] | None = None) -> dict:
    """Mine ``dataset`` (before the evaluation period), replay on the evaluation period, store the run, all in
    this process. Returns a summary with the run id, counts and the overall win/loss figures."""
    inputs = mine_inputs(conn, dataset, evaluate_from=evaluate_from, evaluate_days=evaluate_days)
    rows = mine_rows(inputs, config=config, embed=embed, progress=progress)
    if progress:
        progress("storing the run")
    return write_run(conn, rows)


# --------------------------------------------------------------------- the registry entry


def _iso(text: str) -> datetime | None:
    """An ISO 8601 time (UTC when it has no zone), or None for an empty text."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _config(options: dict) -> pl.PipelineConfig:
    from analysis.rewrites.mining import MiningConfig

    mining = MiningConfig(states=options["states"], min_support=options["min_support"],
                          min_failure_rate=options["min_failure_rate"],
                          min_target_support=options["min_target_support"], min_gain=options["min_gain"],
                          min_reach=options["min_reach"])
    return pl.PipelineConfig(mining=mining, with_online=options["online"], n_boot=options["n_boot"],
                             session_gap=options["session_gap"])


def _read(conn, dataset: str, options: dict) -> dict:
    return mine_inputs(conn, dataset, evaluate_from=_iso(options["evaluate_from"]),
                       evaluate_days=options["evaluate_days"])


def _run(inputs: dict, options: dict, _path, progress) -> dict:
    steps = [0]

    def say(message: str) -> None:  # the pipeline names its steps; their number is not known up front
        steps[0] += 1
        progress(message, steps[0], None)

    return mine_rows(inputs, config=_config(options), progress=say)


def _describe(action: str, result: dict) -> str:
    head = (f"run {result['run_number']} of the dataset: {result['rewrites']:,} rewrites mined from "
            f"{result['mining_turns']:,} turns "
            f"({result['rephrases']:,} rephrases)")
    if not result["evaluate_from"]:
        return head + "; no evaluation period (no gold labels, or evaluate_days 0)"
    parts = []
    for name, rep in result["overall"].items():
        ratio = rep["win_loss_ratio"]
        # the ratio only where it is defined: with no loss (inf) or nothing decided (NaN) the counts say it all
        parts.append(f"{name}: {rep['wins']:,} wins / {rep['losses']:,} losses"
                     + (f" (win/loss {ratio:.1f})" if ratio is not None and math.isfinite(ratio) else ""))
    return f"{head}; replayed on {result['eval_turns']:,} later turns: " + "; ".join(parts)


_DEFAULTS = pl.PipelineConfig()
register(Family(
    name="rewrites", title="Query rewrites", page="rewrites",
    description="Query rewrites mined from rephrase chains with an absorbing Markov chain, plus an online "
                "(retrieval) rewriter, replayed on a later period of the log and judged by wins and losses; "
                "the rewrites become `rewrite` candidates (docs/rewrites.md).",
    options=(
        Option("evaluate_days", float, 14.0, "days held out at the end for the replay, when the log has gold "
                                             "labels (0: mine everything, no evaluation)", ("mine",), low=0),
        Option("evaluate_from", str, "", "start of the held-out period, ISO 8601 (empty: the last evaluate_days)",
               ("mine",), check=_iso),
        Option("states", str, _DEFAULTS.mining.states, "what a chain state is: the normalised utterance or the "
                                                       "logged interpretation", ("mine",),
               choices=("utterance", "interpretation")),
        Option("min_support", int, _DEFAULTS.mining.min_support, "a source must be seen this often", ("mine",),
               low=1),
        Option("min_failure_rate", float, _DEFAULTS.mining.min_failure_rate,
               "share of a source's turns with a defect signal", ("mine",), low=0, high=1),
        Option("min_target_support", int, _DEFAULTS.mining.min_target_support,
               "a rewrite target must be seen this often", ("mine",), low=1),
        Option("min_gain", float, _DEFAULTS.mining.min_gain, "target success minus source success", ("mine",),
               low=-1, high=1),
        Option("min_reach", float, _DEFAULTS.mining.min_reach, "expected visits of the target on the source's "
                                                               "walks", ("mine",), low=1e-9, high=1),
        Option("session_gap", float, _DEFAULTS.session_gap, "seconds between sessions", ("mine",), low=1e-9),
        Option("online", bool, True, "also train and replay the online (retrieval) rewriter", ("mine",)),
        Option("n_boot", int, 1000, "bootstrap replicates of the win/loss intervals", ("mine",), low=0,
               high=100_000),
    ),
    more=(Action("mine", "Mine", _read, _run, "own", write=lambda conn, dataset, rows: write_run(conn, rows),
                 help="mine rewrites, replay them on the later period and store the run"),),
    describe=_describe,
))
