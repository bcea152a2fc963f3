"""Signers: how each looks (colours, proportions, framing) and how fast they sign.

Colours are drawn so that hands stand out from clothes and clothes from the
background in brightness, which is what survives a resize to 64×64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

SKINS: tuple[RGB, ...] = (
    (255, 219, 190),
    (241, 194, 160),
    (224, 172, 125),
    (198, 134, 95),
    (160, 105, 70),
    (120, 78, 50),
    (92, 58, 38),
)
HAIRS: tuple[RGB, ...] = ((30, 25, 20), (60, 40, 25), (110, 75, 40), (20, 20, 25), (150, 150, 150))
CLOTHES: tuple[RGB, ...] = (
    (30, 40, 90),
    (25, 25, 30),
    (110, 25, 35),
    (20, 85, 50),
    (0, 95, 110),
    (70, 40, 100),
    (200, 200, 205),
    (225, 225, 215),
    (215, 180, 60),
    (140, 180, 225),
    (200, 90, 40),
)
BACKGROUNDS: tuple[RGB, ...] = (
    (190, 200, 210),
    (215, 205, 185),
    (170, 190, 170),
    (120, 130, 150),
    (60, 70, 90),
    (200, 185, 200),
    (95, 110, 95),
    (232, 232, 228),
)
MIN_SKIN_CLOTHES = 70.0  # luminance difference, 0..255
MIN_CLOTHES_BACKGROUND = 45.0
MIN_SKIN_BACKGROUND = 30.0


def luminance(rgb: RGB) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


@dataclass(frozen=True)
class Signer:
    """One signer's appearance, proportions and tempo."""

    id: str
    skin: RGB
    hair: RGB
    clothes: RGB
    background: RGB
    long_hair: bool
    scale: float  # body size relative to the frame (1 = shoulders a third of the width)
    offset: tuple[float, float]  # neck position shift, fractions of the frame (x, y)
    speed: float  # > 1 signs faster
    head: tuple[float, float]  # head half-width and half-height, body units
    hand: float  # hand size factor
    noise: float  # pixel noise standard deviation, 0..255


def _colours(rng: np.random.Generator) -> tuple[RGB, RGB, RGB]:
    while True:
        skin = SKINS[rng.integers(len(SKINS))]
        clothes = CLOTHES[rng.integers(len(CLOTHES))]
        bg = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        ls, lc, lb = luminance(skin), luminance(clothes), luminance(bg)
        if (
            abs(ls - lc) >= MIN_SKIN_CLOTHES
            and abs(lc - lb) >= MIN_CLOTHES_BACKGROUND
            and abs(ls - lb) >= MIN_SKIN_BACKGROUND
        ):
            return skin, clothes, bg


def make_signer(index: int, seed: int) -> Signer:
    """Signer `index` of a corpus generated with `seed` (deterministic)."""
    rng = np.random.default_rng([seed, 1, index])
    skin, clothes, bg = _colours(rng)
    return Signer(
        id=f"signer{index:02d}",
        skin=skin,
        hair=HAIRS[rng.integers(len(HAIRS))],
        clothes=clothes,
        background=bg,
        long_hair=bool(rng.random() < 0.4),
        scale=float(rng.uniform(0.9, 1.08)),
        offset=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.025, 0.03))),
        speed=float(rng.uniform(0.85, 1.2)),
        head=(float(rng.uniform(0.23, 0.27)), float(rng.uniform(0.3, 0.34))),
        hand=float(rng.uniform(0.95, 1.08)),
        noise=float(rng.uniform(1.5, 4.0)),
    )


def make_signers(count: int, seed: int) -> tuple[Signer, ...]:
    return tuple(make_signer(i, seed) for i in range(count))
