"""Simulated reviewers: review decisions made up from a log's gold fields, so the Agreement and Calibration pages
have something to draw on a demo dataset. SIMULATED: no person made these decisions.

The rule, per candidate and simulated reviewer (everything below is decided by ``simulate_reviews``):

1. **Gold.** The candidate's gold value comes from the gold fields of its target turn (``analysis.log_format``):
   ``intent`` <- gold_intent, ``slots`` <- gold_slots, ``goal_start`` <- gold_goal_start, ``goal_success`` <-
   gold_goal_success, ``defect`` <- gold_failure_point <> NO_FAILURE, ``failure_point`` <- gold_failure_point,
   ``skill`` <- gold_skills (every skill that could validly serve the request), ``transcript`` <- reference_text (the
   true transcript; evaluation only, like the gold fields). A candidate without a gold value
   (a task with no gold field such as ``rewrite``, a target that is not a turn, a turn whose gold field is null)
   is skipped and counted in ``Simulation.without_gold``.
2. **The error-free verdict.** *accept* when the proposal equals gold, decided as the Label generation page
   decides it (``analysis.labels.evaluation.candidate_correct``: intents exactly, slots as sets of (type, normalised
   value), the binary tasks as booleans); a failure point exactly; a skill when it is one of gold_skills.
   Otherwise *correct* to the gold value (canonical JSON, as candidates store values); for ``skill`` only when
   gold_skills names exactly one skill, else *reject* (with several valid skills there is no one correction). A
   transcript is right when it says the reference's words (case and spacing aside); its correction is the
   proposal with the reference's words (``analysis.rescoring.transcripts.corrected_value``: it keeps the n-best
   the rescorer saw).
3. **Errors.** Each reviewer errs on each candidate independently with probability ``error_rate``; an error
   inverts the reviewer's judgement of the proposal: a right proposal is *rejected*, a wrong one is *accepted*.
   So with two reviewers at rate e, a candidate's reviewers disagree with probability 2e(1 - e), and a label
   both agree on is wrong with probability e^2.
4. **Who decides what.** A candidate with gold is decided with probability ``share`` (the rest stay in the
   review queue for people); of those, a share ``overlap_share`` is decided by every reviewer (the pairs the
   agreement statistics need) and each of the others by one reviewer, drawn uniformly.

Every random draw is a hash of (seed, purpose, reviewer, candidate id), not a draw from a stream: a candidate's
decisions do not depend on which other candidates exist or in what order they come, so a rerun after more
candidates were added repeats every earlier decision and only adds the new ones. The decision id is a UUID
derived from (seed, reviewer, candidate id) alone, so the same decision stored twice is one row.
"""

from __future__ import annotations

import hashlib
import json
import string
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from analysis.candidates import canonical_json
from analysis.labels.evaluation import candidate_correct
from analysis.rescoring.transcripts import corrected_value as corrected_transcript
from analysis.rescoring.transcripts import same_words

SIMULATED_MARK = "(simulated)"
# Letters a..h: past h the names' look-alike keys would collide (analysis.names folds i and l together).
MAX_REVIEWERS = 8
MAX_ERROR_RATE = 0.5  # beyond it a "reviewer" is more often wrong than right: an adversary, not a reviewer
# Fixed namespace of the decision ids: uuid5(NAMESPACE_URL, "https://turnlens.dev/simulated-reviewers").
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://turnlens.dev/simulated-reviewers")

DECISION_SCHEMA = pa.schema([("decision_id", pa.string()), ("candidate_id", pa.int64()), ("reviewer", pa.string()),
                             ("verdict", pa.string()), ("corrected_value", pa.string())])


def reviewer_names(n: int) -> tuple[str, ...]:
    """The names of n simulated reviewers: "sim-reviewer-a (simulated)", "sim-reviewer-b (simulated)", ...
    Each says it is simulated, is already in the stored normal form (analysis.names.normalise_name) and looks
    like none of the others. 1 <= n <= MAX_REVIEWERS, else ValueError."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REVIEWERS:
        raise ValueError(f"the number of simulated reviewers must be an integer from 1 to {MAX_REVIEWERS}, got {n!r}")
    return tuple(f"sim-reviewer-{letter} {SIMULATED_MARK}" for letter in string.ascii_lowercase[:n])


@dataclass(frozen=True)
class SimulationConfig:
    """How the simulated reviewers behave.

    reviewers: how many, 1..MAX_REVIEWERS (2 or more for agreement figures).
    error_rate: each reviewer's probability of misjudging a proposal, in [0, MAX_ERROR_RATE]; 0 answers exactly
        from gold, 0.5 is a coin toss. Default 0.1.
    share: probability that a candidate with gold is decided at all, in (0, 1].
    overlap_share: probability that a decided candidate is decided by every reviewer (else by one), in [0, 1].
    seed: any integer; the same seed gives the same decisions and decision ids.
    """

    reviewers: int = 2
    error_rate: float = 0.1
    share: float = 1.0
    overlap_share: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        reviewer_names(self.reviewers)  # validates the count
        for name, value in (("error_rate", self.error_rate), ("share", self.share),
                            ("overlap_share", self.overlap_share)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not 0.0 <= self.error_rate <= MAX_ERROR_RATE:
            raise ValueError(f"error_rate must be between 0 and {MAX_ERROR_RATE}, got {self.error_rate}")
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {self.share}")
        if not 0.0 <= self.overlap_share <= 1.0:
            raise ValueError(f"overlap_share must be between 0 and 1, got {self.overlap_share}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class SimulatedDecision:
    """One simulated reviewer's decision on one candidate. ``truth`` is the verdict an error-free reviewer would
    give; ``erred`` says this reviewer misjudged the proposal (then ``verdict`` differs from ``truth``)."""

    decision_id: str
    candidate_id: int
    task: str
    reviewer: str
    verdict: str  # accept, reject or correct
    corrected_value: str | None  # canonical JSON, for a correction only
    truth: str
    erred: bool


@dataclass(frozen=True)
class Simulation:
    """What ``simulate_reviews`` decided. ``candidates``: candidates given; ``without_gold``: task -> candidates
    skipped for want of a gold value; ``with_gold``: the others; ``decided``: candidates with at least one
    decision; ``shared``: candidates decided by every reviewer."""

    config: SimulationConfig
    reviewers: tuple[str, ...]
    decisions: tuple[SimulatedDecision, ...]
    candidates: int
    with_gold: int
    decided: int
    shared: int
    without_gold: dict[str, int] = field(default_factory=dict)

    def table(self) -> pa.Table:
        """The decisions as an Arrow table (DECISION_SCHEMA), for the store."""
        cols = {name: [getattr(d, name) for d in self.decisions] for name in DECISION_SCHEMA.names}
        return pa.table(cols, schema=DECISION_SCHEMA)

    def errors(self) -> dict[str, tuple[int, int]]:
        """reviewer -> (decisions, of which erred)."""
        made = Counter(d.reviewer for d in self.decisions)
        erred = Counter(d.reviewer for d in self.decisions if d.erred)
        return {r: (made[r], erred[r]) for r in self.reviewers}

    def verdicts(self) -> dict[str, int]:
        """verdict -> how many decisions, over all reviewers."""
        return dict(sorted(Counter(d.verdict for d in self.decisions).items()))


# --- gold per task --------------------------------------------------------------------------------------------

# A task's gold answer for one turn: (gold value as canonical JSON or None, is_right(proposal JSON) -> bool).
Judge = tuple[str | None, Callable[[str], bool]]


def _compared_label(task: str, column: str, transform: Callable[[object], object] = lambda v: v
                    ) -> Callable[[Mapping], Judge | None]:
    """A task that ``candidate_correct`` compares (intent, slots, the binary tasks), gold from one column."""
    def judge(gold: Mapping) -> Judge | None:
        raw = gold.get(column)
        if raw is None:
            return None
        value = canonical_json(transform(raw))
        return value, lambda proposal: bool(candidate_correct(task, proposal, value))
    return judge


def _failure_point(gold: Mapping) -> Judge | None:
    raw = gold.get("gold_failure_point")
    if raw is None:
        return None
    return canonical_json(raw), lambda proposal: json.loads(proposal) == raw


def _skill(gold: Mapping) -> Judge | None:
    raw = gold.get("gold_skills")
    if raw is None:
        return None
    valid = [str(s) for s in raw]
    # With several valid skills there is no one value to correct to: such a wrong proposal is rejected.
    value = canonical_json(valid[0]) if len(valid) == 1 else None
    return value, lambda proposal: json.loads(proposal) in valid


def _slots(raw: object) -> list[dict]:
    # Arrow gives each slot as a {"type", "value"} dict; candidates store slots in the same shape
    return [{"type": s["type"], "value": s["value"]} for s in raw]


def _transcript(gold: Mapping) -> Judge | None:
    raw = gold.get("reference_text")
    if not isinstance(raw, str) or not raw.strip():
        return None
    return canonical_json(raw), lambda proposal: same_words(str(json.loads(proposal).get("text")), raw)


_JUDGES: dict[str, Callable[[Mapping], Judge | None]] = {
    "intent": _compared_label("intent", "gold_intent"),
    "slots": _compared_label("slots", "gold_slots", _slots),
    "goal_start": _compared_label("goal_start", "gold_goal_start", bool),
    "goal_success": _compared_label("goal_success", "gold_goal_success", bool),
    "defect": _compared_label("defect", "gold_failure_point", lambda fp: fp != "NO_FAILURE"),
    "failure_point": _failure_point,
    "skill": _skill,
    "transcript": _transcript,
}
# A task whose correction keeps the proposal's context: (proposal, gold value) -> the corrected value, both JSON.
_CORRECTIONS: dict[str, Callable[[str, str], str]] = {
    "transcript": lambda proposal, gold: canonical_json(corrected_transcript(json.loads(proposal), json.loads(gold))),
}
GOLD_TASKS = tuple(_JUDGES)  # the tasks a simulated reviewer can answer; candidates of other tasks are skipped


def gold_judge(task: str, gold: Mapping[str, object]) -> Judge | None:
    """(the gold value as canonical JSON, or None where no single value exists; a function telling whether a
    proposal, as canonical JSON, is right) for one task on one turn's gold fields; None without gold."""
    judge = _JUDGES.get(task)
    return None if judge is None else judge(gold)


# --- the simulation -------------------------------------------------------------------------------------------

def _uniform(seed: int, purpose: str, reviewer: str, candidate_id: int) -> float:
    """A number in [0, 1) fixed by its arguments: blake2b, not Python's hash(), which differs between processes."""
    digest = hashlib.blake2b(f"{seed}\x1f{purpose}\x1f{reviewer}\x1f{candidate_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def decision_id(seed: int, reviewer: str, candidate_id: int) -> str:
    """The id of a simulated reviewer's decision on a candidate: a UUID fixed by (seed, reviewer, candidate id)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{seed}\x1f{reviewer}\x1f{candidate_id}"))


def _verdict(right: bool, gold_value: str | None) -> tuple[str, str | None]:
    if right:
        return "accept", None
    return ("reject", None) if gold_value is None else ("correct", gold_value)


def simulate_reviews(candidates: Sequence[Mapping[str, object]], gold: Sequence[Mapping[str, object]],
                     config: SimulationConfig) -> Simulation:
    """The simulated reviewers' decisions on ``candidates`` (rule: module docstring).

    candidates: one mapping per candidate with ``candidate_id`` (int), ``task``, ``value`` (the proposal as
        canonical JSON), ``dialogue_id`` and ``turn_index`` (the target turn; None for a dialogue or other
        non-turn target, which has no gold). Other keys (e.g. ``score``) are ignored.
    gold: one mapping per turn with ``dialogue_id``, ``turn_index`` and the gold fields of
        ``analysis.log_format`` (gold_intent, gold_slots, ...; missing or None where the log has none).

    Decisions come sorted by candidate id, then reviewer. Raises ValueError for a repeated candidate id or
    turn, or a candidate without the keys above.
    """
    names = reviewer_names(config.reviewers)
    by_turn: dict[tuple[str, int], Mapping[str, object]] = {}
    for row in gold:
        key = (str(row["dialogue_id"]), int(row["turn_index"]))
        if key in by_turn:
            raise ValueError(f"gold: turn {key[1]} of dialogue {key[0]!r} appears twice")
        by_turn[key] = row
    seen: set[int] = set()
    without: Counter[str] = Counter()
    decisions: list[SimulatedDecision] = []
    with_gold = decided = shared = 0
    for cand in sorted(candidates, key=lambda c: int(c["candidate_id"])):
        try:
            cid, task, value = int(cand["candidate_id"]), str(cand["task"]), str(cand["value"])
            turn = cand["turn_index"]
            target = None if turn is None else by_turn.get((str(cand["dialogue_id"]), int(turn)))
        except KeyError as exc:
            raise ValueError(f"every candidate needs candidate_id, task, value, dialogue_id and turn_index; "
                             f"missing {exc}") from None
        if cid in seen:
            raise ValueError(f"candidate {cid} appears twice")
        seen.add(cid)
        judged = None if target is None else gold_judge(task, target)
        if judged is None:
            without[task] += 1
            continue
        with_gold += 1
        if _uniform(config.seed, "share", "", cid) >= config.share:
            continue  # left for people
        decided += 1
        if len(names) == 1 or _uniform(config.seed, "overlap", "", cid) < config.overlap_share:
            deciders = names
            shared += 1
        else:
            deciders = (names[min(int(_uniform(config.seed, "assign", "", cid) * len(names)), len(names) - 1)],)
        gold_value, is_right = judged
        right = is_right(value)
        truth = _verdict(right, gold_value)
        if truth[0] == "correct" and task in _CORRECTIONS:
            truth = ("correct", _CORRECTIONS[task](value, truth[1]))
        for name in deciders:
            erred = _uniform(config.seed, "error", name, cid) < config.error_rate
            # an error inverts the judgement: a right proposal is rejected, a wrong one accepted
            verdict, corrected = (("reject", None) if right else ("accept", None)) if erred else truth
            decisions.append(SimulatedDecision(decision_id(config.seed, name, cid), cid, task, name, verdict,
                                               corrected, truth[0], erred))
    return Simulation(config, names, tuple(decisions), len(seen), with_gold, decided, shared,
                      dict(sorted(without.items())))
