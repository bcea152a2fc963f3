"""The gloss ↔ id table (`gloss_vocab.json`), shared by training and serving.

On disk it is a JSON object mapping each gloss to its id, written in id order:
`{"<blank>": 0, "<pad>": 1, "<unk>": 2, "GLOSS": 3, ...}`. The CTC blank is id 0,
as CTC losses and the reference code expect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slt_serve.errors import SltError
from slt_serve.fileio import write_json

BLANK = "<blank>"
PAD = "<pad>"
UNK = "<unk>"
SPECIALS = (BLANK, PAD, UNK)  # ids 0, 1, 2 in that order


@dataclass(frozen=True)
class GlossVocab:
    """An immutable gloss table; `glosses[i]` is the gloss with id `i`."""

    glosses: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.glosses[: len(SPECIALS)]) != SPECIALS:
            raise SltError(f"gloss vocabulary must start with {list(SPECIALS)} as ids 0, 1, 2")
        ids = {g: i for i, g in enumerate(self.glosses)}
        if len(ids) != len(self.glosses):
            raise SltError("gloss vocabulary has a gloss twice")
        object.__setattr__(self, "_ids", ids)

    @classmethod
    def from_glosses(cls, glosses: Iterable[str]) -> GlossVocab:
        """Specials first, then `glosses` in the order given (duplicates and specials dropped)."""
        seen = dict.fromkeys(g for g in glosses if g not in SPECIALS)
        return cls(SPECIALS + tuple(seen))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GlossVocab:
        path = Path(path)
        if not path.is_file():
            raise SltError(f"{path}: no gloss vocabulary there; run `slt data vocab DATASET` first")
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SltError(f"{path}: not a JSON gloss vocabulary ({e})") from None
        if not isinstance(table, dict) or not all(isinstance(v, int) for v in table.values()):
            raise SltError(f"{path}: expected a JSON object of gloss → integer id")
        by_id = sorted(table.items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise SltError(f"{path}: ids must be 0..{len(by_id) - 1} with no gaps or repeats")
        return cls(tuple(g for g, _ in by_id))

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {g: i for i, g in enumerate(self.glosses)})

    def __len__(self) -> int:
        return len(self.glosses)

    def __contains__(self, gloss: str) -> bool:
        return gloss in self._ids

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def pad_id(self) -> int:
        return 1

    @property
    def unk_id(self) -> int:
        return 2

    def encode(self, glosses: Sequence[str]) -> list[int]:
        """Gloss strings to ids; unknown glosses become `<unk>`."""
        return [self._ids.get(g, self.unk_id) for g in glosses]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids to gloss strings, dropping blank and padding."""
        return [self.glosses[i] for i in ids if i not in (self.blank_id, self.pad_id)]
