"""Equal error rate of speaker-verification trials, overall and per group, with gaps between groups and
speaker-bootstrap intervals (held-out speakers resampled; every trial follows its speakers).

The EER, exactly as computed here. A trial is a pair of turns with a score (higher = more likely the same
speaker) and a label (same speaker or not). Accepting every trial scoring >= t gives a false-acceptance rate
FAR(t) (share of different-speaker trials accepted) and a false-rejection rate FRR(t) (share of same-speaker
trials rejected). Sweeping t down through the distinct scores traces the ROC as points from (FAR, FRR) = (0, 1)
to (1, 0); trials with tied scores enter together, so a tie between a target and an impostor is one diagonal
step, not two orders. FRR - FAR falls along the way; the EER is where it reaches 0, interpolated linearly on the
segment between the last point with FRR > FAR and the first with FRR <= FAR (on that segment FAR and FRR take
the same value). Trials may carry weights (the bootstrap's multiplicities): rates are then weighted shares.
Lower EER is better; 0 means some threshold separates the two kinds of trials perfectly.

Groups. A trial belongs to a group when both of its speakers do (enrolment and test from the same group, so a
group's impostors are its own members: the harder, usual reading of a per-group EER). "The rest" of a group is
the pooled trials of every other group. Gaps: max - min over groups, and each group's EER minus its rest's.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def _check_scores(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(same).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores for {len(y)} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be booleans or 0/1 (1 = same speaker)")
        y = y.astype(bool)
    return s, y


def _eer_sorted(same: np.ndarray, weights: np.ndarray, last_of_tie: np.ndarray) -> float:
    """EER of trials already sorted by descending score. last_of_tie: indices of the last trial of each run of
    equal scores (the ROC's points). NaN when either kind of trial has no weight."""
    tw = np.where(same, weights, 0.0)
    iw = weights - tw
    t_total, i_total = tw.sum(), iw.sum()
    if t_total <= 0 or i_total <= 0:
        return float("nan")
    far = np.concatenate(([0.0], np.cumsum(iw)[last_of_tie] / i_total))
    frr = np.concatenate(([1.0], 1.0 - np.cumsum(tw)[last_of_tie] / t_total))
    d = frr - far
    k = int(np.argmax(d <= 1e-15))  # the first point with FRR <= FAR; d[0] = 1 > 0 and d[-1] = -1, so k >= 1
    t = d[k - 1] / (d[k - 1] - d[k])
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def _order(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    last = np.flatnonzero(np.append(ss[1:] != ss[:-1], True))
    return order, last


def eer(scores: Sequence[float] | np.ndarray, same: Sequence[bool] | np.ndarray, *,
        weights: Sequence[float] | np.ndarray | None = None) -> float:
    """Equal error rate in [0, 1] (lower is better) of trials with scores (higher = more likely the same
    speaker) and labels (True/1 = same speaker), as the module docstring defines it; weights: non-negative,
    one per trial (default 1). NaN when there is no target or no impostor trial."""
    s, y = _check_scores(np.asarray(scores), np.asarray(same))
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(s) or (w < 0).any():
        raise ValueError("weights must be one non-negative number per trial")
    if not len(s):
        return float("nan")
    order, last = _order(s)
    return _eer_sorted(y[order], w[order], last)


# --------------------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class Trials:
    """Verification trials over n turns: turn indices a, b (a < b), same (True = one speaker), and the speakers
    of each side as codes into ``speakers`` (spk_a, spk_b)."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    spk_a: np.ndarray
    spk_b: np.ndarray
    speakers: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.a)


def all_trials(speakers: Sequence[Hashable]) -> Trials:
    """Every unordered pair of distinct turns, one speaker id per turn: the evaluation's trial list (n turns
    give n (n - 1) / 2 trials; 768 turns about 295,000)."""
    spk = np.asarray([str(s) for s in speakers], dtype=object)
    names, codes = np.unique(spk.astype(str), return_inverse=True)
    n = len(codes)
    a, b = np.triu_indices(n, k=1)
    return Trials(a=a, b=b, same=codes[a] == codes[b], spk_a=codes[a], spk_b=codes[b],
                  speakers=tuple(str(x) for x in names))


def speaker_groups(trials: Trials, groups: Mapping[str, Hashable]) -> np.ndarray:
    """One group label per speaker code of ``trials`` (str), from a speaker -> group map; KeyError names a
    speaker without one."""
    missing = [s for s in trials.speakers if s not in groups]
    if missing:
        raise KeyError(f"{len(missing)} speakers have no group, e.g. {missing[0]!r}")
    return np.array([str(groups[s]) for s in trials.speakers], dtype=object)


# ------------------------------------------------------------------------------------------ bootstrap


def speaker_draws(n_speakers: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_speakers) multiplicities: how often each held-out speaker is drawn in each bootstrap replicate
    (n_speakers draws with replacement). Share one array between methods to get paired intervals."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_speakers, size=(n_boot, n_speakers))
    return np.stack([np.bincount(d, minlength=n_speakers) for d in draws]).astype(np.float64)


def trial_weights(trials: Trials, counts: np.ndarray) -> np.ndarray:
    """Trial multiplicities in one replicate (counts: one per speaker). A different-speaker trial appears
    m_a * m_b times (every copy of one speaker against every copy of the other); a same-speaker trial m times
    (each copy of a speaker is a speaker of its own; two copies of one speaker are not a trial of anything)."""
    ma, mb = counts[trials.spk_a], counts[trials.spk_b]
    return np.where(trials.same, ma, ma * mb)


class _Subset:
    """The trials of one subset, sorted once by score, so each replicate is a gather and a cumulative sum."""

    def __init__(self, scores: np.ndarray, trials: Trials, mask: np.ndarray):
        idx = np.flatnonzero(mask)
        order, self.last = _order(scores[idx])
        self.idx = idx[order]
        self.same = trials.same[self.idx]
        self.n_targets = int(self.same.sum())
        self.n_impostors = len(self.idx) - self.n_targets

    def eer(self, weights: np.ndarray | None) -> float:
        if not len(self.idx):
            return float("nan")
        w = np.ones(len(self.idx)) if weights is None else weights[self.idx]
        return _eer_sorted(self.same, w, self.last)


def _interval(reps: np.ndarray) -> tuple[float, float]:
    ok = reps[np.isfinite(reps)]
    if not len(ok):
        return float("nan"), float("nan")
    lo, hi = np.quantile(ok, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def figure(estimate: float, reps: np.ndarray) -> dict:
    """{"eer" or value: estimate, "low", "high"}: a point estimate with its 95% percentile interval."""
    lo, hi = _interval(np.asarray(reps, dtype=np.float64))
    return {"value": float(estimate), "low": lo, "high": hi}


@dataclass
class EERReplicates:
    """Point estimates and bootstrap replicates of every figure of one score vector (see ``eer_replicates``):
    ``values[name]`` a float, ``reps[name]`` an (n_boot,) array; names are "overall", "<grouping>/<group>",
    "<grouping>/rest:<group>", "<grouping>/gap"; ``support[name]`` = (targets, impostors)."""

    values: dict[str, float]
    reps: dict[str, np.ndarray]
    support: dict[str, tuple[int, int]]


def eer_replicates(scores: np.ndarray, trials: Trials, groupings: Mapping[str, np.ndarray], counts: np.ndarray
                   ) -> EERReplicates:
    """EER overall, per group, of each group's rest, and the max - min gap of each grouping, each with one
    replicate per row of counts (``speaker_draws``). groupings: name -> one label per speaker code
    (``speaker_groups``). Gap replicates are the max - min of that replicate's group EERs (groups whose EER is
    undefined in a replicate are skipped)."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(trials):
        raise ValueError(f"{len(s)} scores for {len(trials)} trials")
    subsets: dict[str, _Subset] = {"overall": _Subset(s, trials, np.ones(len(trials), dtype=bool))}
    gap_members: dict[str, list[str]] = {}
    for gname, labels in groupings.items():
        la, lb = labels[trials.spk_a], labels[trials.spk_b]
        within = la == lb
        names = sorted(set(labels.tolist()))
        gap_members[gname] = [f"{gname}/{g}" for g in names]
        for g in names:
            mine = within & (la == g)
            subsets[f"{gname}/{g}"] = _Subset(s, trials, mine)
            subsets[f"{gname}/rest:{g}"] = _Subset(s, trials, within & ~mine)
    values = {k: sub.eer(None) for k, sub in subsets.items()}
    reps = {k: np.empty(len(counts)) for k in subsets}
    for r, c in enumerate(counts):
        w = trial_weights(trials, c)
        for k, sub in subsets.items():
            reps[k][r] = sub.eer(w)
    for gname, members in gap_members.items():
        vals = np.array([values[m] for m in members])
        values[f"{gname}/gap"] = float(np.nanmax(vals) - np.nanmin(vals))
        stack = np.stack([reps[m] for m in members])
        with np.errstate(invalid="ignore"):
            reps[f"{gname}/gap"] = np.nanmax(stack, axis=0) - np.nanmin(stack, axis=0)
    support = {k: (sub.n_targets, sub.n_impostors) for k, sub in subsets.items()}
    return EERReplicates(values=values, reps=reps, support=support)


def summarise(rep: EERReplicates) -> dict:
    """The figures of ``eer_replicates`` as a JSON-ready dict: overall, per grouping: groups {name: {value, low,
    high, targets, impostors, vs_rest: {value, low, high}}} and gap {value, low, high} (the max - min)."""
    out: dict = {"overall": {**figure(rep.values["overall"], rep.reps["overall"]),
                             "targets": rep.support["overall"][0], "impostors": rep.support["overall"][1]},
                 "groupings": {}}
    for key in rep.values:
        if key == "overall" or "/" not in key:
            continue
        gname, rest = key.split("/", 1)
        g = out["groupings"].setdefault(gname, {"groups": {}})
        if rest == "gap":
            g["gap"] = figure(rep.values[key], rep.reps[key])
        elif not rest.startswith("rest:"):
            other = f"{gname}/rest:{rest}"
            g["groups"][rest] = {**figure(rep.values[key], rep.reps[key]), "targets": rep.support[key][0],
                                 "impostors": rep.support[key][1],
                                 "vs_rest": figure(rep.values[key] - rep.values[other],
                                                   rep.reps[key] - rep.reps[other])}
    return out
