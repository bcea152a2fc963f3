"""Windows over a TwoStream recogniser with the reference's lateral convs (k_t = 7).

`s2g_onnx.context_frames` bounds what an output step reads by formula (S3D's 31 frames,
k_t - 1 for each lateral crossing, 4 per step of the head's half kernels): 60 for
TwoStream-SLT's PHOENIX config. Here a changed frame reaches steps further than the 48
frames that k_t = 3 laterals would need, and none beyond the context; windows with that
context give one run's outputs. Small S3D (width 0.25, 32² input) through the export's
graph in PyTorch; the full-size bundles were measured by hand (coming-from-twostream-slt.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slt_export.s2g_onnx import INPUTS_TWO, context_frames, graph_for
from slt_serve.manifest import InputSpec
from slt_serve.s2g import S2GRunner
from slt_training.models.fusion import LateralOptions
from slt_training.models.heatmaps import HeatmapOptions
from slt_training.models.recognition import PyramidOptions, TwoStreamOptions, TwoStreamRecognizer
from slt_training.models.visual_head import VisualHeadOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

SIZE, POINTS, FRAMES = 32, 5, 132  # the changed frame (66) lies 66 frames from either end


class _TorchSession:
    """The TwoStream export graph (PyTorch) behind onnxruntime's session calls."""

    def __init__(self, model) -> None:
        self.graph = graph_for(model)

    def get_inputs(self):
        return [type("Input", (), {"name": n}) for n in INPUTS_TWO]

    def run(self, outputs, feeds):
        with torch.no_grad():
            out = self.graph(
                torch.from_numpy(feeds["frames"]),
                torch.from_numpy(feeds["keypoints"]),
                torch.tensor(int(feeds["first_step"])),
            )
        return [o.numpy() for o in out]


@pytest.fixture(scope="module")
def runner():
    torch.manual_seed(0)
    options = TwoStreamOptions(
        num_keypoints=POINTS,
        in_channels=6,
        width=0.25,
        heatmaps=HeatmapOptions(size=(SIZE // 2, SIZE // 2), sigma=1.5),
        head=VisualHeadOptions(hidden_size=32, ff_size=64, dropout=0.0),
        lateral=LateralOptions(kernel_size=(7, 3, 3)),  # the reference's
        pyramid=PyramidOptions(enabled=False),  # auxiliary heads: not in the graph
    )
    model = TwoStreamRecognizer(options, 7)
    # BatchNorm statistics of one pass: with fresh ones (mean 0, variance 1) a random
    # network's far frames move its outputs by ~1e-7, too little to tell a reach by
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm3d):
            m.momentum = None  # running statistics: the average of the pass below
    with torch.no_grad():
        model.train()(torch.randn(1, 6, 32, SIZE, SIZE), torch.rand(1, 32, POINTS, 3) * SIZE,
                      torch.tensor([32]))  # fmt: skip
    model.eval()
    spec = InputSpec(
        fps=25.0, frame_size=SIZE, input_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3,
        motion_channels=True, keypoints=tuple(range(POINTS)),
        context_frames=context_frames(model), window_frames=256,
    )  # fmt: skip
    return model, spec


def _clip(seed: int):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    points = np.concatenate(
        [rng.uniform(0, SIZE, (FRAMES, POINTS, 2)), np.ones((FRAMES, POINTS, 1))], -1
    ).astype(np.float32)
    return frames, points


def _run(model, spec, frames, points, **update):
    runner = S2GRunner(_TorchSession(model), spec.model_copy(update=update))
    return runner.run(zip(frames, points))[:2]


def test_a_step_reads_beyond_48_frames_and_within_the_context(runner):
    model, spec = runner
    assert spec.context_frames == 60  # 31 + 3 × (7 - 1) + 8 = 57, to a multiple of 4
    frames, points = _clip(0)
    log_probs, features = _run(model, spec, frames, points)
    changed_frames, changed_points = frames.copy(), points.copy()
    c = FRAMES // 2
    changed_frames[c] = 255 - frames[c]
    changed_points[c, :, :2] = SIZE - points[c, :, :2]
    other, other_features = _run(model, spec, changed_frames, changed_points)
    diff = np.maximum(np.abs(other - log_probs).max(1), np.abs(other_features - features).max(1))
    reached = np.nonzero(diff)[0]  # exactly 0 elsewhere: the same arithmetic on the same frames
    left, right = c - 4 * reached.min(), 4 * reached.max() - c  # frames from step j's 4j
    # a window's first step 4j reads `left` frames before it, its last step (4j + 3 the
    # window's last frame) `right` after 4j: the context covers both
    assert left <= spec.context_frames and right <= spec.context_frames + 3, (left, right)
    assert max(left, right) > 48, (left, right)  # the k_t = 7 laterals' extra reach


def test_windows_with_the_context_give_one_runs_outputs(runner):
    model, spec = runner
    frames, points = _clip(1)
    log_probs, features = _run(model, spec, frames, points)
    windowed, windowed_features = _run(model, spec, frames, points, window_frames=32)
    assert windowed.shape == log_probs.shape == (FRAMES // 4, 7)
    # conv float noise only (~1e-5 on values up to ~5 here)
    np.testing.assert_allclose(windowed, log_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(windowed_features, features, atol=1e-4, rtol=0)
