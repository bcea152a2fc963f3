"""Run folders: what the training stages write, and the one place that reads and writes it.

An S2G run folder (`slt train s2g`):

    config.yaml          the config the run ran with (`save_config`)
    input_spec.json      what the recognizer reads (`S2GInputSpec`): frame and input size,
                         normalisation, channels, frame stride, keypoint subset, eval crop,
                         and the frame rate (fps) of the clips it was trained on
    checkpoints/         best.json / latest.json pointers, one folder per kept checkpoint
                         holding model.safetensors (the trainer writes them)
    metrics.json         dev/test scores of the best checkpoint (final beam)
    predictions/<split>.jsonl   one {"name", "hyp", "ref"} per clip
    features/<split>/    what `slt features` wrote (`slt_training.stages.features`)

A G2T or S2T run folder (`slt train g2t|s2t`) has config.yaml, checkpoints/, metrics.json
and predictions/ as above, and

    model.json           what the model is (`ModelSpec`), without the YAML
    tokenizer.json       the text tokenizer the model reads and writes (HF tokenizers)

`S2GRun` and `TranslationRun` are the typed views of the two. Reading a trained run:
`S2GRun.open(dir)`, `TranslationRun.open(dir)` (or `open_run(dir)`, either); a missing
part is refused in one line naming the command that makes it. Writing one (the stages,
and importers of reference checkpoints): `prepare_run_dir(cfg, resume, root)`, then
`S2GRun.of(cfg).write_input_spec(...)` or `TranslationRun.create(dir, ModelSpec(...))`,
checkpoints under `checkpoint_dir(run_dir, tag)` + `write_checkpoint_pointers`, and
`write_metrics` / `write_predictions` at the end. Every file name is a constant here.

Nothing here imports torch at import time: reading specs, metrics and hashes is cheap;
rebuilding a model (`S2GRun.load_recognizer`, `TranslationRun.load`) imports the stack.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write, file_sha256, write_json
from slt_serve.manifest import GlossTable
from slt_serve.tokenizer import TOKENIZER_FILE
from slt_training.config import CONFIG_COPY, S2GConfig, load_config, save_config

if TYPE_CHECKING:
    from torch import Tensor, nn
    from transformers import MBartForConditionalGeneration

    from slt_serve.vocab import GlossVocab
    from slt_training.config import AugmentationConfig
    from slt_training.data.s2g_data import ClipOptions
    from slt_training.models.translation import (
        GenerateOptions,
        TranslationModel,
        TranslationOptions,
    )
    from slt_training.text.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

CONFIG_FILE = CONFIG_COPY  # config.yaml: the config the run ran with
INPUT_SPEC_FILE = "input_spec.json"  # S2G: what the recognizer reads
MODEL_FILE = "model.json"  # G2T/S2T: what the model is
# TOKENIZER_FILE (tokenizer.json, G2T/S2T: the text tokenizer) is the runtime's name, imported
METRICS_FILE = "metrics.json"  # the best checkpoint's final scores
PREDICTIONS_DIR = "predictions"  # <split>.jsonl: one {"name", "hyp", "ref"} per clip
FEATURES_DIR = "features"  # S2G: <split>/ written by `slt features`
CHECKPOINTS = "checkpoints"  # one folder per kept checkpoint, and the pointer files
LATEST, BEST = "latest.json", "best.json"  # pointers: {"dir": <checkpoint folder name>}
WEIGHTS_FILE = "model.safetensors"  # what accelerator.save_state names the model's weights
DEFAULT_FPS = 25.0  # an S2G run from before fps was saved, whose dataset cannot be probed
TRANSLATION_STAGES = ("g2t", "s2t")


# --- checkpoints ------------------------------------------------------------------------


def checkpoint_dir(run_dir: str | os.PathLike, tag: str) -> Path:
    """The folder of checkpoint `tag` (e.g. `epoch-0003`) in a run."""
    return Path(run_dir) / CHECKPOINTS / tag


def checkpoint_pointer(run_dir: str | os.PathLike, which: str = BEST) -> Path | None:
    """Folder a pointer file (`best.json`, `latest.json`) names, or None if there is none."""
    path = Path(run_dir) / CHECKPOINTS / which
    if not path.is_file():
        return None
    folder = checkpoint_dir(run_dir, json.loads(path.read_text(encoding="utf-8"))["dir"])
    return folder if folder.is_dir() else None


def write_checkpoint_pointer(run_dir: str | os.PathLike, which: str, tag: str, **info) -> None:
    """Point `best.json` or `latest.json` at checkpoint `tag` (written after the checkpoint;
    `info`: epoch, step, metric, for reading)."""
    write_json(Path(run_dir) / CHECKPOINTS / which, {"dir": tag, **info})


def write_checkpoint(run_dir: str | os.PathLike, tag: str, model: nn.Module, **info) -> Path:
    """A model's weights as checkpoint `tag`, made the run's best and latest: how a run folder
    is written from weights trained elsewhere (e.g. an imported reference checkpoint). Tied
    tensors are stored once, as training stores them. Training itself saves full state."""
    from safetensors.torch import save_model

    folder = checkpoint_dir(run_dir, tag)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_model(model, str(tmp))
    os.replace(tmp, folder / WEIGHTS_FILE)
    for which in (BEST, LATEST):
        write_checkpoint_pointer(run_dir, which, tag, **info)
    return folder


def weights_sha256(checkpoint: str | os.PathLike) -> str:
    """sha256 of a checkpoint folder's weights file."""
    return file_sha256(Path(checkpoint) / WEIGHTS_FILE)


def read_weights(checkpoint: str | os.PathLike) -> dict[str, Tensor]:
    """A checkpoint folder's safetensors weights (no unpickling)."""
    from safetensors.torch import load_file

    path = Path(checkpoint) / WEIGHTS_FILE
    if not path.is_file():
        raise SltError(f"{checkpoint}: no {WEIGHTS_FILE}; the checkpoint is incomplete")
    return load_file(str(path), device="cpu")


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


def split_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under `prefix.`, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


# --- creating a run folder --------------------------------------------------------------


def prepare_run_dir(cfg, resume: bool, data_root: str | os.PathLike) -> Path:
    """Create `cfg.run_dir` and copy the config into it; never overwrite another run, and
    refuse before anything is written when the data's train or dev split is missing."""
    run_dir = Path(cfg.run_dir)
    if checkpoint_pointer(run_dir, LATEST) is not None and not resume:
        raise SltError(
            f"{run_dir} already holds a training run; pass --resume to continue it, "
            "or set another run_dir"
        )
    from slt_training.data.annotations import split_path

    for split in (cfg.data.train_split, cfg.data.dev_split):
        if not split_path(data_root, split).is_file():
            raise SltError(
                f"{data_root}: no '{split}' split; prepare the dataset first "
                "(`slt data synth` or `slt data import-…`)"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir)
    return run_dir


# --- what every run folder has ----------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """What S2G, G2T and S2T run folders share: checkpoints, metrics, predictions."""

    run_dir: Path

    @property
    def stage(self) -> str:
        raise NotImplementedError

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_FILE

    @property
    def train_command(self) -> str:
        """The command that trains this run (named when something is missing)."""
        config = self.config_path if self.config_path.is_file() else "CONFIG"
        return f"slt train {self.stage} {config}"

    def best_checkpoint(self) -> Path:
        """The best checkpoint folder, with its weights ("best checkpoint or refuse": the one
        place); refuses, naming `slt train STAGE`, when there is none."""
        folder = checkpoint_pointer(self.run_dir, BEST)
        if folder is None or not (folder / WEIGHTS_FILE).is_file():
            raise SltError(
                f"{self.run_dir}: no trained {self.stage.upper()} checkpoint; "
                f"run `{self.train_command}` first"
            )
        return folder

    def weights_sha256(self) -> str:
        """sha256 of the best checkpoint's weights (refuses like `best_checkpoint`)."""
        return weights_sha256(self.best_checkpoint())

    def metrics(self) -> dict:
        """`metrics.json` ({} while training has not finished)."""
        path = self.run_dir / METRICS_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        path = self.run_dir / METRICS_FILE
        write_json(path, metrics)
        return path

    def predictions(self, split: str) -> dict[str, str]:
        """name → hypothesis of a split's predictions ({} when there are none)."""
        path = self.run_dir / PREDICTIONS_DIR / f"{split}.jsonl"
        if not path.is_file():
            return {}
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = (json.loads(line) for line in lines if line)
        return {row["name"]: row["hyp"] for row in rows}

    def write_predictions(self, split: str, rows: Iterable[tuple[str, str, str]]) -> Path:
        """One {"name", "hyp", "ref"} line per (name, hypothesis, reference)."""
        path = self.run_dir / PREDICTIONS_DIR / f"{split}.jsonl"
        with atomic_write(path) as f:
            for name, hyp, ref in rows:
                row = {"name": name, "hyp": hyp, "ref": ref}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path


# --- S2G --------------------------------------------------------------------------------


SERVING_ONLY = ("fps", "geometry")  # input-spec fields training's ClipOptions does not have


@dataclass(frozen=True)
class S2GInputSpec:
    """What a recognizer reads (`input_spec.json`), for features and export. (The bundle's
    `slt_serve.manifest.InputSpec` is made from it: fps there is what serving feeds.)"""

    frame_size: int  # side of the cached frames
    input_size: int  # side of the network input (after the crop)
    mean: tuple[float, ...]  # per channel normalisation, on [0, 1] values
    std: tuple[float, ...]
    motion_channels: bool  # frame differences appended to RGB (6 channels)
    frame_stride: int  # every N-th frame of the source clip
    keypoints: tuple[int, ...] | None  # TwoStream: the keypoint indices it reads
    eval_crop: float  # centre crop side fraction at evaluation
    fps: float | None  # frame rate of the source clips (None: a run from before it was saved)
    # serving's frame geometry (the manifest's `input.geometry`): "square" (ours), or
    # "reference_center_crop" / "reference_resize" (imported TwoStream-SLT Single/TwoStream runs)
    geometry: str = "square"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out |= {"mean": list(self.mean), "std": list(self.std)}
        out["keypoints"] = None if self.keypoints is None else list(self.keypoints)
        return out

    @classmethod
    def from_json(cls, obj: dict, source: str | os.PathLike) -> S2GInputSpec:
        try:
            keypoints = obj["keypoints"]
            return cls(
                frame_size=int(obj["frame_size"]),
                input_size=int(obj["input_size"]),
                mean=tuple(float(v) for v in obj["mean"]),
                std=tuple(float(v) for v in obj["std"]),
                motion_channels=bool(obj["motion_channels"]),
                frame_stride=int(obj.get("frame_stride", 1)),  # before the option: every frame
                keypoints=None if keypoints is None else tuple(int(i) for i in keypoints),
                eval_crop=float(obj["eval_crop"]),
                fps=None if obj.get("fps") is None else float(obj["fps"]),
                geometry=str(obj.get("geometry", "square")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SltError(f"{source}: not an S2G input spec ({e!r})") from None

    @classmethod
    def from_clip_options(cls, options: ClipOptions, fps: float | None) -> S2GInputSpec:
        shared = {
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(cls)
            if f.name not in SERVING_ONLY
        }
        shared |= {"mean": tuple(options.mean), "std": tuple(options.std)}
        if options.keypoints is not None:
            shared["keypoints"] = tuple(int(i) for i in options.keypoints)
        return cls(**shared, fps=fps)

    def clip_options(self, augmentation: AugmentationConfig, seed: int) -> ClipOptions:
        """The clip options the recognizer trained with (scoring, features, S2T)."""
        from slt_training.data.s2g_data import ClipOptions

        if self.geometry != "square":
            log.warning(
                "input geometry %s is served by the bundle; training's data pipeline reads "
                "the square one, so its scores and features differ slightly",
                self.geometry,
            )
        shared = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in SERVING_ONLY
        }
        return ClipOptions(**shared, augmentation=augmentation, seed=seed)


@dataclass(frozen=True)
class S2GRun(RunFolder):
    """An S2G run folder and the config it ran with (see the module docstring)."""

    config: S2GConfig

    @classmethod
    def of(cls, cfg: S2GConfig) -> S2GRun:
        """The run folder `cfg.run_dir` (being written by `slt train s2g`)."""
        return cls(Path(cfg.run_dir), cfg)

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> S2GRun:
        """A run folder on disk; refuses, naming `slt train s2g`, when it is none."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise SltError(
                f"{run_dir}: not an S2G run (no {CONFIG_FILE}); train the recognizer first: "
                "`slt train s2g CONFIG`"
            )
        return cls(run_dir, load_config(run_dir / CONFIG_FILE, S2GConfig))

    @property
    def stage(self) -> str:
        return "s2g"

    def input_spec(self) -> S2GInputSpec:
        path = self.run_dir / INPUT_SPEC_FILE
        if not path.is_file():
            raise SltError(f"{path}: missing; run `{self.train_command}` first")
        return S2GInputSpec.from_json(json.loads(path.read_text(encoding="utf-8")), path)

    def write_input_spec(self, spec: S2GInputSpec) -> Path:
        path = self.run_dir / INPUT_SPEC_FILE
        write_json(path, spec.to_json())
        return path

    def clip_options(self) -> ClipOptions:
        """The clip options the run trained with (its input spec), for scoring and features."""
        cfg = self.config
        return self.input_spec().clip_options(cfg.augmentation, cfg.training.seed)

    def fps(self) -> float:
        """The frame rate of the clips the recognizer was trained on."""
        fps = self.input_spec().fps
        if fps is not None:
            return fps
        # A run trained before fps was saved with it: the dataset's first clip says (as
        # export guessed before); a run is retrained or re-exported with --fps to be sure.
        return dataset_fps(self.config.data.root, self.config.data.train_split)

    def vocab(self) -> GlossVocab:
        from slt_training.data.s2g_data import load_vocab

        return load_vocab(self.config.data.root)

    def features_dir(self, split: str) -> Path:
        return self.run_dir / FEATURES_DIR / split

    def build_recognizer(self) -> nn.Module:
        """The recognizer this run trains, untrained (the caller's RNG is left alone)."""
        import torch

        from slt_training.stages.s2g import build_model

        with torch.random.fork_rng():  # building initialises weights
            model, _ = build_model(self.config, len(self.vocab()), pretrained=False)
        return model

    def load_recognizer(self, expect_sha256: str | None = None) -> nn.Module:
        """The recognizer with the best checkpoint's weights, in eval mode. With
        `expect_sha256` (an S2T run records the checkpoint its features came from), a best
        checkpoint with other weights is refused."""
        checkpoint = self.best_checkpoint()
        if expect_sha256 and weights_sha256(checkpoint) != expect_sha256:
            raise SltError(
                f"{self.run_dir}: its best checkpoint is not the one the translation run was "
                "trained on (sha256 differs); retrain S2T on the current features or restore "
                "that checkpoint"
            )
        model = self.build_recognizer()
        load_state(model, read_weights(checkpoint), checkpoint)
        return model.eval()


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


# --- G2T and S2T ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What `model.json` holds."""

    mbart_config: dict  # MBartConfig.to_dict()
    translation_options: TranslationOptions
    generation: GenerateOptions
    stage: str  # "g2t" or "s2t"
    lang: str  # data.lang
    s2g_run: str | None = None  # S2T: the S2G run it reads features from
    s2g_checkpoint_sha256: str | None = None  # S2T: the weights that made those features
    finetune_s2g: bool = False  # S2T: the checkpoint holds the fine-tuned recognizer too
    gloss_table: GlossTable | None = None  # G2T imported from TwoStream-SLT: its source glosses
    # the other translation runs searched with this one as an ensemble (imported TwoStream-SLT
    # S2T networks; their features follow this one's in the S2G run's)
    ensemble: tuple[str, ...] = ()

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
            "gloss_table": self.gloss_table.model_dump(mode="json") if self.gloss_table else None,
            "ensemble": list(self.ensemble),
        }

    @classmethod
    def from_json(cls, obj: dict, source: str | os.PathLike) -> ModelSpec:
        from slt_training.models.translation import GenerateOptions, TranslationOptions

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
                ensemble=tuple(str(p) for p in obj.get("ensemble", ())),
                gloss_table=GlossTable.model_validate(obj["gloss_table"])
                if obj.get("gloss_table")
                else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SltError(f"{source}: not a translation model.json ({e})") from None
        if spec.stage not in TRANSLATION_STAGES:
            raise SltError(f"{source}: stage {spec.stage!r}, expected one of {TRANSLATION_STAGES}")
        return spec


@dataclass(frozen=True)
class TranslationRun(RunFolder):
    """A G2T or S2T run folder and its `model.json` (see the module docstring)."""

    spec: ModelSpec

    @classmethod
    def create(cls, run_dir: str | os.PathLike, spec: ModelSpec) -> TranslationRun:
        """Write `model.json` into a run folder (the stage writes the rest as it trains)."""
        run = cls(Path(run_dir), spec)
        write_json(run.run_dir / MODEL_FILE, spec.to_json())
        return run

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> TranslationRun:
        path = Path(run_dir) / MODEL_FILE
        if not path.is_file():
            raise SltError(f"{path}: missing; {run_dir} is not a G2T/S2T run (slt train g2t|s2t)")
        obj = json.loads(path.read_text(encoding="utf-8"))
        return cls(Path(run_dir), ModelSpec.from_json(obj, path))

    @property
    def stage(self) -> str:
        return self.spec.stage

    @property
    def tokenizer_path(self) -> Path:
        return self.run_dir / TOKENIZER_FILE

    def tokenizer(self) -> TextTokenizer:
        from slt_training.text.tokenizer import TextTokenizer

        return TextTokenizer.load(self.tokenizer_path)

    def s2g(self) -> S2GRun:
        """S2T: the S2G run it builds on."""
        if not self.spec.s2g_run:
            raise SltError(
                f"{self.run_dir / MODEL_FILE}: an S2T run without s2g_run; re-run its training"
            )
        return S2GRun.open(self.spec.s2g_run)

    def load(self) -> TrainedTranslation:
        """The best checkpoint rebuilt: model (and fine-tuned recognizer) in eval mode."""
        checkpoint = self.best_checkpoint()
        model = translation_model(self.spec.mbart_config, self.spec.translation_options)
        state = read_weights(checkpoint)
        recognizer = None
        if self.spec.finetune_s2g:
            recognizer = self.s2g().build_recognizer()
            load_state(recognizer, split_state(state, "recognizer"), checkpoint)
            recognizer.eval()
            state = split_state(state, "translation")
        load_state(model, state, checkpoint)
        model.eval()
        return TrainedTranslation(
            run=self,
            checkpoint=checkpoint,
            model=model,
            tokenizer=self.tokenizer(),
            metrics=self.metrics(),
            recognizer=recognizer,
        )


def mbart_from_config(config: dict, **overrides) -> MBartForConditionalGeneration:
    """A randomly initialised mBART of the shape a `model.json` records."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    return MBartForConditionalGeneration(MBartConfig.from_dict({**config, **overrides}))


def translation_model(mbart_config: dict, options: TranslationOptions) -> TranslationModel:
    from slt_training.models.translation import TranslationModel

    return TranslationModel(mbart_from_config(mbart_config), options)


@dataclass(frozen=True)
class TrainedTranslation:
    """A trained G2T/S2T model rebuilt from its run folder (`TranslationRun.load`)."""

    run: TranslationRun
    checkpoint: Path  # the best checkpoint folder the weights came from
    model: TranslationModel  # best weights, eval mode
    tokenizer: TextTokenizer
    metrics: dict  # metrics.json ({} while training has not finished)
    recognizer: nn.Module | None  # S2T with finetune_s2g: the fine-tuned recognizer, eval mode

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def stage(self) -> str:
        return self.run.spec.stage

    @property
    def lang(self) -> str:
        return self.run.spec.lang

    @property
    def generation(self) -> GenerateOptions:
        return self.run.spec.generation

    @property
    def translation_options(self) -> TranslationOptions:
        return self.model.options

    @property
    def s2g_run(self) -> Path | None:
        return Path(self.run.spec.s2g_run) if self.run.spec.s2g_run else None

    @property
    def s2g_checkpoint_sha256(self) -> str | None:
        return self.run.spec.s2g_checkpoint_sha256

    @property
    def finetune_s2g(self) -> bool:
        return self.run.spec.finetune_s2g


def load_translation_run(run_dir: str | os.PathLike) -> TrainedTranslation:
    """The best checkpoint of a G2T/S2T run with its tokenizer and generation settings."""
    return TranslationRun.open(run_dir).load()


# --- either --------------------------------------------------------------------------


def open_run(run_dir: str | os.PathLike) -> S2GRun | TranslationRun:
    """A G2T/S2T run (model.json) or an S2G run (input_spec.json), whichever `run_dir` is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SltError(f"{run_dir}: no run folder there; give a G2T, S2T or S2G run_dir")
    if (run_dir / MODEL_FILE).is_file():
        return TranslationRun.open(run_dir)
    if (run_dir / INPUT_SPEC_FILE).is_file():
        return S2GRun.open(run_dir)
    raise SltError(
        f"{run_dir}: neither a translation run ({MODEL_FILE}) nor an S2G run "
        f"({INPUT_SPEC_FILE}); train one first: `slt train g2t|s2t|s2g CONFIG`"
    )
