"""The reference's eval preprocessing (`RecognitionNetwork.augment_preprocess_inputs`),
as named options, so an imported model sees exactly the input it was trained on.

* `channel_order`: the reference feeds **BGR** to S3D's RGB stream (it reverses the
  channels of RGB frames); ours is RGB.
* `geometry`: SingleStream configs (`center_crop: True`) take torchvision 0.10's
  `CenterCrop(224)`, which zero-pads a frame narrower than 224 (PHOENIX is 210 wide)
  and cuts the height; TwoStream configs resize the whole frame to 224² (no crop).
  Both resizes are bilinear, align_corners=False, without antialiasing (0.10's
  tensor path; newer torchvision antialiases by default).
* Normalisation `(x / 255 - 0.5) / 0.5`, layout (B, C, T, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from slt_serve.errors import SltError

GEOMETRIES = ("center_crop", "resize")
CHANNEL_ORDERS = ("rgb", "bgr")
# The 79 COCO-WholeBody points of the reference's PHOENIX/CSL TwoStream configs, in the
# order `dataset/Dataset.py:load_keypoints` concatenates them (groups sorted by name).
KEYPOINTS_79 = (
    tuple(range(23, 71, 3))  # face_others_1_3
    + tuple(range(91, 133))  # hand
    + tuple(range(71, 91, 2))  # mouth_half
    + tuple(range(0, 11))  # pose
)


@dataclass(frozen=True)
class ReferenceInputOptions:
    """How frames become the network's input; the defaults are SingleStream PHOENIX-2014T."""

    geometry: str = "center_crop"  # "center_crop" (SingleStream) or "resize" (TwoStream)
    size: int = 224  # network input side (the reference's img_size / center_crop_size)
    channel_order: str = "bgr"  # what the RGB stream is fed

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise SltError(f"geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise SltError(
                f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}"
            )
        if self.size < 1:
            raise SltError(f"size must be ≥ 1, got {self.size}")


def center_crop(frames: Tensor, size: int) -> Tensor:
    """torchvision 0.10's `CenterCrop(size)` on (N, C, H, W): zero padding where the
    frame is smaller (left/top get the floor half), then the centred window."""
    height, width = frames.shape[-2:]
    if size > width or size > height:
        pad_w, pad_h = max(size - width, 0), max(size - height, 0)
        frames = F.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = frames.shape[-2:]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return frames[..., top : top + size, left : left + size]


def resize(frames: Tensor, height: int, width: int) -> Tensor:
    """Bilinear, align_corners=False, no antialiasing; the identity at the same size."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)


def reference_video(frames: np.ndarray | Tensor, options: ReferenceInputOptions) -> Tensor:
    """(T, H, W, 3) uint8 RGB frames → (1, 3, T, size, size) float32 network input."""
    video = torch.as_tensor(np.asarray(frames))
    if video.dim() != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
        raise SltError(
            f"frames must be (time, height, width, 3) uint8 RGB, got {tuple(video.shape)}"
        )
    x = video.permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W), as ToTensor
    if options.geometry == "center_crop":
        x = center_crop(x, options.size)
    x = resize(x, options.size, options.size)
    if options.channel_order == "bgr":
        x = x[:, [2, 1, 0]]
    return ((x - 0.5) / 0.5).permute(1, 0, 2, 3).unsqueeze(0).contiguous()


def reference_keypoints(
    keypoints: np.ndarray | Tensor,
    frame_size: tuple[int, int],
    size: int = 224,
    subset: tuple[int, ...] = KEYPOINTS_79,
) -> Tensor:
    """(T, 133, 3) keypoints in pixels of the (W, H) raw frame → (1, T, K, 3) in pixels of
    the resized `size`² frames (TwoStream), the subset the reference keeps."""
    points = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
    if points.dim() != 3 or points.shape[-1] != 3 or points.shape[1] <= max(subset):
        raise SltError(f"keypoints must be (time, 133, 3), got {tuple(points.shape)}")
    width, height = frame_size
    scale = points.new_tensor([size / width, size / height, 1.0])
    return (points[:, list(subset)] * scale).unsqueeze(0)
