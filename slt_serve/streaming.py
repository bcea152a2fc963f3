"""Live translation: frames arriving one by one → partial glosses and text → a final per sentence.

One `StreamSession` per connection (`/v1/stream`, `slt_serve.routers.stream`) holds all of
a stream's state; the `Translator` stays stateless. Its steps, as frames arrive:

1. `add_frame(t, image)`: cheap checks while receiving (image type and size read from the
   header, timestamps increasing, the frame rate and session length under the limits);
2. `step()` (on a worker): decode the images (OpenCV), resample to the bundle's fps from
   their timestamps (`video.Resampler`, as `translate_frames` does), `S2GRunner.prepare`;
3. the recogniser runs in windows of `core` frames with `context_frames` neighbours each
   side (S3D's temporal receptive field, as the Translator windows long videos:
   `S2GRunner.run_core`): a window is *committed* once its right context has arrived, and
   only the frames that windows still need are kept prepared, so the work per new frame is
   bounded whatever the stream's length (the sentence's frames are kept for its final
   result, at most `max_sentence_s` of them, at the bundle's square `frame_size` where
   that changes nothing for the recogniser);
4. every `partial_interval_s` of video, the uncommitted tail runs once more as if the
   stream ended there; CTC over committed + tail gives the glosses with their spans, a
   gloss is *stable* once a committed step follows it (`glosses`), the others are
   `pending`; the sentence so far is translated when its glosses changed;
5. a sentence closes when the committed steps end in a pause (the blank posterior at
   least `PAUSE_BLANK` for `pause_s`) after at least one gloss, when it reaches
   `max_sentence_s`, or when the stream ends (`finish`): its final result is the
   Translator's on exactly that sentence's frames (`Translator.recognise_frames`, the
   offline windows), so a stream of one sentence ends with what `translate_frames` gives
   on the same decoded frames. The next sentence starts with the frames after the cut.

Messages out are plain dicts (`partial`, `final`, `error`); docs/streaming.md has the protocol.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from slt_serve.errors import SltError
from slt_serve.s2g import FEATURE_STRIDE
from slt_serve.settings import Settings
from slt_serve.translator import BLANK_ID, Result, Translator
from slt_serve.video import Resampler, resize

log = logging.getLogger(__name__)

PAUSE_BLANK = 0.9  # blank posterior at which a committed step counts as a pause
HEADER = struct.Struct("<d")  # a binary frame message: float64 seconds, then the image bytes


class StreamError(SltError):
    """A message the stream refuses (`code` for the client); the session goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StreamLimits:
    """What one stream may send and when its sentences close (from `Settings`)."""

    max_fps: float = 60.0  # frames per second of stream time
    max_frame_bytes: int = 2_000_000  # one encoded image
    max_pixels: int = 3840 * 2160  # width × height of one image
    max_session_s: float = 3600.0  # stream time of one connection
    pause_s: float = 3.0  # blank run that closes a sentence
    max_sentence_s: float = 20.0  # a sentence is closed at this length whatever
    partial_interval_s: float = 0.5  # stream time between partial results

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        """Each limit from its `stream_` setting, but the image size from `max_pixels`, the
        uploads' own limit; no sentence longer than an upload may be (`max_seconds`)."""
        own = {
            f.name: getattr(settings, f"stream_{f.name}")
            for f in fields(cls)
            if f.name != "max_pixels"
        }
        limits = cls(**own, max_pixels=settings.max_pixels)
        return replace(limits, max_sentence_s=min(limits.max_sentence_s, settings.max_seconds))


@dataclass
class _Sentence:
    """The frames of the sentence being signed, and the recogniser's output on them so far."""

    index: int
    start_frame: int  # global output-frame index of its first frame
    squares: list[np.ndarray] = field(default_factory=list)  # frame_size², per output frame
    prepared: list[np.ndarray] = field(default_factory=list)  # from frame `first` on
    first: int = 0
    committed: int = 0  # frames whose steps are final (a multiple of the core)
    log_probs: list[np.ndarray] = field(default_factory=list)  # committed steps, per window
    features: list[np.ndarray] = field(default_factory=list)
    last_gloss: str | None = None
    last_text: str = ""


class StreamSession:
    """One stream's state; see the module docstring. `add_frame` on the receiving side,
    `step` and `finish` on a worker (one at a time)."""

    def __init__(self, translator: Translator, limits: StreamLimits) -> None:
        if translator.stage == "g2t" or translator.s2g is None:
            raise SltError(f"bundle {translator.name} does not read video; stream to an S2G/S2T model")  # fmt: skip
        if translator.kind == "two_stream":
            raise SltError(f"bundle {translator.name} is two_stream: streaming reads single_stream bundles")  # fmt: skip
        self.translator, self.limits, spec = translator, limits, translator.spec
        self.fps = spec.fps
        self.context = spec.context_frames
        self.core = max(FEATURE_STRIDE, self.context)  # frames committed per window
        self.src_fps = spec.fps
        self._squares_ok: bool | None = None  # keeping frames at frame_size changes nothing
        self._lock = threading.Lock()
        self._inbox: list[tuple[float, bytes]] = []
        self.pending_bytes = 0
        self._last_t: float | None = None
        self._t0: float | None = None
        self._resampler: Resampler | None = None
        self._frames = 0  # output frames so far
        self._next_partial = 0
        self.sentence = _Sentence(0, 0)
        self.frames_received = 0

    # --- receiving (event loop) ----------------------------------------------------------

    def set_fps(self, fps: float) -> None:
        """The camera's frame rate (before the first frame): the resampler's source period."""
        if self._last_t is not None:
            raise StreamError("bad_message", "`start` must come before the first frame")
        if not (isinstance(fps, int | float) and 0 < fps <= self.limits.max_fps):
            raise StreamError("bad_message", f"fps must be in (0, {self.limits.max_fps:g}]")
        self.src_fps = float(fps)

    def add_frame(self, message: bytes) -> None:
        """A binary frame message (8-byte little-endian float64 seconds, then a JPEG, PNG or
        WebP image); refused with a `StreamError` saying why, the session going on."""
        t, image = self._parse(message)
        with self._lock:
            self._inbox.append((t, image))
            self.pending_bytes += len(image)
            self._last_t = t
            self._t0 = t if self._t0 is None else self._t0
            self.frames_received += 1

    def _parse(self, message: bytes) -> tuple[float, bytes]:
        lim = self.limits
        if len(message) <= HEADER.size:
            raise StreamError("bad_frame", "a frame is 8 bytes of float64 seconds, then an image")
        if len(message) - HEADER.size > lim.max_frame_bytes:
            raise StreamError("too_large", f"the image is over {lim.max_frame_bytes:,} bytes; send smaller frames")  # fmt: skip
        (t,) = HEADER.unpack_from(message)
        image = message[HEADER.size :]
        if not math.isfinite(t) or t < 0:
            raise StreamError("bad_timestamp", f"timestamp {t!r} must be a finite number of seconds ≥ 0")  # fmt: skip
        if self._last_t is not None and t < self._last_t + 0.999 / lim.max_fps:
            raise StreamError("too_fast", f"frame at {t:.3f} s after {self._last_t:.3f} s: timestamps must increase, at most {lim.max_fps:g} frames a second")  # fmt: skip
        if self._t0 is not None and t - self._t0 > lim.max_session_s:
            raise StreamError("session_too_long", f"the stream is over {lim.max_session_s:g} s; start a new one")  # fmt: skip
        size = image_size(image)
        if size is None:
            raise StreamError("bad_image", "the frame is not a JPEG, PNG or WebP image")
        if size[0] * size[1] > lim.max_pixels or 0 in size:
            raise StreamError("too_large", f"the frame is {size[0]}×{size[1]}; the limit is {lim.max_pixels:,} pixels")  # fmt: skip
        return t, image

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._inbox)

    # --- on a worker -----------------------------------------------------------------------

    def step(self) -> list[dict]:
        """Take the frames received so far in: partial and final messages now due."""
        with self._lock:
            inbox, self._inbox, self.pending_bytes = self._inbox, [], 0
        if self._resampler is None:
            self._resampler = Resampler(self.src_fps, self.fps)
        out: list[dict] = []
        for t, image in inbox:
            out += self._add_output(self._resampler.push(t, image))
        return out

    def finish(self) -> list[dict]:
        """The stream ended: what is left, and the last sentence's final result."""
        out = self.step()
        if self._resampler is not None:
            out += self._add_output(self._resampler.finish())
        s = self.sentence
        if s.squares:  # it lasts until the last frame's end, as translate_frames counts it
            shown = self._last_t - self._t0 + 1.0 / self.src_fps - s.start_frame / self.fps
            out.append(self._close(len(s.squares), "end", min(shown, len(s.squares) / self.fps)))
        return out

    def _add_output(self, picked: list[tuple[bytes, int]]) -> list[dict]:
        out: list[dict] = []
        for image, repeats in picked:
            frame = decode_image(image)
            if frame is None:
                out.append(error("bad_image", "a frame could not be decoded; it is skipped"))
                continue
            square = self._kept(frame)
            prepared, _ = self.translator.s2g.prepare(square)
            for _ in range(repeats):
                out += self._add_frame(square, prepared)
        return out

    def _kept(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the sentence keeps it: at the square frame_size when the recogniser's
        preprocessing gives the same input from it as from the full frame (checked once, on
        the first frame: true where `prepare` starts by that resize), else whole."""
        square = resize(frame, self.translator.spec.frame_size)
        if self._squares_ok is None:
            prepare = self.translator.s2g.prepare
            self._squares_ok = bool(np.array_equal(prepare(square)[0], prepare(frame)[0]))
        return square if self._squares_ok else frame

    def _add_frame(self, square: np.ndarray, prepared: np.ndarray) -> list[dict]:
        s = self.sentence
        s.squares.append(square)
        s.prepared.append(prepared)
        self._frames += 1
        out: list[dict] = []
        if len(s.squares) >= s.committed + self.core + self.context:
            self._commit(s)
            cut = self._pause_end(s)
            if cut is not None:
                return [self._close(cut, "pause")]
        if len(s.squares) >= self.limits.max_sentence_s * self.fps and s.committed:
            return [self._close(s.committed, "max_length")]
        if self._frames >= self._next_partial:
            self._next_partial = self._frames + max(1, round(self.limits.partial_interval_s * self.fps))  # fmt: skip
            out.append(self._partial(s))
        return out

    def _commit(self, s: _Sentence) -> None:
        """Run the next window whose right context has arrived; drop frames no longer needed."""
        n = len(s.squares)
        lp, feat = self.translator.s2g.run_core(s.prepared, [], s.first, s.committed, s.committed + self.core, n)  # fmt: skip
        s.log_probs.append(lp)
        s.features.append(feat)
        s.committed += self.core
        keep = max(0, s.committed - self.context - 1)  # one more for the motion difference
        del s.prepared[: keep - s.first]
        s.first = keep

    def _pause_end(self, s: _Sentence) -> int | None:
        """Where to close the sentence: the committed frames, when they end in a pause after
        at least one gloss."""
        blank = np.exp(np.concatenate(s.log_probs)[:, BLANK_ID])
        need = math.ceil(self.limits.pause_s * self.fps / FEATURE_STRIDE)
        run = _trailing(blank)
        if need <= run < len(blank):
            return s.committed
        return None

    def _partial(self, s: _Sentence) -> dict:
        """Glosses (stable / pending) and text of the sentence so far."""
        n = len(s.squares)
        lps, feats = list(s.log_probs), list(s.features)
        if n > s.committed:
            lp, feat = self.translator.s2g.run_core(s.prepared, [], s.first, s.committed, n, n)
            lps.append(lp)
            feats.append(feat)
        log_probs, features = np.concatenate(lps), np.concatenate(feats)
        glosses = self.translator.from_recognition(log_probs, features, n / self.fps, text=False)
        if glosses.gloss != s.last_gloss and glosses.gloss and n >= self.fps:  # ≥ 1 s signed
            words = self.translator.from_recognition(log_probs, features, n / self.fps)
            s.last_text = words.text
        s.last_gloss = glosses.gloss
        offset = s.start_frame / self.fps
        stable_until = (s.committed - FEATURE_STRIDE) / self.fps
        spans = [_shifted(span, offset) for span in glosses.to_dict()["gloss_spans"]]
        return {
            "type": "partial",
            "sentence": s.index,
            "t": round(self._frames / self.fps, 3),
            "glosses": [x for x in spans if x["end_s"] - offset <= stable_until],
            "pending": [x for x in spans if x["end_s"] - offset > stable_until],
            "text": s.last_text,
        }

    def _close(self, cut: int, reason: str, duration: float | None = None) -> dict:
        """The final result of the sentence's first `cut` frames; the rest start the next."""
        s = self.sentence
        frames = iter(s.squares[:cut])  # as received (or at frame_size: the same to prepare)
        result = self.translator.recognise_frames(frames, duration or cut / self.fps)
        message = final_message(result, s.index, s.start_frame / self.fps, reason)
        rest = s.squares[cut:]
        self.sentence = _Sentence(s.index + 1, s.start_frame + cut)
        self._frames -= len(rest)
        for square in rest:  # re-fed: the new sentence's windows start at its first frame
            self._add_frame(square, self.translator.s2g.prepare(square)[0])
        return message


def _trailing(blank: np.ndarray) -> int:
    """How many steps at the end are pauses."""
    above = blank >= PAUSE_BLANK
    if above.all():
        return len(above)
    return len(above) - 1 - int(np.flatnonzero(~above)[-1])


def _shifted(span: dict, offset: float) -> dict:
    return {**span, "start_s": round(span["start_s"] + offset, 3), "end_s": round(span["end_s"] + offset, 3)}  # fmt: skip


def final_message(result: Result, sentence: int, offset: float, reason: str) -> dict:
    """A sentence's result as the `final` message: spans in stream time."""
    body = result.to_dict()
    body["gloss_spans"] = [_shifted(s, offset) for s in body["gloss_spans"]]
    return {
        "type": "final",
        "sentence": sentence,
        "reason": reason,
        "start_s": round(offset, 3),
        "end_s": round(offset + result.duration_s, 3),
        **body,
    }


def error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


def decode_image(data: bytes) -> np.ndarray | None:
    """A JPEG, PNG or WebP image → (H, W, 3) uint8 RGB, or None when it does not decode."""
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        return None
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a JPEG, PNG or WebP header (before decoding anything), or
    None when the bytes are none of these."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame size in the first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None
