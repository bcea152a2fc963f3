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
from typing import Annotated, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

AtLeastOne = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=0, le=65535)]


class Settings(BaseSettings):
    """What `slt serve` runs with; every field has an `SLT_` environment variable."""

    # A field's description is the docstring under it (one line: it is the description as is).
    model_config = SettingsConfigDict(
        env_prefix="SLT_", frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    max_bytes: PositiveInt = 100_000_000
    """Largest upload accepted, in bytes."""
    max_seconds: PositiveFloat = 60.0
    """Longest video accepted, in seconds."""
    max_frames: PositiveInt = 3000
    """Most frames a video may hold."""
    max_pixels: PositiveInt = 3840 * 2160
    """Largest frame accepted, width × height (4K by default)."""
    max_gloss_chars: PositiveInt = 2000
    """Longest gloss sequence /v1/translate/gloss accepts."""
    workers: AtLeastOne = 1
    """Inferences that run at the same time."""
    queue_size: NonNegativeInt = 4
    """Requests that may wait for a worker; beyond it the server answers 503."""
    line_wait_s: NonNegativeFloat = 30.0
    """How long a request may wait, in arrival order, for a place when the workers and the queue are full (up to max_uploads of them); then 503. 0: 503 at once."""
    api_key: SecretStr | None = None
    """When set, /v1/* requires this value in the X-API-Key header."""
    host: str = "127.0.0.1"
    """Address to bind (loopback unless told otherwise)."""
    port: Port = 8000
    """Port to listen on."""
    tmp_dir: Path | None = None
    """Where the server makes its own upload spool folder, cleaned of what a killed server left there when it starts (default: the system's temp dir)."""
    max_uploads: AtLeastOne = 32
    """Uploads received at the same time (they hold no worker while they arrive); beyond it the server answers 503."""
    read_timeout_s: PositiveFloat = 10.0
    """Longest wait for the next piece of a request body (else 408)."""
    upload_timeout_s: PositiveFloat = 120.0
    """Longest time a whole request body may take to arrive (else 408)."""
    header_timeout_s: PositiveFloat = 10.0
    """Longest time a request's headers may take to arrive (else 408)."""
    request_timeout_s: PositiveFloat = 300.0
    """Longest time one translation may run on a worker (else 503)."""
    log_format: Literal["text", "json"] = "text"
    """Log lines as text or as JSON objects (one a line); each carries the request id (X-Request-ID)."""
    stream_max_streams: NonNegativeInt = 4
    """WebSocket streams (/v1/stream) open at once; beyond it 503."""
    stream_max_fps: PositiveFloat = 60.0
    """Most frames a second a stream may send (by timestamp and by arrival)."""
    stream_max_frame_bytes: PositiveInt = 2_000_000
    """Largest encoded image of one stream frame, in bytes."""
    stream_max_session_s: PositiveFloat = 3600.0
    """Longest stream, in seconds of its timestamps."""
    stream_idle_timeout_s: PositiveFloat = 10.0
    """A stream that sends nothing for this long is ended."""
    stream_pause_s: PositiveFloat = 3.0
    """A run of this many seconds the recogniser sees as blank (a pause) closes the sentence being streamed."""
    stream_max_sentence_s: PositiveFloat = 20.0
    """A streamed sentence is closed at this length whatever."""
    stream_partial_interval_s: PositiveFloat = 0.5
    """Stream time between two partial results."""
