"""Task-weight schedules for multitask fine-tuning over TASKS (lm, intent, slots): fixed, a linear ramp of the NLU
weights, and randomized weighted majority (RWM) driven by the tasks' dev losses.

Every schedule answers the same three calls, which the trainer (model.py) makes:

* ``step_weights()``: the weight of each task's loss in the next optimiser step;
* ``step()``: one optimiser step was taken (the ramp advances);
* ``end_interval(dev_losses) -> mistakes``: an evaluation interval ended with these dev losses per task (RWM
  updates its weights; the others ignore it and report no mistakes).

RWM as used here (Littlestone and Warmuth's randomized weighted majority, each task an "expert"): weights start
at 1 per task; at the end of each evaluation interval a task *made a mistake* if its dev loss did not improve on
(is not strictly below) its dev loss at the previous interval (the first interval compares with the losses measured
before fine-tuning began), and each task that made a mistake has its weight multiplied by (1 - eta): eta is the
learning rate of the weights. ``weights()`` are the normalised weights p_i = w_i / sum(w), the probabilities with
which the randomized learner follows each expert. The randomized part, in training:

* mode "expected" (the default): each step's loss is the randomized learner's *expected* loss, sum_i p_i L_i;
  its gradient is the expectation of the gradient of a step on a task drawn with probabilities p, without the
  draw's variance. The tasks share the encoder's forward pass, so computing all three losses costs little more
  than one.
* mode "sample": each step draws one task i with probability p_i (a seeded generator) and trains on L_i alone:
  the randomized learner literally, an unbiased but noisier estimate of the same gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from analysis.rescoring.config import TASKS, RescoringConfig


class FixedWeights:
    """The same weight for each task at every step (the weights given, not normalised)."""

    def __init__(self, weights: Mapping[str, float]):
        self._weights = {t: float(weights.get(t, 0.0)) for t in TASKS}

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def step_weights(self) -> dict[str, float]:
        return self.weights()

    def step(self) -> None:
        pass

    def end_interval(self, dev_losses: Mapping[str, float]) -> dict[str, bool]:
        return {}


class LinearRamp(FixedWeights):
    """The LM's weight fixed; each NLU task's weight rises linearly from 0 at step 0 to its given value at step
    ``steps`` and stays there (steps 0: no ramp)."""

    def __init__(self, weights: Mapping[str, float], steps: int):
        super().__init__(weights)
        if steps < 0:
            raise ValueError("ramp steps must be >= 0")
        self.steps, self.t = int(steps), 0

    def weights(self) -> dict[str, float]:
        f = 1.0 if self.steps == 0 else min(1.0, self.t / self.steps)
        return {t: w if t == "lm" else w * f for t, w in self._weights.items()}

    def step(self) -> None:
        self.t += 1


class RandomizedWeightedMajority:
    """Randomized weighted majority over tasks (see the module doc): ``weights()`` normalised, ``update(mistakes)``
    multiplies the weight of each task that made a mistake by (1 - eta), ``draw()`` picks one task with those
    probabilities (seeded), ``mistakes_from(dev_losses)`` is the mistake signal."""

    def __init__(self, tasks: Sequence[str] = TASKS, eta: float = 0.2, seed: int = 0, *, mode: str = "expected"):
        if not 0.0 <= eta < 1.0:
            raise ValueError(f"eta must be in [0, 1); got {eta}")
        if mode not in ("expected", "sample"):
            raise ValueError(f"mode must be 'expected' or 'sample'; got {mode!r}")
        if not tasks:
            raise ValueError("RWM needs at least one task")
        self.tasks, self.eta, self.mode = tuple(tasks), float(eta), mode
        self.w = {t: 1.0 for t in self.tasks}
        self.previous: dict[str, float] | None = None
        self.rng = np.random.default_rng(seed)

    def weights(self) -> dict[str, float]:
        total = sum(self.w.values())
        return {t: w / total for t, w in self.w.items()}

    def update(self, mistakes: Mapping[str, bool]) -> dict[str, float]:
        """w_i <- w_i * (1 - eta) for each task i with mistakes[i] true; returns the normalised weights. Should all
        weights ever fall below 1e-200 they are rescaled together (the normalised weights do not change)."""
        unknown = set(mistakes) - set(self.tasks)
        if unknown:
            raise ValueError(f"unknown task(s): {', '.join(sorted(unknown))}")
        for t, wrong in mistakes.items():
            if wrong:
                self.w[t] *= 1.0 - self.eta
        top = max(self.w.values())
        if top < 1e-200:
            self.w = {t: w / top for t, w in self.w.items()}
        return self.weights()

    def mistakes_from(self, dev_losses: Mapping[str, float]) -> dict[str, bool]:
        """The mistake signal: a task made a mistake when its dev loss is not strictly below its value at the
        previous call (NaN counts as a mistake). The first call only records the losses (no mistakes)."""
        losses = {t: float(dev_losses[t]) for t in self.tasks if t in dev_losses}
        if self.previous is None:
            mistakes = {t: False for t in losses}
        else:
            mistakes = {t: not (v < self.previous.get(t, math.inf)) for t, v in losses.items()}
        self.previous = {**(self.previous or {}), **losses}
        return mistakes

    def draw(self) -> str:
        p = self.weights()
        return str(self.rng.choice(list(p), p=np.array(list(p.values()))))

    def step_weights(self) -> dict[str, float]:
        if self.mode == "sample":
            chosen = self.draw()
            return {t: float(t == chosen) for t in self.tasks}
        return self.weights()

    def step(self) -> None:
        pass

    def start(self, dev_losses: Mapping[str, float]) -> None:
        """Record the dev losses measured before fine-tuning: the first interval's reference."""
        self.mistakes_from(dev_losses)

    def end_interval(self, dev_losses: Mapping[str, float]) -> dict[str, bool]:
        mistakes = self.mistakes_from(dev_losses)
        self.update(mistakes)
        return mistakes


Schedule = FixedWeights | RandomizedWeightedMajority


def make_schedule(config: RescoringConfig, *, steps_per_epoch: int = 1) -> Schedule:
    """The schedule of config.weighting ("lm_only": the LM alone, weight 1). steps_per_epoch converts the ramp's
    length in epochs (config.ramp_epochs) into optimiser steps."""
    if config.weighting == "lm_only":
        return FixedWeights({"lm": 1.0})
    if config.weighting == "fixed":
        return FixedWeights(config.weights_by_task)
    if config.weighting == "ramp":
        return LinearRamp(config.weights_by_task, round(config.ramp_epochs * max(steps_per_epoch, 1)))
    return RandomizedWeightedMajority(TASKS, config.rwm_eta, config.seed, mode=config.rwm_mode)
