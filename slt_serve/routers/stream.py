"""WebSocket /v1/stream: frames in as they are captured, partial and final results out.

The protocol is in docs/streaming.md (and the OpenAPI page's description); the state of a
stream lives in its `slt_serve.streaming.StreamSession`. This module receives and checks
messages, enforces the limits that need a clock (frames per second of arrival, the idle
timeout, streams open at once) and runs the session's work on the worker pool
(`Service.run`), one step at a time, taking in all the frames that arrived meanwhile.
A refused message gets an `error` message and the stream goes on; a stream ends with a
close code: 1000 (ended by the client, idle, or over its length), 1008 (too many refused
messages), 1011 (inference failed on the server). Full (`stream_max_streams`), a wrong
API key or a model that does not read video: the handshake is answered 503/401/400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from slt_serve.errors import ApiError, SltError
from slt_serve.routers.schema import error_response
from slt_serve.routers.state import Service, require_key
from slt_serve.streaming import StreamError, StreamLimits, StreamSession, error

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])

ENDPOINT = "/v1/stream"
MAX_REFUSED = 100  # refused messages before the stream is closed (1008)
MAX_BEHIND_S = 10.0  # seconds of frames waiting for the worker before new ones are dropped
MAX_BEHIND_BYTES = 32_000_000  # bytes of images waiting for the worker, likewise
MAX_TEXT = 4096  # characters of a control message


@dataclass
class _Stream:
    """One connection's socket side: the session, a send lock, its wake-up and counters."""

    ws: WebSocket
    session: StreamSession
    svc: Service
    wake: asyncio.Event
    lock: asyncio.Lock
    ending: bool = False
    refused: int = 0
    tokens: float = 0.0
    refilled: float = 0.0

    async def send(self, *messages: dict) -> None:
        async with self.lock:
            for m in messages:
                await self.ws.send_json(m)


@router.websocket(ENDPOINT)
async def stream(websocket: WebSocket):
    """Live translation; see docs/streaming.md for the messages."""
    svc: Service = websocket.app.state.service
    refusal = _refusal(websocket, svc)
    if refusal is not None:
        svc.outcomes.add_error(refusal.status, refusal.code, ENDPOINT)
        return await _deny(websocket, refusal)
    svc.metrics.streams.inc()
    outcome: tuple[str, str | None] = ("disconnected", None)
    try:
        session = StreamSession(svc.translator, StreamLimits.from_settings(svc.settings))
        await websocket.accept()
        s = _Stream(websocket, session, svc, asyncio.Event(), asyncio.Lock())
        s.tokens, s.refilled = svc.settings.stream_max_fps, time.monotonic()
        await s.send(_ready(svc, session.limits))
        outcome = await _serve(s)
    finally:
        svc.streams.leave()
        svc.metrics.streams.dec()
        svc.outcomes.add(*outcome, ENDPOINT)


def _refusal(websocket: WebSocket, svc: Service) -> ApiError | None:
    """Why the handshake is refused (key, model, full), or None; enters the stream gate."""
    try:
        require_key(websocket)
        if svc.translator.stage == "g2t" or svc.translator.kind == "two_stream":
            raise ApiError(400, "unsupported_by_model", f"bundle {svc.translator.name} ({svc.translator.kind}, {svc.translator.stage}) cannot be streamed: streaming reads single_stream video bundles")  # fmt: skip
        if svc.pool.closed:
            raise ApiError(503, "shutting_down", "the server is shutting down; retry later")
        svc.streams.enter()
    except ApiError as e:
        return e
    return None


async def _deny(websocket: WebSocket, e: ApiError) -> None:
    """An HTTP error answer to the handshake where the server can send one, else a close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(e.status, e.code, str(e), e.headers))
    else:
        await websocket.close(1013 if e.status == 503 else 1008, reason=e.code)


def _ready(svc: Service, lim: StreamLimits) -> dict:
    """The first message: the model and the limits this session enforces (its `StreamLimits`)."""
    t = svc.translator
    return {
        "type": "ready",
        "model": t.name,
        "digest": t.digest,
        "fps": t.spec.fps,
        "limits": {
            "max_fps": lim.max_fps,
            "max_frame_bytes": lim.max_frame_bytes,
            "max_pixels": lim.max_pixels,
            "max_session_s": lim.max_session_s,
            "idle_timeout_s": svc.settings.stream_idle_timeout_s,  # enforced here, not by the session
            "pause_s": lim.pause_s,
            "max_sentence_s": lim.max_sentence_s,
        },
    }


async def _serve(s: _Stream) -> tuple[str, str | None]:
    """Receive until the stream ends; the outcome to count."""
    worker = asyncio.create_task(_work(s))
    try:
        code, why = await _receive(s, worker)
    except WebSocketDisconnect:
        worker.cancel()
        return "disconnected", None
    if code != 1000:
        worker.cancel()
    elif not worker.done():
        s.ending = True
        s.wake.set()
    try:
        await worker
    except ApiError as e:
        code, why = 1011, e.code
        await s.send(error(e.code, str(e)))
    except WebSocketDisconnect:
        return "disconnected", None
    except asyncio.CancelledError:
        if code == 1000:  # cancelled with the connection, not by us
            raise
    except Exception:  # a bug here, not the client's: logged, and the stream closed cleanly
        log.exception("stream failed")
        code, why = 1011, "internal_error"
        await s.send(error(why, "internal error; the server logged it"))
    if s.ws.client_state == WebSocketState.CONNECTED:
        await s.ws.close(code, reason=why or "")
    if code == 1011:
        return "server_errors", why
    return ("ok", None) if code == 1000 else ("client_errors", why)


async def _receive(s: _Stream, worker: asyncio.Task) -> tuple[int, str | None]:
    """Messages until the client ends the stream (or goes idle, or is refused too often):
    the close code and reason."""
    idle = s.svc.settings.stream_idle_timeout_s
    while True:
        receiving = asyncio.ensure_future(s.ws.receive())
        await asyncio.wait({receiving, worker}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
        if not receiving.done():
            receiving.cancel()
            if worker.done():  # it failed: _serve tells the client
                return 1000, "worker ended"
            await s.send(error("idle_timeout", f"nothing received for {idle:g} s; the stream ends"))  # fmt: skip
            return 1000, "idle"
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            if _take(s, message) == "end":
                return 1000, "end"
        except StreamError as e:
            s.refused += 1
            await s.send(error(e.code, str(e)))
            if e.code == "session_too_long":
                return 1000, e.code
            if s.refused >= MAX_REFUSED:
                return 1008, "too_many_errors"


def _take(s: _Stream, message: dict) -> str | None:
    """One message into the session; "end" when the client ends the stream."""
    if message.get("bytes") is not None:
        _admit(s)
        s.session.add_frame(message["bytes"])
        s.svc.metrics.stream_frames.inc()
        s.wake.set()
        return None
    text = message.get("text") or ""
    if len(text) > MAX_TEXT:
        raise StreamError("bad_message", f"a text message is at most {MAX_TEXT} characters")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise StreamError("bad_message", 'text messages are JSON: {"type": "start", "fps": 25} or {"type": "end"}') from None  # fmt: skip
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "end":
        return "end"
    if kind == "start":
        s.session.set_fps(data.get("fps"))
        return None
    raise StreamError("bad_message", f'unknown message type {kind!r}; send "start", "end" or binary frames')  # fmt: skip


def _admit(s: _Stream) -> None:
    """Frames arriving faster than `stream_max_fps` (1 s of burst), or while the workers are
    more than `MAX_BEHIND_S` behind, are refused."""
    rate = s.svc.settings.stream_max_fps
    now = time.monotonic()
    s.tokens = min(rate, s.tokens + (now - s.refilled) * rate)
    s.refilled = now
    if s.tokens < 1:
        raise StreamError("rate_limited", f"frames arrive faster than {rate:g} a second; this one is dropped")  # fmt: skip
    if s.session.pending > rate * MAX_BEHIND_S or s.session.pending_bytes > MAX_BEHIND_BYTES:
        raise StreamError("behind", "the server is behind on this stream; this frame is dropped")
    s.tokens -= 1


async def _work(s: _Stream) -> None:
    """The session's steps on the worker pool, then its finish once the client has ended."""
    svc = s.svc
    while True:
        await s.wake.wait()
        s.wake.clear()
        if s.session.pending:
            try:
                await s.send(*_observed(svc, await svc.run(s.session.step, what="stream")))
            except ApiError as e:
                if e.code != "busy":
                    raise
                await s.send(error("busy", f"{e}; the frames wait"))
                await asyncio.sleep(1.0)
                s.wake.set()
                continue
            except SltError as e:
                await s.send(error("invalid_stream", str(e)))
        if s.ending and not s.session.pending:
            break
    await s.send(*_observed(svc, await svc.run(s.session.finish, what="stream")))


def _observed(svc: Service, messages: list[dict]) -> list[dict]:
    """The messages, each final's stage timings observed in the metrics."""
    for m in messages:
        if m["type"] == "final":
            svc.metrics.observe_stages(m["timings_ms"])
    return messages


PROTOCOL = """
## Live translation: WebSocket `/v1/stream`

OpenAPI does not describe WebSockets; this is the protocol (docs/streaming.md has more).
Connect with the `X-API-Key` header when the server has a key. The handshake is answered
503 when `SLT_STREAM_MAX_STREAMS` streams are open, 401 without the key, 400 when the
model does not read video.

**Client → server**
- text `{"type": "start", "fps": 25}` (optional, before the first frame): the camera's rate;
- binary: one frame = 8 bytes little-endian float64 timestamp in seconds, then a JPEG, PNG
  or WebP image; timestamps increase;
- text `{"type": "end"}`: the stream is over; the server answers the last `final`, then closes (1000).

**Server → client** (JSON text)
- `ready`: `model`, `digest`, `fps` (the model's), `limits`;
- `partial`: `sentence` (0, 1, …), `t` (stream seconds seen), `glosses` (stable spans:
  `gloss`, `start_s`, `end_s`, `confidence`), `pending` (spans that may still change),
  `text` (translation of the sentence so far);
- `final`: `sentence`, `reason` (`pause`, `max_length`, `end`), `start_s`, `end_s`, and the
  fields of a `/v1/translate` answer (`gloss`, `text`, `gloss_spans` in stream time,
  `score`, `confidence`, `low_confidence`, …);
- `error`: `code`, `message`; the stream goes on, except after 100 of them (close 1008),
  `session_too_long` and `idle_timeout` (close 1000), or a server failure (close 1011).
"""
