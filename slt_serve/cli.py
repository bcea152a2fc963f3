"""The `slt` command.

The runtime's own commands live here; the training and export stacks add
theirs through the `slt_serve.commands` entry-point group, so `slt_serve`
never imports them and a serving-only install still has a working `slt`.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import typer

from slt_serve import __version__
from slt_serve.errors import SltError
from slt_serve.extras import install_hint
from slt_serve.sample_model import choose_bundle, sample_videos

app = typer.Typer(
    name="slt",
    help="Sign language translation: prepare data, train, evaluate, export and serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options that several commands take, declared once so their flags and help stay the same.
BundleArg = typer.Argument(None, help="Bundle folder (made by `slt export`).")
BundleOpt = typer.Option(None, "--bundle", "-b", help="Bundle folder (made by `slt export`).")
DeviceOpt = typer.Option("auto", help="auto (CUDA when onnxruntime has it), cpu or cuda.")


def setting_opt(field: str, what: str):
    """An option that overrides the `Settings` field `field` (unset: its SLT_ variable)."""
    return typer.Option(None, help=f"{what} (SLT_{field.upper()}).")


MaxSecondsOpt = setting_opt("max_seconds", "Longest video")


def sample_opt(verb: str):
    """`--sample`: what a command does (`verb`) with the sample model instead of a bundle."""
    return typer.Option(False, "--sample", help=f"{verb} the small sample model shipped with slt.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slt-serve {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command("doctor")
def doctor(
    dataset: Path = typer.Argument(
        None, help="Dataset root to inspect too: what is prepared and which step is next."
    ),
) -> None:
    """Check this machine (Python, packages, GPU, onnxruntime, torch, disk, video codecs, known
    traps) and optionally a dataset root; print what to fix. Exit 1 if any check fails."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from slt_serve.doctor import run_doctor

    report = run_doctor(dataset)
    style = {"ok": "green", "warn": "yellow", "fail": "bold red", "info": "dim"}
    table = Table("check", "status", "detail", "fix", title="slt doctor", show_lines=False)
    for c in report.checks:
        table.add_row(
            escape(c.name), f"[{style[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix)
        )
    Console(width=max(Console().width, 140)).print(table)
    counts = {s: sum(1 for c in report.checks if c.status == s) for s in style}
    typer.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if report.next_step:
        typer.secho(f"next: {report.next_step}", fg=typer.colors.CYAN)
    if report.failed:
        raise typer.Exit(1)


def _register_plugins() -> None:
    for ep in entry_points(group="slt_serve.commands"):
        try:
            register = ep.load()
        except ImportError as e:  # a stack whose extra is not installed
            logging.getLogger(__name__).debug("commands %s unavailable: %s", ep.name, e)
            continue
        register(app)


_register_plugins()


# --- serving: the HTTP API and offline batch translation ---------------------------------


def _settings(**options):
    """Settings from SLT_* environment variables; of a command's `options`, those named after a
    Settings field and given on the command line win."""
    from pydantic import ValidationError

    from slt_serve.settings import Settings

    given = {k: v for k, v in options.items() if k in Settings.model_fields and v is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise SltError(f"setting {where} (option or SLT_{where.upper()}): {err['msg']}") from None


@app.command("serve")
def serve(
    ctx: typer.Context,
    bundle: str = BundleArg,
    sample: bool = sample_opt("Serve"),
    host: str = setting_opt("host", "Address to bind"),
    port: int = setting_opt("port", "Port"),
    workers: int = setting_opt("workers", "Inferences at once"),
    queue_size: int = setting_opt(
        "queue_size", "Requests that may wait beyond the workers; then 503"
    ),
    max_bytes: int = setting_opt("max_bytes", "Largest upload"),
    max_seconds: float = MaxSecondsOpt,
    max_frames: int = setting_opt("max_frames", "Most frames"),
    max_pixels: int = setting_opt("max_pixels", "Largest frame, width × height"),
    tmp_dir: str = setting_opt("tmp_dir", "Where uploads are spooled"),
    device: str = DeviceOpt,
    threads: int = typer.Option(
        0,
        help="onnxruntime intra-op threads per graph (0: OMP_NUM_THREADS if set, else every "
        "core); with "
        "--workers N on C cores, C/N keeps the workers from contending for every core.",
    ),
    window_frames: int = typer.Option(
        None,
        help="Frames per recogniser run, a multiple of 4 (default: the bundle's, set at export); "
        "fewer bound the memory of a long clip (the glosses stay those of one run for bundles "
        "exported with s2g's first_step input; older ones may change at the seams).",
    ),
    log_level: str = typer.Option("info", help="uvicorn's log level."),
    log_format: str = setting_opt(
        "log_format", "text or json: log lines as JSON objects, each with its request id"
    ),
    digest: str = typer.Option(
        None, help="Serve only the bundle with this digest (printed at start, in /v1/model)."
    ),
    demo_ui: bool = typer.Option(
        False,
        "--demo-ui",
        help='Also serve the Gradio demo at /demo (pip install "slt-serve\\[demo]").',
    ),
) -> None:
    """Serve a bundle over HTTP: POST /v1/translate (video), /v1/translate/gloss, GET /v1/model, /docs.

    Each option overrides its SLT_* environment variable; SLT_API_KEY makes /v1/* require the X-API-Key header."""
    import uvicorn

    from slt_serve.api import create_app
    from slt_serve.translator import TranslateOptions, Translator

    settings = _settings(**ctx.params)  # the options named after Settings fields (host, port, …)
    from slt_serve.observability import configure_logging

    configure_logging(settings.log_format, getattr(logging, log_level.upper(), logging.INFO))
    bundle = choose_bundle(bundle, sample)
    demo_app = _demo_app() if demo_ui else None  # before loading: a missing extra fails fast
    options = TranslateOptions(
        device=device, max_seconds=settings.max_seconds, expect_digest=digest, threads=threads,
        window_frames=window_frames,
    )  # fmt: skip
    translator = Translator.from_bundle(bundle, options)
    url = _echo_serving(bundle, translator, settings)
    app_ = create_app(translator, settings)
    if demo_app is not None:
        demo_app.mount(app_, translator, settings, path="/demo")
        typer.echo(f"demo UI at {url}/demo" + _login_note(settings))
    typer.echo(f"next: {_example_request(translator, url)}")
    from slt_serve.http_timeouts import uvicorn_options

    uvicorn.run(
        app_,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers go through configure_logging's handler
        **uvicorn_options(settings),
    )


def _echo_serving(bundle: str, translator, settings) -> str:
    """Say what is served where, under which limits (and warn of an open port); the URL."""
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"serving {bundle} ({translator.kind}, {translator.stage.upper()}, {translator.provider}, "
        f"digest {translator.digest}) at {url} with {settings.workers} worker(s), queue {settings.queue_size}; API docs at {url}/docs"
    )
    typer.echo(
        f"limits: {settings.max_bytes:,} bytes, {settings.max_seconds:g} s, "
        f"{settings.max_frames:,} frames, {settings.max_pixels:,} pixels a frame; API key "
        f"{'required' if settings.api_key else 'off'}"
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        typer.secho(
            f"warning: listening on {settings.host} with no API key; set SLT_API_KEY to require one",
            fg=typer.colors.YELLOW,
            err=True,
        )
    return url


def _api_limits():
    from slt_serve.limits import limits_for

    return limits_for(_settings(), timed=False)


def _example_request(translator, url: str) -> str:
    if translator.stage == "g2t":
        return f"""curl -H 'content-type: application/json' -d '{{"gloss": "…"}}' {url}/v1/translate/gloss"""
    return f"curl -F file=@clip.mp4 {url}/v1/translate"


@app.command("stream")
def stream(
    video: Path = typer.Argument(None, help="A video file, played at real time."),
    camera: int = typer.Option(
        None, "--camera", help="Stream this webcam (OpenCV device index) instead; Ctrl-C ends."
    ),
    url: str = typer.Option(
        "ws://127.0.0.1:8000/v1/stream", help="The server's /v1/stream (slt serve)."
    ),
    fast: bool = typer.Option(
        False, "--fast", help="Send a file's frames as fast as the server allows."
    ),
) -> None:
    """Stream a video file (at real time) or a webcam to `slt serve`'s /v1/stream; print the
    partial and final results as they come. The API key, if any, is read from SLT_API_KEY."""
    import os
    import threading

    from slt_serve import stream_client

    if (video is None) == (camera is None):
        raise SltError("give a video file or --camera INDEX (one of them)")
    stop = threading.Event()
    if video is not None:
        frames, fps = stream_client.file_frames(video)
    else:
        frames, fps = stream_client.camera_frames(camera, stop)
    key = os.environ.get("SLT_API_KEY")
    run = stream_client.stream_video(
        url, frames, fps, api_key=key, real_time=not fast and video is not None,
        on_message=_echo_stream_message, stop=stop,
    )  # fmt: skip
    if run.close_code != 1000:
        raise SltError(f"the server closed the stream with code {run.close_code}")


def _echo_stream_message(t: float, m: dict) -> None:
    if m["type"] == "partial":
        stable = " ".join(g["gloss"] for g in m["glosses"])
        pending = " ".join(g["gloss"] for g in m["pending"])
        typer.echo(f"[{t:6.2f} s] partial #{m['sentence']}: {stable} ({pending}) | {m['text']}")
    elif m["type"] == "final":
        flag = " (low confidence)" if m.get("low_confidence") else ""
        typer.echo(
            f"[{t:6.2f} s] final #{m['sentence']} {m['start_s']:.2f}-{m['end_s']:.2f} s "
            f"({m['reason']}): {m['gloss']} | {m['text']}{flag}"
        )
    elif m["type"] == "error":
        typer.echo(f"[{t:6.2f} s] error {m['code']}: {m['message']}", err=True)
    elif m["type"] == "ready":
        typer.echo(f"streaming to {m['model']} ({m['fps']:g} fps)")


@app.command("translate")
def translate(
    paths: list[str] = typer.Argument(
        None,
        help="Videos, folders (searched recursively) or manifests (.txt: one path a line); "
        "with --sample and none given, the sample model's clips.",
    ),
    bundle: str = BundleOpt,
    sample: bool = typer.Option(
        False,
        "--sample",
        help="Use the small sample model shipped with slt (a synthetic sign language).",
    ),
    out: str = typer.Option(
        None, "--out", "-o", help="Results file (results.jsonl; results.I-of-N.jsonl with --shard)."
    ),
    fmt: str = typer.Option(
        None,
        "--format",
        help="jsonl or csv (from --out's suffix); srt or vtt: also one subtitle file per video "
        "in --subtitles (the rows still go to --out, as JSONL).",
    ),
    subtitles: str = typer.Option(
        "subtitles", help="Folder for the --format srt|vtt files (VIDEO_STEM.srt)."
    ),
    gloss_cues: bool = typer.Option(
        False, help="--format srt|vtt: a cue per gloss too, over its span (top in WebVTT)."
    ),
    review_below: float = typer.Option(
        None,
        help="Write the videos whose confidence is under this (0..1) to --review-out, least "
        "sure first: name, video, text, glosses with spans and confidence, to annotate next.",
    ),
    review_out: str = typer.Option("review.jsonl", help="The --review-below list (JSONL)."),
    workers: int = typer.Option(
        1, help="Videos translated at once (--engine ray: Translator actors in the pool)."
    ),
    engine: str = typer.Option(
        "local",
        help="local (threads in this process) or ray: decode tasks and a Translator actor "
        "pool on a Ray cluster (pip install 'slt-serve[ray]'; docs/batch.md).",
    ),
    ray_address: str = typer.Option(
        None,
        help="--engine ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); "
        "default RAY_ADDRESS, else a local one.",
    ),
    shard: str = typer.Option(
        None, help="i/n: only this job's share of the inputs (i from 0), for cluster job arrays."
    ),
    retry_errors: bool = typer.Option(
        False, help="Translate again the inputs whose row in --out is an error."
    ),
    device: str = DeviceOpt,
    threads: int = typer.Option(
        0,
        help="onnxruntime intra-op threads per graph (0: OMP_NUM_THREADS if set, else every "
        "core); see slt serve --threads.",
    ),
    window_frames: int = typer.Option(
        None,
        help="Frames per recogniser run (default: the bundle's); see slt serve --window-frames.",
    ),
    api_limits: bool = typer.Option(
        False,
        "--api-limits",
        help="Refuse, as `slt serve` does, videos over its limits (SLT_MAX_SECONDS, "
        "SLT_MAX_FRAMES, SLT_MAX_PIXELS).",
    ),
) -> None:
    """Translate many videos offline into a JSONL (or CSV) file, one row per video.

    Rerunning the same command resumes (inputs already in --out are skipped). A video that fails becomes an error row (ok=false) and the run goes on; the exit status is 1 when any input has failed."""
    from slt_serve import batch

    bundle = choose_bundle(bundle, sample)
    if not paths:
        if not sample:
            raise SltError("give the videos, folders or manifests to translate")
        paths = [str(p) for p in sample_videos()]
    shard_ = batch.parse_shard(shard) if shard else None
    hooks = _TranslateHooks.check(fmt, subtitles, gloss_cues, review_below, review_out)
    fmt = None if hooks.subtitle_fmt else fmt
    out_path = Path(out) if out else batch.default_out(shard_, fmt)
    fmt = batch.format_for(out_path, fmt)
    hooks.results = (out_path, fmt)  # rows already there count for --review-below
    inputs = batch.in_shard(batch.discover(paths), shard_)
    if not inputs:
        typer.echo(f"no inputs in shard {shard}; nothing to do")
        return
    from slt_serve.translator import TranslateOptions

    if engine not in ("local", "ray"):
        raise SltError(f"--engine {engine}: choose local or ray")
    if ray_address and engine != "ray":
        raise SltError("--ray-address goes with --engine ray")
    options = TranslateOptions(device=device, threads=threads, window_frames=window_frames)
    run = _local_run(bundle, options, workers) if engine == "local" else _ray_run(bundle, options, workers, ray_address)  # fmt: skip
    results = batch.ResultsFile(out_path, fmt)
    try:
        limits = _api_limits() if api_limits else None
        summary = run(
            inputs, results, retry_errors=retry_errors, limits=limits, on_row=hooks.start(inputs)
        )
    finally:
        results.close()
        hooks.finish()
    _echo_batch_summary(summary, out_path, fmt, shard)
    if not summary.ok:
        raise typer.Exit(1)


def _local_run(bundle: str, options, workers: int):
    """`batch.run` with the bundle loaded here (a G2T bundle refused)."""
    from slt_serve import batch
    from slt_serve.translator import Translator

    translator = Translator.from_bundle(bundle, options)
    _refuse_g2t(bundle, translator.stage)
    return lambda *args, **kw: batch.run(translator, *args, workers=workers, **kw)


def _ray_run(bundle: str, options, workers: int, address: str | None):
    """`ray_batch.run`: the bundle is loaded by the cluster's actors, not here."""
    from slt_serve import ray_batch
    from slt_serve.bundle import read_manifest

    ray_batch.require_ray()
    _refuse_g2t(bundle, read_manifest(bundle).stage)
    ray_options = ray_batch.RayOptions(address=address, actors=workers)
    return lambda *args, **kw: ray_batch.run(
        bundle, *args, options=options, ray_options=ray_options, **kw
    )


def _refuse_g2t(bundle: str, stage: str) -> None:
    if stage == "g2t":
        raise SltError(f"{bundle}: a G2T bundle translates glosses, not videos; give an S2T bundle")


@app.command("render")
def render(
    video: Path = typer.Argument(..., help="The video to translate and draw on."),
    out: Path = typer.Option(..., "--out", "-o", help="MP4 to write (H.264)."),
    bundle: str = BundleOpt,
    sample: bool = typer.Option(False, "--sample", help="Use the sample model shipped with slt."),
    device: str = DeviceOpt,
) -> None:
    """Translate a video and write it with the glosses and the translation drawn as they are
    signed (and the keypoints, for a TwoStream bundle with a pose model)."""
    from slt_serve.render import render_video
    from slt_serve.translator import TranslateOptions, Translator

    if out.suffix.lower() != ".mp4":
        raise SltError(f"--out {out}: give an .mp4 file to write")
    if not video.exists():
        raise SltError(f"{video}: no such file or folder")
    translator = Translator.from_bundle(
        choose_bundle(bundle, sample), TranslateOptions(device=device)
    )
    if translator.stage == "g2t":
        raise SltError("a G2T bundle translates glosses, not videos; give an S2T or S2G bundle")
    done = render_video(translator, video, out)
    r = done.result
    typer.echo(
        f"wrote {done.path}: {done.frames} frames at {done.fps:g} fps; {r.text or r.gloss!r} "
        f"(confidence {r.confidence:.2f}{', low' if r.low_confidence else ''})"
    )


class _TranslateHooks:
    """What `slt translate` writes beside its rows: subtitle files and the review list."""

    def __init__(self, subtitle_fmt, folder, gloss_cues, review_below, review_out) -> None:
        self.subtitle_fmt, self.folder, self.gloss_cues = subtitle_fmt, folder, gloss_cues
        self.review_below, self.review_out = review_below, review_out
        self.subtitles = self.review = None
        self.results: tuple[Path, str] | None = None  # slt translate's results file, format

    @classmethod
    def check(cls, fmt, folder, gloss_cues, review_below, review_out) -> _TranslateHooks:
        from slt_serve.confidence import ReviewList
        from slt_serve.subtitles import FORMATS

        subtitle_fmt = fmt if fmt in FORMATS else None
        if gloss_cues and subtitle_fmt is None:
            raise SltError("--gloss-cues goes with --format srt or --format vtt")
        if review_below is not None:
            ReviewList(review_below)  # refuses a threshold outside (0, 1] before anything loads
        return cls(subtitle_fmt, folder, gloss_cues, review_below, review_out)

    def start(self, inputs: list[str]):
        """batch.run's on_row hook for this run's `inputs`."""
        from slt_serve.confidence import ReviewList
        from slt_serve.subtitles import SubtitleFolder

        if self.subtitle_fmt:
            self.subtitles = SubtitleFolder(self.folder, self.subtitle_fmt, inputs, self.gloss_cues)
        if self.review_below is not None:
            self.review = ReviewList(self.review_below)
            if self.results is not None:
                self.review.read_results(*self.results)
        hooks = [h.on_row for h in (self.subtitles, self.review) if h is not None]
        return (lambda row: [hook(row) for hook in hooks]) if hooks else None

    def finish(self) -> None:
        if self.subtitles is not None:
            typer.echo(
                f"wrote {self.subtitles.written} {self.subtitle_fmt} file(s) to {self.folder}"
            )
        if self.review is not None:
            n = self.review.write(self.review_out)
            typer.echo(
                f"wrote {self.review_out}: {n} video(s) under confidence {self.review_below:g}"
            )


def _echo_batch_summary(summary, out_path: Path, fmt: str, shard: str | None) -> None:
    typer.echo(
        f"translated {summary.translated}, failed {summary.failed}, skipped {summary.skipped} "
        f"already in {out_path} (of {summary.total} input(s){f' in shard {shard}' if shard else ''})"
    )
    if summary.failed_before:
        typer.echo(f"{summary.failed_before} input(s) failed in an earlier run (not retried)")
    if summary.ok:
        typer.echo(f"next: read the results in {out_path} (one {fmt.upper()} row per video)")
    else:
        typer.echo(
            f"next: see the rows with ok=false in {out_path}, fix those files, then rerun with "
            "--retry-errors"
        )


# --- the Gradio demo ---------------------------------------------------------------------


def _demo_app():
    """`demo.app`, imported only when asked for: Gradio is the optional `demo` extra."""
    try:
        from demo import app as demo_app
    except ImportError as e:
        raise SltError(
            f'the demo needs Gradio, which is not installed ({e}); pip install "slt-serve[demo]"'
        ) from None
    return demo_app


def _login_note(settings) -> str:
    return " (log in with any user name and the API key as password)" if settings.api_key else ""


@app.command("demo")
def demo(
    bundle: str = BundleArg,
    sample: bool = sample_opt("Open"),
    host: str = typer.Option(None, help="Address to bind (SLT_HOST; default 127.0.0.1)."),
    port: int = typer.Option(7860, help="Port."),
    share: bool = typer.Option(
        False, help="Also make a public *.gradio.live link, through Gradio's servers."
    ),
    max_seconds: float = MaxSecondsOpt,
    device: str = DeviceOpt,
) -> None:
    """Try a bundle in the browser: upload a video (or record one with the webcam), see the glosses with their time spans, the text, the time per stage and, for TwoStream bundles, the keypoints.

    Needs the demo extra (pip install "slt-serve\\[demo]"). Nothing is sent to the internet (Gradio analytics off) unless --share is given. The limits are the API's SLT_* settings; with SLT_API_KEY set the page asks for the key."""
    bundle = choose_bundle(bundle, sample)
    demo_app = _demo_app()
    from slt_serve.translator import TranslateOptions, Translator

    settings = _settings(host=host, port=port, max_seconds=max_seconds)
    options = TranslateOptions(device=device, max_seconds=settings.max_seconds)
    translator = Translator.from_bundle(bundle, options)
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"demo of {bundle} ({translator.kind}, {translator.stage.upper()}, {translator.provider}) "
        f"at {url}{_login_note(settings)}; Ctrl-C stops it"
    )
    if share:
        typer.secho(
            "warning: --share sends the page and every uploaded video through Gradio's servers",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(f"next: open {url} in a browser and upload a video of a signer")
    demo_app.launch(translator, settings, share=share)


def main() -> None:
    """Run the CLI; a `SltError`, or an import of an optional extra that is not installed,
    becomes one line on stderr and exit code 2.

    Usage errors, --help and exit codes are click's (standalone mode); anything
    else that escapes is a bug in slt-serve and keeps its traceback.
    """
    try:
        app()
    except SltError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except ImportError as e:  # a command whose optional extra is not installed
        hint = install_hint(e)
        if hint is None:
            raise
        typer.echo(f"error: {hint}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
