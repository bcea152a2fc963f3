"""Synthetic corpus generation speed: 1 worker vs N workers, and where the time goes.

Generates the same corpus (CPU preset: 48 glosses, 128², 25 fps; the first
--clips clips of it) into fresh folders with 1 and with N worker processes and
reports clips/s and frames/s with the speed-up over 1 worker. A second table
splits one process's time per frame into posing (keypoints), drawing
(OpenCV) and encoding (x264 via PyAV), measured on the same clips.

    python benchmarks/bench_synth.py [--clips 48] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slt_training.data.synth import corpus
from slt_training.data.synth.corpus import generate, options_for, plan_corpus


def timed_generate(clips: int, workers: int) -> tuple[float, int]:
    opts = options_for("cpu", clips=clips)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = generate(Path(tmp) / "corpus", opts, workers=workers)
        return time.perf_counter() - start, result.frames


def stage_times(clips: int) -> dict[str, float]:
    """Seconds spent per stage over the first `clips` clips, in this process."""
    opts = options_for("cpu", clips=max(clips, 3))
    plans = plan_corpus(opts)[:clips]
    spent = {"pose + keypoints": 0.0, "draw": 0.0, "encode": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for plan in plans:
            t0 = time.perf_counter()
            kp, place = corpus.render_keypoints(plan, opts)
            t1 = time.perf_counter()
            frames = list(corpus.render_frames(plan, opts, kp, place))
            t2 = time.perf_counter()
            corpus.write_mp4(Path(tmp) / f"{plan.name}.mp4", frames, opts.fps)
            t3 = time.perf_counter()
            spent["pose + keypoints"] += t1 - t0
            spent["draw"] += t2 - t1
            spent["encode"] += t3 - t2
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    console = Console()
    runs = {w: timed_generate(args.clips, w) for w in sorted({1, args.workers})}
    base = runs[1][0]
    table = Table(
        "workers", "clips", "frames", "seconds", "clips/s", "frames/s", "speed-up vs 1",
        title=f"slt data synth, CPU preset (128², 48 glosses), {os.cpu_count()} CPUs",
    )  # fmt: skip
    for w, (seconds, frames) in runs.items():
        table.add_row(
            str(w),
            str(args.clips),
            str(frames),
            f"{seconds:.2f}",
            f"{args.clips / seconds:.1f}",
            f"{frames / seconds:.0f}",
            f"{base / seconds:.2f}x",
        )
    console.print(table)
    frames = runs[1][1]
    spent = stage_times(args.clips)
    total = sum(spent.values())
    stages = Table("stage", "ms / frame", "share", title="one process, per frame")
    for name, seconds in spent.items():
        stages.add_row(name, f"{1000 * seconds / frames:.3f}", f"{seconds / total:.0%}")
    console.print(stages)
    full = options_for("cpu").clips
    console.print(
        f"the full CPU preset ({full} clips) at {args.workers} worker(s) would take about "
        f"{full / args.clips * runs[args.workers][0]:.0f} s here"
    )


if __name__ == "__main__":
    main()
