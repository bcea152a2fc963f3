"""A bundle: the folder `slt export model` writes and the runtime serves.

    BUNDLE/
      manifest.json     what the bundle is (below); covered by its own `digest`
      s2g.onnx          frames (+ keypoints) → gloss log-probs + features   (s2t, s2g)
      s2g_stem.onnx     int8 bundles: the recogniser's stem, cut out of s2g.onnx
      encoder.onnx      features or gloss ids → encoder states, cross keys/values (s2t, g2t)
      decoder.onnx      one decoding step with the key/value cache          (s2t, g2t)
      tokenizer.json    text tokenizer (HF tokenizers)                      (s2t, g2t)
      gloss_vocab.json  gloss ↔ id, CTC blank 0                             (s2t, s2g)
      pose.onnx         optional: HRNet keypoints for two_stream bundles

`manifest.json` is `slt_serve.manifest.Manifest` (its docstring lists the sections and
the top-level `digest`, which covers the manifest and, through the hashes it lists,
every file).

`load_bundle` refuses, with one line saying what to do, a folder that is not a
bundle, a format it does not know, a manifest that breaks the schema or whose digest
does not match its content, a digest other than the one the deployer pinned, a
missing file, and a file whose size or sha256 differs from the manifest (truncated,
modified or corrupt).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from slt_serve.errors import SltError
from slt_serve.fileio import file_sha256
from slt_serve.manifest import FileEntry, Manifest, parse_manifest

MANIFEST = "manifest.json"
S2G, ENCODER, DECODER = "s2g.onnx", "encoder.onnx", "decoder.onnx"
TOKENIZER, GLOSS_VOCAB, POSE = "tokenizer.json", "gloss_vocab.json", "pose.onnx"
REQUIRED = {
    "s2t": (S2G, ENCODER, DECODER, TOKENIZER, GLOSS_VOCAB),
    "g2t": (ENCODER, DECODER, TOKENIZER),
    "s2g": (S2G, GLOSS_VOCAB),
}


@dataclass(frozen=True)
class Bundle:
    """A verified bundle folder and its manifest."""

    path: Path
    manifest: Manifest

    # read through from the manifest
    name = property(attrgetter("manifest.name"))
    kind = property(attrgetter("manifest.kind"))
    stage = property(attrgetter("manifest.stage"))
    digest = property(
        attrgetter("manifest.digest"),
        doc="The manifest's digest: one value for the whole bundle (see `slt_serve.manifest`).",
    )

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest.files


def describe_files(folder: str | os.PathLike, names: list[str]) -> dict[str, FileEntry]:
    """The manifest's `files` entry for `names` in `folder`."""
    out = {}
    for name in sorted(names):
        path = Path(folder) / name
        out[name] = FileEntry(sha256=file_sha256(path), bytes=path.stat().st_size)
    return out


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of a bundle folder, checked for format, version, schema and digest
    (files not read)."""
    folder = Path(path)
    if not folder.is_dir():
        raise SltError(f"{folder}: no bundle folder there; make one with `slt export model RUN`")
    file = folder / MANIFEST
    if not file.is_file():
        raise SltError(
            f"{folder}: no {MANIFEST}, so not a bundle; make one with `slt export model RUN`"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SltError(f"{file}: not valid JSON ({e}); re-export the bundle") from None
    return parse_manifest(text, str(file))


def load_bundle(
    path: str | os.PathLike, verify: bool = True, expect_digest: str | None = None
) -> Bundle:
    """Read a bundle's manifest and check every file's size and (with `verify`) sha256.

    expect_digest: the digest the deployer pinned; any other bundle is refused, and every
    file's sha256 is then checked whatever `verify` says.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    if expect_digest is not None and manifest.digest != expect_digest:
        raise SltError(
            f"{folder}: bundle digest {manifest.digest} is not the pinned {expect_digest}; "
            "serve the bundle you pinned, or pin this one's digest"
        )
    members = manifest.translation.ensemble if manifest.translation else ()
    required = [*REQUIRED[manifest.stage], *(n for m in members for n in (m.encoder, m.decoder))]
    missing = [n for n in required if n not in manifest.files]
    if missing:
        raise SltError(
            f"{folder}: a {manifest.stage} bundle needs {', '.join(missing)}, which the "
            "manifest does not list; re-export the bundle"
        )
    for name, entry in manifest.files.items():
        _check_file(folder, name, entry, verify or expect_digest is not None)
    return Bundle(folder, manifest)


def _check_file(folder: Path, name: str, entry: FileEntry, verify: bool) -> None:
    if Path(name).name != name or name in ("", ".", "..", MANIFEST):
        raise SltError(f"{folder}: manifest lists a bad file name {name!r}; re-export it")
    file = folder / name
    if not file.is_file():
        raise SltError(f"{file}: missing from the bundle; copy the whole folder again")
    size = file.stat().st_size
    if size != entry.bytes:
        raise SltError(
            f"{file}: {size} bytes, the manifest says {entry.bytes}: truncated or "
            "modified; copy the bundle again or re-export it"
        )
    if verify and file_sha256(file) != entry.sha256:
        raise SltError(
            f"{file}: sha256 differs from the manifest: modified or corrupt; "
            "copy the bundle again or re-export it"
        )
