"""`pipeline.json` and the decisions it drives: what each stage ran on, skip, resume or stale.

A stage's inputs are one hash (`combine`) of what it reads: its config's hash, the
dataset's annotation files (`annotations_digest`), the best weights of the runs it
starts from (`best_weights_digest`). `next_action` compares them with `pipeline.json`:

- skip: the stage finished on the same inputs (and its folder is there);
- resume: its folder holds an interrupted run of the same config, never recorded finished;
- stale: its folder was made from other inputs: moved aside as `<stage>.stale-N`, then run;
- run: nothing there yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from slt_serve.errors import SltError
from slt_serve.fileio import files_sha256, write_json
from slt_training.config import Section, config_hash
from slt_training.runs import BEST, CONFIG_FILE, LATEST, checkpoint_pointer, weights_sha256

STATE_FILE = "pipeline.json"
ANNOTATION_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl", "gloss_vocab.json")

Action = Literal["skip", "resume", "stale", "run"]


# --- hashes: what a stage ran on ------------------------------------------------------


def combine(*parts: str) -> str:
    """One sha256 over several hashes and settings (in order)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def annotations_digest(root: Path) -> str:
    """The dataset's annotations and gloss vocabulary: what every stage reads."""
    return files_sha256(*(Path(root) / n for n in ANNOTATION_FILES))


def best_weights_digest(run_dir: Path) -> str:
    """sha256 of a run's best checkpoint weights ('' when it has none)."""
    folder = checkpoint_pointer(run_dir, BEST)
    return "" if folder is None else weights_sha256(folder)


# --- the state file -------------------------------------------------------------------


@dataclass
class PipelineState:
    """`pipeline.json`: per stage, the inputs hash it finished with, when, and how long."""

    path: Path
    stages: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> PipelineState:
        path = run_dir / STATE_FILE
        if not path.is_file():
            return cls(path)
        try:
            return cls(path, json.loads(path.read_text(encoding="utf-8"))["stages"])
        except (ValueError, KeyError) as e:
            raise SltError(f"{path}: unreadable ({e}); delete it to re-check every stage") from None

    def finished(self, stage: str, inputs: str) -> bool:
        record = self.stages.get(stage)
        return record is not None and record.get("inputs") == inputs

    def record(self, stage: str, inputs: str, seconds: float, **extra: Any) -> None:
        self.stages[stage] = {
            "inputs": inputs,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(seconds, 1),
            **extra,
        }
        write_json(self.path, {"stages": self.stages})

    def forget(self, *stages: str) -> None:
        for stage in stages:
            self.stages.pop(stage, None)
        write_json(self.path, {"stages": self.stages})


# --- decisions ------------------------------------------------------------------------


def next_action(
    state: PipelineState, stage: str, inputs: str, folder: Path | None, cfg: Section | None
) -> Action:
    """What to do with a stage (see the module docstring). `folder` None: the stage rewrites
    its output whole (features, export), so there is nothing to resume or move aside."""
    if state.finished(stage, inputs) and (folder is None or folder.exists()):
        return "skip"
    if folder is None or not folder.exists():
        return "run"
    if stage not in state.stages and resumable(folder, cfg):
        return "resume"
    return "stale"


def resumable(folder: Path, cfg: Section | None) -> bool:
    """An interrupted training stage: a checkpoint to resume, made with the same config."""
    if cfg is None or checkpoint_pointer(folder, LATEST) is None:
        return False
    try:
        saved = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return config_hash(type(cfg).model_validate(saved)) == config_hash(cfg)
    except (OSError, ValueError, yaml.YAMLError):
        return False


def move_aside(folder: Path) -> Path:
    """Rename `folder` to the first free `<name>.stale-N` beside it."""
    n = 1
    while folder.with_name(f"{folder.name}.stale-{n}").exists():
        n += 1
    target = folder.with_name(f"{folder.name}.stale-{n}")
    os.replace(folder, target)
    return target
