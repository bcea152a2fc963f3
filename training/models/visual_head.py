"""The visual head: per-step backbone features → gloss logits and 512-d gloss features.

As the reference's `VisualHead` (TwoStream-SLT / SingleStream, `modelling/Visualhead.py`):

    features (B, T', C_in)
      → Linear C_in → hidden, BatchNorm over the valid steps only, ReLU
      → + sinusoidal positional encoding, dropout
      → temporal conv block: pre-LayerNorm, Conv1d hidden → ff (k) … Conv1d ff → hidden (k),
        ReLU + dropout between, dropout after, residual      (PHOENIX config: kernels [3, 3])
      → LayerNorm                                             = `gloss_features`, what S2T consumes
      → Linear hidden → V                                     = gloss logits (CTC, blank = 0)

Padding: the reference masks the BatchNorm statistics only. We also zero padded steps
before each temporal conv, which makes a clip's outputs exactly the same whatever
the batch it is padded into (in eval mode), at the cost of one multiply per conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slt_serve.errors import SltError


@dataclass(frozen=True)
class VisualHeadOptions:
    """Shape of a visual head; defaults are the reference's PHOENIX-2014T S2G config."""

    hidden_size: int = 512  # width of the head, and of the gloss features
    ff_size: int = 2048  # inner width of the temporal conv block
    ff_kernel_sizes: tuple[int, ...] = (3, 3)  # kernel (odd) of each Conv1d in the block, ≥ 2 convs
    dropout: float = 0.1  # after the input projection and inside the conv block
    positional_encoding: bool = True  # add sinusoidal positions before the conv block
    project_input: bool = True  # Linear C_in → hidden; False needs C_in == hidden_size

    def __post_init__(self) -> None:
        if self.hidden_size < 2 or self.hidden_size % 2:
            raise SltError(f"visual head hidden_size must be even and ≥ 2, got {self.hidden_size}")
        if self.ff_size < 1:
            raise SltError(f"visual head ff_size must be ≥ 1, got {self.ff_size}")
        kernels = self.ff_kernel_sizes
        if len(kernels) < 2 or any(k < 1 or k % 2 == 0 for k in kernels):
            raise SltError(
                f"visual head ff_kernel_sizes must be ≥ 2 odd kernels (e.g. (3, 3)), got {kernels}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise SltError(f"visual head dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class HeadOutput:
    """What one head computes for a padded batch."""

    logits: Tensor  # (B, T', V) gloss logits
    log_probs: Tensor  # (B, T', V) log-softmax of the logits
    features: Tensor  # (B, T', hidden) gloss features


def step_mask(lengths: Tensor, steps: int) -> Tensor:
    """(B, steps) bool: True at the first `lengths[b]` steps of row b."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_positions(steps: int, size: int, device=None, start: Tensor | int = 0) -> Tensor:
    """(steps, size) sin/cos positional encoding of "Attention is all you need", of
    positions start, start + 1, … (`start`: an int or a 0-d integer tensor)."""
    position = (torch.arange(steps, device=device) + start).to(torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, size, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / size)
    )
    table = torch.zeros(steps, size, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d over (B, T, C) whose training statistics come from valid steps only,
    so padding never shifts them (the reference's `MaskedNorm`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if not self.training:
            return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        valid = x[mask]  # (valid steps, C)
        if valid.shape[0] < 2:
            raise SltError(
                "a training batch needs at least 2 valid feature steps (clips of ≥ 5 frames)"
            )
        normed = self.norm(valid)
        return x.masked_scatter(mask.unsqueeze(-1), normed)


class TemporalConvBlock(nn.Module):
    """Pre-LayerNorm residual block of 'same'-padded Conv1d layers over time."""

    def __init__(self, size: int, ff_size: int, kernels: tuple[int, ...], dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(size, eps=1e-6)
        widths = [size] + [ff_size] * (len(kernels) - 1) + [size]
        self.convs = nn.ModuleList(
            nn.Conv1d(cin, cout, k, padding=k // 2)
            for cin, cout, k in zip(widths[:-1], widths[1:], kernels)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T): zero padded steps before each conv
        y = self.layer_norm(x).transpose(1, 2)
        for i, conv in enumerate(self.convs):
            y = conv(y * keep)
            if i < len(self.convs) - 1:
                y = torch.relu(y)
            y = self.dropout(y)
        return x + y.transpose(1, 2)


class VisualHead(nn.Module):
    """(B, T', C_in) features and valid lengths → gloss logits and gloss features."""

    def __init__(self, input_size: int, vocab_size: int, options: VisualHeadOptions) -> None:
        super().__init__()
        if vocab_size < 2:
            raise SltError(f"gloss vocabulary needs the blank and ≥ 1 gloss, got size {vocab_size}")
        if not options.project_input and input_size != options.hidden_size:
            raise SltError(
                f"visual head without input projection needs input size {options.hidden_size}, "
                f"got {input_size}; set project_input=True"
            )
        hidden = options.hidden_size
        self.options = options
        self.input_size = input_size
        self.project = nn.Linear(input_size, hidden) if options.project_input else nn.Identity()
        self.norm = MaskedBatchNorm(hidden)
        self.dropout = nn.Dropout(options.dropout)
        self.block = TemporalConvBlock(
            hidden, options.ff_size, options.ff_kernel_sizes, options.dropout
        )
        self.layer_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.classifier = nn.Linear(hidden, vocab_size)

    def forward(self, x: Tensor, lengths: Tensor, first_step: Tensor | int = 0) -> HeadOutput:
        """`first_step`: the position of step 0 (a window of a longer clip: its first step's
        index in the clip, so the positional encoding is the whole clip's)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise SltError(
                f"visual head expects (batch, time, {self.input_size}), got {tuple(x.shape)}"
            )
        mask = step_mask(lengths, x.shape[1])
        x = torch.relu(self.norm(self.project(x), mask))
        if self.options.positional_encoding:
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, first_step).to(x.dtype)
        features = self.layer_norm(self.block(self.dropout(x), mask))
        logits = self.classifier(features)
        return HeadOutput(logits, logits.log_softmax(-1), features)
