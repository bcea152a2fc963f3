"""Several translation networks translating as one: TwoStream-SLT's multi-source ensemble.

The reference's TwoStream-SLT scores come from three S2T networks (joint, video and
keypoint features, each with its own V-L mapper and mBART) whose next-token
probabilities are averaged inside one beam search (transformers 4.11.3's rule),
each network keeping its own decoder cache (`beam_search.ensemble_beam_search`).
An S2T ensemble reads its networks' features side by side along the last axis
(each network's `feature_dim` columns, in order), as a bundle's recogniser gives
them; a G2T ensemble gives every network the same gloss ids. An ensemble of one
network is that network (`TranslationModel.generate`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError

from .beam_search import ensemble_beam_search
from .translation import GenerateOptions, TranslationModel, pad_rows


class TranslationEnsemble(nn.Module):
    """`models` (same vocabulary, special ids and input kind) searched as one."""

    def __init__(self, models: list[TranslationModel]) -> None:
        super().__init__()
        if not models:
            raise SltError("an ensemble needs at least one translation model")
        first = models[0]
        for i, m in enumerate(models[1:], start=1):
            ours = (
                m.options.input,
                m.mbart.config.vocab_size,
                m.decoder_start_id,
                m.eos_id,
                m.pad_id,
            )
            theirs = (first.options.input, first.mbart.config.vocab_size,
                      first.decoder_start_id, first.eos_id, first.pad_id)  # fmt: skip
            if ours != theirs:
                raise SltError(
                    f"ensemble network {i} has (input, vocab size, start, eos, pad) {ours}, the "
                    f"first {theirs}; ensemble networks trained on the same vocabulary"
                )
        self.models = nn.ModuleList(models)

    @property
    def feature_dims(self) -> list[int]:
        return [m.options.feature_dim for m in self.models]

    def split(self, features: Tensor | None) -> list[Tensor | None]:
        """Each network's columns of `features` (None for G2T)."""
        if features is None:
            return [None] * len(self.models)
        dims = self.feature_dims
        if features.shape[-1] != sum(dims):
            raise SltError(
                f"features of {features.shape[-1]} channels, but the ensemble's networks read "
                f"{sum(dims)} ({' + '.join(map(str, dims))})"
            )
        return list(features.split(dims, dim=-1))

    @torch.no_grad()
    def generate(
        self,
        attention_mask: Tensor,
        options: GenerateOptions = GenerateOptions(),
        input_ids: Tensor | None = None,
        features: Tensor | None = None,
    ) -> Tensor:
        """(B, L) token ids (start token first) of the averaged-probability beam search."""
        o = options.verify()
        if len(self.models) == 1:
            return self.models[0].generate(attention_mask, o, input_ids, features)
        if o.search != "reference":
            raise SltError(
                f"an ensemble searches with transformers 4.11.3's rule (search 'reference', "
                f"as TwoStream-SLT's), not {o.search!r}"
            )
        members = [
            (m.mbart, m.encoder_batch(attention_mask, input_ids, f))
            for m, f in zip(self.models, self.split(features))
        ]
        first = self.models[0]
        rows = ensemble_beam_search(members, first.search_spec(o))
        return pad_rows(rows, first.pad_id).to(attention_mask.device)
