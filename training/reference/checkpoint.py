"""Reading a checkpoint written by the reference's `training.py:save_model`, safely.

The file is `torch.save({epoch, global_step, model_state, optimizer_state,
scheduler_state, best_score, current_score})`. S2G checkpoints hold their scores as
`numpy.float64` (the reference's WER sums numpy integers), which `weights_only=True`
refuses; we allow exactly the numpy globals such a scalar needs (numpy 2's names and
numpy 1's `numpy.core.multiarray.scalar`, which the reference's pinned numpy 1.18
writes) and nothing else. `weights_only=False` is never used.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from slt_serve.errors import SltError

KINDS = ("s2g_single", "s2g_two", "g2t", "s2t")


def numpy_score_globals() -> list:
    """The allow-list for numpy.float64 scores: the scalar constructor under both names,
    and the dtype classes it is rebuilt with."""
    from numpy._core import multiarray

    return [
        multiarray.scalar,
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        np.dtypes.Float64DType,
    ]


@dataclass(frozen=True)
class ReferenceCheckpoint:
    """A reference checkpoint's weights and bookkeeping."""

    path: str
    kind: str  # one of KINDS, from the keys present
    state: dict[str, Tensor]  # `model_state`, keys as the reference names them
    epoch: int | None
    global_step: int | None
    best_score: float | None  # dev WER (S2G) or BLEU-4 (G2T/S2T) as the reference recorded


def detect_kind(state: dict[str, Tensor], path: str | os.PathLike) -> str:
    """Which reference network wrote `state`, from its key prefixes."""
    keys = list(state)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("recognition_network.visual_backbone_twostream."):
        return "s2g_two"
    if has("recognition_network.visual_backbone."):
        return "s2g_single"
    if has("translation_network.") and has("vl_mapper."):
        return "s2t"
    if has("translation_network.gloss_embedding."):
        return "g2t"
    raise SltError(
        f"{path}: not a TwoStream-SLT checkpoint this version imports (first keys: "
        f"{', '.join(keys[:3])}); expected S2G (SingleStream/TwoStream), G2T or S2T model_state"
    )


def _score(value) -> float | None:
    return None if value is None else float(value)


def read_checkpoint(path: str | os.PathLike) -> ReferenceCheckpoint:
    """Load `path` with `weights_only=True` and the numpy-score allow-list only."""
    path = Path(path)
    if not path.is_file():
        raise SltError(f"{path}: no checkpoint there; give a .ckpt written by the reference")
    try:
        with torch.serialization.safe_globals(numpy_score_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SltError(f"{path}: cannot read it as a reference checkpoint ({first})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_state"), dict):
        raise SltError(f"{path}: no model_state in it; is it a reference training checkpoint?")
    state = {
        k.removeprefix("module."): v
        for k, v in data["model_state"].items()
        if isinstance(v, Tensor)
    }
    return ReferenceCheckpoint(
        str(path),
        detect_kind(state, path),
        state,
        data.get("epoch"),
        data.get("global_step"),
        _score(data.get("best_score")),
    )
