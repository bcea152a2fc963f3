"""Drawing a signer from its 133 keypoints with OpenCV (anti-aliased, sub-pixel).

Layers, back to front: background, long hair, torso, neck, head and face, the
non-dominant arm and hand, the dominant arm and hand. Hands and arms get a dark
outline so they stay visible over the face and over clothes of the same colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from slt_serve import skeleton
from slt_training.data.synth.figure import Placement, head_center
from slt_training.data.synth.signer import Signer, luminance

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT
AA = cv2.LINE_AA
EYE = (35, 30, 30)
MOUTH_INSIDE = (70, 25, 30)


def _pt(xy) -> tuple[int, int]:
    return int(round(xy[0] * ONE)), int(round(xy[1] * ONE))


def _poly(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy)[:, :2] * ONE).astype(np.int32)


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * factor))) for c in rgb)


def _px(units: float, place: Placement) -> int:
    return max(1, int(round(units * place.unit)))


def background(signer: Signer, place: Placement) -> np.ndarray:
    """A soft vertical gradient of the signer's background colour, (H, W, 3) uint8 RGB."""
    h, w = place.height, place.width
    ramp = np.linspace(1.08, 0.88, h, dtype=np.float32)[:, None, None]
    img = np.asarray(signer.background, np.float32)[None, None] * ramp
    return np.broadcast_to(np.clip(img, 0, 255).astype(np.uint8), (h, w, 3)).copy()


def _ellipse(img, center, axes, color, start=0, end=360, thickness=-1) -> None:
    ax = (max(1, int(round(axes[0] * ONE))), max(1, int(round(axes[1] * ONE))))
    cv2.ellipse(img, _pt(center), ax, 0, start, end, color, thickness, AA, SHIFT)


def _head(img, kp: np.ndarray, signer: Signer, place: Placement) -> None:
    hx, hy = place.to_pixels(np.asarray(head_center(signer)))
    rx, ry = signer.head[0] * place.unit, signer.head[1] * place.unit
    skin, hair = signer.skin, signer.hair
    neck_top = place.to_pixels(np.array([0.0, -0.3]))
    neck_bottom = place.to_pixels(np.array([0.0, 0.08]))
    cv2.line(img, _pt(neck_top), _pt(neck_bottom), _shade(skin, 0.9), _px(0.2, place), AA, SHIFT)
    for ear in (3, 4):
        _ellipse(img, kp[ear], (0.18 * rx, 0.3 * ry), _shade(skin, 0.92))
    _ellipse(img, (hx, hy - 0.1 * ry), (1.04 * rx, 1.0 * ry), hair)
    _ellipse(img, (hx, hy + 0.08 * ry), (rx, 0.92 * ry), skin)
    _ellipse(img, (hx, hy - 0.55 * ry), (0.95 * rx, 0.42 * ry), hair, 180, 360)
    face = kp[skeleton.FACE]
    brow_w = _px(0.03, place)
    for s in (slice(17, 22), slice(22, 27)):
        cv2.polylines(img, [_poly(face[s])], False, _shade(hair, 0.8), brow_w, AA, SHIFT)
    for s in (slice(36, 42), slice(42, 48)):
        cv2.fillPoly(img, [_poly(face[s])], EYE, AA, SHIFT)
    nose = np.concatenate([face[27:31], face[33:34]])
    cv2.polylines(img, [_poly(nose)], False, _shade(skin, 0.72), 1, AA, SHIFT)
    lips = tuple(int(0.6 * c + 0.4 * r) for c, r in zip(_shade(skin, 0.75), (190, 60, 70)))
    cv2.fillPoly(img, [_poly(face[48:60])], lips, AA, SHIFT)
    if np.ptp(face[60:68, 1]) > 0.06 * ry:
        cv2.fillPoly(img, [_poly(face[60:68])], MOUTH_INSIDE, AA, SHIFT)


def _torso(img, kp: np.ndarray, signer: Signer, place: Placement) -> None:
    ls, rs, lh, rh = kp[5, :2], kp[6, :2], kp[11, :2], kp[12, :2]
    drop = np.array([0.0, 0.12 * place.unit])
    poly = np.stack([rs + drop, ls + drop, lh, rh])
    cv2.fillPoly(img, [_poly(poly)], signer.clothes, AA, SHIFT)
    for s in (ls, rs):
        cv2.circle(img, _pt(s + drop), _px(0.14, place) * ONE, signer.clothes, -1, AA, SHIFT)
    cv2.line(img, _pt(rs), _pt(ls), signer.clothes, _px(0.26, place), AA, SHIFT)


def _arm(img, kp: np.ndarray, right: bool, signer: Signer, place: Placement) -> None:
    sh, el, wr = (6, 8, 10) if right else (5, 7, 9)
    wrist = kp[wr, :2]
    cuff = kp[el, :2] + 0.88 * (wrist - kp[el, :2])
    dark = luminance(signer.clothes) < 90  # sleeves must show over the torso
    sleeve = (
        tuple(min(255, c + 40) for c in signer.clothes) if dark else _shade(signer.clothes, 0.8)
    )
    edge = _shade(signer.clothes, 0.45)
    upper, fore = _px(0.17, place), _px(0.14, place)
    path = [kp[sh, :2], kp[el, :2], cuff]
    for color, extra in ((edge, 2), (sleeve, 0)):
        for (a, b), width in zip(((path[0], path[1]), (path[1], path[2])), (upper, fore)):
            cv2.line(img, _pt(a), _pt(b), color, width + extra, AA, SHIFT)


def _hand(img, kp: np.ndarray, right: bool, signer: Signer, place: Placement) -> None:
    pts = kp[skeleton.RIGHT_HAND if right else skeleton.LEFT_HAND, :2]
    skin, edge = signer.skin, _shade(signer.skin, 0.5)
    palm = pts[[0, 1, 5, 9, 13, 17]]
    finger = max(1, int(round(0.05 * signer.hand * place.unit)))
    chains = [pts[[1, 2, 3, 4]]] + [pts[[5 + 4 * f + j for j in range(4)]] for f in range(4)]
    wrist_w = _px(0.11, place)
    cv2.line(img, _pt(pts[0]), _pt(palm[1:].mean(0)), edge, wrist_w + 2, AA, SHIFT)
    cv2.fillPoly(img, [_poly(palm)], edge, AA, SHIFT)
    cv2.polylines(img, [_poly(palm)], True, edge, 2, AA, SHIFT)
    for c in chains:
        cv2.polylines(img, [_poly(c)], False, edge, finger + 2, AA, SHIFT)
    cv2.line(img, _pt(pts[0]), _pt(palm[1:].mean(0)), skin, wrist_w, AA, SHIFT)
    cv2.fillPoly(img, [_poly(palm)], skin, AA, SHIFT)
    for c in chains:
        cv2.polylines(img, [_poly(c)], False, skin, finger, AA, SHIFT)


def draw(kp: np.ndarray, signer: Signer, place: Placement, bg: np.ndarray) -> np.ndarray:
    """One RGB frame (H, W, 3) uint8 from one frame's keypoints (133, 3) in pixels."""
    img = bg.copy()
    if signer.long_hair:
        hx, hy = place.to_pixels(np.asarray(head_center(signer)))
        rx, ry = signer.head[0] * place.unit, signer.head[1] * place.unit
        _ellipse(img, (hx, hy + 0.45 * ry), (1.25 * rx, 1.35 * ry), signer.hair)
    _torso(img, kp, signer, place)
    _head(img, kp, signer, place)
    for right in (False, True):  # the dominant (right) hand in front
        _arm(img, kp, right, signer, place)
        _hand(img, kp, right, signer, place)
    return img


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
