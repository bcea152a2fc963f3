"""The annotation schema: JSONL, one clip a line, validated on read.

A dataset root holds one file per split (`train.jsonl`, `dev.jsonl`,
`test.jsonl`) whose `video` paths are relative to the root:

    DATASET/
      train.jsonl  dev.jsonl  test.jsonl
      videos/…                 (or folders of frames)
      gloss_vocab.json         (slt data vocab)
      frames/…                 (slt data frames)
      keypoints/…              (slt data keypoints / slt data synth)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

SPLITS = ("train", "dev", "test")


class Clip(BaseModel):
    """One annotated clip. Fields beyond the schema (e.g. `gloss_times`) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)  # unique within a dataset; may contain "/"
    signer: str = ""  # signer id; splits by signer keep test signers unseen
    gloss: str = ""  # space-separated gloss sequence ("" until derived)
    text: str = ""  # the spoken-language translation
    num_frames: int | None = Field(default=None, ge=0)  # frames in the source video
    video: str | None = None  # video file or folder of frames, relative to the dataset root

    @field_validator("signer", mode="before")
    @classmethod
    def _signer_as_text(cls, v: object) -> object:
        # CSL-Daily numbers its signers; ids are labels, not quantities
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("gloss")
    @classmethod
    def _single_spaced(cls, v: str) -> str:
        return " ".join(v.split())

    @property
    def glosses(self) -> list[str]:
        return self.gloss.split()


def _field_errors(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(line)"
        parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)


def read_jsonl(path: str | os.PathLike) -> list[Clip]:
    """Read and validate an annotation file; a bad line is named by file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise SltError(f"{path}: annotation file not found")
    clips: list[Clip] = []
    names: dict[str, int] = {}
    for lineno, obj in json_lines(path):
        if not isinstance(obj, dict):
            raise SltError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        try:
            clip = Clip.model_validate(obj)
        except ValidationError as e:
            raise SltError(f"{path}:{lineno}: {_field_errors(e)}") from None
        if clip.name in names:
            raise SltError(
                f"{path}:{lineno}: clip name '{clip.name}' already used on line {names[clip.name]}"
            )
        names[clip.name] = lineno
        clips.append(clip)
    return clips


class JsonLineError(SltError):
    """A line of a JSONL file that is not JSON; `lineno` counts from 1."""

    def __init__(self, path: Path, lineno: int, msg: str):
        super().__init__(f"{path}:{lineno}: not valid JSON ({msg})")
        self.lineno = lineno


def json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line number from 1, parsed value) for each non-blank line of a JSONL file, read as
    it goes; a line that is not JSON raises `JsonLineError`."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise JsonLineError(path, lineno, e.msg) from None


def write_jsonl(path: str | os.PathLike, clips: Iterable[Clip]) -> None:
    """Write clips atomically, one JSON object a line, non-ASCII kept readable."""
    with atomic_write(path) as f:
        for clip in clips:
            f.write(json.dumps(clip.model_dump(exclude_none=True), ensure_ascii=False) + "\n")


def split_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"{split}.jsonl"


def available_splits(root: str | os.PathLike) -> list[str]:
    """The standard splits that have an annotation file under `root`, in train/dev/test order."""
    return [s for s in SPLITS if split_path(root, s).is_file()]


def load_split(root: str | os.PathLike, split: str) -> list[Clip]:
    path = split_path(root, split)
    if not path.is_file():
        have = available_splits(root)
        raise SltError(
            f"{root}: no '{split}' split ({path.name} missing; found: {', '.join(have) or 'none'}). "
            "Import annotations with `slt data import-…` or generate a corpus with `slt data synth`."
        )
    return read_jsonl(path)


def parse_splits(spec: str, root: str | os.PathLike | None = None) -> list[str]:
    """'train,dev' → ['train', 'dev']; 'all' → every split present under `root`."""
    if spec == "all":
        if root is None:
            return list(SPLITS)
        return available_splits(root)
    splits = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise SltError(
            f"unknown split(s) {bad or spec!r}: choose from {', '.join(SPLITS)} or 'all'"
        )
    return splits
