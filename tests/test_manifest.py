"""`slt_serve.manifest`: the schema, the format version and the digest refuse a bad
manifest.json in one line; the digest pins a bundle; `TranslateOptions` checks itself.

Runs on the shipped sample bundle (its files linked, its manifest copied and edited):
no export, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slt_serve.bundle import MANIFEST, load_bundle
from slt_serve.errors import SltError
from slt_serve.manifest import FORMAT_VERSION, Manifest, manifest_digest
from slt_serve.sample_model import bundle_path
from slt_serve.translator import TranslateOptions, Translator


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of the sample bundle: manifest.json copied, the other files linked."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    for file in bundle_path().iterdir():
        if file.name == MANIFEST:
            (folder / MANIFEST).write_bytes(file.read_bytes())
        else:
            (folder / file.name).symlink_to(file)
    return folder


def _edit(folder: Path, change, reseal: bool = True) -> None:
    """Apply `change` to the manifest's JSON object; recompute its digest unless told not to."""
    data = json.loads((folder / MANIFEST).read_text())
    change(data)
    if reseal:
        data["digest"] = manifest_digest(data)
    (folder / MANIFEST).write_text(json.dumps(data))


def _refusal(folder: Path) -> str:
    with pytest.raises(SltError) as e:
        load_bundle(folder)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_the_sample_manifest_is_the_current_format(bundle):
    loaded = load_bundle(bundle)
    m = loaded.manifest
    assert isinstance(m, Manifest) and m.format_version == FORMAT_VERSION
    assert (m.name, m.kind, m.stage) == ("synth-demo", "single_stream", "s2t")
    assert m.input.channels == 6 and m.generation.beam_settings().num_beams == 5
    assert loaded.digest == m.digest == manifest_digest(json.loads((bundle / MANIFEST).read_text()))
    with pytest.raises(Exception, match="frozen"):
        m.name = "other"


def test_a_files_entry_that_is_a_string_is_named(bundle):
    _edit(bundle, lambda d: d["files"].update({"s2g.onnx": "f4dfb8b2"}))
    message = _refusal(bundle)
    assert "files['s2g.onnx']" in message and "got str" in message
    assert "re-export the bundle" in message


def test_files_as_a_list_is_named(bundle):
    _edit(bundle, lambda d: d.update(files=list(d["files"])))
    message = _refusal(bundle)
    assert message.split(": ")[1] == "files" and "got list" in message


def test_a_string_format_version_is_not_called_newer(bundle):
    _edit(bundle, lambda d: d.update(format_version=str(FORMAT_VERSION)))
    message = _refusal(bundle)
    assert "format_version must be a whole number" in message and "newer" not in message
    _edit(bundle, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    assert "newer than this slt-serve reads" in _refusal(bundle)
    _edit(bundle, lambda d: d.update(format_version=1))
    assert "older" in _refusal(bundle) and "slt export model" in _refusal(bundle)


def test_unknown_keys_wrong_types_and_missing_sections_are_named(bundle):
    _edit(bundle, lambda d: d["generation"].update(num_beems=3))
    assert "generation.num_beems: not a field this slt-serve knows" in _refusal(bundle)
    assert "upgrade slt-serve" in _refusal(bundle)
    _edit(bundle, lambda d: d["generation"].pop("num_beems"))
    _edit(bundle, lambda d: d["generation"].update(num_beams="5"))
    assert "generation.num_beams: input should be a valid integer" in _refusal(bundle)
    _edit(bundle, lambda d: d["generation"].update(num_beams=5))
    _edit(bundle, lambda d: d.pop("parity"))
    assert "parity: field required" in _refusal(bundle)
    _edit(bundle, lambda d: d.update(kind="three_stream"))
    assert "kind: input should be" in _refusal(bundle) and "got str" in _refusal(bundle)


def test_the_digest_catches_an_edited_manifest(bundle):
    _edit(bundle, lambda d: d.update(name="someone-else"), reseal=False)
    assert "manifest.json was edited after export" in _refusal(bundle)
    _edit(bundle, lambda d: d["generation"].update(num_beams=1), reseal=False)
    assert "digest does not match" in _refusal(bundle)
    # layout is not content: the same manifest re-indented still loads
    data = json.loads((bundle_path() / MANIFEST).read_text())
    (bundle / MANIFEST).write_text(json.dumps(data, indent=None, sort_keys=True))
    assert load_bundle(bundle).digest == data["digest"]


def test_a_pinned_digest_refuses_any_other_bundle(bundle):
    digest = load_bundle(bundle).digest
    assert load_bundle(bundle, expect_digest=digest).digest == digest
    _edit(bundle, lambda d: d.update(name="resealed"))  # valid, but not the pinned bundle
    with pytest.raises(SltError, match="not the pinned"):
        Translator.from_bundle(bundle, TranslateOptions(expect_digest=digest))


def test_slt_serve_refuses_a_bundle_other_than_the_pinned_one():
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "serve", "--sample", "--port", "1", "--digest",
         "sha256:" + "0" * 64],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert r.returncode != 0 and r.stderr.startswith("error: "), r.stderr
    assert "not the pinned sha256:000" in r.stderr and "Traceback" not in r.stderr


def test_translate_options_check_themselves_before_anything_loads(tmp_path):
    for bad, match in (
        ({"beam_size": 0}, "beam_size must be at least 1"),
        ({"ctc_beam_size": 0}, "ctc_beam_size must be at least 1"),
        ({"max_seconds": 0}, "max_seconds must be positive"),
        ({"threads": -1}, "threads"),
    ):
        with pytest.raises(SltError, match=match):
            TranslateOptions(**bad)
    with pytest.raises(SltError, match="device"):
        Translator.from_bundle(tmp_path / "nowhere", TranslateOptions(device="tpu"))
    options = TranslateOptions(device="cpu", ctc_beam_size=1, beam_size=2, verify=False)
    with pytest.raises(AttributeError):
        options.device = "cuda"  # frozen
    translator = Translator.from_bundle(bundle_path(), options)
    assert translator.ctc_beam_size == 1 and translator.generation.num_beams == 2
    assert translator.digest == load_bundle(bundle_path()).digest


def test_slt_translate_prints_one_line_for_a_broken_manifest(bundle, tmp_path):
    _edit(bundle, lambda d: d.update(files=["s2g.onnx"]))
    video = next(p for p in (bundle_path().parent / "samples").iterdir() if p.suffix == ".mp4")
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "translate", str(video), "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and "files" in r.stderr


CONFIDENCE = {
    "gloss_threshold": 0.38, "sentence_threshold": 0.87, "gloss_measure": "mean",
    "target_accuracy": 0.5, "split": "dev", "clips": 150, "glosses": 553, "gloss_ece": 0.09,
    "sentence_ece": 0.37, "sentence_accuracy": 0.47,
}  # fmt: skip


def test_the_confidence_section_is_optional_typed_and_read_by_the_translator(bundle):
    assert load_bundle(bundle).manifest.confidence is None  # older bundles keep loading
    _edit(bundle, lambda d: d.update(confidence=CONFIDENCE))
    translator = Translator.from_bundle(bundle)
    assert translator.manifest.confidence.sentence_threshold == 0.87
    assert (translator.thresholds.gloss, translator.thresholds.sentence) == (0.38, 0.87)
    assert translator.thresholds.calibrated
    _edit(bundle, lambda d: d["confidence"].update(sentence_threshold=1.5))
    assert "confidence.sentence_threshold: input should be less than or equal to 1" in _refusal(bundle)
    _edit(bundle, lambda d: d["confidence"].update(sentence_threshold=0.5, bins=10))
    assert "confidence.bins: not a field this slt-serve knows" in _refusal(bundle)
