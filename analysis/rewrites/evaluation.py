"""Win/loss evaluation of rewrites by replay (METHODS.md section 4).

Each evaluated turn has its logged interpretation (the NLU's intent and slots), its gold interpretation
and whether it was defective. A rewriter either leaves the turn alone or replaces the request, and with it
the interpretation (the rewrite's). Per turn:

* **win**: the turn was defective, the rewrite's interpretation is right (it matches the gold intent and
  slots) and differs from the logged one, *and* the rewrite is a rephrase of the source (``rephrase_of``:
  the rewrite's sentence and what the user said are the same sentence, or share a content word under an
  intent that is not catch-all, ``analysis.rewrites.meaning``). Since the logged interpretation then was
  wrong, this is the definition without no-op rewrites, which change nothing and cannot win; the rephrase
  condition keeps a rewrite to a stranger that happens to carry the same label (SLURP labels "where is the
  car" ``audio_volume_up``, like "raise volume") from counting as a win;
* **loss**: its logged interpretation was right and the rewrite's is wrong;
* **tie**: any other rewritten turn (both wrong, both right, a right interpretation reached through a
  sentence that is no rephrase, or a defect a rewrite cannot fix, such as failed speech synthesis).

The replayed defect rate counts a win as a removed defect and a loss on a turn that was not defective as
a new one: (defects - wins + losses on clean turns) / turns. Intervals are percentile intervals of a
bootstrap that resamples users (their turns are not independent), ``n_boot`` replicates. The win/loss
ratio's interval comes from the win share W / (W + L) (always defined when something was decided) mapped
through s / (1 - s), so replicates without a loss give an infinite upper bound instead of being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analysis.labels.evaluation import cluster_bootstrap
from analysis.rewrites import meaning
from analysis.rewrites.mining import should_retire

NONE, WIN, LOSS, TIE = 0, 1, 2, 3
OUTCOME_NAMES = ("none", "win", "loss", "tie")


def outcomes(logged: Sequence[str], gold: Sequence[str | None], defective: Sequence[bool],
             rewritten: Sequence[str | None], rephrase: Sequence[bool]) -> np.ndarray:
    """Per turn, NONE / WIN / LOSS / TIE. logged, gold and rewritten are interpretation keys
    (``analysis.rewrites.rephrase.interpretation_key``); rewritten None: the turn was left alone. rephrase:
    per turn, is the rewrite a rephrase of the source (``rephrase_of``); a right interpretation without it is
    a tie. Turns without a gold interpretation are never a win or a loss."""
    if not len(logged) == len(gold) == len(defective) == len(rewritten) == len(rephrase):
        raise ValueError("logged, gold, defective, rewritten and rephrase must have one entry per turn")
    out = np.zeros(len(logged), dtype=np.int8)
    for i, (lg, g, d, rw, same) in enumerate(zip(logged, gold, defective, rewritten, rephrase, strict=True)):
        if rw is None:
            continue
        if g is None:
            out[i] = TIE
        elif bool(d) and lg != g and rw == g and bool(same):
            out[i] = WIN
        elif lg == g and rw != g:
            out[i] = LOSS
        else:
            out[i] = TIE
    return out


def rephrase_of(sources: Sequence[str | None], rewrites: Sequence[str | None], gold: Sequence[str | None],
                catch_all: Sequence[str] = ()) -> np.ndarray:
    """Per turn: is the rewrite a rephrase of the source? sources: what the user said (the reference sentence,
    or the logged request where there is none); rewrites: the rewrite's sentence (None: not rewritten);
    gold: the turn's gold interpretation key. True when the two are the same sentence, or when the gold
    intent is not in ``catch_all`` and they share a content word (``meaning.is_rephrase`` with the gold
    interpretation on both sides: a win needs the rewrite's interpretation to be the gold one anyway)."""
    if not len(sources) == len(rewrites) == len(gold):
        raise ValueError("sources, rewrites and gold must have one entry per turn")
    catch = frozenset(catch_all)
    seen: dict[tuple, bool] = {}
    out = np.zeros(len(sources), dtype=bool)
    for i, key in enumerate(zip(sources, rewrites, gold, strict=True)):
        if key[1] is None:
            continue
        if key not in seen:
            seen[key] = meaning.is_rephrase(key[0], key[1], key[2], key[2], catch)
        out[i] = seen[key]
    return out


def _ratio(win: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Wins per loss: inf with wins and no loss, NaN with neither."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(loss > 0, win / np.where(loss > 0, loss, 1), np.where(win > 0, np.inf, np.nan))


def _odds(share: float) -> float:
    """s / (1 - s): a win share as wins per loss (inf at 1, NaN stays NaN)."""
    if math.isnan(share):
        return math.nan
    return math.inf if share >= 1.0 else share / (1.0 - share)


def _metrics(s: np.ndarray) -> dict[str, np.ndarray]:
    # s[..., (turns, rewritten, win, loss, tie, defects, losses on clean turns)]
    turns, rewritten, win, loss, _tie, defects, clean_loss = np.moveaxis(s, -1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "rewrite_rate": rewritten / turns,
            "win_rate": win / rewritten,
            "loss_rate": loss / rewritten,
            "win_share": win / (win + loss),
            "defect_rate_without": defects / turns,
            "defect_rate_with": (defects - win + clean_loss) / turns,
            "defect_reduction": np.where(defects > 0, (win - clean_loss) / np.where(defects > 0, defects, 1),
                                         np.nan),
        }


def winloss_report(outcome: np.ndarray, defective: Sequence[bool], users: Sequence[object], *,
                   n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Counts and rates of one rewriter on a set of turns, each rate with ``<name>_ci``. win_loss_ratio is
    NaN when there is no loss (its interval then comes from the replicates that have one)."""
    outcome = np.asarray(outcome)
    d = np.asarray(defective, dtype=bool)
    if len(d) != len(outcome):
        raise ValueError("outcome and defective must have one entry per turn")
    cols = [np.full(len(outcome), 0), np.where(outcome != NONE, 1, -1), np.where(outcome == WIN, 2, -1),
            np.where(outcome == LOSS, 3, -1), np.where(outcome == TIE, 4, -1), np.where(d, 5, -1),
            np.where((outcome == LOSS) & ~d, 6, -1)]
    out = cluster_bootstrap(len(outcome), users, cols, 7, _metrics, n_boot=n_boot, seed=seed,
                            confidence=confidence)
    counts = np.bincount(outcome.astype(np.int64), minlength=4)
    out.update(turns=int(len(outcome)), rewritten=int(counts[1:].sum()), wins=int(counts[WIN]),
               losses=int(counts[LOSS]), ties=int(counts[TIE]), defects=int(d.sum()),
               clean_losses=int(np.sum((outcome == LOSS) & ~d)))
    out["win_loss_ratio"] = float(_ratio(np.array(out["wins"]), np.array(out["losses"])))
    out["win_loss_ratio_ci"] = tuple(_odds(x) for x in out["win_share_ci"])
    out["resampled"] = "users"
    return out


def grouped_reports(outcome: np.ndarray, defective: Sequence[bool], users: Sequence[object],
                    groups: Sequence[object], *, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """``winloss_report`` per group value (e.g. domain or week), keyed by the value as text."""
    g = np.asarray([str(x) for x in groups], dtype=object)
    outcome, d, u = np.asarray(outcome), np.asarray(defective, dtype=bool), np.asarray(users, dtype=object)
    keys = sorted(set(g.tolist()), key=lambda k: (0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k))
    return {key: winloss_report(outcome[g == key], d[g == key], u[g == key], n_boot=n_boot, seed=seed)
            for key in keys}  # numbers in numeric order (weeks), then text


def with_retirement(outcome: np.ndarray, rewrite_of: Sequence[str | None], seconds: np.ndarray) -> np.ndarray:
    """The outcomes had every rewrite been retired as soon as its Beta posterior said it is probably worse
    than the original (``rewrites.should_retire`` on its wins and losses so far, in time order): its later
    turns are left alone (NONE). rewrite_of: per turn, which rewrite fired (None: none)."""
    outcome = np.asarray(outcome).copy()
    wins: dict[str, int] = {}
    losses: dict[str, int] = {}
    retired: set[str] = set()
    for i in np.argsort(np.asarray(seconds, dtype=float), kind="stable").tolist():
        key = rewrite_of[i]
        if key is None or outcome[i] == NONE:
            continue
        if key in retired:
            outcome[i] = NONE
            continue
        wins[key] = wins.get(key, 0) + (outcome[i] == WIN)
        losses[key] = losses.get(key, 0) + (outcome[i] == LOSS)
        if should_retire(wins[key], losses[key]):
            retired.add(key)
    return outcome


def week_of(seconds: np.ndarray, start: float) -> np.ndarray:
    """Week number (1, 2, ...) of each time, counted from ``start`` (seconds since the epoch)."""
    return (np.floor((np.asarray(seconds, dtype=float) - start) / (7 * 86400)).astype(np.int64) + 1)
