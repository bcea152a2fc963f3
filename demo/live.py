"""The demo's live mode: the webcam streamed frame by frame into a `StreamSession`, the partial
glosses and text shown while the signing goes on, and each sentence's final below.

Gradio sends the webcam's frames (`gr.Image(streaming=True)`, every `FRAME_EVERY_S`) to
`LiveHandler`, which keeps one `slt_serve.streaming.StreamSession` per browser session (in
a `gr.State`), as `/v1/stream` keeps one per connection; the frames are timed by their
arrival. Streams open at once are bounded by `Settings.stream_max_streams`, a stream's
length by `stream_max_session_s`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gradio as gr
import numpy as np

from slt_serve.settings import Settings
from slt_serve.stream_client import encode_frame
from slt_serve.streaming import StreamError, StreamLimits, StreamSession

if TYPE_CHECKING:
    from slt_serve.translator import Translator

log = logging.getLogger(__name__)

FRAME_EVERY_S = 0.08  # how often the browser sends a webcam frame (12.5 a second)


@dataclass
class _Live:
    """One browser's stream: its session, when its first frame came, the sentences so far."""

    session: StreamSession
    start: float
    finals: list[str] = field(default_factory=list)
    partial: dict = field(default_factory=dict)


def live_section(translator: Translator, settings: Settings) -> None:
    """The live mode's components and their stream handler, inside the current Blocks."""
    with gr.Accordion("Live: translate the webcam while you sign", open=False):
        camera = gr.Image(
            sources=["webcam"],
            streaming=True,
            type="numpy",
            label="Webcam (live)",
            webcam_options=gr.WebcamOptions(mirror=False),
            elem_id="slt-live-camera",
        )
        gloss = gr.Textbox(label="Glosses so far (pending in brackets)", elem_id="slt-live-gloss")
        text = gr.Textbox(label="Translation so far", elem_id="slt-live-text")
        finals = gr.Textbox(label="Sentences", lines=4, elem_id="slt-live-finals")
        state = gr.State(None)
    camera.stream(
        LiveHandler(translator, settings),
        inputs=[camera, state],
        outputs=[gloss, text, finals, state],
        stream_every=FRAME_EVERY_S,
        time_limit=settings.stream_max_session_s,
        concurrency_limit=settings.stream_max_streams,
        show_progress="hidden",
    )


class LiveHandler:
    """A webcam frame (RGB) and the browser's stream state in; what to show and the state out."""

    def __init__(self, translator: Translator, settings: Settings, clock=time.monotonic) -> None:
        self.translator, self.clock = translator, clock  # clock: seconds, for the frames' times
        self.limits = StreamLimits.from_settings(settings)

    def __call__(self, frame: np.ndarray | None, live: _Live | None):
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), live
        if live is None:
            session = StreamSession(self.translator, self.limits)
            session.set_fps(1.0 / FRAME_EVERY_S)
            live = _Live(session, self.clock())
        try:
            live.session.add_frame(encode_frame(self.clock() - live.start, frame[..., :3]))
        except StreamError as e:  # a frame too soon after the last: skipped
            log.debug("live: frame skipped: %s", e)
        for message in live.session.step():
            if message["type"] == "final":
                live.finals.append(f"{message['gloss']} → {message['text']}")
                live.partial = {}
            elif message["type"] == "partial":
                live.partial = message
        return (*self._shown(live), live)

    @staticmethod
    def _shown(live: _Live) -> tuple[str, str, str]:
        p = live.partial
        stable = " ".join(g["gloss"] for g in p.get("glosses", []))
        pending = " ".join(g["gloss"] for g in p.get("pending", []))
        gloss = f"{stable} [{pending}]" if pending else stable
        return gloss, p.get("text", ""), "\n".join(live.finals)
