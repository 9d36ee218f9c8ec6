"""In-domain language models for pocketsphinx, built from TRAINING text only.

SLURP's evaluation split (test utterances with slurp_id % 5 == 0) must never reach an LM used to recognise
anything: ``slurp_training_sentences`` reads only devel.jsonl and the other test utterances, and ``build_lm``
refuses any sentence that equals an evaluation-split sentence (when it is given them) before it counts a single
n-gram. Each LM gets a provenance file beside it (``<lm>.json``): sources, sentence count, the corpus hash and
whether the evaluation check ran.

The model is a 3-gram ARPA LM with absolute discounting and back-off, built by pocketsphinx's own
``pocketsphinx.lm.ArpaBoLM`` (discount mass 0.5), lower-cased, with sentence boundaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.slurp import TEST_FILE, in_split, read_jsonl

DEV_FILE = "devel.jsonl"
DISCOUNT_MASS = 0.5


class EvaluationTextError(ValueError):
    """Evaluation-split text was offered for training an LM."""


def normalise(text: str) -> str:
    """Lower-case, white space collapsed: how sentences are compared and counted."""
    return " ".join(text.lower().split())


def slurp_training_sentences(slurp_dir: str | Path) -> list[str]:
    """The sentences free for training: every devel.jsonl utterance and the test utterances outside the
    evaluation split (slurp_id % 5 != 0), in file order."""
    root = Path(slurp_dir)
    out = [str(u["sentence"]) for _, u in read_jsonl(root / DEV_FILE, ("slurp_id", "sentence"))]
    out += [str(u["sentence"]) for _, u in read_jsonl(root / TEST_FILE, ("slurp_id", "sentence"))
            if in_split(int(u["slurp_id"]), "dev")]
    return out


def evaluation_sentences(slurp_dir: str | Path) -> frozenset[str]:
    """The normalised sentences of SLURP's evaluation split: what no training LM may contain."""
    return frozenset(normalise(str(u["sentence"])) for _, u in read_jsonl(Path(slurp_dir) / TEST_FILE,
                                                                          ("slurp_id", "sentence"))
                     if in_split(int(u["slurp_id"]), "eval"))


@dataclass(frozen=True)
class LMInfo:
    """The provenance of one LM, as written beside it (``<lm>.json``)."""

    path: str
    sources: list[str]
    sentences: int
    unique_sentences: int
    corpus_sha256: str
    evaluation_check: str  # "passed: none of N evaluation-split sentences" or "not run: ..."
    builder: str


def provenance(lm_path: str | Path) -> dict | None:
    """The provenance written beside an LM by build_lm, or None if it has none."""
    side = Path(str(lm_path) + ".json")
    return json.loads(side.read_text()) if side.is_file() else None


def build_lm(sentences: Iterable[str], out: str | Path, *, sources: list[str],
             forbidden: frozenset[str] | None) -> LMInfo:
    """Build a 3-gram ARPA LM at ``out`` from sentences (one utterance each) and its provenance file.

    forbidden: the normalised evaluation-split sentences (``evaluation_sentences``); if any training sentence
    equals one of them, EvaluationTextError is raised and nothing is written. None means the check cannot run
    (no SLURP folder): the provenance says so. Raises ValueError when no sentence has a word."""
    from pocketsphinx.lm import ArpaBoLM

    corpus = [normalise(s) for s in sentences]
    corpus = [s for s in corpus if s]
    if not corpus:
        raise ValueError("no training sentences: an LM needs at least one sentence with a word")
    if forbidden is not None:
        leaked = sorted(set(corpus) & forbidden)
        if leaked:
            raise EvaluationTextError(f"{len(leaked):,} training sentences are evaluation-split sentences "
                                      f"(e.g. {leaked[0]!r}); an LM is never built from evaluation text")
        check = f"passed: none of the {len(forbidden):,} evaluation-split sentences is in the corpus"
    else:
        check = "not run: no evaluation sentences given (no SLURP folder)"
    text = "\n".join(corpus) + "\n"
    lm = ArpaBoLM(text=text, add_start=True, discount_mass=DISCOUNT_MASS)
    lm.compute()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".partial-", suffix=".arpa")
    os.close(fd)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            lm.write(fh)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    info = LMInfo(path=str(out), sources=list(sources), sentences=len(corpus), unique_sentences=len(set(corpus)),
                  corpus_sha256=hashlib.sha256(text.encode()).hexdigest(), evaluation_check=check,
                  builder=f"pocketsphinx.lm.ArpaBoLM, 3-gram, discount mass {DISCOUNT_MASS}")
    Path(str(out) + ".json").write_text(json.dumps(asdict(info), indent=1) + "\n")
    return info


def arpa_unigrams(path: str | Path) -> set[str]:
    """The words of an ARPA LM's 1-gram section (to check what it was built from)."""
    words: set[str] = set()
    section = None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("\\") and line.endswith("-grams:"):
                section = line
                continue
            if section == "\\1-grams:" and line and not line.startswith("\\"):
                parts = line.split()
                if len(parts) >= 2:
                    words.add(parts[1])
    return words
