"""Decode + resize to 224²: PyAV (as `slt_serve.video` does it) against OpenCV, in one run.

Inputs: a generated 10 s, 25 fps, 640×480 H.264 clip with moving content, and
the real webcam clip of a signer from the pose-format project
(../shared/data/poses/signer_webcam_58f.mp4, MIT). Each method decodes every
frame and resizes it to 224×224 RGB; the best of `--repeats` runs is reported
as frames/s, with the ratio to OpenCV.

    python benchmarks/bench_decode.py [--repeats 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from shared_data import WEBCAM

from slt_serve.video import read_frames

SIDE = 224


def make_clip(
    path: Path, seconds: float, fps: int = 25, width: int = 640, height: int = 480
) -> None:
    """A textured background with a bright disc moving across it: motion for the encoder."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), np.uint8), (0, 0), 3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "medium", "crf": "23"}
        for i in range(int(seconds * fps)):
            img = background.copy()
            x = int((i * 7) % width)
            y = int(height / 2 + height / 4 * np.sin(i / 10))
            cv2.circle(img, (x, y), 40, (255, 60, 20), -1)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def pyav(path: Path, interpolation: str, threaded: bool = True) -> int:
    """PyAV decode; libswscale converts to RGB and resizes in the same pass."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if threaded:
            s.thread_type = "AUTO"
        n = 0
        for frame in c.decode(s):
            frame.to_ndarray(format="rgb24", width=SIDE, height=SIDE, interpolation=interpolation)
            n += 1
    return n


def pyav_then_cv2(path: Path) -> int:
    """PyAV threaded decode to full-size RGB, then cv2.resize (INTER_AREA)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = 0
        for frame in c.decode(s):
            cv2.resize(frame.to_ndarray(format="rgb24"), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            n += 1
    return n


def opencv(path: Path) -> int:
    """cv2.VideoCapture (its own FFmpeg build) + cv2.resize (INTER_AREA) + BGR→RGB."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        small = cv2.resize(bgr, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n


def slt_read_frames(path: Path) -> int:
    return len(read_frames(path, SIDE))


METHODS: dict[str, Callable[[Path], int]] = {
    "OpenCV VideoCapture + cv2.resize (baseline)": opencv,
    "PyAV single-thread, swscale AREA": lambda p: pyav(p, "AREA", threaded=False),
    "PyAV threaded, swscale AREA": lambda p: pyav(p, "AREA"),
    "PyAV threaded, swscale BILINEAR": lambda p: pyav(p, "BILINEAR"),
    "PyAV threaded, full RGB + cv2.resize": pyav_then_cv2,
    "slt_serve.video.read_frames(size=224)": slt_read_frames,
}


def best_fps(fn: Callable[[Path], int], path: Path, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn(path)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {f"generated 640×480, {args.seconds:g} s @ 25 fps": Path(tmp) / "moving.mp4"}
        make_clip(clips[next(iter(clips))], args.seconds)
        if WEBCAM.is_file():
            clips["webcam 540×720, 58 frames (pose-format, MIT)"] = WEBCAM
        table = Table(title=f"decode + resize to {SIDE}² RGB, frames/s (best of {args.repeats})")
        table.add_column("method")
        for name in clips:
            table.add_column(name, justify="right")
            table.add_column("× OpenCV", justify="right")
        base = {name: best_fps(opencv, path, args.repeats) for name, path in clips.items()}
        for label, fn in METHODS.items():
            row = [label]
            for name, path in clips.items():
                fps = base[name] if fn is opencv else best_fps(fn, path, args.repeats)
                row += [f"{fps:.0f}", f"{fps / base[name]:.2f}"]
            table.add_row(*row)
        Console(width=160).print(table)
        print(f"PyAV {av.__version__}, OpenCV {cv2.__version__}, {cv2.getNumThreads()} cv2 threads")


if __name__ == "__main__":
    main()
