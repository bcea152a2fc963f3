"""Reading a signer's video as RGB frames: video files (PyAV) and folders of images.

Every stage reads frames through here, the serving runtime included, so this
module needs only numpy, PyAV and OpenCV (never torch). Frames come out as
uint8 RGB, (H, W, 3) each, (T, H, W, 3) stacked, in display orientation (a
phone video's rotation flag is applied). Bad input raises `SltError` naming the
file and what was wrong, never a raw av/cv2 error.

The container is chosen from the file's first bytes, from an allow-list of
video containers (`CONTAINERS`), never from its name, and FFmpeg is told to
open that demuxer only, reading the file itself and nothing it names: an HLS
playlist, a concat list, an image sequence or a text file cannot make it read
another file or connect anywhere. Decoding checks every frame against the
`DecodeLimits` in force (`decode_limits`), so a server stops at the first frame
past a limit instead of decoding a whole file to count it.

Resizing uses libswscale inside PyAV (`VideoFrame.reformat`), which converts
YUV→RGB and scales in one pass; `benchmarks/bench_decode.py` measures it
against OpenCV's `VideoCapture` + `cv2.resize`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
_HEAD_BYTES = 1024  # read to recognise a container

# Containers accepted, by FFmpeg demuxer: (the names FFmpeg reports for it, what to call it).
CONTAINERS: dict[str, tuple[str, str]] = {
    "mov": ("mov,mp4,m4a,3gp,3g2,mj2", "MP4/MOV"),
    "matroska": ("matroska,webm", "Matroska/WebM"),
    "avi": ("avi", "AVI"),
    "mpegts": ("mpegts", "MPEG-TS"),
    "mpeg": ("mpeg", "MPEG-PS"),
    "flv": ("flv", "FLV"),
    "asf": ("asf", "ASF/WMV"),
    "ogg": ("ogg", "Ogg"),
}
_FORMAT_WHITELIST = ",".join(names for names, _ in CONTAINERS.values())
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_IMAGES = {  # signatures of still images: named to say why a file is refused
    b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
}  # fmt: skip


class VideoError(SltError):
    """What is wrong with a video's content; `code` names it for the HTTP API."""

    def __init__(self, message: str, code: str = "invalid_video"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds checked on every decoded frame while they are in force (`decode_limits`)."""

    max_frames: int | None = None  # frames of the source, before any resampling
    max_seconds: float | None = None  # by the frames' timestamps, from the first frame
    max_pixels: int | None = None  # width × height of each frame
    deadline: float | None = None  # time.monotonic() after which decoding stops


_LIMITS: ContextVar[DecodeLimits | None] = ContextVar("slt_decode_limits", default=None)


@contextmanager
def decode_limits(limits: DecodeLimits | None) -> Iterator[None]:
    """Every video decoded in this thread (or task) inside the block is held to `limits`."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, without decoding all of it."""

    num_frames: int  # frames the container lists (its packets counted when it lists none)
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
    """Frame count, rate, size and duration of a video file or a folder of image frames.

    The count is the container's; where it keeps none (Matroska, WebM) the packets
    are counted without decoding them, stopping at the limits in force.
    """
    path = _existing(path)
    if path.is_dir():
        return _probe_folder(path, frames_fps)
    with _open(path) as container:
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        width, height = _display_size(first)
        _check_resolution(width, height, path)
        _check_pixels(first, path, _LIMITS.get())
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        duration = _duration(stream, container)
    num_frames = stream.frames or _count_packets(path)
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
        raise VideoError(f"{path} has no video frames; check the file or re-export it")


def resample(
    frames: Iterable[tuple[float | None, Any]], src_fps: float, fps: float
) -> Iterator[tuple[Any, int]]:
    """(frame, times to repeat it): output time k/fps shows the latest frame shown by then.

    Works on timestamps, so variable-frame-rate videos resample correctly; a
    frame's repeat count is known once the next frame's timestamp is seen.
    """
    resampler = Resampler(src_fps, fps)
    for t, frame in frames:
        yield from resampler.push(t, frame)
    yield from resampler.finish()


class Resampler:
    """`resample` fed one frame at a time, for frames that arrive live (`slt_serve.streaming`):
    `push` gives the (frame, repeats) known once a frame arrives, `finish` the last one's."""

    def __init__(self, src_fps: float, fps: float) -> None:
        self.period, self.src_period = 1.0 / fps, 1.0 / src_fps
        self.slack = _TIME_SLACK * self.src_period
        self.k, self.count, self.t0, self.prev, self.prev_t = 0, 0, None, None, 0.0

    def push(self, t: float | None, frame: Any) -> list[tuple[Any, int]]:
        """A frame shown from time `t` (seconds; None: its index over src_fps)."""
        t = self.count * self.src_period if t is None else t
        self.count += 1
        self.t0 = t if self.t0 is None else self.t0
        t -= self.t0
        out = []
        if self.prev is not None:
            n = _targets_before(self.k, self.period, t - self.slack)
            if n:
                out.append((self.prev, n))
            self.k += n
        self.prev, self.prev_t = frame, t
        return out

    def finish(self) -> list[tuple[Any, int]]:
        """The last frame, shown for one source period."""
        if self.prev is None:
            return []
        n = _targets_before(self.k, self.period, self.prev_t + self.src_period - self.slack)
        self.k += n
        last, self.prev = self.prev, None
        return [(last, n)] if n else []


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
    """Decoded frames with their time in seconds, each checked against the limits in force.

    Truncation shows as a packet the demuxer could only read in part, or fewer
    packets than the container's index lists; a decoder that returns fewer frames
    than that (an edit list, a variable frame rate) is not an error.
    """
    limits = _LIMITS.get()
    declared, packets, decoded, cut = stream.frames, 0, 0, False
    t0 = None
    with container:
        stream.thread_type = "AUTO"  # frame + slice threads: several times faster on H.264
        try:
            for packet in container.demux(stream):
                packets += packet.size > 0
                cut = cut or packet.is_corrupt
                for frame in packet.decode():
                    decoded += 1
                    t0 = frame.time if t0 is None else t0
                    _check_frame(frame, decoded, t0, path, limits)
                    yield frame.time, frame
        except av.FFmpegError as e:
            raise _corrupt(path, decoded, e) from None
    if cut or packets < declared:
        raise VideoError(
            f"{path}: the video is truncated: {packets if not cut else packets - 1} of the "
            f"{declared} frames the file lists are complete; upload or copy the whole file"
        )


def _check_frame(frame, n: int, t0: float | None, path: Path, limits: DecodeLimits | None) -> None:
    """The n-th decoded frame against the absurd-size rule and the limits in force."""
    _check_resolution(frame.width, frame.height, path)
    if limits is not None:
        _check_pixels(frame, path, limits)
        _check_count(n, frame.time, t0, path, limits)


def _check_count(n: int, t: float | None, t0: float | None, path: Path, limits: DecodeLimits):
    """The n-th frame (at time t, the first at t0) against the frame, time and deadline limits."""
    if limits.max_frames is not None and n > limits.max_frames:
        raise VideoError(
            f"{path} has more than {limits.max_frames:,} frames, the most accepted: "
            "lower its frame rate or cut it into shorter clips",
            "too_many_frames",
        )
    if limits.max_seconds is not None and t is not None and t0 is not None:
        if t - t0 > limits.max_seconds:
            raise VideoError(
                f"{path} lasts more than {limits.max_seconds:g} s, the longest accepted "
                "(its header may say less): cut it into shorter clips",
                "too_long",
            )
    if limits.deadline is not None and time.monotonic() > limits.deadline:
        raise VideoError(
            f"{path}: translating it took longer than the server allows a request; "
            "send a shorter or smaller video",
            "timeout",
        )


def _check_pixels(frame, path: Path, limits: DecodeLimits | None) -> None:
    if limits is None or limits.max_pixels is None:
        return
    pixels = frame.width * frame.height
    if pixels > limits.max_pixels:
        raise VideoError(
            f"{path} has a {frame.width}×{frame.height} frame ({pixels:,} pixels); the most "
            f"accepted is {limits.max_pixels:,} pixels a frame: downscale it",
            "too_many_pixels",
        )


def _corrupt(path: Path, decoded: int, e: Exception) -> VideoError:
    where = f"after {decoded} good frame(s)" if decoded else "at its first frame"
    return VideoError(
        f"{path}: the video is corrupt or truncated ({where}: {_reason(e)}); "
        "upload or copy the whole file, or re-export it"
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


def container_of(path: str | os.PathLike) -> str:
    """The FFmpeg demuxer for a file, from its first bytes and `CONTAINERS` only.

    Raises `VideoError` naming what the file looks like instead (a still image,
    a playlist, text) when it is none of them.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as e:
        raise SltError(f"{path}: cannot read it ({e.strerror})") from None
    fmt = _sniff(head)
    if fmt is None:
        raise _not_a_container(path, head)
    return fmt


def _sniff(head: bytes) -> str | None:
    if head[4:8] in _MP4_BOXES:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"FLV\x01":
        return "flv"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg"
    if head[:16] == _ASF_GUID:
        return "asf"
    for offset, step in ((0, 188), (4, 192)):  # MPEG-TS packets (M2TS: 4 bytes before each)
        if len(head) > offset + 2 * step and all(head[offset + i * step] == 0x47 for i in range(3)):
            return "mpegts"
    return None


def _not_a_container(path: Path, head: bytes) -> VideoError:
    accepted = ", ".join(label for _, label in CONTAINERS.values())
    for magic, kind in _IMAGES.items():
        if head.startswith(magic) or (kind == "JPEG 2000" and head[4:8] == b"jP  "):
            return VideoError(
                f"{path} is a still image ({kind}), not a video; upload a video of a signer",
                "not_a_video",
            )
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return VideoError(f"{path} is a still image (WebP), not a video", "not_a_video")
    if not head:
        return VideoError(f"{path} is empty (0 bytes)", "empty_file")
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"#EXTM3U") or text.startswith(b"ffconcat") or text.startswith(b"<?xml"):
        return VideoError(
            f"{path}: not a readable video (it is a playlist naming other files, which are never "
            "opened); upload the video itself"
        )
    what = "it is text" if _looks_like_text(head) else "no video container this reads"
    return VideoError(f"{path}: not a readable video ({what}); accepted containers: {accepted}")


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _open(path: Path):
    """The file opened with the demuxer its bytes name; FFmpeg may open nothing else."""
    fmt = container_of(path)
    try:
        return av.open(
            str(path),
            format=fmt,
            metadata_errors="ignore",
            container_options={"format_whitelist": _FORMAT_WHITELIST, "protocol_whitelist": "file"},
        )
    except av.FFmpegError:
        label = CONTAINERS[fmt][1]
        hint = " (its index, the moov box, is missing)" if fmt == "mov" else ""
        raise VideoError(
            f"{path} looks like {label} but cannot be read{hint}: it is truncated or corrupt; "
            "upload or copy the whole file, or re-export it"
        ) from None


def _video_stream(container, path: Path):
    if not container.streams.video:
        audio, tracks = bool(container.streams.audio), len(container.streams)
        container.close()
        if not tracks:
            raise VideoError(
                f"{path}: no video stream: the file is truncated or was never finished (it has "
                "no track index; in an MP4, the moov box); upload or copy the whole file"
            )
        what = "only audio" if audio else "no track with frames"
        raise VideoError(f"{path}: no video stream (the file holds {what}); give a video of a signer")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.codec is None:
        container.close()
        raise VideoError(
            f"{path}: its video track is in a format this cannot decode, or the file is "
            "truncated before it says which; re-export it as H.264 MP4"
        )
    return stream


def _first_frame(container, stream, path: Path):
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as e:
        raise _corrupt(path, 0, e) from None
    raise VideoError(
        f"{path} has a video track with no video frames; check the file or re-export it"
    )


def _count_packets(path: Path) -> int:
    """The frames of a container that lists none, counted by demuxing (no decoding), stopping
    at the first one past the limits in force."""
    log.debug("%s: no frame count in the container; counting its packets", path)
    limits = _LIMITS.get()
    n = 0
    with _open(path) as container:
        stream = _video_stream(container, path)
        t0 = None
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                n += 1
                t = None if packet.pts is None else float(packet.pts * packet.time_base)
                t0 = t if t0 is None else t0
                if limits is not None:
                    _check_count(n, t, t0, path, limits)
        except av.FFmpegError:
            pass  # decoding will say what is wrong, at the frame where it is
    return n


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
    """What FFmpeg's error means for the file, in words that do not need FFmpeg to read."""
    if isinstance(e, av.InvalidDataError):
        return "its data is damaged"
    if isinstance(e, av.EOFError):
        return "the file ends in the middle of a frame"
    if isinstance(e, av.DecoderNotFoundError):
        return "its video is in a format this cannot decode"
    return "the decoder could not read it"


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


def resize_linear(rgb: np.ndarray, size: Size) -> np.ndarray:
    """Resize one (H, W, 3) frame bilinearly on float values → float32 on the same 0–255 scale,
    never rounded back to uint8: pixel centres aligned (align_corners=False) and no
    antialiasing even when shrinking, as torchvision 0.10 resizes tensors (TwoStream-SLT's
    eval; `InputSpec.geometry` "reference_resize"). OpenCV places the samples in double
    precision, torch in float32: they differ by up to ~4e-3 on this scale."""
    import cv2

    h, w = _target_size(size)
    values = rgb.astype(np.float32)
    if (h, w) == rgb.shape[:2]:
        return values
    return cv2.resize(values, (w, h), interpolation=cv2.INTER_LINEAR)


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
