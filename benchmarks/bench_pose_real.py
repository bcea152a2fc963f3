"""Pose models on real footage: MediaPipe Holistic vs pose.onnx (HRNet), speed and what is found.

Two tables, one run:

1. Speed on decoded frames of the ASL sentence clip (320×240): MediaPipe Holistic at
   each model complexity its wheel ships, on all 107 frames (it runs frame by frame,
   tracking: batch 1 only; a new graph per clip, as the runtime does) vs HRNet-W32 and
   HRNet-W48 (`--widths`; W48 is TwoStream-SLT's) whole-body 384×288 as pose.onnx
   (random weights, `slt_export.pose.export_model`; speed does not depend on them)
   through `slt_serve.pose.PoseEstimator` at batch 1
   and 16, on the first `--hrnet-frames` (its cost per frame does not depend on the
   content: one fixed-size crop per frame). Both are the whole pose path after
   decoding: MediaPipe's detectors, crops and landmark models; HRNet's signer box,
   affine crop, network, DARK and back-projection. Frames/s are wall-clock medians of
   `--repeats` runs after a two-frame warm-up; CPU s/frame is process CPU time (all
   threads), which a shared machine disturbs less than wall time.
2. Per real clip (../shared/data/real-clips, README there for sources and licences):
   the share of frames where MediaPipe (complexity 1) finds the body, each hand and
   the face, the share with a person (body and face agreeing) and the verdict of
   the no-signer rule (`slt_serve.signer`).
3. With `--controls` (2-3 CPU-minutes more): the no-signer rule on clips derived from
   the real ones, more negatives and positives than the one cartoon: noise and black
   frames; the left fifth (background only) of three signer clips and of the cartoon;
   those clips and the cartoon mirrored, upside down and at half size.

    python benchmarks/bench_pose_real.py [--hrnet-frames 16] [--repeats 1] [--threads 1]
        [--widths 32,48] [--speed-only] [--controls]

The drawn signer of `slt data synth` is measured by benchmarks/bench_pose_synth.py.

Most of the cost is exporting the HRNets (with their parity checks) and running them;
W48 costs twice W32 per frame. `--speed-only` took 16 minutes wall on 2 CPU cores shared
with about ten other busy processes; the per-clip tables add MediaPipe on 762 frames.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from shared_data import REAL_CLIPS

from slt_serve.pose import PoseEstimator, PoseOptions
from slt_serve.pose_mediapipe import MediaPipeOptions, MediaPipePose, available_complexities
from slt_serve.signer import no_signer_reason, signer_presence
from slt_serve.video import iter_frames

SPEED_CLIP = REAL_CLIPS / "asl_sentence_what_is_your_name.mp4"
BATCHES = (1, 16)


def timed(run, frames: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeats` calls of `run(frames)` after a warm-up on two."""
    run(frames[:2])
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        run(frames)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def hrnet_onnx(width: int, folder: Path) -> Path:
    """HRNet-W`width` whole-body with random (Kaiming) weights, exported to pose.onnx."""
    import torch

    from slt_export.pose import export_model
    from slt_training.models.hrnet import HRNetConfig, HRNetPose

    torch.manual_seed(0)
    model = HRNetPose(HRNetConfig(width=width))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = folder / "pose.onnx"
    export_model(model.eval(), path)
    return path


def speed_rows(frames: list[np.ndarray], args) -> list[tuple[str, str, int, float, float]]:
    """(model, batch, frames timed, frames/s, CPU s/frame) per row."""
    rows = []
    for complexity in available_complexities():
        pose = MediaPipePose(MediaPipeOptions(model_complexity=complexity))
        wall, cpu = timed(lambda f, p=pose: list(p.estimate(f)), frames, args.repeats)
        rows.append((f"MediaPipe Holistic, complexity {complexity}", "1", len(frames), wall, cpu))
    few = frames[: args.hrnet_frames]
    for width in args.widths:
        with tempfile.TemporaryDirectory() as tmp:
            path = hrnet_onnx(width, Path(tmp))
            for batch in BATCHES:
                options = PoseOptions(batch_size=batch, threads=args.threads)
                estimator = PoseEstimator(path, options)
                wall, cpu = timed(lambda f, e=estimator: list(e.estimate(f)), few, args.repeats)
                what = f"HRNet-W{width} pose.onnx (random weights)"
                rows.append((what, str(batch), len(few), wall, cpu))
    return [(what, batch, n, n / wall, cpu / n) for what, batch, n, wall, cpu in rows]


def presence_rows() -> list[tuple]:
    pose = MediaPipePose()
    rows = []
    for clip in sorted(p for p in REAL_CLIPS.iterdir() if p.suffix in (".mp4", ".mov")):
        kp = np.stack(list(pose.estimate(iter_frames(clip))))
        presence = signer_presence(kp)
        body = (kp[:, :17, 2] > 0).any(axis=1).mean()  # Holistic returned body landmarks
        rows.append((clip.name, presence, float(body), no_signer_reason(presence)))
    return rows


CONTROL_CLIPS = (
    "asl_sentence_what_is_your_name.mp4",
    "asl_house.mp4",
    "ngt_numbers_200-900.mp4",
    "no_signer_cartoon.mp4",
)


def derived_clips() -> Iterator[tuple[str, list[np.ndarray]]]:
    """(label, frames) of the control clips (see the module doc)."""
    import cv2

    rng = np.random.default_rng(0)
    yield "noise 320×240", [rng.integers(0, 256, (240, 320, 3), np.uint8) for _ in range(40)]
    yield "black 320×240", [np.zeros((240, 320, 3), np.uint8)] * 20
    for name in CONTROL_CLIPS:
        frames = list(iter_frames(REAL_CLIPS / name))
        h, w = frames[0].shape[:2]
        yield f"{name} mirrored", [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        yield f"{name} upside down", [np.ascontiguousarray(f[::-1]) for f in frames]
        half = (w // 2, h // 2)
        yield (
            f"{name} half size",
            [cv2.resize(f, half, interpolation=cv2.INTER_AREA) for f in frames],
        )
        yield f"{name} left fifth", [np.ascontiguousarray(f[:, : w // 5]) for f in frames]


def control_table() -> Table:
    pose = MediaPipePose()
    table = Table(
        "derived clip", "frames", "body", "any hand", "face", "person", "no-signer rule",
        title="The no-signer rule on clips derived from the real ones (shares of frames)",
    )  # fmt: skip
    for label, frames in derived_clips():
        kp = np.stack(list(pose.estimate(frames)))
        p = signer_presence(kp)
        body = (kp[:, :17, 2] > 0).any(axis=1).mean()
        reason = no_signer_reason(p)
        cells = (f"{body:.2f}", f"{p.any_hand:.2f}", f"{p.face:.2f}", f"{p.person:.2f}")
        table.add_row(label, str(p.frames), *cells, reason or "signer")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hrnet-frames", type=int, default=16, help="frames HRNet is timed on")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument(
        "--widths", default="32,48", help="HRNet widths to time, comma-separated (32, 48)"
    )
    parser.add_argument(
        "--speed-only", action="store_true", help="the speed table only (no per-clip tables)"
    )
    parser.add_argument("--controls", action="store_true", help="the derived-clip table too")
    args = parser.parse_args()
    args.widths = [int(w) for w in args.widths.split(",")]
    if not set(args.widths) <= {32, 48}:
        parser.error(f"--widths {args.widths}: HRNet whole-body comes in widths 32 and 48")
    frames = list(iter_frames(SPEED_CLIP))
    speed = Table(
        "pose model",
        "batch",
        "frames timed",
        "frames/s",
        "CPU s/frame",
        title=f"Pose speed on {SPEED_CLIP.name} (320×240), onnxruntime "
        f"threads {args.threads}; MediaPipe picks its own threads",
    )
    for what, batch, n, fps, cpu in speed_rows(frames, args):
        speed.add_row(what, batch, str(n), f"{fps:.2f}", f"{cpu:.3f}")
    Console(width=120).print(speed)
    if args.speed_only:
        return
    found = Table(
        "clip",
        "frames",
        "body",
        "left hand",
        "right hand",
        "face",
        "person",
        "no-signer rule",
        title="MediaPipe Holistic (complexity 1) on the real clips: share of frames where found",
    )
    for name, p, body, reason in presence_rows():
        found.add_row(
            name,
            str(p.frames),
            f"{body:.2f}",
            f"{p.left_hand:.2f}",
            f"{p.right_hand:.2f}",
            f"{p.face:.2f}",
            f"{p.person:.2f}",
            reason or "signer",
        )
    Console(width=160).print(found)
    if args.controls:
        Console(width=160).print(control_table())


if __name__ == "__main__":
    main()
