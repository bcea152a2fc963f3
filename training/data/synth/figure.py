"""From poses to the 133 COCO-WholeBody keypoints of a signer, in pixels.

The renderer draws from these points, so the ground truth is exactly what is seen.
Body units (see `motion`) become pixels through a `Placement` (neck position and
pixels per unit) that differs per signer and, slightly, per clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slt_serve import skeleton
from slt_training.data.synth import motion
from slt_training.data.synth.signer import Signer

SHOULDER = (0.5, 0.05)  # (out, down) of each shoulder from the neck
HIP = (0.38, 1.55)
KNEE_DOWN, ANKLE_DOWN = 2.6, 3.6
UPPER_ARM, FOREARM = 0.62, 0.6
CHIN_DOWN = -0.24  # the chin sits this far above the neck (negative: above)
UNIT_OF_WIDTH = 0.33  # one body unit is this fraction of the frame width at scale 1
NECK_AT = (0.5, 0.42)  # neck position as fractions of the frame

# Hand geometry in hand units (× signer.hand × HAND_UNIT body units), in the hand's
# own frame: a = along the fingers, b = towards the thumb side.
HAND_UNIT = 1.0
KNUCKLES = np.array([[0.2, 0.085], [0.21, 0.03], [0.2, -0.025], [0.18, -0.075]])
PHALANGES = np.array(
    [[0.1, 0.06, 0.05], [0.11, 0.07, 0.055], [0.1, 0.065, 0.05], [0.08, 0.05, 0.04]]
)
SPREAD = np.radians([10.0, 3.0, -4.0, -11.0])  # per finger at full spread
FLEX = np.radians([80.0, 100.0, 70.0])  # per joint at full curl (out of the image plane)
THUMB_BASE = np.array([0.05, 0.055])
THUMB_BONES = np.array([0.075, 0.055, 0.045])
THUMB_BEND = np.radians([30.0, 50.0, 40.0])  # per joint at full curl, across the palm
NOT_DRAWN = (13, 14, 15, 16) + tuple(range(skeleton.FEET.start, skeleton.FEET.stop))


@dataclass(frozen=True)
class Placement:
    """Where the signer stands in the frame: neck position and pixels per body unit."""

    neck: tuple[float, float]  # pixels
    unit: float  # pixels per body unit
    width: int
    height: int

    @classmethod
    def for_signer(cls, signer: Signer, width: int, height: int, jitter=(0.0, 0.0, 0.0)):
        """`jitter` = (dx, dy, scale): small per-clip changes of position and size."""
        dx, dy, ds = jitter
        neck = (
            width * (NECK_AT[0] + signer.offset[0] + dx),
            height * (NECK_AT[1] + signer.offset[1] + dy),
        )
        return cls(neck, width * UNIT_OF_WIDTH * signer.scale * (1 + ds), width, height)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(self.neck) + self.unit * xy


def head_center(signer: Signer) -> tuple[float, float]:
    return 0.0, CHIN_DOWN - 0.95 * signer.head[1]


def _arm(shoulder: np.ndarray, wrist: np.ndarray, out_sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-link inverse kinematics; the elbow goes down and out. Returns (elbow, wrist)."""
    d = wrist - shoulder
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    reach = np.clip(dist, abs(UPPER_ARM - FOREARM) + 1e-3, 0.999 * (UPPER_ARM + FOREARM))
    unit = d / np.maximum(dist, 1e-9)
    wrist = shoulder + unit * reach  # out-of-reach targets are pulled in
    cos_a = (UPPER_ARM**2 + reach**2 - FOREARM**2) / (2 * UPPER_ARM * reach)
    a = np.arccos(np.clip(cos_a, -1, 1))
    candidates = []
    for s in (1.0, -1.0):
        c, sn = np.cos(s * a), np.sin(s * a)
        rot = np.concatenate(
            [c * unit[:, :1] - sn * unit[:, 1:], sn * unit[:, :1] + c * unit[:, 1:]], 1
        )
        candidates.append(shoulder + UPPER_ARM * rot)
    score = [e[:, 1] + 0.5 * out_sign * e[:, 0] for e in candidates]
    elbow = np.where((score[0] >= score[1])[:, None], candidates[0], candidates[1])
    return elbow, wrist


def hand_points(
    wrist: np.ndarray, angle: np.ndarray, shape: np.ndarray, size: float, right: bool
) -> np.ndarray:
    """21 hand points (T, 21, 2) in body units from wrist, finger direction and shape."""
    t = len(wrist)
    local = np.zeros((t, 21, 2))  # (a, b) in hand units
    curls, abduct, thumb_curl, spread = shape[:, :4], shape[:, 4], shape[:, 5], shape[:, 6]
    for f in range(4):
        phi = spread * SPREAD[f]
        v = np.stack([np.cos(phi), np.sin(phi)], -1)
        p = np.tile(KNUCKLES[f], (t, 1))
        base = 5 + 4 * f
        local[:, base] = p
        flex = np.cumsum(curls[:, f : f + 1] * FLEX, axis=1)  # (T, 3)
        for j in range(3):
            p = p + v * (PHALANGES[f, j] * np.cos(flex[:, j]))[:, None]
            local[:, base + j + 1] = p
    psi = np.radians(25.0 + 45.0 * abduct)
    p = np.tile(THUMB_BASE, (t, 1))
    local[:, 1] = p
    for j in range(3):
        psi = psi - thumb_curl * THUMB_BEND[j]
        p = p + THUMB_BONES[j] * np.stack([np.cos(psi), np.sin(psi)], -1)
        local[:, 2 + j] = p
    u = np.stack([np.cos(angle), np.sin(angle)], -1)
    n = np.stack([-u[:, 1], u[:, 0]], -1) if right else np.stack([u[:, 1], -u[:, 0]], -1)
    scale = size * HAND_UNIT
    return wrist[:, None] + scale * (local[..., :1] * u[:, None] + local[..., 1:] * n[:, None])


def face_points(signer: Signer, mouth: np.ndarray, brow: np.ndarray) -> np.ndarray:
    """68 iBUG face points (T, 68, 2) in body units; mouth and brows move."""
    t = len(mouth)
    hx, hy = head_center(signer)
    rx, ry = signer.head
    pts = np.zeros((t, 68, 2))
    phi = np.linspace(np.pi + 0.12, -0.12, 17)
    pts[:, 0:17] = np.stack([hx + rx * np.cos(phi), hy + ry * np.sin(phi)], -1)
    for side, start in ((-1, 17), (1, 22)):  # image-left brow first
        xs = hx + side * rx * np.linspace(0.75, 0.15, 5)[::-side]
        arch = 0.06 * ry * np.sin(np.linspace(0, np.pi, 5))
        ys = hy - 0.36 * ry - arch[None] - (0.1 * ry * brow)[:, None]
        pts[:, start : start + 5, 0] = xs
        pts[:, start : start + 5, 1] = ys
    pts[:, 27:31] = np.stack([np.full(4, hx), hy + ry * np.linspace(-0.25, 0.12, 4)], -1)
    pts[:, 31:36] = np.stack(
        [
            hx + rx * np.linspace(-0.2, 0.2, 5),
            hy + ry * (0.2 + 0.04 * np.cos(np.linspace(-1.6, 1.6, 5))),
        ],
        -1,
    )
    ring = np.linspace(np.pi, 3 * np.pi, 7)[:-1]  # left corner, upper lid, right corner, lower lid
    for cx, start in ((hx - 0.42 * rx, 36), (hx + 0.42 * rx, 42)):
        pts[:, start : start + 6] = np.stack(
            [cx + 0.17 * rx * np.cos(ring), hy - 0.12 * ry + 0.07 * ry * np.sin(ring)], -1
        )
    openness, width = mouth[:, 0], mouth[:, 1]
    my, half = hy + 0.55 * ry, 0.32 * rx * width
    for start, n, h_closed, h_open, w in ((48, 12, 0.07, 0.22, 1.0), (60, 8, 0.0, 0.17, 0.8)):
        a = np.linspace(np.pi, 3 * np.pi, n + 1)[:-1]
        h = ry * (h_closed + h_open * openness)
        pts[:, start : start + n, 0] = hx + (w * half)[:, None] * np.cos(a)[None]
        pts[:, start : start + n, 1] = my + h[:, None] * np.sin(a)[None]
    return pts


def keypoints(poses: np.ndarray, signer: Signer, place: Placement) -> np.ndarray:
    """(T, 133, 3) float32: x, y in pixels and a score (1 drawn and inside the frame)."""
    t = len(poses)
    body = np.zeros((t, skeleton.NUM_KEYPOINTS, 2))
    hx, hy = head_center(signer)
    rx, ry = signer.head
    for idx, (out, down) in (
        (5, SHOULDER),
        (6, (-SHOULDER[0], SHOULDER[1])),
        (11, HIP),
        (12, (-HIP[0], HIP[1])),
        (13, (HIP[0], KNEE_DOWN)),
        (14, (-HIP[0], KNEE_DOWN)),
        (15, (HIP[0], ANKLE_DOWN)),
        (16, (-HIP[0], ANKLE_DOWN)),
    ):
        body[:, idx] = (out, down)
    for k, (dx, dy) in enumerate([(0.3, 0.1), (0.1, 0.12), (0.0, -0.05)]):  # toes and heel
        body[:, 17 + k] = (HIP[0] + dx, ANKLE_DOWN + dy)
        body[:, 20 + k] = (-HIP[0] - dx, ANKLE_DOWN + dy)
    body[:, 3], body[:, 4] = (hx + rx, hy), (hx - rx, hy)
    body[:, skeleton.FACE] = face_points(signer, poses[:, motion.MOUTH], poses[:, motion.BROW])
    body[:, 0] = body[:, 23 + 30]  # nose tip
    body[:, 1] = body[:, 23 + 42 : 23 + 48].mean(1)  # left eye: the image-right one
    body[:, 2] = body[:, 23 + 36 : 23 + 42].mean(1)
    hand = 1.05 * signer.hand
    for right, wrist_s, angle_i, shape_s, (sh, el, wr), hand_s in (
        (
            True,
            motion.RIGHT_WRIST,
            motion.RIGHT_ANGLE,
            motion.RIGHT_SHAPE,
            (6, 8, 10),
            skeleton.RIGHT_HAND,
        ),
        (
            False,
            motion.LEFT_WRIST,
            motion.LEFT_ANGLE,
            motion.LEFT_SHAPE,
            (5, 7, 9),
            skeleton.LEFT_HAND,
        ),
    ):
        elbow, wrist = _arm(body[:, sh], poses[:, wrist_s], -1.0 if right else 1.0)
        body[:, el], body[:, wr] = elbow, wrist
        body[:, hand_s] = hand_points(wrist, poses[:, angle_i], poses[:, shape_s], hand, right)
    xy = place.to_pixels(body)
    inside = (
        (xy[..., 0] >= 0)
        & (xy[..., 0] <= place.width - 1)
        & (xy[..., 1] >= 0)
        & (xy[..., 1] <= place.height - 1)
    )
    score = inside.astype(np.float32)
    score[:, list(NOT_DRAWN)] = 0.0
    return np.concatenate([xy, score[..., None]], -1).astype(np.float32)
