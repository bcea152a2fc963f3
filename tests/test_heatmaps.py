import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slt_serve.errors import SltError
from slt_training.models.heatmaps import HeatmapOptions, keypoints_to_heatmaps


def test_peak_lies_at_the_keypoint_and_sigma_is_in_heatmap_pixels():
    # Frame 448×224 drawn at 112×56: a quarter scale; pixel x lands at (x + 0.5) / 4 - 0.5.
    points = torch.tensor([[[121.5, 41.5, 0.9], [5.5, 201.5, 0.8]]])  # → (30, 10) and (1, 50)
    opts = HeatmapOptions(size=(56, 112), sigma=3.0)
    maps = keypoints_to_heatmaps(points, (448, 224), opts)
    assert maps.shape == (1, 2, 56, 112)
    for k, (col, row) in enumerate([(30, 10), (1, 50)]):
        assert divmod(int(maps[0, k].argmax()), 112) == (row, col)
        assert maps[0, k, row, col] == pytest.approx(1.0)
        assert maps[0, k, row, col + 3] == pytest.approx(math.exp(-0.5), rel=1e-5)
        assert maps[0, k, row - 3, col] == pytest.approx(math.exp(-0.5), rel=1e-5)


def test_low_score_and_missing_points_are_all_zero():
    points = np.array(
        [[[10, 10, 0.0], [20, 20, 0.29], [30, 30, 0.31], [np.nan, 5, 0.9], [40, 40, 0.7]]],
        dtype=np.float32,
    )
    maps = keypoints_to_heatmaps(
        points, (64, 64), HeatmapOptions(size=(32, 32), score_threshold=0.3)
    )
    assert torch.isfinite(maps).all()
    assert [bool(maps[0, k].any()) for k in range(5)] == [False, False, True, False, True]


def test_weight_by_score_and_leading_dimensions():
    points = torch.tensor([[40.75, 30.75, 0.6]]).expand(2, 3, 1, 3)  # (B, T, K, 3)
    opts = HeatmapOptions(size=(24, 32), weight_by_score=True)
    maps = keypoints_to_heatmaps(points, (80, 60), opts)
    assert maps.shape == (2, 3, 1, 24, 32) and maps.dtype == torch.float32
    assert float(maps.max()) == pytest.approx(0.6, rel=1e-3)


def test_matches_the_reference_draw_then_resize_pipeline():
    # Reference CSL-Daily setting: 512² frames, σ = 8 on a 170² map, resized to 112².
    torch.manual_seed(0)
    points = torch.cat([torch.rand(4, 2) * 512, torch.ones(4, 1)], dim=1)
    grid = torch.arange(170.0)
    u, v = points[:, 0] * 170 / 512, points[:, 1] * 170 / 512
    drawn = torch.exp(
        -(
            (grid[None, :, None] - v[:, None, None]) ** 2
            + (grid[None, None, :] - u[:, None, None]) ** 2
        )
        / (2 * 8.0**2)
    )
    reference = F.interpolate(drawn[None], size=(112, 112), mode="bilinear", antialias=True)[0]
    ours = keypoints_to_heatmaps(points, (512, 512), HeatmapOptions(sigma=8 * 112 / 170))
    assert (ours - reference).abs().max() < 0.05  # 0.23 with sigma 4 or 7


def test_bad_input_is_an_slt_error():
    with pytest.raises(SltError, match="x, y, score"):
        keypoints_to_heatmaps(torch.zeros(4, 2), (10, 10))
    with pytest.raises(SltError, match="frame size"):
        keypoints_to_heatmaps(torch.zeros(4, 3), (0, 10))
    with pytest.raises(SltError, match="sigma"):
        HeatmapOptions(sigma=0)
