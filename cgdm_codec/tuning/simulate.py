"""The decoder's procedure on chosen tiles, so the encoder optimises what will be decoded.

The decoder pads x~ to its tile canvas, starts every tile from the seed's periodic noise
at that tile's position and runs the fixed-step DDIM. Running single decoder tiles the same
way reproduces the decode inside each tile; only the few pixels the decoder blends with a
neighbour (the 8-pixel overlaps, and what the network sees of them) can differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion_config import SamplerConfig
from ..models.unet import ConsistencyGuidedUNet
from ..sampling.ddim import DDIMScheduler
from ..sampling.restore import seeded_noise
from ..sampling.tiling import TileGrid, make_grid, pad_to_canvas
from ..sampling.unrolled import unrolled_sample


@dataclass
class DecoderView:
    """One image as the decoder lays it out: tile grid, x_T, x~ and (for losses) x.

    ``original`` and ``base`` are the caller's x and x~ as given, in [0, 1]: a full decode
    for scoring must start from exactly the x~ the decoder will have.
    """

    grid: TileGrid
    noise: torch.Tensor  # (1, 3, H', W') x_T on the canvas, [-1, 1] scale
    x_tilde: torch.Tensor  # (1, 3, H', W') in [-1, 1]
    x: torch.Tensor  # (1, 3, H', W') in [-1, 1]
    original: torch.Tensor  # (1, 3, H, W) in [0, 1]
    base: torch.Tensor  # (1, 3, H, W) in [0, 1]

    @property
    def valid(self) -> tuple[int, int]:
        """Image pixels inside every tile: tiles only hang over the image on single-tile axes."""
        th, tw = self.grid.tile
        return min(th, self.grid.height), min(tw, self.grid.width)


def decoder_view(x: torch.Tensor, x_tilde: torch.Tensor, seed: int, sampler: SamplerConfig,
                 multiple: int, device: torch.device) -> DecoderView:
    """``x`` and ``x_tilde`` are (1, 3, H, W) in [0, 1]."""
    height, width = x.shape[-2:]
    grid = make_grid(height, width, sampler.tile, sampler.overlap, multiple, sampler.tiling)
    noise = seeded_noise(seed, *grid.canvas, sampler).to(device)
    to_canvas = lambda im: pad_to_canvas(im.to(device, torch.float32) * 2.0 - 1.0, grid)  # noqa: E731
    return DecoderView(grid, noise, to_canvas(x_tilde), to_canvas(x), x, x_tilde)


def with_seed(view: DecoderView, seed: int, sampler: SamplerConfig) -> DecoderView:
    return DecoderView(view.grid, seeded_noise(seed, *view.grid.canvas, sampler).to(view.noise.device),
                       view.x_tilde, view.x, view.original, view.base)


def crop_tiles(canvas: torch.Tensor, positions: list[tuple[int, int]], tile: tuple[int, int]) -> torch.Tensor:
    th, tw = tile
    return torch.cat([canvas[..., y:y + th, x:x + tw] for y, x in positions])


def spread(count: int, n: int) -> list[int]:
    """``n`` indices spread evenly over range(count) (all of them when n >= count)."""
    if n >= count:
        return list(range(count))
    if n <= 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)})


def sample_tiles(unet: ConsistencyGuidedUNet, scheduler: DDIMScheduler, view: DecoderView,
                 positions: list[tuple[int, int]], syntax: torch.Tensor, quality: int, steps: int,
                 grad_steps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded tiles and the original's tiles, both cropped to image pixels, in [0, 1].

    ``syntax`` is (1, S) and may carry gradient (straight-through quantised values).
    """
    tile, (vh, vw) = view.grid.tile, view.valid
    x_T = crop_tiles(view.noise, positions, tile)
    xt = crop_tiles(view.x_tilde, positions, tile)
    n = len(positions)
    q = torch.full((n,), quality, dtype=torch.long, device=x_T.device)
    out = unrolled_sample(unet, scheduler, x_T, xt, syntax.expand(n, -1), q, steps, grad_steps)
    target = crop_tiles(view.x, positions, tile)
    return (out[..., :vh, :vw] + 1) / 2, (target[..., :vh, :vw] + 1) / 2
