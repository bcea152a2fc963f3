"""Keypoints → Gaussian heatmaps, the input of the keypoint stream (TwoStream-SLT).

Each keypoint becomes one heatmap channel holding a Gaussian at its position, so a
second S3D can read the pose as images. Written in torch rather than numpy so that
it runs wherever the batch is (the reference draws them on the GPU, inside the
model's forward, because the maps are large: 79 points × 112² floats per frame)
and exports to ONNX with the model.

How the reference defines sigma: it draws each Gaussian with σ = 8 pixels on an
intermediate map (PHOENIX-2014T: the 210×260 frame itself; CSL-Daily: 170×170 for
512² frames), then resizes that map to 112×112. Measured in pixels of the final
112² map that is σ ≈ 4.3 across and 3.4 down on PHOENIX, 5.3 on CSL-Daily. We draw
straight at the final size with `sigma` in final-map pixels (default 4), which
gives nearly the same maps without the larger intermediate. The reference's heatmap
config names a `threshold`, but its `confidence` flag is never set, so the threshold
is never applied: every point is drawn whatever its score (scores of 0 included).

`style="reference"` draws exactly as the reference does, for imported models: the
Gaussian with `sigma` in pixels of the intermediate `grid` (PHOENIX-2014T: the 260×210
frame; CSL-Daily: 170×170), every point drawn whatever its score, then each map
resized to `size` (bilinear, align_corners=False, no antialiasing).

Coordinates are pixel centres (align_corners=False): frame pixel x maps to heatmap
column (x + 0.5) · w / W − 0.5, as a resize of the frame would place it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from slt_serve.errors import SltError

STYLES = ("direct", "reference")


@dataclass(frozen=True)
class HeatmapOptions:
    """How keypoints are drawn."""

    size: tuple[int, int] = (112, 112)  # (height, width) of each heatmap, as the reference's
    sigma: float = 4.0  # Gaussian standard deviation, in heatmap pixels
    score_threshold: float = 0.0  # a point is drawn only if its score is above this
    weight_by_score: bool = False  # scale each Gaussian's peak to the point's score
    style: str = "direct"  # "direct" (at `size`) or "reference" (on `grid`, then resized)
    grid: tuple[int, int] = (
        260,
        210,
    )  # reference style: (height, width) the Gaussians are drawn on

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise SltError(f"heatmap size must be (height, width) ≥ 1, got {self.size}")
        if not self.sigma > 0:
            raise SltError(f"heatmap sigma must be positive, got {self.sigma}")
        if self.style not in STYLES:
            raise SltError(f"heatmap style must be one of {STYLES}, got {self.style!r}")
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise SltError(f"heatmap grid must be (height, width) ≥ 1, got {self.grid}")


def keypoints_to_heatmaps(
    keypoints: Tensor | np.ndarray,
    frame_size: tuple[int, int],
    options: HeatmapOptions = HeatmapOptions(),
) -> Tensor:
    """(..., K, 3) keypoints (x, y, score) in pixels of a `frame_size` = (W, H) frame →
    (..., K, h, w) float32 heatmaps, on the keypoints' device.

    Points scoring at or below the threshold, or with a non-finite coordinate, give
    an all-zero map: a missing point is left out, never guessed.
    """
    points = torch.as_tensor(keypoints, dtype=torch.float32)
    if points.dim() < 2 or points.shape[-1] != 3:
        raise SltError(f"keypoints must be (..., K, 3) as x, y, score; got {tuple(points.shape)}")
    frame_w, frame_h = frame_size
    if frame_w < 1 or frame_h < 1:
        raise SltError(f"frame size must be (width, height) ≥ 1, got {frame_size}")
    if options.style == "reference":
        return _reference_heatmaps(points, frame_size, options)
    height, width = options.size
    x, y, score = points.unbind(dim=-1)
    visible = (score > options.score_threshold) & x.isfinite() & y.isfinite()
    col = torch.where(visible, (x + 0.5) * (width / frame_w) - 0.5, 0.0)
    row = torch.where(visible, (y + 0.5) * (height / frame_h) - 0.5, 0.0)
    peak = torch.where(visible, score if options.weight_by_score else 1.0, 0.0)
    gx = _gaussian_1d(col, width, options.sigma)  # (..., K, w)
    gy = _gaussian_1d(row, height, options.sigma) * peak.unsqueeze(-1)  # (..., K, h)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def _gaussian_1d(centre: Tensor, length: int, sigma: float) -> Tensor:
    """exp(-(i - centre)² / 2σ²) for i in 0..length-1; the 2-D Gaussian is their product."""
    grid = torch.arange(length, dtype=centre.dtype, device=centre.device)
    return torch.exp(-((grid - centre.unsqueeze(-1)) ** 2) / (2 * sigma**2))


def _reference_heatmaps(
    points: Tensor, frame_size: tuple[int, int], options: HeatmapOptions
) -> Tensor:
    """The reference's drawing: exp(-((y - ky)² + (x - kx)²) / 2σ²) on the integer
    `grid`, every point whatever its score, then a bilinear resize to `size`.

    Both steps are separable, so the map is computed as the outer product of the two
    resized 1-D Gaussians, never at the grid's size (the same values up to float
    rounding, ~1e-7; it also exports to ONNX with a dynamic number of frames)."""
    frame_w, frame_h = frame_size
    grid_h, grid_w = options.grid
    x = points[..., 0] * (grid_w / frame_w) if grid_w != frame_w else points[..., 0]
    y = points[..., 1] * (grid_h / frame_h) if grid_h != frame_h else points[..., 1]
    height, width = options.size
    gy = _gaussian_1d(y, grid_h, options.sigma) @ _bilinear_matrix(grid_h, height, y).T
    gx = _gaussian_1d(x, grid_w, options.sigma) @ _bilinear_matrix(grid_w, width, x).T
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def _bilinear_matrix(length: int, out: int, like: Tensor) -> Tensor:
    """(out, length): 1-D bilinear resampling with align_corners=False and no antialiasing,
    as `F.interpolate(mode="bilinear")` computes each output position."""
    scale = length / out
    src = ((torch.arange(out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=length - 1)
    high = (low + 1).clamp(max=length - 1)
    frac = src - low.float()
    matrix = torch.zeros(out, length)
    rows = torch.arange(out)
    matrix.index_put_((rows, low), 1 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix.to(device=like.device, dtype=like.dtype)
