"""HRNet checkpoint → pose.onnx, checked against PyTorch before it is kept.

The exported graph takes what the runtime has at hand, uint8 RGB crops
(N, H, W, 3), and does the float conversion and ImageNet normalisation itself,
so `slt_serve.pose` needs no per-pixel numpy work besides the crop. The batch
axis is dynamic. The graph comes from the dynamo exporter
(`torch.onnx.export(..., dynamo=True)`); its metadata entry `slt_pose` holds the
`PoseModelSpec` (input size, keypoint layout, DARK kernel) the runtime reads.

Parity: the same random crops (a batch size other than the traced one, so the
dynamic axis is exercised) go through onnxruntime and PyTorch; the largest
heatmap difference must stay below `tolerance` × the largest heatmap value, or
the export fails and nothing is written.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_serve.pose import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, PoseModelSpec
from slt_training.models.hrnet import HEATMAP_STRIDE, HRNetPose, load_checkpoint

log = logging.getLogger(__name__)

DEFAULT_BLUR_KERNEL = 11  # DARK kernel of mmpose's *_dark configs
DEFAULT_TOLERANCE = 1e-3  # max |onnx − torch| / max |torch| over the heatmaps
PARITY_BATCH = 3  # crops in the parity check (traced with 2)
LAYOUT_133 = "coco_wholebody_133"


@dataclass(frozen=True)
class PoseExport:
    """What `export_pose` wrote and how well it matches PyTorch."""

    path: Path  # the .onnx file
    spec: PoseModelSpec  # as stored in its metadata
    max_abs_diff: float  # largest |onnx − torch| heatmap difference in the parity check
    max_abs_value: float  # largest |torch| heatmap value there
    megabytes: float  # file size
    seconds: float  # export + check wall time


class PoseGraph(nn.Module):
    """What pose.onnx computes: uint8 RGB crops → normalised input → HRNet heatmaps."""

    def __init__(self, model: HRNetPose) -> None:
        super().__init__()
        self.model = model
        mean = torch.tensor(model.config.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(model.config.std).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, frames: Tensor) -> Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        return self.model((x - self.mean) / self.std)


def export_pose(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    input_size: tuple[int, int] | None = None,
    blur_kernel: int = DEFAULT_BLUR_KERNEL,
    tolerance: float = DEFAULT_TOLERANCE,
) -> PoseExport:
    """Load an mmpose HRNet checkpoint and write it as pose.onnx (see `export_model`)."""
    _check_out(Path(out))
    return export_model(load_checkpoint(checkpoint, input_size), out, blur_kernel, tolerance)


def export_model(
    model: HRNetPose,
    out: str | os.PathLike,
    blur_kernel: int = DEFAULT_BLUR_KERNEL,
    tolerance: float = DEFAULT_TOLERANCE,
) -> PoseExport:
    """Export `model` with the dynamo exporter, check parity, then write `out` atomically."""
    started = time.perf_counter()
    out = Path(out)
    _check_out(out)
    if blur_kernel < 0 or (blur_kernel and blur_kernel % 2 == 0):
        raise SltError(f"blur_kernel={blur_kernel}: must be odd, or 0 for no DARK refinement")
    config = model.config
    spec = PoseModelSpec(
        input_size=tuple(config.input_size),
        num_keypoints=config.num_keypoints,
        layout=LAYOUT_133 if config.num_keypoints == 133 else f"heatmaps_{config.num_keypoints}",
        heatmap_stride=HEATMAP_STRIDE,
        blur_kernel=blur_kernel,
    )
    graph = PoseGraph(model.eval()).eval()
    proto = _to_onnx(graph, config.input_size)
    _set_metadata(proto, spec)
    data = proto.SerializeToString()
    diff, scale = parity(graph, data, config.input_size)
    if not diff <= tolerance * max(scale, 1e-12):
        raise SltError(
            f"pose.onnx disagrees with PyTorch: max |diff| {diff:.3g} vs heatmap max {scale:.3g} "
            f"(tolerance {tolerance:g} of it); nothing written. Report this with your torch and "
            "onnxruntime versions"
        )
    with atomic_write(out, "wb") as f:
        f.write(data)
    log.info("wrote %s (parity: max diff %.3g, heatmap max %.3g)", out, diff, scale)
    return PoseExport(out, spec, diff, scale, len(data) / 2**20, time.perf_counter() - started)


def _check_out(out: Path) -> None:
    if out.suffix != ".onnx":
        raise SltError(f"--out {out}: give a file name ending in .onnx")
    if out.is_dir():
        raise SltError(f"--out {out}: is a folder; give a file name such as {out / 'pose.onnx'}")


def _to_onnx(graph: PoseGraph, input_size: tuple[int, int]):
    """The dynamo exporter's ONNX ModelProto, batch axis dynamic."""
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):  # their INFO lines drown the CLI's
        logging.getLogger(name).setLevel(logging.WARNING)
    example = torch.randint(0, 256, (2, *input_size, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"frames": {0: batch}},
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise SltError("torch.onnx.export returned no program; upgrade torch and onnxscript")
    return program.model_proto


def _set_metadata(proto, spec: PoseModelSpec) -> None:
    import onnx

    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_KEY: spec.to_json()})
    proto.doc_string = (
        "slt-serve pose model: uint8 RGB crops (N, H, W, 3) -> heatmaps (N, K, H/4, W/4)"
    )


def parity(graph: PoseGraph, onnx_bytes: bytes, input_size: tuple[int, int]) -> tuple[float, float]:
    """(max |onnxruntime − torch|, max |torch|) of the heatmaps of the same random crops."""
    import onnxruntime as ort

    crops = np.random.default_rng(0).integers(0, 256, (PARITY_BATCH, *input_size, 3), np.uint8)
    with torch.no_grad():
        expected = graph(torch.from_numpy(crops)).numpy()
    with tempfile.TemporaryDirectory() as tmp:  # an ORT session on bytes > 2 GB needs a file
        path = Path(tmp) / "pose.onnx"
        path.write_bytes(onnx_bytes)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT_NAME], {INPUT_NAME: crops})[0]
    if got.shape != expected.shape:
        raise SltError(f"pose.onnx returns {got.shape}, PyTorch {expected.shape}; nothing written")
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())
