"""S2G stage: train a SingleStream or TwoStream sign-to-gloss recognizer with CTC.

`train(cfg)` reads as its steps: prepare the run folder → vocabulary, model and
clips → the shared `Trainer` (dev WER every epoch, checkpoints, resume) → reload
the best checkpoint → dev (and test) WER with beam search → `metrics.json`.

Run it as `slt train s2g CONFIG`, or on several GPUs / nodes with
`accelerate launch -m slt_serve.cli train s2g CONFIG`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from slt_serve.errors import SltError
from slt_serve.vocab import GlossVocab
from slt_training.config import S2GConfig, config_hash
from slt_training.data.annotations import split_path
from slt_training.data.s2g_data import (
    ClipBatch,
    ClipOptions,
    EpochSampler,
    SignClips,
    collate,
    keypoint_indices,
    load_vocab,
)
from slt_training.metrics import evaluate_gloss
from slt_training.models import s3d
from slt_training.models.fusion import LateralOptions
from slt_training.models.heatmaps import HeatmapOptions
from slt_training.models.recognition import (
    PyramidOptions,
    RecognitionOutput,
    SingleStreamOptions,
    SingleStreamRecognizer,
    TwoStreamOptions,
    TwoStreamRecognizer,
)
from slt_training.models.visual_head import VisualHeadOptions
from slt_training.runs import S2GInputSpec, S2GRun, dataset_fps, prepare_run_dir
from slt_training.stages.script import stage_main
from slt_training.trainer import Trainer, load_weights

log = logging.getLogger(__name__)

SCRATCH_BN_MOMENTUM = 0.1  # PyTorch's default; S3D's own 1e-3 is for pretrained statistics


@dataclass(frozen=True)
class S2GResult:
    """What a finished `train` produced."""

    run_dir: Path
    best_checkpoint: Path
    best_epoch: int | None
    scores: dict[str, dict[str, float]]  # split → final scores (beam `eval_beam_size`)
    stopped_early: bool


def train(cfg: S2GConfig, resume: bool = False) -> S2GResult:
    """Train, select on dev WER, evaluate the best checkpoint; see the module docstring."""
    run_dir = prepare_run_dir(cfg, resume, cfg.data.root)
    vocab = load_vocab(cfg.data.root)
    model, options = build_model(cfg, len(vocab))
    fps = dataset_fps(cfg.data.root, cfg.data.train_split)  # saved: export reads it back
    S2GRun.of(cfg).write_input_spec(S2GInputSpec.from_clip_options(options, fps))
    train_set = SignClips(cfg.data.root, cfg.data.train_split, vocab, options)
    dev_set = SignClips(cfg.data.root, cfg.data.dev_split, vocab, options)
    task = S2GTask(cfg, vocab, dev_set)
    trainer = Trainer(
        cfg.training,
        run_dir,
        model,
        train_set,
        task,
        collate_fn=collate,
        sampler=EpochSampler(len(train_set), cfg.training.seed),
        config_hash=config_hash(cfg),
    )
    fit = trainer.fit(resume)
    if fit.best_checkpoint is None:
        raise SltError(f"{run_dir}: no epoch finished, so there is no best checkpoint to test")
    scores = {}
    if trainer.accelerator.is_main_process:
        scores = final_evaluation(cfg, trainer.accelerator.unwrap_model(trainer.model), vocab, fit)
    trainer.accelerator.wait_for_everyone()
    return S2GResult(run_dir, fit.best_checkpoint, fit.state.best_epoch, scores, fit.stopped_early)


# --- steps -----------------------------------------------------------------------------


def build_model(
    cfg: S2GConfig, vocab_size: int, pretrained: bool = True
) -> tuple[nn.Module, ClipOptions]:
    """The recognizer the config describes (pretrained weights loaded unless told not to),
    and the clip options (normalisation as the weights expect)."""
    torch.manual_seed(cfg.training.seed)
    m, data = cfg.model, cfg.data
    head = VisualHeadOptions(
        hidden_size=m.hidden_size,
        ff_size=m.ff_size,
        ff_kernel_sizes=m.ff_kernel_sizes,
        dropout=m.dropout,
    )
    channels = 6 if data.motion_channels else 3
    if m.kind == "single_stream":
        model = SingleStreamRecognizer(
            SingleStreamOptions(
                head=head,
                frozen_blocks=m.frozen_blocks,
                in_channels=channels,
                width=m.width,
                translation_input=m.translation_input,
            ),
            vocab_size,
        )
        rgb = model.backbone
        keypoints = None
    else:
        keypoints = tuple(int(i) for i in keypoint_subset(cfg))
        model = TwoStreamRecognizer(two_stream_options(cfg, head, len(keypoints)), vocab_size)
        rgb = model.rgb_backbone
        if m.pretrained_keypoint_s3d and pretrained:
            model.keypoint_backbone.load_pretrained(m.pretrained_keypoint_s3d)
    mean, std = s3d.REFERENCE_MEAN, s3d.REFERENCE_STD
    if m.pretrained_s3d and pretrained:
        loaded = rgb.load_pretrained(m.pretrained_s3d)
        if loaded.layout == "torchvision":
            mean, std = s3d.TORCHVISION_MEAN, s3d.TORCHVISION_STD
    else:
        scratch_batchnorm(rgb)
    if m.kind == "two_stream" and not m.pretrained_keypoint_s3d:
        scratch_batchnorm(model.keypoint_backbone)
    options = ClipOptions(
        frame_size=data.frame_size,
        input_size=data.input_size,
        mean=mean,
        std=std,
        motion_channels=data.motion_channels,
        frame_stride=data.frame_stride,
        keypoints=keypoints,
        eval_crop=data.eval_crop,
        augmentation=cfg.augmentation,
        seed=cfg.training.seed,
    )
    return model, options


def scratch_batchnorm(backbone: nn.Module) -> None:
    """BatchNorm momentum 0.1 for an S3D trained from scratch. S3D's 1e-3 suits fine-tuning
    pretrained statistics; from random init the running statistics would still be far
    from the batch statistics after thousands of steps, and eval-mode output wrong."""
    for module in backbone.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.momentum = SCRATCH_BN_MOMENTUM


def two_stream_options(cfg: S2GConfig, head: VisualHeadOptions, num_keypoints: int):
    m, side = cfg.model, cfg.data.input_size // 2
    lateral = (
        LateralOptions() if m.lateral else LateralOptions(pose_to_rgb=False, rgb_to_pose=False)
    )
    return TwoStreamOptions(
        num_keypoints=num_keypoints,
        in_channels=6 if cfg.data.motion_channels else 3,
        width=m.width,
        heatmaps=HeatmapOptions(
            size=(side, side), sigma=m.heatmap_sigma, style=m.heatmap_style, grid=m.heatmap_grid
        ),
        head=head,
        rgb_frozen_blocks=m.frozen_blocks,
        keypoint_frozen_blocks=m.keypoint_frozen_blocks,
        lateral=lateral,
        pyramid=replace(PyramidOptions(), enabled=m.pyramid),
        distillation=m.distillation,
        decode_head=m.decode_head,
        translation_heads=tuple(m.translation_heads),
        translation_input=m.translation_input,
    )


def keypoint_subset(cfg: S2GConfig) -> np.ndarray:
    """Indices of the configured keypoints, checked against the dataset's keypoint files."""
    from slt_training.data.annotations import load_split

    root = Path(cfg.data.root)
    first = load_split(root, cfg.data.train_split)[0].name
    path = root / "keypoints" / f"{first}.npz"
    if not path.is_file():
        raise SltError(
            f"{path}: no keypoints for two_stream; run `slt data keypoints {root}` "
            "(a synthetic corpus has them from `slt data synth`)"
        )
    with np.load(path, allow_pickle=False) as f:
        total = f["keypoints"].shape[1]
    return keypoint_indices(cfg.data.keypoints, total)


def run_model(model: nn.Module, batch: ClipBatch, targets: bool) -> RecognitionOutput:
    """Forward a batch through either recognizer (CTC targets optional)."""
    extra = (batch.gloss_ids, batch.gloss_lengths) if targets else ()
    if isinstance(model, TwoStreamRecognizer):
        return model(batch.frames, batch.keypoints, batch.lengths, *extra)
    return model(batch.frames, batch.lengths, *extra)


def eval_loader(dataset: SignClips, cfg: S2GConfig) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.training.batch_size,
        collate_fn=collate,
        num_workers=cfg.training.num_workers,
    )


def predict(
    model: nn.Module, dataset: SignClips, cfg: S2GConfig, vocab: GlossVocab, beam_size: int
) -> list[tuple[str, str, str]]:
    """(name, hypothesis, reference) gloss strings for every clip of `dataset` (eval mode)."""
    device = next(model.parameters()).device
    rows = []
    model.eval()
    with torch.no_grad():
        for batch in eval_loader(dataset, cfg):
            batch = batch.to(device)
            hyps = model.decode(run_model(model, batch, targets=False), beam_size)
            for name, ids, ref in zip(batch.names, hyps, batch.glosses):
                rows.append((name, " ".join(vocab.decode(ids)), ref))
    return rows


def score(rows: list[tuple[str, str, str]], phoenix_cleanup: bool) -> dict[str, float]:
    """WER with its parts, and the share of clips with an empty output (the blank plateau)."""
    scores = evaluate_gloss([h for _, h, _ in rows], [r for _, _, r in rows], phoenix_cleanup)
    empty = 100.0 * sum(not h for _, h, _ in rows) / len(rows)
    return {
        "wer": scores.wer,
        "sub": float(scores.sub),
        "del": float(scores.dele),
        "ins": float(scores.ins),
        "empty_pct": empty,
    }


class S2GTask:
    """How the trainer trains and scores a recognizer."""

    metric = "wer"
    higher_is_better = False

    def __init__(self, cfg: S2GConfig, vocab: GlossVocab, dev_set: SignClips) -> None:
        self.cfg, self.vocab, self.dev_set = cfg, vocab, dev_set
        self._blank_epochs = 0

    def loss(self, model: nn.Module, batch: ClipBatch):
        out = run_model(model, batch, targets=True)
        return out.loss, {k: float(v.detach()) for k, v in out.losses.items()}

    def batch_size(self, batch: ClipBatch) -> int:
        return len(batch.names)

    def evaluate(self, model: nn.Module, beam_size: int) -> dict[str, float]:
        scores = score(predict(model, self.dev_set, self.cfg, self.vocab, beam_size), False)
        self._blank_epochs = self._blank_epochs + 1 if scores["empty_pct"] == 100.0 else 0
        if self._blank_epochs >= self.cfg.training.plateau_epochs:
            log.warning(
                "dev output has been all blank for %d epochs: CTC is on the blank plateau. "
                "Train longer, raise training.lr, or set data.motion_channels: true",
                self._blank_epochs,
            )
        return scores


def final_evaluation(cfg: S2GConfig, model: nn.Module, vocab: GlossVocab, fit) -> dict:
    """Reload the best checkpoint, score dev (and test) with beam search, write metrics.json."""
    load_weights(model, fit.best_checkpoint)
    run, beam = S2GRun.of(cfg), cfg.training.eval_beam_size
    splits = [cfg.data.dev_split]
    test = cfg.data.test_split
    if test and split_path(cfg.data.root, test).is_file():
        splits.append(test)
    options = run.clip_options()
    scores = {}
    for split in splits:
        dataset = SignClips(cfg.data.root, split, vocab, options)
        rows = predict(model, dataset, cfg, vocab, beam)
        scores[split] = score(rows, False)
        run.write_predictions(split, rows)
        log.info("%s: WER %.2f (beam %d)", split, scores[split]["wer"], beam)
    run.write_metrics(
        {
            "stage": "s2g",
            "checkpoint": str(fit.best_checkpoint.relative_to(run.run_dir)),
            "best_epoch": fit.state.best_epoch,
            "beam_size": beam,
            "scores": scores,
            "history": fit.state.history,
            "steps": fit.state.step,
            "stopped_early": fit.stopped_early,
        },
    )
    return scores


def main(argv: list[str] | None = None) -> None:
    """`python -m slt_training.stages.s2g CONFIG [--resume] [--override k=v ...]`."""
    stage_main(__doc__.splitlines()[0], S2GConfig, train, argv)


if __name__ == "__main__":
    main()
