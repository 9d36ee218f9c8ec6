"""Offline speech on 2 cores: synthesis (espeak-ng + sox) and recognition (pocketsphinx, in-domain LM and the general
LM) in turns per second, with one worker and with two (both cores in use), and the parallel speed-up. The turns
are dev-pool sentences (sample_data's SLURP pool: never the evaluation split); the in-domain LM is built from the
pool's other sentences. The machine's load average is reported beside the figures: on a shared machine the
speed-up is what the other work leaves of the second core. Each figure is the best of two runs after a warm-up
(model files in the page cache), and includes starting the workers and loading their decoders (about 1 s)."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis.simulate import load_pool
from analysis.speech import lm as speech_lm
from analysis.speech.recognition import RecogniserConfig, recognise_records
from analysis.speech.synthesis import SynthesisConfig, synthesize_records
from tests.bench.harness import report, timed

N_TURNS = int(os.environ.get("TURNLENS_BENCH_SPEECH_TURNS", "80"))
N_DEFAULT_LM = N_TURNS * 3 // 8  # the general LM decodes about 3x slower


def test_speech_synthesis_and_recognition_throughput(tmp_path):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are not installed (make install)")
    pool = load_pool()
    sentences = sorted({r["reference_text"] for r in pool})
    turns = [{"dialogue_id": f"bench-{i:04d}", "turn_index": 0, "timestamp": "2026-01-05T10:00:00Z",
              "asr_text": "", "reference_text": text, "speaker_id": f"sim-bench-{i % 16:02d}"}
             for i, text in enumerate(sentences[:N_TURNS])]
    lm_path = tmp_path / "pool.arpa"
    speech_lm.build_lm(sentences[N_TURNS:], lm_path, sources=["bench: dev pool"], forbidden=None)
    load_before = os.getloadavg()[0]
    rows: dict[str, object] = {"turns": len(turns), "load_average_1min_at_start": load_before}

    synthesized = None
    for workers in (1, 2):
        root = tmp_path / f"audio-{workers}"

        def synth(root=root, workers=workers):
            shutil.rmtree(root, ignore_errors=True)  # every run renders every file
            return synthesize_records(turns, root, config=SynthesisConfig(snr_db=30, workers=workers))

        seconds, synthesized = timed(synth, repeat=2)
        rows[f"synthesis_turns_per_s_{workers}_workers"] = len(turns) / seconds
    rows["synthesis_speedup"] = rows["synthesis_turns_per_s_2_workers"] / rows["synthesis_turns_per_s_1_workers"]

    root = tmp_path / "audio-2"
    for name, lm, n in (("in_domain_lm", str(lm_path), len(turns)), ("default_lm", None, N_DEFAULT_LM)):
        recognise_records(synthesized.records[:2], root, config=RecogniserConfig(lm=lm, workers=1))  # warm-up
        for workers in (1, 2):
            before = os.times()
            seconds, result = timed(recognise_records, synthesized.records[:n], root,
                                    config=RecogniserConfig(lm=lm, workers=workers), repeat=2)
            after = os.times()
            assert result.decoded == n
            rows[f"recognition_{name}_turns_per_s_{workers}_workers"] = n / seconds
            # CPU seconds per turn (this process and its finished workers): what the load does not change
            cpu = (after.user - before.user) + (after.children_user - before.children_user)
            rows[f"recognition_{name}_cpu_seconds_per_turn_{workers}_workers"] = cpu / (2 * n)
        rows[f"recognition_{name}_speedup"] = (rows[f"recognition_{name}_turns_per_s_2_workers"]
                                               / rows[f"recognition_{name}_turns_per_s_1_workers"])
    rows["load_average_1min_at_end"] = os.getloadavg()[0]
    report("speech", rows)
