"""Keypoint layouts other tools write, mapped onto COCO-WholeBody-133, and the subsets
the keypoint stream reads.

Everything downstream (the `.npz` cache, heatmaps, the overlay) uses the 133
COCO-WholeBody points of `slt_serve.skeleton`. Other layouts are mapped onto it
point by point, by the names pose-format gives them, so a reduced file (only
some face-mesh vertices, say) maps what it has:

- `mediapipe_holistic`: pose-format's MediaPipe Holistic components,
  POSE_LANDMARKS (33) + FACE_LANDMARKS (468, or 478 with irises) + both hands
  (21 each) [+ POSE_WORLD_LANDMARKS (33), ignored]: 543, 553, 576 or 586 points,
  or any subset by name. Body and hands map one to one (MediaPipe's hand order
  is COCO-WholeBody's); each of the 68 face points is the face-mesh vertex at
  the same landmark (after PeizhiYan/Mediapipe_2_Dlib_Landmarks, one vertex each);
  the heel maps to HEEL, the big toe to FOOT_INDEX; the small toes have no counterpart.
- `openpose_137`: BODY_25 + face 70 + hands 21 + 21 as pose-format names them;
  the face's first 68 points and the hands are COCO-WholeBody's own order.
- `coco_wholebody_133`: ours, as `write_pose` stores it (BODY, FOOT, FACE,
  LEFT_HAND, RIGHT_HAND components).

A point a layout does not have is masked (x = y = score = 0), never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from slt_serve import skeleton
from slt_serve.errors import SltError

Source = tuple[str, str]  # (component, point name) in a pose-format header


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: how to recognise it and where each of the 133 points comes from."""

    name: str
    components: frozenset[str]  # component names that identify it (all present)
    sources: tuple[Source | None, ...]  # per COCO-WholeBody point; None: the layout lacks it


# --- COCO-WholeBody as we write it to .pose ----------------------------------------------------

WHOLEBODY_COMPONENTS: tuple[tuple[str, slice], ...] = (
    ("BODY", skeleton.BODY),
    ("FOOT", skeleton.FEET),
    ("FACE", skeleton.FACE),
    ("LEFT_HAND", skeleton.LEFT_HAND),
    ("RIGHT_HAND", skeleton.RIGHT_HAND),
)
_COMPONENT_POINT_NAMES = {
    "BODY": skeleton.BODY_NAMES,
    "FOOT": skeleton.FOOT_NAMES,
    "FACE": skeleton.FACE_NAMES,
    "LEFT_HAND": skeleton.HAND_POINT_NAMES,
    "RIGHT_HAND": skeleton.HAND_POINT_NAMES,
}


def wholebody_point_names(component: str) -> tuple[str, ...]:
    return _COMPONENT_POINT_NAMES[component]


COCO_WHOLEBODY = Layout(
    "coco_wholebody_133",
    frozenset(c for c, _ in WHOLEBODY_COMPONENTS),
    tuple(
        (component, name)
        for component, _ in WHOLEBODY_COMPONENTS
        for name in _COMPONENT_POINT_NAMES[component]
    ),
)


# --- MediaPipe Holistic --------------------------------------------------------------------------

_MP_BODY = (
    "NOSE LEFT_EYE RIGHT_EYE LEFT_EAR RIGHT_EAR LEFT_SHOULDER RIGHT_SHOULDER LEFT_ELBOW "
    "RIGHT_ELBOW LEFT_WRIST RIGHT_WRIST LEFT_HIP RIGHT_HIP LEFT_KNEE RIGHT_KNEE LEFT_ANKLE "
    "RIGHT_ANKLE"
).split()
_MP_FEET = ("LEFT_FOOT_INDEX", None, "LEFT_HEEL", "RIGHT_FOOT_INDEX", None, "RIGHT_HEEL")
_MP_HAND = (
    "WRIST THUMB_CMC THUMB_MCP THUMB_IP THUMB_TIP INDEX_FINGER_MCP INDEX_FINGER_PIP "
    "INDEX_FINGER_DIP INDEX_FINGER_TIP MIDDLE_FINGER_MCP MIDDLE_FINGER_PIP MIDDLE_FINGER_DIP "
    "MIDDLE_FINGER_TIP RING_FINGER_MCP RING_FINGER_PIP RING_FINGER_DIP RING_FINGER_TIP "
    "PINKY_MCP PINKY_PIP PINKY_DIP PINKY_TIP"
).split()
# The face-mesh vertex at each iBUG 300-W landmark (jaw from the image's left, brows,
# nose, eyes, outer then inner lips), in COCO-WholeBody's face order.
MEDIAPIPE_FACE_68 = (
    (127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356)
    + (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
    + (168, 197, 5, 4, 75, 97, 2, 326, 305)
    + (33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380)
    + (61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91)
    + (78, 82, 13, 312, 308, 317, 14, 87)
)


def _mediapipe_sources() -> tuple[Source | None, ...]:
    body = [("POSE_LANDMARKS", n) for n in _MP_BODY]
    feet = [None if n is None else ("POSE_LANDMARKS", n) for n in _MP_FEET]
    face = [("FACE_LANDMARKS", str(i)) for i in MEDIAPIPE_FACE_68]
    hands = [(f"{side}_HAND_LANDMARKS", n) for side in ("LEFT", "RIGHT") for n in _MP_HAND]
    return tuple(body + feet + face + hands)


MEDIAPIPE_HOLISTIC = Layout(
    "mediapipe_holistic",
    frozenset({"POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"}),
    _mediapipe_sources(),
)


# --- OpenPose BODY_25 + face + hands (137) -------------------------------------------------------

# COCO-WholeBody body and feet → BODY_25 names, in COCO order.
_OP_BODY = (
    "Nose LEye REye LEar REar LShoulder RShoulder LElbow RElbow LWrist RWrist LHip RHip "
    "LKnee RKnee LAnkle RAnkle LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel"
).split()
_OP_FACE = (
    [f"FB_{i}" for i in range(17)]
    + [f"FEB_{i}" for i in range(17, 27)]
    + [f"FN_{i}" for i in range(27, 36)]
    + [f"FE_{i}" for i in range(36, 48)]
    + [f"FLO_{i}" for i in range(48, 60)]
    + [f"FLI_{i}" for i in range(60, 68)]
)
_OP_HAND = (
    "BASE T_STT T_BCMC T_MCP T_IP I_CMC I_MCP I_PIP I_DIP M_CMC M_MCP M_PIP M_DIP R_CMC R_MCP "
    "R_PIP R_DIP P_CMC P_MCP P_PIP P_DIP"
).split()

OPENPOSE_137 = Layout(
    "openpose_137",
    frozenset(
        {
            "pose_keypoints_2d",
            "face_keypoints_2d",
            "hand_left_keypoints_2d",
            "hand_right_keypoints_2d",
        }
    ),
    tuple(
        [("pose_keypoints_2d", n) for n in _OP_BODY]
        + [("face_keypoints_2d", n) for n in _OP_FACE]
        + [(f"hand_{side}_keypoints_2d", n) for side in ("left", "right") for n in _OP_HAND]
    ),
)

LAYOUTS = {layout.name: layout for layout in (COCO_WHOLEBODY, MEDIAPIPE_HOLISTIC, OPENPOSE_137)}
for _layout in LAYOUTS.values():
    assert len(_layout.sources) == skeleton.NUM_KEYPOINTS, _layout.name


def detect_layout(components: Sequence[str]) -> Layout:
    """The layout whose components a file has (pose-format component names)."""
    present = set(components)
    for layout in LAYOUTS.values():
        if layout.components <= present:
            return layout
    raise SltError(
        f"unknown keypoint layout with components {sorted(present)}; known: "
        + "; ".join(f"{n} ({', '.join(sorted(lay.components))})" for n, lay in LAYOUTS.items())
    )


def to_wholebody(points: np.ndarray, names: Sequence[Source], layout: Layout) -> np.ndarray:
    """(T, N, 3) x, y, score in a file's point order `names` → (T, 133, 3) float32 in
    COCO-WholeBody order; points the file lacks are all zero (masked)."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[1:] != (len(names), 3):
        raise SltError(f"points must be (T, {len(names)}, 3), got {points.shape}")
    index = {source: i for i, source in enumerate(names)}
    picked = [index.get(s) if s is not None else None for s in layout.sources]
    if all(i is None for i in picked):
        raise SltError(f"no point of the {layout.name} layout found by name in this file")
    out = np.zeros((points.shape[0], skeleton.NUM_KEYPOINTS, 3), np.float32)
    have = [k for k, i in enumerate(picked) if i is not None]
    out[:, have] = points[:, [picked[k] for k in have]]
    bad = ~np.isfinite(out).all(axis=2)
    out[bad] = 0.0
    return out


# --- subsets the keypoint stream reads (TwoStream-SLT's groups) ---------------------------------


def _groups() -> dict[str, tuple[int, ...]]:
    """TwoStream-SLT's `Hrnet_Part2index`, over the 133 points, with its decimated variants."""
    groups = {
        "pose": tuple(range(11)),  # head and upper body
        "hand": tuple(range(skeleton.LEFT_HAND.start, skeleton.RIGHT_HAND.stop)),
        "mouth": tuple(range(71, 91)),  # outer and inner lips
        "face_others": tuple(range(23, 71)),  # jaw, brows, nose, eyes
    }
    for name in ("mouth", "face_others", "hand"):
        groups[f"{name}_half"] = groups[name][::2]
        groups[f"{name}_1_3"] = groups[name][::3]
    return groups


GROUPS = _groups()
TWOSTREAM_79 = ("pose", "mouth_half", "hand", "face_others_1_3")  # TwoStream-SLT's PHOENIX set
TWOSTREAM_63 = ("pose", "mouth_half", "hand")
SUBSETS: dict[str, tuple[int, ...]] = {
    "body": tuple(range(skeleton.BODY.start, skeleton.BODY.stop)),
    "hands": GROUPS["hand"],
    "mouth": GROUPS["mouth"],
    "face": tuple(range(skeleton.FACE.start, skeleton.FACE.stop)),
}


def group_indices(groups: Sequence[str]) -> tuple[int, ...]:
    """Indices of TwoStream-SLT groups, concatenated in sorted group order as the reference does."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SltError(f"unknown keypoint group(s) {unknown}; known: {', '.join(sorted(GROUPS))}")
    return tuple(i for g in sorted(groups) for i in GROUPS[g])


SUBSETS["twostream_79"] = group_indices(TWOSTREAM_79)
SUBSETS["twostream_63"] = group_indices(TWOSTREAM_63)


def select(keypoints: np.ndarray, subset: str | Sequence[int]) -> np.ndarray:
    """(..., 133, 3) → (..., n, 3): a named subset (`SUBSETS`) or explicit indices."""
    if isinstance(subset, str):
        if subset not in SUBSETS:
            raise SltError(f"unknown keypoint subset {subset!r}; known: {', '.join(SUBSETS)}")
        subset = SUBSETS[subset]
    if keypoints.shape[-2] != skeleton.NUM_KEYPOINTS:
        raise SltError(f"expected COCO-WholeBody keypoints (..., 133, 3), got {keypoints.shape}")
    return keypoints[..., list(subset), :]
