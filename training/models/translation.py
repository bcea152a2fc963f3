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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import MBartForConditionalGeneration

from slt_serve.beam_search import SEARCHES  # the same rules, served
from slt_serve.errors import SltError

from .beam_search import SearchSpec, beam_search

IGNORE_INDEX = -100  # label value of padding: no loss
INPUTS = ("gloss", "features")
MAPPERS = ("mlp", "embedding")  # TranslationOptions.mapper
LOSSES = ("ours", "reference")


@dataclass(frozen=True)
class TranslationOptions:
    """What the model reads and how it is trained."""

    input: str = "gloss"  # "gloss" (G2T) or "features" (S2T)
    feature_dim: int = 512  # S2T: channels of the visual features
    # S2T: "mlp" (Linear, ReLU, Linear: TwoStream-SLT's projection) or "embedding" (one
    # Linear without bias over gloss probabilities: its CSL-Daily `VLMapper.type: embedding`)
    mapper: str = "mlp"
    label_smoothing: float = 0.2  # cross-entropy label smoothing (reference: 0.2)
    # The reference's encoder input (imported TwoStream-SLT models), off by default:
    # G2T reads gloss ids through its own gloss embedding of this many rows (not mBART's
    # vocabulary); S2T appends that embedding's `suffix_ids` rows (`</s>`, the sign
    # language token) after each clip's mapped features; both are scaled by √d_model.
    gloss_vocab_size: int = 0  # rows of the separate gloss embedding; 0: none (ours)
    suffix_ids: tuple[int, ...] = ()  # S2T: gloss-embedding rows appended after the features
    # Training as the reference, off by default: "reference" is its XentLoss (see
    # `reference_xent`); freeze_embeddings keeps the text embedding (tied to the output
    # projection) and the gloss embedding fixed (its G2T: freeze_txt_embed, GlossEmbedding.freeze)
    loss: str = "ours"  # "ours": label-smoothed cross-entropy, mean over target tokens
    freeze_embeddings: bool = False
    # R-Drop (Liang et al. 2021), off at 0: in training each batch runs twice (one forward
    # of the batch stacked on itself, so independent dropout masks) and the loss adds
    # r_drop × the symmetric KL between the two predicted distributions, token mean
    r_drop: float = 0.0

    def verify(self) -> TranslationOptions:
        if self.input not in INPUTS:
            raise SltError(f"translation input {self.input!r} unknown; choose one of {INPUTS}")
        if self.gloss_vocab_size < 0 or any(
            not 0 <= i < self.gloss_vocab_size for i in self.suffix_ids
        ):
            raise SltError("suffix_ids must be rows of the gloss embedding (gloss_vocab_size)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise SltError("label_smoothing must be in [0, 1)")
        if self.r_drop < 0:
            raise SltError("r_drop must be ≥ 0 (0: off)")
        if self.loss not in LOSSES:
            raise SltError(f"translation loss must be one of {LOSSES}, got {self.loss!r}")
        if self.feature_dim < 1:
            raise SltError("feature_dim must be at least 1")
        if self.mapper not in MAPPERS:
            raise SltError(f"mapper must be one of {MAPPERS}, got {self.mapper!r}")
        return self


@dataclass(frozen=True)
class GenerateOptions:
    """Beam search settings."""

    num_beams: int = 5  # beam width (1: greedy)
    length_penalty: float = 1.0  # >1 favours longer output (score / length**penalty)
    max_length: int = 100  # longest output, in tokens, language token included
    # "transformers": the installed transformers' beam search; "reference": transformers
    # 4.11.3's rule (`beam_search.py`), as models trained with the reference were scored
    search: str = "transformers"

    def verify(self) -> GenerateOptions:
        if self.num_beams < 1 or self.max_length < 2:
            raise SltError("num_beams must be ≥ 1 and max_length ≥ 2")
        if self.search not in SEARCHES:
            raise SltError(f"search must be one of {SEARCHES}, got {self.search!r}")
        return self


@dataclass(frozen=True)
class TranslationOutput:
    """One forward pass: the loss and what it was computed from."""

    loss: Tensor  # the training loss (options.loss): by default label-smoothed CE, token mean
    logits: Tensor  # (B, L, V) decoder logits
    nll: Tensor  # plain cross-entropy (no smoothing), mean over target tokens: for perplexity
    num_tokens: int  # target tokens the means are over
    encoder_hidden: Tensor  # (B, S, d_model) last encoder layer


class VLMapper(nn.Module):
    """Visual features → mBART's embedding space: Linear, ReLU, Linear (TwoStream-SLT);
    `kind="embedding"`: one Linear without bias, whose columns are embeddings of the
    glosses whose probabilities it reads (its CSL-Daily mapper)."""

    def __init__(self, feature_dim: int, d_model: int, kind: str = "mlp"):
        super().__init__()
        if kind == "embedding":
            self.net = nn.Linear(feature_dim, d_model, bias=False)
            return
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


def symmetric_kl(logits: Tensor, other: Tensor, labels: Tensor) -> Tensor:
    """R-Drop's consistency term: ½ (KL(p‖q) + KL(q‖p)) summed over the vocabulary, mean
    over positions whose label is not IGNORE_INDEX."""
    log_p, log_q = logits.float().log_softmax(-1), other.float().log_softmax(-1)
    kl = 0.5 * ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(-1)  # (B, L)
    valid = labels != IGNORE_INDEX
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def reference_xent(logits: Tensor, labels: Tensor, smoothing: float, pad_id: int) -> Tensor:
    """TwoStream-SLT's `XentLoss` divided by the batch size, as its translation loss: KL
    divergence (summed over tokens) to a target that puts 1 - ε on the label, ε / (V - 2)
    on every other token but `<pad>` (which gets 0), and nothing at padded positions."""
    log_probs = logits.float().log_softmax(-1).reshape(-1, logits.size(-1))
    target, batch = labels.reshape(-1), labels.size(0)
    valid = target != IGNORE_INDEX
    if smoothing <= 0:
        return F.nll_loss(log_probs, target, ignore_index=IGNORE_INDEX, reduction="sum") / batch
    dist = torch.full_like(log_probs, smoothing / (log_probs.size(-1) - 2))
    dist.scatter_(1, target.clamp(min=0).unsqueeze(1), 1.0 - smoothing)
    dist[:, pad_id] = 0.0
    dist = dist * valid.unsqueeze(1)
    return (torch.xlogy(dist, dist) - dist * log_probs).sum() / batch


def pad_rows(rows: list[list[int]], pad_id: int) -> Tensor:
    """Token id lists → (B, L) padded with `pad_id`."""
    out = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


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
            VLMapper(options.feature_dim, config.d_model, options.mapper)
            if options.input == "features"
            else None
        )
        self.gloss_embedding = (
            nn.Embedding(options.gloss_vocab_size, config.d_model)
            if options.gloss_vocab_size
            else None
        )
        self.input_scale = math.sqrt(config.d_model)  # the reference's input_embed_scale
        if options.freeze_embeddings:
            mbart.get_input_embeddings().requires_grad_(False)  # tied to the LM head
            if self.gloss_embedding is not None:
                self.gloss_embedding.requires_grad_(False)

    def encoder_inputs(
        self, input_ids: Tensor | None, features: Tensor | None
    ) -> dict[str, Tensor]:
        """The mBART encoder's keyword inputs: gloss ids (G2T) or mapped features (S2T)."""
        if self.mapper is None:
            if input_ids is None:
                raise SltError("a G2T model needs input_ids (gloss token ids)")
            if self.gloss_embedding is not None:
                return {"inputs_embeds": self.gloss_embedding(input_ids) * self.input_scale}
            return {"input_ids": input_ids}
        if features is None:
            raise SltError("an S2T model needs features (B, T, feature_dim)")
        return {"inputs_embeds": self.mapper(features)}

    def encoder_batch(
        self, attention_mask: Tensor, input_ids: Tensor | None, features: Tensor | None
    ) -> dict[str, Tensor]:
        """`encoder_inputs` with the attention mask; with the reference's S2T input, the
        suffix rows follow each clip's valid steps and everything is scaled by √d_model."""
        inputs = self.encoder_inputs(input_ids, features)
        if self.mapper is None or self.gloss_embedding is None:
            return {**inputs, "attention_mask": attention_mask}
        suffix = self.gloss_embedding.weight[list(self.options.suffix_ids)]  # (S, d)
        mapped, lengths = inputs["inputs_embeds"], attention_mask.sum(dim=1)
        steps = mapped.shape[1] + suffix.shape[0]
        rows = torch.arange(steps, device=mapped.device)[None, :]  # (1, steps)
        padded = torch.cat(
            [mapped, mapped.new_zeros(mapped.shape[0], suffix.shape[0], mapped.shape[2])], 1
        )
        index = (rows - lengths[:, None]).clamp(0, suffix.shape[0] - 1)
        in_suffix = (rows >= lengths[:, None]) & (rows < lengths[:, None] + suffix.shape[0])
        embeds = torch.where(in_suffix[..., None], suffix[index], padded)
        mask = (rows < lengths[:, None] + suffix.shape[0]).to(attention_mask.dtype)
        return {"inputs_embeds": embeds * self.input_scale, "attention_mask": mask}

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
        r_drop = self.options.r_drop if self.training else 0.0
        if r_drop:  # the batch stacked on itself: two dropout masks in one forward
            twice = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
            attention_mask, labels, input_ids, features = map(
                twice, (attention_mask, labels, input_ids, features)
            )
        decoder_input_ids = self.decoder_inputs(labels)
        out = self.mbart(
            **self.encoder_batch(attention_mask, input_ids, features),
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_input_ids.ne(self.pad_id),
            use_cache=False,
        )
        loss, nll, n = smoothed_cross_entropy(out.logits, labels, self.options.label_smoothing)
        if self.options.loss == "reference":
            loss = reference_xent(out.logits, labels, self.options.label_smoothing, self.pad_id)
        logits, encoder_hidden = out.logits, out.encoder_last_hidden_state
        if r_drop:
            logits, other = logits.chunk(2)
            loss = loss + r_drop * symmetric_kl(logits, other, labels.chunk(2)[0])
            encoder_hidden, n = encoder_hidden.chunk(2)[0], n // 2
        return TranslationOutput(loss, logits, nll, n, encoder_hidden)

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
        if o.search == "reference" and o.num_beams > 1:
            return self._reference_beam_search(attention_mask, o, input_ids, features)
        return self.mbart.generate(
            **self.encoder_batch(attention_mask, input_ids, features),
            **self.generation_settings(o),
            do_sample=False,
        )

    def generation_settings(self, options: GenerateOptions) -> dict[str, int | float]:
        """The search's settings and this model's special ids, by the names transformers'
        `generate()` and the bundle manifest's `generation` section both use."""
        return {
            "num_beams": options.num_beams,
            "length_penalty": options.length_penalty,
            "max_length": options.max_length,
            "decoder_start_token_id": self.decoder_start_id,
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_id,
        }

    def _reference_beam_search(
        self,
        attention_mask: Tensor,
        options: GenerateOptions,
        input_ids: Tensor | None,
        features: Tensor | None,
    ) -> Tensor:
        spec = self.search_spec(options)
        rows = beam_search(
            self.mbart, self.encoder_batch(attention_mask, input_ids, features), spec
        )
        return pad_rows(rows, self.pad_id).to(attention_mask.device)

    def search_spec(self, options: GenerateOptions) -> SearchSpec:
        """The 4.11.3-rule search of `options` with this model's special ids."""
        return SearchSpec(
            self.decoder_start_id,
            self.eos_id,
            self.pad_id,
            options.num_beams,
            options.max_length,
            options.length_penalty,
            self.mbart.generation_config.forced_eos_token_id,
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
