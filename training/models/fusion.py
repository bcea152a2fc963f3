"""Lateral connections between the RGB and keypoint streams (TwoStream-SLT, `fusion.py`).

After an S3D block, each stream receives the other's output resampled to its own
size and added: RGB → keypoint by a strided Conv3d (the RGB maps are larger: frames
224², heatmaps 112²), keypoint → RGB by the matching ConvTranspose3d. Kernel
(7, 3, 3), stride (1, 2, 2), no bias, Kaiming-normal init, as the reference.
Both directions read the streams' outputs before either addition.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from slt_serve.errors import SltError

DIRECTIONS = ("rgb2pose", "pose2rgb")


@dataclass(frozen=True)
class LateralOptions:
    """Which lateral connections a two-stream network has; defaults as the PHOENIX config."""

    pose_to_rgb: bool = True  # add resampled keypoint features to the RGB stream
    rgb_to_pose: bool = True  # add resampled RGB features to the keypoint stream
    blocks: tuple[int, ...] = (1, 2, 3)  # after which S3D blocks (1-based; never the last)
    kernel_size: tuple[int, int, int] = (7, 3, 3)  # (time, height, width), odd
    ratio: int = 2  # frame size / heatmap size, per side; the conv stride in space

    def __post_init__(self) -> None:
        if any(not 1 <= b <= 3 for b in self.blocks) or len(set(self.blocks)) != len(self.blocks):
            raise SltError(f"lateral blocks must be distinct values in 1..3, got {self.blocks}")
        if len(self.kernel_size) != 3 or any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise SltError(f"lateral kernel_size must be 3 odd sizes, got {self.kernel_size}")
        if self.ratio < 1:
            raise SltError(f"lateral ratio must be ≥ 1, got {self.ratio}")

    @property
    def enabled(self) -> bool:
        return bool(self.blocks) and (self.pose_to_rgb or self.rgb_to_pose)


class LateralConnection(nn.Module):
    """Resample `source` to `target`'s size (same channels) and add it to `target`."""

    def __init__(self, channels: int, direction: str, options: LateralOptions) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise SltError(f"lateral direction must be one of {DIRECTIONS}, got {direction!r}")
        self.direction = direction
        kernel = options.kernel_size
        stride = (1, options.ratio, options.ratio)
        padding = tuple(k // 2 for k in kernel)
        conv = nn.Conv3d if direction == "rgb2pose" else nn.ConvTranspose3d
        self.conv = conv(channels, channels, kernel, stride, padding, bias=False)
        nn.init.kaiming_normal_(self.conv.weight)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        if isinstance(self.conv, nn.ConvTranspose3d):
            moved = self.conv(source, output_size=list(target.shape[2:]))
        else:
            moved = self.conv(source)
        if moved.shape != target.shape:
            raise SltError(
                f"lateral {self.direction}: source {tuple(source.shape)} resamples to "
                f"{tuple(moved.shape)}, not the target's {tuple(target.shape)}; the frame size "
                f"must be the heatmap size times the lateral ratio"
            )
        return target + moved
