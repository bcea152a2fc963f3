"""A bundle: the folder `slt export model` writes and the runtime serves.

    BUNDLE/
      manifest.json     what the bundle is (below); not hashed itself
      s2g.onnx          frames (+ keypoints) → gloss log-probs + features   (s2t, s2g)
      encoder.onnx      features or gloss ids → encoder states, cross keys/values (s2t, g2t)
      decoder.onnx      one decoding step with the key/value cache          (s2t, g2t)
      tokenizer.json    text tokenizer (HF tokenizers)                      (s2t, g2t)
      gloss_vocab.json  gloss ↔ id, CTC blank 0                             (s2t, s2g)
      pose.onnx         optional: HRNet keypoints for two_stream bundles

manifest.json: `format` "slt-bundle", `format_version`, `name`, `kind`
(single_stream | two_stream | g2t), `stage` (s2t | g2t | s2g), `input` (fps,
frame/input size, centre crop, mean/std, motion channels, keypoint layout and
subset, window), `recognition` (CTC beam, feature stride), `translation`
(source, language, cache shape, longest source), `generation` (beams, length
penalty, max length, start/eos/pad ids), `graphs` (input/output names),
`versions` (packages, opset), `files` (sha256 and size of every other file),
`metrics` (the checkpoint's dev/test scores), `parity` (what the export checked),
`quantization` (null or what changed).

`load_bundle` refuses, with one line saying what to do, a folder that is not a
bundle, a format it does not know, a missing file, and a file whose size or
sha256 differs from the manifest (truncated, modified or corrupt).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from slt_serve.errors import SltError

FORMAT = "slt-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("single_stream", "two_stream", "g2t")
STAGES = ("s2t", "g2t", "s2g")
S2G, ENCODER, DECODER = "s2g.onnx", "encoder.onnx", "decoder.onnx"
TOKENIZER, GLOSS_VOCAB, POSE = "tokenizer.json", "gloss_vocab.json", "pose.onnx"
REQUIRED = {
    "s2t": (S2G, ENCODER, DECODER, TOKENIZER, GLOSS_VOCAB),
    "g2t": (ENCODER, DECODER, TOKENIZER),
    "s2g": (S2G, GLOSS_VOCAB),
}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Bundle:
    """A verified bundle folder and its manifest."""

    path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def stage(self) -> str:
        return self.manifest["stage"]

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]


def file_digest(path: str | os.PathLike) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in 1 MiB chunks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def describe_files(folder: str | os.PathLike, names: list[str]) -> dict[str, dict]:
    """The manifest's `files` entry for `names` in `folder`."""
    out = {}
    for name in sorted(names):
        digest, size = file_digest(Path(folder) / name)
        out[name] = {"sha256": digest, "bytes": size}
    return out


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a bundle folder, checked for format and version (files not read)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SltError(f"{folder}: no bundle folder there; make one with `slt export model RUN`")
    file = folder / MANIFEST
    if not file.is_file():
        raise SltError(
            f"{folder}: no {MANIFEST}, so not a bundle; make one with `slt export model RUN`"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SltError(f"{file}: not valid JSON ({e}); re-export the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SltError(f"{file}: not an slt-serve bundle manifest; re-export the bundle")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SltError(
            f"{folder}: bundle format {version} is newer than this slt-serve reads "
            f"({FORMAT_VERSION}); upgrade slt-serve"
        )
    if version < FORMAT_VERSION:
        raise SltError(
            f"{folder}: bundle format {version} is older than {FORMAT_VERSION}; "
            "re-export it with `slt export model`"
        )
    for key in ("name", "kind", "stage", "files"):
        if key not in manifest:
            raise SltError(f"{file}: no '{key}' entry; re-export the bundle")
    if manifest["kind"] not in KINDS or manifest["stage"] not in STAGES:
        raise SltError(
            f"{file}: kind {manifest['kind']!r} / stage {manifest['stage']!r} unknown "
            f"(kinds {KINDS}, stages {STAGES}); upgrade slt-serve or re-export"
        )
    return manifest


def load_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Read a bundle's manifest and check every file's size and (with `verify`) sha256."""
    folder = Path(path)
    manifest = read_manifest(folder)
    files = manifest["files"]
    missing = [n for n in REQUIRED[manifest["stage"]] if n not in files]
    if missing:
        raise SltError(
            f"{folder}: a {manifest['stage']} bundle needs {', '.join(missing)}, which the "
            "manifest does not list; re-export the bundle"
        )
    for name, entry in files.items():
        if Path(name).name != name or name in ("", ".", "..", MANIFEST):
            raise SltError(f"{folder}: manifest lists a bad file name {name!r}; re-export it")
        file = folder / name
        if not file.is_file():
            raise SltError(f"{file}: missing from the bundle; copy the whole folder again")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise SltError(
                f"{file}: {size} bytes, the manifest says {entry['bytes']}: truncated or "
                "modified; copy the bundle again or re-export it"
            )
        if verify and file_digest(file)[0] != entry["sha256"]:
            raise SltError(
                f"{file}: sha256 differs from the manifest: modified or corrupt; "
                "copy the bundle again or re-export it"
            )
    return Bundle(folder, manifest)
