"""POST /v1/translate/gloss: a gloss sequence → text (G2T bundles).

The body is JSON of at most 64 KiB, UTF-8, `{"gloss": "…"}`; anything else is
the client's error with a message (a body that is not UTF-8, nesting too deep
to parse, another shape), never a 500.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from slt_serve.errors import ApiError, SltError
from slt_serve.routers.schema import ERRORS, GlossIn, TranslationOut, validation_message
from slt_serve.routers.state import require_key, service
from slt_serve.uploads import check_content_length, timed, too_large

router = APIRouter(tags=["translate"], dependencies=[Depends(require_key)])

JSON_MAX = 64 * 1024  # bytes of a /v1/translate/gloss body


@router.post(
    "/v1/translate/gloss",
    responses={200: {"model": TranslationOut}, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": GlossIn.model_json_schema()}},
        }
    },
)
async def translate_gloss(request: Request):
    """Translate a gloss sequence into text (G2T bundles)."""
    svc = service(request)
    if svc.translator.stage != "g2t":
        raise ApiError(
            400,
            "unsupported_by_model",
            f"this model translates video ({svc.translator.stage.upper()}), not glosses: "
            f"POST the video to /v1/translate",
        )
    gloss = parse_gloss(await _read_body(request), svc.settings.max_gloss_chars)
    try:
        result = await svc.run(svc.translator.translate_gloss, gloss, what="gloss")
    except ApiError:
        raise
    except SltError as e:
        raise ApiError(422, "invalid_gloss", str(e)) from None
    svc.succeeded(request, result)
    return JSONResponse(result.to_dict())


async def _read_body(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f'expected application/json like {{"gloss": "HEUTE REGEN"}}, got {ctype or "no content type"}',
        )
    advice = 'send one gloss sequence as {"gloss": "…"}'
    check_content_length(request.headers, JSON_MAX)
    settings = service(request).settings
    body = bytearray()
    async for chunk in timed(request.stream(), settings.read_timeout_s, settings.upload_timeout_s):
        body += chunk
        if len(body) > JSON_MAX:
            raise too_large(JSON_MAX, "the JSON body is over the limit", advice)
    if not body:
        raise ApiError(400, "empty_body", 'the request has no body; send {"gloss": "…"}')
    return bytes(body)


def parse_gloss(body: bytes, max_chars: int) -> str:
    """The gloss sequence of a JSON body, or the client's error saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(
            400,
            "invalid_json",
            f"the body is not UTF-8 (byte {e.start} is 0x{body[e.start]:02x}); "
            "send JSON encoded as UTF-8",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({e})") from None
    except RecursionError:
        raise ApiError(
            400, "invalid_json", 'the JSON is nested too deeply; send {"gloss": "…"}'
        ) from None
    try:
        gloss = GlossIn.model_validate(data).gloss.strip()
    except ValidationError as e:
        raise ApiError(422, "invalid_request", validation_message(e.errors())) from None
    if not gloss:
        raise ApiError(422, "invalid_request", "`gloss` is blank; send a gloss sequence")
    if len(gloss) > max_chars:
        raise ApiError(
            413,
            "too_large",
            f"`gloss` has {len(gloss):,} characters; the limit is {max_chars:,}: "
            "split it into shorter sequences",
        )
    return gloss
