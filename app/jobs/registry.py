"""The registry of model families: one entry per family says what it is, its documented options, and how to
train, score and evaluate it. The CLI, the Models page, each family's page and `make run` iterate over it;
none of them names a family.

A family splits each action in two so that a job can run the heavy part in a child process that never opens
the database (the app's server process owns the DuckDB file):
- ``read_*(conn, dataset, options)`` runs in the server process and returns picklable inputs;
- ``train(inputs, options, out, progress)``, ``score(inputs, options, checkpoint, progress)`` and
  ``evaluate(...)`` run in the child: pure Python, no database. score returns candidates (CANDIDATE_SCHEMA),
  which the server writes in one transaction; evaluate returns an analysis.evaluation.Evaluation.

progress(stage, done, total) reports work done; total may be None when unknown.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIONS = ("train", "score", "evaluate")
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
        return parsed


@dataclass(frozen=True)
class Family:
    """A model family. Checkpoints of app jobs go to models/<dataset>/<name>/job-<id>."""

    name: str
    title: str
    description: str
    page: str | None  # the family's own page (app/app_pages/<page>.py), if any
    options: tuple[Option, ...]
    read_train: Callable[[Any, str, dict], Any]
    train: Callable[[Any, dict, Path, Progress], dict]
    read_score: Callable[[Any, str, dict], Any]
    score: Callable[[Any, dict, Path, Progress], Any]
    read_evaluate: Callable[[Any, str, dict], Any] | None = None
    evaluate: Callable[[Any, dict, Path, Progress], Any] | None = None
    describe: Callable[[str, Any], str] = field(default=lambda action, result: f"{action} done")
    module: str = ""  # where the family is defined: a job's child process imports it to find the family

    def actions(self) -> tuple[str, ...]:
        return ACTIONS if self.evaluate is not None else ("train", "score")

    def parse_options(self, action: str, given: dict) -> dict:
        """Every option of this action, defaults filled in; unknown names or bad values raise ValueError."""
        known = {o.name: o for o in self.options if action in o.actions}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) for {self.name} {action}: {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known)) or 'none'}")
        return {name: option.parse(given.get(name)) for name, option in known.items()}


class UnknownFamilyError(KeyError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown model family {self.name!r}; known: {', '.join(sorted(FAMILIES))}"


FAMILIES: dict[str, Family] = {}
# The modules that register the built-in families, imported on first use of the registry.
_BUILT_IN = ("app.jobs.failure_points", "app.jobs.labels", "app.jobs.skills")


def register(family: Family) -> Family:
    """Add a family (a module calls this at import). Registering the same name again replaces it."""
    if not family.module:
        family = Family(**{**family.__dict__, "module": family.train.__module__})
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
