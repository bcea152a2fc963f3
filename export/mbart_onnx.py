"""The translation model as two ONNX graphs: `encoder.onnx` and a one-step `decoder.onnx`.

encoder.onnx: the source (G2T: gloss token ids; S2T: visual features through the
V-L mapper) → mBART encoder → the encoder states, and the cross-attention keys and
values of every decoder layer, computed once per source (they do not change while
decoding). The encoder input is `TranslationModel.encoder_batch`'s, so an imported
TwoStream-SLT model reads its gloss embedding (G2T) or gets the `</s>` and sign
language rows appended after each source's valid steps, ×√d_model (S2T); the
manifest's `translation.source_suffix` tells the runtime how many rows that adds.

decoder.onnx: one decoding step for N hypotheses: the last token of each, the
source mask, and per decoder layer the self-attention keys/values of the tokens so
far and the cross-attention keys/values → next-token logits and each layer's
self-attention keys/values with this step appended. Generation is linear in its
length, and the runtime reorders each layer's cache by beam with one `take`.

The caches travel one tensor per layer, (N, heads, steps, head_dim), under the
names transformers' ONNX exports give them (`past_key_values.{i}.decoder.key`,
`….encoder.value`, `present.{i}.decoder.key`), not as transformers' cache
objects: each step then reads each layer's tensors where they are and writes one
copy of the self-attention cache. Bundles before this stacked every layer in one
(layers, N, heads, steps, head_dim) tensor (`past_keys`, `cross_keys`, …), which the
graph split and re-stacked at every step: at mbart-large's size that copying was a
quarter of the decoder's time. The runtime still reads those bundles
(`slt_serve.seq2seq`). The step is written here with the mBART modules' own
weights (embeddings, layer norms, projections) in the order `MBartDecoderLayer`
applies them; `export_translation` checks it against `TranslationModel.generate`
(same tokens) before anything is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import MBartForConditionalGeneration

from slt_serve.seq2seq import decoder_inputs, decoder_outputs
from slt_training.models.translation import TranslationModel

from .dynamo import export_graph

ENCODER_INPUTS_G2T = ("input_ids", "attention_mask")
ENCODER_INPUTS_S2T = ("features", "attention_mask")
ENCODER_OUTPUTS = ("encoder_hidden", "cross_keys", "cross_values")


def _additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, S) 1/0 → (N, 1, 1, S) 0 / most negative float, as transformers builds it."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _heads(x: Tensor, heads: int) -> Tensor:
    """(N, S, d) → (N, heads, S, d / heads)."""
    n, s, d = x.shape
    return x.view(n, s, heads, d // heads).transpose(1, 2)


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scaling: float) -> Tensor:
    """Scaled dot-product attention over (N, H, *, dh); (N, Q, H·dh) out."""
    weights = torch.matmul(q, k.transpose(2, 3)) * scaling
    if mask is not None:
        weights = weights + mask
    out = torch.matmul(weights.softmax(dim=-1), v)
    n, h, s, dh = out.shape
    return out.transpose(1, 2).reshape(n, s, h * dh)


class EncoderGraph(nn.Module):
    """Source → encoder states and every decoder layer's cross-attention keys/values."""

    def __init__(self, model: TranslationModel) -> None:
        super().__init__()
        self.model = model
        self.encoder = model.mbart.get_encoder()
        self.layers = model.mbart.model.decoder.layers
        self.heads = model.mbart.config.decoder_attention_heads

    def forward(self, source: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.model.mapper is None:
            inputs = self.model.encoder_batch(attention_mask, source, None)
        else:
            inputs = self.model.encoder_batch(attention_mask, None, source)
        hidden = self.encoder(**inputs).last_hidden_state
        keys = [_heads(layer.encoder_attn.k_proj(hidden), self.heads) for layer in self.layers]
        values = [_heads(layer.encoder_attn.v_proj(hidden), self.heads) for layer in self.layers]
        return hidden, torch.stack(keys), torch.stack(values)


class DecoderStep(nn.Module):
    """One mBART decoding step with each layer's caches as plain tensors (`decoder_inputs`)."""

    def __init__(self, mbart: MBartForConditionalGeneration) -> None:
        super().__init__()
        decoder = mbart.model.decoder
        self.decoder = decoder
        self.lm_head = mbart.lm_head
        self.register_buffer("final_logits_bias", mbart.final_logits_bias, persistent=False)
        self.heads = mbart.config.decoder_attention_heads

    def forward(self, input_ids: Tensor, encoder_attention_mask: Tensor, *caches: Tensor):
        """`caches`: per layer, past keys, past values, cross keys, cross values."""
        d = self.decoder
        position = caches[0].shape[2]
        positions = torch.full_like(input_ids, position) + d.embed_positions.offset
        h = d.embed_tokens(input_ids) + d.embed_positions.weight[positions]
        h = d.layernorm_embedding(h)
        cross_mask = _additive_mask(encoder_attention_mask, h.dtype)
        present = []
        for i, layer in enumerate(d.layers):
            past_keys, past_values, cross_keys, cross_values = caches[4 * i : 4 * i + 4]
            attn = layer.self_attn
            x = layer.self_attn_layer_norm(h)
            q = _heads(attn.q_proj(x), self.heads)
            k = torch.cat([past_keys, _heads(attn.k_proj(x), self.heads)], dim=2)
            v = torch.cat([past_values, _heads(attn.v_proj(x), self.heads)], dim=2)
            present += [k, v]
            h = h + attn.out_proj(_attend(q, k, v, None, attn.scaling))
            cross = layer.encoder_attn
            x = layer.encoder_attn_layer_norm(h)
            q = _heads(cross.q_proj(x), self.heads)
            h = h + cross.out_proj(_attend(q, cross_keys, cross_values, cross_mask, cross.scaling))
            x = layer.final_layer_norm(h)
            h = h + layer.fc2(layer.activation_fn(layer.fc1(x)))
        h = d.layer_norm(h)
        logits = self.lm_head(h[:, -1]) + self.final_logits_bias
        return (logits, *present)


def source_suffix(model: TranslationModel) -> int:
    """Rows the encoder graph appends after each source (`translation.source_suffix`)."""
    reference_s2t = model.mapper is not None and model.gloss_embedding is not None
    return len(model.options.suffix_ids) if reference_s2t else 0


def layer_cache_shape(mbart: MBartForConditionalGeneration, n: int, steps: int) -> tuple:
    """(n, heads, steps, head_dim) of one layer's keys or values."""
    heads = mbart.config.decoder_attention_heads
    return (n, heads, steps, mbart.config.d_model // heads)


def export_encoder(model: TranslationModel, opset: int | None = None):
    """The encoder graph as an ONNX ModelProto; batch and source length dynamic."""
    graph = EncoderGraph(model).eval()
    batch, steps = (
        torch.export.Dim("batch", min=1, max=1024),
        torch.export.Dim("source", min=2, max=4096),
    )
    if model.mapper is None:
        source = torch.full((2, 5), model.eos_id, dtype=torch.long)
        if model.gloss_embedding is not None:  # ids of its own gloss table
            source = torch.full((2, 5), model.gloss_embedding.num_embeddings - 1)
        names = ENCODER_INPUTS_G2T
    else:
        source = torch.randn(2, 5, model.options.feature_dim)
        names = ENCODER_INPUTS_S2T
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    shapes = {"source": {0: batch, 1: steps}, "attention_mask": {0: batch, 1: steps}}
    return export_graph(graph, (source, mask), list(names), list(ENCODER_OUTPUTS), shapes, opset)


def export_decoder(model: TranslationModel, opset: int | None = None):
    """The one-step decoder graph as an ONNX ModelProto; hypotheses, source and past dynamic."""
    step = DecoderStep(model.mbart).eval()
    n, s, p = 3, 5, 4
    hyps = torch.export.Dim("hyps", min=1, max=4096)
    source = torch.export.Dim("source", min=2, max=4096)
    past = torch.export.Dim("past", min=0, max=4096)
    layers = model.mbart.config.decoder_layers
    caches, cache_axes = [], []
    for _ in range(layers):
        for steps, axis in ((p, past), (p, past), (s, source), (s, source)):
            caches.append(torch.randn(layer_cache_shape(model.mbart, n, steps)))
            cache_axes.append({0: hyps, 2: axis})
    example = (
        torch.full((n, 1), model.decoder_start_id, dtype=torch.long),
        torch.ones(n, s, dtype=torch.long),
        *caches,
    )
    shapes = ({0: hyps}, {0: hyps, 1: source}, tuple(cache_axes))  # *caches: one entry
    names = list(decoder_inputs(layers)), list(decoder_outputs(layers))
    return export_graph(step, example, *names, shapes, opset)
