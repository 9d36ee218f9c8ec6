"""The groups a mitigation job targets and measures: the speakers of each shown group of one cohorting (learned
regions, automatic cohorts, state, city size) in a stored disparity report of the dataset, the report the
Disparity page drew. Shared by the two mitigation families (app/jobs/ewc_adaptation.py, app/jobs/verification.py).
Runs in the server process (it reads the database)."""

from __future__ import annotations

import math

import duckdb

from analysis import wer_normalise
from analysis.disparity import report as dr
from analysis.disparity import snapshot as disparity_snapshot
from app.jobs.registry import Option

WORST = ""  # the group option's default: the shown group with the highest pooled WER


def _check_group(value: str) -> None:
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise ValueError("not a group label")


# The options both mitigation families take (their action is "mitigate").
OPTIONS = (
    Option("cohorting", str, dr.AUTOMATIC, "which grouping of the disparity report to target and measure",
           actions=("mitigate",), choices=dr.COHORTINGS),
    Option("group", str, WORST, "the target group's label as the Disparity page shows it (empty: the group served "
                                "worst, highest pooled WER)", actions=("mitigate",), check=_check_group),
    Option("report_id", int, 0, "the stored disparity report whose groups are used (0: the newest for this data; "
                                "the analyse job or the Disparity page stores one)", actions=("mitigate",), low=0),
    Option("normaliser", str, "", "the WER normaliser of the report to take the groups from (docs/wer.md); empty: "
                                  "the dataset's default", actions=("mitigate",), choices=("", *wer_normalise.NAMES)),
)


def report_groups(conn: duckdb.DuckDBPyConnection, dataset: str, options: dict) -> dict:
    """{report_id, cohorting, target (the label, as text), groups {speaker_id: label as text} for every speaker of
    a shown group, summary [{group, speakers, wer}] highest WER first}. ValueError when there is no stored report,
    the cohorting is empty or the group is not shown."""
    from app.store import disparity as store_disparity

    # The report of the current data under the normaliser asked for (else the dataset's default): the
    # fingerprint names the normaliser, so a report made under another one is not taken.
    fingerprint = store_disparity.get_data_fingerprint(conn, dataset, options.get("normaliser") or None)
    report_id = int(options.get("report_id") or 0)
    if not report_id:
        report_id = store_disparity.get_latest_report_id(conn, dataset, fingerprint, disparity_snapshot.FORMAT) or 0
        if not report_id:
            raise ValueError(f"dataset {dataset!r} has no stored disparity report for its current data: run the "
                             "disparity analysis first (turnlens analyse disparity, or open the Disparity page)")
    stored = store_disparity.get_report_by_id(conn, report_id)
    if stored is None or stored["dataset"] != dataset:
        raise ValueError(f"no stored disparity report #{report_id} of dataset {dataset!r}")
    snap = disparity_snapshot.from_stored(stored["meta"], stored["parts"])
    cohorting = options["cohorting"]
    if cohorting not in snap.summaries:
        raise ValueError(f"the report has no {cohorting} (no locations or no voice embeddings)")
    shown = snap.summaries[cohorting]
    shown = shown[shown["shown"].astype(bool)] if "shown" in shown.columns else shown
    shown = shown[[not (isinstance(g, int | float) and g < 0) for g in shown["group"]]]  # no location / no voice
    if len(shown) < 2:
        raise ValueError(f"the report shows {len(shown)} {cohorting} group(s): a disparity needs at least two "
                         "groups (each of at least k speakers); choose another grouping")
    summary = sorted(({"group": str(g), "speakers": int(n), "wer": float(w)}
                      for g, n, w in zip(shown["group"], shown["speakers"], shown["wer"], strict=True)),
                     key=lambda r: -r["wer"] if math.isfinite(r["wer"]) else math.inf)
    groups = {str(s): str(g) for g in shown["group"] for s in snap.speakers_of(cohorting, g)}
    target = options.get("group") or summary[0]["group"]
    if target not in {r["group"] for r in summary}:
        raise ValueError(f"{cohorting} has no shown group {target!r}; shown: "
                         + ", ".join(r["group"] for r in summary))
    return {"report_id": report_id, "cohorting": cohorting, "target": target, "groups": groups, "summary": summary,
            "normaliser": options.get("normaliser") or ""}


def store_result(conn: duckdb.DuckDBPyConnection, family: str, dataset: str, result: dict, markdown: str) -> int:
    """Store a mitigation job's result (with its cohorting, target and report) as an analysis of the family; its
    id."""
    from app.store import disparity as store_disparity
    from app.store import evaluations as store_evaluations

    return store_evaluations.insert_analysis(
        conn, family=family, dataset=dataset, options={"cohorting": result["cohorting"], "group": result["target"],
                                                       "report_id": result["report_id"],
                                                       "normaliser": result.get("normaliser", "")},
        data_fingerprint=store_disparity.get_data_fingerprint(conn, dataset, result.get("normaliser") or None),
        summary=result, markdown=markdown)
