"""Run folders → the parts `export_bundle` takes.

* a G2T run (`model.json`, stage g2t): the translation model alone;
* an S2T run (`model.json`, stage s2t): its model, and the recognizer it reads
  features from: the fine-tuned one stored in the run, or else its S2G run's best
  checkpoint, which must be the one the features were made with (same sha256);
* an S2G run (`input_spec.json` + `config.yaml`): the recognizer alone (video → glosses).

The recognizer's input spec is its S2G run's `input_spec.json`; the frame rate is
the dataset's (its first training clip, probed) unless given.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from slt_serve.bundle import file_digest
from slt_serve.errors import SltError

from .bundle import RecognitionPart, TranslationPart

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


def parts_from_run(
    run_dir: str | os.PathLike, fps: float | None = None
) -> tuple[RecognitionPart | None, TranslationPart | None, dict]:
    """(recognition, translation, metrics) of a G2T, S2T or S2G run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SltError(f"{run_dir}: no run folder there; give a G2T, S2T or S2G run_dir")
    if (run_dir / "model.json").is_file():
        return _translation_run(run_dir, fps)
    if (run_dir / "input_spec.json").is_file():
        recognition, metrics = _s2g_run(run_dir, fps)
        return recognition, None, {"s2g": metrics}
    raise SltError(
        f"{run_dir}: neither a translation run (model.json) nor an S2G run (input_spec.json); "
        "train one first: `slt train g2t|s2t|s2g CONFIG`"
    )


def _translation_run(run_dir: Path, fps: float | None):
    from slt_training.stages.translation_run import load_translation_run

    run = load_translation_run(run_dir)
    translation = TranslationPart(run.model, run.tokenizer, run.generation)
    metrics = {run.stage: run.metrics}
    if run.stage == "g2t":
        return None, translation, metrics
    if run.s2g_run is None:
        raise SltError(f"{run_dir}/model.json: an S2T run without s2g_run; re-run its training")
    recognition, s2g_metrics = _s2g_run(run.s2g_run, fps, recognizer=run.recognizer)
    if run.recognizer is None and run.s2g_checkpoint_sha256:
        from slt_training.trainer import WEIGHTS_FILE

        checkpoint = _best(run.s2g_run)
        if file_digest(checkpoint / WEIGHTS_FILE)[0] != run.s2g_checkpoint_sha256:
            raise SltError(
                f"{run.s2g_run}: its best checkpoint is not the one {run_dir} was trained on "
                "(sha256 differs); retrain S2T on the current features or restore that checkpoint"
            )
    metrics["s2g"] = s2g_metrics
    return recognition, translation, metrics


def _best(s2g_run: Path) -> Path:
    from slt_training.trainer import BEST, checkpoint_pointer

    checkpoint = checkpoint_pointer(s2g_run, BEST)
    if checkpoint is None:
        raise SltError(f"{s2g_run}: no trained S2G checkpoint; run `slt train s2g CONFIG` first")
    return checkpoint


def _s2g_run(s2g_run: Path, fps: float | None, recognizer=None) -> tuple[RecognitionPart, dict]:
    """The recognizer (built from the run's config and best weights unless given) and metrics."""
    import torch

    from slt_training.config import CONFIG_COPY, S2GConfig, load_config
    from slt_training.data.s2g_data import load_vocab
    from slt_training.stages.s2g import INPUT_SPEC, METRICS_FILE, build_model
    from slt_training.trainer import load_weights

    s2g_run = Path(s2g_run)
    for name in (CONFIG_COPY, INPUT_SPEC):
        if not (s2g_run / name).is_file():
            raise SltError(f"{s2g_run}: no {name}; not an S2G run (run `slt train s2g CONFIG`)")
    cfg = load_config(s2g_run / CONFIG_COPY, S2GConfig)
    vocab = load_vocab(cfg.data.root)
    if recognizer is None:
        with torch.random.fork_rng():
            recognizer, _ = build_model(cfg, len(vocab), pretrained=False)
        load_weights(recognizer, _best(s2g_run))
    spec = json.loads((s2g_run / INPUT_SPEC).read_text(encoding="utf-8"))
    metrics_path = s2g_run / METRICS_FILE
    metrics = json.loads(metrics_path.read_text("utf-8")) if metrics_path.is_file() else {}
    metrics = {k: metrics[k] for k in ("scores", "beam_size", "best_epoch") if k in metrics}
    part = RecognitionPart(
        recognizer.eval(),
        spec,
        vocab,
        fps=fps or dataset_fps(cfg.data.root, cfg.data.train_split),
        ctc_beam_size=cfg.training.eval_beam_size,
    )
    return part, metrics


def dataset_fps(root: str | os.PathLike, split: str) -> float:
    """The frame rate of a dataset's first clip (the frames cache keeps the source rate)."""
    from slt_serve.video import probe
    from slt_training.data.annotations import load_split

    try:
        clips = [c for c in load_split(root, split) if c.video]
        if clips:
            return round(probe(Path(root) / clips[0].video).fps, 3)
    except SltError as e:
        log.warning("cannot read the dataset's frame rate (%s); assuming %g fps", e, DEFAULT_FPS)
        return DEFAULT_FPS
    log.warning("no dataset video to read the frame rate from; assuming %g fps", DEFAULT_FPS)
    return DEFAULT_FPS
