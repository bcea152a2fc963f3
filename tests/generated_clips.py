"""Small generated clips for the serving tests (torch-free): real H.264 files with motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slt_serve.video import write_video


def sliding_texture(path: Path, frames: int = 25, seed: int = 0, axis: int = 1) -> Path:
    """`frames` frames of a seeded random 64² texture rolled 3 pixels a frame along `axis`
    (1: sideways, 0: downwards), written to `path` at 25 fps."""
    base = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    write_video(path, (np.roll(base, 3 * t, axis=axis) for t in range(frames)), fps=25)
    return path
