"""Keypoint files: the per-clip `.npz` cache and pose-format `.pose` files, in and out.

`.npz` (what training reads, what `slt data synth` and `slt data keypoints`
write): `keypoints` float32 (T, 133, 3) x, y in pixels and score, in
COCO-WholeBody order; `fps` float64; `width`, `height` int64 of the frame the
pixels refer to. Loaded with `allow_pickle=False`.

`.pose` in: any layout `slt_serve.layouts` knows (MediaPipe Holistic, OpenPose-137,
ours), the first person only, mapped onto the 133 points; a point the file lacks,
or masks in a frame, has score 0 there. `.pose` out: the 133 points as five
components (BODY, FOOT, FACE, LEFT_HAND, RIGHT_HAND, with their bones), format
XYC, so pose-format's own tools can draw and read it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from slt_serve import skeleton
from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_serve.layouts import (
    COCO_WHOLEBODY,
    WHOLEBODY_COMPONENTS,
    Layout,
    detect_layout,
    to_wholebody,
    wholebody_point_names,
)
from slt_serve.pose import PoseSequence

log = logging.getLogger(__name__)

POSE_VERSION = 0.1  # pose-format header version written
_COLORS = {
    "BODY": (255, 128, 0),
    "FOOT": (255, 200, 0),
    "FACE": (255, 255, 255),
    "LEFT_HAND": (0, 200, 255),
    "RIGHT_HAND": (255, 0, 200),
}


def write_npz(path: str | os.PathLike, seq: PoseSequence) -> None:
    """One clip's keypoints, atomically, in the cache format (see the module doc)."""
    kp = np.asarray(seq.keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(f"{path}: keypoints must be (T, 133, 3), got {kp.shape}")
    with atomic_write(path, "wb") as f:
        np.savez_compressed(
            f,
            keypoints=kp,
            fps=np.float64(seq.fps),
            width=np.int64(seq.width),
            height=np.int64(seq.height),
        )


def read_npz(path: str | os.PathLike) -> PoseSequence:
    """A clip's `.npz` keypoints; a file missing a field or shaped wrong is an error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kp, fps = z["keypoints"].astype(np.float32), float(z["fps"])
            width, height = int(z["width"]), int(z["height"])
    except (OSError, KeyError, ValueError) as e:
        raise SltError(f"{path}: not a keypoints .npz ({e}); rerun `slt data keypoints`") from None
    if kp.ndim != 3 or kp.shape[1:] != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(f"{path}: keypoints must be (T, 133, 3), got {kp.shape}")
    return PoseSequence(kp, fps, width, height)


def read_pose(path: str | os.PathLike) -> tuple[PoseSequence, Layout]:
    """A `.pose` file's first person as COCO-WholeBody keypoints, and the layout it had."""
    from pose_format import Pose

    path = Path(path)
    try:
        pose = Pose.read(path.read_bytes())
    except OSError as e:
        raise SltError(f"{path}: cannot read ({e.strerror})") from None
    except Exception as e:  # pose-format raises struct/index errors on damaged files
        raise SltError(f"{path}: not a readable .pose file ({type(e).__name__}: {e})") from None
    header, body = pose.header, pose.body
    layout = detect_layout([c.name for c in header.components])
    names = [(c.name, p) for c in header.components for p in c.points]
    data = body.data
    if data.shape[0] == 0:
        raise SltError(f"{path}: the .pose file has no frames")
    if data.shape[1] > 1:
        log.warning("%s: %d people; keeping the first", path, data.shape[1])
    xy = np.asarray(np.ma.getdata(data[:, 0, :, :2]), dtype=np.float32)
    score = np.asarray(body.confidence[:, 0], dtype=np.float32).copy()
    score[np.ma.getmaskarray(data[:, 0, :, :2]).any(axis=-1)] = 0.0
    kp = to_wholebody(np.concatenate([xy, score[..., None]], axis=-1), names, layout)
    kp[kp[..., 2] <= 0] = 0.0  # masked or absent: all zero, never a stale position
    dims = header.dimensions
    return PoseSequence(kp, float(body.fps), int(dims.width), int(dims.height)), layout


def write_pose(path: str | os.PathLike, seq: PoseSequence) -> None:
    """COCO-WholeBody keypoints as a `.pose` file (one person; score-0 points masked)."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    kp = np.asarray(seq.keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(f"{path}: keypoints must be (T, 133, 3), got {kp.shape}")
    components = [
        PoseHeaderComponent(
            name=name,
            points=list(wholebody_point_names(name)),
            limbs=_limbs(part),
            colors=[_COLORS[name]],
            point_format="XYC",
        )
        for name, part in WHOLEBODY_COMPONENTS
    ]
    dims = PoseHeaderDimensions(width=int(seq.width), height=int(seq.height), depth=0)
    header = PoseHeader(version=POSE_VERSION, dimensions=dims, components=components)
    missing = np.repeat((kp[..., 2] <= 0)[:, None, :, None], 2, axis=-1)
    data = np.ma.masked_array(kp[:, None, :, :2], mask=missing)
    body = NumPyPoseBody(fps=float(seq.fps), data=data, confidence=kp[:, None, :, 2])
    with atomic_write(path, "wb") as f:
        Pose(header, body).write(f)


def _limbs(part: slice) -> list[tuple[int, int]]:
    """The bones inside one component, as indices within it."""
    return [
        (a - part.start, b - part.start)
        for a, b in skeleton.WHOLEBODY_BONES
        if part.start <= a < part.stop and part.start <= b < part.stop
    ]


__all__ = ["COCO_WHOLEBODY", "read_npz", "read_pose", "write_npz", "write_pose"]
