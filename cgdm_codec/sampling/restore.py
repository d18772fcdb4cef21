"""The decoder's diffusion post-processing, and the encoder's per-image syntax optimisation.

``restore`` is a pure function of (x~, syntax symbols, quality, seed, steps, weights): it
starts from the format's periodic seeded noise, runs the tiled DDIM, and blends the tiles'
x0 predictions at every step. The encoder can therefore simulate exactly what a decoder
will produce (up to floating-point differences between machines).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ..diffusion_config import SamplerConfig
from ..models.cgdm import Cgdm
from ..models.syntax import quantize, symbols_of
from ..models.unet import ConsistencyGuidedUNet
from ..train.common import autocast_for
from .ddim import DDIMScheduler
from .noise import noise_patch, tiled_noise
from .tiling import make_grid, pad_to_canvas, run_tiled
from .unrolled import unrolled_sample

CHANNELS_LAST = torch.channels_last


def seeded_noise(seed: int, height: int, width: int, sampler: SamplerConfig) -> torch.Tensor:
    """x_T for a (height, width) canvas: the seed's patch repeated periodically, (1, 3, H, W)."""
    patch = noise_patch(seed, 3, sampler.noise_period)
    return torch.from_numpy(tiled_noise(patch, height, width)).unsqueeze(0)


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
    """Seeded, tiled DDIM decode of x~ ((1, 3, H, W) or (3, H, W) in [0, 1]).

    ``net`` is a whole ``Cgdm`` (its sampler settings are then the default) or its U-Net.
    ``syntax`` holds the integer symbols (S,), ``quality`` is zero-based. Returns the
    restored image (1, 3, H, W), float32 in [0, 1], on the CPU. Moves the U-Net to
    ``device`` in channels-last layout. ``consume_input`` lets it reuse a float32 x~'s
    memory (the caller must not use x~ afterwards): one image-sized tensor less.

    Memory: besides one chunk of tiles, the loop holds three canvas-sized float32
    tensors (x~, the sample, the blended x0) plus one temporary in the DDIM step.
    """
    if isinstance(net, Cgdm):
        sampler, net = sampler or net.cfg.sampler, net.unet
    sampler = sampler or SamplerConfig()
    device = torch.device(device)
    net = net.to(device, memory_format=CHANNELS_LAST).eval()
    x_tilde = _batched(x_tilde).to(device, torch.float32)
    # Same float32 operations either way; in place only when the caller hands x~ over.
    x_tilde = x_tilde.mul_(2.0).sub_(1.0) if consume_input else x_tilde * 2.0 - 1.0
    height, width = x_tilde.shape[-2:]
    grid = make_grid(height, width, sampler.tile, sampler.overlap, net.multiple)
    canvas_tilde = pad_to_canvas(x_tilde, grid)
    del x_tilde  # the canvas is the same tensor when no padding was needed
    sample = seeded_noise(seed, *grid.canvas, sampler).to(device)
    syn = syntax.to(device).float().view(1, -1)
    q = torch.tensor([quality], device=device)
    scheduler = DDIMScheduler.from_config(sampler)
    scheduler.set_timesteps(steps or sampler.steps)
    # The cache trades memory for speed; it gives way as the canvas grows, so that cache
    # plus the image-sized state stays near what the largest images need without it.
    canvas_bytes = 3 * 4 * grid.canvas[0] * grid.canvas[1]
    cache_budget = max(0, feature_cache_bytes - 2 * canvas_bytes)
    denoiser = TileDenoiser(net, device, precision, -(-len(grid) // max_batch_tiles), cache_budget)
    for i, t in enumerate(scheduler.timesteps):
        denoiser.cond = net.condition(torch.tensor([t], device=device), syn, q)
        x0 = run_tiled(denoiser, [sample, canvas_tilde], grid, max_batch_tiles)
        sample = scheduler.step_(x0, t, sample)
        del x0
        if progress is not None:
            progress(i + 1, len(scheduler.timesteps))
    del canvas_tilde, denoiser
    # The same operations as (sample + 1) / 2 then clamp, in the sample's own memory.
    out = sample[..., :height, :width].add_(1.0).div_(2.0)
    return out.clamp_(0.0, 1.0).cpu()


class _FrozenParameters:
    """Temporarily stop gradients into a module's parameters (restored on exit)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = list(module.parameters())
        self.flags = [p.requires_grad for p in self.params]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags):
            p.requires_grad_(flag)


def random_patch(height: int, width: int, size: int, gen: torch.Generator) -> tuple[slice, slice]:
    """A random window of at most ``size`` x ``size`` inside the image."""
    ph, pw = min(size, height), min(size, width)
    top = int(torch.randint(height - ph + 1, (1,), generator=gen))
    left = int(torch.randint(width - pw + 1, (1,), generator=gen))
    return slice(top, top + ph), slice(left, left + pw)


def optimize_syntax(model: Cgdm, x: torch.Tensor, x_tilde: torch.Tensor, quality: int, seed: int,
                    iterations: int = 8, lr: float = 5e-5, patch: int = 256,
                    steps: int | None = None, grad_steps: int = 1,
                    lambda_d: float = 1.0, lambda_p: float = 0.3, lambda_f: float = 0.05,
                    device: torch.device | str = "cpu", precision: str = "auto",
                    rng_seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The encoder's per-image syntax: fine-tune a copy of the generator, return its symbols.

    Each iteration decodes one random patch with the fixed-step DDIM, starting from the
    very noise the decoder will use there (the seeded periodic x_T), and descends the
    fine-stage loss. The syntax is always computed from the whole image, as it will be
    transmitted. The paper uses 250 iterations; each costs one unrolled sampling run, so
    the default here is small. Returns the LongTensor (S,) of symbols to transmit.
    """
    from ..train.losses import fine_loss

    device = torch.device(device)
    sampler = model.cfg.sampler
    r = model.cfg.syntax.symbol_range
    x = _batched(x).to(device, torch.float32) * 2.0 - 1.0
    xt = _batched(x_tilde).to(device, torch.float32) * 2.0 - 1.0
    height, width = x.shape[-2:]
    generator = copy.deepcopy(model.syntax).to(device).train()
    if iterations > 0:
        unet = model.unet.to(device).eval()
        prior = model.prior.to(device)
        m = unet.multiple
        patch = max(m, patch // m * m)
        grid = make_grid(height, width, sampler.tile, sampler.overlap, m)
        noise = seeded_noise(seed, *grid.canvas, sampler).to(device)
        scheduler = DDIMScheduler.from_config(sampler)
        opt = torch.optim.Adam(generator.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(rng_seed)
        q = torch.tensor([quality], device=device)
        with _FrozenParameters(unet), _FrozenParameters(prior):
            for it in range(iterations):
                rows, cols = random_patch(height, width, patch, gen)
                pgrid = make_grid(rows.stop - rows.start, cols.stop - cols.start, patch, 0, m)
                xp = pad_to_canvas(x[..., rows, cols], pgrid)
                xtp = pad_to_canvas(xt[..., rows, cols], pgrid)
                x_T = noise[..., rows.start:rows.start + xp.shape[-2], cols.start:cols.start + xp.shape[-1]]
                x_T = pad_to_canvas(x_T, pgrid)
                with autocast_for(device, precision):
                    values = generator(x, xt, tiled=True)
                    bpp = prior.bits(prior.add_noise(values, gen)) / (height * width)
                    s_hat = quantize(values, r, straight_through=True)
                    sample = unrolled_sample(unet, scheduler, x_T, xtp, s_hat, q,
                                             steps or sampler.steps, grad_steps)
                    loss, _ = fine_loss((sample + 1) / 2, (xp + 1) / 2, bpp,
                                        lambda_d, lambda_p, lambda_f)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if progress is not None:
                    progress(it + 1, iterations)
    with torch.no_grad(), autocast_for(device, precision):
        values = generator.eval()(x, xt, tiled=True)
    return symbols_of(values.float(), r).view(-1).cpu()
