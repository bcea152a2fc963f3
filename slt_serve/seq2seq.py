"""The translation graphs at run time: encoder.onnx once per source, decoder.onnx per step.

`Seq2Seq.generate` encodes a batch of sources, repeats the encoder's cross-attention
keys/values for every beam, and runs `beam_search` with decoder.onnx as its step.
decoder.onnx takes each layer's caches as its own tensor (`slt_export.mbart_onnx`);
a bundle exported before that takes them stacked, (layers, N, heads, steps, head_dim),
and `Seq2Seq` feeds whichever its graph's inputs name (`DecoderCache`).
Where the encoder appends rows after each source (`Translation.source_suffix`), the
decoder's source mask is the source's, extended by them (`source_mask`).
The export's parity check runs this same code against `TranslationModel.generate`.

`Ensemble` does the same over several translation networks (`Translation.ensemble`):
each encodes its own source (S2T: its columns of the features), keeps its own
decoder cache, and one beam search runs on the mean of their next-token
probabilities. `open_translation` opens whichever a bundle holds; a one-network
bundle is a plain `Seq2Seq`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt_serve.beam_search import (
    BeamSettings,
    Layers,
    beam_search_scored,
    mean_probability_logits,
)
from slt_serve.bundle import DECODER, ENCODER
from slt_serve.errors import SltError
from slt_serve.manifest import Translation
from slt_serve.onnx_session import open_session

CACHE_INPUTS = ("decoder.key", "decoder.value", "encoder.key", "encoder.value")


def decoder_inputs(layers: int) -> tuple[str, ...]:
    """decoder.onnx's inputs: the token, the source mask, then each layer's caches."""
    cache = [f"past_key_values.{i}.{name}" for i in range(layers) for name in CACHE_INPUTS]
    return ("input_ids", "encoder_attention_mask", *cache)


def decoder_outputs(layers: int) -> tuple[str, ...]:
    """decoder.onnx's outputs: next-token logits, then each layer's self-attention cache."""
    cache = [f"present.{i}.decoder.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ("logits", *cache)


@dataclass(frozen=True)
class CacheShape:
    """A layer's decoder keys/values are (N, heads, steps, head_dim)."""

    layers: int
    heads: int
    head_dim: int


class DecoderCache:
    """How a decoder.onnx takes its caches: one tensor per layer and kind (`past_key_values
    .{i}.decoder.key`, …; the beam search reorders `Layers`), or, in bundles exported
    before, every layer stacked in `past_keys` / `past_values` / `cross_keys` /
    `cross_values` (reordered along axis 1)."""

    def __init__(self, decoder, shape: CacheShape) -> None:
        self.shape = shape
        self.stacked = "past_keys" in {i.name for i in decoder.get_inputs()}
        stacked_outputs = ["logits", "present_keys", "present_values"]
        self.outputs = stacked_outputs if self.stacked else list(decoder_outputs(shape.layers))
        inputs = decoder_inputs(shape.layers)[2:]
        self.names = [inputs[i : i + 4] for i in range(0, len(inputs), 4)]

    def empty(self, n: int):
        """(keys, values) of n hypotheses with no steps yet."""
        s = self.shape
        if self.stacked:
            zeros = np.zeros((s.layers, n, s.heads, 0, s.head_dim), dtype=np.float32)
            return zeros, zeros.copy()
        zeros = np.zeros((n, s.heads, 0, s.head_dim), dtype=np.float32)
        return Layers([zeros] * s.layers), Layers([zeros] * s.layers)

    def cross(self, keys: np.ndarray, values: np.ndarray, beams: int) -> dict[str, np.ndarray]:
        """The encoder's stacked cross keys/values, one row per beam, as the graph's feeds."""
        if self.stacked:
            return {
                "cross_keys": np.repeat(keys, beams, axis=1),
                "cross_values": np.repeat(values, beams, axis=1),
            }
        feeds = {}
        for names, k, v in zip(self.names, keys, values):
            feeds[names[2]] = np.repeat(k, beams, axis=0)
            feeds[names[3]] = np.repeat(v, beams, axis=0)
        return feeds

    def past(self, keys, values) -> dict[str, np.ndarray]:
        """The self-attention caches as the graph's feeds."""
        if self.stacked:
            return {"past_keys": keys, "past_values": values}
        feeds = {}
        for names, k, v in zip(self.names, keys, values):
            feeds[names[0]], feeds[names[1]] = k, v
        return feeds

    def unpack(self, outputs: list) -> tuple:
        """The graph's outputs (in `outputs` order) → (logits, keys, values)."""
        if self.stacked:
            return tuple(outputs)
        return outputs[0], Layers(outputs[1::2]), Layers(outputs[2::2])

    def run(self, decoder, tokens, past_keys, past_values, fixed: dict, options=None) -> tuple:
        """One step: (logits, keys, values) with this step appended."""
        feeds = {"input_ids": tokens} | self.past(past_keys, past_values) | fixed
        return self.unpack(decoder.run(self.outputs, feeds, options))

    def shrink_arena(self, decoder) -> None:
        """Hand the decoder's memory arena back to the system but for what one hypothesis
        needs: a one-step run with onnxruntime's arena shrinkage. After a search the arena
        holds its largest step's buffers (~115 MB at mbart-large's size), which the next
        request's recogniser would otherwise add to its peak."""
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        s = self.shape
        zeros = np.zeros((s.layers, 1, s.heads, 2, s.head_dim), dtype=np.float32)
        fixed = {"encoder_attention_mask": np.ones((1, 2), dtype=np.int64)}
        fixed |= self.cross(zeros, zeros, 1)
        self.run(decoder, np.zeros((1, 1), dtype=np.int64), *self.empty(1), fixed, options)


class Seq2Seq:
    """encoder.onnx + decoder.onnx sessions; `source` names the encoder's first input."""

    def __init__(
        self, encoder, decoder, cache: CacheShape, max_source: int, suffix: int = 0
    ) -> None:
        self.encoder, self.decoder, self.cache = encoder, decoder, cache
        self.feeding = DecoderCache(decoder, cache)
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
            open_session(encoder, providers, threads, arena=False),  # once a source: its
            # arena would hold the encoder's activations (~80 MB for 60 s at real size) after
            open_session(decoder, providers, threads),  # with its arena: without, a real-size
            # search took ~1.65 s instead of ~1.39 (fresh buffers for every step's cache copies)
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
        source_mask = np.repeat(self.source_mask(mask), beams, axis=0)
        return {"encoder_attention_mask": source_mask} | self.feeding.cross(keys, values, beams)

    def step(self, tokens, past_keys, past_values, cross: dict) -> tuple:
        """decoder.onnx once: (logits, keys, values) with this step appended."""
        return self.feeding.run(self.decoder, tokens, past_keys, past_values, cross)

    def release_memory(self) -> None:
        """After a search: the decoder's arena shrunk to one hypothesis's (`DecoderCache`)."""
        self.feeding.shrink_arena(self.decoder)

    def generate_scored(
        self, source: np.ndarray, mask: np.ndarray, settings: BeamSettings, encoded=None
    ) -> list[tuple[list[int], float]]:
        """`generate`'s token ids, each with its mean token log-probability (`beam_search_scored`)."""
        _, keys, values = encoded if encoded is not None else self.encode(source, mask)
        beams = settings.num_beams
        cross = self.cross_inputs(mask, keys, values, beams)

        def step(tokens, past_keys, past_values):
            return self.step(tokens, past_keys, past_values, cross)

        empty = self.feeding.empty(source.shape[0] * beams)
        return beam_search_scored(step, source.shape[0], empty, settings)


class Ensemble:
    """Several `Seq2Seq` networks searched as one (see the module docstring); the same
    `encode` / `generate` / `generate_scored` as a `Seq2Seq`."""

    def __init__(self, networks: list[Seq2Seq], feature_dims: list[int | None]) -> None:
        self.networks, self.feature_dims = networks, feature_dims
        self.source_name = networks[0].source_name
        self.max_source = min(n.max_source for n in networks)
        self.encoder = networks[0].encoder  # the first graph, for its provider

    def release_memory(self) -> None:
        for network in self.networks:
            network.release_memory()

    def sources(self, source: np.ndarray) -> list[np.ndarray]:
        """Each network's source: its own feature columns (S2T), or the same ids (G2T)."""
        if self.source_name != "features":
            return [source] * len(self.networks)
        total = sum(self.feature_dims)
        if source.shape[-1] != total:
            raise SltError(
                f"features of {source.shape[-1]} channels, but the ensemble's networks read "
                f"{total} ({' + '.join(map(str, self.feature_dims))}); re-export the bundle"
            )
        bounds = np.cumsum([0, *self.feature_dims])
        return [source[..., a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def encode(self, source: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Each network's encoder outputs on its own source."""
        return [n.encode(x, mask) for n, x in zip(self.networks, self.sources(source))]

    def generate(
        self, source: np.ndarray, mask: np.ndarray, settings: BeamSettings, encoded=None
    ) -> list[list[int]]:
        return [ids for ids, _ in self.generate_scored(source, mask, settings, encoded)]

    def generate_scored(
        self, source: np.ndarray, mask: np.ndarray, settings: BeamSettings, encoded=None
    ) -> list[tuple[list[int], float]]:
        """Token ids and mean token log-probability (of the averaged probabilities) per source."""
        encoded = encoded if encoded is not None else self.encode(source, mask)
        beams = settings.num_beams
        crosses = [
            n.cross_inputs(mask, keys, values, beams)
            for n, (_, keys, values) in zip(self.networks, encoded)
        ]

        def step(tokens, past_keys, past_values):
            outs = [
                n.step(tokens, k, v, c)
                for n, k, v, c in zip(self.networks, past_keys, past_values, crosses)
            ]
            logits = mean_probability_logits([o[0] for o in outs])
            return logits, [o[1] for o in outs], [o[2] for o in outs]

        empty = [n.feeding.empty(source.shape[0] * beams) for n in self.networks]
        cache = ([keys for keys, _ in empty], [values for _, values in empty])
        return beam_search_scored(step, source.shape[0], cache, settings)


def open_translation(
    file: Callable[[str], Path],
    translation: Translation,
    providers: list[str],
    threads: int = 0,
) -> Seq2Seq | Ensemble:
    """A bundle's translation graphs (`file(name)`: a bundle file's path): a `Seq2Seq`, or an
    `Ensemble` when the manifest lists more networks."""
    listed = translation.networks()
    networks = [
        Seq2Seq.open(file(enc or ENCODER), file(dec or DECODER), shapes, providers, threads)
        for shapes, enc, dec in listed
    ]
    if len(networks) == 1:
        return networks[0]
    return Ensemble(networks, [shapes.feature_dim for shapes, _, _ in listed])
