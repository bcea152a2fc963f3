"""What an operator watches: Prometheus metrics, a request id on every response and log line,
and logs as JSON lines on request.

    metrics = Metrics(translator, pool, gate)    # one registry per app (tests make many apps)
    metrics.count("/v1/translate", "ok")         # via `routers.state.Outcomes`, its one feeder
    metrics.observe_stages(result.timings_ms)    # decode, pose, s2g, ctc, encoder, decoder
    app.add_middleware(RequestIdMiddleware)      # X-Request-ID in, out and on each log line
    configure_logging("json")                    # entry points only (`slt serve --log-format`)

Metric names (all prefixed `slt_`): `requests_total{endpoint,outcome,code}`,
`request_duration_seconds{endpoint}`, `stage_duration_seconds{stage}`,
`inflight_requests`, `queue_waiting_requests`, `uploads_receiving`, `active_streams`,
`stream_frames_total`, `model_info{name,digest,kind,stage,provider}`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from slt_serve.routers.state import UploadGate
    from slt_serve.translator import Translator
    from slt_serve.workers import WorkerPool

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")  # a client's id kept only if it looks like this
STAGES = ("decode", "pose", "s2g", "ctc", "encoder", "decoder")  # `Result.timings_ms` keys
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("slt_request_id", default="-")


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self, translator: Translator, pool: WorkerPool, uploads: UploadGate) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "slt_requests", "Requests by endpoint and how they ended (outcome; error code).",
            ["endpoint", "outcome", "code"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "slt_request_duration_seconds", "Wall time of a request, by endpoint.",
            ["endpoint"], buckets=STAGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.stages = Histogram(
            "slt_stage_duration_seconds", "Time per inference stage of a translation.",
            ["stage"], buckets=STAGE_BUCKETS, registry=r,
        )  # fmt: skip
        Gauge("slt_inflight_requests", "Inferences running or queued on the workers.",
              registry=r).set_function(lambda: pool.in_flight)  # fmt: skip
        Gauge("slt_queue_waiting_requests", "Requests in line for a worker slot.",
              registry=r).set_function(lambda: pool.waiting)  # fmt: skip
        Gauge("slt_uploads_receiving", "Upload bodies arriving now.",
              registry=r).set_function(lambda: uploads.receiving)  # fmt: skip
        self.streams = Gauge("slt_active_streams", "Open /v1/stream sessions.", registry=r)
        self.stream_frames = Counter(
            "slt_stream_frames", "Frames received on /v1/stream.", registry=r
        )
        Info("slt_model", "The served bundle.", registry=r).info(
            {
                "name": translator.name,
                "digest": translator.digest,
                "kind": translator.kind,
                "stage": translator.stage,
                "provider": translator.provider,
            }
        )

    def count(self, endpoint: str, outcome: str, code: str = "") -> None:
        self.requests.labels(endpoint, outcome, code).inc()

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        """One translation's stage timings (stages that took no time are not observed)."""
        for stage in STAGES:
            ms = timings_ms.get(stage, 0.0)
            if ms > 0:
                self.stages.labels(stage).observe(ms / 1000.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def endpoint_of(scope: dict) -> str:
    """The route's path template (bounded label values); `unmatched` for unknown paths."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def sane_request_id(value: str | None) -> str:
    """The client's id when it is short and plain; a fresh one otherwise."""
    if value and _SANE_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each HTTP request and WebSocket an id (the client's `X-Request-ID` when sane),
    sent back in the response's headers and set for the log lines written meanwhile; times
    HTTP requests into `slt_request_duration_seconds` when the app has metrics."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")
        rid = sane_request_id(given.decode("latin-1"))
        request_id.set(rid)  # each request runs in its own task: no reset needed
        header = (REQUEST_ID_HEADER.lower().encode(), rid.encode())
        start = time.perf_counter()

        async def send_with_id(message):
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics = _app_metrics(scope)
            if scope["type"] == "http" and metrics is not None:
                metrics.latency.labels(endpoint_of(scope)).observe(time.perf_counter() - start)


def _app_metrics(scope) -> Metrics | None:
    app = scope.get("app")
    svc = getattr(getattr(app, "state", None), "service", None)
    return getattr(svc, "metrics", None)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record as `request_id` (`-` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id [, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


LOG_FORMATS = ("text", "json")


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Root logging for a server process: text (`LEVEL name [request id]: message`) or JSON
    lines, each with the request id. For entry points; uvicorn's loggers propagate to it."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: choose one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(levelname)s %(name)s [%(request_id)s]: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
