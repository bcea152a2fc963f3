"""Package a pipeline run's bundle as the sample model shipped in `slt_serve/sample_model/`.

    slt data synth data/synth && slt pipeline configs/synth/pipeline.yaml
    python -m slt_pipeline.package_sample_model configs/synth/pipeline.yaml

copies the run's `bundle/` and the first `--samples` clips of the test split (their videos, and
in `samples.jsonl` their reference gloss and text plus what the bundle translates them
to, which tests/test_sample_model.py holds the runtime to).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from slt_serve import sample_model
from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_serve.translator import TranslateOptions, Translator
from slt_training.data.annotations import load_split

from .plan import load_plan


def package(config: Path, samples: int = 2) -> list[dict]:
    """Copy the bundle of `config`'s run and `samples` test clips into slt_serve/sample_model/."""
    plan = load_plan(config)
    bundle = plan.bundle_dir
    if not (bundle / "manifest.json").is_file():
        raise SltError(f"{bundle}: no bundle; run `slt pipeline` to the export stage first")
    root = Path(plan.s2g.data.root)
    clips = load_split(root, plan.s2g.data.test_split or "test")[:samples]
    for folder in (sample_model.BUNDLE_DIR, sample_model.SAMPLES_DIR):  # not the package itself
        if folder.exists():
            shutil.rmtree(folder)
    shutil.copytree(bundle, sample_model.BUNDLE_DIR)
    sample_model.SAMPLES_DIR.mkdir(parents=True)
    translator = Translator.from_bundle(sample_model.BUNDLE_DIR, TranslateOptions(device="cpu"))
    rows = []
    for clip in clips:
        video = root / clip.video
        name = f"{clip.name}{video.suffix}"
        shutil.copyfile(video, sample_model.SAMPLES_DIR / name)
        result = translator.translate(sample_model.SAMPLES_DIR / name)
        rows.append(
            {
                "name": clip.name,
                "video": name,
                "gloss": clip.gloss,
                "text": clip.text,
                "recognised": result.gloss,
                "translation": result.text,
            }
        )
    with atomic_write(sample_model.SAMPLES_FILE) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the pipeline config that made the run")
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args(argv)
    for row in package(args.config, args.samples):
        print(f"{row['video']}: {row['translation']!r} (reference {row['text']!r})")
    print(f"wrote {sample_model.SAMPLE_DIR}")


if __name__ == "__main__":
    main()
