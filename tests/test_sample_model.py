"""The sample model shipped in the package (slt_serve/sample_model/): its bundle verifies, it is
small, and `slt translate --sample` gives the sample videos the translations recorded when it
was packaged (python -m slt_pipeline.package_sample_model configs/synth/pipeline.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys

from slt_serve import sample_model
from slt_serve.translator import TranslateOptions, Translator

MAX_MB = 20


def test_the_bundle_is_small_and_verifies():
    folder = sample_model.bundle_path()
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    assert size <= MAX_MB, f"sample bundle is {size:.1f} MB"
    translator = Translator.from_bundle(folder, TranslateOptions(device="cpu"))  # checks every file's sha256
    assert translator.stage == "s2t" and translator.kind == "single_stream"


def test_translate_sample_reproduces_the_recorded_translations(tmp_path):
    samples = sample_model.samples()
    assert len(samples) == 2 and all(s["video"].is_file() for s in samples)
    out = tmp_path / "results.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "translate", "--sample", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = {json.loads(line)["path"]: json.loads(line) for line in out.read_text().splitlines()}
    for sample in samples:
        row = rows[str(sample["video"])]
        assert row["ok"] and row["text"] == sample["translation"], (row, sample)
        assert row["gloss"] == sample["recognised"]
        assert row["text"].strip()
