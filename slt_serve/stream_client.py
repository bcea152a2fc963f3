"""A client of `/v1/stream` (`slt stream`, the tests, benchmarks/bench_stream.py): frames sent
as they are shown (at real time or as fast as allowed), every message received timed.

    run = stream_video(url, frames, fps=25.0, on_message=print)  # frames: (t, RGB) pairs
    run.finals, run.partials, run.end_sent_s, run.close_code

Frames go as JPEG (OpenCV), each after its 8-byte float64 timestamp (docs/streaming.md).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from slt_serve.errors import SltError
from slt_serve.streaming import HEADER

READY_WAIT_S = 10.0  # how long the sender waits for the server's `ready` before sending
FAST_SHARE = 0.8  # --fast sends at this share of the server's max_fps
DEFAULT_MAX_FPS = 25.0  # the pace when the server named no limit


@dataclass
class StreamRun:
    """What one stream sent back: (seconds since the first frame was due, message) pairs."""

    messages: list[tuple[float, dict]] = field(default_factory=list)
    end_sent_s: float | None = None  # when {"type": "end"} went, after the last frame
    close_code: int | None = None

    @property
    def partials(self) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in self.messages if m["type"] == "partial"]

    @property
    def finals(self) -> list[dict]:
        return [m for _, m in self.messages if m["type"] == "final"]

    @property
    def errors(self) -> list[dict]:
        return [m for _, m in self.messages if m["type"] == "error"]


def encode_frame(t: float, rgb: np.ndarray, quality: int = 90) -> bytes:
    """One binary frame message: float64 seconds, then the frame as JPEG."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    if not ok:
        raise SltError(f"could not encode a {rgb.shape} frame as JPEG")
    return HEADER.pack(t) + jpeg.tobytes()


def stream_video(
    url: str,
    frames: Iterable[tuple[float, np.ndarray]],
    fps: float,
    *,
    api_key: str | None = None,
    real_time: bool = True,
    on_message: Callable[[float, dict], None] | None = None,
    stop: threading.Event | None = None,
) -> StreamRun:
    """Send `frames` ((seconds, RGB) pairs) to the WebSocket at `url` (ws://host:port/v1/stream),
    each when it is due (real_time) and then `end`; receive until the server closes. Ctrl-C
    (or setting `stop`) ends the frames early: the server still sends the last final."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    headers = {"X-API-Key": api_key} if api_key else None
    stop = stop or threading.Event()
    run = StreamRun()
    try:
        ws = connect(url, additional_headers=headers, max_size=2**22, proxy=None)
    except InvalidStatus as e:
        raise SltError(f"{url} refused the stream: {_refusal(e)}") from None
    except OSError as e:
        raise SltError(f"cannot connect to {url}: {e}; is `slt serve` running?") from None
    with ws:
        start, ready = time.monotonic(), threading.Event()
        args = (ws, frames, fps, real_time, start, run, stop, ready)
        sender = threading.Thread(target=_send, args=args, daemon=True)
        sender.start()
        while True:
            try:
                _receive(ws, start, run, on_message, ready)
                break
            except KeyboardInterrupt:
                stop.set()  # the sender ends the stream; its last final still comes
            except ConnectionClosed:
                break
        sender.join()
        run.close_code = ws.close_code
    return run


def _receive(ws, start: float, run: StreamRun, on_message, ready: threading.Event) -> None:
    for raw in ws:
        arrived, message = time.monotonic() - start, json.loads(raw)
        run.messages.append((arrived, message))
        if message.get("type") == "ready":
            ready.set()
        if on_message is not None:
            on_message(arrived, message)


def _send(ws, frames, fps, real_time, start, run, stop, ready: threading.Event) -> None:
    """Frames when due (real_time), else as fast as the server's `ready.limits.max_fps` allows:
    faster, the server drops frames (`rate_limited`) and the text depends on the machine's load."""
    from websockets.exceptions import ConnectionClosed

    try:
        ws.send(json.dumps({"type": "start", "fps": fps}))
        ready.wait(READY_WAIT_S)
        period = 1.0 / _max_fps(run) if not real_time else 0.0
        for n, (t, rgb) in enumerate(frames):
            if stop.is_set():
                break
            due = start + t if real_time else start + n * period
            time.sleep(max(0.0, due - time.monotonic()))
            ws.send(encode_frame(t, rgb))
        run.end_sent_s = time.monotonic() - start
        ws.send(json.dumps({"type": "end"}))
    except ConnectionClosed:
        pass


def _max_fps(run: StreamRun) -> float:
    """The server's frame-rate limit from its `ready` message, with a margin for clock jitter."""
    ready = next((m for _, m in run.messages if m.get("type") == "ready"), {})
    return FAST_SHARE * float(ready.get("limits", {}).get("max_fps", DEFAULT_MAX_FPS))


def _refusal(e) -> str:
    body = e.response.body or b""
    try:
        return f"{e.response.status_code} {json.loads(body)['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return str(e.response.status_code)


def file_frames(path: str | os.PathLike) -> tuple[Iterator[tuple[float, np.ndarray]], float]:
    """A video file's frames as (seconds, RGB) at its own rate, and that rate."""
    from slt_serve import video

    fps = video.probe(path).fps
    return ((i / fps, rgb) for i, rgb in enumerate(video.iter_frames(path))), fps


def camera_frames(
    device: int, stop: threading.Event
) -> tuple[Iterator[tuple[float, np.ndarray]], float]:
    """A webcam's frames (OpenCV) as (seconds since the first, RGB) until `stop`, and its rate."""
    capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        raise SltError(f"no camera at device {device}; give another --camera index or a video file")  # fmt: skip
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        start = time.monotonic()
        try:
            while not stop.is_set():
                ok, bgr = capture.read()
                if not ok:
                    return
                yield time.monotonic() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), fps
