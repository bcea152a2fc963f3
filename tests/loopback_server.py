"""An ASGI app on a real uvicorn on a free loopback port, for the HTTP API and demo tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    """Poll until `condition()` holds (a wait for a server, not a timed assertion)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
