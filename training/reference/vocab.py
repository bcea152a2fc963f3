"""The reference's gloss tables (`gloss2ids.pkl`, `gloss2ids_old.pkl`) as our vocabulary.

The reference's S2G classifier has its CTC blank at 0 (`<si>` or `<s>`) and `<pad>`,
`<unk>` wherever its table puts them; ours has `<blank>, <pad>, <unk>` at 0-2. The
import keeps every class (so the log-softmax is unchanged) and permutes the rows:
`order[i]` is the reference id of our id `i`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from slt_serve.errors import SltError
from slt_serve.vocab import SPECIALS, GlossVocab
from slt_training.data.slrt_pickle import load_slrt_dict

REFERENCE_BLANKS = ("<si>", "<s>")  # the reference's silence token, always id 0


def read_gloss_table(path: str | os.PathLike) -> tuple[str, ...]:
    """Glosses in id order from a reference `gloss2ids.pkl` (restricted unpickler) or a
    JSON list / object of gloss → id."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SltError(f"{path}: not a readable JSON gloss table ({e})") from None
    else:
        table = load_slrt_dict(path, "gloss table (gloss2ids.pkl)")
    if isinstance(table, list):
        table = {g: i for i, g in enumerate(table)}
    if not isinstance(table, dict) or not all(
        isinstance(g, str) and isinstance(i, int) for g, i in table.items()
    ):
        raise SltError(f"{path}: expected gloss → integer id")
    by_id = sorted(table.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise SltError(f"{path}: gloss ids must be 0..{len(by_id) - 1} with no gaps or repeats")
    return tuple(g for g, _ in by_id)


@dataclass(frozen=True)
class ImportedVocab:
    """Our vocabulary for a reference gloss table, and the row order that maps onto it."""

    vocab: GlossVocab
    order: tuple[int, ...]  # order[our id] = reference id

    def reference_ids(self, ours: list[int]) -> list[int]:
        return [self.order[i] for i in ours]


def s2g_vocab(glosses: tuple[str, ...], source: str | os.PathLike) -> ImportedVocab:
    """`<blank>, <pad>, <unk>` from the reference's blank (id 0), `<pad>` and `<unk>`,
    then every other class in the reference's order (its `</s>` etc. kept as glosses)."""
    if not glosses or glosses[0] not in REFERENCE_BLANKS:
        raise SltError(f"{source}: id 0 must be the reference's blank {REFERENCE_BLANKS}")
    missing = [t for t in ("<pad>", "<unk>") if t not in glosses]
    if missing:
        raise SltError(f"{source}: the gloss table has no {missing}")
    specials = (0, glosses.index("<pad>"), glosses.index("<unk>"))
    order = specials + tuple(i for i in range(len(glosses)) if i not in specials)
    return ImportedVocab(GlossVocab(SPECIALS + tuple(glosses[i] for i in order[3:])), order)


def check_size(vocab_size: int, rows: int, vocab_file: str | os.PathLike, checkpoint: str) -> None:
    """Refuse a gloss table whose size is not the checkpoint's number of gloss classes
    (the reference silently skips such weights and then scores near zero)."""
    if vocab_size != rows:
        raise SltError(
            f"{vocab_file}: {vocab_size} glosses, but {checkpoint} has {rows} gloss classes "
            f"({vocab_size} vs {rows}); give the gloss2ids file the model was trained with "
            "(SingleStream: gloss2ids_old.pkl, TwoStream: gloss2ids.pkl)"
        )
