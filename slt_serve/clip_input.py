"""Frames and keypoints → the recognizer's input, exactly as S2G training evaluates a clip.

Training (`slt_training.data.s2g_data`, eval items) reads frames resized to a
square `frame_size`, cuts the centre `eval_crop` of it, resizes that to
`input_size` (area averaging when shrinking, bilinear when growing), scales to
[0, 1], normalises by mean/std per RGB channel and, with motion channels,
appends the frame difference x[t] − x[t−1] (0 at the first frame). Keypoints in
pixels of the original (width, height) frame go through the same geometry.
Training imports `crop_resize`, `normalise` and `box_keypoints` from here, so the
runtime and training share one definition; a test checks the eval geometry. At
serving time `S2GRunner` applies them; the geometry comes from the manifest's
`InputSpec` (`slt_serve.manifest`).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from slt_serve.manifest import InputSpec


class Normalisation(Protocol):
    """What `normalise` reads: a bundle's `InputSpec` or training's `ClipOptions`."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    motion_channels: bool


def crop_resize(frames: np.ndarray, box: tuple[float, ...], side: int) -> np.ndarray:
    """(T, S, S, 3) uint8 → (T, side, side, 3): the box (whole pixels) resized to `side`."""
    x0, y0, w, h = box
    left, top = int(round(x0)), int(round(y0))
    right = min(frames.shape[2], max(left + 1, int(round(x0 + w))))
    bottom = min(frames.shape[1], max(top + 1, int(round(y0 + h))))
    crop = frames[:, top:bottom, left:right]
    if crop.shape[1:3] == (side, side):
        return np.ascontiguousarray(crop)
    shrink = crop.shape[1] * crop.shape[2] > side * side
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (side, side), interpolation=interp) for f in crop])


def center_crop_pad(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) → (size, size, 3) as torchvision 0.10's `CenterCrop(size)`: zero padding
    where the frame is smaller (the left/top side gets the floor half), then the centre."""
    height, width = frame.shape[:2]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if pad_h or pad_w:
        pads = ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0))
        frame = np.pad(frame, pads)
        height, width = frame.shape[:2]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return np.ascontiguousarray(frame[top : top + size, left : left + size])


def normalise(
    rgb: np.ndarray, spec: Normalisation, previous: np.ndarray | None = None
) -> np.ndarray:
    """(T, H, W, 3) uint8 (or float32 on the same 0–255 scale, as `reference_resize` gives)
    → (T, C, H, W) float32 network input.

    previous: the normalised RGB (3, H, W) of the frame before `rgb[0]` when this is a
    window inside a longer video, so its first motion difference is the true one.
    """
    mean = np.asarray(spec.mean, np.float32).reshape(3, 1)
    std = np.asarray(spec.std, np.float32).reshape(3, 1)
    if rgb.dtype == np.uint8:  # one table lookup a value: the same float32 ops, 4x faster
        table = (np.arange(256, dtype=np.float32)[None] / np.float32(255.0) - mean) / std
        x = np.empty((rgb.shape[0], 3, *rgb.shape[1:3]), np.float32)
        for c in range(3):
            np.take(table[c], rgb[..., c], out=x[:, c])
    else:
        x = rgb.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
        x = (x - mean[None, :, :, None]) / std[None, :, :, None]
    if not spec.motion_channels:
        return np.ascontiguousarray(x)
    diff = np.zeros_like(x)
    diff[1:] = x[1:] - x[:-1]
    if previous is not None:
        diff[0] = x[0] - previous
    return np.concatenate([x, diff], axis=1)


def network_frames(frames: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(T, frame_size, frame_size, 3) uint8 → (T, input_size, input_size, 3) uint8 (eval crop)."""
    return crop_resize(frames, spec.crop_box(), spec.input_size)


def network_keypoints(
    keypoints: np.ndarray, width: int, height: int, spec: InputSpec
) -> np.ndarray:
    """(T, K_all, 3) keypoints in pixels of a (width, height) frame → (T, K, 3) in input pixels,
    the bundle's subset, through the spec's geometry."""
    points = keypoints if spec.keypoints is None else keypoints[:, list(spec.keypoints)]
    side = spec.input_size
    if spec.geometry == "reference_resize":  # the whole frame straight to side²
        return box_keypoints(points, width, height, (0.0, 0.0, side, side), side, side)
    return box_keypoints(points, width, height, spec.crop_box(), spec.frame_size, side)


def box_keypoints(
    points: np.ndarray,
    width: float,
    height: float,
    box: tuple[float, ...],
    frame_size: int,
    side: int,
) -> np.ndarray:
    """(..., 3) x, y, score in pixels of a (width, height) frame → float32 in pixels of the
    `box` (in `frame_size` pixels) cut from the square frame and resized to `side`."""
    out = points.astype(np.float32, copy=True)
    x0, y0, w, h = box
    out[..., 0] = (out[..., 0] * frame_size / width - x0) * side / w
    out[..., 1] = (out[..., 1] * frame_size / height - y0) * side / h
    return out
