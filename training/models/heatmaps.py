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
gives the same maps without the larger intermediate. The reference masks nothing on
PHOENIX and keeps only scores above 0.5 (weighted by the score) on CSL-Daily.

Coordinates are pixel centres (align_corners=False): frame pixel x maps to heatmap
column (x + 0.5) · w / W − 0.5, as a resize of the frame would place it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from slt_serve.errors import SltError


@dataclass(frozen=True)
class HeatmapOptions:
    """How keypoints are drawn."""

    size: tuple[int, int] = (112, 112)  # (height, width) of each heatmap, as the reference's
    sigma: float = 4.0  # Gaussian standard deviation, in heatmap pixels
    score_threshold: float = 0.0  # a point is drawn only if its score is above this
    weight_by_score: bool = False  # scale each Gaussian's peak to the point's score

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise SltError(f"heatmap size must be (height, width) ≥ 1, got {self.size}")
        if not self.sigma > 0:
            raise SltError(f"heatmap sigma must be positive, got {self.sigma}")


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
