"""Files on disk: written so that a crash never leaves a half-written one behind, and hashed.

This module is the one owner of file hashing: `file_sha256` (one file) and `files_sha256`
(several named files, e.g. a dataset's annotations, as one digest).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Read once at import: os.umask() can only be read by setting it, which is not thread-safe.
_UMASK = os.umask(0)
os.umask(_UMASK)
_CHUNK = 1 << 20


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file what open() would
    if "b" in mode:
        encoding = None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(*paths: str | os.PathLike) -> str:
    """One sha256 over several files: each file's name and content hash, in the order given.

    A missing file counts as absent (so creating it later changes the digest); directories
    in `paths` are not read. Not the same as `file_sha256` of one file.
    """
    lines = []
    for p in map(Path, paths):
        lines.append(f"{p.name}:{file_sha256(p) if p.is_file() else '<absent>'}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
