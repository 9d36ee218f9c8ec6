"""Evaluate a verifier (or the untrained cosine) on held-out speakers: EER overall and per group, gaps between
groups, 95% speaker-bootstrap intervals; and the leak guard that keeps held-out speakers and SLURP's evaluation
split out of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from analysis.slurp import is_eval_utterance
from analysis.verification.eer import all_trials, eer_replicates, speaker_draws, summarise
from analysis.verification.model import Verifier, raw_cosine


def per_speaker_groups(speakers: Sequence[str], labels: Sequence[object]) -> dict[str, str]:
    """speaker -> group from one label per turn; ValueError if a speaker's turns carry two labels."""
    out: dict[str, str] = {}
    for s, g in zip(speakers, labels, strict=True):
        s, g = str(s), str(g)
        if out.setdefault(s, g) != g:
            raise ValueError(f"speaker {s!r} has turns in two groups ({out[s]!r} and {g!r}): groups are per speaker")
    return out


def evaluate_verifier(verifier: Verifier | None, embeddings: np.ndarray, speakers: Sequence[str],
                      groups: Mapping[str, Sequence[object]], *, n_boot: int = 500, seed: int = 0,
                      centre: np.ndarray | None = None) -> dict:
    """EER of every pair of the given (held-out) turns, overall and per group, with gaps.

    embeddings: (n, d), one per turn; speakers: one id per turn; groups: grouping name -> one label per turn
    (constant within a speaker: a trial belongs to a group when both speakers do). verifier None scores the raw
    cosine of the embeddings (after subtracting ``centre`` if given). Returns ``eer.summarise``'s dict: overall
    {value, low, high, targets, impostors}, groupings {name: {groups {g: {value, low, high, targets, impostors,
    vs_rest}}, gap}} (EERs in [0, 1], lower is better; 95% intervals from ``n_boot`` replicates that resample
    the speakers, seeded)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) != len(speakers):
        raise ValueError(f"{len(x)} embeddings for {len(speakers)} speakers")
    trials = all_trials(speakers)
    scores = (raw_cosine(x, trials.a, trials.b, centre=centre) if verifier is None
              else verifier.score_pairs(x, trials.a, trials.b))
    labels = {}
    for name, lab in groups.items():
        by = per_speaker_groups(speakers, lab)
        labels[name] = np.array([by[s] for s in trials.speakers], dtype=object)
    counts = speaker_draws(len(trials.speakers), n_boot=n_boot, seed=seed)
    return summarise(eer_replicates(scores, trials, labels, counts))


def leak_check(train_speakers: Sequence[str], train_slurp_ids: Sequence[int], held_out_speakers: Sequence[str]
               ) -> None:
    """Raise ValueError if a held-out speaker or an utterance of SLURP's evaluation split (slurp_id % 5 == 0)
    is among the training turns. Run on the exact rows a verifier is trained on, before training."""
    both = set(map(str, train_speakers)) & set(map(str, held_out_speakers))
    if both:
        raise ValueError(f"{len(both)} held-out speakers are in the training turns, e.g. {sorted(both)[0]!r}")
    bad = [int(s) for s in train_slurp_ids if is_eval_utterance(int(s))]
    if bad:
        raise ValueError(f"{len(bad)} training turns are evaluation-split utterances, e.g. slurp_id {bad[0]}")
