"""The single-pass encoder on numpy arrays: syntax from the generator, no search, and the
choice between the diffusion stage and the base-only decode, all without torch.

``--effort fast`` and ``default`` search nothing (``effort.py``), so they need only the
generator's syntax and, when asked to decide, the objective on what the decoder will
produce: a full decode when the image has few tiles, else the decoder's procedure on a
spread of its tiles (each tile started from the seed's noise at its position, as the
decoder starts it). ``search.py`` does the same with torch and can also search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..diffusion_config import SamplerConfig
from ..entropy_models.syntax_coding import encode_symbols
from ..quality.objective import Objective
from ..runtime import OrtDenoiser, OrtSyntaxGenerator, symbols_of, unit_float
from ..sampling.ddim import DDIMScheduler
from ..sampling.noise import noise_patch
from ..sampling.restore import decode_canvas, periodic_noise, uint8_to_signed
from ..sampling.sample import Steering, sample
from ..sampling.tiling import PaddedImage, make_grid
from ..windows import spread
from .effort import Effort, scored_tile_count


@dataclass(frozen=True)
class Pass:
    symbols: np.ndarray  # (S,) int64
    syntax: bytes  # the symbols range-coded: the file's syntax section
    best_score: float | None = None
    base_score: float | None = None

    @property
    def base_only_wins(self) -> bool:
        return self.best_score is not None and self.base_score is not None and self.base_score <= self.best_score


def chw(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> a (1, 3, H, W) view."""
    return rgb.transpose(2, 0, 1)[None]


def single_pass(generator: OrtSyntaxGenerator, denoiser: OrtDenoiser, table: np.ndarray,
                sampler: SamplerConfig, x_rgb: np.ndarray, xt_rgb: np.ndarray, condition: int, seed: int,
                steps: int, effort: Effort, decide: bool,
                progress: Callable[[str], None] | None = None,
                steps_done: Callable[[int, int], None] | None = None,
                objective: Objective = Objective()) -> Pass:
    """The generator's symbols and, with ``decide``, the ``objective`` (the generation's
    own) of the decode they give against the base-only decode's. ``progress``
    hears each stage, ``steps_done`` the scoring decode's sampler steps."""
    say = progress or (lambda _: None)
    say("syntax: the generator's pass")
    symbols = symbols_of(generator.values(chw(x_rgb), chw(xt_rgb), effort.syntax_windows),
                         generator.cfg.symbol_range)
    if not decide:
        return Pass(symbols, encode_symbols(table, symbols))
    h, w = x_rgb.shape[:2]
    syntax = encode_symbols(table, symbols)
    bpp = 8.0 * len(syntax) / (h * w)
    grid = make_grid(h, w, sampler.tile, sampler.overlap, denoiser.multiple, sampler.tiling)
    n = scored_tile_count(grid.tile, effort.score_tiles)
    if len(grid) <= n:
        say("scoring the diffusion decode against the base-only decode (whole image)")
        x01, xt01 = unit_float(chw(x_rgb)), unit_float(chw(xt_rgb))
        decoded = decode_canvas(denoiser, chw(xt_rgb), symbols, condition, seed, steps, sampler,
                                progress=steps_done)
        return Pass(symbols, syntax, objective.numpy(decoded, x01, bpp),
                    objective.numpy(xt01, x01, 0.0))
    positions = [grid.positions()[i] for i in spread(len(grid), n)]
    (th, tw), vh, vw = grid.tile, min(grid.tile[0], h), min(grid.tile[1], w)
    noise = periodic_noise(noise_patch(seed, 3, sampler.noise_period)[None], grid)
    x_T = np.concatenate([noise.crop(y, x, th, tw) for y, x in positions])
    xt_tiles = PaddedImage.of(chw(xt_rgb), grid, uint8_to_signed)
    x_tiles = PaddedImage.of(chw(x_rgb), grid, uint8_to_signed)
    base = np.concatenate([xt_tiles.crop(y, x, th, tw) for y, x in positions])
    target = np.concatenate([x_tiles.crop(y, x, th, tw) for y, x in positions])
    scheduler = DDIMScheduler.from_config(sampler)
    scheduler.set_timesteps(steps)
    steering = Steering(symbols.astype(np.float32).reshape(1, -1), np.array([condition]))
    one_tile = make_grid(th, tw, max(th, tw), 0, denoiser.multiple)
    say(f"scoring the diffusion decode against the base-only decode ({len(positions)} tiles)")
    out = sample(denoiser, scheduler, x_T, base, one_tile, steering, max_batch=8,
                 progress=steps_done)

    def unit(a: np.ndarray) -> np.ndarray:
        return (a[..., :vh, :vw] + 1.0) / 2.0

    return Pass(symbols, syntax, objective.numpy(unit(out), unit(target), bpp),
                objective.numpy(unit(base), unit(target), 0.0))
