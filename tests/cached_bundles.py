"""Tiny bundles for the serving tests, exported once and kept in pytest's cache.

Exporting a tiny S2T bundle takes tens of seconds on a shared CPU (ONNX export and
parity checks); the API, server and batch tests only need *a* real bundle that the
current runtime loads. So each is built by `tiny_bundles` into
`.pytest_cache/d/slt-bundles/<kind>-<key>`, where the key hashes the exporter, the
runtime's bundle reader and the recipe: any change to those rebuilds it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SOURCES = (
    "tests/tiny_bundles.py",
    "tests/tiny_mbart.py",
    "export/bundle.py",
    "export/s2g_onnx.py",
    "export/mbart_onnx.py",
    "slt_serve/bundle.py",
    "slt_serve/manifest.py",
)


def _key() -> str:
    h = hashlib.sha256()
    for rel in _SOURCES:
        path = ROOT / rel
        h.update(rel.encode() + (path.read_bytes() if path.exists() else b""))
    return h.hexdigest()[:16]


def bundle(cache_dir: Path, kind: str) -> Path:
    """The cached bundle of `kind` ("s2t": SingleStream S2T, "g2t"), exported if missing."""
    target = cache_dir / f"{kind}-{_key()}"
    if (target / "manifest.json").is_file():
        return target
    from filelock import FileLock  # torch's dependency, as tiny_bundles is torch's

    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir / f"{kind}.lock"):  # pytest-xdist: one worker exports, the others wait
        if not (target / "manifest.json").is_file():
            _export(cache_dir, kind, target)
    return target


def _export(cache_dir: Path, kind: str, target: Path) -> None:
    import tiny_bundles as tb  # imports torch: only when a bundle must be made

    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        made = Path(tmp) / kind
        if kind == "s2t":
            tb.s2t_bundle(made)
        elif kind == "g2t":
            tb.g2t_bundle(made)
        else:
            raise ValueError(kind)
        for old in cache_dir.glob(f"{kind}-*"):
            shutil.rmtree(old, ignore_errors=True)
        made.rename(target)
