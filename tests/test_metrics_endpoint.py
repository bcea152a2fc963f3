"""GET /metrics and request ids: the counters add up with the requests sent, the stage
histograms count each translation, the model is named, the key protects it, every response
carries an X-Request-ID that is also on the log lines written for it."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from generated_clips import sliding_texture
from prometheus_client.parser import text_string_to_metric_families

from slt_serve.api import create_app
from slt_serve.observability import JsonFormatter, RequestIdFilter
from slt_serve.settings import Settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return sliding_texture(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def requests_total(scraped, endpoint, outcome, code=""):
    labels = (("code", code), ("endpoint", endpoint), ("outcome", outcome))
    return scraped.get(("slt_requests_total", labels), 0.0)


def post(client, data, name="clip.mp4", **kw):
    return client.post("/v1/translate", files={"file": (name, data, "video/mp4")}, **kw)


def test_counters_add_up_with_the_requests_sent(s2t, clip, tmp_path):
    with TestClient(create_app(s2t, Settings(tmp_dir=tmp_path / "spool"))) as c:
        for _ in range(3):
            assert post(c, clip).status_code == 200
        assert post(c, b"not a video", "x.mp4").status_code == 422
        assert post(c, b"").status_code == 400
        assert c.post("/v1/translate/gloss", json={"gloss": "A"}).status_code == 400
        assert c.get("/v1/nothing").status_code == 404
        scraped = samples(c.get("/metrics").text)
        counters = c.get("/v1/model").json()["requests"]

    assert requests_total(scraped, "/v1/translate", "ok") == 3
    assert requests_total(scraped, "/v1/translate/gloss", "client_errors", "unsupported_by_model") == 1  # fmt: skip
    assert requests_total(scraped, "unmatched", "client_errors", "not_found") == 1
    translate_errors = sum(
        v for (name, labels), v in scraped.items()
        if name == "slt_requests_total" and ("endpoint", "/v1/translate") in labels
        and ("outcome", "client_errors") in labels
    )  # fmt: skip
    assert translate_errors == 2
    total = sum(v for (name, _), v in scraped.items() if name == "slt_requests_total")
    assert total == counters["total"] == 7  # one owner of the classification: the same counts
    assert counters["client_errors"] == 4 and counters["ok"] == 3
    for stage in ("decode", "s2g", "ctc", "encoder", "decoder"):
        assert scraped["slt_stage_duration_seconds_count", (("stage", stage),)] == 3, stage
    assert scraped["slt_request_duration_seconds_count", (("endpoint", "/v1/translate"),)] == 5
    info = next(k for k in scraped if k[0] == "slt_model_info")
    assert dict(info[1])["digest"] == s2t.digest and dict(info[1])["name"] == s2t.name
    assert scraped["slt_active_streams", ()] == 0
    assert scraped["slt_queue_waiting_requests", ()] == 0


def test_metrics_is_behind_the_api_key(s2t, tmp_path):
    settings = Settings(tmp_dir=tmp_path / "spool", api_key="s3cret")
    with TestClient(create_app(s2t, settings)) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.get("/metrics", headers={"X-API-Key": "s3cret"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        scraped = samples(r.text)
        assert requests_total(scraped, "/metrics", "client_errors", "unauthorized") == 1


def test_request_id_on_every_response_and_its_log_lines(s2t, clip, tmp_path, monkeypatch):
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("slt_serve.api")
    logger.addHandler(handler)

    def broken(video):
        raise RuntimeError("a bug in inference")

    try:
        with TestClient(create_app(s2t, Settings(tmp_dir=tmp_path / "spool"))) as c:
            assert c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"  # fmt: skip
            fresh = c.get("/healthz", headers={"X-Request-ID": "bad id\twith <junk>"})
            assert fresh.headers["x-request-id"] != "bad id\twith <junk>"
            assert len(fresh.headers["x-request-id"]) == 32
            assert c.get("/v1/nothing").headers["x-request-id"]
            monkeypatch.setattr(s2t, "translate", broken)
            r = post(c, clip, headers={"X-Request-ID": "req-500"})
    finally:
        logger.removeHandler(handler)
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    logged = [json.loads(line) for line in lines]
    failure = next(x for x in logged if "inference failed" in x["message"])
    assert failure["request_id"] == "req-500" and failure["level"] == "ERROR"
    assert "a bug in inference" in failure["exc"]
