"""Speech-recognition disparity: per-speaker WER counts, group summaries, speaker bootstrap and learned regions.

Everything here works on a :class:`SpeakerTable` (one row per speaker, built from per-turn word error counts)
because the speaker is the unit of resampling: a speaker's utterances share a voice, a device and a place, so
they are correlated, and resampling utterances would make every interval too narrow (METHODS.md section 5).
WER is always pooled: a group's word errors over its reference words, never a mean of per-utterance rates.
Higher WER is worse.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

# Bootstrap and permutation batches are built as (replicates x speakers) matrices; this many elements per
# batch (32 MB of float64) keeps memory flat at 50k speakers while each NumPy call stays large enough to be fast.
_BATCH_ELEMENTS = 1 << 22


# ------------------------------------------------------------------------------------------ validation


def _check_int(value: Any, name: str, minimum: int) -> int:
    # bool is an Integral too, and True as a count is always a bug.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _as_1d(values: Any, name: str) -> np.ndarray:
    """A 1-D NumPy array from a list, NumPy, pandas or pyarrow column (pyarrow nulls become None / NaN)."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        try:  # pyarrow arrays refuse a zero-copy conversion when there are nulls unless told otherwise
            values = values.to_numpy(zero_copy_only=False)
        except TypeError:  # pandas' to_numpy has no such argument
            values = values.to_numpy()
    out = np.asarray(values)
    if out.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {out.shape}")
    return out


def _as_float(values: Any, name: str, n: int) -> np.ndarray:
    out = _as_1d(values, name)
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} values but there are {n} turns")
    try:
        return out.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric (None for missing): {exc}") from None


def _embedding_matrix(embeddings: Any, n: int) -> np.ndarray:
    """Per-turn embeddings as an (n, d) float array, NaN rows where a turn has none.

    Accepts a 2-D array, a sequence of vectors (None for missing) or a pyarrow list column; the pyarrow path
    avoids a Python loop over a million turns.
    """
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency, but the NumPy path does not need it
        pa = None
    if pa is not None and isinstance(embeddings, pa.ChunkedArray | pa.Array):
        arr = embeddings.combine_chunks() if isinstance(embeddings, pa.ChunkedArray) else embeddings
        if len(arr) != n:
            raise ValueError(f"embeddings has {len(arr)} rows but there are {n} turns")
        valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = np.asarray(arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
        dims = np.unique(lengths[valid])
        if len(dims) > 1:
            raise ValueError(f"embeddings have different lengths: {dims.tolist()}")
        d = int(dims[0]) if len(dims) else 0
        out = np.full((n, d), np.nan)
        if d:
            # flatten() returns the values of the non-null lists only, in row order.
            flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
            out[valid] = flat.reshape(-1, d)
        return out
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        out = np.asarray(embeddings, dtype=np.float64)  # no copy when already float64: 128 MB at 1M turns
    else:
        rows = list(embeddings)
        dims = {len(r) for r in rows if r is not None}
        if len(dims) > 1:
            raise ValueError(f"embeddings have different lengths: {sorted(dims)}")
        d = dims.pop() if dims else 0
        out = np.full((len(rows), d), np.nan)
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = np.asarray(r, dtype=np.float64)
    if out.shape[0] != n:
        raise ValueError(f"embeddings has {out.shape[0]} rows but there are {n} turns")
    return out


def _factorize(labels: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted unique labels) with pandas' hash-based factorize: sorting a million object ids with
    np.unique is several times slower. Raises on null labels, which would otherwise vanish silently."""
    values = _as_1d(labels, name)
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError as exc:
        raise ValueError(f"{name} mixes labels that cannot be sorted together: {exc}") from None
    if (codes < 0).any():
        raise ValueError(f"{name} has {int((codes < 0).sum())} null labels; drop them or give them a label first")
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


# ------------------------------------------------------------------------------------------ speaker table


@dataclass(frozen=True, eq=False)
class SpeakerTable:
    """Word error counts and places per speaker: one row per speaker, rows sorted by speaker id.

    Attributes (all NumPy arrays of length n = number of speakers):
        speaker: object array of speaker ids, sorted ascending, unique.
        utterances: turns counted (turns with reference words), int64.
        words: reference words (the WER denominator), int64, > 0 for every row.
        sub, dele, ins: substitutions, deletions, insertions, int64.
        errors: sub + dele + ins, int64.
        lat, lon: mean latitude / longitude of the speaker's turns in degrees, NaN when none has both.
        embedding: (n, d) mean voice embedding of the speaker's turns (NaN row when none has one);
            (n, 0) when no embeddings were given.
    """

    speaker: np.ndarray
    utterances: np.ndarray
    words: np.ndarray
    sub: np.ndarray
    dele: np.ndarray
    ins: np.ndarray
    errors: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    embedding: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.speaker)
        for name in ("utterances", "words", "sub", "dele", "ins", "errors", "lat", "lon"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"SpeakerTable.{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.embedding.ndim != 2 or self.embedding.shape[0] != n:
            raise ValueError(f"SpeakerTable.embedding has shape {self.embedding.shape}, expected ({n}, d)")

    def __len__(self) -> int:
        return len(self.speaker)

    @property
    def wer(self) -> np.ndarray:
        """Each speaker's own pooled WER (errors / words), float64; higher is worse."""
        return self.errors / self.words


def speaker_table(
    speaker_ids: Any,
    sub: Any,
    dele: Any,
    ins: Any,
    words: Any,
    lat: Any = None,
    lon: Any = None,
    embeddings: Any = None,
) -> SpeakerTable:
    """Aggregate per-turn word error counts into a :class:`SpeakerTable`, one row per speaker.

    Parameters
    ----------
    speaker_ids:
        Length-n speaker id per turn (str or any sortable id; None / NaN for unknown).
    sub, dele, ins, words:
        Length-n substitutions, deletions, insertions and reference words per turn, as stored in the turns
        table (``wer_sub`` ... ``wer_ref_words``; -1 or null means no reference transcript).
    lat, lon:
        Optional length-n coordinates in degrees (NaN / None for unknown). A speaker's place is the mean over
        its turns that have both; NaN when none has.
    embeddings:
        Optional per-turn voice embeddings: (n, d) array, sequence of vectors (None for missing) or a pyarrow
        list column. A speaker's embedding is the mean over its turns that have a finite one.

    Skipped turns: turns whose ``words`` is 0, negative or null (nothing to score: no reference, or an empty
    one) and turns without a speaker id. A speaker none of whose turns remains gets no row.

    Returns
    -------
    SpeakerTable sorted by speaker id. Vectorised (factorize, bincount, one sparse product for the
    embeddings): about half a second for 1M turns and 50k speakers.

    Raises
    ------
    ValueError
        On arrays of different lengths, non-numeric counts, a negative or missing error count on a scored
        turn, or embeddings of different lengths.
    """
    ids = _as_1d(speaker_ids, "speaker_ids")
    n = len(ids)
    s, d, i, w = (_as_float(x, name, n) for x, name in ((sub, "sub"), (dele, "dele"), (ins, "ins"), (words, "words")))
    # NaN > 0 is False, so null word counts are skipped along with "no reference" (-1) and empty references.
    keep = (w > 0) & ~pd.isna(ids)
    bad = keep & ~((s >= 0) & (d >= 0) & (i >= 0))  # NaN fails every comparison, so this catches nulls too
    if bad.any():
        raise ValueError(f"{int(bad.sum())} scored turns have a negative or missing error count "
                         f"(first at turn {int(np.flatnonzero(bad)[0])})")
    rows = np.flatnonzero(keep)
    codes, speakers = _factorize(ids[rows], "speaker_ids")
    m = len(speakers)

    def total(x: np.ndarray) -> np.ndarray:
        # Counts are integers, so float64 bincount sums are exact up to 2**53.
        return np.rint(np.bincount(codes, weights=x[rows], minlength=m)).astype(np.int64)

    s_tot, d_tot, i_tot = total(s), total(d), total(i)
    lat_mean = np.full(m, np.nan)
    lon_mean = np.full(m, np.nan)
    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    if lat is not None:
        la, lo = _as_float(lat, "lat", n)[rows], _as_float(lon, "lon", n)[rows]
        has = np.isfinite(la) & np.isfinite(lo)
        cnt = np.bincount(codes[has], minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):  # speakers without a place get 0/0 = NaN
            lat_mean = np.bincount(codes[has], weights=la[has], minlength=m) / cnt
            lon_mean = np.bincount(codes[has], weights=lo[has], minlength=m) / cnt
    if embeddings is None:
        emb_mean = np.zeros((m, 0))
    else:
        emb = _embedding_matrix(embeddings, n)
        has = np.isfinite(emb).all(axis=1)[rows]
        emb_rows, emb_codes = rows[has], codes[has]
        # A sparse (speakers x turns) indicator times the embeddings sums each speaker's vectors in one pass
        # without copying the (turns x d) matrix; fancy-indexing it first costs ten times more at 1M turns.
        member = sparse.csr_matrix((np.ones(len(emb_rows)), (emb_codes, emb_rows)), shape=(m, n))
        with np.errstate(invalid="ignore", divide="ignore"):  # speakers without an embedding get 0/0 = NaN
            emb_mean = np.asarray(member @ emb) / np.bincount(emb_codes, minlength=m)[:, None]
    return SpeakerTable(
        speaker=speakers,
        utterances=np.bincount(codes, minlength=m).astype(np.int64),
        words=total(w),
        sub=s_tot,
        dele=d_tot,
        ins=i_tot,
        errors=s_tot + d_tot + i_tot,
        lat=lat_mean,
        lon=lon_mean,
        embedding=emb_mean,
    )


# ------------------------------------------------------------------------------------------ pooled WER


def pooled_wer(errors: Any, words: Any) -> float:
    """Pooled WER = sum(errors) / sum(words) over the rows given (scalars or equal-length arrays).

    NaN when there are no reference words. Higher is worse; can exceed 1 (insertions).
    Raises ValueError on shapes that differ or negative counts (rows without a reference must be dropped).
    """
    e, w = np.asarray(errors, dtype=np.float64), np.asarray(words, dtype=np.float64)
    if e.shape != w.shape:
        raise ValueError(f"errors has shape {e.shape} but words has shape {w.shape}")
    if (e < 0).any() or (w < 0).any():
        raise ValueError("errors and words must be >= 0; drop turns without a reference (-1) first")
    total = w.sum()
    return float(e.sum() / total) if total > 0 else float("nan")


SUMMARY_COLUMNS = ["group", "speakers", "utterances", "words", "errors", "wer", "speaker_mean_wer",
                   "sub_share", "del_share", "ins_share", "error_share"]


def group_summary(table: SpeakerTable, groups: Any, *, bootstrap: BootstrapResult | None = None) -> pd.DataFrame:
    """WER and error make-up per group of speakers, one row per group in sorted label order.

    Parameters
    ----------
    table:
        The speakers.
    groups:
        One label per speaker (len(table)); any sortable labels (region ids, cohort numbers, states). Null
        labels raise: decide what speakers without a group are (e.g. "no location") before summarising.
    bootstrap:
        Optional :func:`speaker_bootstrap` result for the same groups; adds ``wer_low`` / ``wer_high`` (its
        percentile interval) and ``excludes_overall`` (the overall WER lies outside the interval: a group
        whose interval spans the overall WER is not a finding).

    Returns
    -------
    DataFrame with columns
        group; speakers; utterances; words (reference words); errors (S + D + I);
        wer: the primary figure, pooled: errors / words of the group (higher is worse);
        speaker_mean_wer: SECONDARY figure, the unweighted mean of the speakers' own WERs (a speaker with 3
            words counts as much as one with 3,000);
        sub_share / del_share / ins_share: share of the group's errors that are substitutions / deletions /
            insertions (sum to 1; NaN for a group without errors);
        error_share: the group's share of all errors in the table (NaN when there are none).
    """
    codes, labels = _factorize(groups, "groups")
    if len(codes) != len(table):
        raise ValueError(f"groups has {len(codes)} labels but the table has {len(table)} speakers")
    g = len(labels)

    def total(x: np.ndarray) -> np.ndarray:
        return np.rint(np.bincount(codes, weights=x, minlength=g)).astype(np.int64)

    speakers = np.bincount(codes, minlength=g)
    words, errors = total(table.words), total(table.errors)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for a group or table without errors -> NaN
        out = pd.DataFrame({
            "group": labels,
            "speakers": speakers,
            "utterances": total(table.utterances),
            "words": words,
            "errors": errors,
            "wer": errors / words,
            "speaker_mean_wer": np.bincount(codes, weights=table.wer, minlength=g) / speakers,
            "sub_share": total(table.sub) / errors,
            "del_share": total(table.dele) / errors,
            "ins_share": total(table.ins) / errors,
            "error_share": errors / errors.sum() if errors.sum() > 0 else np.full(g, np.nan),
        })
    if bootstrap is not None:
        if len(bootstrap.groups) != g or any(a != b for a, b in zip(bootstrap.groups, labels, strict=True)):
            raise ValueError("the bootstrap result was computed for other groups than these")
        out["wer_low"], out["wer_high"] = bootstrap.low, bootstrap.high
        overall = bootstrap.overall
        out["excludes_overall"] = (bootstrap.low > overall) | (bootstrap.high < overall)
    return out


def k_anonymous(summary: pd.DataFrame, k: int = 5) -> pd.Series:
    """Boolean Series (aligned with ``summary``): True for groups with at least k speakers, which may be shown.

    Speaker locations and voices are personal data: the page hides groups where this is False, or merges
    them first with :func:`merge_small_groups`.
    """
    k = _check_int(k, "k", 1)
    if "speakers" not in summary.columns:
        raise ValueError("summary has no 'speakers' column; pass the output of group_summary")
    return summary["speakers"] >= k


def merge_small_groups(groups: Any, *, k: int = 5, other: Hashable = "other") -> np.ndarray:
    """Relabel every group with fewer than k speakers as ``other`` (object array, one label per speaker).

    The merged group can itself have fewer than k speakers; :func:`k_anonymous` on its summary then hides it.
    Raises ValueError when ``other`` is already the label of a group of k or more speakers (they would mix).
    """
    k = _check_int(k, "k", 1)
    codes, labels = _factorize(groups, "groups")
    sizes = np.bincount(codes, minlength=len(labels))
    if any(lab == other and size >= k for lab, size in zip(labels, sizes, strict=True)):
        raise ValueError(f"{other!r} is already a group label; choose another name for merged groups")
    out = labels[codes].astype(object)
    out[sizes[codes] < k] = other
    return out


# ------------------------------------------------------------------------------------------ speaker bootstrap


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Speaker-bootstrap replicates of the pooled WER of each group (see :func:`speaker_bootstrap`).

    Attributes
    ----------
    groups: (G,) sorted group labels (same order as :func:`group_summary` rows).
    errors, words: (G,) errors and reference words of each group in the data.
    replicate_errors, replicate_words: (n_boot, G) the same totals in each bootstrap replicate.
    confidence: two-sided coverage of the percentile intervals.
    """

    groups: np.ndarray
    errors: np.ndarray
    words: np.ndarray
    replicate_errors: np.ndarray
    replicate_words: np.ndarray
    confidence: float

    @property
    def estimate(self) -> np.ndarray:
        """(G,) pooled WER of each group in the data."""
        return self.errors / self.words

    @property
    def replicates(self) -> np.ndarray:
        """(n_boot, G) pooled WER of each group in each replicate."""
        return self.replicate_errors / self.replicate_words

    @property
    def low(self) -> np.ndarray:
        """(G,) lower percentile bound of each group's WER."""
        return np.quantile(self.replicates, (1 - self.confidence) / 2, axis=0)

    @property
    def high(self) -> np.ndarray:
        """(G,) upper percentile bound of each group's WER."""
        return np.quantile(self.replicates, (1 + self.confidence) / 2, axis=0)

    @property
    def overall(self) -> float:
        """Pooled WER of all speakers."""
        return float(self.errors.sum() / self.words.sum())

    @property
    def overall_replicates(self) -> np.ndarray:
        """(n_boot,) pooled WER of all speakers in each replicate (all groups' resampled speakers together)."""
        return self.replicate_errors.sum(axis=1) / self.replicate_words.sum(axis=1)

    @property
    def overall_interval(self) -> tuple[float, float]:
        """Percentile interval of the overall WER."""
        q = np.quantile(self.overall_replicates, [(1 - self.confidence) / 2, (1 + self.confidence) / 2])
        return float(q[0]), float(q[1])

    def index(self, group: Hashable) -> int:
        """Column of ``group`` in the replicate matrices; ValueError if it is not one of the groups."""
        hits = [j for j, g in enumerate(self.groups) if g == group]
        if not hits:
            raise ValueError(f"{group!r} is not one of the bootstrapped groups")
        return hits[0]

    def interval(self, group: Hashable) -> tuple[float, float]:
        """Percentile interval of one group's WER."""
        j = self.index(group)
        return float(self.low[j]), float(self.high[j])


def _resample_indices(rng: np.random.Generator, starts: np.ndarray, sizes: np.ndarray, n_rows: int) -> np.ndarray:
    """(n_rows, n) indices into group-sorted speakers: column j redraws, uniformly with replacement, a speaker
    of the group that column j belongs to, so each replicate keeps every group's number of speakers."""
    start = np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    idx = (rng.random((n_rows, len(start))) * size).astype(np.int64)
    # u < 1, but u * size can round up to size in floating point; never step into the next group.
    np.minimum(idx, size - 1, out=idx)
    idx += start
    return idx


def speaker_bootstrap(
    table: SpeakerTable, groups: Any, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Bootstrap each group's pooled WER by resampling its SPEAKERS with replacement.

    In each replicate every group of n_g speakers is replaced by n_g speakers drawn with replacement from
    that group (a stratified bootstrap: group sizes stay fixed, as the groups are given), and the replicate
    WER is the drawn speakers' errors over their words. A speaker drawn twice counts twice with all of its
    utterances, which keeps the correlation between one speaker's utterances. The overall replicate pools all
    groups of the same replicate, so a group-vs-overall or group-vs-rest difference is computed replicate by
    replicate with its correlation intact (:func:`difference_interval`).

    Vectorised: batches of (replicates x speakers) index matrices, summed per group with np.add.reduceat;
    1,000 replicates over 50k speakers take about a second. Percentile intervals.

    Parameters
    ----------
    table: the speakers. groups: one label per speaker (no nulls). n_boot: replicates (>= 1).
    seed: random seed (same seed, same replicates). confidence: two-sided coverage in (0, 1).
    """
    n_boot = _check_int(n_boot, "n_boot", 1)
    confidence = _check_confidence(confidence)
    codes, labels = _factorize(groups, "groups")
    if len(codes) != len(table):
        raise ValueError(f"groups has {len(codes)} labels but the table has {len(table)} speakers")
    if len(table) == 0:
        raise ValueError("the table has no speakers to resample")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(labels))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    e = table.errors[order].astype(np.float64)
    w = table.words[order].astype(np.float64)
    rng = np.random.default_rng(seed)
    rep_e = np.empty((n_boot, len(labels)))
    rep_w = np.empty((n_boot, len(labels)))
    batch = max(1, _BATCH_ELEMENTS // len(table))
    for b0 in range(0, n_boot, batch):
        b1 = min(n_boot, b0 + batch)
        idx = _resample_indices(rng, starts, sizes, b1 - b0)
        rep_e[b0:b1] = np.add.reduceat(e[idx], starts, axis=1)
        rep_w[b0:b1] = np.add.reduceat(w[idx], starts, axis=1)
    return BootstrapResult(
        groups=labels,
        errors=np.bincount(codes, weights=table.errors, minlength=len(labels)),
        words=np.bincount(codes, weights=table.words, minlength=len(labels)),
        replicate_errors=rep_e,
        replicate_words=rep_w,
        confidence=confidence,
    )


class Reference(Enum):
    """What a group is compared with in :func:`difference_interval`, besides another group."""

    REST = "rest"  # all speakers outside the group
    OVERALL = "overall"  # all speakers, the group included


REST = Reference.REST
OVERALL = Reference.OVERALL


@dataclass(frozen=True)
class Difference:
    """WER(a) - WER(b) with its speaker-bootstrap percentile interval; positive means a is served worse."""

    a: Hashable
    b: Hashable
    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """The interval does not contain 0: the difference is a finding at this confidence."""
        return self.low > 0 or self.high < 0


def difference_interval(
    result: BootstrapResult, a: Hashable, b: Hashable | Reference = OVERALL, *, confidence: float | None = None
) -> Difference:
    """Interval of WER(a) - WER(b) from the same bootstrap replicates.

    ``b`` is another group label, ``REST`` (all other speakers pooled) or ``OVERALL`` (all speakers). Each
    replicate's difference uses that replicate's totals, so the correlation between the two sides is kept;
    the interval is the percentile interval of those differences (``confidence`` defaults to the result's).
    """
    confidence = result.confidence if confidence is None else _check_confidence(confidence)
    ja = result.index(a)
    est_a = result.errors[ja] / result.words[ja]
    rep_a = result.replicate_errors[:, ja] / result.replicate_words[:, ja]
    if b is REST:
        rest_w = result.words.sum() - result.words[ja]
        if rest_w <= 0:
            raise ValueError(f"there are no speakers outside {a!r} to compare with")
        est_b = (result.errors.sum() - result.errors[ja]) / rest_w
        rep_b = ((result.replicate_errors.sum(axis=1) - result.replicate_errors[:, ja])
                 / (result.replicate_words.sum(axis=1) - result.replicate_words[:, ja]))
    elif b is OVERALL:
        est_b, rep_b = result.overall, result.overall_replicates
    else:
        jb = result.index(b)
        est_b = result.errors[jb] / result.words[jb]
        rep_b = result.replicate_errors[:, jb] / result.replicate_words[:, jb]
    q = np.quantile(rep_a - rep_b, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Difference(a=a, b=b.value if isinstance(b, Reference) else b, estimate=float(est_a - est_b),
                      low=float(q[0]), high=float(q[1]), confidence=confidence)


# ------------------------------------------------------------------------------------------ learned regions


@dataclass(frozen=True, eq=False)
class Region:
    """A learned region: a latitude/longitude cell of the tree and the speakers in it.

    id: rank by WER, 1 = highest (worst served). lat_min/lat_max/lon_min/lon_max: the cell in degrees, bounded
    by the tree's cuts and, outside them, the data's extent (or the ``extent`` given); a cell holds
    lat_min <= lat < lat_max (<= on the outer edge), likewise for lon. speaker_indices: rows of the
    SpeakerTable in the cell. words / errors / wer: pooled over them. path: the cuts leading to the cell,
    root first, e.g. ("lat < 36.1200", "lon >= -112.3400").
    """

    id: int
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    speaker_indices: np.ndarray
    speakers: int
    words: int
    errors: int
    wer: float
    path: tuple[str, ...]


@dataclass(eq=False)
class _Axis:
    """Candidate cuts of one leaf along one coordinate."""

    order: np.ndarray  # leaf-local positions sorted by the coordinate
    positions: np.ndarray  # candidate left-side sizes: left = the first `position` speakers in that order
    cuts: np.ndarray  # the cut value of each position, strictly between the two sides' coordinates


@dataclass(eq=False)  # compared by identity: list.remove must not compare arrays
class _Leaf:
    idx: np.ndarray  # rows of the arrays the tree is grown on
    box: tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max
    path: tuple[str, ...]
    axes: list[_Axis] = field(default_factory=list)
    best: tuple[float, int, int] | None = None  # (|WER difference|, axis, candidate) of the best valid cut
    final: bool = False  # its best cut failed the test, or it has none: never split again


_AXIS_NAMES = ("lat", "lon")


def _axis_candidates(coord: np.ndarray, n_quantiles: int, min_speakers: int) -> _Axis:
    order = np.argsort(coord, kind="stable")
    v = coord[order]
    n = len(v)
    raw = np.ceil(np.arange(1, n_quantiles) * n / n_quantiles).astype(np.int64)
    raw = raw[(raw >= 1) & (raw < n)]
    # Move each quantile cut past all speakers tied with the quantile value: equal coordinates can't be split.
    pos = np.unique(np.searchsorted(v, v[raw - 1], side="right"))
    pos = pos[(pos >= min_speakers) & (n - pos >= min_speakers)]
    a, b = v[pos - 1], v[pos]
    cuts = a + (b - a) / 2
    # Between adjacent floats the midpoint rounds onto a; cutting at b still puts a left and b right.
    cuts = np.where(cuts > a, cuts, b)
    return _Axis(order=order, positions=pos, cuts=cuts)


def _cut_differences(e_sorted: np.ndarray, w_sorted: np.ndarray, positions: np.ndarray,
                     min_words: int) -> np.ndarray:
    """|WER(left) - WER(right)| for every row (data or permutation) and candidate position: (P, m), -1 where a
    side has fewer than min_words reference words. Segment sums + a cumulative sum over the m segments
    evaluate all cuts in one pass over the speakers."""
    starts = np.concatenate(([0], positions))
    cum_e = np.cumsum(np.add.reduceat(e_sorted, starts, axis=1), axis=1)
    cum_w = np.cumsum(np.add.reduceat(w_sorted, starts, axis=1), axis=1)
    # Segment k ends at positions[k], so the running total of segments 0..k is the left side of cut k.
    left_e, left_w = cum_e[:, :-1], cum_w[:, :-1]
    right_e, right_w = cum_e[:, -1:] - left_e, cum_w[:, -1:] - left_w
    ok = (left_w >= min_words) & (right_w >= min_words)
    with np.errstate(invalid="ignore", divide="ignore"):  # sides with 0 words are masked just below
        diff = np.abs(left_e / left_w - right_e / right_w)
    return np.where(ok, diff, -1.0)


def _prepare_leaf(leaf: _Leaf, lat: np.ndarray, lon: np.ndarray, e: np.ndarray, w: np.ndarray, *,
                  n_quantiles: int, min_speakers: int, min_words: int) -> None:
    """Find the leaf's candidate cuts and its best valid one (largest absolute pooled-WER difference)."""
    leaf.axes = [_axis_candidates(c[leaf.idx], n_quantiles, min_speakers) for c in (lat, lon)]
    el, wl = e[leaf.idx], w[leaf.idx]
    best: tuple[float, int, int] | None = None
    for a, ax in enumerate(leaf.axes):
        if len(ax.positions) == 0:
            continue
        diff = _cut_differences(el[ax.order][None, :], wl[ax.order][None, :], ax.positions, min_words)[0]
        k = int(np.argmax(diff))
        if diff[k] >= 0 and (best is None or diff[k] > best[0]):
            best = (float(diff[k]), a, k)
    leaf.best = best
    leaf.final = best is None


def _permutation_significant(leaf: _Leaf, e: np.ndarray, w: np.ndarray, *, n_perm: int, alpha: float,
                             min_words: int, rng: np.random.Generator) -> bool:
    """Max-statistic permutation test of the leaf's best cut (see region_tree). True when significant."""
    el, wl = e[leaf.idx], w[leaf.idx]
    n = len(el)
    observed = leaf.best[0]
    # p = (1 + exceedances) / (1 + n_perm) <= alpha  <=>  exceedances <= alpha * (1 + n_perm) - 1.
    allowed = alpha * (1 + n_perm) - 1
    lat_ax, lon_ax = leaf.axes
    # One permutation sigma of the speakers' (errors, words) over the leaf's places serves both axes: in
    # latitude order the permuted values are el[sigma]; the speaker at longitude rank j has latitude rank
    # rank_lat[lon_ax.order[j]], so its permuted values are el[sigma[:, that rank]].
    rank_lat = np.empty(n, dtype=np.int64)
    rank_lat[lat_ax.order] = np.arange(n)
    lon_in_lat = rank_lat[lon_ax.order]
    exceed, done = 0, 0
    batch = max(1, _BATCH_ELEMENTS // n)
    while done < n_perm:
        rows = min(batch, n_perm - done)
        sigma = rng.permuted(np.broadcast_to(np.arange(n), (rows, n)), axis=1)
        stat = np.full(rows, -1.0)
        for ax, idx in ((lat_ax, sigma), (lon_ax, sigma[:, lon_in_lat] if len(lon_ax.positions) else None)):
            if len(ax.positions):
                np.maximum(stat, _cut_differences(el[idx], wl[idx], ax.positions, min_words).max(axis=1), out=stat)
        # A relative tolerance so that a permutation reproducing the data's own split counts as reaching it.
        exceed += int(np.count_nonzero(stat >= observed * (1 - 1e-9)))
        done += rows
        if exceed > allowed:
            return False  # p > alpha whatever the remaining permutations give: stop early
    return True


def _grow(lat: np.ndarray, lon: np.ndarray, e: np.ndarray, w: np.ndarray, extent: tuple[float, float, float, float],
          *, min_words: int, min_speakers: int, max_regions: int, n_quantiles: int, alpha: float, n_perm: int,
          rng: np.random.Generator) -> list[_Leaf]:
    """Best-first growth of the tree over located rows; returns the leaves (see region_tree)."""
    opts = {"n_quantiles": n_quantiles, "min_speakers": min_speakers, "min_words": min_words}
    root = _Leaf(idx=np.arange(len(lat)), box=extent, path=())
    _prepare_leaf(root, lat, lon, e, w, **opts)
    leaves = [root]
    while len(leaves) < max_regions:
        open_leaves = [leaf for leaf in leaves if not leaf.final]
        if not open_leaves:
            break
        leaf = max(open_leaves, key=lambda x: x.best[0])
        if alpha < 1 and not _permutation_significant(leaf, e, w, n_perm=n_perm, alpha=alpha,
                                                      min_words=min_words, rng=rng):
            leaf.final = True  # this leaf's best cut is noise; other leaves may still have real ones
            continue
        _, a, k = leaf.best
        ax = leaf.axes[a]
        cut = float(ax.cuts[k])
        left_rows = leaf.idx[ax.order[: ax.positions[k]]]
        right_rows = leaf.idx[ax.order[ax.positions[k]:]]
        lo_box, hi_box = list(leaf.box), list(leaf.box)
        lo_box[2 * a + 1] = cut  # left side: coordinate < cut
        hi_box[2 * a] = cut  # right side: coordinate >= cut
        name = _AXIS_NAMES[a]
        children = [_Leaf(idx=np.sort(left_rows), box=tuple(lo_box), path=(*leaf.path, f"{name} < {cut:.4f}")),
                    _Leaf(idx=np.sort(right_rows), box=tuple(hi_box), path=(*leaf.path, f"{name} >= {cut:.4f}"))]
        for child in children:
            _prepare_leaf(child, lat, lon, e, w, **opts)
        leaves.remove(leaf)
        leaves.extend(children)
    return leaves


def _tree_options(*, min_words: Any, min_speakers: Any, max_regions: Any, n_quantiles: Any, alpha: Any,
                  n_perm: Any) -> dict[str, Any]:
    """The growth options of region_tree, validated (ValueError on a bad one)."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    return {"min_words": _check_int(min_words, "min_words", 1),
            "min_speakers": _check_int(min_speakers, "min_speakers", 1),
            "max_regions": _check_int(max_regions, "max_regions", 1),
            "n_quantiles": _check_int(n_quantiles, "n_quantiles", 2),
            "alpha": float(alpha),
            "n_perm": _check_int(n_perm, "n_perm", 1)}


def _located(table: SpeakerTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows with a place, their lat, lon, errors, words as float64); ValueError when no speaker has a place."""
    located = np.flatnonzero(np.isfinite(table.lat) & np.isfinite(table.lon))
    if len(located) == 0:
        raise ValueError("no speaker has a latitude and longitude")
    return (located, table.lat[located], table.lon[located], table.errors[located].astype(np.float64),
            table.words[located].astype(np.float64))


def _check_extent(extent: Any, lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    data = (float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max()))
    if extent is None:
        return data
    if len(extent) != 4:
        raise ValueError(f"extent must be (lat_min, lat_max, lon_min, lon_max), got {extent!r}")
    box = tuple(float(x) for x in extent)
    if not (box[0] <= data[0] and data[1] <= box[1] and box[2] <= data[2] and data[3] <= box[3]):
        raise ValueError(f"extent {box} does not contain every located speaker (their extent is {data})")
    return box


def region_tree(
    table: SpeakerTable,
    *,
    min_words: int = 500,
    min_speakers: int = 20,
    max_regions: int = 64,
    n_quantiles: int = 32,
    alpha: float = 0.05,
    n_perm: int = 99,
    seed: int = 0,
    extent: tuple[float, float, float, float] | None = None,
) -> list[Region]:
    """Learn regions served differently: recursive binary latitude/longitude splits of the speakers' places.

    Growth (best first): every leaf knows its best cut: over both axes, candidate cuts at the quantiles
    1/n_quantiles, ..., (n_quantiles-1)/n_quantiles of its speakers' coordinates (moved past ties), keeping
    only cuts that leave at least ``min_speakers`` speakers and ``min_words`` reference words on each side;
    the best is the one maximising |pooled WER(one side) - pooled WER(other side)|. At each step the leaf
    whose best cut has the largest difference is tested and, if the test passes, split. Growth stops at
    ``max_regions`` leaves or when no leaf has a cut left to try.

    Stopping rule (a max-statistic permutation test per split, like conditional inference trees): the
    speakers' (errors, words) are permuted over the leaf's places ``n_perm`` times; each permutation is
    searched exactly as the data was (all candidate cuts, both axes, same minimums) and its largest
    difference kept. p = (1 + #permutations reaching the observed difference) / (1 + n_perm). Because the
    null distribution is that of the MAXIMUM over all candidate cuts, the search's many tries are accounted
    for; permuting whole speakers keeps each speaker's utterances together. If p > alpha the leaf is frozen
    (never split) and growth continues with the other leaves; so on data where WER does not depend on place
    the root is frozen and one region is returned. Each split is tested at level alpha (no correction across
    the sequence of splits). ``alpha >= 1`` disables the test (grow to max_regions or exhaustion).

    Speakers without a place (NaN lat or lon) are left out of every region.

    Parameters
    ----------
    min_words, min_speakers: per side of every cut (>= 1). min_speakers also keeps maps k-anonymous.
    max_regions: upper bound on the number of regions (>= 1). n_quantiles: candidate cuts per axis + 1 (>= 2).
    alpha: test level in (0, 1]. n_perm: permutations per test (>= 1; alpha * (n_perm + 1) must be >= 1 for
    a split to be possible at all). seed: random seed of the permutations.
    extent: outer box (lat_min, lat_max, lon_min, lon_max) of the cells; default the located speakers'
    extent. Give a fixed box (e.g. the country) so that no cell edge is an individual speaker's coordinate.

    Returns
    -------
    Regions sorted by pooled WER, highest (worst served) first; ids 1, 2, ... in that order. Their cells tile
    the extent. About a second for 50k speakers at the defaults.
    """
    opts = _tree_options(min_words=min_words, min_speakers=min_speakers, max_regions=max_regions,
                         n_quantiles=n_quantiles, alpha=alpha, n_perm=n_perm)
    located, lat, lon, e, w = _located(table)
    box = _check_extent(extent, lat, lon)
    leaves = _grow(lat, lon, e, w, box, rng=np.random.default_rng(seed), **opts)
    stats = []
    for leaf in leaves:
        errors, words = int(e[leaf.idx].sum()), int(w[leaf.idx].sum())
        stats.append((errors / words if words else float("nan"), leaf, errors, words))
    # Highest WER first; ties by more speakers, then by place, so the ranking is deterministic.
    stats.sort(key=lambda s: (-s[0], -len(s[1].idx), s[1].box))
    return [Region(id=rank, lat_min=leaf.box[0], lat_max=leaf.box[1], lon_min=leaf.box[2], lon_max=leaf.box[3],
                   speaker_indices=located[leaf.idx], speakers=len(leaf.idx), words=words, errors=errors, wer=wer,
                   path=leaf.path)
            for rank, (wer, leaf, errors, words) in enumerate(stats, start=1)]


def _assign_boxes(boxes: Sequence[tuple[float, float, float, float]], ids: Sequence[int], lat: np.ndarray,
                  lon: np.ndarray) -> np.ndarray:
    out = np.full(len(lat), -1, dtype=np.int64)
    if not boxes:
        return out
    arr = np.asarray(boxes, dtype=np.float64)
    lat_top, lon_top = arr[:, 1].max(), arr[:, 3].max()
    for box, rid in zip(arr, ids, strict=True):
        # Cells are half-open [min, max) so that a point on a cut belongs to exactly one side (the right one,
        # as in the tree); on the outer top edge they are closed, or the extreme speakers would fall outside.
        in_lat = (lat >= box[0]) & ((lat < box[1]) | ((box[1] == lat_top) & (lat == lat_top)))
        in_lon = (lon >= box[2]) & ((lon < box[3]) | ((box[3] == lon_top) & (lon == lon_top)))
        out[in_lat & in_lon & (out < 0)] = rid
    return out


def assign_regions(regions: Sequence[Region], lat: Any, lon: Any) -> np.ndarray:
    """Region id of each point (int64 array), -1 for points outside every cell or without coordinates.

    Applied to the table the tree was fitted on, this reproduces each region's speakers exactly; applied to
    new points it places them in the cell that contains them (points beyond the extent get -1).
    """
    la = _as_1d(lat, "lat")
    la, lo = _as_float(la, "lat", len(la)), _as_float(lon, "lon", len(la))
    return _assign_boxes([(r.lat_min, r.lat_max, r.lon_min, r.lon_max) for r in regions],
                         [r.id for r in regions], la, lo)


def _json_number(x: Any) -> float | int | None:
    """A JSON-safe number: Python int/float, None for NaN (NaN is not valid JSON)."""
    if x is None:
        return None
    if isinstance(x, Integral):
        return int(x)
    f = float(x)
    return None if math.isnan(f) else f


def regions_geojson(regions: Sequence[Region], summary: pd.DataFrame | None = None) -> dict:
    """A GeoJSON FeatureCollection (RFC 7946): one rectangle Polygon per region, lon/lat in degrees.

    With ``summary`` (a :func:`group_summary` over region ids, ideally with a bootstrap for wer_low /
    wer_high), each feature's properties come from its row and only regions with a row are written: filter
    the summary with :func:`k_anonymous` first so that small regions are not exported. Rows whose group is
    not a region id (e.g. -1, "no location") are ignored. Without a summary, every region is written with its
    own counts and no interval.

    Properties: region, rank (1 = highest WER), wer, wer_low, wer_high, speakers, words, errors, path.
    """
    rows: dict[Any, pd.Series] | None = None
    if summary is not None:
        for col in ("group", "wer", "speakers", "words"):
            if col not in summary.columns:
                raise ValueError(f"summary has no {col!r} column; pass the output of group_summary")
        rows = {g: row for g, row in zip(summary["group"], (r for _, r in summary.iterrows()), strict=True)}
    features = []
    for r in regions:
        if rows is not None and r.id not in rows:
            continue
        row = rows[r.id] if rows is not None else None
        # Exterior ring counter-clockwise (RFC 7946 section 3.1.6), closed: the last position repeats the first.
        ring = [[r.lon_min, r.lat_min], [r.lon_max, r.lat_min], [r.lon_max, r.lat_max], [r.lon_min, r.lat_max],
                [r.lon_min, r.lat_min]]
        props = {
            "region": r.id,
            "rank": r.id,
            "wer": _json_number(row["wer"] if row is not None else r.wer),
            "wer_low": _json_number(row.get("wer_low")) if row is not None else None,
            "wer_high": _json_number(row.get("wer_high")) if row is not None else None,
            "speakers": _json_number(row["speakers"] if row is not None else r.speakers),
            "words": _json_number(row["words"] if row is not None else r.words),
            "errors": _json_number(row["errors"] if row is not None and "errors" in row else r.errors),
            "path": " and ".join(r.path) or "all",
        }
        features.append({"type": "Feature", "id": r.id,
                         "geometry": {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in ring]]},
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True, eq=False)
class Stability:
    """What :func:`region_stability_detail` measured.

    mean: the stability (mean over refits of the share of pairs kept together), NaN without pairs.
    per_refit: (n_boot,) that share in each refit.
    by_region: one row per region of the full fit, every region: region (id), pairs (pairs drawn in it for
        its own figure, ``pairs_per_region`` unless it has fewer than two speakers), together (share of its
        pair-refit combinations kept together, in [0, 1]; NaN only for a region of fewer than two speakers,
        which has no pair to keep).
    """

    mean: float
    per_refit: np.ndarray
    by_region: pd.DataFrame


def region_stability(table: SpeakerTable, *, n_boot: int = 20, seed: int = 0, max_pairs: int = 2000,
                     **tree_params: Any) -> float:
    """How often pairs of speakers that share a region stay together when the tree is refitted on resamples.
    (The mean of :func:`region_stability_detail`, which also gives it per refit and per region.)

    Definition: fit :func:`region_tree` (with ``tree_params``) on all located speakers. Draw ``max_pairs``
    pairs of distinct speakers, uniformly (with replacement) from all pairs that share a region in that fit. For
    each of ``n_boot`` refits, grow the tree on a bootstrap resample of the located speakers (drawn with
    replacement, same size, same extent and parameters, its own permutation seed), place every located
    speaker in the refit's cells by its coordinates, and take the share of the pairs whose two speakers are
    still in the same cell. The result is the mean of that share over the refits, in [0, 1]; 1 means the
    partition's groupings are fully reproducible. It measures only whether the fit's regions hold together
    (a refit that merges regions scores 1); a single-region fit therefore scores 1 unless refits split it.
    NaN when no two speakers share a region.
    """
    return region_stability_detail(table, n_boot=n_boot, seed=seed, max_pairs=max_pairs, **tree_params).mean


def region_stability_detail(table: SpeakerTable, *, n_boot: int = 20, seed: int = 0, max_pairs: int = 2000,
                            pairs_per_region: int = 200, **tree_params: Any) -> Stability:
    """:func:`region_stability` with its parts: the share per refit and per region of the full fit (the
    stability figure of the Disparity page). Same definition, parameters and random draws for ``mean`` and
    ``per_refit``.

    Per region, its own sample: ``pairs_per_region`` pairs of distinct speakers drawn uniformly (with
    replacement) from the region's pairs, followed through the same refits. Drawn separately because the
    overall sample is proportional to each region's number of pairs, so a small region (often the worst
    served) would get no pair at all: 22 speakers have 231 pairs against 43 million in a region of 9,000.
    The per-region draws use their own random stream, so ``mean`` does not depend on them."""
    n_boot = _check_int(n_boot, "n_boot", 1)
    max_pairs = _check_int(max_pairs, "max_pairs", 1)
    pairs_per_region = _check_int(pairs_per_region, "pairs_per_region", 1)
    tree_params = dict(tree_params)
    extent = tree_params.pop("extent", None)
    # Refits use region_tree's own defaults for anything not given, so the two fits cannot drift apart.
    defaults = {name: p.default for name, p in inspect.signature(region_tree).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("seed", "extent")}
    unknown = set(tree_params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown region_tree parameters: {sorted(unknown)}")
    opts = _tree_options(**{**defaults, **tree_params})
    regions = region_tree(table, seed=seed, extent=extent, **opts)
    _, lat, lon, e, w = _located(table)
    extent = _check_extent(extent, lat, lon)
    labels = assign_regions(regions, lat, lon)
    rng = np.random.default_rng(seed)
    # Pairs uniform over all same-region pairs: pick a region with probability proportional to its number of
    # pairs, then two distinct speakers in it.
    members = [np.flatnonzero(labels == r.id) for r in regions]
    n_pairs = np.array([len(m) * (len(m) - 1) / 2 for m in members])
    if n_pairs.sum() == 0:
        return Stability(mean=float("nan"), per_refit=np.full(n_boot, np.nan),
                         by_region=pd.DataFrame({"region": [r.id for r in regions], "pairs": 0,
                                                 "together": np.nan}))
    which = rng.choice(len(members), size=max_pairs, p=n_pairs / n_pairs.sum())
    first, second = _pairs_within(members, which, rng)
    # Each region's own pairs, from a stream no other draw uses (the refits' streams are [seed, b + 1], b >= 0).
    has_pairs = np.array([len(m) >= 2 for m in members])
    own = np.repeat(np.arange(len(members))[has_pairs], pairs_per_region)
    own_first, own_second = _pairs_within(members, own, np.random.default_rng([seed, 0]))
    kept = np.empty((n_boot, max_pairs), dtype=bool)
    kept_own = np.empty((n_boot, len(own)), dtype=bool)
    for b in range(n_boot):
        sample = rng.integers(0, len(lat), len(lat))
        leaves = _grow(lat[sample], lon[sample], e[sample], w[sample], extent,
                       rng=np.random.default_rng([seed, b + 1]), **opts)
        refit = _assign_boxes([leaf.box for leaf in leaves], list(range(len(leaves))), lat, lon)
        kept[b] = refit[first] == refit[second]
        kept_own[b] = refit[own_first] == refit[own_second]
    per_refit = kept.mean(axis=1)
    pairs = np.bincount(own, minlength=len(regions))
    with np.errstate(invalid="ignore", divide="ignore"):  # a region of one speaker has no pair: NaN
        together = np.bincount(own, weights=kept_own.sum(axis=0), minlength=len(regions)) / (pairs * n_boot)
    return Stability(mean=float(per_refit.mean()), per_refit=per_refit,
                     by_region=pd.DataFrame({"region": [r.id for r in regions], "pairs": pairs,
                                             "together": together}))


def _pairs_within(members: list[np.ndarray], which: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """For each entry of ``which`` (an index into ``members``, each with at least two rows), a pair of
    distinct rows of that group drawn uniformly: (first rows, second rows)."""
    first = np.empty(len(which), dtype=np.int64)
    second = np.empty(len(which), dtype=np.int64)
    for r, m in enumerate(members):
        sel = np.flatnonzero(which == r)
        if len(sel):
            i = rng.integers(0, len(m), len(sel))
            j = (i + rng.integers(1, len(m), len(sel))) % len(m)  # a different member, uniformly
            first[sel], second[sel] = m[i], m[j]
    return first, second
