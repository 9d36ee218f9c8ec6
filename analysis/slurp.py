"""Load the SLURP test recordings and join them into one record per recording, with a real failure label.

SLURP (Bastianelli et al., EMNLP 2020, "SLURP: A Spoken Language Understanding Resource Package",
github.com/pswietojanski/slurp, text under CC BY 4.0) gives, for each test recording, the reference
sentence with its gold intent and slots, the recogniser's 1-best transcript with the NLU result on it,
the NLU result on the gold sentence, and the NLU result on a second recogniser's output. Joined, they
say per recording whether the spoken request was understood and, if not, whether recognition or NLU
was to blame. Nothing here is simulated; ``analysis.simulate`` builds dialogue logs on top of it.

The files are read from a directory the caller passes in (the repository keeps them outside itself, in
``../shared/datasets/slurp``); this module never guesses a location.

Failure label (one of ``FAILURE_LABELS``), from intents only, as the dataset's README counts them:

* ``NO_FAILURE``: the NLU intent on the recognised text equals the gold intent, whether or not the
  recognised text had errors (an error the NLU survived is "recovered", not a failure);
* ``ASR``: the intent on the recognised text is wrong, the recognised text differs from the reference,
  and the NLU gets the intent right on the reference sentence: recognition caused the failure;
* ``NLU``: otherwise, i.e. the NLU is wrong on the reference sentence too, or the recogniser returned the
  reference exactly (then recognition cannot be blamed, whatever the NLU did).

Intents only, not intents+slots: with slots nearly every recognition error of a name or a date would be a
"failure" (6,922 correct instead of 10,239) and the labels would no longer match the published counts.
With this rule the 13,071 recordings that have a recogniser output split into 5,602 clean +
4,637 recovered = 10,239 ``NO_FAILURE``, 1,156 ``ASR`` and 1,676 ``NLU``: exactly the README's numbers.

Two details the counts depend on: the gold intent is ``scenario + "_" + action`` from the utterance's
own fields (37 utterances carry a malformed ``intent`` such as "query"), and texts are compared exactly.

The evaluation split: test utterances with ``slurp_id % 5 == 0`` are held out for measuring models. They
are only ever returned for ``split="eval"``; never train, tune or build sample data on them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

TEST_FILE = "test.jsonl"
ASR_PREDICTIONS_FILE = "multi_slurp_hermit_predictions.jsonl"
GOLD_PREDICTIONS_FILE = "gold_hermit_predictions.jsonl"
ALT_PREDICTIONS_FILE = "google_hermit_predictions.jsonl"

SPLITS = ("dev", "eval")
EVAL_MODULUS = 5  # slurp_id % 5 == 0 -> evaluation split (dataset README)
FAILURE_LABELS = ("NO_FAILURE", "ASR", "NLU")


class Slot(TypedDict):
    type: str
    value: str


class Recording(TypedDict):
    """One SLURP test recording, joined. Every value is real (from the dataset files)."""

    slurp_id: int
    file: str
    reference_text: str  # the utterance's sentence: what was said
    asr_text: str  # the recogniser's 1-best for this recording
    nlu_domain: str  # NLU on asr_text: scenario
    nlu_intent: str  # NLU on asr_text: scenario_action
    nlu_slots: list[Slot]  # NLU on asr_text: entities as {type, value}
    gold_intent: str  # scenario_action of the utterance
    gold_slots: list[Slot]  # annotated entity spans, surface tokens joined by spaces
    gold_nlu_intent: str  # NLU on the reference sentence
    alt_intent: str | None  # NLU on the second recogniser's output; None where it has none
    failure: str  # one of FAILURE_LABELS


def is_eval_utterance(slurp_id: int) -> bool:
    """True if the utterance belongs to the held-out evaluation split."""
    return slurp_id % EVAL_MODULUS == 0


def in_split(slurp_id: int, split: str) -> bool:
    """Whether a test utterance belongs to ``split`` ("dev": slurp_id % 5 != 0, "eval": == 0)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return is_eval_utterance(slurp_id) == (split == "eval")


def read_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; errors name the file and the line."""
    if not path.is_file():
        raise FileNotFoundError(f"SLURP file not found: {path}")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object")
            missing = [k for k in required if k not in obj]
            if missing:
                raise ValueError(f"{path}, line {lineno}: missing key(s) {', '.join(missing)}")
            yield lineno, obj


def prediction_intent(pred: dict) -> str:
    """A hermit prediction's intent, in the dataset's scenario_action form."""
    return f"{pred['scenario']}_{pred['action']}"


def prediction_slots(pred: dict) -> list[Slot]:
    """A hermit prediction's entities ({type, filler}) as {type, value} slots, in prediction order."""
    return [{"type": e["type"], "value": e["filler"]} for e in pred["entities"]]


def gold_slots(utterance: dict) -> list[Slot]:
    """The annotated entities of a SLURP utterance: each span's surface tokens joined by spaces."""
    surfaces = {t["id"]: t["surface"] for t in utterance["tokens"]}
    spans = sorted(utterance["entities"], key=lambda e: e["span"][0])
    return [{"type": e["type"], "value": " ".join(surfaces[i] for i in e["span"])} for e in spans]


def failure_label(*, gold_intent: str, nlu_intent: str, gold_nlu_intent: str, asr_text: str,
                  reference_text: str) -> str:
    """The real three-way label of one recording (see the module docstring for the rule and its counts)."""
    if nlu_intent == gold_intent:
        return "NO_FAILURE"
    # A perfect transcript cannot have caused the error, even where NLU on the reference was right.
    if asr_text != reference_text and gold_nlu_intent == gold_intent:
        return "ASR"
    return "NLU"


def _index_by(path: Path, key: str, required: tuple[str, ...], cast: type = str) -> dict:
    out: dict = {}
    for lineno, obj in read_jsonl(path, required + (key,)):
        try:
            k = cast(obj[key])
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {lineno}: {key} {obj[key]!r} is not a valid key") from None
        if k in out:
            raise ValueError(f"{path}, line {lineno}: duplicate {key} {k!r}")
        out[k] = obj
    return out


def load_recordings(slurp_dir: str | Path, split: str) -> list[Recording]:
    """All test recordings of one split, joined, sorted by (slurp_id, file).

    Recordings without a recogniser output in the predictions file are left out (7 in the released
    files): without a transcript they cannot be labelled. A missing NLU-on-reference prediction for an
    utterance is an error, as it would make labels silently wrong.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(slurp_dir)
    pred_keys = ("scenario", "action", "entities")
    asr = _index_by(root / ASR_PREDICTIONS_FILE, "file", pred_keys + ("text",))
    gold_nlu = _index_by(root / GOLD_PREDICTIONS_FILE, "slurp_id", pred_keys, cast=int)
    alt = _index_by(root / ALT_PREDICTIONS_FILE, "file", pred_keys)

    test_path = root / TEST_FILE
    out: list[Recording] = []
    for lineno, utt in read_jsonl(test_path, ("slurp_id", "sentence", "scenario", "action", "tokens",
                                              "entities", "recordings")):
        slurp_id = int(utt["slurp_id"])
        if not in_split(slurp_id, split):
            continue
        try:
            gnlu = gold_nlu[slurp_id]
        except KeyError:
            raise ValueError(f"{root / GOLD_PREDICTIONS_FILE}: no prediction for slurp_id {slurp_id} "
                             f"({test_path}, line {lineno})") from None
        try:
            g_slots = gold_slots(utt)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{test_path}, line {lineno}: malformed tokens/entities ({exc!r})") from None
        gold_intent = f"{utt['scenario']}_{utt['action']}"
        gold_nlu_intent = prediction_intent(gnlu)
        for rec in utt["recordings"]:
            if not isinstance(rec, dict) or not isinstance(rec.get("file"), str):
                raise ValueError(f"{test_path}, line {lineno}: a recording without a file name")
            pred = asr.get(rec["file"])
            if pred is None:
                continue
            try:
                nlu_slots = prediction_slots(pred)
            except (KeyError, TypeError):
                raise ValueError(f"{root / ASR_PREDICTIONS_FILE}: malformed entities for "
                                 f"{rec['file']}") from None
            nlu_intent = prediction_intent(pred)
            alt_pred = alt.get(rec["file"])
            out.append(Recording(
                slurp_id=slurp_id,
                file=rec["file"],
                reference_text=utt["sentence"],
                asr_text=pred["text"],
                nlu_domain=pred["scenario"],
                nlu_intent=nlu_intent,
                nlu_slots=nlu_slots,
                gold_intent=gold_intent,
                gold_slots=[dict(s) for s in g_slots],  # type: ignore[misc]  # own copy per recording
                gold_nlu_intent=gold_nlu_intent,
                alt_intent=prediction_intent(alt_pred) if alt_pred is not None else None,
                failure=failure_label(gold_intent=gold_intent, nlu_intent=nlu_intent,
                                      gold_nlu_intent=gold_nlu_intent, asr_text=pred["text"],
                                      reference_text=utt["sentence"]),
            ))
    out.sort(key=lambda r: (r["slurp_id"], r["file"]))
    return out
