"""The translation graphs at run time: encoder.onnx once per source, decoder.onnx per step.

`Seq2Seq.generate` encodes a batch of sources, repeats the encoder's cross-attention
keys/values for every beam, and runs `beam_search` with decoder.onnx as its step.
Where the encoder appends rows after each source (`Translation.source_suffix`), the
decoder's source mask is the source's, extended by them (`source_mask`).
The export's parity check runs this same code against `TranslationModel.generate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from slt_serve.beam_search import BeamSettings, beam_search_scored
from slt_serve.errors import SltError
from slt_serve.manifest import Translation
from slt_serve.onnx_session import open_session


@dataclass(frozen=True)
class CacheShape:
    """Decoder key/value stacks are (layers, N, heads, steps, head_dim)."""

    layers: int
    heads: int
    head_dim: int

    def empty(self, n: int) -> np.ndarray:
        return np.zeros((self.layers, n, self.heads, 0, self.head_dim), dtype=np.float32)


class Seq2Seq:
    """encoder.onnx + decoder.onnx sessions; `source` names the encoder's first input."""

    def __init__(
        self, encoder, decoder, cache: CacheShape, max_source: int, suffix: int = 0
    ) -> None:
        self.encoder, self.decoder, self.cache = encoder, decoder, cache
        self.source_name = encoder.get_inputs()[0].name  # "features" (S2T) or "input_ids" (G2T)
        self.max_source = max_source  # longest source, the suffix rows not counted
        self.suffix = suffix  # rows the encoder appends after each source's valid steps

    @classmethod
    def open(
        cls,
        encoder: str | os.PathLike,
        decoder: str | os.PathLike,
        translation: Translation,
        providers: list[str],
        threads: int = 0,
    ) -> Seq2Seq:
        """Sessions on a bundle's encoder.onnx and decoder.onnx, shaped by its manifest."""
        t = translation
        return cls(
            open_session(encoder, providers, threads),
            open_session(decoder, providers, threads),
            CacheShape(t.decoder_layers, t.heads, t.head_dim),
            t.max_source_positions - t.source_suffix,
            t.source_suffix,
        )

    def source_mask(self, mask: np.ndarray) -> np.ndarray:
        """(B, S) source mask → (B, S + suffix) mask of the encoder states: each source's
        valid steps, then its suffix rows."""
        mask = mask.astype(np.int64)
        if not self.suffix:
            return mask
        steps = np.arange(mask.shape[1] + self.suffix)[None, :]
        return (steps < mask.sum(axis=1, keepdims=True) + self.suffix).astype(np.int64)

    def encode(self, source: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, S[, D]) sources and (B, S) masks → encoder states, cross keys, cross values."""
        if source.shape[1] > self.max_source:
            raise SltError(
                f"source of {source.shape[1]} steps is longer than the model's "
                f"{self.max_source} positions; give a shorter input"
            )
        feeds = {self.source_name: source, "attention_mask": mask.astype(np.int64)}
        return tuple(self.encoder.run(None, feeds))

    def generate(
        self, source: np.ndarray, mask: np.ndarray, settings: BeamSettings, encoded=None
    ) -> list[list[int]]:
        """Token ids of each source's best translation (start token first)."""
        return [ids for ids, _ in self.generate_scored(source, mask, settings, encoded)]

    def cross_inputs(self, mask, keys, values, beams: int) -> dict[str, np.ndarray]:
        """The decoder's per-call inputs (source mask, cross-attention keys/values), one row
        per beam: the same at every step of the search."""
        return {
            "encoder_attention_mask": np.repeat(self.source_mask(mask), beams, axis=0),
            "cross_keys": np.repeat(keys, beams, axis=1),
            "cross_values": np.repeat(values, beams, axis=1),
        }

    def generate_scored(
        self, source: np.ndarray, mask: np.ndarray, settings: BeamSettings, encoded=None
    ) -> list[tuple[list[int], float]]:
        """`generate`'s token ids, each with its mean token log-probability (`beam_search_scored`)."""
        _, keys, values = encoded if encoded is not None else self.encode(source, mask)
        beams = settings.num_beams
        cross = self.cross_inputs(mask, keys, values, beams)

        def step(tokens, past_keys, past_values):
            feeds = {"input_ids": tokens, "past_keys": past_keys, "past_values": past_values}
            return self.decoder.run(None, feeds | cross)

        empty = self.cache.empty(source.shape[0] * beams)
        return beam_search_scored(step, source.shape[0], (empty, empty.copy()), settings)
