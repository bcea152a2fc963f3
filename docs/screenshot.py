"""Refresh docs/demo.png: the Gradio app (`slt demo --sample`) translating a sample clip.

    python docs/screenshot.py [docs/demo.png]

Starts `slt demo --sample` on a free loopback port, drives the system Chromium headless through
Playwright (the `dev` extra; Debian's `chromium`, not Playwright's download), uploads the sample
model's first clip, presses Translate and saves the page once the translation is shown. It
refuses to save a page whose translation is not the one recorded for that clip
(`slt_serve/sample_model/samples/samples.jsonl`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from slt_serve import sample_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"slt demo exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise SystemExit(f"slt demo did not serve {url} within {timeout:g} s")


def screenshot(out: Path, chromium: str) -> str:
    """Save the page after translating the first sample clip; the translation shown."""
    sample = sample_model.samples()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GRADIO_TEMP_DIR=tmp)
        cmd = [sys.executable, "-m", "slt_serve.cli", "demo", "--sample", "--port", str(port)]
        proc = subprocess.Popen([*cmd, "--device", "cpu"], env=env)
        try:
            wait_up(url, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.locator("#slt-video input[type=file]").set_input_files(str(sample["video"]))
                expect(page.locator("#slt-video video")).to_be_attached(timeout=60_000)
                page.locator("#slt-translate").click()
                expect(page.locator("#slt-status")).to_contain_text("gloss(es) in", timeout=120_000)
                text = page.locator("#slt-text textarea").input_value()
                if text != sample["translation"]:
                    raise SystemExit(f"the page shows {text!r}, recorded {sample['translation']!r}")
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return text


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "demo.png")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    text = screenshot(out, chromium)
    print(f"wrote {out}: {text!r}")


if __name__ == "__main__":
    main()
