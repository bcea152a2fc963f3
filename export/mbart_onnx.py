"""The translation model as two ONNX graphs: `encoder.onnx` and a one-step `decoder.onnx`.

encoder.onnx: the source (G2T: gloss token ids; S2T: visual features through the
V-L mapper) → mBART encoder → the encoder states, and the cross-attention keys and
values of every decoder layer, computed once per source (they do not change while
decoding). The encoder input is `TranslationModel.encoder_batch`'s, so an imported
TwoStream-SLT model reads its gloss embedding (G2T) or gets the `</s>` and sign
language rows appended after each source's valid steps, ×√d_model (S2T); the
manifest's `translation.source_suffix` tells the runtime how many rows that adds.

decoder.onnx: one decoding step for N hypotheses: the last token of each, the
source mask, the cross keys/values and the self-attention keys/values of the
tokens so far → next-token logits and the self-attention keys/values with this
step appended. Generation is linear in its length, and the runtime reorders the
cache by beam with one `take` along axis 1.

Past and cross keys/values travel as plain stacked tensors, (layers, N, heads,
steps, head_dim), not as transformers' cache objects. The step is written here
with the mBART modules' own weights (embeddings, layer norms, projections) in
the order `MBartDecoderLayer` applies them; `export_translation` checks it
against `TranslationModel.generate` (same tokens) before anything is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import MBartForConditionalGeneration

from slt_training.models.translation import TranslationModel

from .dynamo import export_graph

ENCODER_INPUTS_G2T = ("input_ids", "attention_mask")
ENCODER_INPUTS_S2T = ("features", "attention_mask")
ENCODER_OUTPUTS = ("encoder_hidden", "cross_keys", "cross_values")
DECODER_INPUTS = (
    "input_ids",
    "encoder_attention_mask",
    "cross_keys",
    "cross_values",
    "past_keys",
    "past_values",
)
DECODER_OUTPUTS = ("logits", "present_keys", "present_values")


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
    """One mBART decoding step with the self-attention cache as plain tensors."""

    def __init__(self, mbart: MBartForConditionalGeneration) -> None:
        super().__init__()
        decoder = mbart.model.decoder
        self.decoder = decoder
        self.lm_head = mbart.lm_head
        self.register_buffer("final_logits_bias", mbart.final_logits_bias, persistent=False)
        self.heads = mbart.config.decoder_attention_heads

    def forward(
        self,
        input_ids: Tensor,
        encoder_attention_mask: Tensor,
        cross_keys: Tensor,
        cross_values: Tensor,
        past_keys: Tensor,
        past_values: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        d = self.decoder
        position = past_keys.shape[3]
        positions = torch.full_like(input_ids, position) + d.embed_positions.offset
        h = d.embed_tokens(input_ids) + d.embed_positions.weight[positions]
        h = d.layernorm_embedding(h)
        cross_mask = _additive_mask(encoder_attention_mask, h.dtype)
        new_keys, new_values = [], []
        for i, layer in enumerate(d.layers):
            attn = layer.self_attn
            x = layer.self_attn_layer_norm(h)
            q = _heads(attn.q_proj(x), self.heads)
            k = torch.cat([past_keys[i], _heads(attn.k_proj(x), self.heads)], dim=2)
            v = torch.cat([past_values[i], _heads(attn.v_proj(x), self.heads)], dim=2)
            new_keys.append(k)
            new_values.append(v)
            h = h + attn.out_proj(_attend(q, k, v, None, attn.scaling))
            cross = layer.encoder_attn
            x = layer.encoder_attn_layer_norm(h)
            q = _heads(cross.q_proj(x), self.heads)
            h = h + cross.out_proj(
                _attend(q, cross_keys[i], cross_values[i], cross_mask, cross.scaling)
            )
            x = layer.final_layer_norm(h)
            h = h + layer.fc2(layer.activation_fn(layer.fc1(x)))
        h = d.layer_norm(h)
        logits = self.lm_head(h[:, -1]) + self.final_logits_bias
        return logits, torch.stack(new_keys), torch.stack(new_values)


def source_suffix(model: TranslationModel) -> int:
    """Rows the encoder graph appends after each source (`translation.source_suffix`)."""
    reference_s2t = model.mapper is not None and model.gloss_embedding is not None
    return len(model.options.suffix_ids) if reference_s2t else 0


def cache_shape(mbart: MBartForConditionalGeneration, n: int, steps: int) -> tuple[int, ...]:
    """(layers, n, heads, steps, head_dim) of a keys/values stack."""
    c = mbart.config
    heads = c.decoder_attention_heads
    return (c.decoder_layers, n, heads, steps, c.d_model // heads)


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
    example = (
        torch.full((n, 1), model.decoder_start_id, dtype=torch.long),
        torch.ones(n, s, dtype=torch.long),
        torch.randn(cache_shape(model.mbart, n, s)),
        torch.randn(cache_shape(model.mbart, n, s)),
        torch.randn(cache_shape(model.mbart, n, p)),
        torch.randn(cache_shape(model.mbart, n, p)),
    )
    shapes = {
        "input_ids": {0: hyps},
        "encoder_attention_mask": {0: hyps, 1: source},
        "cross_keys": {1: hyps, 3: source},
        "cross_values": {1: hyps, 3: source},
        "past_keys": {1: hyps, 3: past},
        "past_values": {1: hyps, 3: past},
    }
    return export_graph(step, example, list(DECODER_INPUTS), list(DECODER_OUTPUTS), shapes, opset)
