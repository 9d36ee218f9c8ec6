"""The failure-point mixing encoder (default config, random weights) in PyTorch eager vs ONNX Runtime, fp32 and
int8 dynamic quantisation, on 2 threads: is ONNX Runtime a way to 10,000 turns/s (issue 22)? It was not
(docs/scale.md). ONNX Runtime is not a turnlens dependency; to rerun:

    .venv/bin/python -m pip install --target /tmp/ortpkgs -c constraints.txt onnxruntime onnx onnxscript
    rm -rf /tmp/ortpkgs/numpy* /tmp/ortpkgs/sympy* /tmp/ortpkgs/mpmath* /tmp/ortpkgs/typing_extensions*
    B=1024 PYTHONPATH=/tmp/ortpkgs .venv/bin/python scripts/compare_onnx_runtime.py

B: rows per call (the scorer's predict_proba uses 1024). Prints rows/s of each and the largest difference in
probability from PyTorch's."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.failure_points.model import FailurePointConfig, build_mixing_encoder  # noqa: E402


def main() -> int:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = FailurePointConfig(layers=2)  # the mixing encoder docs/scale.md measured (the default until 2026-12-07)
    n_meta, batch, n = len(cfg.meta_fields), int(os.environ.get("B", 1024)), 65_536
    model = build_mixing_encoder(cfg, text_dim=384, vocab_size=400, n_labels=6).eval()
    text, meta = torch.zeros(n, 0, 384), torch.randint(0, 400, (n, n_meta))

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([torch.softmax(model(text[s:s + batch], meta[s:s + batch]), 1).numpy()
                                   for s in range(0, n, batch)])

    def onnx(session) -> np.ndarray:
        feed, out = {"text": text.numpy(), "meta": meta.numpy()}, []
        for s in range(0, n, batch):
            logits = session.run(None, {i.name: feed[i.name][s:s + batch] for i in session.get_inputs()})[0]
            e = np.exp(logits - logits.max(1, keepdims=True))
            out.append(e / e.sum(1, keepdims=True))
        return np.concatenate(out)

    def timed(run) -> tuple[float, np.ndarray]:
        run()  # warm up
        started = time.perf_counter()
        result = run()
        return n / (time.perf_counter() - started), result

    rate, reference = timed(eager)
    print(f"PyTorch eager          {rate:8.0f} rows/s")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        torch.onnx.export(model, (text[:batch], meta[:batch]), str(fp32), input_names=["text", "meta"],
                          output_names=["logits"], dynamo=False,
                          dynamic_axes={"text": {0: "b"}, "meta": {0: "b"}, "logits": {0: "b"}})
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        for name, path in (("ONNX Runtime fp32", fp32), ("ONNX Runtime int8", int8)):
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            got_rate, got = timed(lambda s=session: onnx(s))
            same = (got.argmax(1) == reference.argmax(1)).mean()
            print(f"{name:22s} {got_rate:8.0f} rows/s  x{got_rate / rate:.2f}  largest difference "
                  f"{np.abs(got - reference).max():.1e}  same argmax {same:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
