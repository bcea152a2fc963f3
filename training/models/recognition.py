"""S2G (sign-to-gloss) recognition networks trained with CTC: SingleStream and TwoStream.

SingleStream (MMTLB, CVPR 2022): RGB frames → S3D blocks 1-4 → mean over space →
`VisualHead` → gloss logits at a quarter of the frame rate.

TwoStream (TwoStream-SLT, NeurIPS 2022): an RGB S3D and a keypoint S3D (whose input
is one Gaussian heatmap per keypoint) run block by block; after blocks 1-3 each
stream gets the other's output through a lateral connection (`fusion.py`). A head
reads each stream's block-4 features and a joint head reads both, concatenated
(keypoint first, the reference's `cat_order`). Each head has a CTC loss.

Defaults follow the reference's PHOENIX-2014T S2G configs (FangyunWei/SLRT,
TwoStreamNetwork/experiments/configs/{SingleStream,TwoStream}/phoenix-2014t_s2g.yaml):
RGB block 1 frozen, keypoint stream fully trained; laterals both ways after blocks
1-3; the sign pyramid ON (v1, 3 levels, an auxiliary head per lower level, CTC
weight 0.2 for RGB and 0.5 for keypoints); self-distillation ON (the ensemble of
the three heads, detached, teaches each head by KL divergence, weight 1 each).

CTC is `F.ctc_loss` with blank 0 and `zero_infinity=True`, summed over the batch
and divided by the batch size, as the reference: per clip, NOT divided by the
target length (which `reduction="mean"` would do). The KL term is likewise summed
over steps and vocabulary and divided by the batch size (`KLDivLoss("batchmean")`).

Padding. Lengths are exact (`s3d.output_length` per clip; the reference
approximates with floor(len · T'/T)). Frames and keypoints past a clip's length
are zeroed on entry, the heads mask padded steps (BatchNorm statistics, temporal
convs) and the KL term skips them. The S3D conv stack is NOT masked, as in the
reference (which trains with batch size 1): a padded clip's last steps see its
zero padding through the backbone's receptive field, so a clip padded in a batch
gives slightly different outputs from the same clip alone. In eval mode a clip's
outputs do not depend on the other clips of its batch.

Inputs: `frames` (B, 3, T, H, W) already normalised as the backbone's weights
expect; `keypoints` (B, T, K, 3) as x, y, score in pixels of `frames`, drawn as
heatmaps of `heatmaps.size` (the frame size divided by the lateral ratio) and
normalised to (h - 0.5) / 0.5 as the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slt_serve.decoding import ctc_decode_batch
from slt_serve.errors import SltError

from .fusion import LateralConnection, LateralOptions
from .heatmaps import HeatmapOptions, keypoints_to_heatmaps
from .pyramid import SignPyramid
from .s3d import BLOCK_CHANNELS, S3DBackbone, output_length, pool_space
from .visual_head import HeadOutput, VisualHead, VisualHeadOptions, step_mask

NUM_BLOCKS = 4  # S3D blocks used by S2G: 832 channels (at width 1) at T/4
FEATURE_CHANNELS = BLOCK_CHANNELS[NUM_BLOCKS - 1]  # at width 1
BLANK_ID = 0
DECODE_HEADS = ("joint", "ensemble")
TRANSLATION_INPUTS = ("joint", "rgb", "keypoint")  # TwoStreamOptions.translation_heads
STREAMS = ("rgb", "keypoint")
# what a head gives the translation: its gloss features, or its gloss probabilities (the
# reference's CSL-Daily S2T, whose V-L mapper is an embedding over them)
TRANSLATION_SOURCES = ("features", "probabilities")


@dataclass(frozen=True)
class SingleStreamOptions:
    """SingleStream S2G; defaults as the reference's PHOENIX-2014T config."""

    head: VisualHeadOptions = VisualHeadOptions()  # the gloss head
    frozen_blocks: int = 1  # leading S3D blocks kept frozen (reference: s3d.freeze_block 1)
    in_channels: int = 3  # video channels: 3 RGB, 6 with frame differences (motion channels)
    width: float = 1.0  # S3D channel multiplier (1: the reference's 832-d features)
    translation_input: str = "features"  # one of TRANSLATION_SOURCES: `gloss_features`

    def __post_init__(self) -> None:
        _check_source(self.translation_input)


def _check_source(source: str) -> None:
    if source not in TRANSLATION_SOURCES:
        raise SltError(f"translation_input must be one of {TRANSLATION_SOURCES}, got {source!r}")


def translation_source(head: HeadOutput, source: str) -> Tensor:
    """What the translation reads of a head: its gloss features, or its probabilities."""
    return head.log_probs.exp() if source == "probabilities" else head.features


@dataclass(frozen=True)
class PyramidOptions:
    """Sign pyramid with auxiliary CTC heads (reference: pyramid v1, multi_head)."""

    enabled: bool = True  # on in the reference's PHOENIX-2014T TwoStream config
    num_levels: int = 3  # blocks 2, 3, 4; an auxiliary head on each but the top
    rgb_weight: float = 0.2  # weight of each RGB auxiliary CTC loss
    keypoint_weight: float = 0.5  # weight of each keypoint auxiliary CTC loss


@dataclass(frozen=True)
class TwoStreamOptions:
    """TwoStream S2G; defaults as the reference's PHOENIX-2014T config."""

    num_keypoints: int = 79  # K heatmap channels (reference PHOENIX: 79 of COCO-WholeBody)
    in_channels: int = 3  # video channels: 3 RGB, 6 with frame differences (motion channels)
    width: float = 1.0  # S3D channel multiplier of both streams (1: the reference's)
    heatmaps: HeatmapOptions = HeatmapOptions()  # 112² for 224² frames, σ 4 heatmap pixels
    head: VisualHeadOptions = VisualHeadOptions()  # every head: rgb, keypoint, joint, auxiliary
    rgb_frozen_blocks: int = 1  # reference: s3d.freeze_block 1
    keypoint_frozen_blocks: int = 0  # reference: keypoint_s3d.freeze_block 0
    lateral: LateralOptions = LateralOptions()  # both directions after blocks 1-3
    pyramid: PyramidOptions = PyramidOptions()
    distillation: bool = True  # ensemble teaches rgb, keypoint and joint heads (KL)
    distillation_weight: float = 1.0  # weight of each of the three KL terms
    rgb_weight: float = 1.0  # CTC weight of the RGB head
    keypoint_weight: float = 1.0  # CTC weight of the keypoint head
    joint_weight: float = 1.0  # CTC weight of the joint head
    decode_head: str = "joint"  # "joint" head or "ensemble" (mean of the 3 heads' probs)
    # heads of the translation networks (imported TwoStream-SLT S2T ensembles), one per
    # network, each reading "rgb", "keypoint" or "joint" block-4 features: the recognizer's
    # gloss features are theirs side by side (none: the joint head's)
    translation_heads: tuple[str, ...] = ()
    translation_input: str = "features"  # one of TRANSLATION_SOURCES, of every such head

    def __post_init__(self) -> None:
        _check_source(self.translation_input)
        if self.num_keypoints < 1:
            raise SltError(f"num_keypoints must be ≥ 1, got {self.num_keypoints}")
        if self.decode_head not in DECODE_HEADS:
            raise SltError(f"decode_head must be one of {DECODE_HEADS}, got {self.decode_head!r}")
        bad = [s for s in self.translation_heads if s not in TRANSLATION_INPUTS]
        if bad:
            raise SltError(f"translation_heads read one of {TRANSLATION_INPUTS}, got {bad}")


@dataclass(frozen=True)
class RecognitionOutput:
    """What a recognizer computes for a padded batch (B clips, T' steps, V glosses)."""

    gloss_logits: Tensor  # (B, T', V) of the decoding head
    gloss_log_probs: Tensor  # (B, T', V) log-softmax of `gloss_logits`
    gloss_features: Tensor  # (B, T', hidden) features for the translation stage
    output_lengths: Tensor  # (B,) valid steps of each clip
    loss: Tensor | None = None  # weighted sum of `losses`; None without targets
    losses: dict[str, Tensor] = field(default_factory=dict)  # named parts, unweighted
    head_log_probs: dict[str, Tensor] = field(default_factory=dict)  # (B, T', V) per head


def ctc_loss(log_probs: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """CTC of (B, T, V) log-probs, summed over clips and divided by B (the reference's
    normalisation); an infeasible clip (more glosses than steps) counts 0."""
    loss = F.ctc_loss(
        log_probs.float().transpose(0, 1),
        targets,
        lengths,
        target_lengths,
        blank=BLANK_ID,
        reduction="sum",
        zero_infinity=True,
    )
    return loss / log_probs.shape[0]


def distillation_loss(student_log_probs: Tensor, teacher_log_probs: Tensor, mask: Tensor) -> Tensor:
    """KL(teacher ‖ student) summed over valid steps and glosses, divided by B; the
    teacher is detached so it only teaches."""
    teacher = teacher_log_probs.detach().exp()
    kl = F.kl_div(student_log_probs.float(), teacher.float(), reduction="none").sum(-1)
    return (kl * mask).sum() / student_log_probs.shape[0]


def ensemble_log_probs(log_probs: list[Tensor]) -> Tensor:
    """Log of the mean of the heads' probabilities (the reference's `ensemble_last`)."""
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


def merge_repeated(ids: list[int]) -> list[int]:
    """The same gloss twice in a row becomes one, as the reference's decoder outputs
    (CTC alone keeps `A <blank> A` as two glosses)."""
    return [g for i, g in enumerate(ids) if i == 0 or g != ids[i - 1]]


def decode_glosses(
    output: RecognitionOutput, beam_size: int = 1, merge_repeats: bool = False
) -> list[list[int]]:
    """Gloss ids per clip: best path for `beam_size` 1, CTC prefix beam search above;
    with `merge_repeats`, never the same gloss twice in a row (the reference's output)."""
    if beam_size < 1:
        raise SltError(f"beam size must be at least 1, got {beam_size}")
    log_probs = output.gloss_log_probs.detach().float().cpu().numpy()
    lengths = output.output_lengths.detach().cpu().numpy()
    decoded = ctc_decode_batch(log_probs, lengths, beam_size, blank=BLANK_ID)
    return [merge_repeated(ids) for ids in decoded] if merge_repeats else decoded


def _check_video(frames: Tensor, lengths: Tensor | list[int], channels: int = 3) -> Tensor:
    """Validated lengths as a long tensor on the frames' device."""
    if frames.dim() != 5 or frames.shape[1] != channels:
        raise SltError(
            f"frames must be (batch, {channels}, time, height, width), got {tuple(frames.shape)}"
        )
    lengths = torch.as_tensor(lengths, device=frames.device)
    batch, steps = frames.shape[0], frames.shape[2]
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise SltError(f"lengths must be {batch} integers, got {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > steps).any()):
        raise SltError(f"lengths must be in 1..{steps} (the padded frame count), got {lengths}")
    return lengths.long()


def _check_targets(
    gloss_ids: Tensor | None, gloss_lengths: Tensor | None, batch: int, vocab_size: int
) -> tuple[Tensor, Tensor] | None:
    """(ids, lengths) checked against the vocabulary, or None when no targets are given."""
    if gloss_ids is None and gloss_lengths is None:
        return None
    if gloss_ids is None or gloss_lengths is None:
        raise SltError("give both gloss_ids and gloss_lengths, or neither")
    ids, lengths = torch.as_tensor(gloss_ids), torch.as_tensor(gloss_lengths)
    if ids.dim() != 2 or ids.shape[0] != batch or ids.is_floating_point():
        raise SltError(f"gloss_ids must be ({batch}, max glosses) integers, got {tuple(ids.shape)}")
    if lengths.shape != (batch,) or bool((lengths < 0).any() | (lengths > ids.shape[1]).any()):
        raise SltError(f"gloss_lengths must be {batch} values in 0..{ids.shape[1]}")
    valid = ids[step_mask(lengths.to(ids.device), ids.shape[1])]
    if bool(((valid < 1) | (valid >= vocab_size)).any()):
        raise SltError(f"gloss ids must be in 1..{vocab_size - 1} (0 is the CTC blank)")
    return ids.long(), lengths.long()


def _zero_padding(x: Tensor, lengths: Tensor, time_dim: int) -> Tensor:
    """`x` with every step at or past its clip's length set to 0."""
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = x.shape[0], x.shape[time_dim]
    return x * step_mask(lengths, x.shape[time_dim]).reshape(shape).to(x.dtype)


def _result(
    decoder: HeadOutput,
    features: Tensor,
    steps: Tensor,
    losses: dict[str, Tensor],
    weights: dict[str, float],
    heads: dict[str, Tensor],
) -> RecognitionOutput:
    loss = sum(weights[name] * value for name, value in losses.items()) if losses else None
    return RecognitionOutput(
        decoder.logits, decoder.log_probs, features, steps, loss, losses, heads
    )


class CtcRecognizer(nn.Module):
    """What both recognizers share: their options, vocabulary size, exact output lengths
    and decoding."""

    def __init__(self, options: SingleStreamOptions | TwoStreamOptions, vocab_size: int) -> None:
        super().__init__()
        self.options = options
        self.vocab_size = vocab_size

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid feature steps of clips of `lengths` frames (works on tensors, traceable)."""
        return output_length(lengths, NUM_BLOCKS)

    def decode(
        self, output: RecognitionOutput, beam_size: int = 1, merge_repeats: bool = False
    ) -> list[list[int]]:
        """Gloss ids per clip of `output` (see `decode_glosses`)."""
        return decode_glosses(output, beam_size, merge_repeats)


class SingleStreamRecognizer(CtcRecognizer):
    """RGB S3D (4 blocks) → spatial mean → visual head → CTC."""

    def __init__(self, options: SingleStreamOptions, vocab_size: int) -> None:
        super().__init__(options, vocab_size)
        self.backbone = S3DBackbone(
            options.in_channels, NUM_BLOCKS, options.frozen_blocks, options.width
        )
        self.head = VisualHead(self.backbone.out_channels, vocab_size, options.head)

    @property
    def feature_dim(self) -> int:
        """Channels of `gloss_features`."""
        if self.options.translation_input == "probabilities":
            return self.vocab_size
        return self.options.head.hidden_size

    def forward(
        self,
        frames: Tensor,
        lengths: Tensor,
        gloss_ids: Tensor | None = None,
        gloss_lengths: Tensor | None = None,
    ) -> RecognitionOutput:
        lengths = _check_video(frames, lengths, self.options.in_channels)
        targets = _check_targets(gloss_ids, gloss_lengths, frames.shape[0], self.vocab_size)
        steps = self.output_lengths(lengths)
        features = pool_space(self.backbone(_zero_padding(frames, lengths, 2)))
        head = self.head(features, steps)
        losses = {} if targets is None else {"ctc": ctc_loss(head.log_probs, steps, *targets)}
        source = translation_source(head, self.options.translation_input)
        return _result(head, source, steps, losses, {"ctc": 1.0}, {"rgb": head.log_probs})


class TwoStreamRecognizer(CtcRecognizer):
    """RGB and keypoint-heatmap S3D streams with lateral connections; rgb, keypoint and
    joint heads, optional sign pyramid heads and self-distillation."""

    def __init__(self, options: TwoStreamOptions, vocab_size: int) -> None:
        super().__init__(options, vocab_size)
        self.rgb_backbone = S3DBackbone(
            options.in_channels, NUM_BLOCKS, options.rgb_frozen_blocks, options.width
        )
        self.keypoint_backbone = S3DBackbone(
            options.num_keypoints, NUM_BLOCKS, options.keypoint_frozen_blocks, options.width
        )
        widths = self.rgb_backbone.block_channels  # the same for both streams
        self.to_rgb, self.to_keypoint = self._laterals(options.lateral, widths)
        heads = {"rgb": widths[-1], "keypoint": widths[-1], "joint": 2 * widths[-1]}
        self.pyramids = nn.ModuleDict()
        if options.pyramid.enabled:
            for stream in STREAMS:
                self.pyramids[stream] = SignPyramid(options.pyramid.num_levels, widths)
                for block, channels in zip(
                    self.pyramids[stream].blocks[:-1], self.pyramids[stream].channels
                ):
                    heads[f"{stream}_block{block}"] = channels
        self.heads = nn.ModuleDict(
            {name: VisualHead(size, vocab_size, options.head) for name, size in heads.items()}
        )
        self.translation_heads = nn.ModuleList(
            VisualHead(heads[s], vocab_size, options.head) for s in options.translation_heads
        )

    @property
    def feature_dim(self) -> int:
        """Channels of `gloss_features`."""
        per_head = self.options.head.hidden_size
        if self.options.translation_input == "probabilities":
            per_head = self.vocab_size
        return per_head * max(1, len(self.translation_heads))

    def translation_features(
        self, rgb_top: Tensor, keypoint_top: Tensor, steps: Tensor, first_step: Tensor | int = 0
    ) -> Tensor | None:
        """The translation networks' heads on (B, T', C) block-4 features: their gloss
        features side by side, in `options.translation_heads` order; None without them."""
        if not len(self.translation_heads):
            return None
        inputs = {"rgb": rgb_top, "keypoint": keypoint_top,
                  "joint": torch.cat([keypoint_top, rgb_top], dim=-1)}  # fmt: skip
        return torch.cat(
            [
                translation_source(
                    head(inputs[stream], steps, first_step), self.options.translation_input
                )
                for stream, head in zip(self.options.translation_heads, self.translation_heads)
            ],
            dim=-1,
        )

    @staticmethod
    def _laterals(
        options: LateralOptions, block_channels: tuple[int, ...]
    ) -> tuple[nn.ModuleDict, nn.ModuleDict]:
        """Connections into the RGB stream and into the keypoint stream, keyed by block."""
        to_rgb, to_keypoint = nn.ModuleDict(), nn.ModuleDict()
        for block in options.blocks:
            channels, key = block_channels[block - 1], f"block{block}"
            if options.pose_to_rgb:
                to_rgb[key] = LateralConnection(channels, "pose2rgb", options)
            if options.rgb_to_pose:
                to_keypoint[key] = LateralConnection(channels, "rgb2pose", options)
        return to_rgb, to_keypoint

    def heatmaps(self, keypoints: Tensor, lengths: Tensor, frame_size: tuple[int, int]) -> Tensor:
        """(B, T, K, 3) keypoints in pixels of (W, H) frames → (B, K, T, h, w) stream input.

        `frame_size` is the frame the coordinates refer to: the network input by default,
        the raw frame for an imported reference model (`keypoint_frame_size` of forward)."""
        points = keypoints.to(torch.float32)
        score = _zero_padding(points[..., 2], lengths, 1)  # padded steps draw nothing
        points = torch.cat([points[..., :2], score.unsqueeze(-1)], dim=-1)
        maps = keypoints_to_heatmaps(points, frame_size, self.options.heatmaps)
        return (maps.permute(0, 2, 1, 3, 4) - 0.5) / 0.5

    def _check_keypoints(self, keypoints: Tensor, frames: Tensor) -> None:
        batch, _, steps, height, width = frames.shape
        expected = (batch, steps, self.options.num_keypoints, 3)
        if tuple(keypoints.shape) != expected:
            raise SltError(
                f"keypoints must be (batch, time, keypoints, 3) = {expected} to match the "
                f"frames, got {tuple(keypoints.shape)}"
            )
        lateral = self.options.lateral
        size = tuple(lateral.ratio * s for s in self.options.heatmaps.size)
        if lateral.enabled and (height, width) != size:
            raise SltError(
                f"frames are {height}×{width} but lateral connections need {size[0]}×{size[1]}: "
                f"heatmap size {self.options.heatmaps.size} times the lateral ratio {lateral.ratio}"
            )

    def streams(self, frames: Tensor, heatmaps: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Both S3D streams block by block; the output of every block of each (laterals in)."""
        rgb_outputs, keypoint_outputs = [], []
        x, y = frames, heatmaps
        blocks = zip(self.rgb_backbone.blocks, self.keypoint_backbone.blocks)
        for index, (rgb_block, keypoint_block) in enumerate(blocks, start=1):
            x, y = rgb_block(x), keypoint_block(y)
            key = f"block{index}"
            x, y = (  # both directions read the outputs before either addition
                self.to_rgb[key](y, x) if key in self.to_rgb else x,
                self.to_keypoint[key](x, y) if key in self.to_keypoint else y,
            )
            rgb_outputs.append(x)
            keypoint_outputs.append(y)
        return rgb_outputs, keypoint_outputs

    def _pyramid_heads(
        self, outputs: dict[str, list[Tensor]], lengths: Tensor
    ) -> dict[str, tuple[HeadOutput, Tensor]]:
        """Auxiliary heads on the enriched lower pyramid levels: name → (output, steps)."""
        aux = {}
        for stream, pyramid in self.pyramids.items():
            levels = pyramid(outputs[stream][NUM_BLOCKS - pyramid.num_levels :])
            for block, level in zip(pyramid.blocks[:-1], levels[:-1]):
                steps = output_length(lengths, block)
                name = f"{stream}_block{block}"
                aux[name] = (self.heads[name](pool_space(level), steps), steps)
        return aux

    def _losses(
        self,
        heads: dict[str, HeadOutput],
        aux: dict[str, tuple[HeadOutput, Tensor]],
        ensemble: Tensor,
        steps: Tensor,
        targets: tuple[Tensor, Tensor],
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Every loss part by name, and its weight in the total."""
        opts = self.options
        stream_weights = {
            "rgb": opts.rgb_weight,
            "keypoint": opts.keypoint_weight,
            "joint": opts.joint_weight,
        }
        aux_weights = {"rgb": opts.pyramid.rgb_weight, "keypoint": opts.pyramid.keypoint_weight}
        losses, weights = {}, {}
        for name, head in heads.items():
            losses[f"ctc_{name}"] = ctc_loss(head.log_probs, steps, *targets)
            weights[f"ctc_{name}"] = stream_weights[name]
        for name, (head, aux_steps) in aux.items():
            losses[f"ctc_{name}"] = ctc_loss(head.log_probs, aux_steps, *targets)
            weights[f"ctc_{name}"] = aux_weights[name.split("_")[0]]
        if opts.distillation:
            mask = step_mask(steps, ensemble.shape[1])
            for name, head in heads.items():
                losses[f"distill_{name}"] = distillation_loss(head.log_probs, ensemble, mask)
                weights[f"distill_{name}"] = opts.distillation_weight
        return losses, weights

    def head_outputs(
        self,
        frames: Tensor,
        keypoints: Tensor,
        lengths: Tensor,
        keypoint_frame_size: tuple[int, int] | None = None,
        pyramid: bool = False,
    ) -> tuple[dict[str, HeadOutput], Tensor, dict[str, tuple[HeadOutput, Tensor]]]:
        """Every head's output: (rgb/keypoint/joint heads, their valid steps, and with
        `pyramid` the auxiliary heads by name with their own steps).

        `keypoint_frame_size` (W, H): the frame the keypoints' pixels refer to, when not
        `frames` itself (the reference draws heatmaps in pixels of the raw frame)."""
        heads, steps, aux, _ = self._heads(frames, keypoints, lengths, keypoint_frame_size, pyramid)
        return heads, steps, aux

    def _heads(self, frames, keypoints, lengths, keypoint_frame_size, pyramid):
        """`head_outputs`, and the translation heads' features (None without them)."""
        lengths = _check_video(frames, lengths, self.options.in_channels)
        self._check_keypoints(keypoints, frames)
        frame_size = keypoint_frame_size or (frames.shape[4], frames.shape[3])
        heatmaps = self.heatmaps(keypoints, lengths, frame_size)
        rgb, keypoint = self.streams(_zero_padding(frames, lengths, 2), heatmaps)
        steps = self.output_lengths(lengths)
        rgb_top, keypoint_top = pool_space(rgb[-1]), pool_space(keypoint[-1])
        heads = {
            "rgb": self.heads["rgb"](rgb_top, steps),
            "keypoint": self.heads["keypoint"](keypoint_top, steps),
            "joint": self.heads["joint"](torch.cat([keypoint_top, rgb_top], dim=-1), steps),
        }
        aux = self._pyramid_heads({"rgb": rgb, "keypoint": keypoint}, lengths) if pyramid else {}
        return heads, steps, aux, self.translation_features(rgb_top, keypoint_top, steps)

    def forward(
        self,
        frames: Tensor,
        keypoints: Tensor,
        lengths: Tensor,
        gloss_ids: Tensor | None = None,
        gloss_lengths: Tensor | None = None,
        keypoint_frame_size: tuple[int, int] | None = None,
    ) -> RecognitionOutput:
        """Decoding head, features and (with targets) losses; see `head_outputs`."""
        targets = _check_targets(gloss_ids, gloss_lengths, frames.shape[0], self.vocab_size)
        heads, steps, aux, translation = self._heads(
            frames, keypoints, lengths, keypoint_frame_size, targets is not None
        )
        log_probs = {name: head.log_probs for name, head in heads.items()}
        log_probs["ensemble"] = ensemble_log_probs(list(log_probs.values()))
        losses, weights = {}, {}
        if targets is not None:
            losses, weights = self._losses(heads, aux, log_probs["ensemble"], steps, targets)
        decoder = heads["joint"]
        if self.options.decode_head == "ensemble":
            decoder = HeadOutput(log_probs["ensemble"], log_probs["ensemble"], decoder.features)
        if translation is None:
            translation = translation_source(heads["joint"], self.options.translation_input)
        features = translation
        return _result(decoder, features, steps, losses, weights, log_probs)
