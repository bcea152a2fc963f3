"""The reference's keypoint file (`<ds>-keypoints.pkl`: clip name → {'keypoints':
(T, 133, 3)} in COCO-WholeBody order, pixels of the raw frame) → our per-clip `.npz`
cache (`ROOT/keypoints/<name>.npz`), read through the restricted unpickler."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt_serve import skeleton
from slt_serve.errors import SltError
from slt_serve.pose import PoseSequence
from slt_training.data.keypoints import keypoints_path
from slt_training.data.pose_files import write_npz
from slt_training.data.slrt_pickle import load_slrt_dict


@dataclass(frozen=True)
class KeypointImport:
    """What `import_keypoints` did."""

    written: int  # clips written
    skipped: int  # clips whose .npz existed (without overwrite)
    out_dir: Path


def _clip_keypoints(name: str, entry, source: Path) -> np.ndarray:
    value = entry.get("keypoints") if isinstance(entry, dict) else entry
    if value is None:
        raise SltError(f"{source}: clip {name!r} has no 'keypoints'")
    points = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
    if points.ndim != 3 or points.shape[1:] != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(
            f"{source}: clip {name!r} keypoints are {points.shape}, expected (T, 133, 3)"
        )
    return points


def import_keypoints(
    pkl: str | os.PathLike,
    root: str | os.PathLike,
    width: int,
    height: int,
    fps: float,
    overwrite: bool = False,
) -> KeypointImport:
    """Write every clip of `pkl` as ROOT/keypoints/<name>.npz; `width` × `height` is the
    frame the pixels refer to (PHOENIX-2014T 210 × 260, CSL-Daily 512 × 512)."""
    pkl = Path(pkl)
    if width < 1 or height < 1 or not fps > 0:
        raise SltError(f"frame size and fps must be positive, got {width}×{height} at {fps}")
    table = load_slrt_dict(pkl, "keypoint file (<ds>-keypoints.pkl)")
    written = skipped = 0
    for name, entry in table.items():
        if not isinstance(name, str):
            raise SltError(f"{pkl}: clip names must be strings, got {type(name).__name__}")
        out = keypoints_path(root, name)
        if out.exists() and not overwrite:
            skipped += 1
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        write_npz(out, PoseSequence(_clip_keypoints(name, entry, pkl), fps, width, height))
        written += 1
    return KeypointImport(written, skipped, keypoints_path(root, "x").parent)
