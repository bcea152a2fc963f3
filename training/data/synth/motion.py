"""How signs move: the pose vector, hand shapes, locations, movements and sign forms.

A pose is a small float vector (wrists, hand angles, finger configuration, mouth,
brows) in body units: the origin is the neck, one unit is the shoulder width, x
grows to the image's right and y downwards. A sign form maps sign time u ∈ [0, 1]
to poses. Movement offsets are written in a hand's own frame (out = away from the
body's midline, down), so a two-handed sign mirrors by reusing them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pose vector layout.
RIGHT_WRIST = slice(0, 2)  # the dominant hand (the signer's right, image left)
LEFT_WRIST = slice(2, 4)
RIGHT_ANGLE = 4  # finger direction, radians in image coordinates (0 = image right, +π/2 = down)
LEFT_ANGLE = 5
RIGHT_SHAPE = slice(6, 13)
LEFT_SHAPE = slice(13, 20)
MOUTH = slice(20, 22)  # (openness 0..1, width factor)
BROW = 22  # raise (+1) or furrow (-1)
POSE_SIZE = 23

# Hand shape: curl of index, middle, ring, pinky (0 straight .. 1 fist), thumb
# abduction (0 along the palm .. 1 spread out), thumb curl (0 .. 1 across the palm),
# finger spread (0 together .. 1 apart).
HANDSHAPES: dict[str, tuple[float, ...]] = {
    "A": (1, 1, 1, 1, 0.15, 0.0, 0.0),
    "B": (0, 0, 0, 0, 0.0, 0.7, 0.0),
    "5": (0, 0, 0, 0, 1.0, 0.0, 1.0),
    "1": (0, 1, 1, 1, 0.2, 1.0, 0.0),
    "V": (0, 0, 1, 1, 0.2, 1.0, 1.0),
    "Y": (1, 1, 1, 0, 1.0, 0.0, 0.6),
    "L": (0, 1, 1, 1, 1.0, 0.0, 0.0),
    "I": (1, 1, 1, 0, 0.2, 1.0, 0.0),
    "W": (0, 0, 0, 1, 0.2, 1.0, 0.8),
    "C": (0.45, 0.45, 0.45, 0.45, 0.7, 0.2, 0.1),
    "O": (0.7, 0.7, 0.7, 0.7, 0.5, 0.7, 0.0),
    "claw": (0.55, 0.55, 0.55, 0.55, 0.9, 0.3, 1.0),
    "horns": (0, 1, 1, 0, 0.2, 1.0, 0.7),
    "3": (0, 0, 1, 1, 1.0, 0.0, 0.8),
    "S": (1, 1, 1, 1, 0.3, 1.0, 0.0),
}
RELAXED_SHAPE = (0.35, 0.4, 0.45, 0.5, 0.2, 0.3, 0.1)

# Where the dominant hand starts a sign, as (out, down) from the neck in body units.
LOCATIONS: dict[str, tuple[float, float]] = {
    "forehead": (0.08, -0.78),
    "chin": (0.08, -0.3),
    "temple": (0.38, -0.64),
    "chest": (0.18, 0.35),
    "stomach": (0.12, 0.95),
    "other_shoulder": (-0.35, 0.12),
    "neutral": (0.42, 0.65),
    "side": (0.85, 0.35),
    "high": (0.62, -0.9),
}
# Finger direction of a hand during a sign, as (out, down).
ORIENTATIONS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0),
    "up_in": (-0.6, -0.8),
    "up_out": (0.6, -0.8),
    "in": (-1.0, -0.15),
}
MOUTHS: dict[str, tuple[float, float]] = {
    "closed": (0.05, 1.0),
    "open": (0.9, 0.9),
    "round": (0.6, 0.55),
    "wide": (0.2, 1.35),
    "pursed": (0.05, 0.6),
}
MOVEMENT_SECONDS: dict[str, float] = {  # duration of one sign at normal speed
    "down": 0.5,
    "up": 0.5,
    "out": 0.5,
    "in": 0.5,
    "diagonal": 0.55,
    "circle": 0.75,
    "circle_back": 0.75,
    "tap": 0.6,
    "shake": 0.7,
    "arc": 0.6,
    "zigzag": 0.75,
    "open_close": 0.7,
}
HANDS = ("one", "mirror", "parallel", "alternate", "base")
AMPLITUDE = 0.42  # body units: a path's size, big enough to read at 64×64
REST_WRIST = (0.35, 1.2)  # (out, down) of a hand at rest
BASE_HAND_WRIST = (0.12, 0.62)  # (out, down) of the passive hand in "base" signs
BASE_SIGN_WRIST = (-0.02, 0.32)  # (out, down) where the dominant hand works over it
PERIODIC = {"circle", "circle_back", "tap", "shake", "zigzag", "open_close"}


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def movement_offset(movement: str, u: np.ndarray) -> np.ndarray:
    """Path of a movement in a hand's (out, down) frame; (len(u), 2) body units."""
    e = smoothstep(u)
    a = AMPLITUDE
    zero = np.zeros_like(u)
    if movement in ("down", "up", "out", "in"):
        d = a * (e - 0.5)
        return {
            "down": np.stack([zero, d], -1),
            "up": np.stack([zero, -d], -1),
            "out": np.stack([d, zero], -1),
            "in": np.stack([-d, zero], -1),
        }[movement]
    if movement == "diagonal":
        d = 0.75 * a * (e - 0.5)
        return np.stack([-d, d], -1)
    if movement in ("circle", "circle_back"):
        r, th = 0.45 * a, 2 * np.pi * e
        sign = 1.0 if movement == "circle" else -1.0
        return np.stack([r * np.cos(th) - r, sign * r * np.sin(th)], -1)
    if movement == "tap":
        return np.stack([zero, 0.5 * a * np.abs(np.sin(2 * np.pi * u))], -1)
    if movement == "shake":
        return np.stack([0.45 * a * np.sin(4 * np.pi * u), zero], -1)
    if movement == "arc":
        r, th = 0.55 * a, np.pi * (1.0 - e)
        return np.stack([r * np.cos(th), -r * np.sin(th)], -1)
    if movement == "zigzag":
        return np.stack([0.3 * a * np.sin(6 * np.pi * u), a * (e - 0.5)], -1)
    if movement == "open_close":
        return np.stack([zero, -0.35 * a * e], -1)
    raise ValueError(f"unknown movement {movement!r}")


def to_image(out_down: np.ndarray, right: bool) -> np.ndarray:
    """(out, down) of the right (image-left) or left hand → image-oriented body units."""
    xy = np.array(out_down, dtype=np.float64, copy=True)
    xy[..., 0] *= -1.0 if right else 1.0
    return xy


def direction_angle(out_down: tuple[float, float], right: bool) -> float:
    x, y = to_image(np.asarray(out_down), right)
    return float(np.arctan2(y, x))


def rest_pose() -> np.ndarray:
    """Both hands hanging at the hips, relaxed; mouth closed."""
    p = np.zeros(POSE_SIZE)
    p[RIGHT_WRIST] = to_image(np.asarray(REST_WRIST), True)
    p[LEFT_WRIST] = to_image(np.asarray(REST_WRIST), False)
    p[RIGHT_ANGLE] = p[LEFT_ANGLE] = np.pi / 2
    p[RIGHT_SHAPE] = p[LEFT_SHAPE] = RELAXED_SHAPE
    p[MOUTH] = MOUTHS["closed"]
    return p


@dataclass(frozen=True)
class SignForm:
    """What one gloss looks like: a unique motion plus a hand shape and a mouth shape."""

    location: str  # key of LOCATIONS (ignored by "base" signs)
    movement: str  # key of MOVEMENT_SECONDS
    hands: str  # one of HANDS
    shape: str  # key of HANDSHAPES
    orientation: str  # key of ORIENTATIONS
    mouth: str  # key of MOUTHS
    brow: float = 0.0  # +1 raised (questions), -1 furrowed (negation)

    @property
    def seconds(self) -> float:
        return MOVEMENT_SECONDS[self.movement]

    def poses(self, u: np.ndarray) -> np.ndarray:
        """Poses at sign times `u` (values in [0, 1]); (len(u), POSE_SIZE)."""
        u = np.asarray(u, dtype=np.float64)
        p = np.tile(rest_pose(), (len(u), 1))
        shape = np.asarray(HANDSHAPES[self.shape])
        dom = self._dominant_path(u)
        p[:, RIGHT_WRIST] = dom
        p[:, RIGHT_ANGLE] = direction_angle(ORIENTATIONS[self.orientation], True)
        p[:, RIGHT_SHAPE] = self._shape_track(shape, u)
        p[:, MOUTH] = MOUTHS[self.mouth]
        p[:, BROW] = self.brow
        if self.hands == "base":
            p[:, LEFT_WRIST] = to_image(np.asarray(BASE_HAND_WRIST), False)
            p[:, LEFT_ANGLE] = direction_angle(ORIENTATIONS["in"], False)
            p[:, LEFT_SHAPE] = HANDSHAPES["B"]
        elif self.hands != "one":
            p[:, LEFT_WRIST] = self._second_path(u)
            p[:, LEFT_ANGLE] = direction_angle(ORIENTATIONS[self.orientation], False)
            p[:, LEFT_SHAPE] = p[:, RIGHT_SHAPE]
        return p

    def _start(self) -> np.ndarray:
        if self.hands == "base":
            return np.asarray(BASE_SIGN_WRIST)
        out, down = LOCATIONS[self.location]
        if self.hands != "one":  # keep two hands apart at the midline
            out = max(out, 0.3)
        return np.asarray((out, down))

    def _dominant_path(self, u: np.ndarray) -> np.ndarray:
        scale = 0.7 if self.hands == "base" else 1.0
        return to_image(self._start() + scale * movement_offset(self.movement, u), True)

    def _second_path(self, u: np.ndarray) -> np.ndarray:
        offset = movement_offset(self.movement, u)
        if self.hands == "parallel":  # same image direction: flip "out"
            offset = offset * np.array([-1.0, 1.0])
        elif self.hands == "alternate":
            shifted = (u + 0.5) % 1.0 if self.movement in PERIODIC else 1.0 - u
            offset = movement_offset(self.movement, shifted)
        return to_image(self._start() + offset, False)

    def _shape_track(self, shape: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self.movement != "open_close":
            return np.tile(shape, (len(u), 1))
        closed = np.asarray(HANDSHAPES["S"])
        w = (0.5 - 0.5 * np.cos(4 * np.pi * u))[:, None]  # open → closed → open → closed → open
        return (1 - w) * shape + w * closed
