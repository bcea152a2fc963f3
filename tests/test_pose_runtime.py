"""The torch-free pose runtime: DARK decoding, the crop round trip, pose.onnx parity with
PyTorch, and the whole path on a real webcam clip with a random model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from shared_data import WEBCAM

from slt_serve.errors import SltError
from slt_serve.pose import (
    Box,
    PoseEstimator,
    PoseOptions,
    box_from_keypoints,
    crop,
    crop_transform,
    decode_heatmaps,
    full_frame_box,
    heatmap_to_frame,
)

SIGMA = 2.0  # mmpose's heatmap sigma for 384×288 (DARK configs)


def gaussians(centres: np.ndarray, size: tuple[int, int], sigma: float = SIGMA) -> np.ndarray:
    """(N, K, 2) centres in heatmap pixels → (N, K, h, w) unnormalised Gaussians, as mmpose
    encodes targets (`unbiased_encoding`)."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = xs[None, None] - centres[..., 0, None, None]
    dy = ys[None, None] - centres[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma**2)).astype(np.float32)


def taylor_reference(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """mmpose 0.x `_taylor`, one keypoint at a time, on a log heatmap."""
    h, w = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if not (1 < px < w - 2 and 1 < py < h - 2):
        return coord
    dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
    dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
    dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
    dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
    dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
    hessian = np.array([[dxx, dxy], [dxy, dyy]])
    if dxx * dyy - dxy**2 == 0:
        return coord
    return coord - np.linalg.inv(hessian) @ np.array([dx, dy])


def test_dark_recovers_subpixel_peaks_where_argmax_cannot():
    rng = np.random.default_rng(0)
    # at least 3σ from the border: nearer, the truncated Gaussian biases any decoder
    centres = rng.uniform([6, 6], [66, 90], size=(4, 133, 2)).astype(np.float32)
    hm = gaussians(centres, (96, 72))
    coords, scores = decode_heatmaps(hm, blur_kernel=11)
    assert np.abs(coords - centres).max() < 0.05
    assert np.allclose(scores, hm.reshape(4, 133, -1).max(-1))
    plain, _ = decode_heatmaps(hm, blur_kernel=0)
    assert np.abs(plain - centres).max() > 0.3  # integer argmax: up to half a pixel off


def test_dark_matches_mmpose_taylor_step_on_noisy_maps():
    import cv2

    rng = np.random.default_rng(1)
    centres = rng.uniform([1, 1], [47, 63], size=(2, 5, 2)).astype(np.float32)
    hm = gaussians(centres, (64, 48)) + rng.uniform(0, 0.05, (2, 5, 64, 48)).astype(np.float32)
    coords, _ = decode_heatmaps(hm, blur_kernel=5)
    for n in range(2):
        for k in range(5):
            m = hm[n, k]
            padded = np.pad(m, 2)  # mmpose's _gaussian_blur: zero border, blur, crop, rescale
            blurred = cv2.GaussianBlur(padded, (5, 5), 0)[2:-2, 2:-2]
            blurred *= m.max() / blurred.max()
            start = np.array(np.unravel_index(m.argmax(), m.shape)[::-1], np.float64)
            want = taylor_reference(np.log(np.maximum(blurred, 1e-10)), start)
            assert np.allclose(coords[n, k], want, atol=1e-3)


def test_keypoints_survive_crop_heatmap_and_back_projection():
    """Known frame keypoints → the box → crop coordinates → heatmap Gaussians → decode →
    frame pixels again, within a fraction of a frame pixel."""
    rng = np.random.default_rng(2)
    input_size = (384, 288)  # a 540×720 portrait frame, the signer in its middle
    truth = np.stack(
        [rng.uniform(150, 400, 133), rng.uniform(120, 600, 133), np.ones(133)], axis=1
    ).astype(np.float32)
    box = box_from_keypoints(truth, aspect=288 / 384)
    assert box is not None and abs(box.width / box.height - 0.75) < 1e-6
    affine = crop_transform(box, input_size)
    in_crop = truth[:, :2] @ affine[:, :2].T + affine[:, 2]
    assert in_crop.min() > 0 and (in_crop < [288, 384]).all()  # padding keeps all inside
    hm = gaussians(in_crop[None] / 4.0, (96, 72))  # heatmap pixel i is input pixel 4·i
    coords, _ = decode_heatmaps(hm, blur_kernel=11)
    back = heatmap_to_frame(coords, [box], (96, 72))[0]
    scale = box.width / 72  # frame pixels per heatmap pixel
    assert np.abs(back - truth[:, :2]).max() < 0.05 * scale


def test_crop_puts_the_box_centre_at_the_crop_centre_and_pads_black():
    frame = np.zeros((100, 80, 3), np.uint8)
    frame[49:52, 39:42] = 255  # a white dot at (40, 50)
    box = Box(40.0, 50.0, 40.0, 40.0 * 64 / 48)
    out = crop(frame, box, (64, 48))
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(xs.mean() - 24) < 1 and abs(ys.mean() - 32) < 1
    wide = crop(frame, full_frame_box(80, 100, 48 / 64, padding=2.0), (64, 48))
    assert (wide[0, 0] == 0).all()  # beyond the frame: black, as mmpose pads


def test_box_falls_back_to_the_full_frame_without_confident_points():
    points = np.zeros((133, 3), np.float32)
    assert box_from_keypoints(points, 0.75) is None
    points[:20] = [100, 200, 0.9]
    points[:20, 0] += np.arange(20)
    box = box_from_keypoints(points, 0.75, PoseOptions(box_padding=1.0))
    assert box.cx == pytest.approx(109.5) and box.cy == pytest.approx(200)
    full = full_frame_box(540, 720, 0.75)
    assert (full.cx, full.cy, full.width, full.height) == (270, 360, 540, 720)
    with pytest.raises(SltError, match="odd"):
        PoseOptions(blur_kernel=4)


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """`tiny_bundles.small_hrnet()` (random, so heatmaps vary) exported to ONNX."""
    pytest.importorskip("torch")
    from tiny_bundles import small_hrnet

    from slt_export.pose import export_model

    model = small_hrnet()
    path = tmp_path_factory.mktemp("pose") / "pose.onnx"
    result = export_model(model, path)
    return path, model, result


def test_onnx_export_matches_pytorch(small_onnx):
    import torch

    from slt_export.pose import PoseGraph

    path, model, result = small_onnx
    assert result.max_abs_diff <= 1e-3 * result.max_abs_value and result.max_abs_value > 1e-3
    assert result.spec.input_size == (96, 64) and result.spec.layout == "coco_wholebody_133"
    estimator = PoseEstimator(path)
    crops = np.random.default_rng(3).integers(0, 256, (5, 96, 64, 3), np.uint8)
    with torch.no_grad():
        expected = PoseGraph(model)(torch.from_numpy(crops)).numpy()
    got = estimator.heatmaps(crops)
    assert got.shape == (5, 133, 24, 16)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_export_refuses_bad_arguments(small_onnx, tmp_path):
    from slt_export.pose import export_model

    _, model, _ = small_onnx
    with pytest.raises(SltError, match=r"\.onnx"):
        export_model(model, tmp_path / "pose.bin")
    with pytest.raises(SltError, match="odd"):
        export_model(model, tmp_path / "pose.onnx", blur_kernel=4)


@pytest.mark.skipif(not WEBCAM.is_file(), reason=f"{WEBCAM} not present")
def test_webcam_clip_end_to_end_with_a_random_model(small_onnx):
    path, _, _ = small_onnx
    one = PoseEstimator(path, PoseOptions(batch_size=1)).estimate_video(WEBCAM)
    seq = PoseEstimator(path, PoseOptions(batch_size=16)).estimate_video(WEBCAM)
    assert seq.keypoints.shape == (58, 133, 3) and seq.keypoints.dtype == np.float32
    assert (seq.width, seq.height) == (540, 720) and seq.fps == pytest.approx(30, abs=0.5)
    assert np.isfinite(seq.keypoints).all() and (seq.keypoints[..., 2] >= 0).all()
    # the first batch is cropped from the full frame: its points lie inside the padded frame box
    box = full_frame_box(540, 720, 64 / 96)
    first = seq.keypoints[:16]
    assert (np.abs(first[..., 0] - box.cx) <= box.width / 2).all()
    assert (np.abs(first[..., 1] - box.cy) <= box.height / 2).all()
    assert np.array_equal(one.keypoints[0], seq.keypoints[0])  # same box, same frame


def test_runtime_modules_never_import_torch():
    code = (
        "import sys, numpy as np\n"
        "import slt_serve.pose, slt_serve.layouts, slt_serve.overlay\n"
        "from slt_serve.pose import decode_heatmaps\n"
        "decode_heatmaps(np.random.rand(1, 133, 16, 12).astype(np.float32))\n"
        "bad = [m for m in ('torch', 'slt_training', 'slt_export') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_model_without_pose_metadata_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["frames"], ["heatmaps"])],
        "g",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(SltError, match="not a pose model"):
        PoseEstimator(path)
    with pytest.raises(SltError, match="no pose model"):
        PoseEstimator(tmp_path / "absent.onnx")
