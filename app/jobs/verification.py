"""Mitigating a disparity in speaker verification: a verifier (a small projection of each turn's resemblyzer voice
embedding, analysis/verification) is trained on some speakers of a dataset plainly and with adversarial reweighting
(ARW: an adversary up-weights the clusters of voices the verifier gets wrong), and the equal error rate of each
scorer (the untrained cosine, plain, ARW) is measured on the other, held-out speakers, overall and per group of the
disparity report, with the gaps between groups and speaker-bootstrap intervals.

One job (action ``mitigate``) embeds the turns' audio, trains both verifiers and measures them; the comparison is
stored as an analysis (family ``verification``), which the Disparity page's Mitigation section draws. The
family's job module and registry entry."""

from __future__ import annotations

import duckdb

from app import store
from app.jobs.groups import OPTIONS as GROUP_OPTIONS
from app.jobs.groups import report_groups, store_result
from app.jobs.registry import Action, Family, Option, register

FAMILY = "verification"
SCORERS = ("cosine", "plain", "arw")  # the untrained resemblyzer cosine, the plain verifier, the ARW verifier


def read(conn: duckdb.DuckDBPyConnection, dataset: str, options: dict) -> dict:
    """The groups, and every turn with audio of a speaker in a shown group (the audio is read by the child)."""
    from app.settings import audio_root

    found = report_groups(conn, dataset, options)
    groups = found["groups"]
    records = [t for t in store.list_turn_audio(conn, dataset) if t["speaker_id"] in groups]
    if len({r["speaker_id"] for r in records}) < 8:
        raise ValueError(f"dataset {dataset!r} has {len({r['speaker_id'] for r in records})} speakers with audio in "
                         "the report's shown groups: speaker verification needs at least 8 (some to train on, "
                         "others held out)")
    return {"dataset": dataset, **found, "records": records, "audio_root": str(audio_root())}


def mitigate(inputs: dict, options: dict, _path, progress) -> dict:
    """Embed, split speakers (stratified by group), train plain and ARW, measure all three scorers on the held-out
    speakers. Pure: runs in the job's child process."""
    from dataclasses import asdict

    import numpy as np

    from analysis.speech.embeddings import EmbeddingConfig, embed_records
    from analysis.verification import VerifierConfig, evaluate_verifier, leak_check, train_verifier
    from analysis.verification.data import split_speakers

    records, groups = inputs["records"], inputs["groups"]
    done = (lambda d, t: progress("embedding voices", d, t)) if progress else None
    result = embed_records(records, inputs["audio_root"], config=EmbeddingConfig(workers=1), progress=done)
    rows = sorted(result.turn_embeddings)
    x = np.stack([result.turn_embeddings[i] for i in rows]).astype(np.float32)
    speakers = np.array([records[i]["speaker_id"] for i in rows], dtype=object)
    labels = np.array([groups[s] for s in speakers], dtype=object)
    train_ids, held_ids = split_speakers(list(speakers), list(labels), held_out=options["held_out"],
                                         seed=options["seed"])
    train, held = np.isin(speakers, train_ids), np.isin(speakers, held_ids)
    leak_check(speakers[train], [], speakers[held])
    config = VerifierConfig(seed=options["seed"])
    scorers = {"cosine": None}
    for i, method in enumerate(("plain", "arw")):
        if progress:
            progress(f"training the {method} verifier", i, 2)
        scorers[method] = train_verifier(x[train], list(speakers[train]), config=config, method=method)
    measured = {}
    for i, (name, verifier) in enumerate(scorers.items()):
        if progress:
            progress("measuring on held-out speakers", i, len(scorers))
        measured[name] = evaluate_verifier(verifier, x[held], list(speakers[held]),
                                           {inputs["cohorting"]: list(labels[held])}, n_boot=options["n_boot"],
                                           seed=options["seed"])
    return {"cohorting": inputs["cohorting"], "target": inputs["target"], "report_id": inputs["report_id"],
            "turns": len(rows), "turns_without_voice": len(records) - len(rows),
            "train_speakers": len(train_ids), "held_out_speakers": len(held_ids),
            "train_turns": int(train.sum()), "held_out_turns": int(held.sum()),
            "config": asdict(config), "scorers": measured, "report_summary": inputs["summary"]}


def markdown(result: dict) -> str:
    rows = []
    for name in SCORERS:
        m = result["scorers"][name]
        o, gap = m["overall"], m["groupings"][result["cohorting"]]["gap"]
        rows.append(f"| {name} | {o['value']:.3f} [{o['low']:.3f}, {o['high']:.3f}] | {gap['value']:.3f} |")
    return "\n".join([
        f"## Speaker verification across {result['cohorting']}", "",
        f"Trained on {result['train_speakers']:,} speakers, measured on {result['held_out_speakers']:,} held-out "
        "speakers (every pair of their turns).", "", "| scorer | EER [95%] | gap between groups |",
        "| --- | --- | --- |", *rows, ""])


def _write(conn: duckdb.DuckDBPyConnection, dataset: str, result: dict) -> dict:
    analysis_id = store_result(conn, FAMILY, dataset, result, markdown(result))
    return {"analysis_id": analysis_id, "plain": result["scorers"]["plain"]["overall"]["value"],
            "arw": result["scorers"]["arw"]["overall"]["value"], "held_out_speakers": result["held_out_speakers"]}


def _describe(action: str, result: dict) -> str:
    return (f"EER on {result['held_out_speakers']} held-out speakers: plain {result['plain']:.3f}, ARW "
            f"{result['arw']:.3f} (analysis #{result['analysis_id']})")


register(Family(
    name=FAMILY, title="Speaker verification (ARW)", page="disparity",
    description="Mitigation: trains a speaker verifier on voice embeddings of the turns' audio, plainly and with "
                "adversarial reweighting, and measures the equal error rate per group of the disparity report on "
                "held-out speakers.",
    options=(*GROUP_OPTIONS,
             Option("held_out", float, 0.3, "share of each group's speakers held out for measuring",
                    actions=("mitigate",), low=0.1, high=0.9),
             Option("n_boot", int, 300, "speaker-bootstrap replicates of the intervals", actions=("mitigate",),
                    low=50, high=5000),
             Option("seed", int, 0, "initialisation, batches, the speaker split and the bootstrap",
                    actions=("mitigate",), low=0, high=2**31 - 1)),
    more=(Action("mitigate", "Mitigate", read, mitigate, "own", write=_write,
                 help="reduce a disparity: train speaker verifiers plainly and with adversarial reweighting, "
                      "measure every group's EER on held-out speakers"),),
    describe=_describe,
    # make run: on the speech demo's audio, its automatic cohorts
    make_run=(("mitigate", "speech-demo", ()),),
))
