"""S2T stage: translate sign video into text, on top of a trained S2G run (and a G2T run).

`train(cfg)` reads as its steps: check the inputs (the S2G run's best checkpoint, its
features made by that checkpoint, the G2T run's checkpoint) and refuse with the
command to run first → tokenizer and mBART (from `g2t_run`'s best checkpoint, or as
G2T builds them) behind a V-L mapper (2-layer MLP from the S2G feature size to
mBART's) → the shared `Trainer` (dev BLEU-4 every epoch, exact resume) → reload the
best checkpoint → dev and test with beam search → `metrics.json`, `predictions/`.

Two ways to feed it:

- `finetune_s2g: false` (default, fast): the features `slt features` wrote
  (`S2G_RUN/features/<split>/`), memory-mapped; the recognizer is not run.
- `finetune_s2g: true`: the recognizer (initialised from the S2G run's best
  checkpoint) runs on the video clips and is trained too; its CTC loss is kept as an
  auxiliary loss, weighted by `ctc_weight`. The checkpoint then holds a
  `SignTranslator` (`recognizer.*`, `translation.*`).

The order matters: a translation model trained on an untrained recognizer learns
nothing (BLEU-4 under 2), which is why S2T refuses to start without a trained S2G
run, and refuses features that another checkpoint made.

The run folder follows `slt_training.runs` (`model.json` records the S2G run and its
checkpoint's sha256).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from slt_serve.errors import SltError
from slt_training.config import S2TConfig
from slt_training.data.annotations import load_split
from slt_training.data.s2g_data import ClipBatch, EpochSampler, SignClips
from slt_training.data.s2g_data import collate as collate_clips
from slt_training.data.text_data import TranslationDataset
from slt_training.models.translation import (
    IGNORE_INDEX,
    GenerateOptions,
    TranslationModel,
    TranslationOptions,
)
from slt_training.runs import (
    TOKENIZER_FILE,
    S2GRun,
    TranslationRun,
    load_state,
    mbart_from_config,
    prepare_run_dir,
    read_weights,
    split_state,
)
from slt_training.stages.features import INDEX_FILE, FeatureSplit
from slt_training.stages.s2g import run_model
from slt_training.text.tokenizer import TextTokenizer

from . import translation_task as task
from .script import stage_main

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S2GInputs:
    """The S2G run S2T builds on, checked: its best checkpoint and that checkpoint's hash."""

    run: S2GRun
    sha256: str  # of the best checkpoint's weights


def check_s2g_run(s2g_run: Path) -> S2GInputs:
    """The S2G run's config and best checkpoint; refuses, naming `slt train s2g`, without."""
    run = S2GRun.open(s2g_run)
    return S2GInputs(run, run.weights_sha256())


def open_features(s2g: S2GInputs, split: str) -> FeatureSplit:
    """A split's features, refused (naming `slt features`) when missing or made by another
    checkpoint than the S2G run's current best."""
    folder = s2g.run.features_dir(split)
    command = f"`slt features {s2g.run.config_path} --split train,dev,test`"
    if not (folder / INDEX_FILE).is_file():
        raise SltError(f"{folder}: no features for '{split}'; extract them first: {command}")
    split_features = FeatureSplit.open(folder)
    if split_features.index.get("checkpoint_sha256") != s2g.sha256:
        raise SltError(
            f"{folder}: features were made by another S2G checkpoint than the run's best "
            f"({s2g.run.best_checkpoint().name}); extract them again: {command}"
        )
    return split_features


def check_g2t_run(g2t_run: Path) -> TranslationRun:
    """The G2T run with a best checkpoint; refuses, naming `slt train g2t`."""
    run = TranslationRun.open(g2t_run)
    if run.stage != "g2t":
        raise SltError(f"{g2t_run}: a {run.stage} run, g2t_run needs a G2T run")
    run.best_checkpoint()
    return run


# --- the end-to-end model (finetune_s2g) -----------------------------------------------


@dataclass(frozen=True)
class SignTextBatch:
    """Video clips and their target text, for the end-to-end model."""

    names: list[str]
    texts: list[str]
    clips: ClipBatch
    labels: Tensor  # (B, L) target ids, IGNORE_INDEX on padding

    def to(self, device, non_blocking: bool = False) -> SignTextBatch:
        return SignTextBatch(
            self.names,
            self.texts,
            self.clips.to(device, non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
        )


class SignTextClips(Dataset):
    """S2G clips (frames, keypoints, gloss ids) with their tokenised text."""

    def __init__(self, clips: SignClips, tokenizer: TextTokenizer) -> None:
        self.clips = clips
        self.targets = [tokenizer.target_ids(c.text) for c in clips.clips]
        empty = [c.name for c in clips.clips if not c.text.strip()]
        if empty:
            raise SltError(f"{len(empty)} clips have no text (first: {empty[0]})")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key):
        index = key[1] if isinstance(key, tuple) else key
        return self.clips[key], self.targets[index], self.clips.clips[index].text


def collate_sign_text(items, pad_id: int = 1) -> SignTextBatch:
    clips = collate_clips([item for item, _, _ in items], pad_id)
    labels = torch.full((len(items), max(len(t) for _, t, _ in items)), IGNORE_INDEX)
    for i, (_, target, _) in enumerate(items):
        labels[i, : len(target)] = torch.tensor(target)
    return SignTextBatch(clips.names, [text for _, _, text in items], clips, labels)


class SignTranslator(nn.Module):
    """Recognizer → gloss features → V-L mapper → mBART; loss = translation + ctc_weight × CTC."""

    def __init__(self, recognizer: nn.Module, translation: TranslationModel, ctc_weight: float):
        super().__init__()
        self.recognizer, self.translation, self.ctc_weight = recognizer, translation, ctc_weight

    def _encode(self, batch: SignTextBatch, targets: bool):
        rec = run_model(self.recognizer, batch.clips, targets=targets)
        steps = torch.arange(rec.gloss_features.shape[1], device=rec.gloss_features.device)
        mask = (steps[None] < rec.output_lengths[:, None]).long()
        return rec, mask

    def forward(self, batch: SignTextBatch) -> tuple[Tensor, dict[str, float]]:
        rec, mask = self._encode(batch, targets=self.ctc_weight > 0)
        out = self.translation(mask, batch.labels, features=rec.gloss_features)
        parts = {"translation": float(out.loss.detach()), "nll": float(out.nll)}
        loss = out.loss
        if self.ctc_weight > 0:
            loss = loss + self.ctc_weight * rec.loss
            parts["ctc"] = float(rec.loss.detach())
        return loss, parts

    @torch.no_grad()
    def generate(self, batch: SignTextBatch, options: GenerateOptions) -> Tensor:
        rec, mask = self._encode(batch, targets=False)
        return self.translation.generate(mask, options, features=rec.gloss_features)


# --- the stage -------------------------------------------------------------------------


def train(cfg: S2TConfig, resume: bool = False) -> task.TranslationResult:
    """Check inputs, train, select on dev BLEU-4, evaluate; see the module docstring."""
    s2g = check_s2g_run(Path(cfg.s2g_run))
    g2t = check_g2t_run(Path(cfg.g2t_run)) if cfg.g2t_run is not None else None
    root = Path(cfg.data.root or s2g.run.config.data.root)
    splits = [cfg.data.train_split, *task.existing_splits(root, cfg.data)]
    features = None
    if not cfg.finetune_s2g:  # refuse before anything is written
        features = {split: open_features(s2g, split) for split in splits}
    run_dir = prepare_run_dir(cfg, resume, root)
    train_clips = load_split(root, cfg.data.train_split)
    if g2t is not None:
        tokenizer = g2t.tokenizer()
        tokenizer.save(run_dir / TOKENIZER_FILE)
    else:
        tokenizer = task.make_tokenizer(
            cfg.tokenizer, cfg.model, cfg.data.lang, run_dir, train_clips, False, resume
        )
    torch.manual_seed(cfg.training.seed)
    mbart = initial_mbart(cfg, tokenizer, g2t)
    options = TranslationOptions(
        input="features",
        feature_dim=s2g.run.config.model.hidden_size,
        label_smoothing=cfg.model.label_smoothing,
        loss=cfg.model.loss,
        freeze_embeddings=cfg.model.freeze_embeddings,
        r_drop=cfg.model.r_drop,
    )
    translation = TranslationModel(mbart, options)
    task.create_run(
        cfg,
        run_dir,
        mbart,
        options,
        s2g_run=str(s2g.run.run_dir.resolve()),
        s2g_checkpoint_sha256=s2g.sha256,
        finetune_s2g=cfg.finetune_s2g,
    )
    if cfg.finetune_s2g:
        model, data = end_to_end(cfg, s2g, translation, tokenizer, root, splits)
    else:
        model, data = on_features(cfg, features, translation, tokenizer, root, splits)
    *loader_args, batches = data
    return task.fit_and_evaluate(
        "s2t", cfg, run_dir, model, mbart, tuple(loader_args), batches, tokenizer, resume
    )


def initial_mbart(cfg: S2TConfig, tokenizer: TextTokenizer, g2t: TranslationRun | None):
    """mBART with the G2T run's best weights, or built as G2T builds it."""
    if g2t is None:
        return task.make_mbart(cfg.model, tokenizer)
    checkpoint = g2t.best_checkpoint()
    drop = {"dropout": cfg.model.dropout, "attention_dropout": cfg.model.attention_dropout}
    mbart = mbart_from_config(g2t.spec.mbart_config, **drop)
    load_state(mbart, split_state(read_weights(checkpoint), "mbart"), checkpoint)
    log.info("mBART initialised from %s", checkpoint)
    return mbart


def on_features(cfg: S2TConfig, features, translation, tokenizer, root: Path, splits):
    """The translation model alone, trained on the extracted features."""
    datasets = {}
    for split in splits:
        feats = features[split]
        have = set(feats.names())
        clips = [c for c in load_split(root, split) if c.name in have]
        if not clips:
            raise SltError(f"{feats.folder}: none of the '{split}' clips has features")
        datasets[split] = TranslationDataset(clips, tokenizer, lambda n, f=feats: f.clip(n)[0])
    train_set = datasets[cfg.data.train_split]
    positions = translation.mbart.config.max_position_embeddings
    task.check_lengths(train_set.examples, positions, cfg.data.train_split)
    batches = {s: partial(task.eval_batches, d, tokenizer.pad_id) for s, d in datasets.items()}
    view, sampler, collate_fn, training = task.batched_loader_args(
        train_set, cfg.training, cfg.data.max_tokens, tokenizer.pad_id
    )
    return translation, (view, sampler, collate_fn, training, batches)


def end_to_end(cfg: S2TConfig, s2g: S2GInputs, translation, tokenizer, root: Path, splits):
    """Recognizer (from the S2G best checkpoint) + translation model, on the video clips."""
    vocab = s2g.run.vocab()
    recognizer = s2g.run.load_recognizer(expect_sha256=s2g.sha256)
    model = SignTranslator(recognizer, translation, cfg.ctc_weight)
    options = s2g.run.clip_options()
    data = {
        split: SignTextClips(SignClips(root, split, vocab, options), tokenizer) for split in splits
    }
    collate_fn = collate_sign_text

    def loader(split: str):
        return DataLoader(data[split], batch_size=cfg.training.batch_size, collate_fn=collate_fn)

    train_set = data[cfg.data.train_split]
    sampler = EpochSampler(len(train_set), cfg.training.seed)
    batches = {split: partial(loader, split) for split in splits}
    return model, (train_set, sampler, collate_fn, cfg.training, batches)


def main(argv: list[str] | None = None) -> None:
    """`python -m slt_training.stages.s2t CONFIG [--resume] [--override k=v ...]`."""
    stage_main(__doc__.splitlines()[0], S2TConfig, train, argv)


if __name__ == "__main__":
    main()
