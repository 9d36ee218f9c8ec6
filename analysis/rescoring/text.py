"""The rescoring LM's text: one tokenisation, NLU examples with BIO slot tags, and the training text from SLURP
(never its evaluation split, and without the tuning subset when asked) or from workbench turns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis import wer
from analysis.slurp import TEST_FILE, gold_slots, is_eval_utterance, read_jsonl

DEV_FILE = "devel.jsonl"

# The tuning subset: the non-evaluation SLURP *test* utterances with slurp_id % 5 == 1 (about a fifth of the test
# utterances outside the evaluation split; test utterances are the only ones with recognitions, so the only ones
# with n-best lists). The LM never trains on them when slurp_training_text is called with exclude=is_tune_utterance,
# so the rescoring weights lambda and beta are tuned on sentences the LM has not memorised. Fixed before any result.
TUNE_RULE = "SLURP test utterances with slurp_id % 5 == 1 (the evaluation split is slurp_id % 5 == 0)"
TUNE_MODULUS, TUNE_REMAINDER = 5, 1


def is_tune_utterance(slurp_id: int) -> bool:
    """Whether a SLURP test utterance belongs to the tuning subset (TUNE_RULE). Never true of an evaluation-split
    utterance."""
    return slurp_id % TUNE_MODULUS == TUNE_REMAINDER


def words(text: str | None) -> list[str]:
    """The one tokenisation of the rescorer, for its training text and for hypotheses alike: lower-cased (as the
    recogniser's LM, analysis/speech/lm.py normalise) and split as WER splits (analysis/wer.py words), so a
    hypothesis's LM words are exactly its WER words."""
    return wer.words((text or "").lower())


def sentence_key(text: str | None) -> str:
    """The normalised form sentences are compared by (words joined by one space)."""
    return " ".join(words(text))


@dataclass(frozen=True)
class NLUExample:
    """One NLU-labelled sentence: its tokens (``words``), its intent (None: unknown) and a BIO slot tag per token
    ("B-date", "I-date", "O"; None: slots unknown)."""

    tokens: tuple[str, ...]
    intent: str | None
    tags: tuple[str, ...] | None

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"{len(self.tags)} tags for {len(self.tokens)} tokens: {' '.join(self.tokens)!r}")


def bio_tags(tokens: Sequence[str], slots: Iterable[dict] | None) -> tuple[str, ...]:
    """BIO tags for tokens from slots ({type, value}): each value's words (``words``) are looked for in the tokens,
    in the slots' order, at the first place none of whose tokens an earlier slot took; a value not found is
    skipped (its words stay O)."""
    tags = ["O"] * len(tokens)
    used = [False] * len(tokens)
    for slot in slots or ():
        value = words(str(slot.get("value") or ""))
        kind = str(slot.get("type") or "")
        k = len(value)
        if not k or not kind:
            continue
        for i in range(len(tokens) - k + 1):
            if not any(used[i:i + k]) and list(tokens[i:i + k]) == value:
                tags[i] = f"B-{kind}"
                for j in range(i + 1, i + k):
                    tags[j] = f"I-{kind}"
                for j in range(i, i + k):
                    used[j] = True
                break
    return tuple(tags)


def evaluation_sentences(slurp_dir: str | Path) -> frozenset[str]:
    """The normalised (``sentence_key``) sentences of SLURP's evaluation split: text no training input may equal."""
    return frozenset(sentence_key(str(u["sentence"])) for _, u in read_jsonl(Path(slurp_dir) / TEST_FILE,
                                                                              ("slurp_id", "sentence"))
                     if is_eval_utterance(int(u["slurp_id"])))


def slurp_training_text(slurp_dir: str | Path, *, exclude: Callable[[int], bool] | None = None
                        ) -> tuple[list[str], list[NLUExample]]:
    """The rescoring LM's training text from SLURP: every devel.jsonl utterance and every test utterance outside
    the evaluation split (slurp_id % 5 != 0), in file order, as normalised sentences and as NLU examples (intent
    = scenario_action, BIO tags from the annotated entities: analysis.slurp.gold_slots, ``bio_tags``).

    exclude(slurp_id): test utterances for which it is true are held out too (``is_tune_utterance``: the tuning
    subset; devel.jsonl utterances are never asked about: they have no recordings, so no n-best lists to tune on).
    A sentence whose text equals an evaluation-split sentence or a held-out sentence is skipped wherever it
    appears (SLURP repeats short requests across utterances), so no evaluation text and no tuning text reaches
    the LM even by another utterance's id."""
    root = Path(slurp_dir)
    required = ("slurp_id", "sentence", "scenario", "action", "tokens", "entities")
    dev = [u for _, u in read_jsonl(root / DEV_FILE, required)]
    test = [u for _, u in read_jsonl(root / TEST_FILE, required)]
    forbidden = set(evaluation_sentences(root))
    kept_test = []
    for u in test:
        sid = int(u["slurp_id"])
        if is_eval_utterance(sid) or (exclude is not None and exclude(sid)):
            forbidden.add(sentence_key(str(u["sentence"])))
        else:
            kept_test.append(u)
    sentences: list[str] = []
    examples: list[NLUExample] = []
    for u in dev + kept_test:
        key = sentence_key(str(u["sentence"]))
        if not key or key in forbidden:
            continue
        tokens = tuple(key.split(" "))
        sentences.append(key)
        examples.append(NLUExample(tokens, f"{u['scenario']}_{u['action']}", bio_tags(tokens, gold_slots(u))))
    return sentences, examples


def _is_eval_turn(turn: dict) -> bool:
    return turn.get("slurp_split") == "eval" or str(turn.get("dialogue_id") or "").startswith("eval-")


def _slots(value) -> list[dict] | None:
    if value is None:
        return None
    if isinstance(value, str):  # stored turns may carry the slots as JSON text
        value = json.loads(value) if value.strip() else []
    return [dict(s) for s in value]


def examples_from_turns(turns: Iterable[dict]) -> tuple[list[str], list[NLUExample]]:
    """Training text from workbench turn dicts: the normalised reference_text of every turn that has one, and an
    NLU example for each of those with a gold_intent (tags from gold_slots; None when the turn has no gold_slots
    at all, all O when it has an empty list). A turn of SLURP's evaluation split (slurp_split "eval", or a
    dialogue_id starting "eval-") is refused with a ValueError naming it: nothing trains on evaluation text."""
    sentences: list[str] = []
    examples: list[NLUExample] = []
    for turn in turns:
        if _is_eval_turn(turn):
            raise ValueError(f"turn {turn.get('dialogue_id')!r} #{turn.get('turn_index')} belongs to SLURP's "
                             "evaluation split: it may not be used to train or tune the rescorer")
        key = sentence_key(turn.get("reference_text"))
        if not key:
            continue
        sentences.append(key)
        intent = turn.get("gold_intent")
        if intent:
            tokens = tuple(key.split(" "))
            slots = _slots(turn.get("gold_slots"))
            examples.append(NLUExample(tokens, str(intent), None if slots is None else bio_tags(tokens, slots)))
    return sentences, examples
