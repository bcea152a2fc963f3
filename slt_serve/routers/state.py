"""What the routes share: the translator, the settings, the worker pool, the spool folder,
the gate on uploads arriving at once, and the counters of how requests ended."""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from slt_serve.errors import ApiError, SltError
from slt_serve.observability import Metrics, endpoint_of
from slt_serve.settings import Settings
from slt_serve.workers import WorkerPool

if TYPE_CHECKING:
    from slt_serve.translator import Result, Translator

log = logging.getLogger("slt_serve.api")

OUTCOMES = ("ok", "client_errors", "busy", "timeouts", "server_errors", "disconnected")


class Outcomes:
    """How requests ended: ok, refused as the client's error (by code), busy (503), past the
    time limit, failed on the server, or the client went away. Each request counts once,
    here and (with `metrics`) in `slt_requests_total{endpoint,outcome,code}`."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._client_codes: Counter[str] = Counter()
        self.metrics = metrics

    def add(self, outcome: str, code: str | None = None, endpoint: str = "unmatched") -> None:
        with self._lock:
            self._counts[outcome] += 1
            if outcome == "client_errors" and code:
                self._client_codes[code] += 1
        if self.metrics is not None:
            self.metrics.count(endpoint, outcome, code or "")

    def add_error(self, status: int, code: str, endpoint: str = "unmatched") -> None:
        """An error response: which outcome its status and code mean."""
        if code == "busy" or code == "shutting_down":
            self.add("busy", code, endpoint)
        elif code == "timeout":
            self.add("timeouts", code, endpoint)
        elif status >= 500:
            self.add("server_errors", code, endpoint)
        else:
            self.add("client_errors", code, endpoint)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {k: self._counts[k] for k in OUTCOMES}
            out["client_errors_by_code"] = dict(sorted(self._client_codes.items()))
            out["total"] = sum(self._counts.values())
        return out


class UploadGate:
    """At most `limit` request bodies arriving at once (they hold no worker meanwhile), or
    of whatever `what` names (streams open)."""

    def __init__(self, limit: int, what: str = "uploads are arriving"):
        self.limit, self._lock, self.receiving, self.what = limit, threading.Lock(), 0, what

    def enter(self) -> None:
        with self._lock:
            if self.receiving >= self.limit:
                raise ApiError(
                    503,
                    "busy",
                    f"{self.limit} {self.what} already; retry in a few seconds",
                    headers={"Retry-After": "2"},
                )
            self.receiving += 1

    def leave(self) -> None:
        with self._lock:
            self.receiving -= 1


@dataclass
class Service:
    """One served translator and everything its requests share."""

    translator: Translator
    settings: Settings
    pool: WorkerPool
    spool: Path
    uploads: UploadGate
    outcomes: Outcomes = field(default_factory=Outcomes)
    metrics: Metrics | None = None
    streams: UploadGate = field(default_factory=lambda: UploadGate(0, "streams are open"))

    def succeeded(self, request: Request, result: Result) -> None:
        """A request answered 200 with `result`: counted, its stage timings observed."""
        self.outcomes.add("ok", None, endpoint_of(request.scope))
        if self.metrics is not None:
            self.metrics.observe_stages(result.timings_ms)

    async def run(self, fn: Callable[..., Any], *args: Any, what: str) -> Any:
        """`fn(*args)` on a worker, in arrival order; 503 when the pool and its line are full or
        the wait for a place is over `Settings.line_wait_s`. A `SltError`
        is the client's and passes through; anything else is logged and answered 500."""
        slot = await self.pool.wait_for_slot()
        try:
            return await slot.run(fn, *args)
        except SltError:
            raise
        except Exception:
            log.exception("inference failed on %s", what)
            raise ApiError(
                500,
                "inference_failed",
                "inference failed on the server; it is logged, not your input",
            ) from None
        finally:
            slot.release_unless_running()


def service(request: Request) -> Service:
    return request.app.state.service


def require_key(request: Request) -> None:
    """401 unless the request carries the server's API key (when it has one)."""
    expected = service(request).settings.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "missing or wrong X-API-Key header")
