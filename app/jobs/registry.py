"""The registry of model families: one entry per family says what it is, its documented options, and its
actions. The CLI, the Models page, each family's page and `make run` iterate over it; none of them names a
family.

Most families are models with the three standard actions, train, score and evaluate; an analysis family
(rewrites: mine; disparity: analyse) declares its own actions instead. Each action is split so that a job
can run the heavy part in a child process that never opens the database (the app's server process owns the
DuckDB file):
- ``read(conn, dataset, options)`` runs in the server process and returns picklable inputs;
- ``run(inputs, options, path, progress)`` runs in the child: pure Python, no database. path is the folder
  to write a checkpoint into (train), the checkpoint to use (score, evaluate), or None;
- what comes back is written by the server, only when the child succeeded: a checkpoint moved into place
  (train), candidates (score, CANDIDATE_SCHEMA), an evaluation row (evaluate, analysis.evaluation.Evaluation),
  or whatever the action's own ``write(conn, dataset, outcome)`` stores (it returns a summary dict).

progress(stage, done, total) reports work done; total may be None when unknown.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STANDARD = ("train", "score", "evaluate")
Progress = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class Option:
    """One documented setting of a family: a CLI option (--name-with-dashes) and a field of the page's form."""

    name: str
    type: type  # int, float, bool or str
    default: Any
    help: str
    actions: tuple[str, ...] = ("train",)
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None  # for a str option: the values allowed
    check: Callable[[Any], None] | None = None  # raises ValueError, saying why, for a value it refuses

    def parse(self, value: Any) -> Any:
        """The value checked against the option's type and range; ValueError says what is wrong."""
        if value is None:
            return self.default
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name}: expected true or false, got {value!r}")
            return value
        try:
            parsed = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: expected {self.type.__name__}, got {value!r}") from None
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{self.name}: expected a whole number, got {value!r}")
        if self.low is not None and parsed < self.low:
            raise ValueError(f"{self.name}: {parsed} is below the minimum {self.low:g}")
        if self.high is not None and parsed > self.high:
            raise ValueError(f"{self.name}: {parsed} is above the maximum {self.high:g}")
        if self.choices is not None and parsed not in self.choices:
            raise ValueError(f"{self.name}: choose one of {', '.join(self.choices)}; got {parsed!r}")
        if self.check is not None:
            try:
                self.check(parsed)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
        return parsed


@dataclass(frozen=True)
class Action:
    """One thing a family's job can do. ``output`` says what the server writes from the child's outcome:
    "checkpoint" (train), "candidates" (score), "evaluation" (evaluate) or "own" (``write`` stores it)."""

    name: str
    verb: str  # the button: "Train", "Mine", ...
    read: Callable[[Any, str, dict], Any]
    run: Callable[[Any, dict, Path | None, Progress], Any]
    output: str
    needs_checkpoint: bool = False
    write: Callable[[Any, str, Any], dict] | None = None
    help: str = ""


@dataclass(frozen=True)
class BatchScoring:
    """How a family scores turns batch by batch, shared by the local score action and the Ray engine
    (app/engines/ray_scoring.py), so both produce the same candidates.

    - ``load(checkpoint, options)`` loads the trained model once and returns a picklable scorer (the Ray engine
      loads it in the driver and ships it to its actors through the object store: workers need no access to the
      checkpoint folder);
    - ``score(scorer, inputs, options, progress)`` turns a batch's score inputs (what the family's ``read_score``
      returns for those turns) into CANDIDATE_SCHEMA rows. Pure: no database.
    - ``whole_dialogues``: the model reads a turn's dialogue context, so a batch must hold every turn of each of its
      dialogues (the Ray engine groups turns by dialogue before scoring).
    - ``read_batches(conn, dataset, options)``: (turns in all, an iterator of score-input batches) read from the
      store a batch at a time. With it, a score job streams (app/jobs/runner.py): read a batch, score it in the
      job's child, store its candidates, then the next, so memory stays flat in the size of the log. None: the
      score job reads the whole dataset at once (``read_score``).
    """

    load: Callable[[Path, dict], Any]
    score: Callable[[Any, Any, dict, Progress | None], Any]
    whole_dialogues: bool = False
    read_batches: Callable[[Any, str, dict], tuple[int, Iterator[Any]]] | None = None

    def local(self, inputs: Any, options: dict, checkpoint: Path, progress: Progress) -> Any:
        """The score action's run: the whole dataset as one batch."""
        return self.score(self.load(checkpoint, options), inputs, options, progress)


@dataclass(frozen=True)
class Family:
    """A model family. Checkpoints of app jobs go to models/<dataset>/<name>/job-<id>."""

    name: str
    title: str
    description: str
    page: str | None  # the family's own page (app/app_pages/<page>.py), if any
    options: tuple[Option, ...]
    read_train: Callable[[Any, str, dict], Any] | None = None
    train: Callable[[Any, dict, Path, Progress], dict] | None = None
    read_score: Callable[[Any, str, dict], Any] | None = None
    score: Callable[[Any, dict, Path, Progress], Any] | None = None
    read_evaluate: Callable[[Any, str, dict], Any] | None = None
    evaluate: Callable[[Any, dict, Path, Progress], Any] | None = None
    more: tuple[Action, ...] = ()  # an analysis family's own actions (or a model family's extra ones)
    # validate(action, given, parsed) raises ValueError for a combination of options it refuses
    validate: Callable[[str, dict, dict], None] | None = None
    describe: Callable[[str, Any], str] = field(default=lambda action, result: f"{action} done")
    module: str = ""  # where the family is defined: a job's child process imports it to find the family
    # False when a checkpoint can only score the dataset it was trained on (the skill router proposes from its own
    # training dynamics): nothing offers to score another dataset with it
    scores_other_datasets: bool = True
    # `make run`'s steps for a family that needs more than every action on the sample with its defaults (the
    # rescorer tunes on the speech demo's scored n-best lists): (action, dataset, extra turnlens arguments), run
    # after the speech demo is ingested; an action on another dataset than the sample uses the sample's checkpoint.
    # None: every action on the sample.
    make_run: tuple[tuple[str, str, tuple[str, ...]], ...] | None = None
    # How the family scores a batch of turns (the local score action and `turnlens score --engine ray` both use it);
    # None: the family cannot score turns batch by batch (skills: its proposals come from its own training run)
    batch: BatchScoring | None = None

    def _standard(self) -> list[Action]:
        found = []
        for name, verb, output, read, run in (
                ("train", "Train", "checkpoint", self.read_train, self.train),
                ("score", "Score", "candidates", self.read_score, self.score),
                ("evaluate", "Evaluate", "evaluation", self.read_evaluate, self.evaluate)):
            if run is not None and read is not None:
                found.append(Action(name, verb, read, run, output, needs_checkpoint=name != "train"))
        return found

    def all_actions(self) -> list[Action]:
        return [*self._standard(), *self.more]

    def actions(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.all_actions())

    def action(self, name: str) -> Action:
        for act in self.all_actions():
            if act.name == name:
                return act
        raise ValueError(f"{self.name} has no {name!r} action; it has {', '.join(self.actions())}")

    @property
    def trains(self) -> bool:
        """Whether the family has trained checkpoints (and so model runs to list)."""
        return self.train is not None

    def parse_options(self, action: str, given: dict) -> dict:
        """Every option of this action, defaults filled in; unknown names or bad values raise ValueError."""
        known = {o.name: o for o in self.options if action in o.actions}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) for {self.name} {action}: {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known)) or 'none'}")
        parsed = {name: option.parse(given.get(name)) for name, option in known.items()}
        if self.validate is not None:
            self.validate(action, given, parsed)
        return parsed


class UnknownFamilyError(KeyError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown model family {self.name!r}; known: {', '.join(sorted(FAMILIES))}"


FAMILIES: dict[str, Family] = {}
# The modules that register the built-in families, imported on first use of the registry.
_BUILT_IN = ("app.jobs.failure_points", "app.jobs.labels", "app.jobs.skills", "app.jobs.rewrites",
             "app.jobs.disparity", "app.jobs.coordination", "app.jobs.rescoring", "app.jobs.ewc_adaptation",
             "app.jobs.verification")


def register(family: Family) -> Family:
    """Add a family (a module calls this at import). Registering the same name again replaces it."""
    if not family.module:
        first = family.train or (family.more[0].run if family.more else None)
        family = Family(**{**family.__dict__, "module": first.__module__})
    FAMILIES[family.name] = family
    return family


def load_built_in() -> dict[str, Family]:
    for module in _BUILT_IN:
        importlib.import_module(module)
    return FAMILIES


def built_in() -> list[Family]:
    """The families this code base ships (not ones a test or a plugin registered): what `make run` builds."""
    load_built_in()
    return [f for f in FAMILIES.values() if f.module in _BUILT_IN]


def get(name: str, module: str | None = None) -> Family:
    """The family called name (importing module first, if given); UnknownFamilyError lists the known ones."""
    load_built_in()
    if module:
        importlib.import_module(module)
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(name) from None
