"""When two requests are the same request: content words, catch-all intents and the rephrase rule that the
simulator's users follow and the replay's judge applies.

Two sentences are a **rephrase** of each other when they are the same sentence (after ``normalise``), or
when they share an interpretation (intent and slot values), that intent is not a catch-all one, and they
share a content word (``content_words``: a word that is not a function word, a wake word or a politeness
word, with a plural "s" dropped). The shared word is what keeps strangers apart where the interpretation
alone would not: SLURP labels "where is the car" ``audio_volume_up`` with no slots, exactly like "raise
volume"; the two share no content word, so neither rephrases the other.

**Catch-all intents** (``catch_all_intents``) are derived from the data, not listed by hand. Take the pairs
of distinct sentences that share an interpretation, per intent, and the pairs of sentences of *different*
intents (the base line). An intent is catch-all when its pairs share a content word less than
``ratio`` (2) times as often as the base line's pairs do, judged on at least ``min_pairs`` (20) pairs: its
members are no more alike than strangers are. On the dev part of SLURP's test set (2,395 sentences, gold
intents and slots) the base line's pairs share a word 3.3% of the time; ``general_quirky`` (3% of 5,009
pairs) and ``qa_factoid`` (5% of 673) are catch-all, and the next intent, ``cooking_recipe``, shares a word
in 16% of its pairs. Members of a catch-all intent are rephrases of each other only when they are the same
sentence.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analysis.rewrites.rephrase import normalise

# Function words, wake words and politeness: words that say nothing about what is asked.
STOP_WORDS = frozenset("""
a about above after again against all am an and any anything are as at be been before being below between
both but by can cant could couldnt did didnt do does doesnt doing dont down during each either else ever few
for from had has have having he her here hers herself him himself his how i id if ill im in into is isnt it
its itself ive just let lets me mine more most much must my myself neither no nor not now of off on once
only or other our ours ourselves out over own please same shall she should so some such than thank thanks
that thats the their theirs them themselves then there these they this those through to too under until up
us very was wasnt we were what whats when where which while who whom whos why will with wont would you your
youre yours yourself yourselves hey hi hello ok okay olly alexa google siri yes yeah
""".split())


def content_words(text: str | None) -> frozenset[str]:
    """The words of a request that carry what is asked: normalised (``rephrase.normalise``), without
    STOP_WORDS and single letters, a plural "s" dropped from words of four letters or more ("alarms" ->
    "alarm", but "news", "class" and "bus" stay)."""
    out = set()
    for w in normalise(text).split():
        if len(w) < 2 or w in STOP_WORDS:
            continue
        if len(w) >= 4 and w.endswith("s") and not w.endswith(("ss", "us", "ws", "is")):
            w = w[:-1]
        out.add(w)
    return frozenset(out)


def share_a_word(a: str | None, b: str | None) -> bool:
    """Do two requests share a content word?"""
    return bool(content_words(a) & content_words(b))


def is_rephrase(a: str | None, b: str | None, interpretation_a: str | None, interpretation_b: str | None,
                catch_all: Iterable[str] = ()) -> bool:
    """The rephrase rule (module docstring): the same sentence, or the same interpretation (keys as from
    ``rephrase.interpretation_key``, "intent|slot=value|...") of an intent that is not in ``catch_all`` and a
    shared content word."""
    if normalise(a) == normalise(b) and normalise(a):
        return True
    if not interpretation_a or interpretation_a != interpretation_b:
        return False
    catch = catch_all if isinstance(catch_all, (set, frozenset)) else set(catch_all)
    return intent_of(interpretation_a) not in catch and share_a_word(a, b)


def intent_of(interpretation: str | None) -> str:
    """The intent of an interpretation key ("" for none)."""
    return (interpretation or "").split("|", 1)[0]


@dataclass(frozen=True)
class CatchAll:
    """The catch-all rule's verdict and its evidence. ``share[intent]``: the share of its same-interpretation
    pairs that share a content word, over ``pairs[intent]`` pairs (intents with fewer than ``min_pairs``
    pairs are not judged and not listed); ``base_share`` over ``base_pairs`` pairs of different intents."""

    intents: tuple[str, ...]
    share: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    base_share: float = float("nan")
    base_pairs: int = 0
    ratio: float = 2.0
    min_pairs: int = 20

    def to_dict(self) -> dict:
        """JSON-ready (an undefined base share is None)."""
        base = None if self.base_share != self.base_share else self.base_share
        return {"intents": list(self.intents), "share": dict(self.share), "pairs": dict(self.pairs),
                "base_share": base, "base_pairs": self.base_pairs, "ratio": self.ratio, "min_pairs": self.min_pairs}


def catch_all_intents(texts: Sequence[str | None], interpretations: Sequence[str | None], *, ratio: float = 2.0,
                      min_pairs: int = 20, max_pairs: int = 20_000, seed: int = 0) -> CatchAll:
    """Which intents are catch-all (module docstring), from sentences and their interpretations (one entry
    per sentence or per turn; repeats are counted once, sentences without text or interpretation are
    ignored). All pairs are used up to ``max_pairs`` (per intent, and for the base line); beyond it that many
    are drawn at random with ``seed`` (deterministic)."""
    if ratio <= 0 or min_pairs < 1 or max_pairs < 1:
        raise ValueError("ratio must be > 0, min_pairs and max_pairs >= 1")
    if len(texts) != len(interpretations):
        raise ValueError("texts and interpretations must have one entry per sentence")
    distinct = sorted({(normalise(t), i) for t, i in zip(texts, interpretations, strict=True)
                       if normalise(t) and i})
    words = [content_words(t) for t, _ in distinct]
    groups: dict[str, list[int]] = {}
    for k, (_, interp) in enumerate(distinct):
        groups.setdefault(interp, []).append(k)
    rng = random.Random(seed)
    share: dict[str, float] = {}
    pairs: dict[str, int] = {}
    by_intent: dict[str, list[list[int]]] = {}
    for interp, members in groups.items():
        if len(members) > 1:
            by_intent.setdefault(intent_of(interp), []).append(members)
    for intent in sorted(by_intent):
        candidates = _pairs_within(by_intent[intent], max_pairs, rng)
        if len(candidates) >= min_pairs:
            pairs[intent] = len(candidates)
            share[intent] = sum(bool(words[a] & words[b]) for a, b in candidates) / len(candidates)
    intents = [intent_of(i) for _, i in distinct]
    base_pairs = _pairs_across(intents, max_pairs, rng)
    base_n = len(base_pairs)
    base_hits = sum(bool(words[a] & words[b]) for a, b in base_pairs)
    base = base_hits / base_n if base_n else float("nan")
    chosen = tuple(sorted(i for i, s in share.items() if base_n and s < ratio * base))
    return CatchAll(intents=chosen, share=share, pairs=pairs, base_share=base, base_pairs=base_n, ratio=ratio,
                    min_pairs=min_pairs)


def _pairs_across(labels: list[str], max_pairs: int, rng: random.Random) -> list[tuple[int, int]]:
    """Pairs of entries with different labels: all of them, or ``max_pairs`` drawn at random when there are
    more (pairs of equal labels are redrawn)."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    n = len(labels)
    across = n * (n - 1) // 2 - sum(c * (c - 1) // 2 for c in counts.values())
    if across <= max_pairs:
        return [(a, b) for a in range(n) for b in range(a + 1, n) if labels[a] != labels[b]]
    out: list[tuple[int, int]] = []
    while len(out) < max_pairs:
        a, b = rng.randrange(n), rng.randrange(n)
        if labels[a] != labels[b]:
            out.append((a, b))
    return out


def _pairs_within(groups: list[list[int]], max_pairs: int, rng: random.Random) -> list[tuple[int, int]]:
    """Pairs of members of the same group: all of them, or ``max_pairs`` drawn at random (weighted by each
    group's number of pairs) when there are more."""
    sizes = [len(g) * (len(g) - 1) // 2 for g in groups]
    if sum(sizes) <= max_pairs:
        return [(g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))]
    out = []
    for g in rng.choices(groups, weights=sizes, k=max_pairs):
        i, j = rng.sample(range(len(g)), 2)
        out.append((g[i], g[j]))
    return out
