"""Request and response models of the HTTP API (for validation and the OpenAPI page), and
its one error body: `{"error": {"code": …, "message": …}}`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. `too_large`.")
    message: str = Field(description="What was wrong and what to do, for a person.")


class ErrorOut(BaseModel):
    error: ErrorBody


class GlossSpanOut(BaseModel):
    gloss: str
    start_s: float
    end_s: float
    confidence: float = Field(
        ge=0, le=1, description="CTC posterior of the gloss averaged over its span."
    )


class TranslationOut(BaseModel):
    gloss: str = Field(description="Recognised gloss sequence, space-separated.")
    text: str = Field(description="Spoken-language translation.")
    gloss_spans: list[GlossSpanOut] = Field(description="Where each gloss was seen in the video.")
    duration_s: float = Field(description="Duration of the input video.")
    timings_ms: dict[str, float] = Field(description="Time spent per stage.")
    model: str = Field(description="Name of the bundle that translated.")
    score: float | None = Field(
        description="Mean token log-probability of the translation (null without text)."
    )
    confidence: float = Field(
        ge=0,
        le=1,
        description="exp(score); for a gloss-only (S2G) bundle, the mean gloss confidence.",
    )
    low_confidence: bool = Field(
        description="Confidence under the bundle's threshold (calibrated on dev at export)."
    )


class GlossIn(BaseModel):
    gloss: str = Field(min_length=1, description="Gloss sequence, space-separated.")


ERRORS = {
    s: {"model": ErrorOut, "description": d}
    for s, d in {
        400: "Malformed request (empty body, no `file` field, not UTF-8 JSON, wrong model stage).",
        401: "Missing or wrong X-API-Key (when the server has one).",
        408: "The request's headers or body arrived too slowly.",
        413: "Over the byte limit.",
        415: "Not multipart/form-data (or not JSON for /gloss).",
        422: "Not a usable video: not in an accepted container, corrupt, truncated, audio-only, "
        "an image, or over the duration, frame or pixel limit (checked on every frame).",
        500: "Inference failed for a reason that is not the client's.",
        503: "All workers busy and the queue full (see Retry-After), the request ran past the "
        "server's time limit, or shutting down.",
    }.items()
}


def error_response(
    status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
