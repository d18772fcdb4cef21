"""The decoder's diffusion post-processing.

``decode_canvas`` is a pure function of (x~, syntax symbols, condition, seed, steps, weights,
realism): it starts from the format's periodic seeded noise, runs the tiled sampler, and
blends the tiles' x0 predictions at every step. The encoder can therefore simulate exactly
what a decoder will produce (up to floating-point differences between machines). It runs
any ``Denoiser``: ONNX Runtime on numpy arrays (torch-free) or torch on tensors.
``restore`` is the torch entry point (a ``Cgdm`` or U-Net in, tensors out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..diffusion_config import SamplerConfig
from .arrays import clip_, ops_for
from .ddim import DDIMScheduler
from .noise import noise_patch, tiled_noise
from .sample import Denoiser, Steering, sample
from .tiling import PaddedImage, TileGrid, make_grid

if TYPE_CHECKING:
    import torch

    from ..models.cgdm import Cgdm
    from ..models.unet import ConsistencyGuidedUNet

CHUNK_PIXELS = 8 * 256 * 256  # tiles run as one batch
SIDE_BY_SIDE_CHUNK_PIXELS = 6 * 384 * 384  # tiles run side by side, one per core


def seeded_noise(seed: int, height: int, width: int, sampler: SamplerConfig) -> "torch.Tensor":
    """x_T for a (height, width) canvas as a tensor: the seed's patch repeated, (1, 3, H, W)."""
    import torch

    return torch.from_numpy(seeded_noise_array(seed, height, width, sampler))


def seeded_noise_array(seed: int, height: int, width: int, sampler: SamplerConfig) -> np.ndarray:
    """x_T for a (height, width) canvas: the seed's patch repeated periodically, (1, 3, H, W)."""
    return tiled_noise(noise_patch(seed, 3, sampler.noise_period), height, width)[None]


def periodic_noise(patch: Any, grid: TileGrid) -> PaddedImage:
    """x_T as a lazy canvas: the (1, 3, P, P) patch repeated from (0, 0), as
    ``seeded_noise_array`` builds it, but cut tile by tile (24 MP: 288 MB and 0.7 s less)."""
    p = patch.shape[-1]
    return PaddedImage(patch, np.arange(grid.rows.canvas) % p, np.arange(grid.cols.canvas) % p)


def chunk_tiles(grid: TileGrid, max_batch_tiles: int, lanes: int = 1) -> int:
    """Tiles per network call: at most ``max_batch_tiles`` and a pixel budget.

    Run as one batch (``lanes`` 1), a chunk's activations are the decoder's largest
    transient: 8 tiles of 384 px took a 24 MP decode from 1.7 to 2.2 GB, so a batch holds
    at most CHUNK_PIXELS. Run side by side, ``lanes`` tiles at once, a chunk holds only its
    tiles' inputs, features and outputs; it may be larger (fewer waits at its end) and is a
    multiple of ``lanes``, so that no core works out a chunk's last tile alone.
    """
    th, tw = grid.tile
    budget = SIDE_BY_SIDE_CHUNK_PIXELS if lanes > 1 else CHUNK_PIXELS
    n = max(1, min(max_batch_tiles, budget // (th * tw)))
    return n - n % lanes if n >= lanes > 1 else n


def lanes(denoiser: Denoiser, grid: TileGrid) -> int:
    """How many of the grid's tiles the denoiser runs at once (``OrtDenoiser.lanes``; 1 for
    denoisers that run a chunk as one batch)."""
    of = getattr(denoiser, "lanes", None)
    return of(grid.tile[0] * grid.tile[1]) if of is not None else 1


def uint8_to_signed(tile: Any) -> Any:
    """rgb_to_tensor's [0, 1] float32 then [-1, 1], the same operations in order."""
    if isinstance(tile, np.ndarray):
        out = tile.astype(np.float32)
        out /= np.float32(255.0)
        out *= np.float32(2.0)
        out -= np.float32(1.0)
        return out
    return tile.float().div_(255.0).mul_(2.0).sub_(1.0)


def decode_canvas(denoiser: Denoiser, x_tilde: Any, syntax: Any, condition: int, seed: int, steps: int,
                  sampler: SamplerConfig, *, realism: float | None = None, max_batch_tiles: int = 8,
                  progress: Callable[[int, int], None] | None = None,
                  feature_cache_bytes: int = 1 << 30, consume_input: bool = False,
                  tile_progress: Callable[[int, int], None] | None = None) -> Any:
    """The restored image (1, 3, H, W), float32 in [0, 1], of x~ given as (1, 3, H, W).

    x~ is uint8 0..255 (a base whose reconstruction is 8-bit, AV1: it stays 8-bit, each tile
    is converted on its own, a quarter of the memory) or float in [0, 1]; a numpy array for
    a numpy denoiser, a tensor on the denoiser's device for a torch one. ``consume_input``
    lets it reuse a float x~'s memory (the caller must not use x~ afterwards). ``realism``
    is for networks with a realism input (None: they run at 0). ``condition`` is the base
    codec's (``BaseCodec.condition``: the level index or the AV1 qindex). ``progress`` and
    ``tile_progress`` follow the steps and the tiles (``sample.sample``).

    Memory: besides one chunk of tiles, the loop holds x~ (image-sized: its padded canvas is
    read through ``PaddedImage``), the blended x0 (canvas-sized float32), the blending
    weights, and from the second step of a multi-step decode the sample (x_T is read from
    its periodic patch until a step needs it whole).
    """
    ops = ops_for(x_tilde)
    convert = None
    if str(x_tilde.dtype) in ("uint8", "torch.uint8"):
        convert = uint8_to_signed
    elif consume_input:
        x_tilde = ops.float32(x_tilde)
        x_tilde *= 2.0
        x_tilde -= 1.0
    else:
        x_tilde = ops.float32(x_tilde) * 2.0 - 1.0
    height, width = x_tilde.shape[-2:]
    grid = make_grid(height, width, sampler.tile, sampler.overlap, denoiser.multiple, sampler.tiling)
    canvas_tilde = PaddedImage.of(x_tilde, grid, convert)
    del x_tilde
    x_T = periodic_noise(ops.asarray(noise_patch(seed, 3, sampler.noise_period)[None]), grid)
    scheduler = DDIMScheduler.from_config(sampler)
    scheduler.set_timesteps(steps)
    # The cache trades memory for speed; it gives way as the canvas grows, so that cache
    # plus the image-sized state stays near what the largest images need without it.
    canvas_bytes = 3 * 4 * grid.canvas[0] * grid.canvas[1]
    steering = Steering(np.asarray(syntax, dtype=np.float32).reshape(1, -1), np.array([condition]),
                        None if realism is None else np.array([realism], dtype=np.float32))
    with denoiser.grad(False):
        out = sample(denoiser, scheduler, x_T, canvas_tilde, grid, steering,
                     max_batch=chunk_tiles(grid, max_batch_tiles, lanes(denoiser, grid)),
                     cache_bytes=max(0, feature_cache_bytes - 2 * canvas_bytes), in_place=True,
                     progress=progress, tile_progress=tile_progress)
    del canvas_tilde
    # The same operations as (sample + 1) / 2 then clamp, in the sample's own memory.
    out = out[..., :height, :width]
    out += 1.0
    out /= 2.0
    return clip_(out, 0.0, 1.0) if isinstance(out, np.ndarray) else out.clamp_(0.0, 1.0)


def restore(net: "Cgdm | ConsistencyGuidedUNet", x_tilde: "torch.Tensor", syntax: "torch.Tensor",
            condition: int, seed: int, steps: int | None = None, device: "torch.device | str" = "cpu",
            precision: str = "auto", max_batch_tiles: int = 8,
            progress: Callable[[int, int], None] | None = None,
            sampler: SamplerConfig | None = None, realism: float | None = None,
            feature_cache_bytes: int = 1 << 30, consume_input: bool = False,
            tile_progress: Callable[[int, int], None] | None = None) -> "torch.Tensor":
    """``decode_canvas`` with the torch U-Net: x~ a tensor ((1, 3, H, W) or (3, H, W)), the
    result a CPU tensor. ``net`` is a whole ``Cgdm`` (its sampler settings are then the
    default) or its U-Net; ``syntax`` holds the integer symbols (S,), ``condition`` the base
    codec's condition. Moves the U-Net to ``device`` (channels-last)."""
    import torch

    from ..models.cgdm import Cgdm
    from .torch_denoiser import TorchDenoiser

    if isinstance(net, Cgdm):
        sampler, net = sampler or net.cfg.sampler, net.unet
    sampler = sampler or SamplerConfig()
    denoiser = TorchDenoiser(net, device, precision)
    x_tilde = x_tilde.unsqueeze(0) if x_tilde.dim() == 3 else x_tilde
    syntax = syntax.detach().cpu().float().numpy()
    out = decode_canvas(denoiser, x_tilde.to(denoiser.device), syntax, condition, seed, steps or sampler.steps,
                        sampler, realism=realism, max_batch_tiles=max_batch_tiles, progress=progress,
                        feature_cache_bytes=feature_cache_bytes, consume_input=consume_input,
                        tile_progress=tile_progress)
    return out.cpu() if isinstance(out, torch.Tensor) else torch.from_numpy(out)
