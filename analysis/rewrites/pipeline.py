"""The whole rewrite workflow on two periods of a log: mine on the first, replay on the second.

1. Rephrase detection on the mining period: the contextual detector is fitted on that period's labelled
   goal structure (``gold_goal_start``, or reviewed goal starts), the text-similarity baseline likewise.
2. Absorbing-chain rewrites (``analysis.rewrites.mining``) from the detected chains.
3. The online rewriter (``analysis.rewrites.online``) trained on the same period.
4. On the evaluation period: both detectors against its goal structure, and the win/loss replay of the
   chain rewriter, the online rewriter and both combined (chain first), overall, by domain (of the gold
   intent) and by week; and each chain rewrite's own wins, losses and retirement probability. A win needs
   the rewrite's interpretation to be the gold one *and* the rewrite to be a rephrase of what the user said
   (``evaluation.rephrase_of``): the rewrite's sentence (the reference sentence its request was most often
   recognised from in the mining period) and the turn's reference sentence are the same sentence, or share
   a content word under an intent that is not catch-all.

Catch-all intents (``meaning.catch_all_intents``) are derived from the mining period: from its reference
sentences and gold interpretations when it has them, else from its logged requests and NLU interpretations.

Production fields drive every model; gold fields (and reference sentences) are used as fitting targets on
the mining period and as the truth on the evaluation period, never as inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis.labels.evaluation import binary_report
from analysis.rewrites import evaluation as ev
from analysis.rewrites import meaning, online
from analysis.rewrites import mining as rw
from analysis.rewrites import rephrase as rp

# chain_retiring_oracle: the chain rewrites, each retired once its Beta posterior says it is worse than the
# original, fed with the replay's own gold-judged outcomes: an oracle for what retirement could save with
# perfect feedback, not a deployable rewriter. combined: chain first, else the online rewriter.
REWRITERS = ("chain", "chain_retiring_oracle", "online", "combined")


@dataclass
class PipelineConfig:
    mining: rw.MiningConfig = field(default_factory=rw.MiningConfig)
    online: online.OnlineConfig = field(default_factory=online.OnlineConfig)
    session_gap: float = rp.DEFAULT_SESSION_GAP
    with_online: bool = True
    n_boot: int = 1000
    seed: int = 0

    def to_dict(self) -> dict:
        return {"mining": self.mining.to_dict(), "online": vars(self.online).copy(),
                "session_gap": self.session_gap, "with_online": self.with_online, "n_boot": self.n_boot,
                "seed": self.seed}


@dataclass
class Replay:
    """The evaluation period, per sorted turn."""

    turns: rp.Turns
    users: np.ndarray
    domain: np.ndarray
    week: np.ndarray
    defective: np.ndarray
    logged: list[str]
    gold: list[str | None]
    rewritten: dict[str, list[str | None]]  # rewriter -> interpretation or None
    rewrite_text: dict[str, list[str | None]]  # rewriter -> rewritten request or None
    outcome: dict[str, np.ndarray]


@dataclass
class PipelineResult:
    config: PipelineConfig
    detector: rp.RephraseDetector
    baseline: rp.SimilarityBaseline
    mining: rw.MiningResult
    online: online.OnlineRewriter | None
    n_mining_turns: int
    n_rephrases: int
    detection: dict | None = None  # detector / baseline reports on the evaluation period
    replay: Replay | None = None
    reports: dict = field(default_factory=dict)  # rewriter -> {"overall": r, "domain": {..}, "week": {..}}
    per_rewrite: dict[str, dict] = field(default_factory=dict)  # source -> wins, losses, ties, retire
    timings: dict[str, float] = field(default_factory=dict)
    catch_all: meaning.CatchAll | None = None  # the mining period's catch-all intents
    catch_all_from: str = ""  # "gold sentences" or "logged requests"
    # what was said (reference sentence) per state and per normalised request of the mining period, to judge
    # whether a rewrite is a rephrase; empty without reference sentences
    said: dict[str, dict[str, str]] = field(default_factory=dict)


def _sorted_column(table: pa.Table, name: str, order: np.ndarray) -> list:
    values = table.column(name).to_pylist()
    return [values[i] for i in order.tolist()]


def _gold_keys(table: pa.Table, order: np.ndarray) -> list[str | None]:
    intents = _sorted_column(table, "gold_intent", order)
    slots = _sorted_column(table, "gold_slots", order)
    return [None if i is None else rp.interpretation_key(i, s) for i, s in zip(intents, slots, strict=True)]


def _references(table: pa.Table, order: np.ndarray) -> list[str | None]:
    """reference_text per sorted turn (None where missing or without the column)."""
    if "reference_text" not in table.column_names:
        return [None] * len(order)
    return _sorted_column(table, "reference_text", order)


def modal_sentences(codes: np.ndarray, states: list[str], references: list[str | None]) -> dict[str, str]:
    """Per state (``codes`` per turn into ``states``), the reference sentence most often said in its turns
    (ties: the first in sorted order); states whose turns have no reference are left out."""
    counts: dict[int, dict[str, int]] = {}
    for c, ref in zip(codes.tolist(), references, strict=True):
        if ref is not None:
            per = counts.setdefault(c, {})
            per[ref] = per.get(ref, 0) + 1
    return {states[c]: min(per, key=lambda r: (-per[r], r)) for c, per in counts.items()}


def catch_all_of(table: pa.Table, turns: rp.Turns) -> tuple[meaning.CatchAll, str]:
    """The catch-all intents of a period and what they were derived from: its reference sentences with their
    gold interpretations when it has them, else its logged requests with the logged interpretations."""
    refs = _references(table, turns.order)
    if has_gold(table) and any(r is not None for r in refs):
        gold = _gold_keys(table, turns.order)
        keep = [i for i, (r, g) in enumerate(zip(refs, gold, strict=True)) if r is not None and g]
        return (meaning.catch_all_intents([refs[i] for i in keep], [gold[i] for i in keep]), "gold sentences")
    return (meaning.catch_all_intents([turns.texts[c] for c in turns.text.tolist()],
                                      [turns.interps[c] for c in turns.interp.tolist()]), "logged requests")


def seconds_of(table: pa.Table) -> np.ndarray:
    """The timestamp column as seconds since the epoch (float64)."""
    ts = table.column("timestamp")
    if pa.types.is_timestamp(ts.type):
        return pc.cast(ts.cast(pa.timestamp("us", tz=ts.type.tz)), pa.int64()).to_numpy().astype(np.float64) / 1e6
    return np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.float64)


def split_by_time(table: pa.Table, cut: float) -> tuple[pa.Table, pa.Table]:
    """(turns before ``cut``, turns from ``cut`` on), ``cut`` in seconds since the epoch. Whole dialogues
    go to the side of their first turn, so no rephrase chain is cut in two."""
    sec = seconds_of(table)
    dialogues = table.column("dialogue_id").to_numpy(zero_copy_only=False).astype(str)
    uniq, inv = np.unique(dialogues, return_inverse=True)
    first = np.full(len(uniq), np.inf)
    np.minimum.at(first, inv, sec)
    early = first[inv] < cut
    return table.filter(pa.array(early)), table.filter(pa.array(~early))


def has_goal_labels(table: pa.Table) -> bool:
    return "gold_goal_start" in table.column_names and table.column("gold_goal_start").null_count < table.num_rows


def has_gold(table: pa.Table) -> bool:
    return all(c in table.column_names for c in ("gold_intent", "gold_slots", "gold_failure_point")) and (
        table.column("gold_intent").null_count < table.num_rows)


def run(mine_table: pa.Table, eval_table: pa.Table | None, embed: online.Embed | None,
        config: PipelineConfig | None = None, *,
        progress: Callable[[str], None] | None = None) -> PipelineResult:
    """Mine on ``mine_table`` and, if given, replay on ``eval_table`` (both with rephrase.INPUT_COLUMNS;
    gold_goal_start on the mining table to fit the detector; gold_intent, gold_slots, gold_failure_point
    and gold_goal_start on the evaluation table to evaluate). ``embed`` is needed for the online rewriter."""
    config = config or PipelineConfig()
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    say("reading the mining period")
    turns = rp.Turns.from_table(mine_table)
    if len(turns) < 2:
        raise ValueError(f"the mining period has {len(turns)} turn(s); rewrites need a log to mine")
    sessions = rp.session_ids(turns, config.session_gap)
    x, pred = rp.features(turns, sessions)
    if not has_goal_labels(mine_table):
        raise ValueError("the mining period has no goal-structure labels (gold_goal_start) to fit the rephrase "
                         "detector on")
    starts = np.array(_sorted_column(mine_table, "gold_goal_start", turns.order), dtype=object)
    labelled = pred & np.array([s is not None for s in starts.tolist()])
    y = rp.gold_rephrase(turns, sessions, np.array([bool(s) for s in starts.tolist()]))
    say("fitting the rephrase detector")
    detector = rp.RephraseDetector.fit(x[labelled], y[labelled])
    baseline = rp.SimilarityBaseline.fit(x[labelled], y[labelled])
    is_rephrase = detector.detect(x, pred)
    timings["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    say("mining rewrites (absorbing Markov chain)")
    mining = rw.mine(turns, is_rephrase, config.mining)
    timings["mine"] = time.perf_counter() - t
    cont = np.r_[is_rephrase[1:], False]
    defective = turns.signals_defective() | cont
    user_names = _sorted_column(mine_table, "user_id", turns.order)
    user_names = [u if u is not None else f"\x00{d}" for u, d in zip(user_names, turns.dialogue_id, strict=True)]
    catch_all, catch_all_from = catch_all_of(mine_table, turns)
    refs = _references(mine_table, turns.order)
    said = {"utterance": modal_sentences(turns.text, turns.texts, refs),
            "interpretation": modal_sentences(turns.interp, turns.interps, refs)}
    rewriter = None
    if config.with_online:
        if embed is None:
            raise ValueError("the online rewriter needs a sentence encoder (embed)")
        t = time.perf_counter()
        say("training the online rewriter")
        judge = None
        if has_gold(mine_table):  # choose the online thresholds on labelled mining-period turns
            m_logged = [turns.interps[i] for i in turns.interp.tolist()]
            m_gold = _gold_keys(mine_table, turns.order)
            m_failure = _sorted_column(mine_table, "gold_failure_point", turns.order)
            m_defective = np.array([f is not None and f != "NO_FAILURE" for f in m_failure])
            m_source = [ref if ref is not None else turns.texts[c] for ref, c in zip(refs, turns.text.tolist(),
                                                                                    strict=True)]

            def judge(rows: np.ndarray, interps: list[str | None], texts: list[str | None]) -> tuple[int, int]:
                r = rows.tolist()
                gold = [m_gold[i] for i in r]
                same = ev.rephrase_of([m_source[i] for i in r],
                                      [None if t is None else said["utterance"].get(t, t) for t in texts], gold,
                                      catch_all.intents)
                out = ev.outcomes([m_logged[i] for i in r], gold, m_defective[rows], interps, same)
                return int(np.sum(out == ev.WIN)), int(np.sum(out == ev.LOSS))

        rewriter = online.fit_online(turns, defective, rp.chain_ids(is_rephrase), user_names, embed,
                                     config.online, seed=config.seed, judge=judge)
        timings["online"] = time.perf_counter() - t
    result = PipelineResult(config=config, detector=detector, baseline=baseline, mining=mining, online=rewriter,
                            n_mining_turns=len(turns), n_rephrases=int(is_rephrase.sum()), timings=timings,
                            catch_all=catch_all, catch_all_from=catch_all_from, said=said)
    if eval_table is not None and eval_table.num_rows:
        if not has_gold(eval_table):
            raise ValueError("the evaluation period has no gold intents and slots to replay against")
        t = time.perf_counter()
        say("replaying the evaluation period")
        _evaluate(result, eval_table, embed)
        timings["evaluate"] = time.perf_counter() - t
    return result


def _evaluate(result: PipelineResult, table: pa.Table, embed: online.Embed | None) -> None:
    config = result.config
    turns = rp.Turns.from_table(table)
    order = turns.order
    sessions = rp.session_ids(turns, config.session_gap)
    x, pred = rp.features(turns, sessions)
    if has_goal_labels(table):
        starts = _sorted_column(table, "gold_goal_start", order)
        labelled = pred & np.array([s is not None for s in starts])
        gold_r = rp.gold_rephrase(turns, sessions, np.array([bool(s) for s in starts]))
        groups = np.asarray(_sorted_column(table, "user_id", order), dtype=object)[labelled]
        result.detection = {
            name: {**binary_report(gold_r[labelled], det.detect(x, pred)[labelled], groups.astype(str),
                                   n_boot=config.n_boot, seed=config.seed), "resampled": "users"}
            for name, det in (("contextual", result.detector), ("text_similarity", result.baseline))}
    users = np.asarray([u if u is not None else f"\x00{d}" for u, d in
                        zip(_sorted_column(table, "user_id", order), turns.dialogue_id, strict=True)], dtype=object)
    gold = _gold_keys(table, order)
    failure = _sorted_column(table, "gold_failure_point", order)
    defective = np.array([f is not None and f != "NO_FAILURE" for f in failure])
    gold_intent = _sorted_column(table, "gold_intent", order)
    domain = np.array([(g.split("_")[0] if g else "(none)") for g in gold_intent], dtype=object)
    week = ev.week_of(turns.seconds, float(turns.seconds.min()))
    logged = [turns.interps[i] for i in turns.interp.tolist()]
    # what the user said: the reference sentence, else the logged request
    sources = [ref if ref is not None else turns.texts[c]
               for ref, c in zip(_references(table, order), turns.text.tolist(), strict=True)]
    catch = result.catch_all.intents if result.catch_all else ()

    def judged(interps: list[str | None], texts: list[str | None], said: dict[str, str]) -> np.ndarray:
        same = ev.rephrase_of(sources, [None if t is None else said.get(t, t) for t in texts], gold, catch)
        return ev.outcomes(logged, gold, defective, interps, same)

    states = turns.texts if config.mining.states == "utterance" else turns.interps
    codes = turns.text if config.mining.states == "utterance" else turns.interp
    by_source = rw.rewrite_map(result.mining.rewrites)
    chain_interp: list[str | None] = []
    chain_text: list[str | None] = []
    for c in codes.tolist():
        r = by_source.get(states[c])
        chain_interp.append(r.target_interpretation if r else None)
        chain_text.append(r.target if r else None)
    rewritten = {"chain": chain_interp}
    texts = {"chain": chain_text}
    chain_said = result.said.get(config.mining.states, {})
    outcome = {"chain": judged(chain_interp, chain_text, chain_said)}
    source_of = [states[c] if t is not None else None for c, t in zip(codes.tolist(), chain_text, strict=True)]
    outcome["chain_retiring_oracle"] = ev.with_retirement(outcome["chain"], source_of, turns.seconds)
    kept = outcome["chain_retiring_oracle"] != ev.NONE
    rewritten["chain_retiring_oracle"] = [i if k else None for i, k in zip(chain_interp, kept.tolist(), strict=True)]
    texts["chain_retiring_oracle"] = [t if k else None for t, k in zip(chain_text, kept.tolist(), strict=True)]
    if result.online is not None:
        o_text, o_interp, _ = result.online.rewrite(online.Requests.of(turns, users.tolist()), embed)
        rewritten["online"] = o_interp
        texts["online"] = o_text
        rewritten["combined"] = [c if c is not None else o for c, o in zip(chain_interp, o_interp, strict=True)]
        texts["combined"] = [c if c is not None else o for c, o in zip(chain_text, o_text, strict=True)]
        text_said = result.said.get("utterance", {})
        outcome["online"] = judged(o_interp, o_text, text_said)
        # combined: each turn judged as the rewriter that fired (chain first)
        combined_said = [chain_said.get(c, c) if c is not None else (None if o is None else text_said.get(o, o))
                         for c, o in zip(chain_text, o_text, strict=True)]
        outcome["combined"] = judged(rewritten["combined"], combined_said, {})
    result.replay = Replay(turns=turns, users=users, domain=domain, week=week, defective=defective, logged=logged,
                           gold=gold, rewritten=rewritten, rewrite_text=texts, outcome=outcome)
    everything = [True] * len(gold)
    for name, out in outcome.items():
        result.reports[name] = {
            "overall": ev.winloss_report(out, defective, users, n_boot=config.n_boot, seed=config.seed),
            "domain": ev.grouped_reports(out, defective, users, domain, n_boot=config.n_boot, seed=config.seed),
            "week": ev.grouped_reports(out, defective, users, week, n_boot=config.n_boot, seed=config.seed),
        }
        # what a label-only judge (no rephrase condition) would call a win: the wins the rule takes away
        by_label = ev.outcomes(logged, gold, defective, rewritten[name], everything)
        result.reports[name]["overall"]["label_wins"] = int(np.sum(by_label == ev.WIN))
    # each chain rewrite's own record on the evaluation period
    chain_out = outcome["chain"]
    for r in result.mining.rewrites:
        result.per_rewrite[r.source] = {"wins": 0, "losses": 0, "ties": 0}
    for c, o in zip(codes.tolist(), chain_out.tolist(), strict=True):
        if o == ev.NONE:
            continue
        rec = result.per_rewrite[states[c]]
        rec[{ev.WIN: "wins", ev.LOSS: "losses", ev.TIE: "ties"}[o]] += 1
    for rec in result.per_rewrite.values():
        rec["retire_probability"] = rw.retire_probability(rec["wins"], rec["losses"])
        rec["retire"] = rec["retire_probability"] > rw.RETIRE_ABOVE
