"""The whole disparity analysis of one dataset, as the Disparity page and `scripts/evaluate_disparity.py` show it.

`analyse` composes the parts of ``analysis.disparity.regions`` and ``analysis.disparity.cohorts``: the speaker
table, the overall
pooled WER with its speaker-bootstrap interval, the learned regions, automatic and geographic cohorts, one
summary per grouping (WER, interval, difference to the rest with its interval, error make-up), the comparison
table with an interval on each WER gap, the region stability and the speaker cells drawn on the map.

Privacy (speaker locations are personal data): every grouping shown has at least ``k`` speakers. Regions have
at least ``max(min_speakers, k)`` speakers by construction (each side of every cut does); states and
city-size bands with fewer than k speakers are merged into ``OTHER`` first (and that group is dropped if it is
still too small); automatic cohorts or map cells with fewer than k speakers are not shown. What was merged or
hidden is counted in ``Privacy`` so the page can say so.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis.disparity import cohorts as co
from analysis.disparity import regions as dp

OTHER = "(other)"  # states / city-size bands of fewer than k speakers, merged
NO_REGION = -1  # the region label of speakers without a location
# The fixed outer box of the region tree, so no cell edge is an individual speaker's coordinate: the
# contiguous US, widened to whole degrees around any speaker outside it (Alaska, Hawaii).
US_EXTENT = (24.0, 50.0, -125.0, -66.0)

AUTOMATIC, REGION, STATE, CITY_SIZE = "automatic cohorts", "learned regions", "state", "city size"
COHORTINGS = (AUTOMATIC, REGION, STATE, CITY_SIZE)


@dataclass(frozen=True)
class Options:
    """Settings of one analysis (every one is on the page; defaults as the issue asks)."""

    k: int = 5  # privacy minimum: no group, region or map cell of fewer speakers is shown
    min_words: int = 500  # per side of a region cut
    min_speakers: int = 20  # per side of a region cut (raised to k if below)
    max_regions: int = 64
    alpha: float = 0.05  # level of each split's permutation test
    n_perm: int = 99
    n_boot: int = 1000  # speaker-bootstrap replicates
    confidence: float = 0.95
    cohorts: int | None = None  # k-means k; None = highest silhouette over k_range
    k_range: tuple[int, ...] = tuple(range(2, 9))
    stability_refits: int = 20
    cell_deg: float = 1.0  # map cells: speakers aggregated on a grid of this many degrees
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("k", 1), ("min_words", 1), ("min_speakers", 1), ("max_regions", 1), ("n_perm", 1),
                          ("n_boot", 1), ("stability_refits", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if self.cohorts is not None and (isinstance(self.cohorts, bool) or not isinstance(self.cohorts, int)
                                         or self.cohorts < 1):
            raise ValueError(f"cohorts must be None or an integer >= 1, got {self.cohorts!r}")
        if not self.cell_deg > 0:
            raise ValueError(f"cell_deg must be > 0, got {self.cell_deg!r}")

    @property
    def tree_min_speakers(self) -> int:
        return max(self.min_speakers, self.k)

    @property
    def tree_n_perm(self) -> int:
        """Permutations per split test: at least n_perm, and enough for p <= alpha to be reachable with room
        to spare (alpha * (permutations + 1) >= 5; 99 at alpha = 0.05), so a small alpha never silently forbids
        every split."""
        return max(self.n_perm, math.ceil(5 / self.alpha) - 1)


@dataclass(frozen=True)
class Privacy:
    """What the k-speaker minimum merged or hid."""

    k: int
    merged: dict[str, int] = field(default_factory=dict)  # cohorting -> groups merged into OTHER
    hidden_groups: dict[str, int] = field(default_factory=dict)  # cohorting -> groups not shown
    hidden_speakers: dict[str, int] = field(default_factory=dict)  # cohorting -> their speakers
    hidden_cells: int = 0  # map cells of fewer than k speakers (their speakers still count everywhere else)
    hidden_cell_speakers: int = 0


@dataclass(frozen=True, eq=False)
class Report:
    """One dataset's disparity analysis (see the module docstring)."""

    options: Options
    table: dp.SpeakerTable
    overall: dict[str, float]  # speakers, utterances, words, errors, wer, wer_low, wer_high, speaker_mean_wer,
    #                            sub_share, del_share, ins_share, located_speakers
    regions: list[dp.Region]
    labels: dict[str, np.ndarray]  # cohorting -> one label per speaker (after merging small groups)
    summaries: dict[str, pd.DataFrame]  # cohorting -> the groups shown (see group_table)
    comparison: pd.DataFrame  # comparison_table + wer_gap_low / wer_gap_high, one row per cohorting
    cohort_fit: co.CohortFit | None  # None when fewer than 4 speakers have a voice embedding (or k-means failed)
    voice_rows: np.ndarray  # rows of `table` with a voice embedding: cohort_fit.labels[i] is row voice_rows[i]'s
    cohort_note: str  # why there are no automatic cohorts, or who was left out of them ("" when nothing to say)
    stability: dp.Stability | None  # None with a single region (nothing to keep together across cells)
    points: pd.DataFrame  # map cells of >= k speakers: lat, lon (cell centre), speakers, words, errors, wer
    privacy: Privacy
    seconds: dict[str, float]  # step -> seconds, for the page's footnote and the benchmark

    def speakers_of(self, cohorting: str, group: object) -> np.ndarray:
        """Speaker ids of one shown group (empty for a group that is hidden)."""
        return speakers_of(self.table.speaker, self.labels, self.summaries, cohorting, group)

    def geojson(self) -> dict:
        """The shown regions as GeoJSON with their intervals (regions_geojson over the k-anonymous summary)."""
        return dp.regions_geojson(self.regions, self.summaries[REGION])

    def assignments(self) -> pd.DataFrame:
        """One row per speaker: speaker_id, each cohorting's label (hidden groups and "no voice" / "no region"
        blank), utterances, words, errors, wer. The cohort CSV export (see ``assignments``)."""
        t = self.table
        return assignments(t.speaker, self.labels, self.summaries, k=self.options.k, utterances=t.utterances,
                           words=t.words, errors=t.errors)


def speakers_of(speaker: np.ndarray, labels: dict[str, np.ndarray], summaries: dict[str, pd.DataFrame],
                cohorting: str, group: object) -> np.ndarray:
    """Speaker ids of one shown group of a cohorting (empty for a group that is hidden)."""
    shown = summaries[cohorting]
    if not (shown["group"] == group).any():
        return np.array([], dtype=object)
    return np.asarray(speaker, dtype=object)[np.asarray(labels[cohorting]) == group]


def assignments(speaker: np.ndarray, labels: dict[str, np.ndarray], summaries: dict[str, pd.DataFrame], *, k: int,
                utterances: np.ndarray, words: np.ndarray, errors: np.ndarray) -> pd.DataFrame:
    """One row per speaker: speaker_id, each cohorting's label (hidden groups and "no voice" / "no region"
    blank), utterances, words, errors, wer. The cohort CSV export.

    Each geographic column is k-anonymous alone, but their combination need not be (region 1 x AZ x >=1M
    can be one speaker, pinning them to Phoenix): the geographic labels of speakers whose combination of
    region, state and city-size band has fewer than k speakers are blanked together."""
    out = pd.DataFrame({"speaker_id": np.asarray(speaker, dtype=object)})
    for name in COHORTINGS:
        if name not in labels:
            continue
        shown = {g for g in summaries[name]["group"] if not (isinstance(g, (int, np.integer)) and g < 0)}
        out[name.replace(" ", "_")] = pd.Series([lab if lab in shown else "" for lab in labels[name]], dtype=object)
    geo = [c for c in ("learned_regions", "state", "city_size") if c in out.columns]
    if geo:
        combo = out[geo[0]].astype(str).str.cat([out[c].astype(str) for c in geo[1:]], sep="|")
        rare = combo.map(combo.value_counts()) < k
        out.loc[rare, geo] = ""
    out["utterances"] = np.asarray(utterances)
    out["words"] = np.asarray(words)
    out["errors"] = np.asarray(errors)
    out["wer"] = out["errors"] / out["words"]
    return out


def table_fingerprint(table: dp.SpeakerTable) -> str:
    """The fingerprint of everything the analysis reads (every column of the speaker table: ids, counts, places
    and voice embeddings): a report or layout made from a table is current exactly while the data give the
    same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, table.speaker)).encode())
    for name in ("utterances", "words", "sub", "dele", "ins", "lat", "lon", "embedding"):
        values = np.ascontiguousarray(getattr(table, name))
        digest.update(f"\x1e{name}{values.shape}{values.dtype.str}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()[:32]


Progress = Callable[[str, float], None]  # (step being started, share of the work done so far)

TURN_COLUMNS = ("speaker_id", "wer_sub", "wer_del", "wer_ins", "wer_ref_words", "latitude", "longitude",
                "speaker_embedding")


def speaker_table_from_turns(turns) -> dp.SpeakerTable:
    """The speaker table of stored turns: a pyarrow Table or DataFrame with ``TURN_COLUMNS`` (as
    ``app.store.list_speaker_turns`` returns them; speaker_embedding may be absent or null)."""
    columns = set(turns.column_names if hasattr(turns, "column_names") else turns.columns)
    missing = [c for c in TURN_COLUMNS[:5] if c not in columns]
    if missing:
        raise ValueError(f"the turns lack the columns {missing}")

    def col(name: str):
        return turns[name] if name in columns else None

    emb = col("speaker_embedding")
    if emb is not None and hasattr(emb, "null_count") and emb.null_count == len(emb):
        emb = None  # no turn has a voice embedding
    return dp.speaker_table(col("speaker_id"), col("wer_sub"), col("wer_del"), col("wer_ins"), col("wer_ref_words"),
                            col("latitude"), col("longitude"), emb)


def _merge_small(labels: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Groups of fewer than k speakers relabelled OTHER (UNKNOWN stays itself); returns (labels, merged)."""
    uniq, counts = np.unique(labels.astype(str), return_counts=True)
    small = {u for u, c in zip(uniq, counts, strict=True) if c < k and u != co.UNKNOWN}
    if not small:
        return labels, 0
    out = labels.astype(object).copy()
    out[np.isin(labels.astype(str), list(small))] = OTHER
    return out, len(small)


def group_table(table: dp.SpeakerTable, labels: np.ndarray, *, k: int, n_boot: int, seed: int,
                confidence: float) -> tuple[pd.DataFrame, dp.BootstrapResult]:
    """group_summary with the speaker-bootstrap interval, the difference to all other speakers and its
    interval (diff_rest, diff_low, diff_high: positive = served worse than the rest), and ``shown`` (>= k
    speakers). Rows in group order."""
    boot = dp.speaker_bootstrap(table, labels, n_boot=n_boot, seed=seed, confidence=confidence)
    summary = dp.group_summary(table, labels, bootstrap=boot)
    diffs = []
    for g in summary["group"]:
        if len(summary) < 2:
            diffs.append((math.nan, math.nan, math.nan))
            continue
        d = dp.difference_interval(boot, g, dp.REST)
        diffs.append((d.estimate, d.low, d.high))
    summary["diff_rest"], summary["diff_low"], summary["diff_high"] = (np.array(c, dtype=float)
                                                                       for c in zip(*diffs, strict=True))
    summary["shown"] = dp.k_anonymous(summary, k).to_numpy()
    return summary, boot


def gap_interval(boot: dp.BootstrapResult, worst: object, best: object) -> tuple[float, float]:
    """Percentile interval of the WER gap (WER_worst - WER_best) / WER_best, the two cohorts fixed as in the
    data, from the same speaker-bootstrap replicates (so their correlation is kept)."""
    rep = boot.replicates
    w, b = rep[:, boot.index(worst)], rep[:, boot.index(best)]
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = (w - b) / b
    # A replicate whose best cohort has WER 0 has an infinite gap: it must stay (it is the widest), only 0/0
    # is dropped. Infinity is swapped for a huge finite number so the quantile can interpolate, and any bound
    # that lands up there is infinite: the interval is unbounded above.
    gap = gap[~np.isnan(gap)]
    if not len(gap):
        return math.nan, math.nan
    huge = np.finfo(np.float64).max / 4
    q = np.quantile(np.where(np.isposinf(gap), huge, gap), [(1 - boot.confidence) / 2, (1 + boot.confidence) / 2])
    low, high = (math.inf if x >= 1e300 else float(x) for x in q)
    return low, high


def map_cells(table: dp.SpeakerTable, *, cell_deg: float, k: int) -> tuple[pd.DataFrame, int, int]:
    """Speakers aggregated on a lat/lon grid: (cells of >= k speakers, hidden cells, their speakers).
    A cell is drawn at its centre, not at its speakers' mean place, so no coordinate of a speaker is shown."""
    has = np.isfinite(table.lat) & np.isfinite(table.lon)
    lat_cell = np.floor(table.lat[has] / cell_deg)
    lon_cell = np.floor(table.lon[has] / cell_deg)
    frame = pd.DataFrame({"lat": (lat_cell + 0.5) * cell_deg, "lon": (lon_cell + 0.5) * cell_deg,
                          "errors": table.errors[has], "words": table.words[has]})
    cells = frame.groupby(["lat", "lon"], as_index=False).agg(speakers=("errors", "size"), words=("words", "sum"),
                                                             errors=("errors", "sum"))
    cells["wer"] = cells["errors"] / cells["words"]
    small = cells["speakers"] < k
    return (cells[~small].reset_index(drop=True), int(small.sum()), int(cells.loc[small, "speakers"].sum()))


def _extent(table: dp.SpeakerTable) -> tuple[float, float, float, float] | None:
    has = np.isfinite(table.lat) & np.isfinite(table.lon)
    if not has.any():
        return None
    lat, lon = table.lat[has], table.lon[has]
    return (min(US_EXTENT[0], math.floor(lat.min())), max(US_EXTENT[1], math.ceil(lat.max())),
            min(US_EXTENT[2], math.floor(lon.min())), max(US_EXTENT[3], math.ceil(lon.max())))


def _automatic_cohorts(table: dp.SpeakerTable, o: Options) -> tuple[co.CohortFit | None, np.ndarray, str]:
    """k-means over the speakers that have a voice embedding: (fit or None, their rows, a note for the page).
    A failure (k above the number of such speakers, identical embeddings) leaves the rest of the analysis be."""
    if table.embedding.shape[1] == 0:
        return None, np.array([], dtype=np.int64), "The speakers have no voice embeddings."
    rows = np.flatnonzero(np.isfinite(table.embedding).all(axis=1))
    missing = len(table) - len(rows)
    left_out = (f" {missing:,} speaker(s) without a voice embedding are left out (\"(no voice)\")."
                if missing else "")
    if len(rows) < 4:
        return None, rows, f"Only {len(rows)} speaker(s) have a voice embedding: too few to cluster."
    k = o.cohorts
    if k is not None and k >= len(rows):
        return None, rows, f"k = {k} needs more than {k} speakers with a voice embedding; there are {len(rows)}."
    try:
        fit = co.kmeans_cohorts(table.embedding[rows], k=k, k_range=o.k_range, seed=o.seed)
    except ValueError as exc:
        return None, rows, f"Automatic cohorts could not be formed: {exc}."
    return fit, rows, left_out.strip()


def analyse(table: dp.SpeakerTable, options: Options = Options(), *, progress: Progress | None = None) -> Report:
    """Run every step on one speaker table (see the module docstring); ``progress`` hears of each step.

    Raises ValueError when the table has no speakers.
    """
    if len(table) == 0:
        raise ValueError("no speaker has an utterance with a reference transcript: there is no WER to analyse")
    o = options
    seconds: dict[str, float] = {}
    steps = ["overall", "regions", "cohorts", "groups", "stability", "map"]

    def step(name: str) -> None:
        if progress is not None:
            progress(name, steps.index(name) / len(steps))

    def timed(name: str, since: float) -> None:
        seconds[name] = time.perf_counter() - since

    step("overall")
    t = time.perf_counter()
    everyone = np.zeros(len(table), dtype=np.int64)
    boot_all = dp.speaker_bootstrap(table, everyone, n_boot=o.n_boot, seed=o.seed, confidence=o.confidence)
    whole = dp.group_summary(table, everyone).iloc[0]
    located = np.isfinite(table.lat) & np.isfinite(table.lon)
    low, high = boot_all.interval(0)
    overall = {"speakers": int(whole["speakers"]), "utterances": int(whole["utterances"]),
               "words": int(whole["words"]), "errors": int(whole["errors"]), "wer": float(whole["wer"]),
               "wer_low": low, "wer_high": high, "speaker_mean_wer": float(whole["speaker_mean_wer"]),
               "sub_share": float(whole["sub_share"]), "del_share": float(whole["del_share"]),
               "ins_share": float(whole["ins_share"]), "located_speakers": int(located.sum())}
    timed("overall", t)

    step("regions")
    t = time.perf_counter()
    tree = {"min_words": o.min_words, "min_speakers": o.tree_min_speakers, "max_regions": o.max_regions,
            "alpha": o.alpha, "n_perm": o.tree_n_perm}
    extent = _extent(table)
    regions = dp.region_tree(table, seed=o.seed, extent=extent, **tree) if extent is not None else []
    labels: dict[str, np.ndarray] = {}
    if regions:
        labels[REGION] = dp.assign_regions(regions, table.lat, table.lon)
    timed("regions", t)

    step("cohorts")
    t = time.perf_counter()
    fit, voice_rows, cohort_note = _automatic_cohorts(table, o)
    if fit is not None:
        # Speakers without a voice embedding get NO_REGION's label, -1: shown as "(no voice)", never compared.
        auto = np.full(len(table), NO_REGION, dtype=np.int64)
        auto[voice_rows] = fit.labels
        labels[AUTOMATIC] = auto
    merged: dict[str, int] = {}
    if located.any():
        for name, values in co.geo_cohorts(table.lat, table.lon).items():
            labels[name], merged[name] = _merge_small(values, o.k)
    timed("cohorts", t)

    step("groups")
    t = time.perf_counter()
    summaries: dict[str, pd.DataFrame] = {}
    boots: dict[str, dp.BootstrapResult] = {}
    hidden_groups: dict[str, int] = {}
    hidden_speakers: dict[str, int] = {}
    for name in COHORTINGS:
        if name not in labels:
            continue
        summary, boots[name] = group_table(table, labels[name], k=o.k, n_boot=o.n_boot, seed=o.seed,
                                           confidence=o.confidence)
        hidden = summary[~summary["shown"]]
        hidden_groups[name], hidden_speakers[name] = len(hidden), int(hidden["speakers"].sum())
        summaries[name] = summary[summary["shown"]].drop(columns="shown").reset_index(drop=True)
    exclude = (co.UNKNOWN, OTHER, NO_REGION)
    comparison = co.comparison_table(table.errors, table.words, labels, utterances=table.utterances,
                                     min_speakers=o.k, exclude=exclude)
    gaps = []
    for name in comparison.index:
        ends = co.extreme_cohorts(co.cohort_wer(labels[name], table.errors, table.words), min_speakers=o.k,
                                  exclude=exclude)
        gaps.append(gap_interval(boots[name], *ends) if ends is not None else (math.nan, math.nan))
    comparison.insert(2, "wer_gap_low", [g[0] for g in gaps])
    comparison.insert(3, "wer_gap_high", [g[1] for g in gaps])
    timed("groups", t)

    step("stability")
    t = time.perf_counter()
    stability = None
    if len(regions) > 1:
        stability = dp.region_stability_detail(table, n_boot=o.stability_refits, seed=o.seed, extent=extent, **tree)
    timed("stability", t)

    step("map")
    t = time.perf_counter()
    points, hidden_cells, hidden_cell_speakers = map_cells(table, cell_deg=o.cell_deg, k=o.k)
    timed("map", t)
    if progress is not None:
        progress("done", 1.0)
    return Report(options=o, table=table, overall=overall, regions=regions, labels=labels, summaries=summaries,
                  comparison=comparison, cohort_fit=fit, voice_rows=voice_rows, cohort_note=cohort_note,
                  stability=stability, points=points,
                  privacy=Privacy(k=o.k, merged=merged, hidden_groups=hidden_groups, hidden_speakers=hidden_speakers,
                                  hidden_cells=hidden_cells, hidden_cell_speakers=hidden_cell_speakers),
                  seconds=seconds)


def region_frame(report: Report) -> pd.DataFrame:
    """The shown regions with their cells, for the map and the region table: region, lat/lon bounds, wer,
    wer_low, wer_high, speakers, words, errors, error_share, diff_rest (+ interval), path. Highest WER first."""
    summary = report.summaries.get(REGION)
    if summary is None or summary.empty:
        return pd.DataFrame(columns=["region", "lat_min", "lat_max", "lon_min", "lon_max", "wer", "wer_low",
                                     "wer_high", "speakers", "words"])
    cells = pd.DataFrame({"region": [r.id for r in report.regions],
                          **{c: [getattr(r, c) for r in report.regions]
                             for c in ("lat_min", "lat_max", "lon_min", "lon_max")},
                          "path": [" and ".join(r.path) or "all" for r in report.regions]})
    out = summary.rename(columns={"group": "region"}).merge(cells, on="region", how="inner")
    return out.sort_values("wer", ascending=False).reset_index(drop=True)


# Cohortings tabled as groups in a summary; regions get their own table.
SUMMARY_GROUPINGS = (AUTOMATIC, STATE, CITY_SIZE)


def plain(x: object) -> object:
    """JSON-ready: DataFrames as lists of row dicts, NumPy values as Python ones, NaN as None."""
    if isinstance(x, pd.DataFrame):
        return [plain(row) for row in x.to_dict(orient="records")]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    return x


# ------------------------------------------------------------------------------------------ the analysis


def summary(report: Report) -> dict:
    """Everything the page shows of one report, as JSON-ready numbers (no timings): what the benchmark reports
    and what a disparity job stores."""
    regions = region_frame(report)
    if report.stability is not None:
        regions = regions.merge(report.stability.by_region.rename(columns={"together": "kept_together"}),
                                on="region", how="left")
    fit = report.cohort_fit
    comparison = report.comparison.reset_index()
    return plain({
        "overall": report.overall,
        "regions": regions,
        "groups": {name: report.summaries[name] for name in SUMMARY_GROUPINGS if name in report.summaries},
        "comparison": comparison,
        "cohort_fit": None if fit is None else {"k": fit.k, "silhouette": fit.silhouette, "sizes": fit.sizes,
                                                "sample_size": fit.sample_size},
        "stability": None if report.stability is None else {
            "mean": report.stability.mean, "per_refit": report.stability.per_refit},
        "privacy": asdict(report.privacy),
        "map_cells": len(report.points),
    })
