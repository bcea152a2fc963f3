"""`Translator`: a bundle's ONNX graphs turned into video → glosses → text, without torch.

    translator = Translator.from_bundle("bundle/")          # verifies hashes, picks CUDA/CPU
    result = translator.translate("clip.mp4")               # Result(gloss, text, gloss_spans, …)
    result = translator.translate_frames(rgb, fps=25.0)     # (T, H, W, 3) uint8 RGB
    result = translator.translate_gloss("REGEN MORGEN")     # G2T bundles

One `Translator` holds one onnxruntime session per graph and no per-call state,
so it can serve concurrent calls (onnxruntime sessions are thread-safe for `run`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_MAX_SECONDS = 300.0  # longest video translated; longer ones are refused


@dataclass(frozen=True)
class GlossSpan:
    """One recognised gloss and the time it was signed, in seconds from the video start."""

    gloss: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Result:
    """What one translation produced."""

    gloss: str  # space-separated glosses ('' for a G2T bundle input)
    text: str  # the translation ('' for an S2G bundle)
    gloss_spans: list[GlossSpan]  # one per gloss of `gloss`, in order
    duration_s: float  # of the input video (0 for gloss input)
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode, pose, s2g, …, total
    model: str = ""  # the bundle's name from its manifest

    def to_dict(self) -> dict:
        """JSON-ready: plain dicts, lists, strings and floats."""
        return asdict(self)


class Translator:
    """A loaded bundle; see the module docstring. Build it with `from_bundle`."""

    kind: str  # single_stream | two_stream | g2t
    stage: str  # s2t | g2t | s2g
    provider: str  # onnxruntime provider of the graphs, e.g. "CPUExecutionProvider"
    manifest: dict

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        max_seconds: float = DEFAULT_MAX_SECONDS,
        beam_size: int | None = None,
    ) -> Translator:
        """Load and verify a bundle folder. device: "auto" (CUDA when onnxruntime has it),
        "cuda" or "cpu"; beam_size: text beam width (None: the manifest's)."""
        raise NotImplementedError  # implementation lands in the next commit

    def translate(self, video: str | os.PathLike) -> Result:
        """A video file (or a folder of frames) → glosses and text."""
        raise NotImplementedError

    def translate_frames(self, frames: np.ndarray, fps: float) -> Result:
        """(T, H, W, 3) uint8 RGB frames at `fps` → glosses and text."""
        raise NotImplementedError

    def translate_gloss(self, gloss: str) -> Result:
        """A space-separated gloss sequence → text (G2T bundles)."""
        raise NotImplementedError
