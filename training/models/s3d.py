"""The S3D video backbone (Xie et al. 2018, "Rethinking Spatiotemporal Feature Learning").

Our own module (torchvision cannot be imported here), with the architecture of
torchvision's `s3d` and of kylemin/S3D, the network the reference code
(TwoStream-SLT / SingleStream, `S3D_backbone`) builds on. It is cut into the five
blocks the reference uses (`use_block`, `freeze_block`):

    block  layers                                   channels  time    space
    1      SepConv 7×7×7 /2 (the stem)                 64      T/2     H/2
    2      maxpool 1×3×3 /(1,2,2), 1×1×1, SepConv 3   192      T/2     H/4
    3      maxpool 1×3×3 /(1,2,2), Mixed_3b, 3c       480      T/2     H/8
    4      maxpool 3×3×3 /2, Mixed_4b … 4f            832      T/4     H/16
    5      maxpool 2×2×2 /2, Mixed_5b, 5c            1024      T/8     H/32

"T/2" means exactly ceil(T/2) (stem: kernel 7, stride 2, padding 3), T/4 is
ceil(ceil(T/2)/2) (pool: kernel 3, stride 2, padding 1), T/8 halves that again
rounding down (kernel 2, stride 2, no padding); `output_length` computes it.
The reference's S2G uses 4 blocks: 832 channels at a quarter of the frame rate,
14×14 for 224² input.

A SepConv3d is a (1,k,k) spatial conv + BN + ReLU then a (k,1,1) temporal conv +
BN + ReLU; BN uses eps 1e-3 and momentum 1e-3 as in both originals.

`width` scales the channels of every layer (every inception branch): the table is
width 1, the reference's; smaller widths are for training from scratch on small data
or a CPU (`block_channels(width)`).

Kinetics-400 weights load from a local file in either layout users have
(`load_pretrained`); the two expect differently normalised input (see
`PretrainedLoad.input_mean` / `input_std`).
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError

logger = logging.getLogger(__name__)

BLOCK_CHANNELS = (64, 192, 480, 832, 1024)  # output channels of blocks 1..5
MAX_BLOCKS = len(BLOCK_CHANNELS)
MAX_WIDTH = 4.0  # channel multiplier bound, a guard against typos (e.g. 25 for 0.25)
BN_EPS = 1e-3
BN_MOMENTUM = 1e-3

# Temporal (kernel, stride, padding) of the layers that change the frame count,
# by block index (0-based); every other layer keeps it.
_TEMPORAL_DOWNSAMPLING = {0: (7, 2, 3), 3: (3, 2, 1), 4: (2, 2, 0)}

# Inception blocks: in, branch0 out, branch1 reduce/out, branch2 reduce/out, branch3 out.
_INCEPTION = {
    "mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}

# Input normalisation each set of weights was trained with, on RGB in [0, 1].
TORCHVISION_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's VideoClassification preset
TORCHVISION_STD = (0.22803, 0.22145, 0.216989)
REFERENCE_MEAN = (0.5, 0.5, 0.5)  # kylemin/S3D and TwoStream-SLT: (x - 0.5) / 0.5
REFERENCE_STD = (0.5, 0.5, 0.5)


class ConvBnRelu(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + ReLU, the unit every S3D layer is made of."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Module):
    """A k×k×k conv factorised as (1,k,k) spatial then (k,1,1) temporal, each with BN + ReLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.spatial = ConvBnRelu(cin, cout, (1, k, k), (1, stride, stride), (0, padding, padding))
        self.temporal = ConvBnRelu(cout, cout, (k, 1, 1), (stride, 1, 1), (padding, 0, 0))

    def forward(self, x: Tensor) -> Tensor:
        return self.temporal(self.spatial(x))


class SepInception(nn.Module):
    """Inception block with separable 3×3×3 convs; the four branches are concatenated."""

    def __init__(self, cin: int, b0: int, b1_mid: int, b1: int, b2_mid: int, b2: int, b3: int):
        super().__init__()
        self.branch0 = ConvBnRelu(cin, b0, 1)
        self.branch1 = nn.Sequential(
            OrderedDict(reduce=ConvBnRelu(cin, b1_mid, 1), sep=SepConv3d(b1_mid, b1, 3, 1, 1))
        )
        self.branch2 = nn.Sequential(
            OrderedDict(reduce=ConvBnRelu(cin, b2_mid, 1), sep=SepConv3d(b2_mid, b2, 3, 1, 1))
        )
        self.branch3 = nn.Sequential(
            OrderedDict(pool=nn.MaxPool3d(3, stride=1, padding=1), proj=ConvBnRelu(cin, b3, 1))
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch0, self.branch1, self.branch2, self.branch3)
        return torch.cat([branch(x) for branch in branches], dim=1)


def scaled_channels(channels: int, width: float) -> int:
    """`channels` times the width multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def block_channels(width: float = 1.0) -> tuple[int, ...]:
    """Output channels of blocks 1..5 of an S3D of `width` (BLOCK_CHANNELS at width 1)."""
    s = lambda c: scaled_channels(c, width)  # noqa: E731
    inception_out = {n: s(p[1]) + s(p[3]) + s(p[5]) + s(p[6]) for n, p in _INCEPTION.items()}
    return (s(64), s(192), inception_out["mixed_3c"], inception_out["mixed_4f"],
            inception_out["mixed_5c"])  # fmt: skip


def _inceptions(cin: int, width: float, *names: str) -> list[tuple[str, nn.Module]]:
    """Inception blocks in sequence from `cin` channels, every branch scaled by `width`."""
    layers = []
    for name in names:
        _, b0, b1_mid, b1, b2_mid, b2, b3 = (scaled_channels(c, width) for c in _INCEPTION[name])
        layers.append((name, SepInception(cin, b0, b1_mid, b1, b2_mid, b2, b3)))
        cin = b0 + b1 + b2 + b3
    return layers


def _build_blocks(in_channels: int, width: float = 1.0) -> list[nn.Sequential]:
    c1, c2, c3, c4, _ = block_channels(width)
    s = lambda c: scaled_channels(c, width)  # noqa: E731
    pool_s = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    return [
        nn.Sequential(OrderedDict(stem=SepConv3d(in_channels, c1, 7, 2, 3))),
        nn.Sequential(
            OrderedDict(
                pool=pool_s, reduce=ConvBnRelu(c1, s(64), 1), conv=SepConv3d(s(64), c2, 3, 1, 1)
            )
        ),
        nn.Sequential(
            OrderedDict([("pool", nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))])
            | OrderedDict(_inceptions(c2, width, "mixed_3b", "mixed_3c"))
        ),
        nn.Sequential(
            OrderedDict([("pool", nn.MaxPool3d(3, stride=2, padding=1))])
            | OrderedDict(
                _inceptions(c3, width, "mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f")
            )
        ),
        nn.Sequential(
            OrderedDict([("pool", nn.MaxPool3d(2, stride=2, padding=0))])
            | OrderedDict(_inceptions(c4, width, "mixed_5b", "mixed_5c"))
        ),
    ]


def output_length(frames: int, num_blocks: int = 4) -> int:
    """Exact number of feature steps the first `num_blocks` blocks make of `frames` frames."""
    for block, (k, s, p) in _TEMPORAL_DOWNSAMPLING.items():
        if block < num_blocks:
            frames = (frames + 2 * p - k) // s + 1
    return frames


def min_frames(num_blocks: int = 4) -> int:
    """Fewest input frames the first `num_blocks` blocks accept (5 for all five, else 1)."""
    frames = 1
    while output_length(frames, num_blocks) < 1:
        frames += 1
    return frames


class S3DBackbone(nn.Module):
    """The first `num_blocks` S3D blocks over (B, C, T, H, W) video; the first
    `frozen_blocks` are frozen (no gradient, BatchNorm kept in eval mode).

    `width` multiplies the channels of every layer (every inception branch too), as
    MobileNet's width multiplier: 0.25 gives 208 channels after block 4 and ~1/10 of
    the full network's FLOPs, the size that trains on a CPU. Pretrained weights need 1.

    `blocks` is an `nn.ModuleList`, so a two-stream model can run the streams block
    by block and add lateral connections between them.
    """

    def __init__(
        self, in_channels: int = 3, num_blocks: int = 4, frozen_blocks: int = 0, width: float = 1.0
    ):
        super().__init__()
        if not 1 <= num_blocks <= MAX_BLOCKS:
            raise SltError(f"S3D num_blocks must be 1..{MAX_BLOCKS}, got {num_blocks}")
        if not 0 <= frozen_blocks <= num_blocks:
            raise SltError(f"S3D frozen_blocks must be 0..{num_blocks}, got {frozen_blocks}")
        if in_channels < 1:
            raise SltError(f"S3D in_channels must be at least 1, got {in_channels}")
        if not 0 < width <= MAX_WIDTH:
            raise SltError(f"S3D width must be in (0, {MAX_WIDTH}], got {width}")
        self.in_channels = in_channels
        self.num_blocks = num_blocks
        self.frozen_blocks = frozen_blocks
        self.width = width
        self.block_channels = block_channels(width)[:num_blocks]  # output channels per block
        self.out_channels = self.block_channels[-1]
        self.blocks = nn.ModuleList(_build_blocks(in_channels, width)[:num_blocks])
        for block in self.blocks[:frozen_blocks]:
            block.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> S3DBackbone:
        """Switch mode, keeping frozen blocks in eval so their BN statistics stay put."""
        super().train(mode)
        for block in self.blocks[: self.frozen_blocks]:
            block.eval()
        return self

    def forward_blocks(self, x: Tensor) -> list[Tensor]:
        """The output of every block, in order; the last one is `forward(x)`."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise SltError(
                f"S3D expects (batch, {self.in_channels}, time, height, width), "
                f"got shape {tuple(x.shape)}"
            )
        if output_length(x.shape[2], self.num_blocks) < 1:
            raise SltError(
                f"S3D with {self.num_blocks} blocks needs at least "
                f"{min_frames(self.num_blocks)} frames, got {x.shape[2]}"
            )
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) → (B, out_channels, T', H', W') with T' = `output_length(T)`."""
        return self.forward_blocks(x)[-1]

    def forward_pooled(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) → (B, T', out_channels): features averaged over space, time-major."""
        return pool_space(self.forward(x))

    def output_length(self, frames: int) -> int:
        return output_length(frames, self.num_blocks)

    def load_pretrained(self, path: str | Path, adapt_stem: bool = True) -> PretrainedLoad:
        """Load Kinetics-400 weights; see `load_pretrained`."""
        return load_pretrained(self, path, adapt_stem=adapt_stem)


def pool_space(features: Tensor) -> Tensor:
    """(B, C, T, H, W) → (B, T, C), mean over height and width (as the reference's S2G)."""
    return features.mean(dim=(3, 4)).transpose(1, 2)


# --- Checkpoint layouts ------------------------------------------------------------
#
# Each conv/BN unit of our module, with its name in torchvision's `s3d` state dict
# (`features.<i>…`, Conv3dNormActivation = Sequential(conv, bn, relu)) and in
# kylemin/S3D's `S3D_kinetics400.pt`, which the reference ships as
# `s3ds_actioncls_ckpt` (`base.<i>…`, usually behind DataParallel's `module.`).
# The layer index <i> is the same in both: both are one flat Sequential.

_SEP, _CBR, _INC = "sep", "cbr", "inception"
_LAYERS = {"torchvision": "features", "reference": "base"}  # each layout's flat Sequential
# Per block of ours, its units: (name in blocks.<block>, layer index <i>, kind). The
# indices between blocks (1, 4, 7, 13) are max-pools, which hold no weights.
_BLOCK_UNITS = (
    (("stem", 0, _SEP),),
    (("reduce", 2, _CBR), ("conv", 3, _SEP)),
    (("mixed_3b", 5, _INC), ("mixed_3c", 6, _INC)),
    (
        ("mixed_4b", 8, _INC),
        ("mixed_4c", 9, _INC),
        ("mixed_4d", 10, _INC),
        ("mixed_4e", 11, _INC),
        ("mixed_4f", 12, _INC),
    ),
    (("mixed_5b", 14, _INC), ("mixed_5c", 15, _INC)),
)
# The Kinetics classifier: expected in the files, never part of the backbone.
_HEADS = {"torchvision": ("classifier.1.",), "reference": ("fc.0.",)}
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Per kind of unit, our sub-key → theirs; a name ending in "bn." stands for the five
# BatchNorm tensors. The reference's SepConv3d is flat (conv_s, bn_s, conv_t, bn_t).
_CBR_LEAVES = {
    "torchvision": {"conv.weight": "0.weight", "bn.": "1."},
    "reference": {"conv.weight": "conv.weight", "bn.": "bn."},
}
_SEP_LEAVES = {
    "torchvision": {
        "spatial.conv.weight": "0.0.weight",
        "spatial.bn.": "0.1.",
        "temporal.conv.weight": "1.0.weight",
        "temporal.bn.": "1.1.",
    },
    "reference": {
        "spatial.conv.weight": "conv_s.weight",
        "spatial.bn.": "bn_s.",
        "temporal.conv.weight": "conv_t.weight",
        "temporal.bn.": "bn_t.",
    },
}
_TORCHVISION_INC = {  # our branch → (theirs, kind)
    "branch0.": ("branch0.", _CBR),
    "branch1.reduce.": ("branch1.0.", _CBR),
    "branch1.sep.": ("branch1.1.", _SEP),
    "branch2.reduce.": ("branch2.0.", _CBR),
    "branch2.sep.": ("branch2.1.", _SEP),
    "branch3.proj.": ("branch3.1.", _CBR),
}
_INC_PARTS = {  # the reference names the Inception units as torchvision, but for branch0
    "torchvision": _TORCHVISION_INC,
    "reference": {**_TORCHVISION_INC, "branch0.": ("branch0.0.", _CBR)},
}
LAYOUTS = ("torchvision", "reference")


def _leaf_keys(ours: str, theirs: str, leaves: dict[str, str]) -> Iterator[tuple[str, str]]:
    for sub_o, sub_t in leaves.items():
        if sub_o.endswith("bn."):
            for name in _BN_TENSORS:
                yield ours + sub_o + name, theirs + sub_t + name
        else:
            yield ours + sub_o, theirs + sub_t


def _unit_keys(ours: str, theirs: str, kind: str, layout: str) -> Iterator[tuple[str, str]]:
    if kind == _CBR:
        yield from _leaf_keys(ours, theirs, _CBR_LEAVES[layout])
    elif kind == _SEP:
        yield from _leaf_keys(ours, theirs, _SEP_LEAVES[layout])
    else:
        for sub_o, (sub_t, sub_kind) in _INC_PARTS[layout].items():
            yield from _unit_keys(ours + sub_o, theirs + sub_t, sub_kind, layout)


def checkpoint_keys(layout: str, num_blocks: int = MAX_BLOCKS) -> dict[str, str]:
    """Our state-dict key → the key holding it in a `layout` checkpoint, for `num_blocks`."""
    table = {}
    for block, units in enumerate(_BLOCK_UNITS[:num_blocks]):
        for name, index, kind in units:
            ours, theirs = f"blocks.{block}.{name}.", f"{_LAYERS[layout]}.{index}."
            table.update(_unit_keys(ours, theirs, kind, layout))
    return table


@dataclass(frozen=True)
class PretrainedLoad:
    """What `load_pretrained` did, so the caller can log it and normalise input to match."""

    path: str  # the checkpoint file
    layout: str  # "torchvision" or "reference" (kylemin/S3D, as TwoStream-SLT ships it)
    loaded: int  # tensors copied into the backbone
    dropped: tuple[str, ...]  # checkpoint keys beyond the blocks built (later blocks, classifier)
    stem_adapted: bool  # the RGB stem was turned into an `in_channels` stem
    input_mean: tuple[float, ...]  # per-channel mean the weights expect on [0, 1] RGB
    input_std: tuple[float, ...]  # per-channel std the weights expect


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a `.safetensors` or torch checkpoint, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise SltError(f"{path}: no S3D checkpoint there; give the path of a local weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SltError(f"{path}: cannot read it as a weights file ({first_line})") from None
    for wrapper in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise SltError(f"{path}: expected a state dict of tensors")
    return state


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop DataParallel's `module.` and the reference's `backbone.` wrapper prefixes."""
    for prefix in ("module.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def detect_layout(state: dict[str, Tensor]) -> str:
    firsts = {key.split(".", 1)[0] for key in state}
    for layout, root in _LAYERS.items():
        if root in firsts:
            return layout
    sample = ", ".join(sorted(state)[:3])
    raise SltError(
        f"not an S3D checkpoint: keys start with neither features. nor base. "
        f"(first keys: {sample}); expected torchvision's s3d or kylemin/S3D's S3D_kinetics400.pt"
    )


def _adapt_stem(weight: Tensor, in_channels: int) -> Tensor:
    """RGB stem (64, 3, 1, 7, 7) → (64, in_channels, …): the RGB sum spread evenly over the
    channels, so the same value in every input channel responds as a grey RGB pixel does."""
    return weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1, 1) / in_channels


def _listed(names: list[str], limit: int = 6) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _map_state(model: S3DBackbone, state: dict, layout: str, adapt_stem: bool):
    """Our full state dict from `state`, plus the problems found and whether the stem changed."""
    table = checkpoint_keys(layout, model.num_blocks)
    own = model.state_dict()
    mapped, missing, wrong, stem_adapted = {}, [], [], False
    stem_key = "blocks.0.stem.spatial.conv.weight"
    for ours, theirs in table.items():
        if theirs not in state:
            if ours.endswith("num_batches_tracked"):  # absent from pre-0.4.1 checkpoints
                mapped[ours] = own[ours]
            else:
                missing.append(theirs)
            continue
        value = state[theirs]
        if ours == stem_key and adapt_stem and value.shape[1] != model.in_channels:
            value, stem_adapted = _adapt_stem(value, model.in_channels), True
        if value.shape != own[ours].shape:
            wrong.append(f"{theirs} {tuple(value.shape)} (expected {tuple(own[ours].shape)})")
            continue
        mapped[ours] = value.to(own[ours].dtype)
    return mapped, missing, wrong, stem_adapted


def _beyond(layout: str, num_blocks: int) -> set[str]:
    """Checkpoint keys of the blocks after the first `num_blocks` (expected, not loaded)."""
    return set(checkpoint_keys(layout, MAX_BLOCKS).values()) - set(
        checkpoint_keys(layout, num_blocks).values()
    )


def load_pretrained(
    model: S3DBackbone, path: str | Path, adapt_stem: bool = True
) -> PretrainedLoad:
    """Copy S3D weights from a local file into `model`, whichever layout the file has.

    Keys of blocks `model` does not build and the Kinetics classifier are dropped by
    name; any other difference (a missing key, a wrong shape, a key we do not know)
    raises an `SltError` that names it, and nothing is loaded. With `adapt_stem`, an
    RGB stem is converted for a model whose `in_channels` is not 3 (keypoint
    heatmaps); without it such a stem is a shape error. (The reference instead leaves
    a non-RGB stem randomly initialised.)
    """
    if model.width != 1.0:
        raise SltError(
            f"{path}: Kinetics-400 S3D weights are for the full-width network, this one has "
            f"width {model.width}; set model.width: 1 to load them, or train from scratch "
            "without pretrained weights"
        )
    state = _strip_prefixes(read_state_dict(path))
    layout = detect_layout(state)
    mapped, missing, wrong, stem_adapted = _map_state(model, state, layout, adapt_stem)
    used = set(checkpoint_keys(layout, model.num_blocks).values())
    beyond = _beyond(layout, model.num_blocks)
    dropped = sorted(k for k in state if k in beyond or k.startswith(_HEADS[layout]))
    unexpected = sorted(k for k in state if k not in used and k not in dropped)
    problems = [
        f"{label}: {_listed(names)}"
        for label, names in (("missing", missing), ("wrong shape", wrong), ("unknown", unexpected))
        if names
    ]
    if problems:
        raise SltError(
            f"{path}: S3D checkpoint ({layout} layout) does not fit a {model.num_blocks}-block "
            f"backbone: {'; '.join(problems)}. Use an S3D Kinetics-400 checkpoint "
            f"(torchvision s3d or kylemin/S3D)."
        )
    model.load_state_dict(mapped, strict=True)
    mean, std = _input_norm(layout, model.in_channels)
    logger.info(
        "loaded %d S3D tensors from %s (%s layout), dropped %d",
        len(mapped),
        path,
        layout,
        len(dropped),
    )
    return PretrainedLoad(str(path), layout, len(mapped), tuple(dropped), stem_adapted, mean, std)


def _input_norm(layout: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = (
        (TORCHVISION_MEAN, TORCHVISION_STD)
        if layout == "torchvision"
        else (REFERENCE_MEAN, REFERENCE_STD)
    )
    if channels == 3:
        return mean, std
    return (math.fsum(mean) / 3,) * channels, (math.fsum(std) / 3,) * channels
