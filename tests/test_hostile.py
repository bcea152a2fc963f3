"""The HTTP API against hostile clients (issue 13), on a real uvicorn on loopback.

Playlists and lists naming a file on the server or a loopback URL, text and image
sequences under video names, frame-count bombs in every container, a frame size
change mid-stream (`hostile_corpus`); slow headers and bodies; non-UTF-8 and deeply
nested JSON; a server killed with -9. Shown: no 5xx but 503 busy, the named file
and URL never read, no connection or lookup outside loopback, a slow client never
blocks another's inference, no upload left after kill -9 and a restart, counters
that add up. No assertion depends on timing: waits poll the server's own state.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cached_bundles
import hostile_corpus
import httpx
import malformed_corpus
import pytest
from loopback_server import serving, wait_for

from slt_serve.api import create_app
from slt_serve.errors import ApiError
from slt_serve.http_timeouts import uvicorn_options
from slt_serve.settings import Settings
from slt_serve.translator import TranslateOptions, Translator
from slt_serve.workers import WorkerPool

LOCAL = ("127.", "::1", "localhost")
OUTBOUND: list = []


def _audit(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        if not str(args[1][0]).startswith(LOCAL):
            OUTBOUND.append(("connect", args[1]))
    elif event == "socket.getaddrinfo" and args[0] is not None:
        if not str(args[0]).startswith(LOCAL):
            OUTBOUND.append(("lookup", args[0]))


sys.addaudithook(_audit)  # for this test process: every connection and lookup it makes


@pytest.fixture(scope="module")
def g2t(request):
    path = cached_bundles.bundle(Path(request.config.cache.mkdir("slt-bundles")), "g2t")
    return Translator.from_bundle(path, TranslateOptions(device="cpu"))


@pytest.fixture
def hits():
    """A loopback HTTP server counting the requests it gets; yields (url, list of paths)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_hostile_corpus_no_5xx_no_file_or_url_read_counters_add_up(s2t, tmp_path, hits):
    url, seen = hits
    secret = tmp_path / "secret.mp4"  # a valid video on the server: must never be translated
    secret.write_bytes(malformed_corpus.encode_video(malformed_corpus.pattern_frames(25, 64), "mp4", "libx264"))
    cases = hostile_corpus.make(tmp_path / "corpus", secret, url)
    spool = tmp_path / "spool"
    settings = Settings(workers=2, queue_size=4, tmp_dir=spool, **malformed_corpus.LIMITS)
    OUTBOUND.clear()
    with serving(create_app(s2t, settings), **uvicorn_options(settings)) as base:

        def post(case):
            with httpx.Client(timeout=120) as c:
                r = c.post(f"{base}/v1/translate", files={"file": (case.path.name, case.path.read_bytes())})  # fmt: skip
                return case, r.status_code, r.json()

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, cases))
        counts = httpx.get(f"{base}/v1/model").json()["requests"]
    assert not OUTBOUND, OUTBOUND
    assert seen == [], "a playlist made the server fetch a URL"
    for case, status, body in answers:
        assert 400 <= status < 500, (case.path.name, status, body)
        assert body["error"]["code"] == case.expect, (case.path.name, body)
        assert str(spool) not in body["error"]["message"]
    assert counts["client_errors"] == len(cases) == counts["total"]
    assert sum(counts["client_errors_by_code"].values()) == len(cases)
    assert not list(spool.iterdir())


def test_slow_headers_and_bodies_get_408_and_block_no_one(s2t, tmp_path):
    clip = malformed_corpus.encode_video(malformed_corpus.pattern_frames(25, 64), "mp4", "libx264")
    settings = Settings(
        workers=1, queue_size=0, tmp_dir=tmp_path, header_timeout_s=1, read_timeout_s=1
    )
    with serving(create_app(s2t, settings), **uvicorn_options(settings)) as base:
        port = int(base.rsplit(":", 1)[1])
        slow_head = socket.create_connection(("127.0.0.1", port))
        slow_head.sendall(b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n")  # never finished
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data;"
            b' name="file"; filename="a.mp4"\r\n\r\n' + clip[:50]
        )
        # meanwhile another client is translated on the only worker
        r = httpx.post(f"{base}/v1/translate", files={"file": ("c.mp4", clip)}, timeout=60)
        assert r.status_code == 200, r.text
        for s, what in ((slow_head, b"request headers"), (slow_body, b"request body stalled")):
            s.settimeout(30)
            answer = b""
            while chunk := s.recv(4096):  # until the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408") and what in answer, answer
            s.close()
        counts = httpx.get(f"{base}/v1/model").json()["requests"]
    assert counts["ok"] == 1 and counts["client_errors_by_code"] == {"request_timeout": 1}


def test_a_request_past_the_time_limit_is_stopped_and_answered_503(s2t, tmp_path):
    from fastapi.testclient import TestClient

    clip = malformed_corpus.encode_video(malformed_corpus.pattern_frames(25, 64), "mp4", "libx264")
    settings = Settings(tmp_dir=tmp_path, request_timeout_s=1e-9)  # past it at the first frame
    with TestClient(create_app(s2t, settings)) as c:
        r = c.post("/v1/translate", files={"file": ("c.mp4", clip)})
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout", r.text
        assert "`c.mp4`" in r.json()["error"]["message"]
        counts = c.get("/v1/model").json()["requests"]
    assert counts["timeouts"] == 1 and counts["server_errors"] == 0


def test_a_translator_with_a_shorter_limit_refuses_in_the_clients_terms(s2t_bundle, tmp_path):
    from fastapi.testclient import TestClient

    short = Translator.from_bundle(s2t_bundle, TranslateOptions(device="cpu", max_seconds=0.5))
    clip = malformed_corpus.encode_video(malformed_corpus.pattern_frames(25, 64), "mp4", "libx264")
    with TestClient(create_app(short, Settings(tmp_dir=tmp_path))) as c:
        r = c.post("/v1/translate", files={"file": ("c.mp4", clip)})
    body = r.json()["error"]
    assert r.status_code == 422 and body["code"] == "too_long", body
    assert "max_seconds" not in body["message"] and "SLT_" not in body["message"]


def test_gloss_body_not_utf8_or_nested_too_deep_is_the_clients_error(g2t, tmp_path):
    from fastapi.testclient import TestClient

    json_type = {"content-type": "application/json"}
    with TestClient(create_app(g2t, Settings(tmp_dir=tmp_path))) as c:
        for body in (b'{"gloss": "\xff\xfe"}', '{"gloss": "MÜNCHEN"}'.encode("latin-1")):
            r = c.post("/v1/translate/gloss", content=body, headers=json_type)
            assert r.status_code == 400 and "not UTF-8" in r.json()["error"]["message"], r.text
        r = c.post("/v1/translate/gloss", content=b"[" * 50000, headers=json_type)
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
        r = c.post("/v1/translate/gloss", content=b" " * 70000, headers=json_type)
        assert r.status_code == 413 and "gloss" in r.json()["error"]["message"]
        assert "video" not in r.json()["error"]["message"]
        counts = c.get("/v1/model").json()["requests"]
    assert counts["server_errors"] == 0 and counts["client_errors"] == 4


def test_jobs_run_in_the_order_they_arrived():
    pool = WorkerPool(workers=1, queue_size=8)
    gate, order = threading.Event(), []
    first = pool.submit(lambda: gate.wait(30))
    futures = [pool.submit(lambda i=i: order.append(i)) for i in range(8)]
    gate.set()
    first.result(30)
    for f in futures:
        f.result(30)
    pool.close()
    assert order == list(range(8))


def test_a_freed_slot_goes_to_the_longest_waiting_request_not_a_newcomer():
    """A client sending back to back cannot jump the line: B and C waited, so they go
    before A's next request although A's arrives the moment its slot is freed."""

    async def scenario():
        pool = WorkerPool(workers=1, queue_size=0, line_size=2, line_wait_s=30)
        order: list[str] = []

        async def request(name: str):
            slot = await pool.wait_for_slot()
            order.append(name)
            await slot.run(lambda: None)

        first = await pool.wait_for_slot()
        waiting = [asyncio.create_task(request(n)) for n in "BC"]
        while pool.waiting < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as full:  # the line is full: 503 at once
            await pool.wait_for_slot()
        first.release_unless_running()  # A's request ends …
        again = asyncio.create_task(request("A again"))  # … and A sends the next at once
        await asyncio.gather(*waiting, again)
        held = await pool.wait_for_slot()
        last = asyncio.create_task(pool.wait_for_slot())
        while pool.waiting < 1:
            await asyncio.sleep(0.01)
        pool.close()  # the one in line is told at once, not after its wait
        with pytest.raises(ApiError) as closing:
            await last
        held.release_unless_running()
        return order, full.value, closing.value, pool.in_flight

    order, full, closing, in_flight = asyncio.run(scenario())
    assert order == ["B", "C", "A again"]
    assert full.status == 503 and full.code == "busy" and "Retry-After" in full.headers
    assert closing.code == "shutting_down" and in_flight == 0


_TELEMETRY = """
import os, sys
def audit(event, args):
    if event == "import" and args[0] == "onnxruntime":
        print("ORT_DISABLE_TELEMETRY=" + os.environ.get("ORT_DISABLE_TELEMETRY", "unset"))
sys.addaudithook(audit)
from slt_serve.onnx_session import open_session, providers_for
open_session(sys.argv[1], providers_for("cpu"))
"""


def test_onnxruntime_telemetry_is_off_before_it_loads(s2t_bundle):
    model = next(p for p in s2t_bundle.rglob("*.onnx"))
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    r = subprocess.run([sys.executable, "-c", _TELEMETRY, str(model)], env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "ORT_DISABLE_TELEMETRY=1", r.stdout


def test_kill_9_leaves_no_upload_after_a_restart(s2t_bundle, s2t, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spool = tmp_path / "spool"
    env = {**os.environ, "SLT_TMP_DIR": str(spool)}
    cmd = [sys.executable, "-m", "slt_serve.cli", "serve", str(s2t_bundle), "--port", str(port),
           "--device", "cpu", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def up():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "slt serve to be ready")
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: "
                b'form-data; name="file"; filename="a.mp4"\r\n\r\n' + b"\x00" * 5000
            )
            wait_for(lambda: any(spool.glob("slt-upload-*")), "the upload to reach the spool")
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    finally:
        proc.kill()
        proc.wait(30)
    assert any(spool.glob("slt-upload-*"))  # what kill -9 leaves …
    create_app(s2t, Settings(tmp_dir=spool))  # … a server starting on the same spool removes
    assert not any(spool.glob("slt-upload-*"))
