"""GET /v1/model: the bundle's manifest and dev-set metrics, the limits, the counters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from slt_serve.routers.state import require_key, service

router = APIRouter(tags=["model"], dependencies=[Depends(require_key)])


@router.get("/v1/model")
def model(request: Request) -> dict:
    """The bundle's manifest and dev-set metrics, the server's limits and counters.

    `requests` counts each request once by how it ended: `ok`, `client_errors` (with
    `client_errors_by_code`), `busy` (503, retry), `timeouts`, `server_errors`,
    `disconnected` (the client went away before the answer); `total` is their sum.
    """
    svc = service(request)
    translator, settings, pool = svc.translator, svc.settings, svc.pool
    manifest = translator.manifest
    return {
        "model": manifest.name,
        "digest": manifest.digest,
        "kind": translator.kind,
        "stage": translator.stage,
        "provider": translator.provider,
        "metrics": manifest.metrics,
        "manifest": manifest.to_json(),
        "limits": {
            "max_bytes": settings.max_bytes,
            "max_seconds": settings.max_seconds,
            "max_frames": settings.max_frames,
            "max_pixels": settings.max_pixels,
            "max_gloss_chars": settings.max_gloss_chars,
            "request_timeout_s": settings.request_timeout_s,
        },
        "pool": {
            "workers": pool.workers,
            "queue_size": pool.queue_size,
            "in_flight": pool.in_flight,
            "waiting": pool.waiting,
            "line_wait_s": pool.line_wait_s,
            "completed": pool.completed,
            "rejected_busy": pool.rejected,
            "receiving": svc.uploads.receiving,
            "max_uploads": svc.uploads.limit,
        },
        "requests": svc.outcomes.to_dict(),
    }
