"""Pose speed: pose.onnx under onnxruntime vs the PyTorch module, batch 1 and 16, one run.

HRNet-W32 whole-body (133 keypoints) at 384×288, random weights (Kaiming init so
activations have realistic ranges; speed does not depend on the values), exported
by `slt_export.pose.export_model`. Rows:

- network only: the same uint8 crops through `PoseGraph` (normalisation + HRNet)
  in PyTorch (`inference_mode`) and through pose.onnx in onnxruntime;
- whole path: `slt_serve.pose.PoseEstimator.estimate_video` on the real webcam
  clip (../shared/data/poses/signer_webcam_58f.mp4, pose-format project, MIT):
  decoding, signer box, affine crop, pose.onnx, DARK decoding, back-projection.

Frames/s are medians of `--repeats` timed runs after one warm-up; the ratio
column is onnxruntime over PyTorch at the same batch. Compare within one run.

    python benchmarks/bench_pose.py [--width 32] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from shared_data import WEBCAM

from slt_export.pose import PoseGraph, export_model
from slt_serve.pose import PoseEstimator, PoseOptions
from slt_training.models.hrnet import HRNetConfig, HRNetPose

BATCHES = (1, 16)


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(width: int) -> HRNetPose:
    torch.manual_seed(0)
    model = HRNetPose(HRNetConfig(width=width))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return model.eval()


def network_rows(graph: PoseGraph, onnx_path: Path, repeats: int, threads: int) -> list[tuple]:
    estimator = PoseEstimator(onnx_path, PoseOptions(threads=threads))
    rows = []
    for batch in BATCHES:
        crops = np.random.default_rng(0).integers(0, 256, (batch, 384, 288, 3), np.uint8)
        tensor = torch.from_numpy(crops)

        def run_torch(x=tensor):
            with torch.inference_mode():
                graph(x)

        t_torch = timed(run_torch, repeats)
        t_ort = timed(lambda c=crops: estimator.heatmaps(c), repeats)
        rows.append(("network only", batch, batch / t_torch, batch / t_ort))
    return rows


def whole_path_rows(onnx_path: Path, repeats: int, threads: int) -> list[tuple]:
    rows = []
    for batch in BATCHES:
        estimator = PoseEstimator(onnx_path, PoseOptions(batch_size=batch, threads=threads))
        frames = len(estimator.estimate_video(WEBCAM).keypoints)
        seconds = timed(lambda e=estimator: e.estimate_video(WEBCAM), repeats)
        rows.append(("whole path, webcam clip", batch, None, frames / seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=32, choices=(32, 48))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    model = build(args.width)
    graph = PoseGraph(model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "pose.onnx"
        export = export_model(model, onnx_path)
        rows = network_rows(graph, onnx_path, args.repeats, args.threads)
        if WEBCAM.is_file():
            rows += whole_path_rows(onnx_path, args.repeats, args.threads)
    table = Table(
        "what",
        "batch",
        "PyTorch frames/s",
        "onnxruntime frames/s",
        "ratio",
        title=f"HRNet-W{args.width} whole-body 384×288, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}; export parity: max |diff| / max |heatmap| "
        f"{export.max_abs_diff / export.max_abs_value:.1g}",
    )
    for what, batch, fps_torch, fps_ort in rows:
        table.add_row(
            what,
            str(batch),
            "-" if fps_torch is None else f"{fps_torch:.2f}",
            f"{fps_ort:.2f}",
            "-" if fps_torch is None else f"{fps_ort / fps_torch:.2f}×",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
