"""Signers: how each looks (colours, proportions, framing) and how fast they sign.

Colours are drawn so that hands stand out from clothes and clothes from the
background in brightness, which is what survives a resize to 64×64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


def _colours(codes: str) -> tuple[RGB, ...]:
    """RGB colours from their hex codes ("rrggbb"), separated by spaces."""
    return tuple(tuple(bytes.fromhex(code)) for code in codes.split())


SKINS = _colours("ffdbbe f1c2a0 e0ac7d c6865f a06946 784e32 5c3a26")
HAIRS = _colours("1e1914 3c2819 6e4b28 141419 969696")
CLOTHES = _colours("1e285a 19191e 6e1923 145532 005f6e 462864 c8c8cd e1e1d7 d7b43c 8cb4e1 c85a28")
BACKGROUNDS = _colours("bec8d2 d7cdb9 aabeaa 788296 3c465a c8b9c8 5f6e5f e8e8e4")
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
