"""Hostile uploads for the HTTP API (issue 13): files that try to make the server read other
files or URLs, decode far more than they declare, or change size mid-stream.

    python tests/hostile_corpus.py OUT_DIR SECRET URL   # writes the files, prints a table

Every file is generated. `make(out, secret, url)` returns `malformed_corpus.Case`s: `secret`
is a valid video on the server's disk and `url` a loopback URL that counts its hits; no
case may translate either. Expected codes assume `malformed_corpus.LIMITS`.
"""

from __future__ import annotations

import io
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from malformed_corpus import LIMITS, Case, encode_image, encode_video, pattern_frames


def make(out: Path, secret: Path, url: str) -> list[Case]:
    out.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, data: bytes | str, expect: str | None, what: str) -> None:
        path = out / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        cases.append(Case(path, expect, what))

    def hls(target: str) -> str:
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{target}\n#EXT-X-ENDLIST\n"

    # 1. other files and URLs named by playlists and lists, whatever the upload's name
    for i, target in enumerate([str(secret), f"file://{secret}", url, f"{url}/x.ts"]):
        for name in (f"hls_{i}.m3u8", f"hls_{i}.mp4"):
            add(name, hls(target), "invalid_video", f"HLS playlist naming {target}")
    add("concat.ffconcat", f"ffconcat version 1.0\nfile '{secret}'\n", "invalid_video", "concat list")
    add("concat.mp4", f"ffconcat version 1.0\nfile '{secret}'\n", "invalid_video", "concat list as .mp4")
    add("dash.mpd", f'<?xml version="1.0"?><MPD><BaseURL>{url}</BaseURL></MPD>', "invalid_video", "DASH manifest")  # fmt: skip
    add("ansi.ans", "\x1b[31mHELLO\x1b[0m\n" * 50, "invalid_video", "ANSI art")
    add("notes.txt", "hello world\n" * 50, "invalid_video", "text")
    add("subs.mp4", "WEBVTT\n\n00:00.000 --> 00:01.000\nHELLO\n", "invalid_video", "WebVTT as .mp4")
    add("img%03d.png", encode_image("png"), "not_a_video", "an image-sequence pattern name")
    add("still.gif", _gif(), "not_a_video", "a still GIF")

    # 3. frame-count bombs: thousands of tiny frames in every container, and a long one
    many = pattern_frames(LIMITS["max_frames"] * 3, 16)
    for fmt, codec, ext in [("matroska", "libx264", "mkv"), ("webm", "libvpx-vp9", "webm"),
                            ("mp4", "libx264", "mp4"), ("avi", "mjpeg", "avi")]:  # fmt: skip
        add(f"bomb.{ext}", encode_video(many, fmt, codec, fps=1000), "too_many_frames", f"{len(many)} frames in {fmt}")  # fmt: skip
    add("long.mkv", encode_video(pattern_frames(30, 16), "matroska", "libx264", fps=1), "too_long", "30 s at 1 fps, Matroska")  # fmt: skip
    add("understated.mkv", _understated(), "too_long", "30 s whose header says 2 s")

    # 4. a frame size change mid-stream, past the pixel limit
    add("grows.mkv", _growing(), "too_many_pixels", "64×64 frames, then 2048×1152")
    return cases


def _understated() -> bytes:
    """30 s of Matroska (1 fps) whose header's Duration element says 2 s."""
    data = bytearray(encode_video(pattern_frames(30, 16), "matroska", "libx264", fps=1))
    i = data.find(b"\x44\x89\x88")  # Duration, an 8-byte float in milliseconds
    data[i + 3 : i + 11] = struct.pack(">d", 2000.0)
    return bytes(data)


def _gif() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="gif") as out:
        stream = out.add_stream("gif", rate=1)
        stream.width = stream.height = 32
        stream.pix_fmt = "rgb8"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(pattern_frames(1, 32)[0], format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def _growing() -> bytes:
    """Motion-JPEG in Matroska: a stream declared 64×64 whose last frames are 2048×1152."""
    small, big = pattern_frames(4, 64), pattern_frames(2, (1152, 2048))
    packets = _mjpeg_packets(small) + _mjpeg_packets(big)
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuvj420p"
        for i, packet in enumerate(packets):
            packet.stream = stream
            packet.pts = packet.dts = i
            packet.time_base = Fraction(1, 25)
            out.mux(packet)
    return buf.getvalue()


def _mjpeg_packets(frames: np.ndarray) -> list:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.height, codec.width = frames.shape[1:3]
    codec.pix_fmt, codec.time_base = "yuvj420p", Fraction(1, 25)
    packets = []
    for rgb in frames:
        packets += codec.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p"))  # fmt: skip
    return packets + codec.encode(None)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python tests/hostile_corpus.py OUT_DIR SECRET URL")
    for c in make(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]):
        print(f"{c.path.name:24} {c.path.stat().st_size:>10,}  {c.expect or '-':18} {c.what}")
