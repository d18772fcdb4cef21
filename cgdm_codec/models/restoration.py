"""A restoration network built for one pass: gated blocks, alias-free resampling, SFF skips.

    x~ ──stem── gated blocks ── e_0 ─ blur↓ ── e_1 ─ blur↓ ── e_2 ─ blur↓ ── e_3     (features)
                                                                              │
    middle: gated blocks on e_3, conditioned on (t, q, s) ─────────────────────┘
    decoder, deepest first: 1x1, bilinear↑, SFF(e_i, up), gated blocks;
            at full resolution + zero-initialised 1x1 of x_t; head 3x3 ── + x~ = x0

It serves the sampler as the U-Net does (``condition``, ``consistency``, ``denoise``, so the
ONNX roles ``condition``/``features``/``denoise`` are unchanged), but is designed for the
one step the codec decodes with: the noise x_t matters little there, so it enters only at
the end, through a zero-initialised layer, and the work goes into x~.

Why this shape (NAFNet's, adapted):
- a gated block (channel layer norm, 1x1, depthwise 3x3, simple gate, 1x1, then a gated 1x1
  feed-forward) costs about 6c^2 multiply-adds per pixel at width c, so a level at half the
  resolution and twice the width costs the same per image pixel: the depth sits where it is
  cheap, at 1/8 resolution;
- NAFNet's channel attention pools over the whole image; over a tile it would make every
  tile's answer depend on the tile's size. Here the channel gains come from the condition
  vector instead (global per image: the quantiser and the syntax), and the only norm is per
  pixel, so a pixel's output does not depend on the tile around it beyond the receptive field;
- down by blur-pool and up by bilinear interpolation, whose filters are 0 at the Nyquist
  frequency, and full-resolution convolutions at the end: no pixel phase has filters of its
  own, so the network cannot paint the one-pixel grid a pixel-shuffle head can.

The head is zero-initialised: an untrained network returns x~ exactly. Images in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion_config import RestorationConfig, UNetConfig
from ..layers.blurpool import BlurDownsample, upsample2x
from ..layers.channel_norm import ChannelNorm
from ..layers.gate import SimpleGate
from ..layers.nyquist import NyquistNull
from ..layers.sff import SyntaxFeatureFusion
from .condition import Conditioned


class GatedBlock(nn.Module):
    """Two gated residual branches (spatial, then channel mixing); with a condition, the
    spatial branch's channels are scaled by gains made from it (zero-initialised: 1 at first)."""

    def __init__(self, channels: int, expand: int, cond_dim: int | None = None) -> None:
        super().__init__()
        c, wide = channels, channels * expand
        self.norm1 = ChannelNorm(c)
        self.spatial = nn.Sequential(nn.Conv2d(c, wide, 1), nn.Conv2d(wide, wide, 3, padding=1, groups=wide),
                                     SimpleGate())
        self.out1 = nn.Conv2d(wide // 2, c, 1)
        self.gain = nn.Linear(cond_dim, wide // 2) if cond_dim else None
        if self.gain is not None:
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.gain.bias)
        self.norm2 = ChannelNorm(c)
        self.mlp = nn.Sequential(nn.Conv2d(c, wide, 1), SimpleGate(), nn.Conv2d(wide // 2, c, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.spatial(self.norm1(x))
        if self.gain is not None:
            h = h * (1 + self.gain(F.silu(cond)))[:, :, None, None]
        x = x + self.out1(h)
        return x + self.mlp(self.norm2(x))


class RestorationNet(Conditioned):
    """Predicts x0 from x~ (and x_t), the base quantiser and the syntax vector, in one pass."""

    def __init__(self, unet_cfg: UNetConfig, cfg: RestorationConfig, syntax_length: int) -> None:
        super().__init__()
        if len(cfg.encoder_blocks) != len(cfg.widths) - 1 or len(cfg.decoder_blocks) != len(cfg.widths) - 1:
            raise ValueError("encoder_blocks and decoder_blocks need one count per level above the deepest")
        self.cfg, self.unet_cfg = cfg, unet_cfg
        dim, w = unet_cfg.cond_dim, cfg.widths
        self.add_condition(unet_cfg, syntax_length)

        self.stem = nn.Conv2d(3, w[0], 3, padding=1)
        self.encoder = nn.ModuleList(
            nn.Sequential(*(GatedBlock(w[i], cfg.expand) for _ in range(n))) for i, n in enumerate(cfg.encoder_blocks))
        self.downs = nn.ModuleList(
            nn.Sequential(BlurDownsample(w[i]), nn.Conv2d(w[i], w[i + 1], 1)) for i in range(len(w) - 1))
        self.middle = nn.ModuleList(GatedBlock(w[-1], cfg.expand, dim) for _ in range(cfg.middle_blocks))
        self.ups = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 1) for i in range(len(w) - 1))
        self.fuse = nn.ModuleList(SyntaxFeatureFusion(w[i], dim) for i in range(len(w) - 1))
        self.decoder = nn.ModuleList(
            nn.ModuleList(GatedBlock(w[i], cfg.expand, dim) for _ in range(n)) for i, n in enumerate(cfg.decoder_blocks))
        self.noise_in = nn.Conv2d(3, w[0], 1) if cfg.noise_input else None
        self.head = nn.Sequential(nn.Conv2d(w[0], 3, 3, padding=1))
        for layer in [self.head[0]] + ([self.noise_in] if self.noise_in is not None else []):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if cfg.nyquist_null:
            self.head.append(NyquistNull(3))

    def consistency(self, x_tilde: torch.Tensor) -> list[torch.Tensor]:
        """The unconditioned encoder's features of x~ at every level, the deepest last."""
        h, feats = self.stem(x_tilde), []
        for blocks, down in zip(self.encoder, self.downs):
            h = blocks(h)
            feats.append(h)
            h = down(h)
        feats.append(h)
        return feats

    def denoise(self, x_t: torch.Tensor, x_tilde: torch.Tensor, feats: list[torch.Tensor],
                cond: torch.Tensor) -> torch.Tensor:
        """x0 (float32) from the features of x~; x_t only through the noise input, if any."""
        h = feats[-1]
        for block in self.middle:
            h = block(h, cond)
        for i in reversed(range(len(self.decoder))):
            h = self.fuse[i](feats[i], upsample2x(self.ups[i](h)), cond)
            if i == 0 and self.noise_in is not None:
                h = h + self.noise_in(x_t.to(h.dtype))
            for block in self.decoder[i]:
                h = block(h, cond)
        return x_tilde.float() + self.head(h).float()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_tilde: torch.Tensor,
                syntax: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        cond = self.condition(t, syntax, quality)
        return self.denoise(x_t, x_tilde, self.consistency(x_tilde), cond)
