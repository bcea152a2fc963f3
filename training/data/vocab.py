"""Building the gloss ↔ id table from the training split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from slt_serve.errors import SltError
from slt_serve.vocab import SPECIALS, GlossVocab
from slt_training.data.annotations import Clip


def build_vocab(clips: Iterable[Clip], min_freq: int = 1) -> GlossVocab:
    """Specials, then every gloss seen at least `min_freq` times, in code-point order.

    Sorting by the gloss itself (not by frequency or first appearance) keeps ids
    stable when clips are reordered or a few are added.
    """
    if min_freq < 1:
        raise SltError("--min-freq must be at least 1")
    counts = Counter(g for c in clips for g in c.glosses)
    if not counts:
        raise SltError(
            "the training split has no glosses; derive them first with `slt data gloss-from-text`"
        )
    clash = sorted(set(counts) & set(SPECIALS))
    if clash:
        raise SltError(f"glosses {clash} collide with the reserved special tokens")
    return GlossVocab.from_glosses(sorted(g for g, n in counts.items() if n >= min_freq))


@dataclass(frozen=True)
class Coverage:
    """How well a vocabulary covers one split's glosses."""

    clips: int
    tokens: int  # gloss tokens in the split
    oov_tokens: int  # tokens the vocabulary maps to <unk>
    oov_types: int  # distinct glosses missing from the vocabulary

    @property
    def oov_rate(self) -> float:
        return 100.0 * self.oov_tokens / self.tokens if self.tokens else 0.0


def coverage(vocab: GlossVocab, clips: Iterable[Clip]) -> Coverage:
    clips = list(clips)
    tokens = [g for c in clips for g in c.glosses]
    missing = [g for g in tokens if g not in vocab]
    return Coverage(len(clips), len(tokens), len(missing), len(set(missing)))
