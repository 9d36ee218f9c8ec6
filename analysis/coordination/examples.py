"""Coordination examples from real slot annotations: an utterance with exactly one value of a list-able slot type
has that value replaced by 2, 3 or 4+ values of the same type joined as people speak, tagged per word B (an
item's first word), I (its other words) or O; the utterance as it is (one value: no list) is kept, all O.

* ``tokenize`` / ``words``: lowercase words with punctuation stripped, as recognisers emit them ("&" is "and";
  apostrophes inside a word stay: "o'clock"). Character offsets are kept so a page can highlight the chunks.
* ``Utterance``: a source utterance, its words and typed entity spans, and optionally the words a recogniser
  heard for one recording of it. ``slurp_utterances`` reads them from SLURP (devel and test files; the
  evaluation split only when asked for), ``utterances_from_turns`` from log records (``reference_text`` and
  ``gold_slots``; ``asr_text`` as the recognised words).
* ``type_stats`` / ``listable_types``: which slot types are list-able, derived from the data (config.py).
* ``value_pools``: the distinct values of each type, without values that are themselves a coordination of two
  values of the type ("green and red"); a value that merely contains "and" ("war and peace", "r and b", "one
  hundred and six") is an ordinary value and stays ONE item wherever it is inserted.
* ``build_examples``: the examples, deterministic for a seed; ``recognised_examples``: the same lists inserted
  into the recognised words of the same utterances, where the original value survived recognition.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analysis.coordination.config import (
    JOINERS,
    K_WEIGHTS,
    LISTABLE_MIN_DISTINCT,
    LISTABLE_MIN_NOUN_SHARE,
    TEST_KS,
    UNSEEN_SHARE,
)

TAGS = ("O", "B", "I")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*", re.IGNORECASE)
CONJUNCTIONS = frozenset({"and", "or"})
# what may stand between two values of a type in a natural list (SLURP sometimes annotates a list as two entities)
_LIST_GAPS = {(), ("and",), ("or",), ("and", "also"), ("as", "well", "as")}


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word of text: lowercase letters, digits and inner apostrophes; everything else
    (punctuation, symbols) separates words and is dropped, except "&", which is the word "and"."""
    out = []
    for m in re.finditer(r"&|" + _WORD.pattern, text or "", re.IGNORECASE):
        out.append(("and" if m.group() == "&" else m.group().lower(), m.start(), m.end()))
    return out


def words(text: str) -> tuple[str, ...]:
    """The words of text (``tokenize`` without offsets)."""
    return tuple(w for w, _, _ in tokenize(text))


@dataclass(frozen=True)
class Entity:
    """A typed value over words [start, end) of its utterance; head_pos: the POS tag of its last word, if known."""

    type: str
    start: int
    end: int
    head_pos: str | None = None


@dataclass(frozen=True)
class Utterance:
    uid: str  # the source utterance: examples built from it form one bootstrap cluster
    tokens: tuple[str, ...]
    entities: tuple[Entity, ...]
    asr: tuple[str, ...] | None = None  # the words a recogniser heard for one recording of it, if any
    group: str | None = None  # what the bootstrap resamples (e.g. the dialogue); None: the uid

    def value(self, e: Entity) -> tuple[str, ...]:
        return self.tokens[e.start:e.end]


@dataclass(frozen=True)
class Example:
    """One tagged example. items: word spans [start, end) of the gold list items (empty for one value: no list).
    values: the items' words; extent: the span of the whole list (or of the single value); carrier: the value it
    replaced, as it was; style: how the items were joined; text: "gold" or "recognised"."""

    uid: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    slot_type: str
    n_items: int
    items: tuple[tuple[int, int], ...]
    extent: tuple[int, int]
    values: tuple[tuple[str, ...], ...] = ()
    carrier: tuple[str, ...] = ()
    style: str = "single"
    text: str = "gold"
    group: str = ""

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{self.uid}: {len(self.tokens)} words but {len(self.tags)} tags")
        if not self.group:
            object.__setattr__(self, "group", self.uid)

    def item_texts(self) -> list[str]:
        return [" ".join(self.tokens[s:e]) for s, e in self.items]


# ---------------------------------------------------------------------------------------------- sources

def _entity_spans(tokens: Sequence[str], values: Iterable[tuple[str, str]]) -> list[Entity]:
    """Typed values placed on the words at their first occurrence none of whose words is taken yet (as
    analysis.labels.evaluation.bio_tags does); a value found nowhere (e.g. garbled by recognition) is skipped."""
    taken = [False] * len(tokens)
    out = []
    for typ, value in values:
        v = words(value)
        m = len(v)
        for i in range(len(tokens) - m + 1 if m else 0):
            if tuple(tokens[i:i + m]) == v and not any(taken[i:i + m]):
                taken[i:i + m] = [True] * m
                out.append(Entity(typ, i, i + m))
                break
    return sorted(out, key=lambda e: e.start)


def utterances_from_turns(turns: Iterable[Mapping], *, dedupe: bool = False) -> list[Utterance]:
    """Utterances from log records: the words of ``reference_text`` (``asr_text`` where there is none) with the
    ``gold_slots`` found in them, and the words of ``asr_text`` as the recognised text; uid dialogue:turn,
    grouped by dialogue. Turns without gold slots are left out. dedupe: keep the first of each sentence (a
    simulated log repeats its sentences; training on copies would only weigh them)."""
    out, seen = [], set()
    for t in turns:
        gold = t.get("gold_slots")
        if gold is None:
            continue
        ref = t.get("reference_text") or t.get("asr_text") or ""
        tokens = words(ref)
        if not tokens or (dedupe and tokens in seen):
            continue
        seen.add(tokens)
        ents = _entity_spans(tokens, [(str(s["type"]), str(s["value"])) for s in gold])
        out.append(Utterance(f"{t['dialogue_id']}:{t['turn_index']}", tokens, tuple(ents),
                             words(t.get("asr_text") or "") or None, group=str(t["dialogue_id"])))
    return out


def _slurp_utterance(obj: dict) -> Utterance:
    """One SLURP utterance: its tokens' surfaces split into words (a surface may hold several or none), the
    entity spans moved onto those words, with the POS tag of each entity's last token."""
    toks: list[str] = []
    index = {}
    for t in obj["tokens"]:
        surface = t["surface"]
        ws = list(words(surface))
        if toks and ws and (surface.startswith("'") or surface == "n't"):
            # a clitic SLURP split off ("today 's"): a recogniser writes one word, "today's"
            toks[-1] += "'" + ws[0] if surface.startswith("'") else ws[0]
            index[t["id"]] = (len(toks) - 1, len(toks))
            ws = ws[1:]
            if not ws:
                continue
        index[t["id"]] = (len(toks), len(toks) + len(ws))
        toks.extend(ws)
    pos = {t["id"]: t.get("pos") for t in obj["tokens"]}
    ents = []
    for e in sorted(obj["entities"], key=lambda e: e["span"][0]):
        start, end = index[e["span"][0]][0], index[e["span"][-1]][1]
        if end > start:
            ents.append(Entity(e["type"], start, end, pos.get(e["span"][-1])))
    return Utterance(f"slurp:{obj['slurp_id']}", tuple(toks), tuple(ents))


def slurp_utterances(slurp_dir: str | Path, split: str) -> list[Utterance]:
    """SLURP utterances, sorted by slurp_id. split "train": devel.jsonl and the test utterances outside the
    evaluation split (slurp_id % 5 != 0); "eval": the evaluation split only, each with the recognised words of
    its first recording (by file name) in which the recogniser kept every entity value, or of its first
    recording when none did (multi_slurp_hermit_predictions.jsonl; the evaluation utterances' recordings).
    Never train or tune on "eval"."""
    from analysis.slurp import EVAL_MODULUS, load_recordings, read_jsonl

    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    root = Path(slurp_dir)
    need = ("slurp_id", "sentence", "tokens", "entities")
    objs = []
    if split == "train":
        objs += [o for _, o in read_jsonl(root / "devel.jsonl", need)]
    objs += [o for _, o in read_jsonl(root / "test.jsonl", need)
             if (int(o["slurp_id"]) % EVAL_MODULUS == 0) == (split == "eval")]
    utts = sorted((_slurp_utterance(o) for o in objs), key=lambda u: int(u.uid.split(":")[1]))
    if split == "train":
        return utts
    heard: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for rec in load_recordings(root, "eval"):  # sorted by (slurp_id, file)
        heard[rec["slurp_id"]].append(words(rec["asr_text"]))
    out = []
    for u in utts:
        recs = heard.get(int(u.uid.split(":")[1]), [])
        kept = [r for r in recs if all(_find(r, u.value(e)) is not None for e in u.entities)]
        asr = kept[0] if kept else (recs[0] if recs else None)
        out.append(Utterance(u.uid, u.tokens, u.entities, asr))
    return out


# ---------------------------------------------------------------------------------------------- list-able types

@dataclass(frozen=True)
class TypeStats:
    """One slot type in a pool of utterances: its values, distinct values, the share of values whose last word is
    a noun (NaN-free: 0 when no POS is known), and how often the data itself coordinates two of its values."""

    slot_type: str
    occurrences: int
    distinct: int
    noun_share: float
    coordinated: int
    listable: bool = False


def _is_coordination(value: tuple[str, ...], known: set[tuple[str, ...]]) -> bool:
    """Whether a value is two or more known values of its type joined by "and"/"or" ("green and red")."""
    cuts = [i for i, w in enumerate(value) if w in CONJUNCTIONS]
    for c in cuts:
        if value[:c] in known and value[c + 1:] in known:
            return True
    return False


def type_stats(utterances: Sequence[Utterance], *, min_distinct: int = LISTABLE_MIN_DISTINCT,
               min_noun_share: float = LISTABLE_MIN_NOUN_SHARE) -> list[TypeStats]:
    """Per slot type, the statistics behind the list-able rule, most frequent first: list-able when it has at
    least min_distinct distinct values and either at least min_noun_share of its values end in a noun (NN*)
    or the data coordinates two of its values (two values of the type joined only by "and", "or", "and also",
    "as well as" or nothing, or one value that is two known values joined by "and"/"or")."""
    occ: Counter = Counter()
    nouns: Counter = Counter()
    values: dict[str, set] = defaultdict(set)
    coordinated: Counter = Counter()
    for u in utterances:
        for e in u.entities:
            occ[e.type] += 1
            nouns[e.type] += bool(e.head_pos and e.head_pos.startswith("NN"))
            values[e.type].add(u.value(e))
        for a, b in zip(u.entities, u.entities[1:], strict=False):
            if a.type == b.type and u.tokens[a.end:b.start] in _LIST_GAPS:
                coordinated[a.type] += 1
    for u in utterances:
        for e in u.entities:
            coordinated[e.type] += _is_coordination(u.value(e), values[e.type])
    out = []
    for typ, n in sorted(occ.items(), key=lambda kv: (-kv[1], kv[0])):
        share = nouns[typ] / n
        listable = len(values[typ]) >= min_distinct and (share >= min_noun_share or coordinated[typ] > 0)
        out.append(TypeStats(typ, n, len(values[typ]), share, coordinated[typ], listable))
    return out


def listable_types(stats: Sequence[TypeStats]) -> tuple[str, ...]:
    """The list-able types of ``type_stats``, sorted."""
    return tuple(sorted(s.slot_type for s in stats if s.listable))


def unseen_types(types: Sequence[str], share: float = UNSEEN_SHARE) -> tuple[str, ...]:
    """The slot types held out of training for the seen/unseen comparison: the ``share`` of ``types`` (rounded,
    at least one) whose sha256("coordination-unseen:" + type) is smallest; sorted. A fixed rule, blind to results."""
    n = max(1, round(share * len(types)))
    ranked = sorted(types, key=lambda t: hashlib.sha256(f"coordination-unseen:{t}".encode()).hexdigest())
    return tuple(sorted(ranked[:n]))


# ---------------------------------------------------------------------------------------------- generation

def value_pools(utterances: Sequence[Utterance], types: Iterable[str]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Per type, its distinct values (sorted), less the values that are themselves a coordination of two of
    its values. A value containing "and" that is not such a coordination stays: it is one item."""
    want = set(types)
    found: dict[str, set] = defaultdict(set)
    for u in utterances:
        for e in u.entities:
            if e.type in want:
                found[e.type].add(u.value(e))
    return {t: tuple(sorted(v for v in vals if not _is_coordination(v, vals))) for t, vals in sorted(found.items())}


def join(values: Sequence[tuple[str, ...]], style: str) -> tuple[tuple[str, ...], list[tuple[int, int]]]:
    """The words of values joined in ``style`` (a key of config.JOINERS) and each value's span in them:
    and "a b and c", or "a b or c", and_and "a and b and c", as_well_as "a b as well as c", and_also
    "a b and also c" (two values: "a and b", "a or b", "a as well as b", "a and also b")."""
    last = {"and": ("and",), "or": ("or",), "and_and": ("and",), "as_well_as": ("as", "well", "as"),
            "and_also": ("and", "also")}[style]
    out: list[str] = []
    spans = []
    for i, v in enumerate(values):
        if i == len(values) - 1 and i > 0:
            out.extend(last)
        elif i > 0 and style == "and_and":
            out.append("and")
        spans.append((len(out), len(out) + len(v)))
        out.extend(v)
    return tuple(out), spans


def _rng(*parts: object) -> random.Random:
    return random.Random(int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16], 16))


def carriers(u: Utterance, types: set[str], pools: Mapping[str, Sequence]) -> list[Entity]:
    """The entities of u that can carry a list: of a type in ``types`` that occurs once in u, whose value is in
    the type's pool (so not itself a coordination)."""
    counts = Counter(e.type for e in u.entities)
    return [e for e in u.entities
            if e.type in types and counts[e.type] == 1 and u.value(e) in set(pools.get(e.type, ()))]


def make_example(u: Utterance, carrier: Entity, values: Sequence[tuple[str, ...]], style: str, *,
                 tokens: tuple[str, ...] | None = None, at: int | None = None, text: str = "gold") -> Example:
    """u with the carrier's value replaced by values joined in style (one value: the utterance as it is, all O).
    tokens / at: build on other words (the recognised ones) where the carrier's value starts at ``at``."""
    words_ = u.tokens if tokens is None else tokens
    start = carrier.start if at is None else at
    end = start + (carrier.end - carrier.start)
    if len(values) <= 1:
        return Example(u.uid, words_, ("O",) * len(words_), carrier.type, 1, (), (start, end), (),
                       u.value(carrier), "single", text, u.group or u.uid)
    joined, spans = join(values, style)
    toks = words_[:start] + joined + words_[end:]
    tags = ["O"] * len(toks)
    items = []
    for s, e in spans:
        tags[start + s] = "B"
        for i in range(start + s + 1, start + e):
            tags[i] = "I"
        items.append((start + s, start + e))
    return Example(u.uid, toks, tuple(tags), carrier.type, len(values), tuple(items),
                   (start, start + len(joined)), tuple(values), u.value(carrier), style, text, u.group or u.uid)


def _draw(rng: random.Random, pool: Sequence[tuple[str, ...]], k: int) -> list[tuple[str, ...]] | None:
    return None if len(pool) < k else rng.sample(list(pool), k)


def _style(rng: random.Random, k: int) -> str:
    styles, weights = zip(*JOINERS.items(), strict=True)
    style = rng.choices(styles, weights)[0]
    return "and" if k == 2 and style == "and_and" else style


@dataclass
class Generated:
    """build_examples' result: the examples, and how many utterances could carry a list."""

    examples: list[Example] = field(default_factory=list)
    carriers: int = 0
    skipped_excluded: int = 0  # utterances left out because they hold an excluded (held-out) type


def build_examples(utterances: Sequence[Utterance], *, types: Iterable[str], pools: Mapping[str, Sequence],
                   seed: int, variants: int = 4, k_weights: Sequence[float] = K_WEIGHTS,
                   ks: Sequence[int] | None = None, exclude_types: Iterable[str] = ()) -> Generated:
    """Examples from the utterances that carry a list (``carriers``): per utterance one carrier (drawn), then
    either ``variants`` examples whose item counts 1-5 are drawn by k_weights (training), or, with ``ks``, one
    example per item count in ks (evaluation). Items are drawn without repeats from the carrier type's pool; an
    item count the pool cannot fill is skipped. exclude_types: utterances holding ANY entity of these types are
    left out entirely (unseen types never reach training, not even as a single value). Deterministic for seed."""
    types, excluded = set(types), set(exclude_types)
    out = Generated()
    for u in utterances:
        if excluded and any(e.type in excluded for e in u.entities):
            out.skipped_excluded += 1
            continue
        options = carriers(u, types - excluded, pools)
        if not options:
            continue
        out.carriers += 1
        carrier = _rng(seed, u.uid, "carrier").choice(options)
        pool = pools[carrier.type]
        plan = list(ks) if ks is not None else [
            _rng(seed, u.uid, "k", v).choices(range(1, 6), k_weights)[0] for v in range(variants)]
        for v, k in enumerate(plan):
            rng = _rng(seed, u.uid, k, v)
            values = [u.value(carrier)] if k == 1 else _draw(rng, pool, k)
            if values is None:
                continue
            out.examples.append(make_example(u, carrier, values, _style(rng, k)))
    return out


def _find(tokens: Sequence[str], value: Sequence[str]) -> int | None:
    """The start of the only occurrence of value in tokens; None when it occurs nowhere or more than once."""
    m = len(value)
    hits = [i for i in range(len(tokens) - m + 1) if m and tuple(tokens[i:i + m]) == tuple(value)]
    return hits[0] if len(hits) == 1 else None


def recognised_examples(utterances: Sequence[Utterance], examples: Sequence[Example]) -> list[Example]:
    """The same lists on the recognised words: for each example whose utterance has recognised words in which
    the carrier's value occurs exactly once, the same items joined the same way replace it there (text
    "recognised"). The context is what the recogniser heard; the inserted items are text (no recording says
    them). Examples whose value did not survive recognition are left out."""
    by_uid = {u.uid: u for u in utterances}
    out = []
    for ex in examples:
        u = by_uid.get(ex.uid)
        if u is None or not u.asr:
            continue
        at = _find(u.asr, ex.carrier)
        if at is None:
            continue
        carrier = Entity(ex.slot_type, at, at + len(ex.carrier))
        out.append(make_example(u, carrier, list(ex.values) or [ex.carrier], ex.style, tokens=u.asr, at=at,
                                text="recognised"))
    return out


def evaluation_examples(utterances: Sequence[Utterance], *, types: Iterable[str], pools: Mapping[str, Sequence],
             seed: int, ks: Sequence[int] = TEST_KS) -> tuple[list[Example], list[Example]]:
    """(gold-text examples, recognised-text examples) for evaluation: one example per item count in ks for
    every carrier utterance, and the same lists on the recognised words where the value survived."""
    gold = build_examples(utterances, types=types, pools=pools, seed=seed, ks=ks).examples
    return gold, recognised_examples(utterances, gold)
