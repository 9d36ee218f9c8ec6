"""Text normalisers applied to a reference and its hypothesis before word and character error counts.

Each normaliser has a name that carries its version. Its rules never change under that name: a change of rules
is a new name (``english-v2``), so counts stored under a name stay comparable forever. docs/wer.md states the
rules.

- ``raw``: the text as logged (today's behaviour: only whitespace is collapsed by the tokeniser).
- ``english-v1``: Whisper's EnglishTextNormalizer (openai-whisper, MIT), as packaged by whisper-normalizer 0.1.15
  (pinned exactly in pyproject.toml; the version is checked at first use). It lower-cases; drops text between
  ``<>``/``[]`` (recogniser markers such as ``<unk>``, ``< unk >``, ``[noise]``) and between parentheses; drops
  hesitations (hmm, uh, um, ...); joins a space before an apostrophe (SLURP's split clitics: "let 's" ->
  "let's") and expands contractions ("let's" -> "let us", "won't" -> "will not"); removes punctuation and
  diacritics; writes spelled numbers as digits ("twenty five" -> "25", "two dollars" -> "$2"); and maps British
  to American spelling. The same function runs on both sides, so they are handled consistently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata

RAW = "raw"
ENGLISH_V1 = "english-v1"
# What a new dataset's WER figures use unless a person picks another normaliser.
DEFAULT_FOR_NEW_DATASETS = ENGLISH_V1
_WHISPER_NORMALIZER_VERSION = "0.1.15"


@dataclass(frozen=True)
class Normaliser:
    """A named, versioned text normaliser: ``apply(text) -> text``."""

    name: str
    title: str  # one line for a selector's help and a caption
    apply: Callable[[str], str]


def _identity(text: str) -> str:
    return text


@cache
def _whisper_english() -> Callable[[str], str]:
    # Imported lazily: only ingest and the measurement script need it, not every page load.
    try:
        installed = metadata.version("whisper-normalizer")
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the {ENGLISH_V1} normaliser needs whisper-normalizer=={_WHISPER_NORMALIZER_VERSION} "
                           "(pyproject.toml): run make install") from None
    if installed != _WHISPER_NORMALIZER_VERSION:
        raise RuntimeError(f"the {ENGLISH_V1} normaliser is whisper-normalizer {_WHISPER_NORMALIZER_VERSION}, but "
                           f"{installed} is installed: install the pinned version (pyproject.toml); other rules "
                           f"need a new normaliser name")
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def _english_v1(text: str) -> str:
    return _whisper_english()(text)


NORMALISERS: dict[str, Normaliser] = {
    RAW: Normaliser(RAW, "raw: the logged text, only whitespace collapsed", _identity),
    ENGLISH_V1: Normaliser(ENGLISH_V1, "english-v1: Whisper's English normaliser (case, punctuation, "
                                       "contractions, numbers; recogniser markers such as <unk> dropped)",
                           _english_v1),
}
NAMES: tuple[str, ...] = tuple(NORMALISERS)


def get(name: str) -> Normaliser:
    """The normaliser called name; ValueError naming the known ones otherwise."""
    try:
        return NORMALISERS[name]
    except KeyError:
        raise ValueError(f"unknown WER normaliser {name!r}: known are {', '.join(NAMES)}") from None


def normalise(text: str, name: str) -> str:
    """text under the normaliser called name."""
    return get(name).apply(text)


def label(name: str, metric: str = "WER") -> str:
    """How a figure names its normaliser, e.g. "WER (english-v1)": every WER caption, axis and header says it."""
    get(name)
    return f"{metric} ({name})"
