"""Per-image fine-tuning of a copy of the syntax generator (the paper's online optimisation).

Every iteration decodes a few random decoder tiles exactly as the decoder will (same seed,
noise position, steps and tile geometry), with the gradient let through the last DDIM step,
and descends the objective. The syntax is always computed from the whole image, as it is
transmitted. The shared model is never modified: the copy is thrown away after the encode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ..device import autocast_for
from ..models.cgdm import Cgdm
from ..models.syntax import SyntaxGenerator, quantize, symbols_of
from ..sampling.ddim import DDIMScheduler
from ..quality.objective import Objective
from .simulate import DecoderView, sample_tiles


class frozen:
    """Stop gradients into a module's parameters for a while (flags restored on exit)."""

    def __init__(self, *modules: torch.nn.Module) -> None:
        self.params = [p for m in modules for p in m.parameters()]
        self.flags = [p.requires_grad for p in self.params]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags):
            p.requires_grad_(flag)


def generator_symbols(generator: SyntaxGenerator, view: DecoderView, symbol_range: int,
                      device: torch.device, precision: str, most: int | None = None) -> torch.Tensor:
    """The transmitted symbols (S,) of a generator for the whole image (``most`` of its
    pooling windows: ``Effort.syntax_windows``)."""
    x, xt = view.image()
    with torch.no_grad(), autocast_for(device, precision):
        values = generator.eval()(x, xt, tiled=True, unit=True, most=most)
    return symbols_of(values.float(), symbol_range).view(-1).cpu()


def finetune_generator(model: Cgdm, view: DecoderView, condition: int, iterations: int,
                       tiles_per_iter: int, lr: float, steps: int, objective: Objective,
                       device: torch.device, precision: str = "auto", rng_seed: int = 0,
                       progress: Callable[[int, int], None] | None = None) -> SyntaxGenerator:
    """A copy of ``model.syntax`` after ``iterations`` Adam steps on this image."""
    generator = copy.deepcopy(model.syntax).to(device).train()
    if iterations <= 0:
        return generator.eval()
    unet, prior = model.unet.to(device).eval(), model.prior.to(device)
    scheduler = DDIMScheduler.from_config(model.cfg.sampler)
    opt = torch.optim.Adam(generator.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(rng_seed)
    positions = view.grid.positions()
    x, xt = view.image()
    pixels = view.grid.height * view.grid.width
    r = model.cfg.syntax.symbol_range
    with frozen(unet, prior):
        for it in range(iterations):
            pick = torch.randperm(len(positions), generator=rng)[:tiles_per_iter].tolist()
            with autocast_for(device, precision):
                values = generator(x, xt, tiled=True, unit=True)
                bpp = prior.bits(prior.add_noise(values, rng)) / pixels
                s_hat = quantize(values, r, straight_through=True)
                decoded, target = sample_tiles(unet, scheduler, view, [positions[i] for i in pick],
                                               s_hat, condition, steps)
                loss = objective.torch(decoded, target, bpp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress(it + 1, iterations)
    return generator.eval()
