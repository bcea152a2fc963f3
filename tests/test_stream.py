"""WebSocket /v1/stream: a sample clip streamed at real time through a real uvicorn gives
partial glosses before the clip ends and a final equal to `translate_frames` on the same
decoded frames; malformed messages get errors and the stream goes on; the limits (streams
open at once, API key, idle timeout, frame rate) answer as documented."""

from __future__ import annotations

import json
import struct
import threading

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from loopback_server import serving, wait_for
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from slt_serve import video
from slt_serve.api import create_app
from slt_serve.errors import SltError
from slt_serve.sample_model import sample_videos
from slt_serve.settings import Settings
from slt_serve.stream_client import encode_frame, stream_video
from slt_serve.streaming import HEADER, decode_image, image_size
from slt_serve.translator import TranslateOptions, Translator

SAMPLE = str(sample_videos()[0].parent.parent / "bundle")


@pytest.fixture(scope="module")
def sample():
    return Translator.from_bundle(SAMPLE, TranslateOptions(device="cpu"))


@pytest.fixture(scope="module")
def clip():
    path = sample_videos()[0]
    return list(video.iter_frames(path)), video.probe(path).fps


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/stream"


def test_a_clip_streamed_at_real_time(sample, clip, tmp_path):
    frames, fps = clip
    app = create_app(sample, Settings(tmp_dir=tmp_path / "spool"))
    seen_active = []
    with serving(app) as base:

        def watch(_t, message):  # while the stream is open, the gauge counts it
            if message["type"] == "partial" and not seen_active:
                import httpx

                metrics = httpx.get(f"{base}/metrics").text
                seen_active.append("slt_active_streams 1.0" in metrics)

        timed = [(i / fps, f) for i, f in enumerate(frames)]
        run = stream_video(ws_url(base), timed, fps, on_message=watch)
    assert run.close_code == 1000 and not run.errors, run.errors
    assert run.messages[0][1]["type"] == "ready"
    early = [m for t, m in run.partials if t < run.end_sent_s and m["glosses"] + m["pending"]]
    assert early, "no partial glosses before the clip ended"
    assert seen_active == [True]
    (final,) = run.finals
    decoded = np.stack([decode_image(encode_frame(0, f)[HEADER.size :]) for f in frames])
    offline = sample.translate_frames(decoded, fps)
    assert final["reason"] == "end" and final["sentence"] == 0
    assert (final["gloss"], final["text"]) == (offline.gloss, offline.text)
    assert final["gloss_spans"] == offline.to_dict()["gloss_spans"]
    assert final["confidence"] == offline.confidence


def messages_until_close(ws) -> list[dict]:
    out = []
    while True:
        try:
            out.append(ws.receive_json())
        except WebSocketDisconnect as e:
            out.append({"type": "closed", "code": e.code})
            return out


def test_malformed_messages_get_an_error_and_the_stream_goes_on(sample, clip, tmp_path):
    frames, fps = clip
    huge_png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 100_000, 100_000)
    bad = [
        ("text", "not json"),
        ("text", json.dumps({"type": "dance"})),
        ("text", json.dumps([1, 2])),
        ("bytes", b"1234"),
        ("bytes", HEADER.pack(0.0) + b"GIF89a not an image"),
        ("bytes", HEADER.pack(0.0) + huge_png + b"\0" * 20),
        ("bytes", HEADER.pack(float("nan")) + b"\xff\xd8\xff"),
        ("bytes", HEADER.pack(0.0) + b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10" + b"\0" * 20),
    ]
    app = create_app(sample, Settings(tmp_dir=tmp_path / "spool"))
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(json.dumps({"type": "start", "fps": fps}))
        codes = []
        for kind, data in bad[:-1]:
            ws.send_text(data) if kind == "text" else ws.send_bytes(data)
            codes.append(ws.receive_json()["code"])
        ws.send_bytes(bad[-1][1])  # a JPEG header over nothing: refused when decoded
        for i, f in enumerate(frames[:40], start=1):
            ws.send_bytes(encode_frame(i / fps, f))
        ws.send_bytes(encode_frame(0.0, frames[0]))  # back in time
        ws.send_text(json.dumps({"type": "end"}))
        rest = messages_until_close(ws)
        scraped = c.get("/metrics").text
    assert codes == ["bad_message"] * 3 + ["bad_frame", "bad_image", "too_large", "bad_timestamp"]
    errors = [m["code"] for m in rest if m["type"] == "error"]
    assert sorted(errors) == ["bad_image", "too_fast"]
    assert [m["type"] for m in rest][-2:] == ["final", "closed"] and rest[-1]["code"] == 1000
    assert rest[-2]["end_s"] == pytest.approx(40 / fps, abs=0.1)
    assert 'slt_stage_duration_seconds_count{stage="s2g"} 1.0' in scraped  # the final's stages
    assert 'slt_requests_total{code="",endpoint="/v1/stream",outcome="ok"} 1.0' in scraped


def test_limits_streams_key_idle(sample, clip, tmp_path):
    frames, fps = clip
    settings = Settings(
        tmp_dir=tmp_path / "spool", stream_max_streams=1, api_key="k", stream_idle_timeout_s=1
    )
    app = create_app(sample, settings)
    with serving(app) as base:
        url = ws_url(base)
        with pytest.raises(SltError, match="401"):
            stream_video(url, [], fps)
        with connect(url, additional_headers={"X-API-Key": "k"}, proxy=None) as first:
            assert json.loads(first.recv())["type"] == "ready"
            with pytest.raises(SltError, match="503 1 streams are open already"):
                stream_video(url, [], fps, api_key="k")
            first.send(encode_frame(0.0, frames[0]))
            idle = [json.loads(m) for m in first]  # nothing more sent: the server ends it
            assert first.close_code == 1000
        assert idle[-1]["type"] == "final"
        assert [m["code"] for m in idle if m["type"] == "error"] == ["idle_timeout"]
        wait_for(lambda: app.state.service.streams.receiving == 0, "the stream to be let go")
        run = stream_video(url, [(i / fps, f) for i, f in enumerate(frames[:8])], fps, api_key="k", real_time=False)  # fmt: skip
        assert run.close_code == 1000 and len(run.finals) == 1
    counts = app.state.service.outcomes.to_dict()
    assert counts["ok"] == 2 and counts["busy"] == 1 and counts["client_errors_by_code"] == {"unauthorized": 1}  # fmt: skip


def test_frames_faster_than_the_limit_are_refused(sample, clip, tmp_path):
    frames, fps = clip
    app = create_app(sample, Settings(tmp_dir=tmp_path / "spool", stream_max_fps=30))
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        for i in range(60):  # 60 frames stamped at 25 fps, sent at once: 1 s of burst passes
            ws.send_bytes(encode_frame(i / 25, frames[i]))
        ws.send_text(json.dumps({"type": "end"}))
        rest = messages_until_close(ws)
    limited = [m for m in rest if m.get("code") == "rate_limited"]
    assert 10 <= len(limited) <= 30 and rest[-1]["code"] == 1000


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_image_size_from_the_header(ext):
    rgb = np.zeros((37, 53, 3), np.uint8)
    data = cv2.imencode(ext, rgb)[1].tobytes()
    assert image_size(data) == (53, 37)
    assert decode_image(data).shape == (37, 53, 3)


def test_two_threads_do_not_share_a_session(sample, clip):
    """The Translator holds no stream state: two sessions on it at once give what each
    would alone (the stream's state is per session)."""
    from slt_serve.streaming import StreamLimits, StreamSession

    frames, fps = clip
    results = {}

    def one(name, picked):
        s = StreamSession(sample, StreamLimits())
        s.set_fps(fps)
        for i, f in picked:
            s.add_frame(encode_frame(i / fps, f))
        results[name] = s.finish()[-1]["gloss"]

    a = [(i, f) for i, f in enumerate(frames)]
    b = [(i, f) for i, f in enumerate(frames[::-1])]
    threads = [threading.Thread(target=one, args=x) for x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = StreamSession(sample, StreamLimits())
    alone.set_fps(fps)
    for i, f in a:
        alone.add_frame(encode_frame(i / fps, f))
    assert results["a"] == alone.finish()[-1]["gloss"]


def test_inference_failing_on_the_server_closes_the_stream_with_1011(sample, clip, tmp_path, monkeypatch):  # fmt: skip
    frames, fps = clip

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in inference")

    monkeypatch.setattr(sample, "from_recognition", broken)
    app = create_app(sample, Settings(tmp_dir=tmp_path / "spool"))
    with TestClient(app) as c, c.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        for i, f in enumerate(frames[:20]):
            ws.send_bytes(encode_frame(i / fps, f))
        rest = messages_until_close(ws)
    assert rest[-2] == {"type": "error", "code": "inference_failed", "message": rest[-2]["message"]}
    assert rest[-1]["code"] == 1011
    assert app.state.service.outcomes.to_dict()["server_errors"] == 1


def test_a_pause_closes_the_sentence_and_the_next_one_starts(sample, clip):
    """Two clips with 4 s of a still frame between: the recogniser's blank run closes a
    sentence (reason `pause`) before the stream ends; sentences follow each other in time."""
    from slt_serve.streaming import StreamLimits, StreamSession

    frames, fps = clip
    stream = frames + [frames[-1]] * int(4 * fps) + frames
    session = StreamSession(sample, StreamLimits(pause_s=1.0))
    session.set_fps(fps)
    out = []
    for i, f in enumerate(stream):
        session.add_frame(encode_frame(i / fps, f))
        out += session.step()
    out += session.finish()
    finals = [m for m in out if m["type"] == "final"]
    assert len(finals) >= 2 and finals[0]["reason"] == "pause" and finals[-1]["reason"] == "end"
    assert [f["sentence"] for f in finals] == list(range(len(finals)))
    for a, b in zip(finals, finals[1:]):
        assert b["start_s"] == a["end_s"]
    assert finals[-1]["end_s"] == pytest.approx(len(stream) / fps, abs=0.05)
    assert all(m["sentence"] == 0 for m in out[: out.index(finals[0])] if m["type"] == "partial")


def test_slt_stream_prints_partials_and_the_final(sample, tmp_path):
    from typer.testing import CliRunner

    from slt_serve.cli import app as cli

    clip = sample_videos()[1]
    frames, fps = list(video.iter_frames(clip)), video.probe(clip).fps
    decoded = np.stack([decode_image(encode_frame(0, f)[HEADER.size :]) for f in frames])
    offline = sample.translate_frames(decoded, fps)  # the frames the server received
    app = create_app(sample, Settings(tmp_dir=tmp_path / "spool"))
    with serving(app) as base:
        r = CliRunner().invoke(cli, ["stream", str(clip), "--url", ws_url(base), "--fast"])
        refused = CliRunner().invoke(cli, ["stream", "--url", ws_url(base)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"streaming to {sample.name} (12.5 fps)"
    assert any(" partial #0: " in line for line in lines)
    final = next(line for line in lines if " final #0 " in line)
    assert "(end):" in final and f"{offline.gloss} | {offline.text}" in final
    assert "give a video file or --camera" in str(refused.exception)
