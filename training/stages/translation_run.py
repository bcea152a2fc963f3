"""The run folder of a translation stage (G2T, S2T), and how a trained model is rebuilt from it.

A G2T or S2T run folder holds (what `slt pipeline` and the ONNX exporter rely on):

    config.yaml          the config the run ran with (`save_config`)
    model.json           what the model is, without the YAML (below)
    tokenizer.json       the text tokenizer the model reads and writes (HF tokenizers)
    checkpoints/         best.json / latest.json pointers, one folder per kept checkpoint
                         (model.safetensors: the TranslationModel's state dict, or for S2T
                         with finetune_s2g a `SignTranslator`'s: `recognizer.*` + `translation.*`)
    metrics.json         dev/test BLEU-1..4, ROUGE-L of the best checkpoint (final beam)
    predictions/<split>.jsonl   one {"name", "hyp", "ref"} per clip

`model.json`:

    {"mbart_config": MBartConfig.to_dict(), "translation_options": {TranslationOptions},
     "generation": {GenerateOptions}, "stage": "g2t" | "s2t", "s2g_run": str | null,
     "s2g_checkpoint_sha256": str | null, "finetune_s2g": bool, "lang": str}

`load_translation_run(run_dir)` reads it back: a `TranslationRun` with the best
weights loaded in eval mode. Tied embeddings (mBART's shared embedding and LM head)
are stored once in safetensors; loading checks that only tied copies are missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import MBartConfig, MBartForConditionalGeneration

from slt_serve.errors import SltError
from slt_serve.fileio import write_json
from slt_training.models.translation import GenerateOptions, TranslationModel, TranslationOptions
from slt_training.text.tokenizer import TOKENIZER_FILE, TextTokenizer
from slt_training.trainer import BEST, WEIGHTS_FILE, checkpoint_pointer

MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_DIR = "predictions"
STAGES = ("g2t", "s2t")


@dataclass(frozen=True)
class ModelSpec:
    """What `model.json` holds."""

    mbart_config: dict
    translation_options: TranslationOptions
    generation: GenerateOptions
    stage: str
    lang: str
    s2g_run: str | None = None
    s2g_checkpoint_sha256: str | None = None
    finetune_s2g: bool = False

    def to_json(self) -> dict:
        return {
            "mbart_config": self.mbart_config,
            "translation_options": dataclasses.asdict(self.translation_options),
            "generation": dataclasses.asdict(self.generation),
            "stage": self.stage,
            "s2g_run": self.s2g_run,
            "s2g_checkpoint_sha256": self.s2g_checkpoint_sha256,
            "finetune_s2g": self.finetune_s2g,
            "lang": self.lang,
        }

    @classmethod
    def from_json(cls, obj: dict, source: Path) -> ModelSpec:
        try:
            spec = cls(
                mbart_config=dict(obj["mbart_config"]),
                translation_options=TranslationOptions(**obj["translation_options"]),
                generation=GenerateOptions(**obj["generation"]),
                stage=obj["stage"],
                lang=obj["lang"],
                s2g_run=obj.get("s2g_run"),
                s2g_checkpoint_sha256=obj.get("s2g_checkpoint_sha256"),
                finetune_s2g=bool(obj.get("finetune_s2g", False)),
            )
        except (KeyError, TypeError) as e:
            raise SltError(f"{source}: not a translation model.json ({e})") from None
        if spec.stage not in STAGES:
            raise SltError(f"{source}: stage {spec.stage!r}, expected one of {STAGES}")
        return spec


def write_model_spec(run_dir: str | os.PathLike, spec: ModelSpec) -> Path:
    path = Path(run_dir) / MODEL_FILE
    write_json(path, spec.to_json())
    return path


def read_model_spec(run_dir: str | os.PathLike) -> ModelSpec:
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise SltError(f"{path}: missing; {run_dir} is not a G2T/S2T run (slt train g2t|s2t)")
    return ModelSpec.from_json(json.loads(path.read_text(encoding="utf-8")), path)


def mbart_from_config(config: dict, **overrides) -> MBartForConditionalGeneration:
    """A randomly initialised mBART of the shape a `model.json` records."""
    cfg = MBartConfig.from_dict({**config, **overrides})
    return MBartForConditionalGeneration(cfg)


def load_state(model: nn.Module, state: dict[str, Tensor], source: str | os.PathLike) -> None:
    """Load `state` into `model`; keys may be missing only where they are tied to a loaded one
    (safetensors stores a tied tensor once). Anything else is an error naming `source`."""
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise SltError(
            f"{source}: weights do not fit the model (unexpected {result.unexpected_keys[:3]}); "
            "was it written by another stage or config?"
        )
    if result.missing_keys:
        full = model.state_dict()
        loaded = {full[k].data_ptr() for k in state if k in full}
        untied = [k for k in result.missing_keys if full[k].data_ptr() not in loaded]
        if untied:
            raise SltError(f"{source}: weights lack {untied[:3]}; the checkpoint is incomplete")


def read_weights(checkpoint: str | os.PathLike) -> dict[str, Tensor]:
    """A checkpoint folder's safetensors weights (no unpickling)."""
    from safetensors.torch import load_file

    path = Path(checkpoint) / WEIGHTS_FILE
    if not path.is_file():
        raise SltError(f"{checkpoint}: no {WEIGHTS_FILE}; the checkpoint is incomplete")
    return load_file(str(path), device="cpu")


def split_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under `prefix.`, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def best_checkpoint_of(run_dir: str | os.PathLike, command: str) -> Path:
    """A run's best checkpoint folder; refuses, naming `command`, when there is none."""
    folder = checkpoint_pointer(run_dir, BEST)
    if folder is None:
        raise SltError(f"{run_dir}: no trained checkpoint; run `{command}` first")
    return folder


@dataclass
class TranslationRun:
    """A trained G2T/S2T model, rebuilt from its run folder (see the module docstring)."""

    run_dir: Path
    checkpoint: Path  # the best checkpoint folder the weights came from
    model: TranslationModel  # best weights, eval mode
    tokenizer: TextTokenizer
    generation: GenerateOptions
    stage: str
    lang: str
    metrics: dict  # metrics.json ({} while training has not finished)
    recognizer: nn.Module | None  # S2T with finetune_s2g: the fine-tuned recognizer, eval mode
    s2g_run: Path | None
    s2g_checkpoint_sha256: str | None
    finetune_s2g: bool

    @property
    def translation_options(self) -> TranslationOptions:
        return self.model.options


def load_translation_run(run_dir: str | os.PathLike) -> TranslationRun:
    """The best checkpoint of a G2T/S2T run with its tokenizer and generation settings."""
    run_dir = Path(run_dir)
    spec = read_model_spec(run_dir)
    checkpoint = best_checkpoint_of(run_dir, f"slt train {spec.stage} CONFIG")
    tokenizer = TextTokenizer.load(run_dir / TOKENIZER_FILE)
    model = TranslationModel(mbart_from_config(spec.mbart_config), spec.translation_options)
    state = read_weights(checkpoint)
    recognizer = None
    if spec.finetune_s2g:
        if not spec.s2g_run:
            raise SltError(f"{run_dir / MODEL_FILE}: finetune_s2g without s2g_run")
        recognizer = build_recognizer(Path(spec.s2g_run))
        load_state(recognizer, split_state(state, "recognizer"), checkpoint)
        recognizer.eval()
        state = split_state(state, "translation")
    load_state(model, state, checkpoint)
    model.eval()
    metrics_path = run_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text("utf-8")) if metrics_path.is_file() else {}
    return TranslationRun(
        run_dir=run_dir,
        checkpoint=checkpoint,
        model=model,
        tokenizer=tokenizer,
        generation=spec.generation,
        stage=spec.stage,
        lang=spec.lang,
        metrics=metrics,
        recognizer=recognizer,
        s2g_run=Path(spec.s2g_run) if spec.s2g_run else None,
        s2g_checkpoint_sha256=spec.s2g_checkpoint_sha256,
        finetune_s2g=spec.finetune_s2g,
    )


def build_recognizer(s2g_run: Path) -> nn.Module:
    """The S2G run's recognizer, untrained (weights are loaded by the caller)."""
    from slt_training.config import CONFIG_COPY, S2GConfig, load_config
    from slt_training.data.s2g_data import load_vocab
    from slt_training.stages.s2g import build_model

    path = s2g_run / CONFIG_COPY
    if not path.is_file():
        raise SltError(f"{s2g_run}: no {CONFIG_COPY}; run `slt train s2g CONFIG` first")
    cfg = load_config(path, S2GConfig)
    with torch.random.fork_rng():  # building initialises weights: leave the caller's RNG alone
        model, _ = build_model(cfg, len(load_vocab(cfg.data.root)), pretrained=False)
    return model
