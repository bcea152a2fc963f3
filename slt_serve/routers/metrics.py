"""GET /metrics: Prometheus exposition of the server's counters, histograms and gauges
(`slt_serve.observability.Metrics`); behind the API key like /v1/* when one is set."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from slt_serve.observability import CONTENT_TYPE
from slt_serve.routers.schema import ERRORS
from slt_serve.routers.state import require_key, service

router = APIRouter(tags=["health"], dependencies=[Depends(require_key)])


@router.get(
    "/metrics",
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}}, 401: ERRORS[401]},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: `slt_requests_total{endpoint,outcome,code}` (outcome: ok,
    client_errors, busy, timeouts, server_errors, disconnected), `slt_stage_duration_seconds`
    per stage (decode, pose, s2g, ctc, encoder, decoder), `slt_request_duration_seconds`,
    `slt_inflight_requests`, `slt_queue_waiting_requests`, `slt_uploads_receiving`,
    `slt_active_streams`, `slt_stream_frames_total` and `slt_model_info`."""
    return Response(service(request).metrics.exposition(), media_type=CONTENT_TYPE)
