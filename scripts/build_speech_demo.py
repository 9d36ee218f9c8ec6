"""Rebuild sample_data/speech_demo/ (the bundled speech demo) from the dev pool and SLURP's training text.

    python scripts/build_speech_demo.py [--slurp-dir ../shared/datasets/slurp]   # about 2 minutes on 2 cores
    python scripts/build_speech_demo.py --check                                   # rebuild elsewhere, compare bytes

A few hundred turns of dialogues whose requests are dev-pool sentences (sample_data/slurp_pool.jsonl.gz), said
by simulated speakers with espeak-ng, stored as 16 kHz mono Ogg Vorbis and recognised by pocketsphinx from those
very files, with an in-domain 3-gram LM built from SLURP's training text (devel.jsonl and the test utterances
outside the evaluation split; the build refuses any evaluation sentence). The code is analysis/speech/demo.py;
what is real and what is simulated is in sample_data/README.md. Needs espeak-ng, sox and pocketsphinx
(make install) and the SLURP folder (for the LM, the NLU's training sentences and the evaluation check).
Deterministic: a rebuild with the same tools writes the same bytes (--check says whether it does).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from tqdm import tqdm  # noqa: E402

from analysis.simulate import load_pool  # noqa: E402
from analysis.speech import demo  # noqa: E402
from analysis.speech import lm as speech_lm  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SLURP_DIR = REPO.parent / "shared" / "datasets" / "slurp"
DEFAULT_OUT = REPO / "sample_data" / "speech_demo"
LM_NAME = "slurp-dev-3gram.arpa"  # its name and sha256 go into every turn's speech_recognition


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = demo.DemoConfig()
    p.add_argument("--slurp-dir", type=Path, default=DEFAULT_SLURP_DIR, help="the SLURP folder")
    p.add_argument("--pool", type=Path, default=None, help="the dev recording pool (default: the bundled one)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT}); "
                                                                      "emptied first")
    p.add_argument("--turns", type=int, default=d.turns, help=f"the most turns (default {d.turns})")
    p.add_argument("--dialogues", type=int, default=d.dialogues, help=f"dialogues started (default {d.dialogues})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default {d.seed})")
    p.add_argument("--workers", type=int, default=d.workers, help="parallel rendering and decoding (default 2)")
    p.add_argument("--check", action="store_true",
                   help="rebuild into a temporary folder and compare every file with --out-dir; exit 1 on a difference")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def build(args: argparse.Namespace, out_dir: Path) -> demo.DemoResult:
    """The LM (training text only, checked against every evaluation sentence), then the demo."""
    config = demo.DemoConfig(turns=args.turns, dialogues=args.dialogues, seed=args.seed, workers=args.workers)
    pool = load_pool(args.pool)
    forbidden = speech_lm.evaluation_sentences(args.slurp_dir)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if args.quiet:
            return
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(desc=stage, unit=" turns", file=sys.stderr)
        bar.total = total
        bar.update(done - bar.n)

    with tempfile.TemporaryDirectory(prefix="turnlens-speech-demo-lm-") as tmp:
        lm_path = Path(tmp) / LM_NAME
        info = speech_lm.build_lm(speech_lm.slurp_training_sentences(args.slurp_dir), lm_path,
                                  sources=["SLURP devel.jsonl", "SLURP test.jsonl, slurp_id % 5 != 0"],
                                  forbidden=forbidden)
        try:
            return demo.build_demo(pool, out_dir, lm=lm_path, lm_provenance=asdict(info),
                                   nlu_training=demo.slurp_nlu_training(args.slurp_dir, pool), forbidden=forbidden,
                                   config=config, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()


def digests(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.slurp_dir / "test.jsonl").is_file():
        print(f"error: {args.slurp_dir}: SLURP folder not found (give --slurp-dir)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory(prefix="turnlens-speech-demo-check-") as tmp:
            build(args, Path(tmp) / "speech_demo")
            fresh, committed = digests(Path(tmp) / "speech_demo"), digests(args.out_dir)
        differ = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
        if differ:
            print(f"{len(differ)} of {len(fresh)} files differ from {args.out_dir}, e.g. {', '.join(differ[:5])}",
                  file=sys.stderr)
            return 1
        print(f"rebuilt in {time.perf_counter() - started:.0f} s: all {len(fresh)} files identical to {args.out_dir}")
        return 0
    result = build(args, args.out_dir)
    m = result.manifest
    rec = m["recognition"]
    print(f"{args.out_dir}: {m['turns']} turns in {m['dialogues']} dialogues, {m['speakers']} speakers, "
          f"{m['audio_files']} audio files ({m['audio_seconds']:.0f} s of audio), {m['bytes']['total']:,} bytes "
          f"(audio {m['bytes']['audio']:,}, log {m['bytes']['log']:,}); 1-best WER {rec['wer_1best']:.3f}, 10-best "
          f"oracle {rec['wer_nbest_oracle']:.3f}, NLU intent accuracy {m['nlu_intent_accuracy']:.3f}; "
          f"built in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
