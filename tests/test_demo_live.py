"""The demo's live mode in headless Chromium with a fake camera: chromium plays a sample clip
(followed by a still pause) as the webcam, the page streams it into a `StreamSession`, and
partial glosses, a partial translation and a closed sentence appear while it plays.

Skipped only where no chromium binary exists (CI installs it: .ci/run).
"""

from __future__ import annotations

import re
import shutil

import cv2
import pytest
from loopback_server import serving_command

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'slt-serve[demo]'")  # fmt: skip

from demo.live import LiveHandler  # noqa: E402 - after the skip: demo.live imports gradio
from slt_serve.sample_model import sample_videos  # noqa: E402
from slt_serve.settings import Settings  # noqa: E402
from slt_serve.video import iter_frames  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SAMPLE = str(sample_videos()[0].parent.parent / "bundle")


def write_y4m(path, frames, fps: int = 25) -> None:
    """Frames as a YUV4MPEG2 file: what chromium's fake camera plays (in a loop)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())


def test_live_handler_keeps_a_session_per_browser_and_shows_partials(sample_translator):
    ticks = iter(range(10_000))
    handler = LiveHandler(sample_translator, Settings(), clock=lambda: next(ticks) / 25)
    frames = list(iter_frames(sample_videos()[0]))
    state, shown = None, []
    for frame in frames:
        gloss, text, finals, state = handler(frame, state)
        shown.append(gloss)
    assert any(shown), "no partial glosses while the clip played"
    other = handler(frames[0], None)[-1]
    assert other is not state  # a new browser session gets its own stream


@pytest.fixture(scope="module")
def sample_translator():
    from slt_serve.translator import TranslateOptions, Translator

    return Translator.from_bundle(SAMPLE, TranslateOptions(device="cpu"))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH: install Debian's chromium (apt-get install -y chromium) "
    "to run the browser test (CI does)",
)
def test_browser_live_mode_with_a_fake_camera(tmp_path):
    pytest.importorskip("playwright", reason="the dev extra is not installed: pip install 'slt-serve[dev]'")  # fmt: skip
    from playwright.sync_api import expect, sync_playwright

    frames = list(iter_frames(sample_videos()[0]))
    camera = tmp_path / "camera.y4m"
    write_y4m(camera, frames + [frames[-1]] * 100)  # then 4 s still: the sentence closes
    log = tmp_path / "demo.log"
    args = ["-m", "slt_serve.cli", "demo", "--sample", "--device", "cpu"]
    fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]  # fmt: skip
    with serving_command(args, log, "slt demo to serve its page") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage", *fake]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.goto(url)
                page.get_by_text("Live: translate the webcam").click()
                live = page.locator("#slt-live-camera")
                live.get_by_text("Click to Access Webcam").click()
                live.locator("button[aria-label='capture photo']").click()  # start streaming
                gloss = page.locator("#slt-live-gloss textarea")
                expect(gloss).to_have_value(re.compile(r"[A-Z]"), timeout=60_000)
                expect(page.locator("#slt-live-text textarea")).to_have_value(re.compile(r"\w"), timeout=60_000)  # fmt: skip
                finals = page.locator("#slt-live-finals textarea")
                expect(finals).to_have_value(re.compile(r"[A-Z-]+ .*→ \w"), timeout=90_000)
            finally:
                browser.close()
    assert "Traceback" not in log.read_text(), log.read_text()
