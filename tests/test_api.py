"""The HTTP API's contract, through FastAPI's TestClient, on real tiny bundles.

Success paths are compared with the same `Translator` called directly; every
refusal is checked for its status, its JSON error code and a message that names
the problem; the upload spool directory must be empty after every request.
"""

from __future__ import annotations

import json
from pathlib import Path

import cached_bundles
import numpy as np
import pytest
from fastapi.testclient import TestClient
from generated_clips import sliding_texture
from malformed_corpus import encode_audio, encode_image, encode_video

from slt_serve.api import create_app
from slt_serve.settings import Settings
from slt_serve.translator import TranslateOptions, Translator

LIMITS = dict(max_bytes=400_000, max_seconds=10.0, max_frames=300, max_pixels=640 * 480)


@pytest.fixture(scope="module")
def s2t(request):
    path = cached_bundles.bundle(Path(request.config.cache.mkdir("slt-bundles")), "s2t")
    return Translator.from_bundle(path, TranslateOptions(device="cpu"))


@pytest.fixture(scope="module")
def g2t(request):
    path = cached_bundles.bundle(Path(request.config.cache.mkdir("slt-bundles")), "g2t")
    return Translator.from_bundle(path, TranslateOptions(device="cpu"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s of a moving pattern, 64², 25 fps."""
    return sliding_texture(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=50)


@pytest.fixture
def spool(tmp_path):
    return tmp_path / "spool"


@pytest.fixture
def client(s2t, spool):
    with TestClient(create_app(s2t, Settings(tmp_dir=spool, **LIMITS))) as c:
        yield c
    assert not list(spool.glob("*")), "an upload was left in the spool directory"


def post_file(client, name, data, ctype="video/mp4", **kw):
    return client.post("/v1/translate", files={"file": (name, data, ctype)}, **kw)


def error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


# --- success -------------------------------------------------------------------------------


def test_translate_a_video_gives_what_the_translator_gives(client, s2t, clip):
    r = post_file(client, "clip.mp4", clip.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    direct = s2t.translate(clip).to_dict()
    assert set(body) == set(direct) == {"gloss", "text", "gloss_spans", "duration_s", "timings_ms", "model", "score", "confidence", "low_confidence"}  # fmt: skip
    assert (body["gloss"], body["text"], body["gloss_spans"]) == (
        direct["gloss"],
        direct["text"],
        direct["gloss_spans"],
    )
    assert body["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert body["model"] == s2t.manifest.name
    assert len(body["gloss_spans"]) == len(body["gloss"].split())


def test_health_ready_model_and_openapi(client, s2t):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["in_flight"] == 0 and ready["capacity"] == 5
    model = client.get("/v1/model").json()
    assert model["stage"] == s2t.stage and model["kind"] == s2t.kind
    assert model["manifest"] == s2t.manifest.to_json() and model["digest"] == s2t.digest
    assert model["limits"]["max_bytes"] == LIMITS["max_bytes"]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/translate"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["file"]
    assert "/v1/translate/gloss" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_gloss_translation_on_a_g2t_bundle(g2t, spool):
    with TestClient(create_app(g2t, Settings(tmp_dir=spool))) as c:
        gloss = "REGEN MORGEN"
        r = c.post("/v1/translate/gloss", json={"gloss": gloss})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == g2t.translate_gloss(gloss).text
        error(c.post("/v1/translate", files={"file": ("a.mp4", b"x")}), 400, "unsupported_by_model")  # fmt: skip
        error(c.post("/v1/translate/gloss", content=b'{"gloss": "A"}'), 415, "unsupported_media_type")  # fmt: skip
        error(c.post("/v1/translate/gloss", content=b"{nope", headers=JSON), 400, "invalid_json")
        error(c.post("/v1/translate/gloss", json={"text": "A"}), 422, "invalid_request")
        error(c.post("/v1/translate/gloss", json={"gloss": 3}), 422, "invalid_request")
        error(c.post("/v1/translate/gloss", json={"gloss": "   "}), 422, "invalid_request")
        error(c.post("/v1/translate/gloss", json={"gloss": "A " * 1001}), 413, "too_large")
        error(c.post("/v1/translate/gloss", headers=JSON), 400, "empty_body")


JSON = {"content-type": "application/json"}


# --- refusals ------------------------------------------------------------------------------


def test_request_level_refusals(client):
    boundary = "b0undary"
    mp = {"content-type": f"multipart/form-data; boundary={boundary}"}
    error(client.post("/v1/translate", content=b"", headers=mp), 400, "empty_body")
    error(client.post("/v1/translate", content=b"abc"), 415, "unsupported_media_type")
    msg = error(client.post("/v1/translate", json={"file": "clip.mp4"}), 415, "unsupported_media_type")  # fmt: skip
    assert "multipart/form-data" in msg and "application/json" in msg
    no_boundary = {"content-type": "multipart/form-data"}
    error(client.post("/v1/translate", content=b"x", headers=no_boundary), 400, "bad_multipart")
    msg = error(client.post("/v1/translate", data={"video": "x"}, files={"other": ("a", b"1")}), 400, "missing_file")  # fmt: skip
    assert "`file`" in msg
    error(post_file(client, "clip.mp4", b""), 400, "empty_file")
    cut = f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nabc"  # fmt: skip
    error(client.post("/v1/translate", content=cut.encode(), headers=mp), 400, "bad_multipart")
    error(client.get("/v1/translate"), 405, "method_not_allowed")
    error(client.get("/v2/nothing"), 404, "not_found")
    error(client.post("/v1/translate/gloss", json={"gloss": "A"}), 400, "unsupported_by_model")


def test_byte_limit_by_declared_length_and_while_streaming(client):
    big = bytes(LIMITS["max_bytes"] + 100_000)
    msg = error(post_file(client, "big.mp4", big), 413, "too_large")
    assert f"{LIMITS['max_bytes']:,}" in msg
    boundary = "xx"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'  # fmt: skip

    def chunked():  # no Content-Length: the limit must hold while the body streams in
        yield head.encode()
        for _ in range(LIMITS["max_bytes"] // 65536 + 2):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    mp = {"content-type": f"multipart/form-data; boundary={boundary}"}
    msg = error(client.post("/v1/translate", content=chunked(), headers=mp), 413, "too_large")
    assert "big.mp4" in msg


def test_not_a_video_in_every_way(client, spool):
    cases = [
        ("notes.mp4", b"hello, this is text\n" * 20, "invalid_video", "not a readable video"),
        ("still.png", encode_image("png"), "not_a_video", "still image"),
        ("song.m4a", encode_audio("mp4", "aac"), "invalid_video", "only audio"),
        (
            "wide.mkv",
            encode_video(np.zeros((2, 16, 8200, 3), np.uint8), "matroska", "ffv1"),
            "invalid_video",
            "absurd frame size",
        ),  # fmt: skip
        (
            "big.mkv",
            encode_video(np.zeros((2, 480, 700, 3), np.uint8), "matroska", "mjpeg"),
            "too_many_pixels",
            "700×480",
        ),  # fmt: skip
        (
            "long.mp4",
            encode_video(np.zeros((12, 16, 16, 3), np.uint8), "mp4", "libx264", fps=1),
            "too_long",
            "12.0 s",
        ),  # fmt: skip
        (
            "fast.mp4",
            encode_video(np.zeros((320, 16, 16, 3), np.uint8), "mp4", "libx264", fps=100),
            "too_many_frames",
            "320 frames",
        ),  # fmt: skip
    ]
    for name, data, code, words in cases:
        msg = error(post_file(client, name, data), 422, code)
        assert words in msg and name in msg, msg
        assert str(spool) not in msg  # the temporary path never leaks


def test_truncated_video_that_probes_fine_is_refused_when_decoded(client):
    data = encode_video(np.zeros((32, 64, 64, 3), np.uint8) + 90, "mp4", "libx264", movflags="faststart")
    msg = error(post_file(client, "cut.mp4", data[: len(data) * 3 // 4]), 422, "invalid_video")
    assert "truncated" in msg and "cut.mp4" in msg


def test_api_key(s2t, clip, spool):
    settings = Settings(tmp_dir=spool, api_key="s3cret")
    with TestClient(create_app(s2t, settings)) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        error(c.get("/v1/model"), 401, "unauthorized")
        error(post_file(c, "clip.mp4", clip.read_bytes()), 401, "unauthorized")
        r = post_file(c, "clip.mp4", clip.read_bytes(), headers={"X-API-Key": "wrong"})
        error(r, 401, "unauthorized")
        r = post_file(c, "clip.mp4", clip.read_bytes(), headers={"X-API-Key": "s3cret"})
        assert r.status_code == 200, r.text
    assert not list(spool.glob("*"))


def test_a_failure_inside_inference_is_a_logged_500_and_the_server_goes_on(
    client, s2t, clip, monkeypatch, caplog
):
    def broken(video):
        raise RuntimeError("onnxruntime: out of memory")

    monkeypatch.setattr(s2t, "translate", broken)  # an injected fault, not the client's
    msg = error(post_file(client, "clip.mp4", clip.read_bytes()), 500, "inference_failed")
    assert "out of memory" not in msg  # internals stay in the log
    assert "onnxruntime: out of memory" in caplog.text
    monkeypatch.undo()
    assert post_file(client, "clip.mp4", clip.read_bytes()).status_code == 200
    stats = client.get("/v1/model").json()["requests"]
    assert stats["server_errors"] == 1 and stats["ok"] == 1
    assert json.loads(client.get("/readyz").text)["in_flight"] == 0
