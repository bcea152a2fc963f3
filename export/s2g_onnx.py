"""The S2G recognizer as `s2g.onnx`: one clip's frames (and keypoints) → gloss log-probs + features.

The graph reads one clip without a batch axis, as the runtime has it:

    frames     float32 (T, C, H, W)  normalised as in training (C = 6 with motion channels)
    keypoints  float32 (T, K, 3)     TwoStream only: x, y in pixels of the (H, W) input, score
    first_step int64 ()              the clip step of output step 0 (0 for a whole clip;
                                     a window's first step, so that its positional
                                     encoding is the whole clip's)
      → log_probs float32 (T', V)    log-softmax of the decoding head (T' = ceil(T / 4))
      → features  float32 (T', D)    the gloss features S2T reads

TwoStream heatmaps are drawn inside the graph (`TwoStreamRecognizer.heatmaps`, the
same torch code as training), so the runtime passes keypoints, 100× smaller than
their heatmaps. The time axis is dynamic (dynamo exporter); the recognizer's own
input checks are data-dependent Python, so the graph calls its parts directly,
in eval mode, with every step valid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError
from slt_training.models.recognition import (
    SingleStreamRecognizer,
    TwoStreamRecognizer,
    ensemble_log_probs,
    translation_source,
)
from slt_training.models.s3d import min_frames, pool_space

from .dynamo import export_graph

INPUTS_SINGLE = ("frames", "first_step")
INPUTS_TWO = ("frames", "keypoints", "first_step")
OUTPUTS = ("log_probs", "features")
FEATURE_STRIDE = 4  # input frames per output step of the 4-block S3D
MAX_FRAMES = 100_000


class SingleStreamGraph(nn.Module):
    """(T, C, H, W) → (T', V) log-probs, (T', D) features."""

    def __init__(self, model: SingleStreamRecognizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, first_step: Tensor) -> tuple[Tensor, Tensor]:
        x = frames.permute(1, 0, 2, 3).unsqueeze(0)
        for block in self.model.backbone.blocks:
            x = block(x)
        features = pool_space(x)
        lengths = torch.full((1,), features.shape[1], dtype=torch.long)
        head = self.model.head(features, lengths, first_step)
        return head.log_probs[0], translation_source(head, self.model.options.translation_input)[0]


class TwoStreamGraph(nn.Module):
    """(T, C, H, W) frames and (T, K, 3) keypoints → (T', V) log-probs, (T', D) features."""

    def __init__(self, model: TwoStreamRecognizer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, frames: Tensor, keypoints: Tensor, first_step: Tensor
    ) -> tuple[Tensor, Tensor]:
        m = self.model
        x = frames.permute(1, 0, 2, 3).unsqueeze(0)
        lengths = torch.full((1,), x.shape[2], dtype=torch.long)
        heatmaps = m.heatmaps(keypoints.unsqueeze(0), lengths, (x.shape[4], x.shape[3]))
        rgb, keypoint = m.streams(x, heatmaps)
        rgb_top, keypoint_top = pool_space(rgb[-1]), pool_space(keypoint[-1])
        steps = torch.full((1,), rgb_top.shape[1], dtype=torch.long)
        heads = {
            "rgb": m.heads["rgb"](rgb_top, steps, first_step),
            "keypoint": m.heads["keypoint"](keypoint_top, steps, first_step),
            "joint": m.heads["joint"](
                torch.cat([keypoint_top, rgb_top], dim=-1), steps, first_step
            ),
        }
        log_probs = heads["joint"].log_probs
        if m.options.decode_head == "ensemble":
            log_probs = ensemble_log_probs([h.log_probs for h in heads.values()])
        features = m.translation_features(rgb_top, keypoint_top, steps, first_step)
        if features is None:  # no translation networks' heads: the joint head's
            features = translation_source(heads["joint"], m.options.translation_input)
        return log_probs[0], features[0]


S3D_REACH = 31  # frames either side that a block-4 step of S3D reads: the stem's k=7 /2
# temporal conv, block 2's k=3, 2 + 5 k=3 inceptions and block 4's k=3 /2 pool


def context_frames(model: nn.Module) -> int:
    """Frames of context either side of a serving window that cover every frame a step
    reads, a multiple of FEATURE_STRIDE: S3D's 31, 4 per step of each head conv's half
    kernel, and TwoStream's lateral convs (k_t - 1 frames each at half the frame rate, a
    path crossing every lateral block). 40 for the reference's SingleStream head (3, 3),
    60 for its TwoStream (k_t = 7 laterals); a changed frame was measured to reach 39 and
    57 frames on those full-size networks (docs/coming-from-twostream-slt.md)."""
    if isinstance(model, SingleStreamRecognizer):
        head = model.head.options
        reach = S3D_REACH
    else:
        head = model.options.head
        lateral = model.options.lateral
        crossings = len(lateral.blocks) if lateral.pose_to_rgb or lateral.rgb_to_pose else 0
        reach = S3D_REACH + crossings * (lateral.kernel_size[0] - 1)
    reach += FEATURE_STRIDE * sum(k // 2 for k in head.ff_kernel_sizes)
    return -(-reach // FEATURE_STRIDE) * FEATURE_STRIDE


def graph_for(model: nn.Module) -> nn.Module:
    """The export wrapper of a recognizer, in eval mode."""
    if isinstance(model, SingleStreamRecognizer):
        return SingleStreamGraph(model.eval()).eval()
    if isinstance(model, TwoStreamRecognizer):
        return TwoStreamGraph(model.eval()).eval()
    raise SltError(
        f"cannot export a {type(model).__name__}; expected a Single/TwoStream recognizer"
    )


def example_inputs(
    model: nn.Module, frames: int, size: int, generator: torch.Generator | None = None
) -> tuple[Tensor, ...]:
    """Random inputs of the shapes the graph reads (keypoints inside the frame)."""
    x = torch.randn(frames, model.options.in_channels, size, size, generator=generator)
    if isinstance(model, SingleStreamRecognizer):
        return (x,)
    k = model.options.num_keypoints
    points = torch.rand(frames, k, 3, generator=generator)
    points[..., :2] *= size
    return x, points


def export_s2g(model: nn.Module, input_size: int, opset: int | None = None):
    """`model` as an ONNX ModelProto with a dynamic time axis."""
    graph = graph_for(model)
    example = example_inputs(model, 16, input_size, torch.Generator().manual_seed(0))
    time = torch.export.Dim("frames", min=min_frames(4), max=MAX_FRAMES)
    names = INPUTS_SINGLE if len(example) == 1 else INPUTS_TWO
    shapes = {"frames": {0: time}}
    if len(example) == 2:
        shapes["keypoints"] = {0: time}
    example = (*example, torch.tensor(3, dtype=torch.long))  # first_step (not 0: not special)
    shapes["first_step"] = None
    return export_graph(graph, example, list(names), list(OUTPUTS), shapes, opset)
