"""The decoder's diffusion post-processing.

``restore`` is a pure function of (x~, syntax symbols, quality, seed, steps, weights): it
starts from the format's periodic seeded noise, runs the tiled DDIM, and blends the tiles'
x0 predictions at every step. The encoder can therefore simulate exactly what a decoder
will produce (up to floating-point differences between machines).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion_config import SamplerConfig
from ..models.cgdm import Cgdm
from ..models.unet import ConsistencyGuidedUNet
from ..device import autocast_for
from .ddim import DDIMScheduler
from .noise import noise_patch, tiled_noise
from .tiling import PaddedImage, TileGrid, make_grid, run_tiled

CHANNELS_LAST = torch.channels_last
CHUNK_PIXELS = 8 * 256 * 256


def seeded_noise(seed: int, height: int, width: int, sampler: SamplerConfig) -> torch.Tensor:
    """x_T for a (height, width) canvas: the seed's patch repeated periodically, (1, 3, H, W)."""
    patch = noise_patch(seed, 3, sampler.noise_period)
    return torch.from_numpy(tiled_noise(patch, height, width)).unsqueeze(0)


def chunk_tiles(grid: TileGrid, max_batch_tiles: int) -> int:
    """Tiles per network call: at most ``max_batch_tiles`` and CHUNK_PIXELS tile pixels.

    A chunk's activations are the decoder's largest transient: 8 tiles of 384 px took a
    24 MP decode from 1.7 to 2.2 GB. The cap keeps 256-px tiles at 8 per chunk.
    """
    th, tw = grid.tile
    return max(1, min(max_batch_tiles, CHUNK_PIXELS // (th * tw)))


def uint8_to_signed(tile: torch.Tensor) -> torch.Tensor:
    """rgb_to_tensor's [0, 1] float32 then restore's [-1, 1], the same operations in order."""
    return tile.float().div_(255.0).mul_(2.0).sub_(1.0)


def _batched(image: torch.Tensor) -> torch.Tensor:
    return image.unsqueeze(0) if image.dim() == 3 else image


class TileDenoiser:
    """The U-Net applied to batches of tiles at the current step (the ``run_tiled`` callback).

    Consistency features depend only on x~, so each chunk's are computed at the first step
    and kept for the others, unless all chunks together would exceed ``cache_bytes``.
    """

    def __init__(self, net: ConsistencyGuidedUNet, device: torch.device, precision: str,
                 chunks: int, cache_bytes: int) -> None:
        self.net, self.device, self.precision = net, device, precision
        self.chunks, self.cache_bytes = chunks, cache_bytes
        self.cache: dict[int, list[torch.Tensor]] = {}
        self.cond: torch.Tensor | None = None  # (1, D), set before every step

    def __call__(self, chunk: int, tiles: list[torch.Tensor]) -> torch.Tensor:
        x_t, x_tilde = (tile.contiguous(memory_format=CHANNELS_LAST) for tile in tiles)
        with autocast_for(self.device, self.precision):
            feats = self.cache.get(chunk)
            if feats is None:
                feats = self.net.consistency(x_tilde)
                size = sum(f.numel() * f.element_size() for f in feats)
                if size * self.chunks <= self.cache_bytes:
                    self.cache[chunk] = feats
            return self.net.denoise(x_t, x_tilde, feats, self.cond.expand(x_t.shape[0], -1))


@torch.no_grad()
def restore(net: Cgdm | ConsistencyGuidedUNet, x_tilde: torch.Tensor, syntax: torch.Tensor,
            quality: int, seed: int, steps: int | None = None, device: torch.device | str = "cpu",
            precision: str = "auto", max_batch_tiles: int = 8,
            progress: Callable[[int, int], None] | None = None,
            sampler: SamplerConfig | None = None,
            feature_cache_bytes: int = 1 << 30, consume_input: bool = False) -> torch.Tensor:
    """Seeded, tiled DDIM decode of x~ ((1, 3, H, W) or (3, H, W) in [0, 1], or uint8 0..255).

    ``net`` is a whole ``Cgdm`` (its sampler settings are then the default) or its U-Net.
    ``syntax`` holds the integer symbols (S,), ``quality`` is zero-based. Returns the
    restored image (1, 3, H, W), float32 in [0, 1], on the CPU. Moves the U-Net to
    ``device`` in channels-last layout. ``consume_input`` lets it reuse a float32 x~'s
    memory (the caller must not use x~ afterwards): one image-sized tensor less. A uint8 x~
    (a base whose reconstruction is 8-bit, AV1) decodes to the same values as its
    ``rgb_to_tensor`` float form, in a quarter of the memory.

    Memory: besides one chunk of tiles, the loop holds x~ (image-sized: its padded canvas is
    read through ``PaddedImage``), two canvas-sized float32 tensors (the sample, the blended
    x0) and the blending weights.
    """
    if isinstance(net, Cgdm):
        sampler, net = sampler or net.cfg.sampler, net.unet
    sampler = sampler or SamplerConfig()
    device = torch.device(device)
    net = net.to(device, memory_format=CHANNELS_LAST).eval()
    x_tilde = _batched(x_tilde).to(device)
    signed = None
    if x_tilde.dtype == torch.uint8:  # 8-bit x~ stays 8-bit; each tile is converted on its own
        signed = uint8_to_signed
    elif consume_input:  # same float32 operations either way; in place when x~ is handed over
        x_tilde = x_tilde.to(torch.float32).mul_(2.0).sub_(1.0)
    else:
        x_tilde = x_tilde.to(torch.float32) * 2.0 - 1.0
    height, width = x_tilde.shape[-2:]
    grid = make_grid(height, width, sampler.tile, sampler.overlap, net.multiple, sampler.tiling)
    canvas_tilde = PaddedImage.of(x_tilde, grid, signed)
    del x_tilde
    sample = seeded_noise(seed, *grid.canvas, sampler).to(device)
    syn = syntax.to(device).float().view(1, -1)
    q = torch.tensor([quality], device=device)
    scheduler = DDIMScheduler.from_config(sampler)
    scheduler.set_timesteps(steps or sampler.steps)
    # The cache trades memory for speed; it gives way as the canvas grows, so that cache
    # plus the image-sized state stays near what the largest images need without it.
    canvas_bytes = 3 * 4 * grid.canvas[0] * grid.canvas[1]
    cache_budget = max(0, feature_cache_bytes - 2 * canvas_bytes)
    batch = chunk_tiles(grid, max_batch_tiles)
    denoiser = TileDenoiser(net, device, precision, -(-len(grid) // batch), cache_budget)
    for i, t in enumerate(scheduler.timesteps):
        denoiser.cond = net.condition(torch.tensor([t], device=device), syn, q)
        x0 = run_tiled(denoiser, [sample, canvas_tilde], grid, batch)
        sample = scheduler.step_(x0, t, sample)
        del x0
        if progress is not None:
            progress(i + 1, len(scheduler.timesteps))
    del canvas_tilde, denoiser
    # The same operations as (sample + 1) / 2 then clamp, in the sample's own memory.
    out = sample[..., :height, :width].add_(1.0).div_(2.0)
    return out.clamp_(0.0, 1.0).cpu()

