"""The syntax generator: a short vector that tells the decoder what x~ lost.

It looks at the original x and the base reconstruction x~ (so it can describe their
difference), pools every scale of a small stride-2 conv net globally, and maps the
concatenated pooled features to ``length`` numbers. Global pooling makes the vector
image-wide and size-independent, which is what lets a few tens of integers steer the
fusion at every tile. Rounding gives the transmitted integer symbols.

With ``SyntaxConfig.statistics`` the MLP also sees measured facts about the pair: the mean
detail of x, of x~ and of their difference in each Laplacian band and colour channel
(logarithms of the pooled means). Pooled conv features of a freshly initialised generator
hardly differ between images (their spread across images was 0.05-0.1 of a rounding step
in the shipped generators), so without such inputs every image got nearly the same symbols
and the U-Net had nothing per-image to learn from.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..diffusion_config import SyntaxConfig
from ..quality.bands import STAT_BANDS, band_means_torch
from ..windows import pool_windows

#: Floor of the band statistics (images in [-1, 1]; their bands: ``quality.bands.STAT_BANDS``).
STAT_EPS = 1e-3


#: Band means per image: of x, x~ and x - x~, per band and colour channel.
STAT_WIDTH = 3 * STAT_BANDS * 3


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return (torch.round(x) - x).detach() + x


class SyntaxGenerator(nn.Module):
    def __init__(self, cfg: SyntaxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stages, prev = [], 6
        for width in cfg.widths:
            stages.append(nn.Sequential(nn.Conv2d(prev, width, 3, stride=2, padding=1),
                                        nn.LeakyReLU(0.1),
                                        nn.Conv2d(width, width, 3, padding=1),
                                        nn.LeakyReLU(0.1)))
            prev = width
        self.stages = nn.ModuleList(stages)
        width = sum(cfg.widths) + (STAT_WIDTH if cfg.statistics else 0)
        self.mlp = nn.Sequential(nn.Linear(width, cfg.hidden), nn.LeakyReLU(0.1),
                                 nn.Linear(cfg.hidden, cfg.length))

    def pooled(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """Global means of every stage's features (and the band means), concatenated, float32."""
        h, means = torch.cat([x, x_tilde], dim=1), []
        for stage in self.stages:
            h = stage(h)
            means.append(h.float().mean(dim=(-2, -1)))
        if self.cfg.statistics:
            means.append(band_means_torch(x, x_tilde))
        return torch.cat(means, dim=1)

    def from_pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """The continuous syntax values from ``pooled`` features (of a whole image or tiles)."""
        if self.cfg.statistics:
            n = sum(self.cfg.widths)
            feats = torch.cat([feats[:, :n], torch.log(feats[:, n:] + STAT_EPS)], dim=1)
        return self.mlp(feats)

    def pooled_tiled(self, x: torch.Tensor, x_tilde: torch.Tensor, unit: bool = False,
                     most: int | None = None) -> torch.Tensor:
        """``pooled`` for one large image, tile by tile, as an area-weighted mean of tile means.

        Bounds memory at encode time; it differs from the untiled result only through the
        convolutions' zero padding at tile borders. When gradients are needed (per-image
        fine-tuning), each tile's activations are recomputed in the backward pass instead
        of being kept, so memory stays at one tile's worth for any image size. ``unit``:
        the images are in [0, 1] and each tile is mapped to [-1, 1] on its own, so that a
        very large image needs no [-1, 1] copies (the same values as mapping it whole).
        ``most``: pool only that many of the tiles, spread evenly (``windows.pool_windows``).
        """
        tile = self.cfg.pool_tile
        _, _, h, w = x.shape
        pooled = self._pooled_unit if unit else self.pooled
        if h <= tile and w <= tile:
            return pooled(x, x_tilde)
        total, area = 0.0, 0
        for top, left in pool_windows(h, w, tile, most):
            sl = (..., slice(top, top + tile), slice(left, left + tile))
            a = x[sl].shape[-2] * x[sl].shape[-1]
            if torch.is_grad_enabled():
                feats = checkpoint(pooled, x[sl], x_tilde[sl], use_reentrant=False)
            else:
                feats = pooled(x[sl], x_tilde[sl])
            total = total + feats * a
            area += a
        return total / area

    def _pooled_unit(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        return self.pooled(x * 2.0 - 1.0, x_tilde * 2.0 - 1.0)

    def forward(self, x: torch.Tensor, x_tilde: torch.Tensor, tiled: bool = False,
                unit: bool = False, most: int | None = None) -> torch.Tensor:
        """Continuous syntax values (B, length), float32; images in [-1, 1] ([0, 1] with ``unit``)."""
        if tiled:
            feats = self.pooled_tiled(x, x_tilde, unit, most)
        else:
            feats = self._pooled_unit(x, x_tilde) if unit else self.pooled(x, x_tilde)
        return self.from_pooled(feats)


def quantize(values: torch.Tensor, symbol_range: int, straight_through: bool) -> torch.Tensor:
    """Round (with a straight-through gradient in training) and clamp to the coded range."""
    rounded = ste_round(values) if straight_through else torch.round(values)
    return rounded.clamp(-symbol_range, symbol_range)


def symbols_of(values: torch.Tensor, symbol_range: int) -> torch.Tensor:
    """The integer symbols actually transmitted, as a LongTensor."""
    return quantize(values.detach(), symbol_range, straight_through=False).long()

