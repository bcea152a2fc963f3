"""The sample model shipped inside the package, so a fresh install translates something.

`slt_serve/sample_model/bundle/` is a SingleStream S2T bundle trained by
`configs/synth/pipeline.yaml` (`slt pipeline configs/synth/pipeline.yaml` reproduces it) on the
synthetic corpus of `slt data synth`: a drawn signer, 48 signs, English sentences from a
small grammar. It is a model of a *synthetic* sign language, for trying the commands,
the API and the Gradio app; it knows nothing of any real sign language. Train a real one
with docs/custom-corpus.md. `python -m slt_pipeline.package_sample_model` packages it.

`slt_serve/sample_model/samples/` holds two held-out clips of that corpus (test split), with
their reference glosses and text in `samples.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

from slt_serve.errors import SltError

SAMPLE_DIR = Path(__file__).resolve().parent
BUNDLE_DIR = SAMPLE_DIR / "bundle"
SAMPLES_DIR = SAMPLE_DIR / "samples"
SAMPLES_FILE = SAMPLES_DIR / "samples.jsonl"


def bundle_path() -> Path:
    """The shipped sample bundle's folder."""
    if not (BUNDLE_DIR / "manifest.json").is_file():
        raise SltError(
            f"{BUNDLE_DIR}: the sample model is not installed with this copy of slt-serve; "
            "reinstall the package, or give a bundle of your own"
        )
    return BUNDLE_DIR


def samples() -> list[dict]:
    """The sample clips: `{"video": Path, "name", "gloss", "text"}` each."""
    if not SAMPLES_FILE.is_file():
        raise SltError(f"{SAMPLES_FILE}: the sample clips are not installed; reinstall slt-serve")
    rows = [json.loads(line) for line in SAMPLES_FILE.read_text(encoding="utf-8").splitlines()]
    return [row | {"video": SAMPLES_DIR / row["video"]} for row in rows]


def sample_videos() -> list[Path]:
    """The sample clips' video files."""
    return [row["video"] for row in samples()]


def choose_bundle(bundle: str | None, sample: bool) -> str:
    """The bundle a command runs: the one given, or with `--sample` the shipped one."""
    if bundle and sample:
        raise SltError("give a bundle or --sample, not both")
    if sample:
        return str(bundle_path())
    if not bundle:
        raise SltError("give a bundle folder (made by `slt export model` or `slt pipeline`), "
                       "or --sample for the small sample model shipped with the package")
    return bundle
