"""Run a fully convolutional transform over a large tensor in overlapping tiles.

Memory stays bounded by the tile size, and because every tile carries a margin wider than
the transform's receptive field, the stitched result equals the untiled one (up to floating
point summation order).
"""

from __future__ import annotations

from typing import Callable

import torch


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int,
              margin: int, scale: float) -> torch.Tensor:
    """Apply ``fn`` (output size = input size * scale) tile by tile over the last two dims.

    ``tile`` and ``margin`` are in input pixels; ``tile * scale`` and ``margin * scale`` must
    be whole numbers.
    """
    h, w = x.shape[-2:]
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        return fn(x)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(0, top - margin), max(0, left - margin)
            t1, l1 = min(h, top + tile + margin), min(w, left + tile + margin)
            y = fn(x[..., t0:t1, l0:l1])
            if out is None:
                out = y.new_empty(*y.shape[:-2], round(h * scale), round(w * scale))
            ot, ol = round((top - t0) * scale), round((left - l0) * scale)
            th = round(min(tile, h - top) * scale)
            tw = round(min(tile, w - left) * scale)
            out[..., round(top * scale):round(top * scale) + th,
                round(left * scale):round(left * scale) + tw] = y[..., ot:ot + th, ol:ol + tw]
    assert out is not None
    return out
