"""The reference kit (../shared/data/reference-slrt/): weights from its seed procedure,
written as the reference's `training.py:save_model` writes a checkpoint.

Only the kit's README §2-§3 is followed here; nothing is fitted to its stored outputs,
so the same code checks another seed's kit.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

KIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-slrt"


def kit_dir(name: str = "") -> Path:
    """A folder of the kit; the test is skipped where the kit is absent."""
    path = KIT / name
    if not path.exists():
        pytest.skip(f"reference kit not found at {path}")
    return path


def manifest(golden: str) -> dict:
    return json.loads((kit_dir(golden) / "manifest.json").read_text())


def golden(golden: str) -> dict:
    return json.loads((kit_dir(golden) / "golden.json").read_text())


def _positional_table(shape: tuple[int, ...]):
    import torch

    _, length, size = shape
    position = torch.arange(0, length).unsqueeze(1)
    div = torch.exp(torch.arange(0, size, 2, dtype=torch.float) * -(math.log(10000.0) / size))
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position.float() * div)
    table[:, 1::2] = torch.cos(position.float() * div)
    return table.unsqueeze(0).numpy()


def _array(key: str, entry: dict, seed: int, done: dict) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    shape, rule = tuple(entry["shape"]), entry["rule"]
    if rule == "fan_in":
        value = rng.standard_normal(shape) * math.sqrt(1.0 / entry["fan_in"])
    elif rule == "normal_0.02":
        value = 0.02 * rng.standard_normal(shape)
    elif rule == "norm_weight":
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif rule in ("norm_bias", "running_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif rule == "running_var":
        value = rng.uniform(0.5, 1.5, shape)
    elif rule == "zero_int64":
        return np.zeros(shape, np.int64)
    elif rule == "tied":
        return done[entry["tied_to"]]
    elif rule == "module_value":
        return _positional_table(shape)
    else:
        raise ValueError(f"unknown rule {rule} for {key}")
    return value.astype(np.float32)


def procedure_state(golden_name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Every key of the golden's manifest with the array of the kit's §2 procedure."""
    entries = manifest(golden_name)
    state: dict[str, np.ndarray] = {}
    for key in sorted(entries, key=lambda k: entries[k]["rule"] == "tied"):
        state[key] = _array(key, entries[key], seed, state)
    return {key: state[key] for key in entries}


def state_digest(state: dict[str, np.ndarray]) -> str:
    """The kit's digest: sha256 over sorted keys of key, dtype, shape, raw bytes."""
    h = hashlib.sha256()
    for key in sorted(state):
        a = np.ascontiguousarray(state[key])
        h.update(key.encode("utf-8"))
        h.update(str(a.dtype).encode())
        h.update(str(list(a.shape)).encode())
        h.update(a.astype(a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def write_reference_checkpoint(path: Path, state: dict[str, np.ndarray], s2g: bool) -> Path:
    """`state` as the reference's save_model writes it (numpy.float64 scores for S2G)."""
    import torch

    tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
    tied = [k for k in tensors if k.endswith(("embed_tokens.weight", "lm_head.weight"))]
    shared = [k for k in tensors if k.endswith("model.shared.weight")]
    for key in tied if shared else []:
        tensors[key] = tensors[shared[0]]  # one storage, as in a real file
    model_state = collections.OrderedDict(tensors)
    model_state._metadata = collections.OrderedDict()  # as nn.Module.state_dict() attaches
    score = np.float64(23.5) if s2g else 12.25
    checkpoint = {
        "epoch": 3 if s2g else None,
        "global_step": 1200,
        "model_state": model_state,
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        "scheduler_state": {"T_max": 40, "last_epoch": 3, "base_lrs": [1e-3]},
        "best_score": score,
        "current_score": score,
    }
    torch.save(checkpoint, path, pickle_protocol=2)
    return path


def import_dataset(root: Path) -> Path:
    """A dataset folder with the splits `slt import slrt` needs (its clip is never read)."""
    from slt_training.data.annotations import Clip, split_path, write_jsonl

    clip = Clip(name="dev/c1", signer="s", gloss="REGEN", text="regen .", num_frames=48)
    for split in ("train", "dev"):
        write_jsonl(split_path(root, split), [clip])
    return root
