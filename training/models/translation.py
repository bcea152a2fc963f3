"""G2T and S2T on transformers' mBART, with our own loss and our own output type.

G2T: gloss ids → mBART encoder-decoder → text ids.
S2T: visual features (B, T, 512) of the S2G encoder → V-L mapper (a 2-layer MLP,
as TwoStream-SLT's) → `inputs_embeds` of the mBART encoder → text ids.

`forward` returns `TranslationOutput`, a frozen dataclass of ours, with the
label-smoothed cross-entropy computed here. transformers' `Seq2SeqLMOutput` is
read, never subclassed or given extra keys: the reference adds
`translation_loss` to it, which DDP rebuilds and newer transformers rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import MBartForConditionalGeneration

from slt_serve.errors import SltError

IGNORE_INDEX = -100  # label value of padding: no loss
INPUTS = ("gloss", "features")


@dataclass(frozen=True)
class TranslationOptions:
    """What the model reads and how it is trained."""

    input: str = "gloss"  # "gloss" (G2T) or "features" (S2T)
    feature_dim: int = 512  # S2T: channels of the visual features
    label_smoothing: float = 0.2  # cross-entropy label smoothing (reference: 0.2)

    def verify(self) -> TranslationOptions:
        if self.input not in INPUTS:
            raise SltError(f"translation input {self.input!r} unknown; choose one of {INPUTS}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise SltError("label_smoothing must be in [0, 1)")
        if self.feature_dim < 1:
            raise SltError("feature_dim must be at least 1")
        return self


@dataclass(frozen=True)
class GenerateOptions:
    """Beam search settings."""

    num_beams: int = 5  # beam width (1: greedy)
    length_penalty: float = 1.0  # >1 favours longer output (score / length**penalty)
    max_length: int = 100  # longest output, in tokens, language token included

    def verify(self) -> GenerateOptions:
        if self.num_beams < 1 or self.max_length < 2:
            raise SltError("num_beams must be ≥ 1 and max_length ≥ 2")
        return self


@dataclass(frozen=True)
class TranslationOutput:
    """One forward pass: the loss and what it was computed from."""

    loss: Tensor  # label-smoothed cross-entropy, mean over target tokens (scalar)
    logits: Tensor  # (B, L, V) decoder logits
    nll: Tensor  # plain cross-entropy (no smoothing), mean over target tokens: for perplexity
    num_tokens: int  # target tokens the means are over
    encoder_hidden: Tensor  # (B, S, d_model) last encoder layer


class VLMapper(nn.Module):
    """Visual features → mBART's embedding space: Linear, ReLU, Linear (TwoStream-SLT)."""

    def __init__(self, feature_dim: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, d_model)
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def smoothed_cross_entropy(
    logits: Tensor, labels: Tensor, smoothing: float
) -> tuple[Tensor, Tensor, int]:
    """Label-smoothed and plain cross-entropy, means over labels != IGNORE_INDEX."""
    flat, target = logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1)
    n = int((target != IGNORE_INDEX).sum())
    loss = F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX, label_smoothing=smoothing)
    with torch.no_grad():
        nll = F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX)
    return loss, nll, n


class TranslationModel(nn.Module):
    """mBART with, for S2T, a V-L mapper in front; our own loss and output."""

    def __init__(self, mbart: MBartForConditionalGeneration, options: TranslationOptions):
        super().__init__()
        self.options = options.verify()
        self.mbart = mbart
        config = mbart.config
        self.pad_id, self.eos_id = config.pad_token_id, config.eos_token_id
        self.decoder_start_id = config.decoder_start_token_id
        self.mapper = (
            VLMapper(options.feature_dim, config.d_model) if options.input == "features" else None
        )

    def encoder_inputs(
        self, input_ids: Tensor | None, features: Tensor | None
    ) -> dict[str, Tensor]:
        """The mBART encoder's keyword inputs: gloss ids (G2T) or mapped features (S2T)."""
        if self.mapper is None:
            if input_ids is None:
                raise SltError("a G2T model needs input_ids (gloss token ids)")
            return {"input_ids": input_ids}
        if features is None:
            raise SltError("an S2T model needs features (B, T, feature_dim)")
        return {"inputs_embeds": self.mapper(features)}

    def decoder_inputs(self, labels: Tensor) -> Tensor:
        """Teacher forcing: the start token, then the labels shifted right (padding for ignored)."""
        start = labels.new_full((labels.size(0), 1), self.decoder_start_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.pad_id)

    def forward(
        self,
        attention_mask: Tensor,
        labels: Tensor,
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
    ) -> TranslationOutput:
        """Loss of `labels` (B, L; IGNORE_INDEX at padding) given glosses or features."""
        decoder_input_ids = self.decoder_inputs(labels)
        out = self.mbart(
            **self.encoder_inputs(input_ids, features),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_input_ids.ne(self.pad_id),
            use_cache=False,
        )
        loss, nll, n = smoothed_cross_entropy(out.logits, labels, self.options.label_smoothing)
        return TranslationOutput(loss, out.logits, nll, n, out.encoder_last_hidden_state)

    @torch.no_grad()
    def generate(
        self,
        attention_mask: Tensor,
        options: GenerateOptions = GenerateOptions(),
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
    ) -> Tensor:
        """Beam search; (B, L) token ids starting with the decoder start (language) token."""
        o = options.verify()
        return self.mbart.generate(
            **self.encoder_inputs(input_ids, features),
            attention_mask=attention_mask,
            num_beams=o.num_beams,
            length_penalty=o.length_penalty,
            max_length=o.max_length,
            decoder_start_token_id=self.decoder_start_id,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            do_sample=False,
        )

    def translate(
        self,
        tokenizer,
        attention_mask: Tensor,
        options: GenerateOptions = GenerateOptions(),
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
    ) -> list[str]:
        """Beam search, then the text of each output via `tokenizer` (a TextTokenizer)."""
        ids = self.generate(attention_mask, options, input_ids=input_ids, features=features)
        return tokenizer.decode_batch(ids.tolist())
