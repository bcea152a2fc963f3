"""Keypoint layouts and files: every real `.pose` file maps onto COCO-WholeBody-133 with the
right sides and parts, round-trips through `.pose` and `.npz`; the TwoStream subsets; the
synthetic corpus's keypoints through the same code; the overlay."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import POSES

from slt_serve import skeleton
from slt_serve.errors import SltError
from slt_serve.layouts import (
    GROUPS,
    LAYOUTS,
    MEDIAPIPE_HOLISTIC,
    SUBSETS,
    detect_layout,
    group_indices,
    select,
    to_wholebody,
)
from slt_serve.overlay import draw_keypoints, write_overlay
from slt_serve.pose import PoseSequence
from slt_training.data.pose_files import read_npz, read_pose, write_npz, write_pose

POSE_FILES = sorted(POSES.glob("*.pose")) if POSES.is_dir() else []
EXPECTED_LAYOUT = {"openpose137_93f.pose": "openpose_137"}  # the rest: MediaPipe Holistic


@pytest.mark.skipif(not POSE_FILES, reason=f"{POSES} not present")
@pytest.mark.parametrize("path", POSE_FILES, ids=lambda p: p.name)
def test_real_pose_file_maps_onto_wholebody_and_round_trips(path, tmp_path):
    seq, layout = read_pose(path)
    kp = seq.keypoints
    assert layout.name == EXPECTED_LAYOUT.get(path.name, "mediapipe_holistic")
    assert kp.shape[1:] == (133, 3) and kp.dtype == np.float32 and len(kp) >= 5
    seen = kp[..., 2] > 0
    assert (kp[~seen] == 0).all()  # masked or absent: all zero, never a stale position
    assert seen[:, skeleton.FACE].mean() > 0.8  # every file has a face
    # the signer's left hand lies at the body's left wrist, not the right one
    for hand, wrist, other in ((skeleton.LEFT_HAND, 9, 10), (skeleton.RIGHT_HAND, 10, 9)):
        both = seen[:, hand.start] & seen[:, wrist] & seen[:, other]
        if both.sum() >= 3:
            near = np.linalg.norm(kp[both, hand.start, :2] - kp[both, wrist, :2], axis=1)
            far = np.linalg.norm(kp[both, hand.start, :2] - kp[both, other, :2], axis=1)
            assert np.median(near) < 0.5 * np.median(far)
    # jaw point 0 (the signer's right) lies left of jaw point 16 in the image
    jaw = seen[:, 23] & seen[:, 39]
    assert (kp[jaw, 23, 0] < kp[jaw, 39, 0]).all()
    out = tmp_path / "roundtrip.pose"
    write_pose(out, seq)
    again, again_layout = read_pose(out)
    assert again_layout.name == "coco_wholebody_133"
    assert np.array_equal(again.keypoints, kp)
    assert (again.fps, again.width, again.height) == (seq.fps, seq.width, seq.height)
    write_npz(tmp_path / "clip.npz", seq)
    assert np.array_equal(read_npz(tmp_path / "clip.npz").keypoints, kp)


def test_missing_points_are_masked_not_invented():
    # a reduced MediaPipe file: 2 pose points and one face-mesh vertex, by name
    names = [("POSE_LANDMARKS", "LEFT_WRIST"), ("POSE_LANDMARKS", "NOSE"), ("FACE_LANDMARKS", "0")]
    points = np.array([[[10, 20, 0.9], [30, 40, 0.8], [50, 60, 1.0]]], np.float32)
    kp = to_wholebody(points, names, MEDIAPIPE_HOLISTIC)
    assert kp[0, 9].tolist() == [10, 20, pytest.approx(0.9)]  # left_wrist
    assert kp[0, 0].tolist() == [30, 40, pytest.approx(0.8)]  # nose
    lip = 23 + 48 + 3  # outer lip point 3, the top centre: face-mesh vertex 0
    assert kp[0, lip].tolist() == [50, 60, 1]
    assert (np.count_nonzero(kp[0, :, 2]) == 3) and kp[0, 18].tolist() == [0, 0, 0]
    with pytest.raises(SltError, match="no point of the mediapipe_holistic"):
        to_wholebody(points, [("FACE_LANDMARKS", "999")] * 3, MEDIAPIPE_HOLISTIC)
    with pytest.raises(SltError, match="unknown keypoint layout"):
        detect_layout(["BODY_135"])


def test_layouts_cover_133_points_with_distinct_sources():
    for layout in LAYOUTS.values():
        sources = [s for s in layout.sources if s is not None]
        assert len(layout.sources) == 133 and len(set(sources)) == len(sources), layout.name
    assert LAYOUTS["openpose_137"].sources[9] == ("pose_keypoints_2d", "LWrist")


def test_mediapipe_covers_all_68_face_points_and_lacks_only_the_small_toes():
    sources = MEDIAPIPE_HOLISTIC.sources
    face = sources[skeleton.FACE]
    assert len(face) == 68 and all(s is not None and s[0] == "FACE_LANDMARKS" for s in face)
    missing = [i for i, s in enumerate(sources) if s is None]
    assert missing == [skeleton.FEET.start + 1, skeleton.FEET.start + 4]  # the small toes


def test_twostream_subsets_are_the_references_groups():
    pose = list(range(11))
    mouth_half = list(range(71, 91, 2))
    hand = list(range(91, 133))
    face_others_1_3 = list(range(23, 71, 3))
    # the reference concatenates `for k in sorted(use_keypoints)`
    assert list(SUBSETS["twostream_79"]) == face_others_1_3 + hand + mouth_half + pose
    assert len(SUBSETS["twostream_79"]) == 79 and len(SUBSETS["twostream_63"]) == 63
    assert group_indices(["pose"]) == tuple(pose) and len(GROUPS["face_others"]) == 48
    kp = np.arange(2 * 133 * 3, dtype=np.float32).reshape(2, 133, 3)
    assert select(kp, "hands").shape == (2, 42, 3) and select(kp, "mouth").shape == (2, 20, 3)
    assert np.array_equal(select(kp, "body")[:, :, 0], kp[:, :17, 0])
    with pytest.raises(SltError, match="unknown keypoint subset"):
        select(kp, "feet")


@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory):
    from slt_training.data.synth.corpus import generate, options_for

    root = tmp_path_factory.mktemp("synth") / "corpus"
    generate(root, options_for("cpu", clips=3, size=64, signers=1), workers=1)
    return root, sorted((root / "keypoints").glob("*.npz"))[0]


def test_synthetic_keypoints_flow_through_the_same_layout_code(synth_clip, tmp_path):
    root, npz = synth_clip
    seq = read_npz(npz)
    write_pose(tmp_path / "synth.pose", seq)
    back, layout = read_pose(tmp_path / "synth.pose")
    assert layout.name == "coco_wholebody_133"
    visible = seq.keypoints[..., 2] > 0
    assert np.array_equal(back.keypoints[visible], seq.keypoints[visible])
    assert select(back.keypoints, "twostream_79").shape == (len(seq.keypoints), 79, 3)


def test_overlay_draws_bones_and_writes_mp4_and_png(synth_clip, tmp_path):
    import av

    from slt_serve.video import probe, read_frames

    root, npz = synth_clip
    seq = read_npz(npz)
    video = root / "videos" / (npz.stem + ".mp4")
    frames = read_frames(video)
    black = np.zeros_like(frames[0])
    drawn = draw_keypoints(black, seq.keypoints[0])
    lit = drawn.max(axis=2) > 0
    assert lit.any() and black.max() == 0  # drawn on a copy
    wrist = seq.keypoints[0, 9, :2].round().astype(int)
    assert lit[wrist[1] - 1 : wrist[1] + 2, wrist[0] - 1 : wrist[0] + 2].any()
    n = write_overlay(tmp_path / "o.mp4", frames, seq.keypoints, seq.fps)
    assert n == len(frames) == probe(tmp_path / "o.mp4").num_frames
    big = write_overlay(
        tmp_path / "o.png",
        (np.zeros((128, 128, 3), np.uint8) for _ in range(2)),
        seq.keypoints,
        seq.fps,
        keypoint_size=(seq.width, seq.height),
    )
    assert big == 1 and (tmp_path / "o.png").stat().st_size > 0
    with av.open(str(tmp_path / "o.png")) as f:
        assert next(f.decode(video=0)).width == 128
    with pytest.raises(SltError, match=r"\.mp4"):
        write_overlay(tmp_path / "o.gif", frames, seq.keypoints, seq.fps)
    with pytest.raises(SltError, match="more frames than keypoints"):
        write_overlay(tmp_path / "x.mp4", frames, seq.keypoints[:1], seq.fps)


def test_npz_and_pose_files_refuse_bad_shapes(tmp_path):
    bad = PoseSequence(np.zeros((3, 17, 3), np.float32), 25.0, 64, 64)
    with pytest.raises(SltError, match=r"\(T, 133, 3\)"):
        write_npz(tmp_path / "bad.npz", bad)
    with pytest.raises(SltError, match=r"\(T, 133, 3\)"):
        write_pose(tmp_path / "bad.pose", bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SltError, match="not a keypoints .npz"):
        read_npz(tmp_path / "junk.npz")
    (tmp_path / "junk.pose").write_bytes(b"\x00\x01")
    with pytest.raises(SltError, match="not a readable .pose"):
        read_pose(tmp_path / "junk.pose")
