"""The one sampling loop, shared by the decoder, the encoder's simulation of it and training.

    x_T ─┬─ for t in scheduler.timesteps:  cond = denoiser.condition(t, steering)
         │     every tile of every image:  x0 = denoiser.denoise(x_t, x~, features, cond)
         │     blend the tiles' x0 (tiling.run_tiled), x_t = scheduler.step(x0, t, x_t)
         └─ x_0

A ``Denoiser`` is the network seen from the sampler: the consistency features of x~ (once
per tile, cached within a budget), the condition vector of a step, and one x0 prediction.
``sampling.torch_denoiser`` runs the U-Net in torch (training, fine-tuning, CUDA);
``runtime.OrtDenoiser`` runs exported graphs in ONNX Runtime on numpy arrays, so a CPU
decode never imports torch. The decoder passes one image cut into overlapping tiles;
training passes a batch of crops that are one tile each, with gradients through the last
``grad_steps`` steps; the encoder's simulation passes chosen decoder tiles as a batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .ddim import DDIMScheduler
from .tiling import PaddedImage, TileGrid, run_tiled


@dataclass(frozen=True)
class Steering:
    """What the network is conditioned on, one row per image or one row shared by all:
    syntax values (B, S) float, base conditions (B,) integer (the AV1 quantiser or the
    level index) and, for a network with a realism input, realism settings (B,) in [0, 1]."""

    syntax: Any
    quality: Any
    realism: Any = None


class Denoiser(Protocol):
    """May also have ``lanes(tile_pixels) -> int``: how many tiles of that size it runs at
    once, side by side (``runtime.OrtDenoiser``); the decoder then sizes its chunks in whole
    rounds of them (``restore.chunk_tiles``)."""

    multiple: int  # tile sides must be multiples of this

    def condition(self, t: int, steering: Steering) -> Any:
        """The condition vector (rows of ``steering``, D) at timestep ``t``."""

    def features(self, x_tilde: Any) -> list[Any]:
        """Consistency features of a batch of x~ tiles in [-1, 1]."""

    def denoise(self, x_t: Any, x_tilde: Any, features: list[Any], cond: Any) -> Any:
        """The x0 prediction (float32) of a batch of tiles; ``cond`` has 1 or n rows."""

    def grad(self, enabled: bool) -> contextlib.AbstractContextManager:
        """A context that enables or disables gradients (a no-op without autograd)."""

    def grad_enabled(self) -> bool: ...


def sample(denoiser: Denoiser, scheduler: DDIMScheduler, x_T: Any, x_tilde: Any, grid: TileGrid,
           steering: Steering, *, max_batch: int = 8, cache_bytes: float = float("inf"),
           grad_steps: int | None = None, in_place: bool = False,
           progress: Callable[[int, int], None] | None = None,
           tile_progress: Callable[[int, int], None] | None = None) -> Any:
    """Run ``scheduler.timesteps`` from ``x_T`` (B, 3, H, W canvases, or a ``PaddedImage``
    that reads a periodic noise patch as the canvas: a one-step in-place decode then never
    builds x_T whole) and return the last x0.

    ``x_tilde`` is canvas-sized or a ``tiling.PaddedImage``, in [-1, 1]. Consistency
    features are computed at the first step, chunk by chunk, and kept for the later steps
    while all chunks' features fit in ``cache_bytes``. ``grad_steps``: only the last k steps
    carry gradients (None: all); the features carry them whenever gradients are on.
    ``in_place`` reuses the sample's and the prediction's memory (a decoder, no autograd).
    ``progress(step, steps)`` follows the steps; ``tile_progress(done, total)`` the tiles, over
    all steps (total = tiles x steps), after each chunk: a one-step decode of a 24 MP image is
    one step of 30 s, whose tiles are what a user can watch.
    """
    timesteps = scheduler.timesteps
    jobs = (x_T.image if isinstance(x_T, PaddedImage) else x_T).shape[0] * len(grid)
    chunks = -(-jobs // max(1, max_batch))
    outer = denoiser.grad_enabled()
    cache: dict[int, list[Any]] = {}
    cond: Any = None
    tiles_done = [0, jobs * len(timesteps)]  # tile predictions made, and to make

    def predict(chunk: int, tiles: list[Any], owners: list[int]) -> Any:
        x_t, x_tilde_tiles = tiles
        feats = cache.get(chunk)
        if feats is None:
            with denoiser.grad(outer):
                feats = denoiser.features(x_tilde_tiles)
            if sum(f.nbytes for f in feats) * chunks <= cache_bytes:
                cache[chunk] = feats
        rows = cond if cond.shape[0] == 1 else cond[owners]
        x0 = denoiser.denoise(x_t, x_tilde_tiles, feats, rows)
        if tile_progress is not None:
            tiles_done[0] += len(owners)
            tile_progress(*tiles_done)
        return x0

    current = x_T
    for i, t in enumerate(timesteps):
        with denoiser.grad(outer and (grad_steps is None or i >= len(timesteps) - grad_steps)):
            cond = denoiser.condition(t, steering)
            x0 = run_tiled(predict, [current, x_tilde], grid, max_batch, with_owners=True)
            if isinstance(current, PaddedImage) and not (in_place and scheduler.is_last(t)):
                current = current.crop(0, 0, *grid.canvas)  # a lazy x_T, needed whole by this step
            current = scheduler.step_(x0, t, current) if in_place else scheduler.step(x0, t, current)
        del x0
        if progress is not None:
            progress(i + 1, len(timesteps))
    return current
