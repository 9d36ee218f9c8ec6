"""Mitigating a disparity by adapting the rescorer: the rescoring LM whose transcripts are on a dataset is adapted
to the n-best lists of one group the disparity analysis found (a learned region, an automatic cohort, a state or a
city-size band), plainly and with elastic weight consolidation (analysis/mitigation), and every group's WER is
measured before and after on the dataset's held-out dialogues, with speaker-bootstrap intervals.

One job (action ``mitigate``) does it all and stores the comparison as an analysis (family ``ewc-adaptation``),
which the Disparity page's Mitigation section draws. The adapted models are measured, not kept: a rerun with the
same options gives the same numbers. The family's job module and registry entry."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from app import store
from app.jobs.groups import OPTIONS as GROUP_OPTIONS
from app.jobs.groups import report_groups, store_result
from app.jobs.registry import Action, Family, Option, register
from app.jobs.rescoring import TRAINING_FILE, reference_lists

FAMILY = "ewc-adaptation"
SYSTEMS = ("first pass", "none", "finetune", "ewc")  # the logged 1-best, then the rescorer before and after
MAX_CHANGED = 300  # the changed utterances kept with the result


def base_checkpoint(conn: duckdb.DuckDBPyConnection, dataset: str) -> str:
    """The checkpoint of the newest rescorer run with transcript candidates on the dataset (the rescorer in use
    there); ValueError when there is none or it is gone."""
    from app.store import rescoring as store_rescoring

    runs = store_rescoring.list_rescoring_runs(conn, dataset)
    if runs.empty:
        raise ValueError(f"no rescorer has scored dataset {dataset!r}: train the rescorer and score this dataset "
                         "first (Rare-word rescoring page, or turnlens train|score rescoring)")
    checkpoint = json.loads(runs.iloc[0]["parameters"]).get("checkpoint")
    if not checkpoint or not (Path(checkpoint) / TRAINING_FILE).is_file():
        raise ValueError(f"the checkpoint of rescorer run #{int(runs.iloc[0]['run_id'])} is missing ({checkpoint})")
    return checkpoint


def read(conn: duckdb.DuckDBPyConnection, dataset: str, options: dict) -> dict:
    """What the job reads (server side): the groups, the rescorer in use, the text it was trained on (the
    Fisher's general data: its training dataset's training dialogues), and the dataset's scored n-best lists with
    references, split into training-side and held-out dialogues."""
    from analysis.holdout import split_turns
    from app.jobs.common import train_part

    found = report_groups(conn, dataset, options)
    checkpoint = base_checkpoint(conn, dataset)
    training = json.loads((Path(checkpoint) / TRAINING_FILE).read_text())
    general = [t["reference_text"] for t in train_part(store.list_turn_records(conn, training["dataset"]),
                                                       bool(training.get("hold_out", True)))
               if t.get("reference_text")]
    turns = [t for t in reference_lists(conn, dataset) if t.get("speaker_id")]
    train, held = split_turns(turns)
    return {"dataset": dataset, **found, "checkpoint": checkpoint, "general": general, "train": train, "held": held}


def mitigate(inputs: dict, options: dict, _path, progress) -> dict:
    """Adapt (plain and EWC) on the target group's training-side lists, measure every shown group on the held-out
    lists before and after. Pure: runs in the job's child process."""
    from analysis.mitigation.adapt import AdaptConfig, adapt
    from analysis.mitigation.ewc import fisher_diagonal
    from analysis.mitigation.groups import group_wer_table
    from analysis.rescoring.rescore import Rescorer, nbest_from_turn

    groups, target = inputs["groups"], inputs["target"]
    adapt_lists = [nbest_from_turn(t) for t in inputs["train"] if groups.get(t["speaker_id"]) == target]
    if len({nb.speaker for nb in adapt_lists}) < 2:
        raise ValueError(f"group {target} has {len(adapt_lists)} training-side n-best lists from fewer than 2 "
                         "speakers: too few to adapt on (EWC chooses its strength on a held-back speaker)")
    held = [t for t in inputs["held"] if t["speaker_id"] in groups]
    eval_lists = [nbest_from_turn(t) for t in held]
    if not eval_lists:
        raise ValueError("no held-out n-best lists of the report's shown groups to measure on")
    base = Rescorer.from_pretrained(inputs["checkpoint"])
    config = AdaptConfig(epochs=options["epochs"], seed=options["seed"])
    stage = progress
    fisher = fisher_diagonal(base.model, inputs["general"], max_sentences=config.fisher_sentences, seed=config.seed,
                             progress=stage)
    models, summaries = {"none": base.model}, {}
    for method in ("finetune", "ewc"):
        models[method], summaries[method] = adapt(base.model, base.lam, base.beta, adapt_lists, inputs["general"],
                                                  method=method, config=config, fisher=fisher, progress=stage)
        summaries[method].pop("history", None)
    chosen = {"first pass": [nb.hypotheses[nb.logged] for nb in eval_lists]}
    for name, model in models.items():
        chosen[name] = [c.text for c in Rescorer(model, lam=base.lam, beta=base.beta).rescore(eval_lists)]
    labels = [groups[t["speaker_id"]] for t in held]
    table = group_wer_table(eval_lists, chosen, labels, baseline="none", pairs=(("ewc", "finetune"),),
                            resamples=options["n_boot"], seed=options["seed"])
    changed = [{"dialogue_id": t["dialogue_id"], "turn_index": int(t["turn_index"]), "speaker_id": t["speaker_id"],
                "group": g, "reference": t["reference_text"], "before": chosen["none"][i],
                "finetune": chosen["finetune"][i], "ewc": chosen["ewc"][i]}
               for i, (t, g) in enumerate(zip(held, labels, strict=True))
               if len({chosen["none"][i], chosen["finetune"][i], chosen["ewc"][i]}) > 1]
    return {"cohorting": inputs["cohorting"], "target": target, "report_id": inputs["report_id"],
            "checkpoint": inputs["checkpoint"], "lam": base.lam, "beta": base.beta,
            "adapt_lists": len(adapt_lists), "adapt_speakers": len({nb.speaker for nb in adapt_lists}),
            "general_sentences": len(inputs["general"]), "adaptation": summaries, "table": table,
            "changed_total": len(changed), "changed": changed[:MAX_CHANGED], "report_summary": inputs["summary"]}


def markdown(result: dict) -> str:
    """The stored analysis's text: the target and the across-group figures before and after."""
    t = result["table"]
    rows = [f"| {name} | " + " | ".join(f"{t['systems'][name][fig]['value']:.3f}" for fig in
                                        ("overall", "mean", "max", "variance")) + " |" for name in SYSTEMS]
    return "\n".join([
        f"## EWC adaptation to {result['cohorting']} {result['target']}", "",
        f"Adapted on {result['adapt_lists']:,} training-side n-best lists of {result['adapt_speakers']:,} speakers; "
        f"measured on {t['lists']:,} held-out lists of {t['units']:,} speakers ({t['resamples']:,} speaker-bootstrap "
        "replicates).", "", "| system | overall | mean | max | variance |", "| --- | --- | --- | --- | --- |",
        *rows, ""])


def _write(conn: duckdb.DuckDBPyConnection, dataset: str, result: dict) -> dict:
    analysis_id = store_result(conn, FAMILY, dataset, result, markdown(result))
    d = result["table"]["differences"]["ewc vs none"]
    return {"analysis_id": analysis_id, "target": result["target"], "overall_change": d["overall"]["value"],
            "max_change": d["max"]["value"]}


def _describe(action: str, result: dict) -> str:
    return (f"adapted to {result['target']}: overall WER {result['overall_change']:+.4f}, worst group "
            f"{result['max_change']:+.4f} with EWC (analysis #{result['analysis_id']})")


register(Family(
    name=FAMILY, title="EWC adaptation", page="disparity",
    description="Mitigation: adapts the rescorer in use on a dataset to a group the disparity analysis found worse "
                "served (plain fine-tuning and elastic weight consolidation) and measures every group's WER before "
                "and after on the held-out dialogues.",
    options=(*GROUP_OPTIONS,
             Option("epochs", int, 10, "adaptation epochs over the group's lists", actions=("mitigate",), low=1,
                    high=100),
             Option("n_boot", int, 500, "speaker-bootstrap replicates of the intervals", actions=("mitigate",),
                    low=50, high=5000),
             Option("seed", int, 0, "batch order, the EWC dev split and the bootstrap", actions=("mitigate",),
                    low=0, high=2**31 - 1)),
    more=(Action("mitigate", "Mitigate", read, mitigate, "own", write=_write,
                 help="reduce a disparity: adapt a model to a worse-served group, measure every group before and "
                      "after"),),
    describe=_describe,
    # make run: on the speech demo's worst-served automatic cohort, after the rescorer scored it
    make_run=(("mitigate", "speech-demo", ()),),
))
