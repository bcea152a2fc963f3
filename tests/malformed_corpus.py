"""Make a corpus of malformed and hostile uploads, to throw at the HTTP API.

    python tests/malformed_corpus.py OUT_DIR       # writes the files, prints a table

Every file is generated (seeded), none is hand-picked: truncations of real small
videos (H.264 in MP4 with the index at the end and at the start, in Matroska, VP9
in WebM) at many offsets, random byte flips, empty and random files, text, JSON,
HTML, still images (one declaring 100000×100000 pixels), audio-only files (AAC,
MP3, Opus, WAV), subtitles, archives, a video whose frames declare 65000×65000,
frames wider than any screen, a frame count or duration over the limits, a video
stream with no frames, and a few odd but valid videos (one frame, 2×2 pixels).

`make(out)` returns `Case`s: the file and, where the outcome is certain, the
error code the API must answer with (None: any answer but a 5xx). The limits
those codes assume are `LIMITS`.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# The limits the expectations below assume; the test runs the server with them.
LIMITS = {"max_bytes": 1_500_000, "max_seconds": 20.0, "max_frames": 400, "max_pixels": 1920 * 1080}


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str | None  # the error code the API must answer with; None: anything but a 5xx
    what: str


def make(out: Path, seed: int = 0) -> list[Case]:
    """Write the corpus into `out` and return its cases (≥ 50)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []

    def add(name: str, data: bytes, expect: str | None, what: str) -> None:
        path = out / name
        path.write_bytes(data)
        cases.append(Case(path, expect, what))

    mp4 = encode_video(pattern_frames(32, 64), "mp4", "libx264")
    faststart = encode_video(pattern_frames(32, 64), "mp4", "libx264", movflags="faststart")
    mkv = encode_video(pattern_frames(32, 64), "matroska", "libx264")
    webm = encode_video(pattern_frames(32, 64), "webm", "libvpx-vp9")

    # nothing, or not media at all
    add("empty.mp4", b"", "empty_file", "zero bytes")
    add("text.mp4", b"this is not a video\n" * 20, "invalid_video", "plain text named .mp4")
    add("data.json", json.dumps({"gloss": "HELLO"}).encode(), "invalid_video", "JSON")
    add("page.webm", b"<!doctype html><html><body>hi</body></html>", "invalid_video", "HTML")
    add("random_1k.mp4", rng.bytes(1024), None, "1 KiB of random bytes")
    add("random_256k.bin", rng.bytes(256 * 1024), None, "256 KiB of random bytes")
    add("zeros_64k.mp4", bytes(64 * 1024), "invalid_video", "64 KiB of zeros")
    add("over_limit.mp4", rng.bytes(LIMITS["max_bytes"] + 4096), "too_large", "over the byte limit")
    add("header_only.mp4", mp4[:32], "invalid_video", "the first 32 bytes of an MP4")
    add(
        "ftyp_garbage.mp4", mp4[:32] + rng.bytes(4096), "invalid_video", "an MP4 header, then noise"
    )
    add("video.mp4.gz", gzip.compress(mp4), None, "a gzipped video")
    add("video.zip", _zip("clip.mp4", mp4), None, "a zipped video")
    add("subtitles.srt", b"1\n00:00:00,000 --> 00:00:01,000\nHELLO\n", "invalid_video", "subtitles only")  # fmt: skip

    # still images
    add("image.png", encode_image("png"), "not_a_video", "a PNG")
    add("image.jpg", encode_image("mjpeg"), "not_a_video", "a JPEG")
    add("png_named.mp4", encode_image("png"), "not_a_video", "a PNG named .mp4")
    add("huge_declared.png", _png_declaring(100_000, 100_000), None, "a PNG declaring 100000²")

    # sound, no picture
    add("audio_aac.m4a", encode_audio("mp4", "aac"), "invalid_video", "AAC in MP4 (.m4a)")
    add("audio_aac.mp4", encode_audio("mp4", "aac"), "invalid_video", "AAC in MP4 named .mp4")
    add("audio.mp3", encode_audio("mp3", "libmp3lame"), "invalid_video", "MP3")
    add("audio_opus.ogg", encode_audio("ogg", "libopus"), "invalid_video", "Opus in Ogg")
    add("audio.wav", encode_audio("wav", "pcm_s16le"), "invalid_video", "WAV")

    # resolution, length and frame-count limits
    add("declared_65000.mkv", _mjpeg_declaring(65000, 65000), "invalid_video", "frames declaring 65000²")  # fmt: skip
    add("wide_8200.mkv", encode_video(pattern_frames(2, (16, 8200)), "matroska", "ffv1"), "invalid_video", "8200 px wide")  # fmt: skip
    add("pixels_4k2k.mkv", encode_video(pattern_frames(2, (2160, 4096)), "matroska", "mjpeg"), "too_many_pixels", "4096×2160 frames")  # fmt: skip
    add("too_long.mp4", encode_video(pattern_frames(30, 16), "mp4", "libx264", fps=1), "too_long", "30 s at 1 fps")  # fmt: skip
    add("too_many_frames.mp4", encode_video(pattern_frames(480, 16), "mp4", "libx264", fps=240), "too_many_frames", "480 frames at 240 fps")  # fmt: skip
    add("zero_frames.mp4", _empty_video(), "invalid_video", "an MP4 whose video track got no frame")

    # odd but valid
    add("one_frame.mp4", encode_video(pattern_frames(1, 64), "mp4", "libx264"), None, "a single frame")
    add("tiny_2x2.mkv", encode_video(pattern_frames(8, 2), "matroska", "ffv1"), None, "2×2 pixels")
    add("twice.mp4", mp4 + mp4, None, "two MP4 files concatenated")
    add("mp4_named.txt", mp4, None, "a valid MP4 named .txt")

    # truncations at many offsets
    for frac in np.linspace(0.02, 0.98, 16):
        add(
            f"trunc_mp4_{frac:.2f}.mp4", mp4[: int(len(mp4) * frac)], None, f"MP4 cut at {frac:.0%}"
        )
    for frac in (0.05, 0.25, 0.5, 0.75, 0.9, 0.99):
        add(f"trunc_faststart_{frac:.2f}.mp4", faststart[: int(len(faststart) * frac)], None, f"fast-start MP4 cut at {frac:.0%}")  # fmt: skip
    for frac in (0.1, 0.4, 0.7, 0.95):
        add(f"trunc_mkv_{frac:.2f}.mkv", mkv[: int(len(mkv) * frac)], None, f"Matroska cut at {frac:.0%}")  # fmt: skip
    for frac in (0.3, 0.8):
        add(f"trunc_webm_{frac:.2f}.webm", webm[: int(len(webm) * frac)], None, f"WebM cut at {frac:.0%}")  # fmt: skip

    # random byte flips in each region of the file
    for i, (count, lo, hi) in enumerate(
        [(1, 0, 0.1), (8, 0, 0.1), (64, 0.1, 0.9), (512, 0.1, 0.9), (8, 0.9, 1.0), (64, 0.9, 1.0),
         (4096, 0, 1.0), (16, 0, 1.0)]
    ):  # fmt: skip
        add(f"flip_mp4_{i}_{count}.mp4", _flip(mp4, rng, count, lo, hi), None, f"{count} random bytes flipped")  # fmt: skip
    for i, count in enumerate((16, 256)):
        add(f"flip_mkv_{i}_{count}.mkv", _flip(mkv, rng, count, 0, 1), None, f"{count} bytes flipped")  # fmt: skip
        add(f"flip_webm_{i}_{count}.webm", _flip(webm, rng, count, 0, 1), None, f"{count} bytes flipped")  # fmt: skip
    return cases


# --- generators ---------------------------------------------------------------------------


def pattern_frames(n: int, size: int | tuple[int, int]) -> np.ndarray:
    """A moving bright square on a gradient: real content, cheap to encode."""
    h, w = (size, size) if isinstance(size, int) else size
    y, x = np.mgrid[0:h, 0:w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = (x * 255 // max(w - 1, 1)).astype(np.uint8)
        frames[t, ..., 1] = (y * 255 // max(h - 1, 1)).astype(np.uint8)
        frames[t, ..., 2] = 64
        s = max(1, min(h, w) // 4)
        cy, cx = (t * 3) % max(1, h - s), (t * 5) % max(1, w - s)
        frames[t, cy : cy + s, cx : cx + s] = 255
    return frames


def encode_video(frames: np.ndarray, fmt: str, codec: str, fps: int = 25, movflags: str | None = None) -> bytes:  # fmt: skip
    options = {"movflags": movflags} if movflags else {}
    with tempfile.TemporaryDirectory() as tmp:  # fast start rewrites the file: needs a real one
        path = Path(tmp) / f"v.{fmt}"
        _encode(path, frames, fmt, codec, fps, options)
        return path.read_bytes()


def _encode(path: Path, frames: np.ndarray, fmt: str, codec: str, fps: int, options: dict) -> None:
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = {"mjpeg": "yuvj420p", "ffv1": "yuv444p"}.get(codec, "yuv420p")
        if codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def _empty_video() -> bytes:
    """An MP4 written with a video track that never got a frame."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "empty.mp4"
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            out.start_encoding()  # the header is written although no frame follows
            out.mux(stream.encode())
        return path.read_bytes()


def encode_audio(fmt: str, codec: str, seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    rate = 48000
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        layout_fmt = stream.codec_context.format.name if stream.codec_context.format else "s16"
        frame_size = stream.codec_context.frame_size or 1024
        t = np.arange(int(rate * seconds)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
        for start in range(0, len(tone) - frame_size + 1, frame_size):
            chunk = tone[start : start + frame_size]
            if layout_fmt.startswith("s16"):
                data = (chunk * 32767).astype(np.int16)[None]
                fmt_name = "s16p" if layout_fmt.endswith("p") else "s16"
            else:
                data = chunk.astype(np.float32)[None]
                fmt_name = "fltp" if layout_fmt.endswith("p") else "flt"
            frame = av.AudioFrame.from_ndarray(data, format=fmt_name, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def encode_image(codec: str) -> bytes:
    fmt = {"png": "image2pipe", "mjpeg": "image2pipe"}[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=1)
        stream.width = stream.height = 64
        stream.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(pattern_frames(1, 64)[0], format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge image, with a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # fmt: skip

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def _mjpeg_declaring(width: int, height: int) -> bytes:
    """Motion-JPEG in Matroska whose every frame header (SOF0) declares width × height."""
    data = bytearray(encode_video(pattern_frames(4, 32), "matroska", "mjpeg"))
    i = 0
    while (i := data.find(b"\xff\xc0", i)) >= 0:  # SOF0: length(2) precision(1) height(2) width(2)
        data[i + 5 : i + 9] = struct.pack(">HH", height, width)
        i += 2
    return bytes(data)


def _flip(data: bytes, rng: np.random.Generator, count: int, lo: float, hi: float) -> bytes:
    out = bytearray(data)
    start, end = int(len(out) * lo), max(int(len(out) * lo) + 1, int(len(out) * hi))
    for pos in rng.integers(start, end, count):
        out[pos] = (out[pos] + int(rng.integers(1, 256))) % 256
    return bytes(out)


def _zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/malformed_corpus.py OUT_DIR")
    cases = make(Path(sys.argv[1]))
    for c in cases:
        print(f"{c.path.name:32} {c.path.stat().st_size:>10,}  {c.expect or '-':18} {c.what}")
    print(f"{len(cases)} files in {sys.argv[1]}")
