"""G2T stage: train mBART to translate gloss sequences into text.

`train(cfg)` reads as its steps: prepare the run folder → tokenizer (trained on the
train text and glosses, an existing `tokenizer.json`, or a pruned mBART's) and mBART
(a preset from scratch, or `model.pretrained`) → `model.json` → the shared `Trainer`
(label-smoothed cross-entropy; dev BLEU-4 every epoch, best checkpoint by it; exact
resume) → reload the best checkpoint → dev and test with the configured beam search →
`metrics.json`, `predictions/`.

The run folder is the contract `slt train s2t` (`g2t_run`), `slt pipeline` and the
ONNX exporter read: see `slt_training.runs`.

Run it as `slt train g2t CONFIG`, or on several GPUs with
`accelerate launch -m slt_serve.cli train g2t CONFIG`.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch

from slt_training.config import G2TConfig
from slt_training.data.annotations import load_split
from slt_training.data.text_data import TranslationDataset, concatenated_pairs
from slt_training.models.translation import TranslationModel, TranslationOptions
from slt_training.runs import prepare_run_dir

from . import translation_task as task
from .script import stage_main

log = logging.getLogger(__name__)


def train(cfg: G2TConfig, resume: bool = False) -> task.TranslationResult:
    """Train, select on dev BLEU-4, evaluate the best checkpoint; see the module docstring."""
    root = Path(cfg.data.root)
    run_dir = prepare_run_dir(cfg, resume, root)
    train_clips = load_split(root, cfg.data.train_split)
    tokenizer = task.make_tokenizer(
        cfg.tokenizer, cfg.model, cfg.data.lang, run_dir, train_clips, True, resume
    )
    torch.manual_seed(cfg.training.seed)
    mbart = task.make_mbart(cfg.model, tokenizer)
    options = TranslationOptions(
        input="gloss",
        label_smoothing=cfg.model.label_smoothing,
        loss=cfg.model.loss,
        freeze_embeddings=cfg.model.freeze_embeddings,
        r_drop=cfg.model.r_drop,
    )
    model = TranslationModel(mbart, options)
    task.create_run(cfg, run_dir, mbart, options)
    train_set = TranslationDataset(train_clips, tokenizer)
    task.check_lengths(
        train_set.examples, mbart.config.max_position_embeddings, cfg.data.train_split
    )
    train_set.examples += joined_pairs(train_clips, cfg, tokenizer, mbart)
    datasets = {
        split: TranslationDataset(load_split(root, split), tokenizer)
        for split in task.existing_splits(root, cfg.data)
    }
    batches = {s: partial(task.eval_batches, d, tokenizer.pad_id) for s, d in datasets.items()}
    loader_args = task.batched_loader_args(
        train_set,
        cfg.training,
        cfg.data.max_tokens,
        tokenizer.pad_id,
        cfg.model.source_word_dropout,
        tokenizer.unk_id,
    )
    return task.fit_and_evaluate(
        "g2t", cfg, run_dir, model, mbart, loader_args, batches, tokenizer, resume
    )


def joined_pairs(train_clips, cfg: G2TConfig, tokenizer, mbart) -> list:
    """`data.concat_pairs` of the training set as joined pairs, tokenised; a pair longer
    than the mBART's positions is left out."""
    if not cfg.data.concat_pairs:
        return []
    clips = concatenated_pairs(train_clips, cfg.data.concat_pairs, cfg.training.seed)
    positions = mbart.config.max_position_embeddings
    examples = TranslationDataset(clips, tokenizer).examples
    fits = [e for e in examples if max(e.source_len, len(e.target)) <= positions]
    log.info(
        "concatenation augmentation: %d joined pairs (%d longer than %d positions, left out)",
        len(fits),
        len(examples) - len(fits),
        positions,
    )
    return fits


def main(argv: list[str] | None = None) -> None:
    """`python -m slt_training.stages.g2t CONFIG [--resume] [--override k=v ...]`."""
    stage_main(__doc__.splitlines()[0], G2TConfig, train, argv)


if __name__ == "__main__":
    main()
