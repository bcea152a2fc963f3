"""What G2T and S2T share: tokenizer and mBART from the config, batches, the trainer task,
and the final evaluation that writes `metrics.json` and `predictions/`.

The trainer's task for translation minimises the label-smoothed cross-entropy of
`TranslationModel` and scores dev BLEU-4 (beam `training.dev_beam_size`) after each
epoch; the best checkpoint is the one with the highest dev BLEU-4.

Batches: `TextBatches` is a sampler whose items are whole batches (index lists),
handed to a DataLoader with batch size 1. With `data.max_tokens` the batches group
sentences of similar length under a padded-token budget, formed once and shuffled
per epoch (as fairseq does); otherwise each epoch is a seeded permutation cut into
`training.batch_size` clips. Either way an epoch has the same number of batches
every time and its order depends only on (seed, epoch), so resume stays exact.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Sampler

from slt_serve.errors import SltError
from slt_training.config import (
    MBART_LANG_TOKENS,
    GenerationConfig,
    TokenizerConfig,
    TrainingConfig,
    TranslationModelConfig,
    config_hash,
)
from slt_training.data.annotations import Clip, split_path
from slt_training.data.text_data import (
    TextBatch,
    TextExample,
    collate,
    drop_source_words,
    token_batches,
)
from slt_training.metrics import evaluate_text
from slt_training.models.translation import GenerateOptions
from slt_training.runs import ModelSpec, TranslationRun, load_state, read_weights
from slt_training.text.mbart import build_mbart, load_mbart, preset
from slt_training.text.tokenizer import (
    TOKENIZER_FILE,
    TextTokenizer,
    TokenizerOptions,
    train_tokenizer,
)
from slt_training.trainer import Trainer

log = logging.getLogger(__name__)

EVAL_MAX_TOKENS = 4000  # padded tokens per evaluation batch (beam search multiplies it)


# --- tokenizer, model ------------------------------------------------------


def lang_token(tokenizer: TokenizerConfig, lang: str) -> str:
    if tokenizer.lang_token:
        return tokenizer.lang_token
    base = lang.lower().replace("_", "-").split("-")[0]
    if base not in MBART_LANG_TOKENS:
        raise SltError(
            f"data.lang {lang!r}: no default mBART language token; set tokenizer.lang_token "
            f"(known: {', '.join(f'{k} → {v}' for k, v in MBART_LANG_TOKENS.items())})"
        )
    return MBART_LANG_TOKENS[base]


def make_tokenizer(
    cfg_tok: TokenizerConfig,
    model: TranslationModelConfig,
    lang: str,
    run_dir: Path,
    train_clips: Sequence[Clip],
    with_glosses: bool,
    resume: bool,
) -> TextTokenizer:
    """The run's tokenizer: the one the run already has (resume), the pretrained folder's,
    `tokenizer.path`, or one trained on the train text (+ glosses); saved in the run."""
    own = run_dir / TOKENIZER_FILE
    if resume and own.is_file():
        return TextTokenizer.load(own)
    if model.pretrained is not None:
        tok = TextTokenizer.load(Path(model.pretrained) / TOKENIZER_FILE)
    elif cfg_tok.path is not None:
        tok = TextTokenizer.load(cfg_tok.path)
    else:
        options = TokenizerOptions(
            vocab_size=cfg_tok.vocab_size,
            lang=lang_token(cfg_tok, lang),
            glosses=cfg_tok.glosses,
            lowercase=cfg_tok.lowercase,
            characters=cfg_tok.characters,
        )
        glosses = [c.glosses for c in train_clips] if with_glosses else []
        tok = train_tokenizer([c.text for c in train_clips], glosses, options)
    tok.save(own)
    return tok


def make_mbart(model: TranslationModelConfig, tokenizer: TextTokenizer):
    """mBART from the local pretrained folder or a preset, with the config's dropout."""
    drop = {"dropout": model.dropout, "attention_dropout": model.attention_dropout}
    if model.pretrained is None:
        return build_mbart(preset(model.size, **drop, **model.shape()), tokenizer)
    mbart = load_mbart(model.pretrained, **drop)
    if mbart.config.vocab_size != len(tokenizer):
        raise SltError(
            f"{model.pretrained}: the model has {mbart.config.vocab_size} tokens, its "
            f"tokenizer.json {len(tokenizer)}; prune it again with `slt prune-mbart`"
        )
    return mbart


def create_run(cfg, run_dir: Path, mbart, options, **s2t) -> TranslationRun:
    """`model.json` of the G2T/S2T run being trained: what the model is, without the YAML
    (`s2t`: s2g_run, s2g_checkpoint_sha256, finetune_s2g)."""
    generation = generate_options(cfg.generation)
    spec = ModelSpec(mbart.config.to_dict(), options, generation, cfg.stage, cfg.data.lang, **s2t)
    return TranslationRun.create(run_dir, spec)


def check_lengths(examples: Sequence[TextExample], max_positions: int, split: str) -> None:
    """Sources and targets must fit mBART's learned positions."""
    longest = max(examples, key=lambda e: max(e.source_len, len(e.target)))
    n = max(longest.source_len, len(longest.target))
    if n > max_positions:
        raise SltError(
            f"{split}: clip {longest.name} needs {n} positions, the mBART has {max_positions}; "
            "use a model with more positions or shorten the clips"
        )


def param_groups(model: nn.Module, mbart: nn.Module, mbart_lr: float | None, lr: float):
    """Optimizer groups: mBART at `mbart_lr`, the rest (V-L mapper, recognizer) at `lr`;
    None (one group at `lr`) when mbart_lr is unset."""
    if mbart_lr is None:
        return None
    inner = {id(p) for p in mbart.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in inner], "lr": mbart_lr},
        {"params": [p for p in trainable if id(p) not in inner], "lr": lr},
    ]
    return [g for g in groups if g["params"]]


# --- batches ---------------------------------------------------------------------------


class TextBatches(Sampler):
    """Whole batches (index lists) of a translation dataset; see the module docstring."""

    def __init__(
        self,
        examples: Sequence[TextExample],
        batch_size: int,
        max_tokens: int | None,
        seed: int,
    ) -> None:
        self.size, self.batch_size, self.seed, self.epoch = len(examples), batch_size, seed, 0
        self.fixed = list(token_batches(examples, max_tokens)) if max_tokens else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.fixed) if self.fixed else math.ceil(self.size / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.fixed:
            return iter([self.fixed[i] for i in rng.permutation(len(self.fixed))])
        order = rng.permutation(self.size).tolist()
        return iter([order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)])


class BatchView(Dataset):
    """`view[[i, j, …]]` → the examples: the dataset side of `TextBatches`."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> list:
        return [self.dataset[i] for i in indices]


def _collate_one(
    items: list[list[TextExample]], pad_id: int, word_dropout: float = 0.0, unk_id: int = 0
) -> TextBatch:
    return drop_source_words(collate(items[0], pad_id), word_dropout, unk_id)


def batched_loader_args(
    dataset,
    training: TrainingConfig,
    max_tokens: int | None,
    pad_id: int,
    word_dropout: float = 0.0,
    unk_id: int = 0,
):
    """(dataset, sampler, collate_fn, training config) for the Trainer: one batch per item;
    `word_dropout` > 0 (G2T): `drop_source_words` on each training batch."""
    sampler = TextBatches(dataset.examples, training.batch_size, max_tokens, training.seed)
    one = training.model_copy(update={"batch_size": 1})  # the sampler's items are batches
    collate_fn = partial(_collate_one, pad_id=pad_id, word_dropout=word_dropout, unk_id=unk_id)
    return BatchView(dataset), sampler, collate_fn, one


def eval_batches(dataset, pad_id: int, max_tokens: int = EVAL_MAX_TOKENS) -> Iterable[TextBatch]:
    """Batches of a text dataset in length order (less padding), for prediction."""
    for idx in token_batches(dataset.examples, max_tokens):
        yield collate([dataset[i] for i in idx], pad_id)


# --- training task, prediction, scoring ------------------------------------------------


def batch_loss(model: nn.Module, batch) -> tuple[Tensor, dict[str, float]]:
    """Loss of a batch: a TextBatch through TranslationModel, anything else through the
    model's own `forward(batch)` (S2T's SignTranslator)."""
    if isinstance(batch, TextBatch):
        out = model(labels=batch.labels, **batch.model_inputs())
        return out.loss, {"nll": float(out.nll)}
    return model(batch)


def batch_generate(model: nn.Module, batch, options: GenerateOptions) -> Tensor:
    if isinstance(batch, TextBatch):
        return model.generate(options=options, **batch.model_inputs())
    return model.generate(batch, options)


def predict(
    model: nn.Module, batches: Iterable, tokenizer: TextTokenizer, options: GenerateOptions
) -> list[tuple[str, str, str]]:
    """(name, hypothesis, reference) for every clip the batches hold."""
    device = next(model.parameters()).device
    rows = []
    model.eval()
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(device)
            hyps = tokenizer.decode_batch(batch_generate(model, batch, options).tolist())
            rows.extend(zip(batch.names, hyps, batch.texts))
    return rows


def score(rows: list[tuple[str, str, str]], lang: str) -> dict[str, float]:
    s = evaluate_text([h for _, h, _ in rows], [r for _, _, r in rows], lang)
    return {
        "bleu1": s.bleu1,
        "bleu2": s.bleu2,
        "bleu3": s.bleu3,
        "bleu4": s.bleu4,
        "rouge_l": s.rouge_l,
        "bp": s.bp,
    }


def generate_options(generation: GenerationConfig, beam: int | None = None) -> GenerateOptions:
    return GenerateOptions(
        num_beams=beam or generation.num_beams,
        length_penalty=generation.length_penalty,
        max_length=generation.max_length,
    )


@dataclass
class TranslationTask:
    """How the trainer trains and scores a translation model (metric: dev BLEU-4)."""

    dev_batches: Callable[[], Iterable]  # a fresh iterable of dev batches
    tokenizer: TextTokenizer
    lang: str
    generation: GenerationConfig
    metric: str = "bleu4"
    higher_is_better: bool = True

    def loss(self, model: nn.Module, batch):
        return batch_loss(model, batch)

    def batch_size(self, batch) -> int:
        return len(batch.names)

    def evaluate(self, model: nn.Module, beam_size: int) -> dict[str, float]:
        options = generate_options(self.generation, beam_size)
        return score(predict(model, self.dev_batches(), self.tokenizer, options), self.lang)


def final_evaluation(
    stage: str,
    run_dir: Path,
    model: nn.Module,
    fit,
    splits: dict[str, Callable[[], Iterable]],
    tokenizer: TextTokenizer,
    lang: str,
    generation: GenerationConfig,
    extra: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Reload the best checkpoint, translate each split with the configured beam, write
    `predictions/<split>.jsonl` and `metrics.json` (with `extra`'s entries)."""
    load_state(model, read_weights(fit.best_checkpoint), fit.best_checkpoint)
    run = TranslationRun.open(run_dir)
    options = generate_options(generation)
    scores = {}
    for split, batches in splits.items():
        rows = predict(model, batches(), tokenizer, options)
        scores[split] = score(rows, lang)
        run.write_predictions(split, rows)
        log.info("%s: BLEU-4 %.2f (beam %d)", split, scores[split]["bleu4"], options.num_beams)
    run.write_metrics(
        {
            "stage": stage,
            "checkpoint": str(fit.best_checkpoint.relative_to(run_dir)),
            "best_epoch": fit.state.best_epoch,
            "generation": generation.model_dump(),
            "lang": lang,
            "scores": scores,
            "history": fit.state.history,
            "steps": fit.state.step,
            "stopped_early": fit.stopped_early,
            "averaged": fit.state.averaged,
            **(extra or {}),
        },
    )
    return scores


def tune_length_penalty(
    run_dir: Path,
    model: nn.Module,
    checkpoint: Path,
    dev_batches: Callable[[], Iterable],
    tokenizer: TextTokenizer,
    lang: str,
    generation: GenerationConfig,
) -> tuple[GenerationConfig, dict[str, float]]:
    """`generation.length_penalties` scored on dev with the best checkpoint (beam
    num_beams): the generation settings with the best BLEU-4's, also written into
    `model.json` (what export and serving use), and {penalty: dev BLEU-4}. Without
    length_penalties: the settings as they are, {}."""
    if not generation.length_penalties:
        return generation, {}
    load_state(model, read_weights(checkpoint), checkpoint)
    sweep = {}
    for lp in generation.length_penalties:
        options = generate_options(generation.model_copy(update={"length_penalty": lp}))
        sweep[str(lp)] = score(predict(model, dev_batches(), tokenizer, options), lang)["bleu4"]
        log.info(
            "dev, beam %d, length penalty %g: BLEU-4 %.2f", options.num_beams, lp, sweep[str(lp)]
        )
    best = float(max(sweep, key=sweep.get))
    chosen = generation.model_copy(update={"length_penalty": best})
    run = TranslationRun.open(run_dir)
    TranslationRun.create(run_dir, replace(run.spec, generation=generate_options(chosen)))
    return chosen, sweep


def existing_splits(root: str | os.PathLike, data) -> list[str]:
    """dev, and test when configured and present: the splits of the final evaluation."""
    splits = [data.dev_split]
    if data.test_split and split_path(root, data.test_split).is_file():
        splits.append(data.test_split)
    return splits


@dataclass(frozen=True)
class TranslationResult:
    """What a finished G2T/S2T `train` produced."""

    run_dir: Path
    best_checkpoint: Path
    best_epoch: int | None
    scores: dict[str, dict[str, float]]  # split → final scores (beam generation.num_beams)
    stopped_early: bool
    model: nn.Module | None = None  # the trained model with the best weights (main process)


def fit_and_evaluate(
    stage: str,
    cfg,
    run_dir: Path,
    model: nn.Module,
    mbart: nn.Module,
    loader_args: tuple[Dataset, Sampler, Callable, TrainingConfig],
    batches: dict[str, Callable[[], Iterable]],
    tokenizer: TextTokenizer,
    resume: bool,
) -> TranslationResult:
    """G2T's and S2T's common end: the shared `Trainer` (dev BLEU-4 every epoch, the best
    checkpoint kept; exact resume), then the best checkpoint scored on the splits of `batches`
    other than train (`final_evaluation`, main process)."""
    train_set, sampler, collate_fn, training = loader_args
    task = TranslationTask(batches[cfg.data.dev_split], tokenizer, cfg.data.lang, cfg.generation)
    trainer = Trainer(
        training,
        run_dir,
        model,
        train_set,
        task,
        collate_fn=collate_fn,
        sampler=sampler,
        config_hash=config_hash(cfg),
        param_groups=param_groups(model, mbart, cfg.model.lr, cfg.training.lr),
    )
    fit = trainer.fit(resume)
    if fit.best_checkpoint is None:
        raise SltError(f"{run_dir}: no epoch finished, so there is no best checkpoint to test")
    scores, model = {}, trainer.accelerator.unwrap_model(trainer.model)
    if trainer.accelerator.is_main_process:
        evaluated = {s: b for s, b in batches.items() if s != cfg.data.train_split}
        dev = batches[cfg.data.dev_split]
        generation, sweep = tune_length_penalty(
            run_dir, model, fit.best_checkpoint, dev, tokenizer, cfg.data.lang, cfg.generation
        )
        scores = final_evaluation(
            stage, run_dir, model, fit, evaluated, tokenizer, cfg.data.lang, generation,
            {"length_penalty_sweep": sweep} if sweep else None,
        )  # fmt: skip
    trainer.accelerator.wait_for_everyone()
    return TranslationResult(
        run_dir, fit.best_checkpoint, fit.state.best_epoch, scores, fit.stopped_early, model
    )
