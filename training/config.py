"""Typed experiment configs: one YAML per experiment, parsed once, every key checked.

A config is a tree of pydantic models with `extra="forbid"`: a misspelt key, a value
outside its choices or two settings that do not fit together stop the run before
anything slow starts, with one line naming the file, the key and what is allowed.
Defaults live here only; the shipped YAML files set what differs from them.

`load_config(path, S2GConfig, overrides)` is the entry point; `--override
training.lr=1e-4` values are YAML scalars validated like the file. The sections
that are not stage-specific (`TrainingConfig`, `Section`, `load_config`,
`config_hash`) are shared by every training stage (S2G, G2T, S2T).

Relative paths (`run_dir`, `data.root`, pretrained weights) are relative to the
working directory the command runs in, as in joeynmt.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slt_serve.errors import SltError

CONFIG_COPY = "config.yaml"  # the config a run ran with, in its run folder
KEYPOINT_SUBSETS = ("coco_wholebody_79", "coco_wholebody_63", "all")


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingConfig(Section):
    """Optimisation and bookkeeping, the same for every stage (reference: SLRT S2G configs)."""

    epochs: int = Field(40, ge=1)  # passes over the training split
    batch_size: int = Field(1, ge=1)  # clips per device per step (reference: 1)
    grad_accumulation: int = Field(1, ge=1)  # batches summed per optimizer step
    lr: float = Field(1e-3, gt=0)  # Adam peak learning rate
    optimizer: Literal["adam", "adamw"] = "adam"  # adamw: weight decay decoupled from the loss
    weight_decay: float = Field(1e-3, ge=0)  # Adam: L2 (reference: 0.001); AdamW: decoupled
    betas: tuple[float, float] = (0.9, 0.998)  # Adam betas (reference)
    # after warm-up: cosine to 0 over `epochs`; constant; linear to 0 at the end of the
    # budget (epochs, max_steps or max_minutes, whichever ends first)
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int = Field(0, ge=0)  # linear warm-up, in optimizer steps
    max_grad_norm: float | None = Field(None, gt=0)  # gradient clipping; None: off
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # YAML's bare `no` (False) means "no"
    seed: int = Field(0, ge=0)  # model init, data order, augmentation
    num_workers: int = Field(0, ge=0)  # DataLoader worker processes
    cpu_threads: int | None = Field(None, ge=1)  # torch CPU threads; None: torch's default
    checkpoint_every_minutes: float = Field(0, ge=0)  # extra saves within an epoch; 0: off
    keep_best_n: int = Field(5, ge=1)  # best epoch checkpoints kept (reference: 5)
    eval_beam_size: int = Field(5, ge=1)  # CTC beam of the final dev/test evaluation
    dev_beam_size: int = Field(1, ge=1)  # CTC beam of the per-epoch dev evaluation
    dev_every_steps: int | None = Field(None, ge=1)  # also score dev (and save) every N steps
    max_minutes: float | None = Field(None, gt=0)  # stop after this much time (then evaluate)
    clock: Literal["wall", "cpu"] = "wall"  # what max_minutes counts: wall or this process's CPU
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps
    plateau_epochs: int = Field(3, ge=1)  # warn when dev output is all blank this long
    average_best: int = Field(1, ge=1)  # at the end, average the N best checkpoints' weights

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value

    @model_validator(mode="after")
    def _averaged_are_kept(self) -> TrainingConfig:
        if self.average_best > self.keep_best_n:
            raise ValueError(
                f"average_best {self.average_best} needs as many checkpoints kept: "
                f"set keep_best_n ≥ {self.average_best}"
            )
        return self


class DataConfig(Section):
    """Where the clips come from and what the network sees."""

    root: Path  # dataset root (train.jsonl, gloss_vocab.json, frames/<size>/, keypoints/)
    frame_size: int = Field(256, ge=16)  # side of the frames cache to read (slt data frames --size)
    input_size: int = Field(224, ge=16)  # side of the network input, after crop and resize
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str | None = "test"  # evaluated after training when present; None: skip
    motion_channels: bool = False  # append frame differences (6 input channels)
    frame_stride: int = Field(1, ge=1)  # keep every N-th cached frame (2: 25 fps → 12.5 fps)
    keypoints: str | list[int] = "coco_wholebody_79"  # two_stream: named subset or indices
    eval_crop: float = Field(1.0, gt=0, le=1)  # dev/test: centre crop of this side fraction


class AugmentationConfig(Section):
    """Training-time augmentation as TwoStream-SLT's (eval clips are never augmented)."""

    enabled: bool = True
    crop_min_area: float = Field(0.7, gt=0, le=1)  # random crop of ≥ this area fraction
    crop_aspect: tuple[float, float] = (0.75, 1.3)  # crop width/height ratio range
    speed: tuple[float, float] = (0.5, 1.5)  # temporal speed range (index resampling)
    max_frames: int = Field(400, ge=8)  # longer clips are resampled down to this
    color_jitter: float = Field(0.0, ge=0, le=1)  # brightness/contrast/saturation ± this; 0: off

    @model_validator(mode="after")
    def _ranges(self) -> AugmentationConfig:
        lo, hi = self.speed
        if not 0 < lo <= hi:
            raise ValueError(f"speed must be (low, high) with 0 < low ≤ high, got {self.speed}")
        lo, hi = self.crop_aspect
        if not 0 < lo <= hi:
            raise ValueError(f"crop_aspect must be (low, high), 0 < low ≤ high, got {lo, hi}")
        return self


class ModelConfig(Section):
    """The recognizer; maps onto `SingleStreamOptions` / `TwoStreamOptions`."""

    kind: Literal["single_stream", "two_stream"] = "single_stream"
    width: float = Field(1.0, gt=0, le=4)  # S3D channel multiplier; ≠ 1 only from scratch
    pretrained_s3d: Path | None = None  # Kinetics-400 S3D weights for the RGB stream
    pretrained_keypoint_s3d: Path | None = None  # the same for the keypoint stream
    hidden_size: int = Field(512, ge=2)  # visual head width = gloss feature size
    ff_size: int = Field(2048, ge=1)  # visual head conv block inner width
    ff_kernel_sizes: tuple[int, ...] = (3, 3)
    dropout: float = Field(0.1, ge=0, lt=1)
    frozen_blocks: int = Field(
        0, ge=0, le=4
    )  # leading RGB S3D blocks frozen (reference: 1, pretrained)
    keypoint_frozen_blocks: int = Field(0, ge=0, le=4)
    heatmap_sigma: float = Field(4.0, gt=0)  # in heatmap pixels (heatmaps: input_size / 2)
    # "reference": σ (heatmap_sigma) in pixels of heatmap_grid, drawn there then resized, every
    # point drawn (TwoStream-SLT's drawing, for imported models); "direct": at 112², as ours
    heatmap_style: Literal["direct", "reference"] = "direct"
    heatmap_grid: tuple[int, int] = (260, 210)  # reference style: (height, width) drawn on
    lateral: bool = True  # two_stream: lateral connections after blocks 1-3
    pyramid: bool = True  # two_stream: sign pyramid auxiliary heads
    distillation: bool = True  # two_stream: ensemble teaches each head
    decode_head: Literal["joint", "ensemble"] = "joint"
    # two_stream: heads of imported TwoStream-SLT S2T networks (joint/rgb/keypoint features,
    # one per network): the gloss features are theirs side by side (`slt import slrt`)
    translation_heads: tuple[Literal["joint", "rgb", "keypoint"], ...] = ()
    # what S2T reads of a head: its gloss features, or its gloss probabilities (imported
    # TwoStream-SLT CSL-Daily S2T, whose V-L mapper is an embedding over them)
    translation_input: Literal["features", "probabilities"] = "features"


class S2GConfig(Section):
    """One sign-to-gloss experiment."""

    stage: Literal["s2g"] = "s2g"
    run_dir: Path  # checkpoints, logs, metrics.json and the config copy go here
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    augmentation: AugmentationConfig = AugmentationConfig()

    @model_validator(mode="after")
    def _fits_together(self) -> S2GConfig:
        data, model = self.data, self.model
        if data.input_size > data.frame_size:
            raise ValueError(
                f"data.input_size {data.input_size} exceeds data.frame_size {data.frame_size}: "
                "cache larger frames (slt data frames --size) or lower input_size"
            )
        if model.kind == "two_stream":
            if data.input_size % 2:
                raise ValueError(
                    f"data.input_size {data.input_size} must be even for two_stream "
                    "(heatmaps are half the input size)"
                )
            if isinstance(data.keypoints, str) and data.keypoints not in KEYPOINT_SUBSETS:
                raise ValueError(
                    f"data.keypoints {data.keypoints!r}: choose one of {', '.join(KEYPOINT_SUBSETS)} "
                    "or a list of indices"
                )
        if model.frozen_blocks and not model.pretrained_s3d:
            raise ValueError(
                f"model.frozen_blocks {model.frozen_blocks} would freeze randomly initialised "
                "S3D blocks: set model.pretrained_s3d, or model.frozen_blocks: 0"
            )
        if model.keypoint_frozen_blocks and not model.pretrained_keypoint_s3d:
            raise ValueError(
                f"model.keypoint_frozen_blocks {model.keypoint_frozen_blocks} would freeze randomly "
                "initialised blocks: set model.pretrained_keypoint_s3d, or keypoint_frozen_blocks: 0"
            )
        if model.width != 1 and (model.pretrained_s3d or model.pretrained_keypoint_s3d):
            raise ValueError(
                f"model.width {model.width}: Kinetics-400 S3D weights fit only width 1; "
                "set model.width: 1, or drop the pretrained S3D weights"
            )
        if model.pretrained_keypoint_s3d and model.kind != "two_stream":
            raise ValueError("model.pretrained_keypoint_s3d needs model.kind two_stream")
        return self


Config = TypeVar("Config", bound=Section)


def load_config(
    path: str | os.PathLike, schema: type[Config], overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Read a YAML config, apply `key.sub=value` overrides, validate against `schema`."""
    path = Path(path)
    if not path.is_file():
        raise SltError(f"{path}: no config file there; start from configs/custom.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SltError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SltError(f"{path}: expected a mapping of sections (data, model, training, ...)")
    for item in overrides:
        apply_override(raw, item, path)
    return validate_config(raw, schema, path)


def validate_config(raw: dict, schema: type[Config], source: str | os.PathLike) -> Config:
    """`raw` as a `schema`; the first problem as one SltError line naming `source`."""
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        raise SltError(f"{source}: {_describe(e.errors()[0], schema)}") from None


def apply_override(raw: dict, item: str, source: str | os.PathLike) -> None:
    """Set `section.key=value` (a YAML scalar) in a raw config dict, creating sections."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SltError(f"--override {item!r}: write it as section.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node = raw
    *parents, last = key.strip().split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SltError(f"--override {item!r}: {part} is not a section in {source}")
        node = child
    node[last] = value


def _describe(error: dict, schema: type[BaseModel]) -> str:
    """One readable line for a pydantic error: the dotted key, what is wrong, what is valid."""
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    key = ".".join(loc) or "(top level)"
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        valid = _valid_keys(schema, loc[:-1])
        return f"unknown key '{key}'; valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return f"missing key '{key}'"
    if kind == "literal_error":
        return f"'{key}' is {error.get('input')!r}: {msg[0].lower() + msg[1:]}"
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        return f"{key}: {text}" if loc else text
    return f"'{key}' is {error.get('input')!r}: {msg.removeprefix('Value error, ')}"


def _valid_keys(schema: type[BaseModel], loc: list[str]) -> list[str]:
    model: Any = schema
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type):
            return sorted(model.model_fields) if hasattr(model, "model_fields") else []
        model = field.annotation
    return sorted(model.model_fields)


# Settings a resumed run may change: budgets and bookkeeping, not what is trained.
RESUME_MAY_CHANGE = {
    "training": {
        "max_minutes",
        "max_steps",
        "num_workers",
        "cpu_threads",
        "checkpoint_every_minutes",
        "plateau_epochs",
        "eval_beam_size",
        "average_best",
    }
}


def config_hash(config: Section) -> str:
    """sha256 of the config's canonical JSON, less `RESUME_MAY_CHANGE`: a resumed run must
    have the same one."""
    dump = config.model_dump(mode="json", exclude=RESUME_MAY_CHANGE)
    text = json.dumps(dump, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_differences(a: Section, b: Section) -> list[str]:
    """Dotted keys whose values differ between two configs of one schema."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}{k}.")
        elif x != y:
            out.append(prefix.rstrip("."))

    walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "")
    return out


def save_config(config: Section, run_dir: str | os.PathLike) -> Path:
    """Write the config a run runs with into its run folder (YAML, atomically)."""
    from slt_serve.fileio import atomic_write

    path = Path(run_dir) / CONFIG_COPY
    with atomic_write(path) as f:
        yaml.safe_dump(config.model_dump(mode="json"), f, sort_keys=False, allow_unicode=True)
    return path


# --- translation stages (G2T, S2T) -----------------------------------------------------

MBART_LANG_TOKENS = {"de": "de_DE", "zh": "zh_CN", "vi": "vi_VN", "en": "en_XX", "ja": "ja_XX"}


class TextDataConfig(Section):
    """Translation data: which splits, and the text's language (scoring, language token)."""

    root: Path | None = None  # dataset root (train.jsonl …); S2T: None → the S2G run's data.root
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str | None = "test"  # evaluated after training when present; None: skip
    lang: str = "de"  # ISO code of the text: zh/ja are scored on characters
    max_tokens: int | None = Field(None, ge=16)  # batches by padded tokens; None: batch_size clips
    # G2T concatenation augmentation: this fraction of the training set is added again as
    # random pairs of training clips joined end to end (text_data.concatenated_pairs); 0: off
    concat_pairs: float = Field(0.0, ge=0, le=1)


class TokenizerConfig(Section):
    """The text tokenizer: trained on the train split, or an existing `tokenizer.json`."""

    path: Path | None = None  # an existing tokenizer.json (or its folder); None: train one
    vocab_size: int = Field(4000, ge=100)  # BPE pieces, specials included
    glosses: Literal["text", "tokens"] = "text"  # G2T source: lowercased sub-words or one token each
    lang_token: str | None = None  # mBART language token; None: from data.lang (de → de_DE)
    lowercase: bool = False  # lowercase the text before splitting it
    characters: bool = False  # Han/kana/Hangul characters one piece each (Chinese: see CSL-Daily)


SHAPE_KEYS = ("encoder_layers", "decoder_layers", "d_model", "ffn", "heads")


class TranslationModelConfig(Section):
    """mBART: a preset trained from scratch (its shape keys override the preset's), or a
    local pretrained folder (slt prune-mbart)."""

    size: Literal["small", "tiny"] = "small"  # from scratch: 3+3 layers d 256, or 2+2 d 32
    encoder_layers: int | None = Field(None, ge=1)  # from scratch; None: the preset's
    decoder_layers: int | None = Field(None, ge=1)  # from scratch; None: the preset's
    d_model: int | None = Field(None, ge=2)  # hidden size, a multiple of heads; None: preset's
    ffn: int | None = Field(None, ge=1)  # feed-forward inner size; None: the preset's
    heads: int | None = Field(None, ge=1)  # attention heads; None: the preset's
    pretrained: Path | None = None  # local mBART folder (config.json, weights, tokenizer.json)
    dropout: float = Field(0.1, ge=0, lt=1)  # residual/embedding dropout (reference: 0.3)
    attention_dropout: float = Field(0.1, ge=0, lt=1)  # reference: 0.1
    # G2T training: each gloss sub-word of the source becomes <unk> with this probability
    # (source word dropout, Sennrich & Zhang 2019: a regulariser for low-resource NMT); S2T: 0
    source_word_dropout: float = Field(0.0, ge=0, lt=1)
    label_smoothing: float = Field(0.2, ge=0, lt=1)  # reference: 0.2
    # R-Drop (Liang et al. 2021): α of the symmetric KL between two dropout passes of each
    # training batch (twice the compute a step); 0: off
    r_drop: float = Field(0.0, ge=0)
    lr: float | None = Field(None, gt=0)  # mBART's learning rate; None: training.lr
    # "reference": TwoStream-SLT's label-smoothed KL loss, summed and divided by the batch
    loss: Literal["ours", "reference"] = "ours"
    freeze_embeddings: bool = False  # text (and gloss) embeddings fixed (reference G2T: true)

    def shape(self) -> dict[str, int]:
        """The shape keys set here (they override the `size` preset's)."""
        return {k: getattr(self, k) for k in SHAPE_KEYS if getattr(self, k) is not None}


class GenerationConfig(Section):
    """Beam search of the final dev/test evaluation (and of serving, via model.json)."""

    num_beams: int = Field(5, ge=1)
    length_penalty: float = 1.0  # > 1 favours longer output
    max_length: int = Field(100, ge=2)  # output tokens, language token included
    # chosen on dev at the end: each is scored with beam num_beams, the best BLEU-4 replaces
    # length_penalty (in metrics.json, model.json and so in the exported bundle); (): keep it
    length_penalties: tuple[float, ...] = ()


class G2TConfig(Section):
    """One gloss-to-text experiment. The per-epoch dev score uses beam
    `training.dev_beam_size`; the final one `generation` (training.eval_beam_size is unused)."""

    stage: Literal["g2t"] = "g2t"
    run_dir: Path
    data: TextDataConfig
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: TranslationModelConfig = TranslationModelConfig()
    generation: GenerationConfig = GenerationConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _fits_together(self) -> G2TConfig:
        if self.data.root is None:
            raise ValueError("missing key 'data.root' (the dataset root with train.jsonl)")
        _check_text_sections(self.tokenizer, self.model)
        return self


class S2TConfig(Section):
    """One sign-to-text experiment on top of an S2G run (and optionally a G2T run)."""

    stage: Literal["s2t"] = "s2t"
    run_dir: Path
    s2g_run: Path  # S2G run folder: config.yaml, checkpoints/best.json, features/<split>/
    g2t_run: Path | None = None  # initialise mBART and tokenizer from this G2T run's best
    finetune_s2g: bool = False  # False: train on extracted features; True: video end to end
    ctc_weight: float = Field(1.0, ge=0)  # finetune_s2g: weight of the recognizer's CTC loss
    data: TextDataConfig = TextDataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()  # used when g2t_run is null
    model: TranslationModelConfig = TranslationModelConfig()  # shape unused with g2t_run
    generation: GenerationConfig = GenerationConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _fits_together(self) -> S2TConfig:
        if self.g2t_run is None:
            _check_text_sections(self.tokenizer, self.model)
        elif self.model.pretrained is not None or self.tokenizer.path is not None:
            raise ValueError(
                "g2t_run gives the mBART and its tokenizer: leave model.pretrained and "
                "tokenizer.path unset"
            )
        elif self.model.shape():
            raise ValueError(
                f"g2t_run gives the mBART's shape: leave model.{', model.'.join(self.model.shape())} unset"
            )
        if self.model.source_word_dropout:
            raise ValueError(
                "model.source_word_dropout drops gloss tokens (G2T); S2T reads features: unset it"
            )
        if self.data.concat_pairs:
            raise ValueError("data.concat_pairs joins gloss sequences (G2T); S2T: unset it")
        if self.finetune_s2g and self.data.max_tokens is not None:
            raise ValueError("data.max_tokens batches text only; with finetune_s2g use batch_size")
        return self


def _check_text_sections(tokenizer: TokenizerConfig, model: TranslationModelConfig) -> None:
    if model.pretrained is not None and tokenizer.path is not None:
        raise ValueError(
            "model.pretrained brings its own tokenizer.json: leave tokenizer.path unset"
        )
    if model.pretrained is not None and model.shape():
        raise ValueError(
            f"model.pretrained has its own shape: leave {', '.join(model.shape())} unset"
        )
