"""The decoder's procedure on chosen tiles, so the encoder optimises what will be decoded.

The decoder pads x~ to its tile canvas, starts every tile from the seed's periodic noise
at that tile's position and runs the fixed-step DDIM. Running single decoder tiles the same
way reproduces the decode inside each tile; only the few pixels the decoder blends with a
neighbour (the 8-pixel overlaps, and what the network sees of them) can differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..diffusion_config import SamplerConfig
from ..models.unet import ConsistencyGuidedUNet
from ..sampling.ddim import DDIMScheduler
from ..sampling.noise import noise_patch
from ..sampling.tiling import PaddedImage, TileGrid, make_grid
from ..sampling.unrolled import unrolled_sample


@dataclass
class DecoderView:
    """One image as the decoder lays it out: its tile grid, its seed's noise, x~ and x.

    ``original`` and ``base`` are the caller's x and x~ as given, in [0, 1]: a full decode
    for scoring must start from exactly the x~ the decoder will have. Tiles of the padded
    canvas (and of x_T, which repeats the noise patch over it) are cut on demand rather than
    kept as canvas-sized copies: at 6000 x 4000 each copy is 288 MB.
    """

    grid: TileGrid
    patch: torch.Tensor  # (3, P, P) noise patch; x_T is this patch repeated over the canvas
    original: torch.Tensor  # (1, 3, H, W) in [0, 1]
    base: torch.Tensor  # (1, 3, H, W) in [0, 1]
    device: torch.device

    @property
    def valid(self) -> tuple[int, int]:
        """Image pixels inside every tile: tiles only hang over the image on single-tile axes."""
        th, tw = self.grid.tile
        return min(th, self.grid.height), min(tw, self.grid.width)

    def noise_tiles(self, positions: list[tuple[int, int]]) -> torch.Tensor:
        """x_T of the tiles at ``positions``: (N, 3, th, tw), [-1, 1] scale, on the device."""
        (th, tw), (_, ph, pw) = self.grid.tile, self.patch.shape
        tiles = [self.patch[:, (torch.arange(th) + y) % ph][..., (torch.arange(tw) + x) % pw]
                 for y, x in positions]
        return torch.stack(tiles).to(self.device)

    def base_tiles(self, positions: list[tuple[int, int]]) -> torch.Tensor:
        """x~ on the canvas at ``positions``, in [-1, 1]."""
        return self._canvas_tiles(self.base, positions)

    def original_tiles(self, positions: list[tuple[int, int]]) -> torch.Tensor:
        """x on the canvas at ``positions``, in [-1, 1]."""
        return self._canvas_tiles(self.original, positions)

    def _canvas_tiles(self, image: torch.Tensor, positions: list[tuple[int, int]]) -> torch.Tensor:
        th, tw = self.grid.tile
        padded = PaddedImage.of(image, self.grid)
        return to_signed(torch.cat([padded.crop(y, x, th, tw) for y, x in positions]).to(self.device, torch.float32))

    def image(self) -> tuple[torch.Tensor, torch.Tensor]:
        """x and x~ of the whole image (not padded), in [0, 1], float32 on the device."""
        return self.original.to(self.device, torch.float32), self.base.to(self.device, torch.float32)


def to_signed(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the networks' range, with the decoder's float32 operations."""
    return image * 2.0 - 1.0


def decoder_view(x: torch.Tensor, x_tilde: torch.Tensor, seed: int, sampler: SamplerConfig,
                 multiple: int, device: torch.device) -> DecoderView:
    """``x`` and ``x_tilde`` are (1, 3, H, W) in [0, 1]."""
    height, width = x.shape[-2:]
    grid = make_grid(height, width, sampler.tile, sampler.overlap, multiple, sampler.tiling)
    return DecoderView(grid, seed_patch(seed, sampler), x, x_tilde, device)


def seed_patch(seed: int, sampler: SamplerConfig) -> torch.Tensor:
    return torch.from_numpy(noise_patch(seed, 3, sampler.noise_period))


def with_seed(view: DecoderView, seed: int, sampler: SamplerConfig) -> DecoderView:
    return replace(view, patch=seed_patch(seed, sampler))


def sample_tiles(unet: ConsistencyGuidedUNet, scheduler: DDIMScheduler, view: DecoderView,
                 positions: list[tuple[int, int]], syntax: torch.Tensor, condition: int, steps: int,
                 grad_steps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded tiles and the original's tiles, both cropped to image pixels, in [0, 1].

    ``syntax`` is (1, S) and may carry gradient (straight-through quantised values).
    """
    vh, vw = view.valid
    x_T, xt = view.noise_tiles(positions), view.base_tiles(positions)
    q = torch.tensor([condition], dtype=torch.long, device=x_T.device)  # one condition for all tiles
    out = unrolled_sample(unet, scheduler, x_T, xt, syntax.view(1, -1), q, steps, grad_steps)
    target = view.original_tiles(positions)
    return (out[..., :vh, :vw] + 1) / 2, (target[..., :vh, :vw] + 1) / 2
