"""The consistency-guided U-Net: two encoders, one decoder, SFF fusion at every level.

    x_t ──stem── diffusion encoder (t, q, s conditioned) ── d_0 .. d_L ─┐
    x~  ──stem── consistency encoder (unconditioned)     ── e_0 .. e_L ─┤ SFF_i(e_i, d_i)
                                         decoder: deepest level first, upsample, concatenate
                                         the fused skip, residual blocks ── head ── + x~ = x0

The consistency features depend on x~ alone, so a decoder computes them once per tile and
reuses them at every DDIM step. The output is a residual on x~ through a zero-initialised
head: an untrained network returns x~ exactly, so restoration never starts worse than the
base codec. All images are in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion_config import UNetConfig
from ..layers.nyquist import NyquistNull
from ..layers.sff import SyntaxFeatureFusion
from .condition import Conditioned


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


Apply = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def apply(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer(x)


def apply_to_constant(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer`` on a map that is constant everywhere, given as its (B, C, 1, 1) value: away
    from any border a convolution then sums its kernel over space (stride changes nothing)."""
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, layer.weight.sum(dim=(2, 3), keepdim=True), layer.bias)
    return layer(x)


class ResBlock(nn.Module):
    """Pre-activation residual block; with a condition it applies scale-shift modulation."""

    def __init__(self, cin: int, cout: int, cond_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * cout) if cond_dim else None
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, conv: Apply = apply) -> torch.Tensor:
        """``conv``: how a convolution is applied (``apply_to_constant`` for a constant map; a
        group norm of a constant map is the norm of its (B, C, 1, 1) value)."""
        h = conv(self.conv1, F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None:
            scale, shift = self.film(F.silu(cond))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = conv(self.conv2, self.drop(F.silu(h)))
        return conv(self.skip, x) + h


class Encoder(nn.Module):
    """Pixel-unshuffle stem, then per level ``depth`` blocks (a skip feature) and a 2x downsample."""

    def __init__(self, cfg: UNetConfig, cond_dim: int | None) -> None:
        super().__init__()
        r, ch = cfg.unshuffle, cfg.channels
        self.unshuffle = r
        self.stem = nn.Sequential(nn.PixelUnshuffle(r), nn.Conv2d(3 * r * r, ch[0], 3, padding=1))
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            blocks = [ResBlock(prev if j == 0 else c, c, cond_dim, cfg.dropout) for j in range(cfg.depth)]
            self.levels.append(nn.ModuleList(blocks))
            if i < len(ch) - 1:
                self.downs.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            prev = c

    def forward(self, x: torch.Tensor | None, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The features of ``x``, or with x None those of an all-zero input on an unbounded
        canvas, (rows of ``cond``, C, 1, 1) per level: every map is then constant, so the
        network runs on 2x2 maps (a group norm refuses a single value per group) and keeps one
        pixel. The stem of a zero input is its bias, which two stem strides of zeros give."""
        if x is not None:
            return self._levels(self.stem(x), cond, apply)
        if cond is None:
            raise ValueError("the features of a zero input need the condition they are conditioned on")
        r = self.unshuffle
        zero = torch.zeros(cond.shape[0], 3, 2 * r, 2 * r, dtype=cond.dtype, device=cond.device)
        return [f[..., :1, :1] for f in self._levels(self.stem(zero), cond, apply_to_constant)]

    def _levels(self, h: torch.Tensor, cond: torch.Tensor | None, conv: Apply) -> list[torch.Tensor]:
        feats = []
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, cond, conv)
            feats.append(h)
            if i < len(self.downs):
                h = conv(self.downs[i], h)
        return feats


class Decoder(nn.Module):
    """Deepest level first: SFF-fuse (e_i, d_i), join the upsampled state, run blocks.

    The state is narrowed to the next level's width before upsampling (conv at the coarse
    resolution, then nearest 2x), which keeps the costly full-resolution convolutions small.
    """

    def __init__(self, cfg: UNetConfig, cond_dim: int) -> None:
        super().__init__()
        ch = cfg.channels
        self.constant_d = not cfg.noise_input
        self.fuse = nn.ModuleList(SyntaxFeatureFusion(c, cond_dim) for c in ch)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, c in enumerate(ch):
            cin = c if i == len(ch) - 1 else 2 * c
            blocks = [ResBlock(cin if j == 0 else c, c, cond_dim, cfg.dropout) for j in range(cfg.depth)]
            self.levels.append(nn.ModuleList(blocks))
            if i > 0:  # maps level i to level i-1's width before the 2x upsampling
                self.ups.append(nn.Conv2d(c, ch[i - 1], 3, padding=1))

    def forward(self, e: list[torch.Tensor], d: list[torch.Tensor], cond: torch.Tensor) -> torch.Tensor:
        h = None
        for i in reversed(range(len(self.levels))):
            u = self.fuse[i](e[i], d[i], cond, constant=self.constant_d)
            if h is not None:
                h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), u], dim=1)
            else:
                h = u
            for block in self.levels[i]:
                h = block(h, cond)
            if i > 0:
                h = self.ups[i - 1](h)
        return h


class ConsistencyGuidedUNet(Conditioned):
    """Predicts x0 from (x_t, t) guided by x~, the quality level and the syntax vector."""

    def __init__(self, cfg: UNetConfig, syntax_length: int) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.cond_dim
        self.add_condition(cfg, syntax_length)
        self.diffusion_encoder = Encoder(cfg, dim)
        self.consistency_encoder = Encoder(cfg, None)
        self.decoder = Decoder(cfg, dim)
        r = cfg.unshuffle
        self.head = nn.Sequential(norm(cfg.channels[0]), nn.SiLU(),
                                  nn.Conv2d(cfg.channels[0], 3 * r * r, 3, padding=1),
                                  nn.PixelShuffle(r))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)
        if cfg.nyquist_null:
            self.head.append(NyquistNull(3))

    def consistency(self, x_tilde: torch.Tensor) -> list[torch.Tensor]:
        """Consistency features e_i of x~; independent of t, so reusable across steps."""
        return self.consistency_encoder(x_tilde)

    def denoise(self, x_t: torch.Tensor, x_tilde: torch.Tensor, feats: list[torch.Tensor],
                cond: torch.Tensor) -> torch.Tensor:
        """x0 prediction (float32) given precomputed consistency features."""
        if self.cfg.noise_input:
            d = self.diffusion_encoder(x_t, cond)
        else:  # x_t unused: its expectation, zero (UNetConfig.noise_input)
            d = self.diffusion_encoder(None, cond)
        h = self.decoder(feats, d, cond)
        return x_tilde.float() + self.head(h).float()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_tilde: torch.Tensor,
                syntax: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        cond = self.condition(t, syntax, quality)
        return self.denoise(x_t, x_tilde, self.consistency(x_tilde), cond)
