"""Reading a signer's video as RGB frames: video files (PyAV) and folders of images.

Every stage reads frames through here, the serving runtime included, so this
module needs only numpy, PyAV and OpenCV (never torch). Frames come out as
uint8 RGB, (H, W, 3) each, (T, H, W, 3) stacked, in display orientation (a
phone video's rotation flag is applied). Bad input raises `SltError` naming the
file and what was wrong, never a raw av/cv2 error.

Resizing uses libswscale inside PyAV (`VideoFrame.reformat`), which converts
YUV→RGB and scales in one pass; `benchmarks/bench_decode.py` measures it
against OpenCV's `VideoCapture` + `cv2.resize`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Any

import av
import numpy as np

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # frame rate assumed for a folder of images (PHOENIX is 25 fps)
MAX_SIDE = 8192  # pixels; larger frames are rejected as absurd (8K UHD is 7680 wide)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
_TIME_SLACK = 0.25  # of a source frame period: timestamps rounded by the container still match

Size = int | tuple[int, int]  # an int is a square side; a tuple is (height, width)


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, without decoding all of it (unless the container hides its count)."""

    num_frames: int  # decodable frames (counted by decoding when the container has no count)
    fps: float  # frames per second (a folder of images: the rate passed in)
    width: int  # pixels, in display orientation
    height: int  # pixels, in display orientation
    duration_s: float  # seconds


@dataclass(frozen=True)
class _Source:
    """Frames of one input as (time in seconds, opaque frame) and how to turn one into RGB."""

    frames: Iterable[tuple[float | None, Any]]
    to_rgb: Any  # callable(frame, (h, w) | None) -> np.ndarray
    fps: float  # nominal rate: spaces frames without timestamps and ends the last one


def probe(path: str | os.PathLike, *, frames_fps: float = DEFAULT_FPS) -> VideoInfo:
    """Frame count, rate, size and duration of a video file or a folder of image frames."""
    path = _existing(path)
    if path.is_dir():
        return _probe_folder(path, frames_fps)
    with _open(path) as container:
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        width, height = _display_size(first)
        _check_resolution(width, height, path)
        num_frames = stream.frames or _count_frames(path)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        duration = _duration(stream, container)
        if fps <= 0:
            fps = num_frames / duration if duration else DEFAULT_FPS
        if not duration:
            duration = num_frames / fps
        return VideoInfo(num_frames, fps, width, height, duration)


def read_frames(
    path: str | os.PathLike,
    size: Size | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    *,
    frames_fps: float = DEFAULT_FPS,
) -> np.ndarray:
    """All frames as one uint8 array (T, H, W, 3), RGB; see `iter_frames` for the options."""
    return np.stack(list(iter_frames(path, size, fps, max_frames, frames_fps=frames_fps)))


def iter_frames(
    path: str | os.PathLike,
    size: Size | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    *,
    frames_fps: float = DEFAULT_FPS,
) -> Iterator[np.ndarray]:
    """Frames one at a time (H, W, 3) uint8 RGB, so a long video never sits in memory whole.

    size: an int resizes to a square (as the reference models are trained), a
    tuple to (height, width). fps: resample in time to this rate, dropping or
    repeating frames by their timestamps (a repeated frame is the same array).
    max_frames: stop after this many frames. frames_fps: the rate of a folder
    of images. Checked before the file is opened.
    """
    target = _target_size(size)
    if fps is not None and not 0 < fps <= 1000:
        raise SltError(f"fps={fps}: the frame rate must be in (0, 1000]")
    if max_frames is not None and max_frames < 1:
        raise SltError(f"max_frames={max_frames}: must be at least 1 (or None for all)")
    if not 0 < frames_fps <= 1000:
        raise SltError(f"frames_fps={frames_fps}: the frame rate must be in (0, 1000]")
    path = _existing(path)
    source = _folder_source(path, frames_fps) if path.is_dir() else _video_source(path)
    return _emit(source, target, fps, max_frames, path)


def _emit(
    source: _Source, target: tuple[int, int] | None, fps: float | None, max_frames: int | None, path
) -> Iterator[np.ndarray]:
    """Convert only the frames that will be emitted (a dropped frame is never resized)."""
    picked = (
        resample(source.frames, source.fps, fps) if fps else ((f, 1) for _, f in source.frames)
    )
    emitted = 0
    for frame, repeats in picked:
        rgb = source.to_rgb(frame, target)
        for _ in range(repeats):
            yield rgb
            emitted += 1
            if emitted == max_frames:
                return
    if emitted == 0:
        raise SltError(f"{path}: the video has no frames; check the file or re-export it")


def resample(
    frames: Iterable[tuple[float | None, Any]], src_fps: float, fps: float
) -> Iterator[tuple[Any, int]]:
    """(frame, times to repeat it): output time k/fps shows the latest frame shown by then.

    Works on timestamps, so variable-frame-rate videos resample correctly; a
    frame's repeat count is known once the next frame's timestamp is seen.
    """
    period, src_period = 1.0 / fps, 1.0 / src_fps
    slack = _TIME_SLACK * src_period
    k, t0, prev, prev_t = 0, None, None, 0.0
    for i, (t, frame) in enumerate(frames):
        t = i * src_period if t is None else t
        t0 = t if t0 is None else t0
        t -= t0
        if prev is not None:
            n = _targets_before(k, period, t - slack)
            if n:
                yield prev, n
            k += n
        prev, prev_t = frame, t
    if prev is not None:
        n = _targets_before(k, period, prev_t + src_period - slack)
        if n:
            yield prev, n


def _targets_before(k: int, period: float, t: float) -> int:
    """How many output times k*period, (k+1)*period, … fall before `t`."""
    n = 0
    while (k + n) * period < t:
        n += 1
    return n


# --- video files (PyAV) -----------------------------------------------------------------


def _video_source(path: Path) -> _Source:
    container = _open(path)
    stream = _video_stream(container, path)
    fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
    return _Source(_decode(container, stream, path), _av_to_rgb, fps)


def _decode(container, stream, path: Path) -> Iterator[tuple[float | None, Any]]:
    """Decoded frames with their time in seconds; decoding errors become `SltError`."""
    declared, decoded = stream.frames, 0
    with container:
        stream.thread_type = "AUTO"  # frame + slice threads: several times faster on H.264
        try:
            for frame in container.decode(stream):
                _check_resolution(frame.width, frame.height, path)
                decoded += 1
                yield frame.time, frame
        except av.FFmpegError as e:
            raise SltError(
                f"{path}: corrupt or truncated video ({_reason(e)}); re-export it"
            ) from None
    # Threaded decoding skips broken packets silently: a short count is how truncation shows.
    if decoded < declared:
        raise SltError(
            f"{path}: truncated or corrupt video (decoded {decoded} of the {declared} frames "
            "the container lists); re-export or re-download it"
        )


def _av_to_rgb(frame, target: tuple[int, int] | None) -> np.ndarray:
    """YUV→RGB and resize in one libswscale pass, then apply the rotation flag."""
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    if target is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        h, w = target if quarter_turns % 2 == 0 else target[::-1]
        rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    if quarter_turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise SltError(
            f"{path}: not a readable video ({_reason(e)}); expected a video file "
            "(mp4, mkv, webm, avi, mov) or a folder of image frames"
        ) from None


def _video_stream(container, path: Path):
    if not container.streams.video:
        what = "only audio" if container.streams.audio else "no video"
        container.close()
        raise SltError(f"{path}: no video stream (the file holds {what}); give a video of a signer")
    return container.streams.video[0]


def _first_frame(container, stream, path: Path):
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as e:
        raise SltError(f"{path}: corrupt or truncated video ({_reason(e)}); re-export it") from None
    raise SltError(f"{path}: the video has no frames; check the file or re-export it")


def _count_frames(path: Path) -> int:
    """Decode everything to count: the fallback for containers that store no frame count."""
    log.debug("%s: no frame count in the container; counting by decoding", path)
    source = _video_source(path)
    return sum(1 for _ in source.frames)


def _duration(stream, container) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _display_size(frame) -> tuple[int, int]:
    if round((frame.rotation or 0) / 90) % 2:
        return frame.height, frame.width
    return frame.width, frame.height


def _reason(e: Exception) -> str:
    """The FFmpeg message without the errno and the repeated file name."""
    return getattr(e, "strerror", None) or str(e)


# --- folders of images (OpenCV) ---------------------------------------------------------


def _frame_files(path: Path) -> list[Path]:
    """Image files in natural order (frame2 before frame10), as PHOENIX names them."""
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise SltError(
            f"{path}: folder holds no image frames ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "give a video file or a folder of frames"
        )
    return sorted(
        files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]
    )


def _folder_source(path: Path, frames_fps: float) -> _Source:
    files = _frame_files(path)
    return _Source(((i / frames_fps, f) for i, f in enumerate(files)), _image_to_rgb, frames_fps)


def _probe_folder(path: Path, frames_fps: float) -> VideoInfo:
    files = _frame_files(path)
    height, width = _imread_rgb(files[0]).shape[:2]
    return VideoInfo(len(files), frames_fps, width, height, len(files) / frames_fps)


def _imread_rgb(file: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SltError(f"{file}: not a readable image; replace or remove the frame")
    _check_resolution(bgr.shape[1], bgr.shape[0], file)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _image_to_rgb(file: Path, target: tuple[int, int] | None) -> np.ndarray:
    rgb = _imread_rgb(file)
    return rgb if target is None else resize(rgb, target)


def resize(rgb: np.ndarray, size: Size) -> np.ndarray:
    """Resize one (H, W, 3) frame; area averaging when shrinking (no aliasing), bilinear else."""
    import cv2

    h, w = _target_size(size)
    if (h, w) == rgb.shape[:2]:
        return rgb
    shrink = h * w < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


# --- checks -------------------------------------------------------------------------------


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 17,
    preset: str = "fast",
    tune: str | None = None,
    threads: int = 0,
    reproducible: bool = False,
) -> int:
    """Encode RGB frames (H, W, 3 uint8, even sides) as H.264 MP4, atomically; returns the count.

    `threads` is x264's encoder thread count (0: its own choice).
    `reproducible` turns off B-frames and frame threads: with them x264 can
    write different bytes for the same frames from run to run. The RGB → YUV
    conversion is OpenCV's, about twice as fast as PyAV's own here.
    """
    import cv2

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise SltError(f"{path}: no frames to write")
    height, width = first.shape[:2]
    if first.ndim != 3 or first.shape[2] != 3 or height % 2 or width % 2:
        raise SltError(f"{path}: frames must be (H, W, 3) RGB with even H and W, got {first.shape}")
    options = {"crf": str(crf), "preset": preset, "threads": str(1 if reproducible else threads)}
    if tune:
        options["tune"] = tune
    if reproducible:
        options["x264-params"] = "bframes=0"
    n = 0
    with atomic_write(path, "wb") as f, av.open(f, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options
        for rgb in chain([first], it):
            yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")))
            n += 1
        out.mux(stream.encode())
    return n


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise SltError(f"{path}: no such video file or folder of frames")
    return path


def _target_size(size: Size | None) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise SltError(f"size={size}: each side must be between 1 and {MAX_SIDE} pixels")
    return int(h), int(w)


def _check_resolution(width: int, height: int, path: Path) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise SltError(
            f"{path}: absurd frame size {width}×{height} (each side must be 1–{MAX_SIDE} pixels); "
            "re-encode the video at a normal resolution"
        )
