"""An ASGI app on a real uvicorn, or a command that serves, on a free loopback port, for the
HTTP API and demo tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn


@contextmanager
def serving(app, **options) -> Iterator[str]:
    """uvicorn serving `app` on a free loopback port, in a thread; yields the base URL.

    options: more `uvicorn.Config` arguments, e.g. `slt_serve.http_timeouts.uvicorn_options`.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def free_port() -> int:
    """A loopback port that nothing listens on now, for a command started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving_command(
    args: list[str], log: Path, what: str, env: dict | None = None, timeout: float = 180
) -> Iterator[str]:
    """`python *args --port N` on a free loopback port, stdout and stderr to `log`; yields the
    base URL once its page answers 200 (an early exit fails with the log), then terminates it.

    what: the wait's name in the failure message, e.g. "slt demo to serve its page".
    """
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"gave up waiting for {what}: it exited with {proc.returncode}:\n{log.read_text()}"
            )
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, what, timeout)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    """Poll until `condition()` holds (a wait for a server, not a timed assertion)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
