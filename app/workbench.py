"""Build the database `make run` opens: a full workbench on the bundled sample, every page with real content.

    python -m app.workbench --db data/turnlens.duckdb.partial [--rewrites-turns 30000] [--disparity-turns 200000]

Each step is a `turnlens` command, run through the same entry point as the `turnlens` script (app.cli.run_in_process,
in this process: a new interpreter per step cost about a second each, 35 times), so it shows its own progress
bar and no step is silent for long; the exceptions are copying the speech demo's audio, a second's file copy
done here, and simulating the two demo logs, which need no database: they start with the build in processes
of their own at the lowest priority (InBackground) and the build waits for them where they stand. Model actions
run in a job child each, as from the app. In this order:
- the sample (3,000 simulated turns over real SLURP utterances): ingest, the logged NLU's proposals as
  candidates, then every action of every registered family, through the same job runner as the app's Models
  page: for the models, train (a fifth of the dialogues held out), score (their proposals become candidates)
  and a quick evaluation on those held-out dialogues of the sample itself; a rewrite run mined from the
  sample; a stored disparity analysis. The full evaluations on SLURP's evaluation split are separate, longer
  commands (scripts/evaluate_*.py);
- decisions by two *simulated* reviewers (answering from the log's gold fields with a stated error rate), so
  Agreement and Calibration draw;
- speech-demo (sample_data/speech_demo/: a few hundred turns with synthetic audio and real pocketsphinx n-best
  lists, built offline by scripts/build_speech_demo.py): its audio copied to <audio root>/speech-demo/ (the
  audio root is $TURNLENS_AUDIO_ROOT, else <repo>/data/audio: app.settings.audio_root), ingested, the logged NLU's
  proposals, the rescorer trained on the sample's transcripts and tuned on the speech demo's scored n-best lists
  (a family's own steps, Family.make_run), every family that scores, scoring it with the model the build
  trained on the sample, so the Review page has candidates there too, and simulated reviewers deciding a
  quarter of them (transcripts against the log's reference), so the reviewed-transcript WER draws; its disparity
  report and both mitigation jobs on its worst-served automatic cohort (EWC adaptation of the rescorer, speaker
  verification with ARW), so the Disparity page's Mitigation section draws there;
- rewrites-demo (simulated users who rephrase keeping the meaning: rewrites need many repeats) and
  disparity-demo (enough speakers to find the simulator's planted worse-served regions), with its disparity
  report and voices layout stored by the analyse job, so the Disparity page draws it without computing.

The time of every step is printed at the end and written to <db>.build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.jobs.registry import built_in

_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = _ROOT / "sample_data" / "turns.jsonl.gz"
SPEECH_DEMO = SAMPLE.parent / "speech_demo"  # turns.jsonl.gz and audio/speech-demo/*.ogg (scripts/build_speech_demo.py)
SPEECH_DEMO_DATASET = "speech-demo"
# Two simulated reviewers, 10% errors each, both deciding the same quarter of the sample's candidates (the
# logged NLU's and the models'), so Agreement has pairs and the Review queue still has work.
SIMULATED_REVIEWS = ("--dataset", "sample", "--reviewers", "2", "--error-rate", "0.1", "--share", "0.25",
                     "--overlap-share", "1.0", "--seed", "7")
SPEECH_DEMO_REVIEWS = ("--dataset", "speech-demo", *SIMULATED_REVIEWS[2:])


@dataclass(frozen=True)
class LatestCheckpoint:
    """A step argument known only once earlier steps ran: the checkpoint of the newest model a family trained on
    a dataset (its folder is named after the job's id)."""

    family: str
    dataset: str

    def resolve(self, db: Path) -> str:
        from app import store
        from app.store import jobs as store_jobs

        conn = store.connect(db, read_only=True)
        try:
            path = store_jobs.get_latest_checkpoint(conn, self.family, self.dataset)
        finally:
            conn.close()
        if path is None:
            raise RuntimeError(f"no {self.family} model trained on {self.dataset!r} to score with")
        return path


@dataclass(frozen=True)
class InBackground:
    """A step that needs no database (it writes a file later steps read): started when the build starts, as a
    `turnlens` process of its own at the lowest priority, so it runs while the steps before it leave a core idle
    (on 2 cores a job's child, DuckDB and Python take turns); the build waits for it at its place in the plan."""

    args: tuple[str, ...]


# A step: turnlens arguments (str, or LatestCheckpoint resolved when the step runs), a callable run here, or a
# turnlens command run in the background.
Step = list[str | LatestCheckpoint] | Callable[[], object] | InBackground


def copy_speech_demo_audio(audio_root: Path, source: Path = SPEECH_DEMO) -> int:
    """Copy the speech demo's audio to <audio_root>/speech-demo/ (where its log's paths point), replacing files of
    the same name; returns the number of files."""
    files = sorted((source / "audio").rglob("*.ogg"))
    if not files:
        raise FileNotFoundError(f"no speech demo audio under {source / 'audio'} (python scripts/build_speech_demo.py)")
    for f in files:
        target = audio_root / f.relative_to(source / "audio")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return len(files)


def speech_demo_steps(d: list[str], audio_root: Path) -> list[tuple[str, Step]]:
    """The speech demo: audio in place, ingest (which checks every audio file), the logged NLU's proposals and its
    disparity report."""
    ds = ["--dataset", SPEECH_DEMO_DATASET]
    return [
        ("speech-demo: audio", lambda: copy_speech_demo_audio(audio_root)),
        ("speech-demo: ingest", ["ingest", str(SPEECH_DEMO / "turns.jsonl.gz"), *ds, "--by", "make", *d]),
        ("speech-demo: logged NLU proposals", ["candidates", "from-logs", *ds, *d]),
        # its disparity report: the groups the mitigation families target (Family.make_run)
        ("speech-demo: disparity analysis", ["analyse", "disparity", *ds, *d]),
    ]


def speech_demo_scoring_steps(d: list[str]) -> list[tuple[str, Step]]:
    """The sample's models scoring the speech demo: each family that can score a dataset it was not trained on
    (and has no steps of its own), through the same job runner as the sample's steps."""
    ds = ["--dataset", SPEECH_DEMO_DATASET]
    return [(f"speech-demo: {family.name}: score",
             ["score", family.name, *ds, "--checkpoint", LatestCheckpoint(family.name, "sample"), *d])
            for family in built_in()
            if "score" in family.actions() and family.scores_other_datasets and family.make_run is None]


def family_steps(d: list[str], family) -> list[tuple[str, Step]]:
    """A family's own make-run steps (Family.make_run): an action on another dataset than the sample uses the
    checkpoint trained on the sample."""
    out: list[tuple[str, Step]] = []
    for action, dataset, extra in family.make_run:
        args: list[str | LatestCheckpoint] = [action, family.name, "--dataset", dataset, *extra, *d]
        if family.action(action).needs_checkpoint and dataset != "sample":
            args += ["--checkpoint", LatestCheckpoint(family.name, "sample")]
        out.append((f"{family.name}: {action}" + (f" ({dataset})" if dataset != "sample" else ""), args))
    return out


def steps(db: Path, *, rewrites_turns: int, disparity_turns: int, data_dir: Path,
          audio_root: Path | None = None) -> list[tuple[str, Step]]:
    """(name, turnlens arguments or an in-process callable) of every step; audio_root None: no speech demo."""
    d = ["--db", str(db)]
    out: list[tuple[str, Step]] = [
        ("ingest the sample", ["ingest", str(SAMPLE), "--dataset", "sample", "--by", "make", *d]),
        ("logged NLU proposals", ["candidates", "from-logs", "--dataset", "sample", *d]),
    ]
    for family in built_in():
        if family.make_run is None:
            for action in family.actions():
                out.append((f"{family.name}: {action}", [action, family.name, "--dataset", "sample", *d]))
    out.append(("simulated reviewers", ["simulate-reviews", *SIMULATED_REVIEWS, *d]))
    if audio_root is not None:  # families with their own steps need the speech demo (its scored n-best lists)
        out += speech_demo_steps(d, audio_root)
        for family in built_in():
            if family.make_run is not None:
                out += family_steps(d, family)
        out += speech_demo_scoring_steps(d)
        # simulated reviewers there too, so the rescoring page's reviewed-transcript WER draws (and Agreement)
        out.append(("speech-demo: simulated reviewers", ["simulate-reviews", *SPEECH_DEMO_REVIEWS, *d]))
    if rewrites_turns:
        log = data_dir / "rewrites-demo.parquet"
        out += [
            ("rewrites-demo: simulate", InBackground(("demo-data", "--turns", str(rewrites_turns), "--seed", "7",
                                                      "--id-prefix", "rw-", "--rephrase", "meaning", "--out",
                                                      str(log)))),
            ("rewrites-demo: ingest", ["ingest", str(log), "--dataset", "rewrites-demo", "--by", "make", *d]),
            ("rewrites-demo: mine", ["mine", "rewrites", "--dataset", "rewrites-demo", *d]),
        ]
    if disparity_turns:
        log = data_dir / "disparity-demo.parquet"
        out += [
            ("disparity-demo: simulate", InBackground(("demo-data", "--turns", str(disparity_turns), "--seed", "7",
                                                       "--id-prefix", "dp-", "--out", str(log)))),
            ("disparity-demo: ingest", ["ingest", str(log), "--dataset", "disparity-demo", "--by", "make", *d]),
            # The report and the voices' layout the Disparity page draws, stored so the page opens at once.
            ("disparity-demo: analyse", ["analyse", "disparity", "--dataset", "disparity-demo", *d]),
        ]
    return out


class StepFailed(RuntimeError):
    """A `turnlens` step ended with a non-zero exit code (it said why on standard error)."""

    def __init__(self, argv: list[str], code: int) -> None:
        super().__init__(f"turnlens {argv[0]} exited with code {code}")
        self.code = code


def run_turnlens(argv: list[str]) -> None:
    """One `turnlens` command, in this process (an exception it raises is printed with its traceback, exit code
    1); raises StepFailed when it fails."""
    from app.cli import run_in_process

    code = run_in_process(argv)
    if code:
        raise StepFailed(argv, code)


def _start_background(args: tuple[str, ...], log: Path) -> subprocess.Popen:
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []  # below the steps (and their job children)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("w") as out:
        return subprocess.Popen([*nice, sys.executable, "-m", "app.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _finish_background(proc: subprocess.Popen, args: tuple[str, ...], log: Path) -> None:
    """Wait for a background step, showing its latest progress every 0.2 s while it runs (no step is silent for
    long); then print its last line, or, if it failed, what it printed, and raise StepFailed."""
    shown = False
    while proc.poll() is None:
        lines = [line for line in re.split(r"[\r\n]+", log.read_text(errors="replace")) if line.strip()]
        if lines:
            print(f"\r{lines[-1][:120]}", end="", flush=True)
            shown = True
        time.sleep(0.2)
    if shown:
        print()
    code = proc.returncode
    text = log.read_text(errors="replace")
    lines = [line for line in re.split(r"[\r\n]+", text) if line.strip()]
    if code:
        print(text[-3000:], file=sys.stderr)
        raise StepFailed(list(args), code)
    if lines:
        print(lines[-1])


def run_plan(db: Path, plan: list[tuple[str, Step]]) -> dict[str, float]:
    """Run the steps in order (the InBackground ones started at once, waited for in their place); returns the
    seconds each took (for a background step: the wait for it). Raises StepFailed at the first failing step."""
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="turnlens-build-") as logs:
        background = {name: (_start_background(args.args, Path(logs) / f"{i}.log"), Path(logs) / f"{i}.log")
                      for i, (name, args) in enumerate(plan) if isinstance(args, InBackground)}
        try:
            for i, (name, args) in enumerate(plan, start=1):
                print(f"[{i}/{len(plan)}] {name}" + (" (running in the background since the start)"
                                                     if isinstance(args, InBackground) else ""), flush=True)
                started = time.perf_counter()
                if isinstance(args, InBackground):
                    proc, log = background[name]
                    _finish_background(proc, args.args, log)
                elif callable(args):
                    args()
                else:
                    run_turnlens([a.resolve(db) if isinstance(a, LatestCheckpoint) else a for a in args])
                times[name] = round(time.perf_counter() - started, 1)
        finally:  # a failed step: the background ones still running are stopped
            for proc, _ in background.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return times


def build(db: Path, *, rewrites_turns: int = 30_000, disparity_turns: int = 200_000, speech_demo: bool = True,
          audio_root: Path | None = None) -> dict[str, float]:
    """Run every step; returns the seconds each took. Raises StepFailed at the first failing step.
    audio_root: where the speech demo's audio goes (default app.settings.audio_root(): $TURNLENS_AUDIO_ROOT, else
    <repo>/data/audio); every step runs with TURNLENS_AUDIO_ROOT set to it, so ingest checks the files there."""
    from app.settings import audio_root as configured_audio_root
    from app.settings import environment

    root = Path(audio_root or configured_audio_root()).resolve() if speech_demo else None
    plan = steps(db, rewrites_turns=rewrites_turns, disparity_turns=disparity_turns, data_dir=db.parent,
                 audio_root=root)
    with environment({"TURNLENS_AUDIO_ROOT": str(root)} if root else {}):
        return run_plan(db, plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.workbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--rewrites-turns", type=int, default=30_000)
    parser.add_argument("--disparity-turns", type=int, default=200_000)
    parser.add_argument("--no-speech-demo", dest="speech_demo", action="store_false",
                        help="leave out the speech demo (its audio and dataset)")
    parser.add_argument("--audio-root", type=Path, default=None,
                        help="where the speech demo's audio goes (default: $TURNLENS_AUDIO_ROOT, else data/audio)")
    args = parser.parse_args(argv)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        times = build(args.db, rewrites_turns=args.rewrites_turns, disparity_turns=args.disparity_turns,
                      speech_demo=args.speech_demo, audio_root=args.audio_root)
    except StepFailed as exc:
        print(f"workbench: a step failed (exit code {exc.code}); nothing more was built", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:  # an in-process step (the demo audio) or a checkpoint not found
        print(f"workbench: a step failed ({exc}); nothing more was built", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    width = max(len(name) for name in times)
    print(f"\nbuilt in {total:.0f} s:")
    for name, seconds in times.items():
        print(f"  {name:<{width}}  {seconds:6.1f} s")
    Path(str(args.db) + ".build.json").write_text(json.dumps({"total_s": round(total, 1), "steps_s": times},
                                                             indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
