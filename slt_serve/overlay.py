"""Keypoints drawn over frames, to see what the pose model (or a `.pose` file) found.

Bones of the 133 COCO-WholeBody points (`skeleton.WHOLEBODY_BONES`) are drawn
where both ends score at least `min_score`, points where they do; colours by
part: body orange, face white, the signer's left hand cyan, right hand magenta.
Coordinates are drawn with sub-pixel precision (OpenCV's fixed-point `shift`).
Output: an H.264 MP4 through `slt_serve.video.write_video`, or one PNG frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slt_serve import skeleton
from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

_SHIFT = 4  # fractional bits of the coordinates given to OpenCV
_PART_COLORS = (  # RGB per index range
    (skeleton.BODY, (255, 140, 0)),
    (skeleton.FEET, (255, 200, 0)),
    (skeleton.FACE, (255, 255, 255)),
    (skeleton.LEFT_HAND, (0, 220, 255)),
    (skeleton.RIGHT_HAND, (255, 0, 220)),
)


@dataclass(frozen=True)
class OverlayOptions:
    """How keypoints are drawn."""

    min_score: float = 0.3  # points and bones below this score are not drawn
    radius: int = 0  # point radius in pixels; 0: from the frame size
    thickness: int = 0  # bone width in pixels; 0: from the frame size


def _color(index: int) -> tuple[int, int, int]:
    for part, color in _PART_COLORS:
        if part.start <= index < part.stop:
            return color
    raise AssertionError(index)


def draw_keypoints(
    frame: np.ndarray, keypoints: np.ndarray, options: OverlayOptions = OverlayOptions()
) -> np.ndarray:
    """A copy of an (H, W, 3) RGB frame with (133, 3) keypoints (x, y, score) drawn on it."""
    if keypoints.shape != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(f"keypoints must be (133, 3) per frame, got {keypoints.shape}")
    out = np.ascontiguousarray(frame).copy()
    side = min(out.shape[:2])
    radius = options.radius or max(1, round(side / 250))
    thickness = options.thickness or max(1, round(side / 400))
    shown = (keypoints[:, 2] >= options.min_score) & np.isfinite(keypoints[:, :2]).all(axis=1)
    fixed = np.round(np.nan_to_num(keypoints[:, :2]) * (1 << _SHIFT)).astype(np.int64)
    for a, b in skeleton.WHOLEBODY_BONES:
        if shown[a] and shown[b]:
            cv2.line(
                out, tuple(fixed[a]), tuple(fixed[b]), _color(b), thickness, cv2.LINE_AA, _SHIFT
            )
    for i in np.flatnonzero(shown):
        cv2.circle(out, tuple(fixed[i]), radius, _color(int(i)), -1, cv2.LINE_AA, _SHIFT)
    return out


def overlay_frames(
    frames: Iterable[np.ndarray],
    keypoints: np.ndarray,
    keypoint_size: tuple[int, int] | None = None,
    options: OverlayOptions = OverlayOptions(),
) -> Iterator[np.ndarray]:
    """Frames with their keypoints (T, 133, 3) drawn; `keypoint_size` = (width, height) of
    the frame the coordinates refer to (default: the frames' own), rescaled to each frame."""
    for t, frame in enumerate(frames):
        if t >= len(keypoints):
            raise SltError(f"more frames than keypoints ({len(keypoints)}): wrong clip?")
        kp = keypoints[t]
        if keypoint_size is not None:
            kp = scale_keypoints(kp, keypoint_size, (frame.shape[1], frame.shape[0]))
        yield draw_keypoints(frame, kp, options)


def scale_keypoints(
    keypoints: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """(K, 3) keypoints in pixels of a `from_size` (width, height) frame → of a `to_size` one
    (a copy, float32; scores unchanged)."""
    kp = keypoints.astype(np.float32, copy=True)
    kp[:, 0] *= to_size[0] / from_size[0]
    kp[:, 1] *= to_size[1] / from_size[1]
    return kp


def write_overlay(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    keypoints: np.ndarray,
    fps: float,
    keypoint_size: tuple[int, int] | None = None,
    options: OverlayOptions = OverlayOptions(),
) -> int:
    """Write the drawn frames as an MP4 (`.mp4`) or the first one as a PNG (`.png`); returns
    the frames written."""
    from slt_serve.video import write_video

    path = Path(path)
    drawn = overlay_frames(frames, keypoints, keypoint_size, options)
    if path.suffix.lower() == ".png":
        first = next(drawn, None)
        if first is None:
            raise SltError(f"{path}: no frames to draw")
        ok, png = cv2.imencode(".png", cv2.cvtColor(first, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SltError(f"{path}: OpenCV could not encode the PNG")
        with atomic_write(path, "wb") as f:
            f.write(png.tobytes())
        return 1
    if path.suffix.lower() != ".mp4":
        raise SltError(f"{path}: give a .mp4 (video) or .png (first frame) file name")
    return write_video(path, (_even(f) for f in drawn), fps)


def _even(frame: np.ndarray) -> np.ndarray:
    """Crop a row/column if needed: H.264 4:2:0 needs even sides."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]
