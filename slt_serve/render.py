"""A translated video with its glosses and translation drawn on, as they are signed
(`slt render`, and the demo's video).

    result = render_video(translator, "clip.mp4", "clip.subtitled.mp4")

The video is translated first (`Translator.translate`), then decoded again and drawn
on frame by frame (`render_result` draws a translation already made), and written by
the project's H.264 writer (`video.write_video`):

* top: the glosses signed so far, the one being signed now highlighted; a gloss under
  the bundle's gloss threshold (`Thresholds.unsure_gloss`) in orange with a "?";
* bottom: the translation, over the sentence cue's time (`subtitles.subtitle_cues`:
  from the first gloss to the last), wrapped to the width; "(unsure)" when the result
  is `low_confidence`;
* TwoStream bundles with a pose model: the keypoints the translation read
  (`Result.keypoints`, drawn by `overlay.draw_keypoints`): pose does not run twice.

Frames are drawn at the video's own rate (TwoStream with keypoints: the bundle's rate,
at which pose runs), at the video's size with an odd last row or column cut off (H.264
needs even sides). Text is drawn with OpenCV's Hershey font, which has ASCII only:
other letters are drawn without their accents, or as "?" (the .srt/.vtt files of
`slt translate --format` keep the exact text).
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slt_serve import video as video_io
from slt_serve.overlay import draw_keypoints, scale_keypoints
from slt_serve.subtitles import subtitle_cues

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, YELLOW, ORANGE, GREY = (255, 255, 255), (255, 220, 0), (255, 140, 0), (170, 170, 170)


@dataclass(frozen=True)
class Rendered:
    """What `render_video` wrote."""

    path: Path
    frames: int
    fps: float
    result: object  # the `Result` drawn


def ascii_text(text: str) -> str:
    """`text` as OpenCV's Hershey font can draw it: accents dropped, other letters "?"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return plain if len(plain) >= len(text) // 2 else text.encode("ascii", "replace").decode()


def render_video(translator, video: str | os.PathLike, out: str | os.PathLike) -> Rendered:
    """Translate `video` and write it to `out` (.mp4) with the result drawn as it is signed."""
    return render_result(translator, video, translator.translate(video), out)


def render_result(
    translator, video, result, out: str | os.PathLike, max_side: int | None = None
) -> Rendered:
    """Write `video` to `out` (.mp4) with `result` (`translator`'s translation of it) drawn as
    it is signed, and the keypoints that translation read (`Result.keypoints`), if any;
    max_side: scale frames down to at most this many pixels on their longest side."""
    keypoints = result.keypoints
    fps = translator.spec.fps if keypoints is not None else (video_io.probe(video).fps or translator.spec.fps)  # fmt: skip
    limit = int(math.ceil(translator.max_seconds * fps)) + 1
    frames = video_io.iter_frames(video, fps=fps, max_frames=limit)
    points = keypoints if keypoints is not None else ()
    painter = _Painter(result, translator.thresholds)
    drawn = (
        painter.draw(*_scaled(frame, points[i] if i < len(points) else None, max_side), i / fps)
        for i, frame in enumerate(frames)
    )
    count = video_io.write_video(out, drawn, fps)
    return Rendered(Path(out), count, fps, result)


def _scaled(frame: np.ndarray, keypoints: np.ndarray | None, max_side: int | None) -> tuple:
    """The frame at most `max_side` on its longest side (even sides), its keypoints to match."""
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame, keypoints
    scale = max_side / max(h, w)
    size = (max(2, round(h * scale) // 2 * 2), max(2, round(w * scale) // 2 * 2))
    if keypoints is not None:
        keypoints = scale_keypoints(keypoints, (w, h), (size[1], size[0]))
    return video_io.resize(frame, size), keypoints


class _Painter:
    """Draws one result onto frames by their time."""

    def __init__(self, result, thresholds) -> None:
        self.spans, self.thresholds = result.gloss_spans, thresholds
        sentence = [c for c in subtitle_cues(result) if not c.top]
        self.sentence = sentence[0] if sentence else None
        self.unsure = result.low_confidence

    def draw(self, frame: np.ndarray, keypoints: np.ndarray | None, t: float) -> np.ndarray:
        h, w = frame.shape[:2]
        out = np.ascontiguousarray(frame[: h - h % 2, : w - w % 2]).copy()
        if keypoints is not None and keypoints.shape == (133, 3):
            out = draw_keypoints(out, keypoints)
        scale = max(0.35, min(out.shape[:2]) / 500)
        self._glosses(out, t, scale)
        if self.sentence is not None and self.sentence.start_s <= t < self.sentence.end_s:
            text = self.sentence.text + (" (unsure)" if self.unsure else "")
            self._bottom(out, ascii_text(text), scale)
        return out

    def _glosses(self, out: np.ndarray, t: float, scale: float) -> None:
        """The glosses begun by `t`, left to right on one line (the latest ones kept)."""
        words = []
        for span in self.spans:
            if span.start_s > t:
                break
            unsure = self.thresholds.unsure_gloss(span.confidence)
            colour = ORANGE if unsure else (YELLOW if t < span.end_s else WHITE)
            words.append((ascii_text(span.gloss) + ("?" if unsure else ""), colour))
        thickness = max(1, round(scale * 2))
        space = cv2.getTextSize(" ", FONT, scale, thickness)[0][0]
        widths = [cv2.getTextSize(w, FONT, scale, thickness)[0][0] for w, _ in words]
        while words and sum(widths) + space * len(words) > out.shape[1] - 8:
            words, widths = words[1:], widths[1:]  # the oldest go first
        height = cv2.getTextSize("A", FONT, scale, thickness)[0][1]
        x, y = 4, height + 6
        if words:
            _band(out, 0, y + 6)
        for (word, colour), width in zip(words, widths, strict=True):
            cv2.putText(out, word, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)
            x += width + space

    def _bottom(self, out: np.ndarray, text: str, scale: float) -> None:
        thickness = max(1, round(scale * 2))
        lines = _wrap(text, out.shape[1] - 8, scale, thickness)
        height = cv2.getTextSize("Ag", FONT, scale, thickness)[0][1] + 8
        top = out.shape[0] - height * len(lines) - 4
        _band(out, top - 4, out.shape[0])
        for n, line in enumerate(lines):
            y = top + height * (n + 1) - 6
            cv2.putText(out, line, (4, y), FONT, scale, WHITE, thickness, cv2.LINE_AA)


def _band(out: np.ndarray, top: int, bottom: int) -> None:
    """Darken rows top..bottom so text on them reads on any picture."""
    top = max(0, top)
    out[top:bottom] = (out[top:bottom] * 0.45).astype(np.uint8)


def _wrap(text: str, width: int, scale: float, thickness: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(trial, FONT, scale, thickness)[0][0] <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines or [""]
