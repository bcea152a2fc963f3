"""The COCO-WholeBody 133-point layout: names, index ranges and the bones that join them.

Keypoint arrays everywhere in the project (synthetic ground truth, HRNet output,
`.npz` caches) use this order. "left"/"right" are the person's own sides, so for a
signer facing the camera the left hand is on the image's right.
"""

from __future__ import annotations

BODY_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
FOOT_NAMES = (
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
# 68 face points in the iBUG 300-W order, listed from the image's left.
FACE_PARTS = (
    ("jaw", 17),
    ("right_eyebrow", 5),
    ("left_eyebrow", 5),
    ("nose_bridge", 4),
    ("nose_lower", 5),
    ("right_eye", 6),
    ("left_eye", 6),
    ("outer_lip", 12),
    ("inner_lip", 8),
)
FACE_NAMES = tuple(f"face_{part}_{i}" for part, n in FACE_PARTS for i in range(n))
# 21 hand points in the OpenPose/COCO-WholeBody order: wrist, then 4 joints per finger
# from the knuckle (or thumb base) to the tip.
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND_POINT_NAMES = ("wrist",) + tuple(f"{f}{j}" for f in FINGERS for j in range(1, 5))

BODY = slice(0, 17)
FEET = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)
NUM_KEYPOINTS = 133

NAMES = (
    BODY_NAMES
    + FOOT_NAMES
    + FACE_NAMES
    + tuple(f"left_hand_{n}" for n in HAND_POINT_NAMES)
    + tuple(f"right_hand_{n}" for n in HAND_POINT_NAMES)
)
INDEX = {name: i for i, name in enumerate(NAMES)}

# Index ranges of the face parts within the 133 points.
_face_start = FACE.start
FACE_PART_SLICES: dict[str, slice] = {}
for _part, _n in FACE_PARTS:
    FACE_PART_SLICES[_part] = slice(_face_start, _face_start + _n)
    _face_start += _n

# Bones of one hand as (parent, child) indices within its 21 points.
HAND_BONES = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)
FINGERTIPS = tuple(4 + 4 * f for f in range(5))  # within a hand's 21 points
# Bones of the COCO body (indices into the 133 points).
BODY_BONES = (
    (5, 6),
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
)

assert len(NAMES) == NUM_KEYPOINTS == RIGHT_HAND.stop
assert len(FACE_NAMES) == FACE.stop - FACE.start == 68
assert len(HAND_POINT_NAMES) == 21


def _face_bones() -> tuple[tuple[int, int], ...]:
    """Chains along each face part (indices within the 68); eyes and lips are closed loops."""
    closed = {"right_eye", "left_eye", "outer_lip", "inner_lip"}
    bones, start = [], 0
    for part, n in FACE_PARTS:
        bones += [(start + i, start + i + 1) for i in range(n - 1)]
        if part in closed:
            bones.append((start + n - 1, start))
        start += n
    return tuple(bones)


# Bones of the face (within its 68 points) and of the feet (indices into the 133 points:
# each ankle to its big toe, small toe and heel).
FACE_BONES = _face_bones()
FOOT_BONES = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
# Every bone of the 133 points, as (parent, child) indices: body, feet, face, both hands.
WHOLEBODY_BONES = (
    BODY_BONES
    + FOOT_BONES
    + tuple((FACE.start + a, FACE.start + b) for a, b in FACE_BONES)
    + tuple(
        (hand.start + a, hand.start + b) for hand in (LEFT_HAND, RIGHT_HAND) for a, b in HAND_BONES
    )
    + ((LEFT_HAND.start, 9), (RIGHT_HAND.start, 10))  # hand wrist to body wrist
)
