"""A learned factorised prior over the integer syntax symbols, and their exact coding.

Each of the S syntax dimensions has its own discretised Gaussian (learned mean and scale).
Training sees a differentiable rate: -log2 of the Gaussian mass of a unit interval around
the value plus uniform noise. Coding uses integer frequency tables built once from the
learned parameters by ``update_tables`` and stored with the weights, so encoder and decoder
never evaluate a transcendental function: decoding is bit-exact on any machine.

Symbols are clamped to [-R, R] (R = ``SyntaxConfig.symbol_range``); the Gaussian mass
beyond the range is folded into the two end symbols. The table of dimension i holds
1 + floor(p_i(n) * (2^16 - (2R + 1))) for n = -R .. R, and the stream is coded with
constriction's range coder (``queue.RangeEncoder``, ``Categorical(perfect=False)`` built
from those integers), words written little-endian with trailing zero bytes removed; the
decoder appends zero bytes up to a whole word (the range decoder reads absent words as
zero, which the tests pin down).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..diffusion_config import SyntaxConfig
from .syntax_coding import decode_symbols, encode_symbols

TABLE_TOTAL = 1 << 16
MIN_SCALE = 0.11
MIN_LIKELIHOOD = 1e-9


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def interval_mass(values: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Gaussian mass of [v - 1/2, v + 1/2], evaluated on the tail side for accuracy."""
    centred = (values - mean).abs()  # the mass is symmetric about the mean
    upper = normal_cdf((0.5 - centred) / scale)
    lower = normal_cdf((-0.5 - centred) / scale)
    return upper - lower


class SyntaxPrior(nn.Module):
    def __init__(self, cfg: SyntaxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mean = nn.Parameter(torch.zeros(cfg.length))
        self.log_scale = nn.Parameter(torch.zeros(cfg.length))
        self.register_buffer("table", torch.zeros(cfg.length, cfg.alphabet, dtype=torch.int32))

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp_min(MIN_SCALE)

    def likelihoods(self, values: torch.Tensor) -> torch.Tensor:
        """Probability of each value (B, S) under the prior, bounded away from zero."""
        mass = interval_mass(values.float(), self.mean, self.scale())
        return mass.clamp_min(MIN_LIKELIHOOD)

    def bits(self, values: torch.Tensor) -> torch.Tensor:
        """Rate in bits per sample (B,); pass noisy values in training, symbols otherwise."""
        return -torch.log2(self.likelihoods(values)).sum(dim=1)

    @staticmethod
    def add_noise(values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training-time stand-in for rounding: additive uniform noise in [-1/2, 1/2)."""
        u = torch.rand(values.shape, generator=generator, device="cpu") - 0.5
        return values + u.to(values.device, values.dtype)

    # ----------------------------------------------------------------- coding
    @torch.no_grad()
    def update_tables(self) -> None:
        """Rebuild the integer coding tables from the current parameters (call before export)."""
        r = self.cfg.symbol_range
        n = torch.arange(-r, r + 1, dtype=torch.float64)
        mean = self.mean.detach().double().cpu()[:, None]
        scale = self.scale().detach().double().cpu()[:, None]
        cdf_hi = normal_cdf((n[None] + 0.5 - mean) / scale)
        cdf_lo = normal_cdf((n[None] - 0.5 - mean) / scale)
        cdf_hi[:, -1], cdf_lo[:, 0] = 1.0, 0.0  # fold the tails into the end symbols
        pmf = (cdf_hi - cdf_lo).clamp_min(0.0)
        freq = 1 + torch.floor(pmf * (TABLE_TOTAL - self.cfg.alphabet))
        self.table.copy_(freq.to(torch.int32))

    def encode_syntax(self, symbols: torch.Tensor) -> bytes:
        """Range-code S integer symbols (clamped to the coded range) into bytes."""
        return encode_symbols(self.table.cpu().numpy(), symbols.detach().cpu().long().view(-1).numpy())

    def decode_syntax(self, data: bytes) -> torch.Tensor:
        """Inverse of ``encode_syntax``: a LongTensor (S,)."""
        return torch.from_numpy(decode_symbols(self.table.cpu().numpy(), data))
