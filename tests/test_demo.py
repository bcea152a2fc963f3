"""The Gradio demo (`demo.app`, `slt demo`, `slt serve --demo-ui`) on a real tiny bundle.

- the translation step is `Translator.translate` after the API's limits, and a user's
  mistake names the user's file;
- the video shown draws the keypoints a (hand-built, torch-free) pose model found;
- Gradio's Python client against the demo mounted in the HTTP API: a non-video upload is
  an error message and the app goes on;
- `slt demo` in a subprocess driven by headless Chromium (Debian's `chromium` through
  Playwright) with a real upload: the page shows what `Translator.translate` gives, the
  browser requests nothing outside loopback and the server opens no outside connection.
  Skipped only where no chromium binary exists (CI installs it: .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import cached_bundles
import httpx
import numpy as np
import pytest
from loopback_server import serving, serving_command
from malformed_corpus import encode_image
from typer.testing import CliRunner

pytest.importorskip(
    "gradio", reason="the demo extra is not installed: pip install 'slt-serve[demo]'"
)

from demo.app import (  # noqa: E402 - after the skip: demo.app imports gradio
    SPAN_HEADERS,
    TIMING_HEADERS,
    mount,
    translate_video,
)
from slt_serve.api import create_app  # noqa: E402
from slt_serve.clip_input import InputSpec  # noqa: E402
from slt_serve.errors import SltError  # noqa: E402
from slt_serve.settings import Settings  # noqa: E402
from slt_serve.translator import TranslateOptions, Translator  # noqa: E402
from slt_serve.video import iter_frames, probe, write_video  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s of a bright square moving over a gradient, 64², 25 fps."""
    path = tmp_path_factory.mktemp("clip") / "signer.mp4"
    write_video(path, moving_square(50), fps=25)
    return path


def moving_square(frames: int, size: int = 64) -> np.ndarray:
    """A bright square moving over a dark gradient (smooth: the page's screenshot stays small)."""
    ys, xs = np.mgrid[0:size, 0:size] * (50 / size)
    background = np.stack([10 + ys, 10 + xs, np.full_like(ys, 30)], axis=-1).astype(np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        x = 4 + (2 * t) % (size - 24)
        video[t, 20:36, x : x + 16] = 240
    return video


@pytest.fixture
def not_a_video(tmp_path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("meeting notes, not a video\n" * 40)
    return path


# --- the translation step ------------------------------------------------------------------


def test_translate_video_gives_the_translators_result(s2t, clip):
    done = translate_video(s2t, clip, Settings(max_seconds=10.0))
    direct = s2t.translate(clip)
    assert (done.result.gloss, done.result.text, done.result.gloss_spans) == (
        direct.gloss,
        direct.text,
        direct.gloss_spans,
    )
    assert done.result.gloss, "the tiny bundle recognises some glosses on this clip"
    assert done.spans() == [[s.gloss, s.start_s, s.end_s, s.confidence] for s in direct.gloss_spans]
    stages = [row[0] for row in done.timings()]
    assert stages == list(direct.timings_ms) and stages[-1] == "total"
    assert done.rendered is None  # no folder given: nothing drawn
    assert "2.0 s of video" in done.status(s2t) and f"confidence {direct.confidence:.2f}" in done.status(s2t)


def test_translate_video_refusals_name_the_users_file(s2t, clip, not_a_video, tmp_path):
    with pytest.raises(SltError, match="`notes.mp4`: not a readable video") as e:
        translate_video(s2t, not_a_video)
    assert str(tmp_path) not in str(e.value)  # where the upload was spooled never shows
    still = tmp_path / "still.png"
    still.write_bytes(encode_image("png"))
    with pytest.raises(SltError, match="still image"):
        translate_video(s2t, still)
    with pytest.raises(SltError, match=r"`signer.mp4` lasts 2.0 s; the limit is 1 s"):
        translate_video(s2t, clip, Settings(max_seconds=1.0))
    with pytest.raises(SltError, match="SLT_MAX_BYTES"):
        translate_video(s2t, clip, Settings(max_bytes=1000))
    with pytest.raises(SltError, match="`gone.mp4`: no such video file"):
        translate_video(s2t, tmp_path / "gone.mp4")


# --- the video shown, with the keypoints -------------------------------------------------


def brightness_pose_onnx(path: Path, input_size=(64, 48)) -> Path:
    """A pose.onnx in the runtime's contract (uint8 crops → 133 heatmaps at stride 4, with the
    `slt_pose` metadata) whose every heatmap is the crop's brightness: all 133 keypoints land
    on the brightest spot. Built with onnx alone, in milliseconds."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from slt_serve.pose import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, PoseModelSpec

    h, w = input_size
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("ReduceMean", ["nchw", "axis1"], ["grey"], keepdims=1),
        helper.make_node("AveragePool", ["grey"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Div", ["pooled", "scale"], ["unit"]),
        helper.make_node("Tile", ["unit", "repeats"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", h, w, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 133, h // 4, w // 4])],
        [
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0]),
            helper.make_tensor("repeats", TensorProto.INT64, [4], [1, 133, 1, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    spec = PoseModelSpec((h, w), 133, "coco_wholebody_133", blur_kernel=0)
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, path)
    return path


def test_the_shown_video_draws_the_keypoints_the_translation_read_at_the_bundles_rate(tmp_path):
    from slt_serve.confidence import DEFAULT_THRESHOLDS
    from slt_serve.pose import PoseEstimator
    from slt_serve.render import render_result
    from slt_serve.translator import Result

    video = tmp_path / "signer.mp4"
    write_video(video, moving_square(30, size=96), fps=30)
    estimator = PoseEstimator(brightness_pose_onnx(tmp_path / "pose.onnx"))
    plain = np.stack(list(iter_frames(video, fps=15.0)))
    points = np.stack(list(estimator.estimate(plain)))
    # a TwoStream translation keeps the keypoints it read (Result.keypoints): drawn, not re-estimated
    result = Result("", "", [], 1.0, keypoints=points)
    # what `render_result` reads of a Translator: its input spec, limit and thresholds
    translator = SimpleNamespace(
        spec=InputSpec(fps=15.0, frame_size=64, input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3),
        max_seconds=10.0,
        thresholds=DEFAULT_THRESHOLDS,
    )
    out = render_result(translator, video, result, tmp_path / "overlay.mp4", max_side=480).path
    info = probe(out)
    assert (info.width, info.height, info.fps) == (96, 96, pytest.approx(15.0, abs=0.1))
    drawn = np.stack(list(iter_frames(out)))
    assert len(drawn) == len(plain) == 15
    for t in (0, 7, 14):
        x, y = np.round(points[t, 0, :2]).astype(int)
        assert 12 <= y <= 44, "the brightest spot is the square (rows 20-36)"
        # the points drawn there stand out from the frame; away from them, only coding noise
        near = np.abs(drawn[t, y - 1 : y + 2, x - 1 : x + 2].astype(int) - plain[t, y, x]).max()
        far = np.abs(drawn[t, 80:, :].astype(int) - plain[t, 80:, :]).mean()
        assert near > 5 * max(far, 1.0), (t, near, far)


# --- Gradio's client against the demo mounted in the HTTP API ------------------------------


def test_demo_mounted_in_the_api_answers_a_non_video_with_a_message(
    s2t, clip, not_a_video, tmp_path
):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    settings = Settings(tmp_dir=tmp_path / "spool", max_seconds=10.0)
    app = mount(create_app(s2t, settings), s2t, settings, path="/demo")
    with serving(app) as url:
        client = Client(
            f"{url}/demo/", verbose=False, download_files=False, analytics_enabled=False
        )
        with pytest.raises(AppError, match="`notes.mp4`: not a readable video"):
            client.predict(handle_file(str(not_a_video)), api_name="/translate")
        # the app went on: a real video translates, through the demo and the API alike
        text, gloss, spans, timings, rendered, status = client.predict(
            handle_file(str(clip)), api_name="/translate"
        )
        direct = s2t.translate(clip)
        assert (text, gloss) == (direct.text, direct.gloss)
        assert spans["headers"] == SPAN_HEADERS and timings["headers"] == TIMING_HEADERS
        assert spans["data"] == [
            [s.gloss, s.start_s, s.end_s, s.confidence] for s in direct.gloss_spans
        ]
        assert rendered["orig_name"] == "signer-translated.mp4" and "gloss(es) in" in status
        with clip.open("rb") as f:
            r = httpx.post(f"{url}/v1/translate", files={"file": ("clip.mp4", f)}, timeout=60)
        assert r.status_code == 200 and r.json()["gloss"] == direct.gloss


def test_a_g2t_bundle_gets_a_gloss_box(request, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    g2t = Translator.from_bundle(
        cached_bundles.bundle(Path(request.config.cache.mkdir("slt-bundles")), "g2t"),
        TranslateOptions(device="cpu"),
    )
    with serving(mount(create_app(g2t, Settings(tmp_dir=tmp_path)), g2t)) as url:
        client = Client(f"{url}/demo/", verbose=False, analytics_enabled=False)
        text, timings = client.predict("REGEN MORGEN", api_name="/translate")
        assert text == g2t.translate_gloss("REGEN MORGEN").text
        assert [row[0] for row in timings["data"]][-1] == "total"
        with pytest.raises(AppError, match="no glosses to translate"):
            client.predict("   ", api_name="/translate")


def test_demo_asks_for_the_api_key_when_one_is_set(s2t, tmp_path):
    settings = Settings(api_key="sesame", tmp_dir=tmp_path)
    app = mount(create_app(s2t, settings), s2t, settings, path="/demo")
    with serving(app) as url:
        config = httpx.get(f"{url}/demo/config", timeout=30)
        assert config.status_code == 401  # Gradio's login page guards the app
        login = httpx.post(
            f"{url}/demo/login", data={"username": "me", "password": "sesame"}, timeout=30
        )
        assert login.status_code == 200, login.text
        wrong = httpx.post(
            f"{url}/demo/login", data={"username": "me", "password": "nope"}, timeout=30
        )
        assert wrong.status_code == 400


# --- without the demo extra ----------------------------------------------------------------


def test_without_gradio_the_commands_say_which_extra_to_install(s2t_bundle, monkeypatch):
    import demo as demo_package
    from slt_serve.cli import app

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio → ImportError
    monkeypatch.delitem(sys.modules, "demo.app", raising=False)
    monkeypatch.delattr(demo_package, "app", raising=False)
    for args in (["demo", str(s2t_bundle)], ["serve", str(s2t_bundle), "--demo-ui"]):
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, SltError), result.output
        assert 'pip install "slt-serve[demo]"' in str(result.exception)


# --- `slt demo` in headless Chromium ---------------------------------------------------------

# Run inside the `slt demo` subprocess: report every connection or name lookup that leaves
# the machine (CPython's audit events), so the test can tell that the demo calls nothing out.
_AUDIT = """
import sys
LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
def audit(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        if not str(args[1][0]).startswith(LOCAL):
            print("OUTBOUND connect", args[1], file=sys.stderr, flush=True)
    elif event == "socket.getaddrinfo" and args[0] is not None:
        if not str(args[0]).startswith(LOCAL):
            print("OUTBOUND lookup", args[0], file=sys.stderr, flush=True)
sys.addaudithook(audit)
from slt_serve.cli import main
main()
"""


def shown_table(page, elem_id: str) -> list[list[str]]:
    """The cells of a Gradio Dataframe as the page shows them (its ARIA grid), row by row."""
    rows = page.locator(f"#{elem_id} [role=grid] [role=row][data-index]")
    return [row.locator("[role=gridcell]").all_inner_texts() for row in rows.all()]


@pytest.fixture
def demo_server(s2t_bundle, tmp_path):
    """`slt demo BUNDLE` on a free loopback port; yields (url, path of its log)."""
    log = tmp_path / "demo.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the demo must switch analytics off itself
    args = ["-c", _AUDIT, "demo", str(s2t_bundle), "--device", "cpu"]
    with serving_command(args, log, "slt demo to serve its page", env=env) as url:
        yield url, log


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH: install Debian's chromium (apt-get install -y chromium) "
    "to run the browser test (CI does)",
)
def test_browser_upload_shows_what_the_translator_gives(demo_server, s2t, clip, tmp_path):
    pytest.importorskip(
        "playwright", reason="the dev extra is not installed: pip install 'slt-serve[dev]'"
    )
    from playwright.sync_api import expect, sync_playwright

    url, log = demo_server
    direct = s2t.translate(clip)
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "request",
                lambda r: (
                    outside.append(r.url)
                    if urlparse(r.url).scheme in ("http", "https", "ws", "wss")
                    and urlparse(r.url).hostname not in LOOPBACK
                    else None
                ),
            )
            page.goto(url)
            expect(page.get_by_text(f"Model {s2t.name}")).to_be_visible(timeout=60_000)
            page.locator("#slt-video input[type=file]").set_input_files(str(clip))
            expect(page.locator("#slt-video video")).to_be_attached(timeout=60_000)  # uploaded
            page.locator("#slt-translate").click()
            expect(page.locator("#slt-status")).to_contain_text("gloss(es) in", timeout=120_000)
            text = page.locator("#slt-text textarea").input_value()
            gloss = page.locator("#slt-gloss textarea").input_value()
            rows, stages = shown_table(page, "slt-spans"), shown_table(page, "slt-timings")
            expect(page.locator("#slt-rendered video")).to_be_attached(timeout=60_000)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert text == direct.text
    assert gloss == direct.gloss
    assert [[g, float(a), float(b), float(c)] for g, a, b, c in rows] == [
        [s.gloss, s.start_s, s.end_s, s.confidence] for s in direct.gloss_spans
    ]
    assert [stage for stage, _ in stages] == [*direct.timings_ms, "render (demo only)"]
    assert shot.stat().st_size > 10_000
    assert not outside, f"the page requested outside loopback: {outside}"
    server_log = log.read_text()
    assert "OUTBOUND" not in server_log, server_log
    assert "Traceback" not in server_log, server_log


def test_runtime_side_of_the_demo_never_imports_torch():
    code = "import sys, demo.app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
