"""Query rewrites, evaluated by replay: rephrase detection, the absorbing-chain rewriter, the online
(retrieval) rewriter and both combined, with win/loss figures and user-bootstrap intervals.

Two evaluations, both mining on a log simulated from the DEV pool before day ``--cut-day``:

* time split: replay on the same log's later days;
* evaluation split: replay on the later days of a log simulated from the held-out SLURP EVALUATION split
  (same users, other utterances), which nothing is fitted or tuned on.

Simulated users rephrase keeping the meaning (``simulate_turns(..., rephrase="meaning")``). Writes the
report (Markdown) and its numbers (JSON, beside it); the Markdown is a pure function of the JSON.

    python scripts/evaluate_rewrites.py             # writes docs/results/rewrites.{md,json}
    python scripts/evaluate_rewrites.py --check     # reruns and compares with the committed JSON
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from analysis import report_cli
from analysis.rewrites import pipeline as pl
from analysis.simulate import START, load_eval_pool, load_pool, records_to_table, simulate_turns
from analysis.text_encoder import EmbeddingCache, TextEncoder

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
DEFAULT_OUT = REPO / "docs" / "results" / "rewrites.md"
HEADLINE = ("rewritten", "wins", "losses", "win_loss_ratio", "win_rate", "loss_rate", "defect_rate_without",
            "defect_rate_with", "defect_reduction")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=200_000, help="turns per simulated log (default 200,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cut-day", type=int, default=17, help="mine before this day of the 30 (default 17)")
    p.add_argument("--n-boot", type=int, default=1000)
    report_cli.add_common_args(p, repo=REPO, default_out=DEFAULT_OUT, slurp_dir=DEFAULT_SLURP_DIR)
    return p.parse_args(argv)


def _clean(x: object) -> object:
    """JSON-safe: tuples to lists, NaN to None, NumPy scalars to Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _summarise(result: pl.PipelineResult) -> dict:
    return _clean({
        "mining_turns": result.n_mining_turns, "rephrases": result.n_rephrases,
        "chains": result.mining.n_chains, "states": int(np.sum(result.mining.support > 0)),
        "rewrites": len(result.mining.rewrites),
        "retired": sum(bool(r["retire"]) for r in result.per_rewrite.values()),
        "detection": result.detection, "reports": result.reports,
        "online_training": ({"queries": result.online.n_train_queries, "pairs": result.online.n_train_pairs,
                             "trigger": result.online.config.trigger, "threshold": result.online.config.threshold,
                             "validation": (result.online.validation or {}).get("chosen")}
                            if result.online else None),
        "top_rewrites": [{"source": r.source, "target": r.target, "support": r.source_support, "gain": r.gain,
                          **{k: result.per_rewrite[r.source][k] for k in ("wins", "losses", "ties")}}
                         for r in result.mining.rewrites[:10]],
    })


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    t_start = time.time()
    import torch

    torch.set_num_threads(args.threads)
    cut = (START + timedelta(days=args.cut_day - 1)).timestamp()
    dev = records_to_table(simulate_turns(load_pool(), n_turns=args.turns, seed=args.seed, rephrase="meaning"))
    held = records_to_table(simulate_turns(load_eval_pool(args.slurp_dir), n_turns=args.turns, seed=args.seed,
                                           id_prefix="eval-", rephrase="meaning"))
    mine_t, later_dev = pl.split_by_time(dev, cut)
    _, later_eval = pl.split_by_time(held, cut)
    encoder, cache = TextEncoder.load(threads=args.threads), EmbeddingCache(args.cache_dir)

    def embed(texts: list[str]) -> np.ndarray:
        return cache.encode(encoder, texts)

    config = pl.PipelineConfig(n_boot=args.n_boot, seed=0)
    evaluations = {}
    for name, later in (("time split", later_dev), ("evaluation split", later_eval)):
        result = pl.run(mine_t, later, embed, config,
                        progress=lambda m, name=name: print(f"{name}: {m}", file=sys.stderr))
        evaluations[name] = {**_summarise(result), "eval_turns": later.num_rows}
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["scripts/evaluate_rewrites.py", *argv]),
        "args": {k: v for k, v in vars(args).items() if k not in ("slurp_dir", "cache_dir", "out", "check",
                                                                   "tolerance")},
        "machine": platform.machine(), "runtime_seconds": time.time() - t_start,
        "cut": datetime.fromtimestamp(cut, UTC).isoformat(), "config": _clean(config.to_dict()),
        "evaluations": evaluations,
    }


def metrics(results: dict) -> dict[str, object]:
    """The figures a rerun must reproduce (timings excluded)."""
    out: dict[str, object] = {}
    for name, ev in results["evaluations"].items():
        for k in ("mining_turns", "rephrases", "rewrites", "retired", "eval_turns"):
            out[f"{name} {k}"] = ev[k]
        for det, rep in (ev["detection"] or {}).items():
            out[f"{name} detection {det} f1"] = rep["f1"]
        for rewriter, rep in ev["reports"].items():
            for k in HEADLINE:
                v = rep["overall"][k]
                # an infinite ratio (no loss) as text: inf - inf is no difference report_cli can measure
                out[f"{name} {rewriter} {k}"] = "∞" if isinstance(v, float) and math.isinf(v) else v
    return out


def compare(expected: dict, actual: dict, *, tolerance: float = 0.0) -> list[str]:
    return report_cli.compare_flat(metrics(expected), metrics(actual), tolerance=tolerance)


def _ci(rep: dict, key: str, fmt: str = "{:.3f}") -> str:
    value, ci = rep.get(key), rep.get(f"{key}_ci") or [None, None]

    def show(x: float) -> str:
        return "∞" if math.isinf(x) else fmt.format(x)

    if value is None:
        return "n/a"
    inner = "" if ci[0] is None or ci[1] is None else f" [{show(ci[0])}, {show(ci[1])}]"
    return show(value) + inner


def render(res: dict) -> str:
    a = res["args"]
    L = ["# Query rewrites: rephrase detection, absorbing-chain and online rewriting, win/loss replay", "",
         f"Generated by `{res['command']}` (run time {res['runtime_seconds'] / 60:.1f} min on {a['threads']} CPU "
         f"threads, {res['machine']}). The numbers are also in the JSON file of the same name beside this one; "
         "`python scripts/evaluate_rewrites.py --check` reruns everything and compares.", "",
         f"Mining uses the turns before {res['cut']} of `simulate_turns(load_pool(), n_turns={a['turns']}, "
         f"seed={a['seed']}, rephrase=\"meaning\")` (dev pool). The **time split** replays that log from the cut on; "
         "the **evaluation split** replays the same days of `simulate_turns(load_eval_pool(slurp_dir), "
         f"n_turns={a['turns']}, seed={a['seed']}, id_prefix=\"eval-\", rephrase=\"meaning\")`: the same simulated "
         "users saying SLURP's held-out utterances. Nothing is fitted or tuned on either replay period (except the "
         "oracle row, see below).", "",
         "**Read the two splits differently.** The time split replays the same recordings the miner saw (each of "
         "the dev pool's 10,427 recordings recurs about 19 times in 200,000 turns, and a recording's recognition and "
         "NLU output are fixed), so it measures how well rewrites fix *recurring* requests, which is what a "
         "rewrite table is for. The evaluation split replays utterances never seen in mining: the honest figure "
         "for new requests.", "",
         "Definitions (analysis/rewrites/evaluation.py): a **win** is a rewritten turn that was defective, "
         "whose logged "
         "interpretation (intent and slots) was wrong and whose rewrite's interpretation matches the gold one; a "
         "**loss** a rewritten turn whose logged interpretation was right and whose rewrite's is not; a **tie** any "
         "other rewritten turn. Replayed defect rate: (defects - wins + losses) / turns. Intervals: 95% "
         f"percentile intervals of {res['config']['n_boot']} bootstrap replicates resampling users.", "",
         "Rewriters: **chain** applies every mined rewrite; **chain_retiring_oracle** retires each rewrite once its "
         "Beta posterior says it is probably worse than the original (P > 0.95), fed with the replay's own "
         "gold-judged wins and losses in time order: an oracle sizing what retirement could save with perfect "
         "feedback, not a deployable rewriter; **online** is the retrieval rewriter; **combined** runs chain first, "
         "else online.", ""]
    for name, ev in res["evaluations"].items():
        L += [f"## {name.capitalize()}", "",
              f"{ev['mining_turns']:,} mining turns, {ev['rephrases']:,} detected rephrases, {ev['states']:,} states, "
              f"**{ev['rewrites']:,} rewrites** mined; {ev['eval_turns']:,} replayed turns; {ev['retired']} "
              "rewrites would be retired by their Beta posterior (P(worse than the original) > 0.95).", ""]
        if ev["detection"]:
            L += ["| rephrase detector | precision | recall | F1 |", "| --- | --- | --- | --- |"]
            for det, rep in ev["detection"].items():
                L.append(f"| {det} | {_ci(rep, 'precision')} | {_ci(rep, 'recall')} | {_ci(rep, 'f1')} |")
            L.append("")
        ot = ev.get("online_training")
        if ot:
            v = ot["validation"] or {}
            L += [f"Online rewriter: ranker trained on {ot['queries']:,} defective requests ({ot['pairs']:,} "
                  f"candidate pairs); trigger >= {ot['trigger']} and ranker score >= {ot['threshold']}, chosen on "
                  f"the mining period's last fifth (validation: {v.get('wins', 0):,} wins, {v.get('losses', 0):,} "
                  f"losses, {v.get('rewritten', 0):,} rewritten).", ""]
        L += ["| rewriter | rewritten | wins | losses | win/loss | win rate | loss rate | defect rate without | "
              "defect rate with | defect reduction |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for rewriter, by in ev["reports"].items():
            o = by["overall"]
            L.append(f"| {rewriter} | {o['rewritten']:,} | {o['wins']:,} | {o['losses']:,} | "
                     f"{_ci(o, 'win_loss_ratio', '{:.1f}')} | {_ci(o, 'win_rate')} | {_ci(o, 'loss_rate')} | "
                     f"{_ci(o, 'defect_rate_without')} | {_ci(o, 'defect_rate_with')} | "
                     f"{_ci(o, 'defect_reduction')} |")
        L += ["", "By week (combined rewriter):", "", "| week | turns | wins | losses | win/loss | defect rate with |",
              "| --- | --- | --- | --- | --- | --- |"]
        for week, rep in ev["reports"].get("combined", ev["reports"]["chain"])["week"].items():
            L.append(f"| {week} | {rep['turns']:,} | {rep['wins']:,} | {rep['losses']:,} | "
                     f"{_ci(rep, 'win_loss_ratio', '{:.1f}')} | {_ci(rep, 'defect_rate_with')} |")
        L += ["", "By domain (chain rewriter):", "", "| domain | turns | wins | losses | win/loss |",
              "| --- | --- | --- | --- | --- |"]
        for dom, rep in ev["reports"]["chain"]["domain"].items():
            L.append(f"| {dom} | {rep['turns']:,} | {rep['wins']:,} | {rep['losses']:,} | "
                     f"{_ci(rep, 'win_loss_ratio', '{:.1f}')} |")
        L += ["", "Most supported rewrites:", "", "| source | rewrite | support | gain | wins | losses | ties |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in ev["top_rewrites"]:
            L.append(f"| {r['source']} | {r['target']} | {r['support']} | {r['gain']:.3f} | {r['wins']} | "
                     f"{r['losses']} | {r['ties']} |")
        L.append("")
    ts, es = res["evaluations"]["time split"]["reports"], res["evaluations"]["evaluation split"]["reports"]
    L += ["## Reading it", "",
          "- Published (private traffic): 8.5 wins per loss in one report, 11.8 in the paper, and a defect "
          "reduction above 30%. The figures above are ours on simulated users over real SLURP utterances.",
          f"- Combined rewriter, relative defect reduction: {_ci(ts['combined']['overall'], 'defect_reduction')} on "
          f"the time split and {_ci(es['combined']['overall'], 'defect_reduction')} on the evaluation split; the "
          "published 30% is **not** reached. Most defects here are recordings the recogniser or NLU gets wrong "
          "whatever the user does, and a rewrite only helps where a recurring request has a recurring fix.",
          f"- On the evaluation split the chain rewrites fire on {es['chain']['overall']['rewritten']:,} turns and "
          f"lose {es['chain']['overall']['losses']:,} times: SLURP gives the same short sentence different gold "
          "intents in different scenarios (of the held-out recordings whose text fails in the dev pool, nearly "
          "all have a gold intent no dev recording of that text has), so a rewrite learned from the dev "
          "utterances' failures is wrong for the held-out ones. With oracle feedback, retirement would cut those "
          f"losses to {es['chain_retiring_oracle']['overall']['losses']:,}; a deployment needs retirement driven by "
          "its defect signals.",
          "- Chain rewrites are keyed by the exact normalised request, so on the evaluation split they only fire "
          "on the held-out utterances whose recognised text also occurs in the dev pool; the online rewriter is "
          "the one meant to generalise.",
          "- Rates are per rewritten turn; the defect rates are over all replayed turns.",
          f"- Configuration: `{res['config']}`.", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    return report_cli.main(argv, parse_args=parse_args, run=run, render=render, compare=compare,
                           headline=lambda results: ", ".join(f"{k}: {v['rewrites']} rewrites"
                                                              for k, v in results["evaluations"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
