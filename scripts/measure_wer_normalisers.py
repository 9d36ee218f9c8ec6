"""Pooled WER and CER of SLURP's real recognition outputs under each normaliser (and alignment); docs/wer.md.

    .venv/bin/python scripts/measure_wer_normalisers.py [--slurp /work/shared/datasets/slurp]

Pairs each of the 13,071 test recordings' recognised text (multi_slurp_hermit_predictions.jsonl, key ``file``)
with its utterance's reference sentence (test.jsonl), computes per-recording counts with analysis.wer.turn_counts
and prints the pooled rates as a Markdown table. Nothing is trained or tuned here, so the evaluation split is
measured like the rest (only aggregate numbers leave the script).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.wer import pooled_rate, pooled_wer, turn_counts  # noqa: E402
from analysis.wer_normalise import NAMES  # noqa: E402

DEFAULT_SLURP = Path("/work/shared/datasets/slurp")


def slurp_pairs(root: Path) -> list[tuple[int, str, str]]:
    """(slurp_id, reference sentence, recognised text) per test recording that has a recognition output."""
    sentence_of: dict[str, tuple[int, str]] = {}
    with open(root / "test.jsonl", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            try:
                record = json.loads(line)
                for recording in record["recordings"]:
                    sentence_of[recording["file"]] = (int(record["slurp_id"]), record["sentence"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"{root / 'test.jsonl'}:{line_no}: recordings/sentence: {exc!r}") from None
    pairs = []
    path = root / "multi_slurp_hermit_predictions.jsonl"
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            try:
                record = json.loads(line)
                slurp_id, sentence = sentence_of[record["file"]]
                pairs.append((slurp_id, sentence, record["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"{path}:{line_no}: file/text: {exc!r}") from None
    return pairs


def measure(pairs: list[tuple[int, str, str]]) -> list[dict]:
    refs, hyps = [p[1] for p in pairs], [p[2] for p in pairs]
    rows = []
    for normaliser in NAMES:
        for alignment in ("levenshtein", "sclite"):
            c = turn_counts(refs, hyps, normaliser=normaliser, alignment=alignment)
            rows.append({"normaliser": normaliser, "alignment": alignment, "recordings": len(pairs),
                         "ref_words": int(c.ref_words.sum()), "sub": int(c.sub.sum()), "del": int(c.dele.sum()),
                         "ins": int(c.ins.sum()), "wer": pooled_wer(c.sub, c.dele, c.ins, c.ref_words),
                         "cer": pooled_rate(c.char_edits, c.ref_chars)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slurp", type=Path, default=DEFAULT_SLURP, help="folder of SLURP's text files")
    args = parser.parse_args(argv)
    rows = measure(slurp_pairs(args.slurp))
    print("| normaliser | alignment | recordings | reference words | S | D | I | pooled WER | pooled CER |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['normaliser']} | {r['alignment']} | {r['recordings']:,} | {r['ref_words']:,} | {r['sub']:,} | "
              f"{r['del']:,} | {r['ins']:,} | {r['wer']:.2%} | {r['cer']:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
