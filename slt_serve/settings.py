"""Settings of the HTTP API: limits, the worker pool, the API key, where to listen.

Each field can be set from the environment as `SLT_<NAME>` (`SLT_MAX_BYTES=50000000`,
`SLT_API_KEY=…`), by `slt serve` options (which win), or in code. The limits are
what keeps one upload from taking the server down: they are checked while the
upload streams in (bytes, how long it may take), by probing the file before any
inference (duration, frames, pixels) and again on every frame while it is decoded
(a header may understate), and the whole request is bounded in time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What `slt serve` runs with; every field has an `SLT_` environment variable."""

    model_config = SettingsConfigDict(env_prefix="SLT_", frozen=True, extra="forbid")

    max_bytes: int = Field(100_000_000, gt=0, description="Largest upload accepted, in bytes.")
    max_seconds: float = Field(60.0, gt=0, description="Longest video accepted, in seconds.")
    max_frames: int = Field(3000, gt=0, description="Most frames a video may hold.")
    max_pixels: int = Field(
        3840 * 2160, gt=0, description="Largest frame accepted, width × height (4K by default)."
    )
    max_gloss_chars: int = Field(
        2000, gt=0, description="Longest gloss sequence /v1/translate/gloss accepts."
    )
    workers: int = Field(1, ge=1, description="Inferences that run at the same time.")
    queue_size: int = Field(
        4,
        ge=0,
        description="Requests that may wait for a worker; beyond it the server answers 503.",
    )
    line_wait_s: float = Field(
        30.0,
        ge=0,
        description="How long a request may wait, in arrival order, for a place when the "
        "workers and the queue are full (up to max_uploads of them); then 503. 0: 503 at once.",
    )
    api_key: SecretStr | None = Field(
        None, description="When set, /v1/* requires this value in the X-API-Key header."
    )
    host: str = Field("127.0.0.1", description="Address to bind (loopback unless told otherwise).")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    tmp_dir: Path | None = Field(
        None,
        description="Where the server makes its own upload spool folder, cleaned of what a "
        "killed server left there when it starts (default: the system's temp dir).",
    )
    max_uploads: int = Field(
        32,
        ge=1,
        description="Uploads received at the same time (they hold no worker while they arrive); "
        "beyond it the server answers 503.",
    )
    read_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for the next piece of a request body (else 408)."
    )
    upload_timeout_s: float = Field(
        120.0, gt=0, description="Longest time a whole request body may take to arrive (else 408)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Longest time a request's headers may take to arrive (else 408)."
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="Longest time one translation may run on a worker (else 503)."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text or as JSON objects (one a line); each carries the "
        "request id (X-Request-ID).",
    )
    stream_max_streams: int = Field(
        4, ge=0, description="WebSocket streams (/v1/stream) open at once; beyond it 503."
    )
    stream_max_fps: float = Field(
        60.0, gt=0, description="Most frames a second a stream may send (by timestamp and "
        "by arrival)."
    )  # fmt: skip
    stream_max_frame_bytes: int = Field(
        2_000_000, gt=0, description="Largest encoded image of one stream frame, in bytes."
    )
    stream_max_session_s: float = Field(
        3600.0, gt=0, description="Longest stream, in seconds of its timestamps."
    )
    stream_idle_timeout_s: float = Field(
        10.0, gt=0, description="A stream that sends nothing for this long is ended."
    )
    stream_pause_s: float = Field(
        3.0,
        gt=0,
        description="A run of this many seconds the recogniser sees as blank (a pause) closes "
        "the sentence being streamed.",
    )
    stream_max_sentence_s: float = Field(
        20.0, gt=0, description="A streamed sentence is closed at this length whatever."
    )
    stream_partial_interval_s: float = Field(
        0.5, gt=0, description="Stream time between two partial results."
    )
