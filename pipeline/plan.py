"""The pipeline YAML → a `Plan`: the stage configs it runs, every one validated up front.

A stage section is inline (in the shape of `slt train STAGE`'s config) or the path of a
stage config file; the shared `data` section goes under each stage, and the pipeline
sets `run_dir` and the paths that link the stages (`s2g_run`, `g2t_run`). `overrides:`
in the file and `--override` on the command line reach into a stage with its name first
(`s2g.training.lr=1e-4`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_training.config import (
    DataConfig,
    G2TConfig,
    S2GConfig,
    S2TConfig,
    Section,
    TextDataConfig,
    apply_override,
    load_config,
    validate_config,
)

PLAN_FILE = "pipeline.yaml"  # in RUN_DIR: the resolved stage configs, for reading what ran
BUNDLE_DIR = "bundle"  # in RUN_DIR: the exported bundle
TRAINED_STAGES = ("s2g", "g2t", "s2t")  # the sections that are stage configs


class PrepareConfig(Section):
    """The data steps the pipeline runs itself (both are no-ops once done)."""

    vocab: bool = True  # build gloss_vocab.json from the train split when it is missing
    frames: bool = True  # cache frames at data.frame_size (resumable; `slt data frames`)
    workers: int | None = Field(None, ge=1)  # clips encoded in parallel; None: CPU cores


class ExportConfig(Section):
    """The bundle the S2T run becomes (`slt export model`)."""

    enabled: bool = True
    quantize: Literal["int8", "int8-text"] | None = None  # `slt export model --quantize`
    pose: Path | None = None  # two_stream: pose.onnx (`slt export pose`) the bundle carries
    name: str | None = None  # the model's name in the bundle and every answer; None: run_dir's


class EvaluateConfig(Section):
    """The final table: the stages' own scores, and the exported bundle on real videos."""

    bundle: bool = True  # also translate the dev/test videos with the bundle (onnxruntime)
    max_clips: int | None = Field(None, ge=1)  # bundle scoring: at most this many clips a split


class PipelineConfig(Section):
    """The whole experiment; stage sections are validated by their own schemas."""

    stage: Literal["pipeline"] = "pipeline"
    run_dir: Path
    data: dict[str, Any]  # S2G data keys (root, frame_size, ...) and text keys (lang, ...)
    prepare: PrepareConfig = PrepareConfig()
    # A stage section is inline (model, training, ... as in `slt train STAGE`), or the path
    # of a stage config file whose run_dir and stage-linking paths the pipeline replaces.
    s2g: dict[str, Any] | Path = {}  # model, training, augmentation
    features: dict[str, Any] = {}  # splits: "train,dev,test"
    g2t: dict[str, Any] | Path | None = {}  # tokenizer, model, generation, training; null: none
    s2t: dict[str, Any] | Path = {}  # finetune_s2g, ctc_weight, generation, training, ...
    export: ExportConfig = ExportConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # `key=value` lines as --override takes them, applied before the command line's: how a
    # recipe changes a few keys of a stage file it names (e.g. s2g.training.max_steps=1800)
    overrides: list[str] = []


@dataclass(frozen=True)
class Plan:
    """The pipeline config resolved into the stage configs it runs."""

    config: PipelineConfig
    source: Path
    s2g: S2GConfig
    g2t: G2TConfig | None
    s2t: S2TConfig
    feature_splits: str

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def name(self) -> str:
        """The model's name in its bundle and in every served answer."""
        return self.config.export.name or self.run_dir.name

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / BUNDLE_DIR


def load_plan(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Plan:
    """Read and check a pipeline YAML: every stage's config is validated here, up front."""
    path = Path(path)
    overrides = [*_file_overrides(path), *overrides]
    # `s2g.training.lr=…` reaches into a stage section, inline or a file: applied per stage
    by_stage: dict[str, list[str]] = {name: [] for name in TRAINED_STAGES}
    rest = []
    for item in overrides:
        head = item.split(".", 1)[0]
        (by_stage[head] if head in by_stage and "." in item.partition("=")[0] else rest).append(
            item
        )
    cfg = load_config(path, PipelineConfig, rest)
    run_dir = Path(cfg.run_dir)
    s2g_data, text_data = _split_data(cfg.data, path)
    s2g = _stage_config(
        cfg.s2g, S2GConfig, s2g_data, {"run_dir": run_dir / "s2g"}, path, by_stage["s2g"]
    )
    g2t = None
    if cfg.g2t is not None:
        g2t = _stage_config(
            cfg.g2t, G2TConfig, text_data, {"run_dir": run_dir / "g2t"}, path, by_stage["g2t"]
        )
    links = {
        "run_dir": run_dir / "s2t",
        "s2g_run": run_dir / "s2g",
        "g2t_run": None if g2t is None else run_dir / "g2t",
    }
    s2t = _stage_config(cfg.s2t, S2TConfig, text_data, links, path, by_stage["s2t"])
    unknown = set(cfg.features) - {"splits"}
    if unknown:
        raise SltError(f"{path}: unknown key 'features.{sorted(unknown)[0]}'; valid keys: splits")
    splits = str(cfg.features.get("splits", "train,dev,test"))
    return Plan(cfg, path, s2g, g2t, s2t, splits)


def _file_overrides(path: Path) -> list[str]:
    """The config file's own `overrides:` list (validated again with the whole file)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []  # load_config reports the unreadable file
    items = raw.get("overrides") if isinstance(raw, dict) else None
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise SltError(f"{path}: 'overrides' must be a list of key=value lines")
    return items


def _split_data(data: dict[str, Any], source: Path) -> tuple[dict, dict]:
    """The shared `data` section → the S2G stage's keys and the text stages' keys."""
    video_keys, text_keys = set(DataConfig.model_fields), set(TextDataConfig.model_fields)
    for key in data:
        if key not in video_keys | text_keys:
            valid = ", ".join(sorted(video_keys | text_keys))
            raise SltError(f"{source}: unknown key 'data.{key}'; valid keys here: {valid}")
    if "root" not in data:
        raise SltError(f"{source}: missing key 'data.root' (the dataset root with train.jsonl)")
    s2g = {k: v for k, v in data.items() if k in video_keys}
    text = {k: v for k, v in data.items() if k in text_keys}
    return s2g, text


LINKS = ("run_dir", "s2g_run", "g2t_run")  # set by the pipeline: where each stage runs


def _stage_config(
    section: dict[str, Any] | Path,
    schema: type[Section],
    shared_data: dict[str, Any],
    links: dict[str, Path | None],
    source: Path,
    overrides: list[str] = (),
):
    """One stage's config: the section (inline, or a stage YAML file) with the shared data
    section under it and the pipeline's run folders in place of the file's own."""
    name = schema.model_fields["stage"].default
    if isinstance(section, Path):
        file = section
        if not file.is_file():
            raise SltError(f"{source}: '{name}: {file}' names no file (paths are relative to CWD)")
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or raw.get("stage", name) != name:
            raise SltError(f"{file}: not a {name} config (section {name} of {source})")
        raw = {k: v for k, v in raw.items() if k not in (*LINKS, "stage")}
        label = f"{file} (section {name} of {source})"
        data = (raw.get("data") or {}) | shared_data  # the pipeline's data section wins
    else:
        for key in (*LINKS, "stage"):
            if key in section:
                raise SltError(
                    f"{source}: '{name}.{key}' is set by the pipeline (stages run in "
                    f"run_dir/{name}); remove it"
                )
        raw, label = dict(section), f"{source} (section {name})"
        data = shared_data | (section.get("data") or {})
    fields = schema.model_fields
    raw |= {k: None if v is None else str(v) for k, v in links.items() if k in fields}
    raw["data"] = data
    for item in overrides:  # `s2g.model.width=0.5` → `model.width=0.5` in this stage
        apply_override(raw, item.split(".", 1)[1], source)
    return validate_config(raw, schema, label)


def save_plan(plan: Plan) -> Path:
    """The resolved stage configs, for reading what exactly ran."""
    path = plan.run_dir / PLAN_FILE
    with atomic_write(path) as f:
        resolved = {
            "source": str(plan.source),
            "s2g": plan.s2g.model_dump(mode="json"),
            "g2t": None if plan.g2t is None else plan.g2t.model_dump(mode="json"),
            "s2t": plan.s2t.model_dump(mode="json"),
            "export": plan.config.export.model_dump(mode="json"),
        }
        yaml.safe_dump(resolved, f, sort_keys=False, allow_unicode=True)
    return path
