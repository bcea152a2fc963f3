"""Checkpoint averaging: the element-wise mean of the best checkpoints' weights.

Averaging the weights of the last few good epochs (Vaswani et al. 2017; fairseq's
`average_checkpoints.py`) gives a model that usually scores better than any one of
them, at no training cost. `average_weights` reads each checkpoint's safetensors
file (no unpickling) and averages every floating-point tensor; integer buffers are
taken from the first checkpoint. `write_weights_checkpoint` stores the result as a
weights-only checkpoint folder that `read_weights` and `load_state` read like any
other (the trainer points `checkpoints/best.json` at it when it wins on dev).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from slt_serve.errors import SltError
from slt_training.runs import WEIGHTS_FILE, checkpoint_dir, read_weights

AVERAGED = "averaged"  # the checkpoint folder the trainer writes the average into


def average_weights(checkpoints: Sequence[str | os.PathLike]) -> dict[str, Tensor]:
    """The mean of the checkpoints' weights; they must hold the same tensors."""
    if not checkpoints:
        raise SltError("no checkpoints to average")
    first = read_weights(checkpoints[0])
    sums = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    for folder in checkpoints[1:]:
        state = read_weights(folder)
        if state.keys() != sums.keys():
            raise SltError(
                f"{folder}: its tensors differ from {checkpoints[0]}'s; "
                "only checkpoints of one run can be averaged"
            )
        for k, v in state.items():
            if v.is_floating_point():
                sums[k] += v.double()
    n = len(checkpoints)
    return {k: (v / n).to(first[k].dtype) if v.is_floating_point() else v for k, v in sums.items()}


def write_weights_checkpoint(
    run_dir: str | os.PathLike, tag: str, state: dict[str, Tensor]
) -> Path:
    """`state` as checkpoints/<tag>/model.safetensors (temporary file, then renamed)."""
    from safetensors.torch import save_file

    folder = checkpoint_dir(run_dir, tag)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, folder / WEIGHTS_FILE)
    return folder
