"""POST /v1/translate: a video upload → glosses and text.

The body is received first (`slt_serve.uploads`, under the byte limit and the
read timeouts, holding no worker), then the file is checked and translated on a
worker with the limits in force on every frame (`slt_serve.limits`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from slt_serve.errors import ApiError
from slt_serve.limits import translate_upload
from slt_serve.routers.schema import ERRORS, TranslationOut
from slt_serve.routers.state import Service, require_key, service
from slt_serve.uploads import (
    FIELD,
    Upload,
    check_content_length,
    multipart_boundary,
    receive,
    timed,
)

router = APIRouter(tags=["translate"], dependencies=[Depends(require_key)])

_BODY = {
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


@router.post(
    "/v1/translate",
    responses={200: {"model": TranslationOut}, **ERRORS},
    openapi_extra={"requestBody": _BODY},
)
async def translate(request: Request):
    """Translate an uploaded video (multipart field `file`) of a signer."""
    svc = service(request)
    if svc.translator.stage == "g2t":
        raise ApiError(
            400,
            "unsupported_by_model",
            "this model translates glosses (G2T), not video: POST /v1/translate/gloss",
        )
    upload = await _receive(request, svc)
    try:
        result = await svc.run(
            translate_upload, svc.translator, upload, svc.settings, what=upload.filename
        )
    finally:
        upload.path.unlink(missing_ok=True)  # when the pool refused it, or the client left
    svc.succeeded(request, result)
    return JSONResponse(result.to_dict())


async def _receive(request: Request, svc: Service) -> Upload:
    settings = svc.settings
    check_content_length(request.headers, settings.max_bytes)
    boundary = multipart_boundary(request.headers.get("content-type"))
    svc.uploads.enter()
    try:
        body = timed(request.stream(), settings.read_timeout_s, settings.upload_timeout_s)
        return await receive(body, boundary, svc.spool, settings.max_bytes)
    finally:
        svc.uploads.leave()
