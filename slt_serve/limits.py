"""An uploaded video against the server's limits: checked before inference and while decoding.

`check_video` refuses, from the header and the first frame only, what is not a
video in an accepted container or declares itself over a limit. `translate_upload`
then translates it with the same limits in force on every decoded frame
(`slt_serve.video.decode_limits`): a file whose header understates its length,
frame count or frame size is stopped at the first frame past the limit, and the
whole decode is bounded by the request's time limit. Every refusal is an
`ApiError` (422, or 503 for the time limit) whose message names the client's file,
never the spool path, and says what to change in the file.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from slt_serve.errors import ApiError, SltError
from slt_serve.settings import Settings
from slt_serve.uploads import Upload
from slt_serve.video import DecodeLimits, VideoError, decode_limits, probe

if TYPE_CHECKING:
    from slt_serve.translator import Result, Translator


def limits_for(settings: Settings, *, timed: bool = True) -> DecodeLimits:
    """The decoding limits the settings ask for; with `timed`, a deadline from now."""
    return DecodeLimits(
        max_frames=settings.max_frames,
        max_seconds=settings.max_seconds,
        max_pixels=settings.max_pixels,
        deadline=time.monotonic() + settings.request_timeout_s if timed else None,
    )


def check_video(upload: Upload, settings: Settings) -> None:
    """Refuse what is not a video, or says it is over a limit, before any inference."""
    name = f"`{upload.filename}`"
    try:
        with decode_limits(limits_for(settings, timed=False)):
            info = probe(upload.path)
    except SltError as e:
        raise video_error(e, upload) from None
    if info.duration_s > settings.max_seconds:
        raise ApiError(
            422,
            "too_long",
            f"{name} lasts {info.duration_s:.1f} s; the limit is {settings.max_seconds:g} s: "
            "cut it into shorter clips",
        )
    if info.num_frames > settings.max_frames:
        raise ApiError(
            422,
            "too_many_frames",
            f"{name} has {info.num_frames:,} frames; the limit is {settings.max_frames:,}: "
            "lower its frame rate or cut it into shorter clips",
        )


def translate_upload(translator: Translator, upload: Upload, settings: Settings) -> Result:
    """Check, then translate with the limits in force; the upload's file is removed in every
    case. Runs on a worker thread."""
    if translator.max_seconds < settings.max_seconds:  # the translator's own limit, told alike
        settings = settings.model_copy(update={"max_seconds": translator.max_seconds})
    try:
        check_video(upload, settings)
        with decode_limits(limits_for(settings)):
            return translator.translate(upload.path)
    except ApiError:
        raise
    except SltError as e:
        raise video_error(e, upload) from None
    finally:
        upload.path.unlink(missing_ok=True)


def video_error(e: SltError, upload: Upload) -> ApiError:
    """A complaint about the spooled file, told in terms of the client's file."""
    message = str(e).replace(str(upload.path), f"`{upload.filename}`")
    code = e.code if isinstance(e, VideoError) else "invalid_video"
    if code == "timeout":
        return ApiError(503, "timeout", message)
    return ApiError(422, code, message)
