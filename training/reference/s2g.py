"""Reference S2G checkpoints (SingleStream, TwoStream) → our recognizers.

Every reference tensor has exactly one place in our modules (checked: nothing left
over, nothing missing, every shape equal); the only buffers dropped are the heads'
positional tables (`pe.pe`, which we compute). The S3D blocks use the reference
layout of `s3d.checkpoint_keys`; the sign pyramid's upsampling layers are numbered
top-down there and bottom-up here; the gloss classifier's rows are permuted so that
`<blank>, <pad>, <unk>` sit at 0-2 (`vocab.s2g_vocab`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import Tensor

from slt_serve.errors import SltError
from slt_training.models.fusion import LateralOptions
from slt_training.models.heatmaps import HeatmapOptions
from slt_training.models.recognition import (
    NUM_BLOCKS,
    PyramidOptions,
    SingleStreamOptions,
    SingleStreamRecognizer,
    TwoStreamOptions,
    TwoStreamRecognizer,
)
from slt_training.models.s3d import checkpoint_keys
from slt_training.models.visual_head import VisualHeadOptions

from .checkpoint import ReferenceCheckpoint
from .vocab import ImportedVocab, check_size

SINGLE = "recognition_network."
TWO = "recognition_network.visual_backbone_twostream."
PYRAMID_LEAVES = {"conv_trans_s": "spatial", "bn_s": "spatial_bn",
                  "conv_trans_t": "temporal", "bn_t": "temporal_bn"}  # fmt: skip
# The reference's heads (TwoStream naming) → ours; `_remain.i` are the pyramid heads.
TWO_HEADS = {"visual_head": "rgb", "visual_head_keypoint": "keypoint", "visual_head_fuse": "joint"}
REFERENCE_HEATMAPS = HeatmapOptions(style="reference", sigma=8.0)  # PHOENIX: σ 8 on the frame


def head_keys(theirs: str, ours: str, state: dict[str, Tensor]) -> Iterator[tuple[str, str]]:
    """(reference key, our key) of one VisualHead; `pe.pe` is ours to compute."""
    for key in state:
        if not key.startswith(theirs + "."):
            continue
        rest = key[len(theirs) + 1 :]
        if rest == "pe.pe":
            continue
        match = re.fullmatch(r"feedforward\.pwff_layer\.(\d+)\.(weight|bias)", rest)
        if match:  # Conv1d, ReLU, Dropout, …: convs at 0, 3, 6, …
            rest = f"block.convs.{int(match[1]) // 3}.{match[2]}"
        else:
            for old, new in (("fc1.", "project."), ("bn1.norm.", "norm.norm."),
                             ("feedforward.layer_norm.", "block.layer_norm."),
                             ("gloss_output_layer.", "classifier.")):  # fmt: skip
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
        yield key, f"{ours}.{rest}"


def head_options(state: dict[str, Tensor], theirs: str) -> VisualHeadOptions:
    """A head's shape read off its tensors."""
    convs = sorted(
        (
            k
            for k in state
            if re.fullmatch(re.escape(theirs) + r"\.feedforward\.pwff_layer\.\d+\.weight", k)
        ),
        key=lambda k: int(k.split(".")[-2]),
    )
    if not convs or theirs + ".fc1.weight" not in state:
        raise SltError(f"checkpoint has no complete visual head {theirs}")
    return VisualHeadOptions(
        hidden_size=state[theirs + ".fc1.weight"].shape[0],
        ff_size=state[convs[0]].shape[0],
        ff_kernel_sizes=tuple(state[k].shape[-1] for k in convs),
        positional_encoding=theirs + ".pe.pe" in state,
    )


def _backbone_keys(theirs: str, ours: str) -> Iterator[tuple[str, str]]:
    for our_key, their_key in checkpoint_keys("reference", NUM_BLOCKS).items():
        yield f"{theirs}{their_key}", f"{ours}.{our_key}"


def single_stream_keys(state: dict[str, Tensor]) -> list[tuple[str, str]]:
    pairs = list(_backbone_keys(SINGLE + "visual_backbone.backbone.", "backbone"))
    return pairs + list(head_keys(SINGLE + "visual_head", "head", state))


def two_stream_keys(state: dict[str, Tensor], levels: int) -> list[tuple[str, str]]:
    pairs = []
    for stream, ours in (("rgb", "rgb"), ("pose", "keypoint")):
        pairs += _backbone_keys(f"{TWO}{stream}_stream.backbone.", f"{ours}_backbone")
        lateral = "to_rgb" if stream == "rgb" else "to_keypoint"
        for key in state:
            match = re.fullmatch(
                re.escape(f"{TWO}{stream}_stream_lateral.") + r"(\d+)\.conv\.weight", key
            )
            if match:
                pairs.append((key, f"{lateral}.block{int(match[1]) + 1}.conv.weight"))
            prefix = f"{TWO}{stream}_stream.pyramid.upsample_layers."
            if key.startswith(prefix):
                index, leaf, rest = key[len(prefix) :].split(".", 2)
                ours_index = levels - 2 - int(index)  # top-down there, bottom-up here
                pairs.append(
                    (key, f"pyramids.{ours}.upsample.{ours_index}.{PYRAMID_LEAVES[leaf]}.{rest}")
                )
    blocks = tuple(range(NUM_BLOCKS + 1 - levels, NUM_BLOCKS))  # pyramid heads' blocks
    for theirs, ours in TWO_HEADS.items():
        pairs += head_keys(SINGLE + theirs, f"heads.{ours}", state)
        remain = "keypoint" if theirs == "visual_head_keypoint" else "rgb"
        if theirs != "visual_head_fuse":
            for i, block in enumerate(blocks):
                pairs += head_keys(
                    f"{SINGLE}{theirs}_remain.{i}", f"heads.{remain}_block{block}", state
                )
    return pairs


def _levels(state: dict[str, Tensor]) -> int:
    found = {int(m[1]) for k in state if (m := re.search(r"pyramid\.upsample_layers\.(\d+)\.", k))}
    return len(found) + 1 if found else 0


def two_stream_options(state: dict[str, Tensor]) -> TwoStreamOptions:
    stem = state[f"{TWO}pose_stream.backbone.base.0.conv_s.weight"]
    laterals = lambda s: sorted(  # noqa: E731
        int(m[1]) + 1
        for k in state
        if (m := re.fullmatch(re.escape(f"{TWO}{s}_stream_lateral.") + r"(\d+)\.conv\.weight", k))
    )
    to_rgb, to_pose = laterals("rgb"), laterals("pose")
    if to_rgb and to_pose and to_rgb != to_pose:
        raise SltError(f"laterals after different blocks per direction ({to_rgb} vs {to_pose})")
    kernel = next(
        (tuple(state[f"{TWO}{s}_stream_lateral.0.conv.weight"].shape[2:]) for s in ("rgb", "pose")
         if f"{TWO}{s}_stream_lateral.0.conv.weight" in state), (7, 3, 3))  # fmt: skip
    levels = _levels(state)
    return TwoStreamOptions(
        num_keypoints=stem.shape[1],
        heatmaps=REFERENCE_HEATMAPS,
        head=head_options(state, SINGLE + "visual_head"),
        lateral=LateralOptions(bool(to_rgb), bool(to_pose), tuple(to_rgb or to_pose), kernel),
        pyramid=PyramidOptions(enabled=levels > 0, num_levels=levels or 3),
        decode_head="ensemble",
    )


def _classifier_rows(state: dict[str, Tensor]) -> int:
    rows = {v.shape[0] for k, v in state.items() if k.endswith("gloss_output_layer.weight")}
    if len(rows) != 1:
        raise SltError(f"the checkpoint's heads disagree on the number of glosses: {sorted(rows)}")
    return rows.pop()


def map_state(
    state: dict[str, Tensor],
    pairs: list[tuple[str, str]],
    own: dict[str, Tensor],
    order: tuple[int, ...],
    source: str,
) -> dict[str, Tensor]:
    """Our state dict from the reference's, refusing any key left over, missing or
    of another shape; classifier rows (and biases) permuted by `order`."""
    index = torch.tensor(order)
    mapped, used = {}, set()
    for theirs, ours in pairs:
        value = state[theirs]
        if ours.endswith(("classifier.weight", "classifier.bias")):
            value = value[index]
        if ours not in own or tuple(own[ours].shape) != tuple(value.shape):
            expected = tuple(own[ours].shape) if ours in own else "no such key"
            raise SltError(
                f"{source}: {theirs} {tuple(value.shape)} does not fit {ours} ({expected})"
            )
        mapped[ours], used = value.to(own[ours].dtype), used | {theirs}
    left = sorted(k for k in state if k not in used and not k.endswith(".pe.pe"))
    missing = sorted(k for k in own if k not in mapped)
    if left or missing:
        raise SltError(f"{source}: keys not mapped {left[:4]}, weights not found {missing[:4]}")
    return mapped


def build_recognizer(
    checkpoint: ReferenceCheckpoint, vocab: ImportedVocab, vocab_file: str
) -> SingleStreamRecognizer | TwoStreamRecognizer:
    """Our recognizer (eval mode) holding the reference checkpoint's weights exactly."""
    state = checkpoint.state
    check_size(len(vocab.vocab), _classifier_rows(state), vocab_file, checkpoint.path)
    if checkpoint.kind == "s2g_single":
        head = head_options(state, SINGLE + "visual_head")
        options = SingleStreamOptions(head=head, frozen_blocks=0)
        model = SingleStreamRecognizer(options, len(vocab.vocab))
        pairs = single_stream_keys(state)
    elif checkpoint.kind == "s2g_two":
        options = two_stream_options(state)
        model = TwoStreamRecognizer(options, len(vocab.vocab))
        pairs = two_stream_keys(state, options.pyramid.num_levels)
    else:
        raise SltError(f"{checkpoint.path}: a {checkpoint.kind} checkpoint, not S2G")
    mapped = map_state(state, pairs, model.state_dict(), vocab.order, checkpoint.path)
    model.load_state_dict(mapped, strict=True)
    return model.eval()
