"""HRNet top-down whole-body pose (Sun et al. 2019), our own module for mmpose's weights.

The reference code gets its 133 COCO-WholeBody keypoints from mmpose's
`hrnet_w48_coco_wholebody_384x288_dark`. mmpose itself does not import here
(numpy 2, mmcv), so this module rebuilds the network with mmpose's parameter
names: the `state_dict` of an mmpose `.pth` (0.x `keypoint_head.*` or 1.x
`head.*`) loads directly, and a missing, unexpected or misshapen tensor is an
error that names it.

    stem     2 × (3×3 conv /2 + BN + ReLU)                       64 ch, 1/4
    stage 1  4 Bottlenecks (64 → 256)                             1/4
    stage 2  2 branches (W, 2W), 1 HR module                      1/4, 1/8
    stage 3  3 branches (W, 2W, 4W), 4 HR modules                 … 1/16
    stage 4  4 branches (W … 8W), 3 HR modules; only the 1/4 branch comes out
    head     1×1 conv → K heatmaps at 1/4 of the input (96 × 72 for 384 × 288)

W is 32 or 48. Each HR module runs its branches (4 BasicBlocks each) and then
fuses: every output branch sums all branches, upsampled (1×1 conv + BN +
nearest) or strided down (3×3 convs /2). The input is RGB in [0, 1] normalised
with ImageNet's mean and std, as mmpose trains it.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError

log = logging.getLogger(__name__)

STEM_CHANNELS = 64
BOTTLENECK_EXPANSION = 4
HEATMAP_STRIDE = 4  # heatmaps are 1/4 of the input in each direction
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # on RGB in [0, 1], as mmpose normalises
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = (384, 288)  # (height, width) of hrnet_w48_coco_wholebody_384x288_dark
WIDTHS = (32, 48)  # the published HRNet widths


@dataclass(frozen=True)
class HRNetConfig:
    """The network's dimensions; a checkpoint carries them (see `config_from_state_dict`)."""

    width: int = 48  # channels of the 1/4 branch; branch i has width · 2^i
    num_keypoints: int = 133  # heatmap channels (COCO-WholeBody)
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (height, width) of the crop
    stage_modules: tuple[int, int, int] = (1, 4, 3)  # HR modules in stages 2, 3, 4
    num_blocks: int = 4  # residual blocks per branch (stage 1 included)
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)  # input normalisation
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        h, w = self.input_size
        if h % 32 or w % 32 or h < 32 or w < 32:
            raise SltError(
                f"input_size {self.input_size}: height and width must be multiples of 32 "
                "(four branches, each halving)"
            )
        if self.width < 1 or self.num_keypoints < 1 or self.num_blocks < 1:
            raise SltError(f"width, num_keypoints and num_blocks must be ≥ 1: {self}")
        if len(self.stage_modules) != 3 or min(self.stage_modules) < 1:
            raise SltError(f"stage_modules must be 3 counts ≥ 1, got {self.stage_modules}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps."""
        return self.input_size[0] // HEATMAP_STRIDE, self.input_size[1] // HEATMAP_STRIDE


# --- blocks (mmpose's resnet.BasicBlock / Bottleneck, names included) --------------------


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN and a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(channels, channels, 3)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 (×4 channels) with a projected residual when the width changes."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // BOTTLENECK_EXPANSION
        self.conv1, self.bn1 = _conv_bn(cin, mid, 1)
        self.conv2, self.bn2 = _conv_bn(mid, mid, 3)
        self.conv3, self.bn3 = _conv_bn(mid, cout, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1)) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


# --- the multi-resolution parts -----------------------------------------------------------


def _fuse_layer(channels: list[int], i: int, j: int) -> nn.Module | None:
    """How branch j reaches output branch i: upsample (j > i), itself (None), or stride down."""
    if j == i:
        return None
    if j > i:
        return nn.Sequential(
            *_conv_bn(channels[j], channels[i], 1),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    steps = []
    for k in range(i - j):
        last = k == i - j - 1
        cout = channels[i] if last else channels[j]
        steps.append(
            nn.Sequential(
                *_conv_bn(channels[j], cout, 3, 2), *([] if last else [nn.ReLU(inplace=True)])
            )
        )
    return nn.Sequential(*steps)


class HRModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all the branches."""

    def __init__(self, channels: list[int], num_blocks: int, multiscale_output: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c) for _ in range(num_blocks))) for c in channels
        )
        outputs = len(channels) if multiscale_output else 1
        self.fuse_layers = (
            nn.ModuleList(
                nn.ModuleList(_fuse_layer(channels, i, j) for j in range(len(channels)))
                for i in range(outputs)
            )
            if len(channels) > 1
            else None
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for layers in self.fuse_layers:
            y = xs[0] if layers[0] is None else layers[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if layers[j] is None else layers[j](xs[j]))
            fused.append(self.relu(y))
        return fused


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapt the previous stage's branches (3×3 conv where the width changes) and add one
    new branch, a strided 3×3 conv from the lowest-resolution one (mmpose's layout)."""
    layers: list[nn.Module | None] = []
    for i, cout in enumerate(cur):
        if i < len(pre):
            same = pre[i] == cout
            layers.append(
                None if same else nn.Sequential(*_conv_bn(pre[i], cout, 3), nn.ReLU(True))
            )
            continue
        steps = []
        for j in range(i + 1 - len(pre)):
            out = cout if j == i - len(pre) else pre[-1]
            steps.append(nn.Sequential(*_conv_bn(pre[-1], out, 3, 2), nn.ReLU(True)))
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetBackbone(nn.Module):
    """Stem, stage 1 (Bottlenecks), stages 2–4 (HR modules); returns the 1/4 branch."""

    def __init__(self, config: HRNetConfig) -> None:
        super().__init__()
        w, blocks = config.width, config.num_blocks
        self.conv1, self.bn1 = _conv_bn(3, STEM_CHANNELS, 3, 2)
        self.conv2, self.bn2 = _conv_bn(STEM_CHANNELS, STEM_CHANNELS, 3, 2)
        self.relu = nn.ReLU(inplace=True)
        stage1 = STEM_CHANNELS * BOTTLENECK_EXPANSION
        self.layer1 = nn.Sequential(
            Bottleneck(STEM_CHANNELS, stage1),
            *(Bottleneck(stage1, stage1) for _ in range(blocks - 1)),
        )
        pre = [stage1]
        for s, modules in enumerate(config.stage_modules, start=2):
            cur = [w * 2**b for b in range(s)]
            setattr(self, f"transition{s - 1}", _transition(pre, cur))
            last_stage = s == 4
            setattr(
                self,
                f"stage{s}",
                nn.Sequential(
                    *(
                        HRModule(cur, blocks, not (last_stage and m == modules - 1))
                        for m in range(modules)
                    )
                ),
            )
            pre = cur

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            xs = []
            for i, layer in enumerate(transition):
                source = ys[i] if i < len(ys) else ys[-1]
                xs.append(source if layer is None else layer(source))
            ys = getattr(self, f"stage{s}")(xs)
        return ys[0]


class HRNetPose(nn.Module):
    """Normalised RGB crops (N, 3, H, W) → keypoint heatmaps (N, K, H/4, W/4)."""

    def __init__(self, config: HRNetConfig = HRNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.backbone = HRNetBackbone(config)
        self.head = nn.Module()
        self.head.final_layer = nn.Conv2d(config.width, config.num_keypoints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """mmpose's initialisation: conv N(0, 0.001), BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head.final_layer(self.backbone(x))


# --- mmpose checkpoints ---------------------------------------------------------------------

_HEAD_PREFIXES = ("keypoint_head.", "head.")  # mmpose 0.x, 1.x
_WIDTH_KEY = "backbone.stage2.0.branches.0.0.conv1.weight"
_HEAD_KEY = "head.final_layer.weight"


def mmpose_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our names from an mmpose state dict: `module.` dropped, `keypoint_head.` → `head.`."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    renamed = {}
    for key, value in state.items():
        for prefix in _HEAD_PREFIXES:
            if key.startswith(prefix):
                key = "head." + key[len(prefix) :]
                break
        renamed[key] = value
    return renamed


def config_from_state_dict(
    state: dict[str, Tensor], input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
) -> HRNetConfig:
    """The dimensions an (mmpose-named) HRNet state dict was built with."""
    if _WIDTH_KEY not in state or _HEAD_KEY not in state:
        missing = [k for k in (_WIDTH_KEY, _HEAD_KEY) if k not in state]
        sample = ", ".join(sorted(state)[:3])
        raise SltError(
            f"not an mmpose HRNet top-down checkpoint: no {', '.join(missing)} (first keys: "
            f"{sample}); give an mmpose HRNet heatmap model such as "
            "hrnet_w48_coco_wholebody_384x288_dark"
        )
    modules = tuple(_count(state, rf"backbone\.stage{s}\.(\d+)\.") for s in (2, 3, 4))
    blocks = _count(state, r"backbone\.stage2\.0\.branches\.0\.(\d+)\.")
    return HRNetConfig(
        width=state[_WIDTH_KEY].shape[0],
        num_keypoints=state[_HEAD_KEY].shape[0],
        input_size=input_size,
        stage_modules=modules,
        num_blocks=blocks,
    )


def _count(state: dict[str, Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def load_state_dict(model: HRNetPose, state: dict[str, Tensor]) -> None:
    """Copy every tensor in strictly: a missing, unexpected or misshapen key is an error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    problems = []
    for what, names in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", misshapen),
    ):
        if names:
            problems.append(f"{len(names)} {what}: {_listed(names)}")
    if problems:
        raise SltError(
            f"the checkpoint does not fit HRNet-W{model.config.width} "
            f"({'; '.join(problems)}); give an mmpose HRNet top-down heatmap checkpoint"
        )
    model.load_state_dict(state, strict=True)


def _listed(names: list[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], str]:
    """(tensors, mmpose config text or "") of a `.pth`/`.safetensors`, never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise SltError(f"{path}: no pose checkpoint there; give a local mmpose HRNet .pth file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta.get("config", "")
    data = _torch_load(path)
    config = ""
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        meta = data.get("meta")
        config = meta.get("config", "") if isinstance(meta, dict) else ""
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise SltError(
            f"{path}: expected a state dict of tensors (or mmpose's {{'state_dict': …}})"
        )
    return data, config if isinstance(config, str) else ""


def _torch_load(path: Path):
    """`torch.load(weights_only=True)`, allowing the numpy scalars mmpose's `meta` may hold."""
    import numpy as np

    safe = [np.dtype, np.ndarray, type(np.dtype(np.float64)), type(np.dtype(np.int64))]
    try:
        safe.append(np._core.multiarray.scalar)  # numpy 2
    except AttributeError:  # pragma: no cover - numpy 1
        safe.append(np.core.multiarray.scalar)
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SltError(
            f"{path}: cannot read it safely as a weights file ({first}); if it holds more than "
            "tensors, save its state_dict alone (e.g. as .safetensors) and give that"
        ) from None


def input_size_from_config(text: str) -> tuple[int, int] | None:
    """(height, width) from an mmpose config: 0.x `image_size=[W, H]`, 1.x `input_size=(W, H)`."""
    m = re.search(r"(?:image_size|input_size)\s*=\s*[\[(]\s*(\d+)\s*,\s*(\d+)\s*[\])]", text)
    return (int(m.group(2)), int(m.group(1))) if m else None


def load_checkpoint(path: str | Path, input_size: tuple[int, int] | None = None) -> HRNetPose:
    """An HRNet built and loaded from an mmpose checkpoint, in eval mode.

    The input size is, in order: `input_size`, the one in the checkpoint's mmpose
    config (`meta.config`), 384 × 288.
    """
    raw, config_text = read_checkpoint(path)
    state = mmpose_state_dict(raw)
    size = input_size or input_size_from_config(config_text) or DEFAULT_INPUT_SIZE
    model = HRNetPose(config_from_state_dict(state, size))
    load_state_dict(model, state)
    log.info(
        "%s: HRNet-W%d, %d keypoints, input %d×%d",
        path,
        model.config.width,
        model.config.num_keypoints,
        *size,
    )
    return model.eval()
