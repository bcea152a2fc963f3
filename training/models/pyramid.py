"""Sign pyramid: a top-down pathway over the last S3D blocks, for auxiliary CTC heads.

TwoStream-SLT (`pyramid.py`, `PyramidNetwork`, version v1): each level's output is
upsampled to the size of the level below (ConvTranspose (1,3,3) in space then
(3,1,1) in time, each + BatchNorm + ReLU) and added to it. The top level (block 4)
is left as is and feeds the main head; the enriched lower levels feed auxiliary
heads whose CTC losses supervise the middle of the network. With 3 levels (the
PHOENIX config) these are blocks 2, 3, 4: 192 ch at T/2, 480 ch at T/2, 832 ch at T/4.

The transposed convs are given the exact target size, so clips whose frame count
halves unevenly (T/2 odd) need no padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError

from .s3d import BLOCK_CHANNELS

BN_EPS, BN_MOMENTUM = 1e-3, 1e-3  # as the reference's upsampling layers
_HALVES_TIME = (4,)  # 1-based blocks (of the first four) that halve the step count


class Upsampling(nn.Module):
    """(B, C_in, t, h, w) → (B, C_out, T, H, W) of a given size: space, then time."""

    def __init__(self, cin: int, cout: int, time_scale: int, space_scale: int = 2) -> None:
        super().__init__()
        self.spatial = nn.ConvTranspose3d(
            cin, cout, (1, 3, 3), (1, space_scale, space_scale), (0, 1, 1), bias=False
        )
        self.spatial_bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.temporal = nn.ConvTranspose3d(
            cout, cout, (3, 1, 1), (time_scale, 1, 1), (1, 0, 0), bias=False
        )
        self.temporal_bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor, size: tuple[int, int, int]) -> Tensor:
        t, h, w = size
        x = self.spatial(x, output_size=[x.shape[2], h, w])
        x = torch.relu(self.spatial_bn(x))
        x = self.temporal(x, output_size=[t, h, w])
        return torch.relu(self.temporal_bn(x))


class SignPyramid(nn.Module):
    """Top-down pathway over the outputs of the last `num_levels` of four S3D blocks."""

    def __init__(
        self, num_levels: int = 3, block_channels: tuple[int, ...] = BLOCK_CHANNELS
    ) -> None:
        """`block_channels`: output channels of the backbone's blocks 1..4 (its width)."""
        super().__init__()
        if not 2 <= num_levels <= 4:
            raise SltError(f"sign pyramid num_levels must be 2..4, got {num_levels}")
        self.num_levels = num_levels
        self.blocks = tuple(range(5 - num_levels, 5))  # 1-based blocks, lowest first
        self.channels = tuple(block_channels[b - 1] for b in self.blocks)
        # upsample[i] takes level i + 1 to level i.
        self.upsample = nn.ModuleList(
            Upsampling(self.channels[i + 1], self.channels[i], 2 if b in _HALVES_TIME else 1)
            for i, b in enumerate(self.blocks[1:])
        )

    def forward(self, levels: list[Tensor]) -> list[Tensor]:
        """Block outputs, lowest first → the same shapes, each lower level enriched."""
        if len(levels) != self.num_levels:
            raise SltError(f"sign pyramid needs {self.num_levels} levels, got {len(levels)}")
        out = list(levels)
        for i in range(self.num_levels - 2, -1, -1):
            out[i] = out[i] + self.upsample[i](out[i + 1], tuple(out[i].shape[2:]))
        return out
