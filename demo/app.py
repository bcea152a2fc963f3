"""The Gradio demo: a video of a signer in (upload or webcam), glosses and text out.

    demo = build_demo(translator)                 # gr.Blocks
    launch(translator, host="127.0.0.1", port=7860)           # `slt demo BUNDLE`
    mount(fastapi_app, translator, path="/demo")              # `slt serve BUNDLE --demo-ui`

It shows what the HTTP API returns, for a person: the text, the glosses with the
time each was signed (a table), the time spent per stage, and the video with the
glosses and the translation drawn as they are signed (`slt_serve.render`; for a
TwoStream bundle with a pose model, the keypoints the translation read as well).
The translation is `Translator.translate` on the uploaded file, after the same
limits the API applies (`Settings`: bytes, seconds, frames, pixels); a user's
mistake (not a video, too long, …) is shown as a Gradio error message, never a
traceback. Uploaded files and outputs live in Gradio's cache, emptied of files older
than an hour.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from slt_serve.errors import SltError
from slt_serve.limits import check_video
from slt_serve.render import render_result
from slt_serve.settings import Settings
from slt_serve.uploads import Upload

if TYPE_CHECKING:
    from fastapi import FastAPI

    from slt_serve.translator import Result, Translator

log = logging.getLogger(__name__)

RENDER_SIDE = 480  # longest side of the translated video shown, in pixels
_KEEP_RENDERS = 16  # rendered files kept on disk until Gradio has copied them to its cache
_CACHE_CLEANUP = (600, 3600)  # every 10 min, delete uploads and outputs older than 1 h
SPAN_HEADERS = ["gloss", "start (s)", "end (s)", "confidence"]
TIMING_HEADERS = ["stage", "ms"]


@dataclass(frozen=True)
class VideoTranslation:
    """What the demo shows for one video."""

    result: Result
    rendered: Path | None  # MP4 with the glosses, translation (and keypoints) drawn as signed
    render_ms: float  # time spent drawing it (`slt_serve.render`: no second pose pass)

    def spans(self) -> list[list]:
        return [[s.gloss, s.start_s, s.end_s, s.confidence] for s in self.result.gloss_spans]

    def timings(self) -> list[list]:
        rows = [[stage, ms] for stage, ms in self.result.timings_ms.items()]
        if self.rendered is not None:
            rows.append(["render (demo only)", round(self.render_ms, 2)])
        return rows

    def status(self, translator: Translator) -> str:
        r = self.result
        return (
            f"{r.duration_s:.1f} s of video → {len(r.gloss_spans)} gloss(es) in "
            f"{r.timings_ms.get('total', 0.0):.0f} ms ({translator.name}, {translator.provider}); "
            f"confidence {r.confidence:.2f}" + (" (low: check this translation)" if r.low_confidence else "")
        )


class _RenderedFiles:
    """Per-call folders for rendered videos; only the latest few are kept (Gradio copies each
    into its own cache once the call returns, so a file cannot be removed at once)."""

    def __init__(self, keep: int = _KEEP_RENDERS) -> None:
        self.keep, self.folders, self.lock = keep, deque(), threading.Lock()

    def new(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="slt-demo-"))
        with self.lock:
            self.folders.append(folder)
            while len(self.folders) > self.keep:
                shutil.rmtree(self.folders.popleft(), ignore_errors=True)
        return folder


def translate_video(
    translator: Translator,
    path: str | Path,
    settings: Settings | None = None,
    render_dir: Path | None = None,
) -> VideoTranslation:
    """Check `path` against the limits, translate it, and, when `render_dir` is given, write
    the video with the result drawn on it as signed (the keypoints the translation read, for
    TwoStream with a pose model). Raises `SltError`."""
    settings = settings or Settings()
    path = Path(path)
    upload = Upload(path, path.name, path.stat().st_size if path.is_file() else 0)
    if upload.size > settings.max_bytes:
        raise SltError(
            f"`{path.name}` is {upload.size:,} bytes; the limit is {settings.max_bytes:,} "
            "(SLT_MAX_BYTES): upload a shorter or smaller video"
        )
    try:
        check_video(upload, settings)
        result = translator.translate(path)
    except SltError as e:  # name the user's file, not where the upload was spooled
        raise SltError(str(e).replace(str(path), f"`{path.name}`")) from None
    if render_dir is None:
        return VideoTranslation(result, None, 0.0)
    started = time.perf_counter()
    out = render_dir / f"{path.stem}-translated.mp4"
    render_result(translator, path, result, out, max_side=RENDER_SIDE)
    return VideoTranslation(result, out, 1000.0 * (time.perf_counter() - started))


def _user_error(e: SltError) -> gr.Error:
    return gr.Error(str(e), title="Cannot translate this", print_exception=False)


def _header(translator: Translator) -> str:
    metrics = translator.manifest.metrics.get("dev") or {}
    scores = ", ".join(f"{k} {v:g}" for k, v in metrics.items() if isinstance(v, int | float))
    what = {"single_stream": "SingleStream", "two_stream": "TwoStream", "g2t": "gloss-to-text"}
    return (
        f"# Sign language translation\n"
        f"Model **{translator.name}**: {what.get(translator.kind, translator.kind)}, "
        f"{translator.stage.upper()}, on {translator.provider}"
        + (f"; dev {scores}" if scores else "")
        + "."
    )


def build_demo(translator: Translator, settings: Settings | None = None) -> gr.Blocks:
    """The demo's page for one loaded `Translator` (video input, or glosses for a G2T bundle)."""
    settings = settings or Settings()
    renders = _RenderedFiles()
    with gr.Blocks(
        title=f"slt-serve · {translator.name}",
        analytics_enabled=False,
        delete_cache=_CACHE_CLEANUP,
    ) as demo:
        gr.Markdown(_header(translator))
        if translator.stage == "g2t":
            _gloss_page(translator)
        else:
            _video_page(translator, settings, renders)
            if translator.kind == "single_stream":
                from demo.live import live_section

                live_section(translator, settings)  # the webcam, streamed (slt_serve.streaming)
    demo.queue(default_concurrency_limit=settings.workers, max_size=settings.queue_size)
    return demo


def _video_page(translator: Translator, settings: Settings, renders: _RenderedFiles) -> None:
    with gr.Row():
        with gr.Column():
            video = gr.Video(
                sources=["upload", "webcam"],
                label="Video of a signer (upload, or record with the webcam)",
                include_audio=True,  # keep the file as uploaded: no ffmpeg re-encoding
                webcam_options=gr.WebcamOptions(mirror=False),  # hands stay on their side
                elem_id="slt-video",
            )
            button = gr.Button("Translate", variant="primary", elem_id="slt-translate")
            status = gr.Markdown(elem_id="slt-status")
        with gr.Column():
            results = _result_views()
    rendered = gr.Video(
        label="The video as translated: glosses as they are signed, the translation"
        + (", the keypoints read" if translator.kind == "two_stream" else ""),
        interactive=False,
        elem_id="slt-rendered",
    )
    button.click(
        _video_handler(translator, settings, renders),
        inputs=video,
        outputs=[*results, rendered, status],
        api_name="translate",
    )


def _result_views() -> list:
    """The translation, the glosses, their time spans and the time per stage."""
    text = gr.Textbox(label="Translation", lines=2, interactive=False, elem_id="slt-text")
    gloss = gr.Textbox(label="Glosses", interactive=False, elem_id="slt-gloss")
    spans = gr.Dataframe(
        headers=SPAN_HEADERS,
        datatype=["str", "number", "number"],
        label="Glosses and when they were signed",
        interactive=False,
        elem_id="slt-spans",
    )
    timings = gr.Dataframe(
        headers=TIMING_HEADERS,
        datatype=["str", "number"],
        label="Time per stage",
        interactive=False,
        elem_id="slt-timings",
    )
    return [text, gloss, spans, timings]


def _video_handler(translator: Translator, settings: Settings, renders: _RenderedFiles | None):
    """The button's handler: a video path in; text, glosses, spans, timings, video, status out."""

    def run(path: str | None):
        if not path:
            raise gr.Error("Upload a video or record one with the webcam first.", title="No video")
        try:
            done = translate_video(
                translator, path, settings, renders.new() if renders is not None else None
            )
        except SltError as e:
            raise _user_error(e) from None
        except Exception:
            log.exception("demo: translating %s failed", Path(path).name)
            raise gr.Error(
                "Translation failed on the server (logged); it is not your video's fault."
            ) from None
        r = done.result
        return (
            r.text,
            r.gloss,
            done.spans(),
            done.timings(),
            None if done.rendered is None else str(done.rendered),
            done.status(translator),
        )

    return run


def _gloss_page(translator: Translator) -> None:
    with gr.Row():
        with gr.Column():
            source = gr.Textbox(
                label="Glosses (space-separated)", placeholder="REGEN MORGEN", elem_id="slt-source"
            )
            button = gr.Button("Translate", variant="primary", elem_id="slt-translate")
        with gr.Column():
            text = gr.Textbox(label="Translation", lines=2, interactive=False, elem_id="slt-text")
            timings = gr.Dataframe(
                headers=TIMING_HEADERS, label="Time per stage", interactive=False
            )

    def run(glosses: str):
        try:
            r = translator.translate_gloss(glosses or "")
        except SltError as e:
            raise _user_error(e) from None
        return r.text, [[k, v] for k, v in r.timings_ms.items()]

    gr.on([button.click, source.submit], run, source, [text, timings], api_name="translate")


def _auth(settings: Settings):
    """With an API key set (SLT_API_KEY), the demo asks for it too: a login page where the
    password is the key (any user name); a browser cannot send the X-API-Key header."""
    if settings.api_key is None:
        return None
    key = settings.api_key.get_secret_value().encode()
    return lambda _user, password: secrets.compare_digest(password.encode(), key)


def mount(
    app: FastAPI,
    translator: Translator,
    settings: Settings | None = None,
    path: str = "/demo",
) -> FastAPI:
    """Serve the demo under `path` of a FastAPI app (the HTTP API's, for `--demo-ui`)."""
    settings = settings or Settings()
    demo = build_demo(translator, settings)
    return gr.mount_gradio_app(
        app,
        demo,
        path=path,
        server_name=settings.host,
        server_port=settings.port,
        max_file_size=settings.max_bytes,
        auth=_auth(settings),
    )


def launch(
    translator: Translator,
    settings: Settings | None = None,
    *,
    share: bool = False,
    block: bool = True,
) -> gr.Blocks:
    """Run the demo's own server on `settings.host:settings.port` (`slt demo`).

    share=True asks Gradio for a public *.gradio.live link (through Gradio's servers);
    off by default. block=False returns once the server is up (tests)."""
    settings = settings or Settings()
    demo = build_demo(translator, settings)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=share,
        max_file_size=settings.max_bytes,
        auth=_auth(settings),
        prevent_thread_lock=not block,
        quiet=True,
    )
    return demo
