"""Write tests/data/sclite/: a shared test set of word sequences and SCTK sclite's own alignment of it.

    .venv/bin/python scripts/make_sclite_fixture.py      (needs sclite: apt-get install sctk)

The test set: 400 random pairs over a five-word vocabulary (seeded; equal-cost alignments are frequent there, so
the tie-breaking is exercised) and 300 SLURP recordings (reference sentence, recognised text) under the
english-v1 normaliser, taken only from utterances outside SLURP's evaluation split (slurp_id % 5 != 0). sclite
runs case-sensitive (-s) on the transcripts; its SGML report holds one alignment per utterance.
tests/test_wer_sclite.py compares analysis.wer.sclite_ops with that report, and with a fresh sclite run where
sclite is installed.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.wer import words  # noqa: E402
from analysis.wer_normalise import ENGLISH_V1, normalise  # noqa: E402
from scripts.measure_wer_normalisers import DEFAULT_SLURP, slurp_pairs  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "sclite"
SCLITE_CANDIDATES = ("sclite", "/usr/lib/sctk/bin/sclite")  # Debian's sctk keeps sclite off the PATH


def find_sclite() -> str | None:
    """The sclite executable, or None when SCTK is not installed."""
    for name in SCLITE_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def test_set(slurp: Path = DEFAULT_SLURP) -> list[tuple[str, list[str], list[str]]]:
    """(utterance id, reference words, hypothesis words): the random pairs, then the SLURP pairs."""
    rng = random.Random(21)
    vocabulary = "a b c d e".split()
    out = []
    for k in range(400):
        ref = [rng.choice(vocabulary) for _ in range(rng.randint(1, 7))]
        hyp = [rng.choice(vocabulary) for _ in range(rng.randint(0, 7))]
        out.append((f"rand_{k:03d}", ref, hyp))
    development = [p for p in slurp_pairs(slurp) if p[0] % 5 != 0]  # never the evaluation split
    for k, (_, ref, hyp) in enumerate(random.Random(5).sample(development, 300)):
        ref_w, hyp_w = words(normalise(ref, ENGLISH_V1)), words(normalise(hyp, ENGLISH_V1))
        if ref_w:  # sclite needs a reference word to align against
            out.append((f"slurp_{k:03d}", ref_w, hyp_w))
    return out


def write_trn(path: Path, rows: list[tuple[str, list[str]]]) -> None:
    # trn: the words, then the utterance id as (speaker_utterance); the speaker is before the first "_".
    path.write_text("".join(f"{' '.join(ws)} ({uid})\n" for uid, ws in rows), encoding="utf-8")


def run_sclite(sclite: str, ref_trn: Path, hyp_trn: Path) -> str:
    """sclite's SGML report of hyp_trn against ref_trn (case-sensitive)."""
    return subprocess.run([sclite, "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm", "-s",
                           "-o", "sgml", "stdout"], check=True, capture_output=True, text=True).stdout


def main() -> int:
    sclite = find_sclite()
    if sclite is None:
        raise SystemExit("sclite not found: apt-get install sctk")
    rows = test_set()
    OUT.mkdir(parents=True, exist_ok=True)
    write_trn(OUT / "ref.trn", [(uid, ref) for uid, ref, _ in rows])
    write_trn(OUT / "hyp.trn", [(uid, hyp) for uid, _, hyp in rows])
    report = run_sclite(sclite, OUT / "ref.trn", OUT / "hyp.trn")
    # The report's first line holds the creation date and file paths: keep the alignments only.
    (OUT / "sclite.sgml").write_text(report.split("\n", 1)[1], encoding="utf-8")
    print(f"wrote {len(rows)} utterances and sclite's alignments to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
