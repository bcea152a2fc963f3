"""Translation data: gloss → text pairs (G2T) and features → text pairs (S2T), batched.

Examples are tokenised once, up front (a corpus of 10⁴ short sentences takes well
under a second); batches pad to their longest member. `token_batches` groups
examples of similar length under a token budget, as translation toolkits do, so a
batch of short sentences holds more of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip
from slt_training.models.translation import IGNORE_INDEX
from slt_training.text.tokenizer import TextTokenizer


@dataclass(frozen=True)
class TextExample:
    """One tokenised clip: source ids (G2T) or a feature array (S2T), and target ids."""

    name: str  # clip name
    target: list[int]  # `tokens </s>`
    text: str  # the reference text, for scoring
    source: list[int] | None = None  # G2T: `glosses </s> LANG`
    features: np.ndarray | None = None  # S2T: (T, D) float32

    @property
    def source_len(self) -> int:
        return len(self.source) if self.source is not None else len(self.features)


@dataclass(frozen=True)
class TextBatch:
    """Padded tensors for `TranslationModel` (keyword names match its arguments)."""

    names: list[str]
    texts: list[str]  # reference texts
    attention_mask: Tensor  # (B, S) 1 on real source positions
    labels: Tensor  # (B, L) target ids, IGNORE_INDEX on padding
    input_ids: Tensor | None = None  # (B, S) G2T, pad id on padding
    features: Tensor | None = None  # (B, S, D) S2T, zeros on padding

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TextBatch:
        """The tensors on `device` (Accelerate's prepared loaders call this)."""
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return TextBatch(
            self.names,
            self.texts,
            move(self.attention_mask),
            move(self.labels),
            move(self.input_ids),
            move(self.features),
        )

    def model_inputs(self) -> dict[str, Tensor]:
        """The keyword arguments of `TranslationModel.forward` / `.generate` (minus labels)."""
        return {
            k: v
            for k, v in (
                ("attention_mask", self.attention_mask),
                ("input_ids", self.input_ids),
                ("features", self.features),
            )
            if v is not None
        }


class TranslationDataset(Dataset):
    """Clips with text, tokenised: G2T from their glosses, S2T from `load_features(name)`."""

    def __init__(
        self,
        clips: Sequence[Clip],
        tokenizer: TextTokenizer,
        load_features: Callable[[str], np.ndarray] | None = None,
    ):
        missing = [c.name for c in clips if not c.text.strip()]
        if missing:
            raise SltError(f"{len(missing)} clips have no text (first: {missing[0]})")
        if load_features is None:
            empty = [c.name for c in clips if not c.glosses]
            if empty:
                raise SltError(
                    f"{len(empty)} clips have no glosses (first: {empty[0]}); "
                    "derive them with `slt data gloss-from-text`"
                )
        self.examples = [_example(c, tokenizer, load_features) for c in clips]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> TextExample:
        return self.examples[i]


def concatenated_pairs(clips: Sequence[Clip], fraction: float, seed: int) -> list[Clip]:
    """Concatenation augmentation (Nguyen, Joshi & Chiang 2021, for low-resource NMT):
    `round(fraction × len(clips))` extra training clips, each two different random clips
    joined end to end, glosses after glosses and text after text (with a space). Drawn
    once from `seed`: every epoch, and a resumed run, sees the same pairs."""
    n = round(fraction * len(clips)) if len(clips) > 1 else 0
    rng = random.Random(seed)
    pairs = (rng.sample(range(len(clips)), 2) for _ in range(n))
    return [
        Clip(
            name=f"{clips[a].name}+{clips[b].name}",
            gloss=f"{clips[a].gloss} {clips[b].gloss}",
            text=f"{clips[a].text} {clips[b].text}",
        )
        for a, b in pairs
    ]


def _example(
    clip: Clip, tokenizer: TextTokenizer, load_features: Callable[[str], np.ndarray] | None
) -> TextExample:
    target = tokenizer.target_ids(clip.text)
    if load_features is None:
        return TextExample(clip.name, target, clip.text, source=tokenizer.source_ids(clip.glosses))
    feats = np.asarray(load_features(clip.name), dtype=np.float32)
    if feats.ndim != 2 or len(feats) == 0:
        raise SltError(f"features of {clip.name}: expected (T, D) with T > 0, got {feats.shape}")
    return TextExample(clip.name, target, clip.text, features=feats)


def collate(examples: Sequence[TextExample], pad_id: int) -> TextBatch:
    """Pad sources with `pad_id` (features with zeros) and labels with IGNORE_INDEX."""
    n, s = len(examples), max(e.source_len for e in examples)
    labels = torch.full((n, max(len(e.target) for e in examples)), IGNORE_INDEX)
    mask = torch.zeros(n, s, dtype=torch.long)
    g2t = examples[0].source is not None
    if g2t:
        inputs = torch.full((n, s), pad_id)
    else:
        inputs = torch.zeros(n, s, examples[0].features.shape[1])
    for i, e in enumerate(examples):
        labels[i, : len(e.target)] = torch.tensor(e.target)
        mask[i, : e.source_len] = 1
        src = e.source if g2t else e.features
        inputs[i, : e.source_len] = torch.tensor(src)  # a copy: features may be a read-only memmap
    names, texts = [e.name for e in examples], [e.text for e in examples]
    if g2t:
        return TextBatch(names, texts, mask, labels, input_ids=inputs)
    return TextBatch(names, texts, mask, labels, features=inputs)


def drop_source_words(batch: TextBatch, p: float, unk_id: int) -> TextBatch:
    """G2T source word dropout (Sennrich & Zhang 2019, a regulariser for low-resource
    NMT): each gloss sub-word becomes `unk_id` with probability `p` (torch's global RNG,
    like dropout, so a resumed run draws the same); `</s> LANG` and padding stay."""
    if p <= 0:
        return batch
    ids = batch.input_ids
    glosses = torch.arange(ids.size(1)) < batch.attention_mask.sum(1, keepdim=True) - 2
    drop = glosses & (torch.rand(ids.shape) < p)
    return replace(batch, input_ids=ids.masked_fill(drop, unk_id))


def token_batches(
    examples: Sequence[TextExample], max_tokens: int, seed: int | None = None
) -> Iterator[list[int]]:
    """Index lists of similar-length examples, each padded batch ≤ `max_tokens` (source+target).

    With a seed, examples are shuffled before sorting by length (ties broken at
    random) and the batches come out in random order; without one, in length order.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    if seed is not None:
        rng.shuffle(order)
    order.sort(key=lambda i: (examples[i].source_len, len(examples[i].target)))
    batches, current, longest = [], [], 0
    for i in order:
        size = examples[i].source_len + len(examples[i].target)
        if current and max(longest, size) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    if seed is not None:
        rng.shuffle(batches)
    yield from batches
