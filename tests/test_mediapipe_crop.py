"""HRNet's top-down crop fed MediaPipe's boxes on a real clip: the crop stays on the person
MediaPipe finds, and the keypoints HRNet returns (random weights) come from inside it.

`slt_serve.pose.PoseEstimator` normally boxes a frame from the keypoints it found on an
earlier one; with MediaPipe Holistic as a person detector, each frame is boxed around
MediaPipe's points of that same frame (`box_from_keypoints`) and cropped by
`estimate_frames`. benchmarks/bench_pose_crop.py measures how often each way of boxing
cuts the signer off on all the real clips. Skipped without MediaPipe (the `pose` extra
and the wheel it names, docs/pose-models.md) or torch (to build the random HRNet)."""

from __future__ import annotations

import numpy as np
import pytest
from optional_extras import needs_mediapipe
from shared_data import REAL_CLIPS

from slt_serve import skeleton
from slt_serve.pose import (
    PoseEstimator,
    PoseOptions,
    box_from_keypoints,
    crop_transform,
    full_frame_box,
)

ASL_HD = REAL_CLIPS / "asl_9frames_1280x720.mp4"  # 9 frames, a signer in the middle of 1280×720

pytestmark = [
    needs_mediapipe,
    pytest.mark.skipif(not ASL_HD.is_file(), reason=f"{ASL_HD} not present"),
]


def inside(points: np.ndarray, box) -> np.ndarray:
    return (np.abs(points[..., 0] - box.cx) <= box.width / 2) & (
        np.abs(points[..., 1] - box.cy) <= box.height / 2
    )


def test_random_hrnet_cropped_by_mediapipe_boxes_stays_on_the_signer(tmp_path):
    pytest.importorskip("torch")
    from tiny_bundles import pose_model

    from slt_serve.pose_mediapipe import MediaPipePose
    from slt_serve.video import read_frames

    frames = read_frames(ASL_HD)
    height, width = frames[0].shape[:2]
    mp = np.stack(list(MediaPipePose().estimate(frames)))
    estimator = PoseEstimator(pose_model(tmp_path / "pose.onnx"), PoseOptions(threads=1))
    aspect, size = estimator.spec.aspect, estimator.spec.input_size
    boxes = [box_from_keypoints(k, aspect, PoseOptions(), (width, height)) for k in mp]
    assert all(b is not None for b in boxes)  # MediaPipe finds the signer on every frame

    full = full_frame_box(width, height, aspect)
    hands = np.r_[skeleton.LEFT_HAND, skeleton.RIGHT_HAND]
    for k, box in zip(mp, boxes):
        found = k[:, 2] >= 0.5
        assert found[0] and found[hands].sum() >= 21  # the nose and at least one hand
        on_frame = found & (k[:, 0] >= 0) & (k[:, 0] < width) & (k[:, 1] >= 0) & (k[:, 1] < height)
        assert inside(k[on_frame, :2], box).all()  # the whole signer is in the crop...
        assert box.width < 0.8 * full.width  # ...and the crop zooms in on them
        # the nose lands inside the crop image the network sees
        nose = crop_transform(box, size) @ np.array([*k[0, :2], 1.0])
        assert 0 <= nose[0] < size[1] and 0 <= nose[1] < size[0]

    kp = estimator.estimate_frames(frames, boxes)
    assert kp.shape == (len(frames), 133, 3) and np.isfinite(kp).all()
    for points, box in zip(kp, boxes):  # random weights, yet every point comes from the crop
        assert inside(points[:, :2], box).all()
    # cropping by the full frame instead puts the points somewhere else: the boxes mattered
    whole = estimator.estimate_frames(frames, [full] * len(frames))
    assert not all(inside(p[:, :2], b).all() for p, b in zip(whole, boxes))
