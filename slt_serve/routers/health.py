"""Liveness and readiness: never queued, never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Request

from slt_serve.routers.schema import ERRORS, error_response
from slt_serve.routers.state import service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: ERRORS[503]})
def readyz(request: Request):
    """The model is loaded and new requests are accepted (readiness)."""
    svc = service(request)
    if svc.pool.closed:
        return error_response(503, "shutting_down", "the server is shutting down")
    return {
        "status": "ready",
        "in_flight": svc.pool.in_flight,
        "capacity": svc.pool.capacity,
        "waiting": svc.pool.waiting,
        "receiving": svc.uploads.receiving,
    }
