"""TwoStream-SLT / SLRT annotation files: gzip-compressed pickles, read safely.

The reference code stores each split as a gzip-pickled list of dicts
(`name`, `signer`, `gloss`, `text`, `num_frames`, sometimes `sign`, a torch
tensor of features). A pickle can run arbitrary code when loaded, so we
unpickle with an allow-list: plain containers, numpy arrays, and torch tensors
whose storage is itself loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path
from typing import Any

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_training.data.annotations import Clip

_SCHEMA_KEYS = ("name", "signer", "gloss", "text", "num_frames")


def _load_storage_bytes(b: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import collections

    allowed: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): collections.OrderedDict}
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    try:
        import torch._utils

        allowed[("torch._utils", "_rebuild_tensor_v2")] = torch._utils._rebuild_tensor_v2
        allowed[("torch.storage", "_load_from_bytes")] = _load_storage_bytes
    except ImportError:
        pass  # without torch a file holding tensors is refused below with a clear message
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file)
        self._allowed = _allowed_globals()
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            hint = (
                " (install torch to read files with tensors)" if module.startswith("torch") else ""
            )
            raise SltError(
                f"{self._source}: refusing to unpickle {module}.{name}: only plain data, numpy "
                f"arrays and torch tensors are allowed in a reference pickle{hint}"
            ) from None


def _unpickle(path: Path, what: str) -> Any:
    """The object in a gzip or plain pickle at `path`, through the allow-list."""
    if not path.is_file():
        raise SltError(f"{path}: {what} not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise SltError(f"{path}: corrupt gzip data ({e})") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), path).load()
    except SltError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise SltError(f"{path}: not a readable pickle {what} ({e})") from None


def load_slrt_dict(path: str | os.PathLike, what: str = "reference pickle") -> dict[Any, Any]:
    """A reference pickle holding one dict (`gloss2ids.pkl`, `map_ids.pkl`,
    `old2new_vocab.pkl`, `<ds>-keypoints.pkl`), read with the same allow-list."""
    path = Path(path)
    obj = _unpickle(path, what)
    if not isinstance(obj, dict):
        raise SltError(f"{path}: expected a pickled dict ({what}), got {type(obj).__name__}")
    return obj


def load_slrt_pickle(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Load a TwoStream/SLRT annotation file (gzip or plain pickle) with the allow-list."""
    path = Path(path)
    obj = _unpickle(path, "annotation file")
    if isinstance(obj, dict):  # some releases key the entries by name
        obj = [{"name": k, **v} if isinstance(v, dict) else v for k, v in obj.items()]
    if not isinstance(obj, list) or not all(isinstance(x, dict) for x in obj):
        raise SltError(f"{path}: expected a list of dicts (one per clip), got {type(obj).__name__}")
    return obj


def clips_from_slrt(entries: list[dict[str, Any]], video_dir: str | None = None) -> list[Clip]:
    """Reference entries → our clips; `video_dir` (relative) + name becomes each clip's `video`."""
    clips = []
    for i, e in enumerate(entries):
        if "name" not in e:
            raise SltError(f"entry {i} has no 'name'")
        fields = {k: e[k] for k in _SCHEMA_KEYS if k in e and e[k] is not None}
        if "num_frames" in fields:
            fields["num_frames"] = int(fields["num_frames"])
        if video_dir is not None:
            fields["video"] = f"{video_dir.rstrip('/')}/{e['name']}"
        clips.append(Clip(**fields))
    return clips


def write_slrt_pickle(path: str | os.PathLike, clips: list[Clip]) -> None:
    """Write clips in the reference layout (gzip-pickled list of dicts) for side-by-side runs."""
    entries = [
        {
            "name": c.name,
            "signer": c.signer,
            "gloss": c.gloss,
            "text": c.text,
            "num_frames": c.num_frames if c.num_frames is not None else 0,
        }
        for c in clips
    ]
    with atomic_write(path, "wb") as f:
        f.write(gzip.compress(pickle.dumps(entries, protocol=4)))
