"""The HTTP API: FastAPI over a `Translator`, with limits, a bounded worker pool, JSON errors.

    POST /v1/translate        multipart upload (field `file`) → Result.to_dict()
    POST /v1/translate/gloss  {"gloss": "…"} → Result.to_dict()   (G2T bundles)
    GET  /healthz             the process is up
    GET  /readyz              the model is loaded and requests are accepted
    GET  /v1/model            manifest, dev-set metrics, limits, counters
    GET  /docs                OpenAPI

Bad input is the client's error and never the server's: each refusal is a 4xx with
`{"error": {"code": …, "message": …}}`, the message saying what was wrong. An upload
is streamed to a temporary file under the byte limit (`slt_serve.uploads`), probed
with PyAV against the duration, frame and pixel limits, and only then translated,
on a worker of the pool (`slt_serve.workers`); the file is removed whatever happens.
A failure inside inference that is not the client's is logged and answered with a
500 JSON body; the server goes on serving.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from slt_serve import __version__
from slt_serve.errors import ApiError, SltError
from slt_serve.settings import Settings
from slt_serve.uploads import (
    FIELD,
    Upload,
    check_content_length,
    multipart_boundary,
    receive,
    too_large,
)
from slt_serve.video import probe
from slt_serve.workers import WorkerPool

if TYPE_CHECKING:
    from slt_serve.translator import Translator

log = logging.getLogger(__name__)

_JSON_MAX = 64 * 1024  # bytes of a /v1/translate/gloss body


# --- response and request models (for validation and the OpenAPI page) ------------------


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. `too_large`.")
    message: str = Field(description="What was wrong and what to do, for a person.")


class ErrorOut(BaseModel):
    error: ErrorBody


class GlossSpanOut(BaseModel):
    gloss: str
    start_s: float
    end_s: float


class TranslationOut(BaseModel):
    gloss: str = Field(description="Recognised gloss sequence, space-separated.")
    text: str = Field(description="Spoken-language translation.")
    gloss_spans: list[GlossSpanOut] = Field(description="Where each gloss was seen in the video.")
    duration_s: float = Field(description="Duration of the input video.")
    timings_ms: dict[str, float] = Field(description="Time spent per stage.")
    model: str = Field(description="Name of the bundle that translated.")


class GlossIn(BaseModel):
    gloss: str = Field(min_length=1, description="Gloss sequence, space-separated.")


_ERRORS = {
    s: {"model": ErrorOut, "description": d}
    for s, d in {
        400: "Malformed request (empty body, no `file` field, wrong model stage).",
        401: "Missing or wrong X-API-Key (when the server has one).",
        413: "Over the byte limit.",
        415: "Not multipart/form-data (or not JSON for /gloss).",
        422: "Not a usable video: corrupt, truncated, audio-only, an image, or over the "
        "duration, frame or pixel limit.",
        500: "Inference failed for a reason that is not the client's.",
        503: "All workers busy and the queue full (see Retry-After), or shutting down.",
    }.items()
}


# --- the app ------------------------------------------------------------------------------


def create_app(
    translator_or_bundle: Translator | str | os.PathLike, settings: Settings | None = None
) -> FastAPI:
    """A FastAPI app serving one translator (or the bundle at a path, loaded here)."""
    settings = settings or Settings()
    if isinstance(translator_or_bundle, str | os.PathLike):
        from slt_serve.translator import Translator

        translator = Translator.from_bundle(translator_or_bundle, max_seconds=settings.max_seconds)
    else:
        translator = translator_or_bundle
    tmp_dir = Path(settings.tmp_dir or tempfile.gettempdir())
    pool = WorkerPool(settings.workers, settings.queue_size)
    stats = {"ok": 0, "client_errors": 0, "server_errors": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(
        title="slt-serve",
        version=__version__,
        summary="Sign language translation: video of a signer in, text out.",
        lifespan=lifespan,
    )
    app.state.translator, app.state.settings, app.state.pool = translator, settings, pool

    def require_key(request: Request) -> None:
        expected = settings.api_key
        if expected is None:
            return
        given = request.headers.get("x-api-key", "")
        if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "missing or wrong X-API-Key header")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        stats["client_errors" if e.status < 500 else "server_errors"] += 1
        return error_response(e.status, e.code, str(e), e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            e.status_code, codes.get(e.status_code, "http_error"), str(e.detail), e.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        return error_response(422, "invalid_request", _validation_message(e.errors()))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        stats["server_errors"] += 1
        return error_response(500, "internal_error", "internal error; the server logged it")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: _ERRORS[503]})
    def readyz():
        """The model is loaded and new requests are accepted (readiness)."""
        if pool.closed:
            return error_response(503, "shutting_down", "the server is shutting down")
        return {"status": "ready", "in_flight": pool.in_flight, "capacity": pool.capacity}

    @app.get("/v1/model", tags=["model"], dependencies=[Depends(require_key)])
    def model() -> dict:
        """The bundle's manifest and dev-set metrics, the server's limits and counters."""
        manifest = translator.manifest
        return {
            "model": manifest.get("name", ""),
            "kind": translator.kind,
            "stage": translator.stage,
            "provider": translator.provider,
            "metrics": manifest.get("metrics", {}),
            "manifest": manifest,
            "limits": {
                "max_bytes": settings.max_bytes,
                "max_seconds": settings.max_seconds,
                "max_frames": settings.max_frames,
                "max_pixels": settings.max_pixels,
                "max_gloss_chars": settings.max_gloss_chars,
            },
            "pool": {
                "workers": pool.workers,
                "queue_size": pool.queue_size,
                "in_flight": pool.in_flight,
                "completed": pool.completed,
                "rejected_busy": pool.rejected,
            },
            "requests": dict(stats),
        }

    @app.post(
        "/v1/translate",
        tags=["translate"],
        dependencies=[Depends(require_key)],
        responses={200: {"model": TranslationOut}, **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": [FIELD],
                            "properties": {FIELD: {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def translate(request: Request):
        """Translate an uploaded video (multipart field `file`) of a signer."""
        if translator.stage == "g2t":
            raise ApiError(
                400,
                "unsupported_by_model",
                "this model translates glosses (G2T), not video: POST /v1/translate/gloss",
            )
        check_content_length(request.headers, settings.max_bytes)
        boundary = multipart_boundary(request.headers.get("content-type"))
        slot = pool.acquire()
        try:
            upload = await receive(request.stream(), boundary, tmp_dir, settings.max_bytes)
            try:
                result = await slot.run(_translate_upload, translator, upload, settings)
            except SltError:
                raise
            except Exception:
                return _inference_failed(stats, upload.filename)
        finally:
            slot.release_unless_running()
        stats["ok"] += 1
        return JSONResponse(result.to_dict())

    @app.post(
        "/v1/translate/gloss",
        tags=["translate"],
        dependencies=[Depends(require_key)],
        responses={200: {"model": TranslationOut}, **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": GlossIn.model_json_schema()}},
            }
        },
    )
    async def translate_gloss(request: Request):
        """Translate a gloss sequence into text (G2T bundles)."""
        if translator.stage != "g2t":
            raise ApiError(
                400,
                "unsupported_by_model",
                f"this model translates video ({translator.stage.upper()}), not glosses: "
                f"POST the video to /v1/translate",
            )
        gloss = await _read_gloss(request, settings.max_gloss_chars)
        slot = pool.acquire()
        try:
            try:
                result = await slot.run(translator.translate_gloss, gloss)
            except SltError as e:
                raise ApiError(422, "invalid_gloss", str(e)) from None
            except Exception:
                return _inference_failed(stats, "gloss")
        finally:
            slot.release_unless_running()
        stats["ok"] += 1
        return JSONResponse(result.to_dict())

    return app


# --- what runs on a worker ------------------------------------------------------------------


def _translate_upload(translator: Translator, upload: Upload, settings: Settings):
    """Probe against the limits, then translate; the upload's file is removed in every case."""
    try:
        _check_video(upload, settings)
        try:
            return translator.translate(upload.path)
        except ApiError:
            raise
        except SltError as e:
            raise _invalid_video(e, upload) from None
    finally:
        upload.path.unlink(missing_ok=True)


def _check_video(upload: Upload, settings: Settings) -> None:
    """Refuse what is not a video, or one over a limit, before any inference."""
    try:
        with av.open(str(upload.path), metadata_errors="ignore") as container:
            fmt = container.format.name
    except av.FFmpegError:
        fmt = ""  # probe() explains what is wrong
    if fmt.endswith("_pipe") or fmt == "image2":
        raise ApiError(
            422,
            "not_a_video",
            f"`{upload.filename}` is a still image ({fmt.removesuffix('_pipe')}), not a video; "
            "upload a video of a signer",
        )
    try:
        info = probe(upload.path)
    except SltError as e:
        raise _invalid_video(e, upload) from None
    name = upload.filename
    if info.width * info.height > settings.max_pixels:
        raise ApiError(
            422,
            "too_many_pixels",
            f"`{name}` is {info.width}×{info.height} ({info.width * info.height:,} pixels a "
            f"frame); the limit is {settings.max_pixels:,} (SLT_MAX_PIXELS): downscale it",
        )
    if info.duration_s > settings.max_seconds:
        raise ApiError(
            422,
            "too_long",
            f"`{name}` lasts {info.duration_s:.1f} s; the limit is {settings.max_seconds:g} s "
            "(SLT_MAX_SECONDS): cut it into shorter clips",
        )
    if info.num_frames > settings.max_frames:
        raise ApiError(
            422,
            "too_many_frames",
            f"`{name}` has {info.num_frames:,} frames; the limit is {settings.max_frames:,} "
            "(SLT_MAX_FRAMES): lower its frame rate or cut it",
        )


def _invalid_video(e: SltError, upload: Upload) -> ApiError:
    """A decoding complaint about the temporary file, told in terms of the client's file."""
    message = str(e).replace(str(upload.path), f"`{upload.filename}`")
    return ApiError(422, "invalid_video", message)


def _inference_failed(stats: dict, what: str) -> JSONResponse:
    log.exception("inference failed on %s", what)
    stats["server_errors"] += 1
    return error_response(
        500, "inference_failed", "inference failed on the server; it is logged, not your input"
    )


# --- helpers of the request/response format -----------------------------------------------


def error_response(
    status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _read_gloss(request: Request, max_chars: int) -> str:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f'expected application/json like {{"gloss": "HEUTE REGEN"}}, got {ctype or "no content type"}',
        )
    check_content_length(request.headers, _JSON_MAX)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_MAX:
            raise too_large(_JSON_MAX, "the JSON body is over the limit")
    if not body:
        raise ApiError(400, "empty_body", 'the request has no body; send {"gloss": "…"}')
    try:
        gloss = GlossIn.model_validate(json.loads(body)).gloss.strip()
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({e})") from None
    except ValidationError as e:
        raise ApiError(422, "invalid_request", _validation_message(e.errors())) from None
    if not gloss:
        raise ApiError(422, "invalid_request", "`gloss` is blank; send a gloss sequence")
    if len(gloss) > max_chars:
        raise ApiError(
            413,
            "too_large",
            f"`gloss` has {len(gloss):,} characters; the limit is {max_chars:,} (SLT_MAX_GLOSS_CHARS)",
        )
    return gloss


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
