"""The HTTP API on a real uvicorn on loopback, driven by httpx: the worker pool's bound
(503 + Retry-After), limits over a real socket, a client that goes away mid-upload,
the malformed-input corpus, and `slt serve` itself.

No test depends on timing: requests are held in the server by uploads that pause
until the test lets them go, and the test waits for the server's own counters.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import malformed_corpus
import pytest
from generated_clips import sliding_texture
from loopback_server import serving, wait_for

from slt_serve.api import create_app
from slt_serve.settings import Settings

BOUNDARY = "slt-test-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return sliding_texture(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


def in_flight(url: str) -> int:
    return httpx.get(f"{url}/readyz").json()["in_flight"]


def held_upload(data: bytes, release: threading.Event):
    """A multipart body that sends its head, then waits for `release` before the rest."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'  # fmt: skip
    yield head.encode() + data[:100]
    release.wait(60)
    yield data[100:] + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_full_pool_answers_503_with_retry_after_then_serves_again(s2t, clip, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    app = create_app(s2t, Settings(workers=1, queue_size=1, line_wait_s=0, tmp_dir=spool))
    release = threading.Event()
    translate = s2t.translate

    def held(video):  # inference that waits for the test: both slots stay taken
        release.wait(60)
        return translate(video)

    monkeypatch.setattr(s2t, "translate", held)
    with serving(app) as url, ThreadPoolExecutor(2) as pool:
        held_posts = [
            pool.submit(
                httpx.post, f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=120,
            )
            for _ in range(2)
        ]  # fmt: skip
        wait_for(lambda: in_flight(url) == 2, "both requests to hold their slots")
        r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=60)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "busy"
        assert int(r.headers["retry-after"]) >= 1
        assert httpx.get(f"{url}/healthz").status_code == 200  # health is never queued
        release.set()
        assert [f.result().status_code for f in held_posts] == [200, 200]
        wait_for(lambda: in_flight(url) == 0, "the slots to be released")
        model = httpx.get(f"{url}/v1/model").json()
        assert model["pool"]["rejected_busy"] == 1 and model["requests"]["ok"] == 2
        assert model["requests"]["busy"] == 1 and model["requests"]["server_errors"] == 0
        r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=60)
        assert r.status_code == 200, r.text
    assert not list(spool.iterdir())


def test_a_slow_upload_holds_no_worker(s2t, clip, tmp_path):
    """An upload that has not finished arriving takes no inference slot: with one worker
    and no queue, another client is translated meanwhile."""
    spool = tmp_path / "spool"
    app = create_app(s2t, Settings(workers=1, queue_size=0, tmp_dir=spool))
    release = threading.Event()
    with serving(app) as url, ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            httpx.post, f"{url}/v1/translate", content=held_upload(clip, release),
            headers=MULTIPART, timeout=120,
        )  # fmt: skip
        wait_for(lambda: httpx.get(f"{url}/readyz").json()["receiving"] == 1, "the slow upload")
        assert in_flight(url) == 0
        r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=60)
        assert r.status_code == 200, r.text
        release.set()
        assert slow.result().status_code == 200


def test_many_concurrent_clients_get_answers_or_503_and_nothing_else(s2t, clip, tmp_path):
    spool = tmp_path / "spool"
    app = create_app(s2t, Settings(workers=2, queue_size=1, tmp_dir=spool))
    with serving(app) as url:

        def post(_):
            r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=120)
            return r.status_code, r.headers.get("retry-after"), r.json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(16)))
        texts = {body["text"] for status, _, body in answers if status == 200}
        wait_for(lambda: in_flight(url) == 0, "the slots to be released")
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert all(retry and int(retry) >= 1 for status, retry, _ in answers if status == 503)
    assert len(texts) == 1  # the same clip, the same translation, whatever the concurrency
    assert not list(spool.iterdir())


def test_client_gone_mid_upload_leaves_no_file_and_frees_its_slot(s2t, clip, tmp_path, caplog):
    spool = tmp_path / "spool"
    app = create_app(s2t, Settings(workers=1, queue_size=0, tmp_dir=spool))
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'  # fmt: skip
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                f"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                f"boundary={BOUNDARY}\r\nContent-Length: {len(clip) + 500}\r\n\r\n".encode()
                + head.encode()
                + clip[: len(clip) // 2]
            )
            wait_for(lambda: any(spool.glob("slt-upload-*")), "the upload to reach the spool")
            assert in_flight(url) == 0  # arriving, it holds no worker (issue 13)
        wait_for(lambda: not any(spool.iterdir()), "the half upload to be removed")
        wait_for(lambda: in_flight(url) == 0, "the slot to be released")
        gone = httpx.get(f"{url}/v1/model").json()["requests"]
        assert gone["disconnected"] == 1 and gone["server_errors"] == 0
        assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
        r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=60)
        assert r.status_code == 200, r.text


def test_byte_limit_on_a_real_socket(s2t, tmp_path):
    spool = tmp_path / "spool"
    app = create_app(s2t, Settings(max_bytes=200_000, tmp_dir=spool))
    with serving(app) as url:
        r = httpx.post(f"{url}/v1/translate", files={"file": ("big.mp4", bytes(150_000) * 2)})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

        def chunks():
            yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'.encode()  # fmt: skip
            for _ in range(5):
                yield bytes(65536)
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        r = httpx.post(f"{url}/v1/translate", content=chunks(), headers=MULTIPART)
        assert r.status_code == 413 and "200,000" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/readyz").json()["in_flight"] == 0
    assert not list(spool.iterdir())


def test_malformed_corpus_gets_no_5xx_and_leaves_no_file(s2t, tmp_path):
    cases = malformed_corpus.make(tmp_path / "corpus")
    assert len(cases) >= 50
    spool = tmp_path / "spool"
    settings = Settings(workers=2, queue_size=4, tmp_dir=spool, **malformed_corpus.LIMITS)
    with serving(create_app(s2t, settings)) as url:

        def post(case):
            with httpx.Client(timeout=120) as c:
                r = c.post(f"{url}/v1/translate", files={"file": (case.path.name, case.path.read_bytes())})  # fmt: skip
                return case, r.status_code, r.json()

        with ThreadPoolExecutor(4) as pool:  # 4 clients ≤ workers + queue: no 503 either
            answers = list(pool.map(post, cases))
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").json()["in_flight"] == 0
    server_errors = [(c.path.name, status, body) for c, status, body in answers if status >= 500]
    assert not server_errors
    for case, status, body in answers:
        assert status == 200 or 400 <= status < 500, (case.path.name, status)
        if status != 200:
            assert set(body) == {"error"} and body["error"]["message"], body
        if case.expect:
            assert status != 200 and body["error"]["code"] == case.expect, (case.path.name, body)
    assert not list(spool.iterdir()), "temporary files left behind"


def test_slt_serve_command(s2t_bundle, clip, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SLT_TMP_DIR": str(tmp_path / "spool"), "SLT_API_KEY": "k"}
    cmd = [sys.executable, "-m", "slt_serve.cli", "serve", str(s2t_bundle), "--port", str(port),
           "--workers", "1", "--device", "cpu", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def up():
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(f"{url}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "slt serve to be ready")
        r = httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}, headers={"x-api-key": "k"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        assert httpx.post(f"{url}/v1/translate", files={"file": ("c.mp4", clip)}).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    assert f"at http://127.0.0.1:{port}" in out and "API key required" in out
    assert "next: curl -F file=@clip.mp4" in out


def test_slt_serve_refuses_a_bad_setting_and_a_missing_bundle(s2t_bundle, tmp_path):
    env = {**os.environ, "SLT_WORKERS": "0"}
    r = subprocess.run([sys.executable, "-m", "slt_serve.cli", "serve", str(s2t_bundle)], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "error: setting workers" in r.stderr and "SLT_WORKERS" in r.stderr
    r = subprocess.run([sys.executable, "-m", "slt_serve.cli", "serve", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
