"""What the Disparity page draws of one analysis, as a value that can be stored and read back safely: typed
frames and plain numbers, serialised as strict JSON plus Arrow IPC streams (never pickle: what comes out of a
database is data, not code). A report is computed once per (data fingerprint, options), by the analyse job or
by the page, and drawn from its snapshot after that.

A snapshot keeps no speaker coordinates and no voice embeddings: the map needs only the regions' cells and the
k-anonymous map cells, and the voices' UMAP layout is stored on its own, keyed by ``voices_key`` (the
speakers' embeddings and the layout method), because it does not depend on the analysis options.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.disparity import cohorts as co
from analysis.disparity import regions as dp
from analysis.disparity import report as dr

FORMAT = 1  # the layout of the JSON and the parts below; a stored snapshot of another format is not read
SPEAKER_COLUMNS = ("speaker_id", "utterances", "words", "errors", "voice")
# Parts of a stored snapshot other than the per-cohorting summaries ("summary:<cohorting>").
FRAMES = ("regions", "comparison", "points", "speakers")


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything the page shows of one report (``snapshot(report)`` makes one; ``from_stored`` reads one).

    options, table_fingerprint: what it was computed from (``report.table_fingerprint`` of the speaker table).
    voices_key: the key of the voices' UMAP layout ("" when fewer than 3 speakers have a voice embedding).
    overall: as ``Report.overall`` (NaN where undefined). privacy: as ``Report.privacy``.
    n_regions: regions the tree found (0: no speaker has a location); ``regions`` holds those shown.
    regions: ``region_frame`` (highest WER first, region 1 = worst served) with ``stability_pairs`` and
        ``stability`` (share of its pairs kept together over the refits; NaN when not computed).
    summaries: cohorting -> the shown groups (``group_table`` rows; -1 = no location / no voice).
    comparison: one row per cohorting, the column ``cohorting`` first: the comparison table with the WER-gap
        interval, plus worst_speakers / best_speakers (speakers in the gap's two cohorts) and thin_support
        (``cohorts.thin_support`` of the smaller of the two: the gap is flagged beside a published figure).
    cohort_fit: {"k", "silhouette" {k: mean silhouette}, "sizes", "sample_size"} or None.
    stability: {"mean", "per_refit"} or None (a single region: nothing to keep together).
    points: the map cells of at least k speakers (lat, lon, speakers, words, errors, wer).
    speakers: one row per speaker in the speaker table's order: speaker_id, utterances, words, errors,
        voice (has a voice embedding), and one column of labels per cohorting present (as ``Report.labels``).
    geojson: the shown regions (``Report.geojson``). seconds: step -> seconds of the computation.
    """

    options: dr.Options
    table_fingerprint: str
    voices_key: str
    overall: dict[str, float]
    privacy: dr.Privacy
    n_regions: int
    regions: pd.DataFrame
    summaries: dict[str, pd.DataFrame]
    comparison: pd.DataFrame
    cohort_fit: dict | None
    cohort_note: str
    stability: dict | None
    points: pd.DataFrame
    speakers: pd.DataFrame
    geojson: dict
    seconds: dict[str, float]

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """cohorting -> one label per speaker (as ``Report.labels``)."""
        return {name: self.speakers[name].to_numpy() for name in dr.COHORTINGS if name in self.speakers.columns}

    @property
    def voice_rows(self) -> np.ndarray:
        """Rows of ``speakers`` with a voice embedding, in order: the rows of the UMAP layout."""
        return np.flatnonzero(self.speakers["voice"].to_numpy(bool))

    @property
    def wer(self) -> np.ndarray:
        """Each speaker's own pooled WER."""
        return self.speakers["errors"].to_numpy(float) / self.speakers["words"].to_numpy(float)

    def speakers_of(self, cohorting: str, group: object) -> np.ndarray:
        """Speaker ids of one shown group (empty for a group that is hidden)."""
        return dr.speakers_of(self.speakers["speaker_id"].to_numpy(object), self.labels, self.summaries,
                              cohorting, group)

    def assignments(self) -> pd.DataFrame:
        """The cohort CSV export (``report.assignments``)."""
        s = self.speakers
        return dr.assignments(s["speaker_id"].to_numpy(object), self.labels, self.summaries, k=self.options.k,
                              utterances=s["utterances"].to_numpy(), words=s["words"].to_numpy(),
                              errors=s["errors"].to_numpy())


def voices_key(table: dp.SpeakerTable) -> str:
    """The key of a UMAP layout of these speakers' voices: the speakers with a voice embedding, their
    embeddings and the layout method (``cohorts.UMAP_METHOD``). "" when fewer than 3 have one (no layout)."""
    if table.embedding.shape[1] == 0:
        return ""
    rows = np.flatnonzero(np.isfinite(table.embedding).all(axis=1))
    if len(rows) < 3:
        return ""
    digest = hashlib.sha256(co.UMAP_METHOD.encode() + b"\x1e")
    digest.update("\x1f".join(map(str, table.speaker[rows])).encode() + b"\x1e")
    digest.update(np.ascontiguousarray(table.embedding[rows], dtype=np.float64).tobytes())
    return digest.hexdigest()[:32]


def _support(report: dr.Report) -> pd.DataFrame:
    """The comparison rows with the speakers in each gap's worst and best cohort and the thin-support flag."""
    comparison = report.comparison.reset_index()
    total = len(report.table)
    worst, best = [], []
    for row in comparison.itertuples(index=False):
        labels = np.asarray(report.labels[row.cohorting]).astype(str)
        worst.append(int((labels == row.worst_cohort).sum()) if row.worst_cohort != "" else 0)
        best.append(int((labels == row.best_cohort).sum()) if row.best_cohort != "" else 0)
    comparison["worst_speakers"] = np.array(worst, dtype=np.int64)
    comparison["best_speakers"] = np.array(best, dtype=np.int64)
    comparison["thin_support"] = [bool(w and b and co.thin_support(min(w, b), total))
                                  for w, b in zip(worst, best, strict=True)]
    return comparison


def snapshot(report: dr.Report) -> Snapshot:
    """The page's view of a freshly computed report (see ``Snapshot``)."""
    table = report.table
    regions = dr.region_frame(report)
    if report.stability is not None and not regions.empty:
        by_region = report.stability.by_region.rename(columns={"pairs": "stability_pairs", "together": "stability"})
        regions = regions.merge(by_region, on="region", how="left")
    else:
        regions = regions.assign(stability_pairs=np.zeros(len(regions), dtype=np.int64),
                                 stability=np.full(len(regions), np.nan))
    speakers = pd.DataFrame({"speaker_id": np.asarray(table.speaker, dtype=object), "utterances": table.utterances,
                             "words": table.words, "errors": table.errors,
                             "voice": np.isin(np.arange(len(table)), report.voice_rows)})
    for name in dr.COHORTINGS:
        if name in report.labels:
            speakers[name] = report.labels[name]
    fit = report.cohort_fit
    st = report.stability
    return Snapshot(
        options=report.options, table_fingerprint=dr.table_fingerprint(table), voices_key=voices_key(table),
        overall=dict(report.overall), privacy=report.privacy, n_regions=len(report.regions), regions=regions,
        summaries=dict(report.summaries), comparison=_support(report),
        cohort_fit=None if fit is None else {"k": int(fit.k), "silhouette": {int(k): float(v) for k, v in
                                                                             fit.silhouette.items()},
                                             "sizes": [int(x) for x in fit.sizes], "sample_size": int(fit.sample_size)},
        cohort_note=report.cohort_note,
        stability=None if st is None else {"mean": float(st.mean), "per_refit": [float(x) for x in st.per_refit]},
        points=report.points, speakers=speakers, geojson=report.geojson() if report.regions else {},
        seconds=dict(report.seconds))


# ------------------------------------------------------------------------------------------ stored form


def options_key(options: dr.Options) -> str:
    """The options as canonical JSON (sorted keys): with the data fingerprint, the key of a stored report."""
    return json.dumps(dr.plain(asdict(options)), sort_keys=True, allow_nan=False)


def options_from_key(text: str) -> dr.Options:
    values = json.loads(text)
    values["k_range"] = tuple(values["k_range"])
    return dr.Options(**values)


def _finite_or_none(x: object) -> object:
    """Strict JSON has no NaN or infinity: they are stored as null (and read back as NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_ready(x: object) -> object:
    x = dr.plain(x)
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_ready(v) for v in x]
    return _finite_or_none(x)


def frame_bytes(frame: pd.DataFrame) -> bytes:
    """One DataFrame as an Arrow IPC stream (zstd-compressed), without its index."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_of(data: bytes) -> pd.DataFrame:
    """The DataFrame of ``frame_bytes``."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all().to_pandas()


def to_stored(s: Snapshot) -> tuple[str, dict[str, bytes]]:
    """(meta, parts): the scalars as strict JSON text and every frame as Arrow IPC bytes, by part name."""
    meta = _json_ready({
        "format": FORMAT, "options": asdict(s.options), "table_fingerprint": s.table_fingerprint,
        "voices_key": s.voices_key, "overall": s.overall, "privacy": asdict(s.privacy), "n_regions": s.n_regions,
        "cohort_fit": s.cohort_fit, "cohort_note": s.cohort_note, "stability": s.stability, "geojson": s.geojson,
        "seconds": s.seconds, "summaries": list(s.summaries)})
    parts = {name: frame_bytes(getattr(s, name)) for name in FRAMES}
    parts.update({f"summary:{name}": frame_bytes(frame) for name, frame in s.summaries.items()})
    return json.dumps(meta, allow_nan=False, sort_keys=True), parts


def _nan(x: object) -> float:
    return math.nan if x is None else float(x)


def from_stored(meta: str, parts: Mapping[str, bytes]) -> Snapshot:
    """The snapshot ``to_stored`` wrote. ValueError when it is of another format or a part is missing."""
    m = json.loads(meta)
    if m.get("format") != FORMAT:
        raise ValueError(f"a stored disparity report of format {m.get('format')!r}; this code reads {FORMAT}")
    missing = [p for p in (*FRAMES, *(f"summary:{n}" for n in m["summaries"])) if p not in parts]
    if missing:
        raise ValueError(f"the stored disparity report lacks its part(s) {missing}")
    options = dict(m["options"])
    options["k_range"] = tuple(options["k_range"])
    fit = m["cohort_fit"]
    if fit is not None:
        fit = {**fit, "silhouette": {int(k): _nan(v) for k, v in fit["silhouette"].items()}}
    stability = m["stability"]
    if stability is not None:
        stability = {"mean": _nan(stability["mean"]), "per_refit": [_nan(x) for x in stability["per_refit"]]}
    overall = {k: (v if isinstance(v, int) else _nan(v)) for k, v in m["overall"].items()}
    return Snapshot(
        options=dr.Options(**options), table_fingerprint=m["table_fingerprint"], voices_key=m["voices_key"],
        overall=overall, privacy=dr.Privacy(**m["privacy"]), n_regions=int(m["n_regions"]),
        regions=frame_of(parts["regions"]), summaries={n: frame_of(parts[f"summary:{n}"]) for n in m["summaries"]},
        comparison=frame_of(parts["comparison"]), cohort_fit=fit, cohort_note=m["cohort_note"], stability=stability,
        points=frame_of(parts["points"]), speakers=frame_of(parts["speakers"]), geojson=m["geojson"],
        seconds={k: _nan(v) for k, v in m["seconds"].items()})


# ------------------------------------------------------------------------------------------ the voices' layout


def layout_bytes(speaker_ids: np.ndarray, xy: np.ndarray) -> bytes:
    """A UMAP layout (one row per speaker with a voice) as Arrow IPC: speaker_id, x, y."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (len(speaker_ids), 2):
        raise ValueError(f"a layout of {len(speaker_ids)} speakers must be ({len(speaker_ids)}, 2), got {xy.shape}")
    return frame_bytes(pd.DataFrame({"speaker_id": np.asarray(speaker_ids, dtype=object), "x": xy[:, 0],
                                     "y": xy[:, 1]}))


def layout_for(s: Snapshot, data: bytes) -> np.ndarray:
    """The stored layout as (voice rows x 2), in the order of ``s.voice_rows``. ValueError when it was made for
    other speakers (its key matched, so this means a broken row, not other data)."""
    frame = frame_of(data)
    expected = s.speakers["speaker_id"].to_numpy(object)[s.voice_rows]
    if len(frame) != len(expected) or not (frame["speaker_id"].to_numpy(object) == expected).all():
        raise ValueError("the stored layout does not list the speakers of this report")
    return frame[["x", "y"]].to_numpy(np.float64)
