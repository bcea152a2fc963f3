"""Receiving an uploaded video: multipart streamed to a temporary file, byte limit enforced.

Starlette's own form parsing spools every file part to the system temp dir with
no size limit and only hands the request over once the whole body is in; here
the body is parsed as it arrives (python-multipart, the parser Starlette uses),
only the `file` field is kept, the upload is cut off the moment it passes the
limit, and the file lands in the server's spool directory (`spool_dir`), under
a name that says nothing of the client's (no suffix: what the file is is read
from its bytes, never from its name). Whoever gets an `Upload` owns its file and
must remove it; on any error the file is removed here. A server killed with
`kill -9` cannot remove anything: its files carry its process id, and
`clean_spool` (run when a server starts) removes those of processes gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from slt_serve.errors import ApiError

FIELD = "file"  # the form field that carries the video
_OTHER_FIELDS_MAX = 64 * 1024  # bytes of other form fields tolerated (and ignored)
_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file in Content-Length
UPLOAD_PREFIX = "slt-upload-"  # then the process id, a dash and a random part
_STARTED = time.time()  # files of this process id older than this are a previous process's

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """A received upload: the temporary file, the name the client gave, its size."""

    path: Path
    filename: str
    size: int


def check_content_length(headers, max_bytes: int) -> None:
    """Refuse at once a request whose declared length cannot fit, before reading any of it."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + _MULTIPART_SLACK:
        raise too_large(max_bytes, f"the request declares {int(declared):,} bytes")


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data body; 415 for any other content type."""
    ctype, options = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        got = ctype.decode("latin-1") or "no content type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected multipart/form-data with the video in the field `{FIELD}`, got {got}; "
            f"e.g. curl -F {FIELD}=@clip.mp4 …",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_multipart", "multipart/form-data without a boundary parameter")
    return boundary


async def receive(
    chunks: AsyncIterator[bytes], boundary: bytes, dest_dir: Path, max_bytes: int
) -> Upload:
    """Stream the multipart body into a temporary file in `dest_dir`; the caller owns it."""
    receiver = _Receiver(dest_dir, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    body = 0
    try:
        async for chunk in chunks:
            body += len(chunk)
            parser.write(chunk)
        if body == 0:
            raise ApiError(
                400, "empty_body", f"the request has no body; send a video in the field `{FIELD}`"
            )
        parser.finalize()
        return receiver.result()
    except MultipartParseError as e:
        receiver.discard()
        raise ApiError(400, "bad_multipart", f"malformed multipart body ({e})") from None
    except BaseException:  # ApiError, a client that went away, cancellation: never leave a file
        receiver.discard()
        raise


async def timed(
    chunks: AsyncIterator[bytes], read_timeout_s: float, total_timeout_s: float
) -> AsyncIterator[bytes]:
    """The body's chunks, or 408 when the next one takes over `read_timeout_s` or the whole
    body over `total_timeout_s`: a client that trickles its body cannot hold the server."""
    loop = asyncio.get_running_loop()
    end = loop.time() + total_timeout_s
    it = chunks.__aiter__()
    while True:
        wait = min(read_timeout_s, end - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(it.__anext__(), wait)
        except StopAsyncIteration:
            return
        except TimeoutError:
            stalled = end - loop.time() > 0
            raise ApiError(
                408,
                "request_timeout",
                f"the request body stalled (nothing arrived for {read_timeout_s:g} s)"
                if stalled
                else f"the request body took longer than {total_timeout_s:g} s to arrive",
                headers={"Connection": "close"},
            ) from None
        yield chunk


def spool_dir(tmp_dir: Path | None) -> Path:
    """Where uploads are spooled: `tmp_dir` as given, else a folder of this user's in the
    system's temp dir, private to the user."""
    if tmp_dir is not None:
        path = Path(tmp_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(tempfile.gettempdir()) / f"slt-serve-uploads-{os.getuid() if hasattr(os, 'getuid') else 0}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def clean_spool(path: Path) -> int:
    """Remove the uploads that servers no longer running left in `path`; how many."""
    removed = 0
    for file in path.glob(f"{UPLOAD_PREFIX}*"):
        pid = file.name.removeprefix(UPLOAD_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid), file):
            continue
        file.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("%s: removed %d upload(s) left by a server that was killed", path, removed)
    return removed


def _alive(pid: int, file: Path) -> bool:
    if pid == os.getpid():  # ours, unless it predates this process (a restart got the same pid)
        try:
            return file.stat().st_mtime >= _STARTED
        except FileNotFoundError:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def too_large(max_bytes: int, what: str, advice: str = "send a shorter or smaller video") -> ApiError:
    return ApiError(413, "too_large", f"{what}; the limit is {max_bytes:,} bytes: {advice}")


def display_name(filename: str | None) -> str:
    """The client's file name, reduced to something safe to echo in a message."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = "".join(c for c in name if c.isprintable())[:120]
    return name or "upload"


class _Receiver:
    """python-multipart callbacks: headers of each part, the `file` part's bytes to disk."""

    def __init__(self, dest_dir: Path, max_bytes: int):
        self.dest_dir, self.max_bytes = dest_dir, max_bytes
        self.path: Path | None = None
        self.file = None
        self.filename = ""
        self.size = 0
        self.other = 0
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._writing = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._field, self._value, self._writing = {}, b"", b"", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FIELD or self.path is not None:
            return  # another field, or a second file: counted, not kept
        self.filename = display_name(options.get(b"filename", b"").decode("utf-8", "replace"))
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-", dir=self.dest_dir)
        self.path, self.file, self._writing = Path(tmp), os.fdopen(fd, "wb"), True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._writing:
            self.size += n
            if self.size > self.max_bytes:
                raise too_large(self.max_bytes, f"`{self.filename}` is over the limit")
            self.file.write(data[start:end])
        else:
            self.other += n
            if self.other > _OTHER_FIELDS_MAX:
                raise ApiError(
                    413,
                    "too_large",
                    f"form fields other than `{FIELD}` exceed {_OTHER_FIELDS_MAX:,} bytes; "
                    f"send only the video in `{FIELD}`",
                )

    def _part_end(self) -> None:
        if self._writing:
            self.file.close()
            self._writing = False

    def result(self) -> Upload:
        if self.path is None:
            raise ApiError(
                400,
                "missing_file",
                f"the form has no field `{FIELD}`; send the video as {FIELD}=@clip.mp4",
            )
        if self._writing:  # the body ended inside the file part
            self.discard()
            raise ApiError(
                400, "bad_multipart", "the multipart body ends in the middle of the file"
            )
        if self.size == 0:
            self.discard()
            raise ApiError(400, "empty_file", f"`{self.filename}` is empty (0 bytes)")
        return Upload(self.path, self.filename, self.size)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
