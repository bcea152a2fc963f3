"""The HTTP API: FastAPI over a `Translator`, with limits, a bounded worker pool, JSON errors.

    POST /v1/translate        multipart upload (field `file`) → Result.to_dict()
    POST /v1/translate/gloss  {"gloss": "…"} → Result.to_dict()   (G2T bundles)
    GET  /healthz             the process is up
    GET  /readyz              the model is loaded and requests are accepted
    GET  /v1/model            manifest, dev-set metrics, limits, counters
    GET  /metrics             Prometheus metrics (`slt_serve.observability`)
    WS   /v1/stream           live translation (`slt_serve.streaming`, docs/streaming.md)
    GET  /docs                OpenAPI

Bad input is the client's error and never the server's: each refusal is a 4xx with
`{"error": {"code": …, "message": …}}`, the message saying what was wrong. An upload
is streamed to the server's spool folder under the byte limit and the read
timeouts (`slt_serve.uploads`) without holding a worker, then checked and translated
on a worker of the pool (`slt_serve.workers`) with the duration, frame and pixel
limits enforced on every decoded frame (`slt_serve.limits`); the file is removed
whatever happens. A failure inside inference that is not the client's is logged and
answered with a 500 JSON body; the server goes on serving. The routes live in
`slt_serve.routers`; `create_app` puts them together.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from slt_serve import __version__
from slt_serve.errors import ApiError
from slt_serve.observability import Metrics, RequestIdMiddleware, endpoint_of
from slt_serve.routers import gloss, health, metrics, model, stream, translate
from slt_serve.routers.schema import error_response, validation_message
from slt_serve.routers.state import Outcomes, Service, UploadGate, service
from slt_serve.settings import Settings
from slt_serve.uploads import clean_spool, spool_dir
from slt_serve.workers import WorkerPool

if TYPE_CHECKING:
    from slt_serve.translator import Translator

log = logging.getLogger(__name__)

__all__ = ["create_app", "error_response"]


def create_app(
    translator_or_bundle: Translator | str | os.PathLike, settings: Settings | None = None
) -> FastAPI:
    """A FastAPI app serving one translator (or the bundle at a path, loaded here)."""
    settings = settings or Settings()
    if isinstance(translator_or_bundle, str | os.PathLike):
        from slt_serve.translator import TranslateOptions, Translator

        options = TranslateOptions(max_seconds=settings.max_seconds)
        translator = Translator.from_bundle(translator_or_bundle, options)
    else:
        translator = translator_or_bundle
    spool = spool_dir(settings.tmp_dir)
    clean_spool(spool)
    pool = WorkerPool(
        settings.workers, settings.queue_size, settings.max_uploads, settings.line_wait_s
    )
    uploads = UploadGate(settings.max_uploads)
    meters = Metrics(translator, pool, uploads)
    streams = UploadGate(settings.stream_max_streams, "streams are open")
    svc = Service(translator, settings, pool, spool, uploads, Outcomes(meters), meters, streams)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(
        title="slt-serve",
        version=__version__,
        summary="Sign language translation: video of a signer in, text out.",
        description=stream.PROTOCOL,
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.translator, app.state.settings, app.state.pool = translator, settings, pool
    _add_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    for module in (health, model, translate, gloss, metrics, stream):
        app.include_router(module.router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error becomes the JSON error body and is counted once by its outcome."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        service(request).outcomes.add_error(e.status, e.code, endpoint_of(request.scope))
        return error_response(e.status, e.code, str(e), e.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, e: ClientDisconnect):
        service(request).outcomes.add("disconnected", None, endpoint_of(request.scope))
        log.info("client went away during %s %s", request.method, request.url.path)
        return error_response(400, "client_disconnected", "the client closed the connection")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(e.status_code, "http_error")
        service(request).outcomes.add_error(e.status_code, code, endpoint_of(request.scope))
        return error_response(e.status_code, code, str(e.detail), e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        service(request).outcomes.add_error(422, "invalid_request", endpoint_of(request.scope))
        return error_response(422, "invalid_request", validation_message(e.errors()))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        service(request).outcomes.add("server_errors", "internal_error", endpoint_of(request.scope))
        return error_response(500, "internal_error", "internal error; the server logged it")
