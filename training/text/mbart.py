"""transformers' `MBartForConditionalGeneration`, from a small config or a local pretrained folder.

Two ways in, as the design's translation stage:

* `build_mbart(options, tokenizer)`: a fresh model sized by `MBartOptions` (the
  "small" preset is the 3+3-layer, d_model 256 shape of the data README's
  reference), with its vocabulary and special ids taken from our tokenizer;
* `load_mbart(folder)`: a pretrained folder in the mbart-large-cc25 layout
  (`config.json` + `model.safetensors` or `pytorch_model.bin`), usually one that
  `slt prune-mbart` wrote. Loaded with `local_files_only=True`: nothing is
  fetched, and a `.bin` is read by transformers with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from transformers import MBartConfig, MBartForConditionalGeneration

from slt_serve.errors import SltError

from .tokenizer import TextTokenizer

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class MBartOptions:
    """Shape and regularisation of an mBART trained from scratch."""

    encoder_layers: int = 3  # transformer layers in the encoder
    decoder_layers: int = 3  # transformer layers in the decoder
    d_model: int = 256  # hidden size (= embedding size)
    heads: int = 4  # attention heads, in encoder and decoder
    ffn: int = 1024  # feed-forward inner size
    dropout: float = 0.1  # on residual branches and embeddings
    attention_dropout: float = 0.1  # on attention weights
    activation_dropout: float = 0.0  # inside the feed-forward block
    max_positions: int = 256  # longest source or target sequence, in tokens

    def verify(self) -> MBartOptions:
        if min(self.encoder_layers, self.decoder_layers, self.heads, self.ffn) < 1:
            raise SltError("mBART layers, heads and ffn must all be at least 1")
        if self.d_model % self.heads:
            raise SltError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SltError(f"mBART {name} must be in [0, 1)")
        return self


PRESETS = {
    # the data README's reference shape: 3+3 layers, d_model 256 (≈ 6.6 M parameters
    # with a ~4 k-token vocabulary)
    "small": MBartOptions(),
    # for tests and quick checks
    "tiny": MBartOptions(encoder_layers=2, decoder_layers=2, d_model=32, heads=2, ffn=64),
}


def preset(name: str, **overrides) -> MBartOptions:
    """A named shape, with fields overridden (e.g. `preset("small", dropout=0.3)`)."""
    if name not in PRESETS:
        raise SltError(f"mBART size {name!r} unknown; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides).verify()


def build_mbart(options: MBartOptions, tokenizer: TextTokenizer) -> MBartForConditionalGeneration:
    """A randomly initialised mBART whose vocabulary and special ids are the tokenizer's."""
    o = options.verify()
    config = MBartConfig(
        vocab_size=len(tokenizer),
        d_model=o.d_model,
        encoder_layers=o.encoder_layers,
        decoder_layers=o.decoder_layers,
        encoder_attention_heads=o.heads,
        decoder_attention_heads=o.heads,
        encoder_ffn_dim=o.ffn,
        decoder_ffn_dim=o.ffn,
        dropout=o.dropout,
        attention_dropout=o.attention_dropout,
        activation_dropout=o.activation_dropout,
        max_position_embeddings=o.max_positions,
        scale_embedding=True,
        pad_token_id=tokenizer.pad_id,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        decoder_start_token_id=tokenizer.lang_id,
        forced_eos_token_id=tokenizer.eos_id,
    )
    model = MBartForConditionalGeneration(config)
    logger.info("built mBART: %.2f M parameters", parameter_count(model) / 1e6)
    return model


def check_pretrained_folder(folder: str | os.PathLike) -> Path:
    """The folder, if it holds an mBART config and weights; else a message saying what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SltError(f"{folder}: pretrained mBART folder not found")
    if not (folder / CONFIG_FILE).is_file():
        raise SltError(f"{folder}: no {CONFIG_FILE}; expected the mbart-large-cc25 layout")
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise SltError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)})")
    return folder


def load_mbart(folder: str | os.PathLike, **config_overrides) -> MBartForConditionalGeneration:
    """Load a local pretrained mBART; never touches the network. `config_overrides`
    replace config values before the model is built (e.g. dropout=0.3, as the reference)."""
    folder = check_pretrained_folder(folder)
    config = MBartConfig.from_pretrained(folder, local_files_only=True)
    config.update(config_overrides)
    if config.model_type != "mbart":
        raise SltError(f"{folder}: model_type is {config.model_type!r}, not 'mbart'")
    model = MBartForConditionalGeneration.from_pretrained(
        folder, config=config, local_files_only=True, use_safetensors=None
    )
    logger.info("loaded mBART from %s: %.2f M parameters", folder, parameter_count(model) / 1e6)
    return model


def parameter_count(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
