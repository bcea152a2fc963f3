"""Features stage: the best S2G checkpoint writes per-clip visual features for translation.

For each split, a folder `FEATURES/<split>/` with

    features.npy    float32 (total steps, hidden)  the 512-d `gloss_features` of every clip, end to end
    log_probs.npy   float32 (total steps, V)       gloss log-probabilities of the same steps
    index.json      per clip: name, offset, length (steps), gloss, text; the checkpoint's sha256

The `.npy` files are memory-mapped by the reader (`FeatureSplit`), so the translation
stage never loads a whole split. `index.json` is written last: a split without it is
incomplete. The checkpoint hash lets S2T refuse features made by another checkpoint
(`FeatureSplit.open(..., checkpoint_sha256=...)`).

Clips are run one at a time by default: the S3D stack is not masked, so a clip padded
into a batch gives slightly different features than alone.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from slt_serve.errors import SltError
from slt_serve.fileio import write_json
from slt_training.config import S2GConfig
from slt_training.data.annotations import parse_splits, split_path
from slt_training.data.s2g_data import SignClips, collate, frame_indices, load_vocab
from slt_training.models.s3d import output_length
from slt_training.runs import FEATURES_DIR, S2GRun
from slt_training.stages.s2g import run_model

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
FORMAT = "slt-features/1"


@dataclass(frozen=True)
class FeaturesReport:
    """What `extract` wrote."""

    out_dir: Path
    checkpoint: Path
    checkpoint_sha256: str
    clips: dict[str, int]  # split → clips written
    steps: dict[str, int]  # split → feature steps written


def extract(
    cfg: S2GConfig,
    splits: str = "train,dev,test",
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 1,
    device: str | None = None,
) -> FeaturesReport:
    """Run the best S2G checkpoint over `splits` and write their features (see module doc)."""
    run = S2GRun.of(cfg)
    checkpoint = run.best_checkpoint()
    split_list = [s for s in parse_splits(splits) if split_path(cfg.data.root, s).is_file()]
    if not split_list:
        raise SltError(f"{cfg.data.root}: none of the splits {splits!r} exist")
    out = Path(out_dir) if out_dir else run.run_dir / FEATURES_DIR
    vocab = load_vocab(cfg.data.root)
    model = run.load_recognizer()
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    digest = run.weights_sha256()
    options = run.clip_options()
    clips, steps = {}, {}
    for split in split_list:
        dataset = SignClips(cfg.data.root, split, vocab, options)
        index = write_split(model, dataset, out / split, batch_size, digest, checkpoint)
        clips[split], steps[split] = len(index), sum(c["length"] for c in index)
        log.info("%s: %d clips, %d steps → %s", split, clips[split], steps[split], out / split)
    return FeaturesReport(out, checkpoint, digest, clips, steps)


def write_split(model, dataset: SignClips, folder: Path, batch_size: int, digest: str, checkpoint):
    """Features and log-probs of every clip of `dataset` into `folder`; returns the index."""
    lengths = [planned_steps(dataset, i) for i in range(len(dataset))]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX_FILE).unlink(missing_ok=True)  # incomplete until the new index is written
    hidden = _hidden_size(model)
    feats = _open_temp(folder / "features.npy", (int(offsets[-1]), hidden))
    probs = _open_temp(folder / "log_probs.npy", (int(offsets[-1]), model.vocab_size))
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    row = 0
    with torch.no_grad():
        for batch in loader:
            out = run_model(model, batch.to(device), targets=False)
            for b, n in enumerate(out.output_lengths.tolist()):
                if n != lengths[row]:
                    raise SltError(f"{dataset.clips[row].name}: {n} steps, expected {lengths[row]}")
                lo = offsets[row]
                feats[lo : lo + n] = out.gloss_features[b, :n].float().cpu().numpy()
                probs[lo : lo + n] = out.gloss_log_probs[b, :n].float().cpu().numpy()
                row += 1
    for array, name in ((feats, "features.npy"), (probs, "log_probs.npy")):
        array.flush()
        os.replace(array.filename, folder / name)
    index = [
        {
            "name": c.name,
            "offset": int(offsets[i]),
            "length": int(lengths[i]),
            "gloss": c.gloss,
            "text": c.text,
        }
        for i, c in enumerate(dataset.clips)
    ]
    write_json(
        folder / INDEX_FILE,
        {
            "format": FORMAT,
            "split": dataset.split,
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": digest,
            "feature_size": hidden,
            "vocab_size": model.vocab_size,
            "clips": index,
        },
    )
    return index


def planned_steps(dataset: SignClips, index: int) -> int:
    """Feature steps the eval view of clip `index` gives (frames after resampling, /4)."""
    frames = frame_indices(
        dataset.num_frames(index), np.random.default_rng(0), None, dataset.options
    )
    return output_length(len(frames))


def _hidden_size(model) -> int:
    head = model.head if hasattr(model, "head") else model.heads["joint"]
    return head.options.hidden_size


def _open_temp(path: Path, shape: tuple[int, int]) -> np.memmap:
    tmp = path.with_name(f".{path.name}.tmp")
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)


@dataclass(frozen=True)
class FeatureSplit:
    """A written split, memory-mapped: `split.clip(name)` → (features, log_probs)."""

    folder: Path
    index: dict
    features: np.ndarray  # (total steps, hidden), memory-mapped
    log_probs: np.ndarray  # (total steps, V), memory-mapped

    @classmethod
    def open(cls, folder: str | os.PathLike, checkpoint_sha256: str | None = None) -> FeatureSplit:
        folder = Path(folder)
        path = folder / INDEX_FILE
        if not path.is_file():
            raise SltError(f"{folder}: no complete features; run `slt features CONFIG`")
        index = json.loads(path.read_text(encoding="utf-8"))
        if index.get("format") != FORMAT:
            raise SltError(f"{folder}: features format {index.get('format')!r}, expected {FORMAT}")
        if checkpoint_sha256 and index["checkpoint_sha256"] != checkpoint_sha256:
            raise SltError(
                f"{folder}: features were made by another S2G checkpoint "
                f"({index['checkpoint']}); rerun `slt features CONFIG`"
            )
        load = lambda name: np.load(folder / name, mmap_mode="r", allow_pickle=False)  # noqa: E731
        return cls(folder, index, load("features.npy"), load("log_probs.npy"))

    def names(self) -> list[str]:
        return [c["name"] for c in self.index["clips"]]

    def clip(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        entry = self._by_name().get(name)
        if entry is None:
            raise SltError(f"{self.folder}: no clip {name!r}")
        lo, n = entry["offset"], entry["length"]
        return self.features[lo : lo + n], self.log_probs[lo : lo + n]

    def _by_name(self) -> dict[str, dict]:
        cache = self.__dict__.get("_names")
        if cache is None:
            cache = {c["name"]: c for c in self.index["clips"]}
            object.__setattr__(self, "_names", cache)
        return cache
