"""benchmarks/bench_gpu.py (issue 18's GPU benchmark) runs at its toy size on the CPU, so the
script meant for a lent GPU machine cannot rot between loans: serving (plain and I/O-bound
decoder) and S2G training steps (SingleStream and TwoStream, loader-fed) all give rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def test_toy_size_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), "--size", "toy", "--device", "cpu"]
    command += ["--cache", str(tmp_path / "cache"), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Serving a 2 s clip" in done.stdout and "S2G training steps, bf16" in done.stdout
    found = json.loads(out.read_text())
    serving = found["serving"]
    assert [(r["variant"], r["clients"]) for r in serving] == [
        (v, c) for v in ("plain", "io-binding", "fp16 + io-binding") for c in (1, 2)
    ]
    assert all(r["provider"] == "CPU" and r["rtf"] > 0 and r["util"] is None for r in serving)
    # the decoder fed through I/O binding translates exactly as the plain one
    exact = {tuple(r["output"]) for r in serving if r["variant"] != "fp16 + io-binding"}
    assert len(exact) == 1 and serving[0]["output"][1]
    assert all(r["output"][1] for r in serving)  # the fp16 graphs translate too
    training = found["training"]
    assert [(r["model"], r["workers"]) for r in training] == [
        (m, w) for m in ("SingleStream", "TwoStream") for w in (1,)
    ]
    for r in training:
        assert r["loader_fps"] > 0 and r["pace_ms"] > 0 and r["fed_ms"] > 0
        assert r["util"] is None  # no NVIDIA GPU here: n/a, not a made-up figure


def test_cuda_refused_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    command = [sys.executable, str(SCRIPT), "--size", "toy", "--device", "cuda"]
    command += ["--cache", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "use --device cpu" in done.stderr
