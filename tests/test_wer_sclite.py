"""analysis.wer's sclite mode against SCTK sclite: its committed report (tests/data/sclite/) everywhere, and a
fresh sclite run where SCTK is installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analysis.wer import sclite_ops, turn_counts
from scripts.make_sclite_fixture import find_sclite, run_sclite

DATA = Path(__file__).parent / "data" / "sclite"
_LETTER = {"equal": "C", "sub": "S", "del": "D", "ins": "I"}


def _trn(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text, uid = re.fullmatch(r"(.*?) ?\((\S+)\)", line).groups()
        out[uid] = text.split()
    return out


def _sclite_alignments(sgml: str) -> dict[str, str]:
    """utterance id -> sclite's op letters in order, e.g. 'CSDI'."""
    paths = re.findall(r'<PATH id="\((\S+?)\)"[^>]*>\n(.*?)</PATH>', sgml, re.S)
    return {uid: "".join(re.findall(r'(?:^|:)([CSDI]),', body.strip())) for uid, body in paths}


def _ours(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> dict[str, str]:
    return {uid: "".join(_LETTER[op] for op in sclite_ops(refs[uid], hyps[uid])) for uid in refs}


def test_alignments_match_sclites_committed_report():
    refs, hyps = _trn(DATA / "ref.trn"), _trn(DATA / "hyp.trn")
    theirs = _sclite_alignments((DATA / "sclite.sgml").read_text(encoding="utf-8"))
    assert len(theirs) == len(refs) == 700
    ours = _ours(refs, hyps)
    assert {uid for uid in refs if ours[uid] != theirs[uid]} == set()


def test_counts_differ_from_unit_cost_levenshtein_on_some_pairs():
    # The reason for the mode: a substitution costs sclite more than an insertion or a deletion.
    refs, hyps = _trn(DATA / "ref.trn"), _trn(DATA / "hyp.trn")
    uids = sorted(refs)
    r, h = [" ".join(refs[u]) for u in uids], [" ".join(hyps[u]) for u in uids]
    plain, sclite = turn_counts(r, h), turn_counts(r, h, alignment="sclite")
    differs = (plain.sub != sclite.sub) | (plain.dele != sclite.dele) | (plain.ins != sclite.ins)
    assert differs.sum() > 10
    assert turn_counts(["a b c"], ["b x y"], alignment="sclite").sub.tolist() == [1]
    assert turn_counts(["a b c"], ["b x y"]).sub.tolist() == [3]


def test_worked_example_from_the_fixture():
    # rand_000 in sclite's report: C,"d","d":I,,"b":C,"d","d":I,,"e"
    assert sclite_ops(["d", "d"], ["d", "b", "d", "e"]) == ["equal", "ins", "equal", "ins"]


@pytest.mark.skipif(find_sclite() is None, reason="SCTK's sclite is not installed (apt-get install sctk)")
def test_alignments_match_a_fresh_sclite_run(tmp_path):
    refs, hyps = _trn(DATA / "ref.trn"), _trn(DATA / "hyp.trn")
    theirs = _sclite_alignments(run_sclite(find_sclite(), DATA / "ref.trn", DATA / "hyp.trn"))
    assert theirs == _ours(refs, hyps)
