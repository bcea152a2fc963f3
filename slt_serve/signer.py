"""Is there a signer in a clip? A rule over its COCO-WholeBody keypoints, so that a clip with
nobody signing in it is flagged (`no_signer`) instead of translated into confident nonsense.

A body alone is not evidence: MediaPipe Holistic reports a "body" on 130 of the 132
frames of a cartoon with no person in it. Two things a signer has that such a
detection lacks, each checked on every frame:

- a person: body and face found by two separate detectors *and agreeing*: the
  face's nose tip (face point 30) lies within `max_nose_offset` shoulder widths
  of the body's nose. A false body hallucinated on a cartoon rarely comes with
  a face, and when it does, the two are not on the same head;
- hands: a sign is made with the hands; a clip where neither hand is found on
  most frames carries no sign the model could read.

The clip passes when a person is found on at least `min_person_share` of its
frames and a hand on at least `min_hand_share`. The thresholds are not fitted to
the one negative clip available: half the clip for the person (every real clip
measured has one on all frames), a fifth for the hands (the real signers of
../shared/data/real-clips have a hand on 46-100 % of frames, resting hands out of
view before and after an isolated sign); docs/pose-models.md has the table.

A point counts as found when its score is at least `min_score`: MediaPipe scores a
found hand or face 1 and a missing one 0, and body points by their visibility.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from slt_serve import skeleton
from slt_serve.errors import ApiError, SltError

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 5, 6
FACE_NOSE_TIP = skeleton.FACE.start + 30  # iBUG landmark 31, the tip of the nose


@dataclass(frozen=True)
class SignerRule:
    """Thresholds of the no-signer check (see the module doc for why these values)."""

    min_score: float = 0.5  # a point this confident is found
    max_nose_offset: float = 0.25  # face nose vs body nose, in shoulder widths
    min_person_share: float = 0.5  # of frames with an agreeing body and face
    min_hand_share: float = 0.2  # of frames with at least one hand

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= (10.0 if name == "max_nose_offset" else 1.0):
                raise SltError(f"{name}={value}: out of range")


@dataclass(frozen=True)
class SignerPresence:
    """Shares of a clip's frames (0-1) where each part was found."""

    frames: int
    body: float  # nose and both shoulders
    face: float  # the face's nose tip
    person: float  # body and face found and agreeing (see the module doc)
    left_hand: float  # the signer's left
    right_hand: float
    any_hand: float

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _found(points: np.ndarray, min_score: float) -> np.ndarray:
    """(T, n, 3) → (T,) every one of the n points found."""
    return (points[..., 2] >= min_score).all(axis=-1) & np.isfinite(points[..., :2]).all(
        axis=(-1, -2)
    )


def _hand_found(keypoints: np.ndarray, part: slice, min_score: float) -> np.ndarray:
    """(T,) at least half of a hand's 21 points found."""
    return (keypoints[:, part, 2] >= min_score).mean(axis=1) >= 0.5


def signer_presence(keypoints: np.ndarray, rule: SignerRule = SignerRule()) -> SignerPresence:
    """Where in a clip's (T, 133, 3) keypoints a body, face, person and hands were found."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (skeleton.NUM_KEYPOINTS, 3):
        raise SltError(f"keypoints must be (T, 133, 3), got {kp.shape}")
    if len(kp) == 0:
        return SignerPresence(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    body = _found(kp[:, [NOSE, LEFT_SHOULDER, RIGHT_SHOULDER]], rule.min_score)
    face = _found(kp[:, [FACE_NOSE_TIP]], rule.min_score)
    shoulders = np.linalg.norm(kp[:, LEFT_SHOULDER, :2] - kp[:, RIGHT_SHOULDER, :2], axis=1)
    offset = np.linalg.norm(kp[:, FACE_NOSE_TIP, :2] - kp[:, NOSE, :2], axis=1)
    agree = offset <= rule.max_nose_offset * np.maximum(shoulders, 1.0)
    left = _hand_found(kp, skeleton.LEFT_HAND, rule.min_score)
    right = _hand_found(kp, skeleton.RIGHT_HAND, rule.min_score)
    return SignerPresence(
        len(kp),
        float(body.mean()),
        float(face.mean()),
        float((body & face & agree).mean()),
        float(left.mean()),
        float(right.mean()),
        float((left | right).mean()),
    )


def no_signer_reason(presence: SignerPresence, rule: SignerRule = SignerRule()) -> str | None:
    """Why a clip has no signer by `rule`, in words, or None when it has one."""
    n = presence.frames
    if n == 0:
        return "no frames"
    if presence.person < rule.min_person_share:
        return (
            f"no person: a body with a face on it was found on {round(presence.person * n)} of "
            f"{n} frames (a body alone on {round(presence.body * n)})"
        )
    if presence.any_hand < rule.min_hand_share:
        return f"no hands: a hand was found on {round(presence.any_hand * n)} of {n} frames"
    return None


class NoSigner(ApiError):
    """No signer in the clip: the HTTP API answers 422 `no_signer`, the CLI one line."""

    def __init__(self, reason: str, presence: SignerPresence):
        super().__init__(
            422,
            "no_signer",
            f"no signer in the video ({reason}); send a clip of a signer whose hands and face "
            "are in view",
        )
        self.presence = presence


def check_signer(keypoints: np.ndarray, rule: SignerRule = SignerRule()) -> SignerPresence:
    """The clip's `SignerPresence`; raises `NoSigner` when `rule` finds no signer."""
    presence = signer_presence(keypoints, rule)
    reason = no_signer_reason(presence, rule)
    if reason is not None:
        raise NoSigner(reason, presence)
    return presence


class SignerCheckedPose:
    """A pose model whose `estimate` raises `NoSigner` once a clip without a signer ends.

    What the runtime runs for a bundle whose pose model is MediaPipe: the keypoints
    stream on to the recognizer frame by frame as before, and the clip is judged on
    all of them when its frames run out, before any text is decoded from it.
    """

    def __init__(self, pose, rule: SignerRule = SignerRule()) -> None:
        self.pose, self.rule = pose, rule
        self.layout = pose.layout

    def estimate(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        kept = []
        for points in self.pose.estimate(frames):
            kept.append(points)
            yield points
        empty = np.zeros((0, skeleton.NUM_KEYPOINTS, 3), np.float32)
        check_signer(np.stack(kept) if kept else empty, self.rule)
