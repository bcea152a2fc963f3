"""A clip's schedule: rest, transition, sign, transition, …, rest, and the poses over time.

Planning is cheap and needs no drawing, so the corpus plans every clip up front
(annotations and per-gloss times come from here) and renders later, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slt_training.data.synth import motion
from slt_training.data.synth.motion import SignForm

ANGLES = (motion.RIGHT_ANGLE, motion.LEFT_ANGLE)


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip: `rest`, `move` (between poses) or `sign` (one gloss)."""

    kind: str
    start: float  # seconds
    end: float  # seconds
    sign: int | None = None  # index into Timeline.forms for kind "sign"


@dataclass(frozen=True)
class Timeline:
    """Everything needed to pose a clip: the glosses, their forms and the schedule."""

    glosses: tuple[str, ...]
    forms: tuple[SignForm, ...]
    segments: tuple[Segment, ...]
    fps: float

    @property
    def duration(self) -> float:
        return self.segments[-1].end

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    @property
    def gloss_times(self) -> list[list]:
        """[[gloss, start_s, end_s], …] for the annotation's `gloss_times`."""
        return [
            [self.glosses[s.sign], round(s.start, 3), round(s.end, 3)]
            for s in self.segments
            if s.kind == "sign"
        ]


def plan(
    glosses: list[str], forms: list[SignForm], speed: float, fps: float, rng: np.random.Generator
) -> Timeline:
    """Schedule a sentence: signs at the signer's `speed` (> 1 faster) with varied timing."""
    tempo = speed * rng.uniform(0.92, 1.08)
    segs: list[Segment] = []
    t = 0.0

    def add(kind: str, seconds: float, sign: int | None = None) -> None:
        nonlocal t
        segs.append(Segment(kind, t, t + seconds, sign))
        t += seconds

    add("rest", rng.uniform(0.12, 0.35))
    add("move", rng.uniform(0.28, 0.38) / tempo)
    for i, form in enumerate(forms):
        if i:
            add("move", rng.uniform(0.16, 0.28) / tempo)
        add("sign", form.seconds * rng.uniform(0.9, 1.1) / tempo, i)
    add("move", rng.uniform(0.28, 0.38) / tempo)
    add("rest", rng.uniform(0.12, 0.35))
    return Timeline(tuple(glosses), tuple(forms), tuple(segs), fps)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _blend(p0: np.ndarray, p1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Interpolate poses; hand angles turn the short way round."""
    d = p1 - p0
    d[list(ANGLES)] = _wrap(d[list(ANGLES)])
    return p0[None] + w[:, None] * d[None]


def _end_pose(tl: Timeline, seg: Segment, at_end: bool) -> np.ndarray:
    if seg.kind == "sign":
        return tl.forms[seg.sign].poses(np.array([1.0 if at_end else 0.0]))[0]
    return motion.rest_pose()


def poses(tl: Timeline) -> np.ndarray:
    """(num_frames, POSE_SIZE) poses at frame times k / fps."""
    times = np.arange(tl.num_frames) / tl.fps
    out = np.tile(motion.rest_pose(), (len(times), 1))
    for k, seg in enumerate(tl.segments):
        last = k == len(tl.segments) - 1
        sel = (times >= seg.start) & ((times < seg.end) | last)
        if not sel.any():
            continue
        u = (times[sel] - seg.start) / (seg.end - seg.start)
        if seg.kind == "sign":
            out[sel] = tl.forms[seg.sign].poses(u)
        elif seg.kind == "move":
            p0 = _end_pose(tl, tl.segments[k - 1], at_end=True)
            p1 = _end_pose(tl, tl.segments[k + 1], at_end=False)
            out[sel] = _blend(p0, p1, motion.smoothstep(u))
    return out


def sway(num_frames: int, fps: float, rng: np.random.Generator, amplitude: float = 0.015):
    """Slow, smooth wobble of the wrists (T, 4) so no two renditions are identical."""
    t = np.arange(num_frames) / fps
    freq = rng.uniform(0.3, 1.2, size=(2, 4))
    phase = rng.uniform(0, 2 * np.pi, size=(2, 4))
    return amplitude * np.sin(2 * np.pi * freq[:, None] * t[None, :, None] + phase[:, None]).sum(0)
