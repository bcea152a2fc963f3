"""Run folders → the parts `export_bundle` takes (the folders are read by `slt_training.runs`).

* a G2T run (`model.json`, stage g2t): the translation model alone;
* an S2T run (`model.json`, stage s2t): its model, and the recognizer it reads
  features from: the fine-tuned one stored in the run, or else its S2G run's best
  checkpoint, which must be the one the features were made with (same sha256);
* an S2G run (`input_spec.json` + `config.yaml`): the recognizer alone (video → glosses);
* a translation run whose `model.json` lists an `ensemble` (imported TwoStream-SLT S2T
  networks): its model and theirs, searched as one (`TranslationPart.ensemble`).

The recognizer's input spec and frame rate are its S2G run's (`input_spec.json`).
"""

from __future__ import annotations

import logging
import os

from slt_training.config import G2TConfig, load_config
from slt_training.runs import S2GRun, open_run

from .bundle import DevSet, RecognitionPart, TranslationPart

log = logging.getLogger(__name__)

S2G_METRICS = ("scores", "beam_size", "best_epoch")  # what the manifest keeps of S2G's


def parts_from_run(
    run_dir: str | os.PathLike, fps: float | None = None
) -> tuple[RecognitionPart | None, TranslationPart | None, dict]:
    """(recognition, translation, metrics) of a G2T, S2T or S2G run folder."""
    run = open_run(run_dir)
    if isinstance(run, S2GRun):
        return recognition_part(run, run.load_recognizer(), fps), None, {"s2g": s2g_metrics(run)}
    trained = run.load()
    translation = TranslationPart(
        trained.model,
        trained.tokenizer,
        trained.generation,
        run.spec.gloss_table,
        ensemble=tuple(_member(run, path) for path in run.spec.ensemble),
    )
    metrics = {run.stage: trained.metrics}
    if run.stage == "g2t":
        return None, translation, metrics
    s2g = run.s2g()
    recognizer = trained.recognizer or s2g.load_recognizer(run.spec.s2g_checkpoint_sha256)
    metrics["s2g"] = s2g_metrics(s2g)
    return recognition_part(s2g, recognizer, fps), translation, metrics


def _member(run, path: str):
    """An ensemble member's model; it must read the same S2G run."""
    from slt_serve.errors import SltError

    member = open_run(path)
    if isinstance(member, S2GRun) or member.spec.s2g_run != run.spec.s2g_run:
        raise SltError(
            f"{path}: listed in {run.run_dir}'s ensemble, but not a translation run over "
            f"{run.spec.s2g_run}; re-import the networks together"
        )
    return member.load().model


def dev_set(run_dir: str | os.PathLike, max_clips: int) -> DevSet | None:
    """The first `max_clips` clips of the run's dev split (its S2G run's data for S2T), or
    None, logged, when the split or its videos are not on this machine."""
    from pathlib import Path

    from slt_training.data.annotations import load_split, split_path

    run = open_run(run_dir)
    if isinstance(run, S2GRun) or run.stage == "s2t":
        cfg = (run if isinstance(run, S2GRun) else run.s2g()).config.data  # the videos' dataset
    elif run.config_path.is_file():
        cfg = load_config(run.config_path, G2TConfig).data
    else:
        log.warning("%s: no %s: confidence is not calibrated", run_dir, run.config_path.name)
        return None
    root, split = cfg.root, cfg.dev_split
    if root is None or not split_path(root, split).is_file():
        log.warning("no %s split at %s: confidence is not calibrated", split, root)
        return None
    clips = load_split(root, split)
    if run.stage != "g2t":
        clips = [c for c in clips if c.video and (Path(root) / c.video).exists()]
    if not clips:
        log.warning("%s: no %s clip to translate: confidence is not calibrated", root, split)
        return None
    return DevSet(split, Path(root), tuple(clips[:max_clips]))


def recognition_part(s2g: S2GRun, recognizer, fps: float | None) -> RecognitionPart:
    """The recognizer with what it reads; `fps` overrides the frame rate saved with the run."""
    return RecognitionPart(
        recognizer.eval(),
        s2g.input_spec().to_json(),
        s2g.vocab(),
        fps=fps or s2g.fps(),
        ctc_beam_size=s2g.config.training.eval_beam_size,
    )


def s2g_metrics(s2g: S2GRun) -> dict:
    metrics = s2g.metrics()
    return {k: metrics[k] for k in S2G_METRICS if k in metrics}
