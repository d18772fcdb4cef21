"""Overlapping tiles for images of any size, and blending the network's tile predictions.

The network is trained on fixed-size crops and its memory grows with the input, so the
decoder runs it on tiles (paper: 256 x 256 with 8 pixels of overlap) and blends the
overlaps with smooth ramps after every denoising step, which keeps neighbouring tiles on
one shared trajectory instead of letting them drift apart and meet at visible seams.

Geometry, per axis, for an image side L, tile side T, overlap O and network multiple m:
- L <= T: one tile of side max(ceil(L / m) * m, 2 m); the image is padded up to it
  (reflection where the padding is shorter than the side, edge replication otherwise).
  The 2 m floor keeps the deepest feature map at least 2 x 2, where group normalisation
  still has statistics to compute.
- L > T: n = ceil((L - O) / (T - O)) tiles of side T, with starts spread evenly,
  start_k = floor((2 k (L - T) + n - 1) / (2 (n - 1))) (k (L - T) / (n - 1) rounded half
  up), so every pair of neighbours overlaps by at least O and no padding is needed.

The blending works on numpy arrays (the ONNX Runtime decoder, torch-free) and on torch
tensors (training, the torch decoder) alike, through ``arrays.ArrayOps``.

That is the "fixed" tiling of the first weights, and it wastes work: 768 px need four
tiles of 256 (1024 px of tiles), because three would leave no room for the overlap.
The "fitted" tiling (``SamplerConfig.tiling``) reads T as the largest tile side and uses
the same n tiles, each only as large as covering L with overlap O needs:
side = ceil((L + (n - 1) O) / n / m) m, starts spread as above. With T = 320, 768 px
take three tiles of 264; a 768 x 512 image 6 tiles (1.06x its pixels) instead of 12 (2x).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .arrays import ArrayOps, ops_for

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class AxisTiles:
    tile: int
    canvas: int
    starts: tuple[int, ...]


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    rows: AxisTiles
    cols: AxisTiles
    overlap: int

    @property
    def canvas(self) -> tuple[int, int]:
        return self.rows.canvas, self.cols.canvas

    @property
    def tile(self) -> tuple[int, int]:
        return self.rows.tile, self.cols.tile

    def positions(self) -> list[tuple[int, int]]:
        """Top-left corners of all tiles, row-major."""
        return [(y, x) for y in self.rows.starts for x in self.cols.starts]

    def __len__(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)


FIXED, FITTED = "fixed", "fitted"
TILINGS = (FIXED, FITTED)


def axis_tiles(length: int, tile: int, overlap: int, multiple: int, tiling: str = FIXED) -> AxisTiles:
    """Tile side, padded canvas side and tile starts along one axis (see module doc)."""
    if tiling not in TILINGS:
        raise ValueError(f"unknown tiling {tiling!r}")
    if length < 1:
        raise ValueError("image sides must be positive")
    if tile % multiple or not 0 <= overlap < tile:
        raise ValueError(f"tile {tile} must be a multiple of {multiple} and exceed overlap {overlap}")
    if length <= tile:
        side = max(-(-length // multiple) * multiple, min(2 * multiple, tile))
        return AxisTiles(side, side, (0,))
    n = -(-(length - overlap) // (tile - overlap))
    if tiling == FITTED:
        tile = min(tile, -(-(length + (n - 1) * overlap) // (n * multiple)) * multiple)
    span = length - tile
    starts = tuple((2 * k * span + n - 1) // (2 * (n - 1)) for k in range(n))
    return AxisTiles(tile, length, starts)


def make_grid(height: int, width: int, tile: int, overlap: int, multiple: int,
              tiling: str = FIXED) -> TileGrid:
    return TileGrid(height, width, axis_tiles(height, tile, overlap, multiple, tiling),
                    axis_tiles(width, tile, overlap, multiple, tiling), overlap)


def pad_axis(x: "torch.Tensor", amount: int, dim: int) -> "torch.Tensor":
    """Pad one spatial axis at its end: reflection if it is long enough, else replication."""
    import torch.nn.functional as F

    if amount == 0:
        return x
    mode = "reflect" if amount < x.shape[dim] else "replicate"
    return F.pad(x, (0, amount, 0, 0) if dim == -1 else (0, 0, 0, amount), mode=mode)


def canvas_index(length: int, canvas: int) -> np.ndarray:
    """For every position of a padded axis, the image position ``pad_axis`` copies it from.

    Lets a caller cut tiles of the padded canvas straight from the image, without building
    the canvas (the decoder's x~ and the encoder's tile simulation of a very large image).
    """
    index = np.arange(canvas)
    if canvas - length < length:  # reflection, without repeating the edge
        return np.where(index < length, index, 2 * (length - 1) - index)
    return np.minimum(index, length - 1)  # replication


@dataclass(frozen=True)
class PaddedImage:
    """An image seen as its padded canvas (``pad_to_canvas``) without building the canvas:
    tiles are cut from the image, padded positions read through ``canvas_index``. At 24 MP
    the canvas would be another 288 MB of float32. ``convert`` maps each cut tile (e.g.
    8-bit to the network's range), so the image itself may stay in a compact type."""

    image: Any  # (B, C, H, W) tensor or array
    rows: np.ndarray  # canvas row -> image row
    cols: np.ndarray  # canvas column -> image column
    convert: Callable[[Any], Any] | None = None

    @classmethod
    def of(cls, image: Any, grid: TileGrid, convert: Callable[[Any], Any] | None = None) -> "PaddedImage":
        return cls(image, canvas_index(grid.height, grid.rows.canvas),
                   canvas_index(grid.width, grid.cols.canvas), convert)

    def crop(self, y: int, x: int, th: int, tw: int) -> Any:
        h, w = self.image.shape[-2:]
        if y + th <= h and x + tw <= w:  # inside the image: a plain view
            tile = self.image[..., y:y + th, x:x + tw]
        else:
            ops = ops_for(self.image)
            tile = ops.take(ops.take(self.image, self.rows[y:y + th], -2), self.cols[x:x + tw], -1)
        return tile if self.convert is None else self.convert(tile)


def crop(source: Any, y: int, x: int, th: int, tw: int) -> Any:
    """One tile of a canvas-sized tensor or array, or of a padded image."""
    if isinstance(source, PaddedImage):
        return source.crop(y, x, th, tw)
    return source[..., y:y + th, x:x + tw]


def pad_to_canvas(x: "torch.Tensor", grid: TileGrid) -> "torch.Tensor":
    """Pad (B, C, H, W) at the bottom and right to the grid's canvas."""
    x = pad_axis(x, grid.rows.canvas - x.shape[-2], -2)
    return pad_axis(x, grid.cols.canvas - x.shape[-1], -1)


def ramp(overlap: int) -> np.ndarray:
    """A raised-cosine ramp over ``overlap`` pixels, strictly between 0 and 1 (float64)."""
    p = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
    return 0.5 - 0.5 * np.cos(math.pi * p)


def axis_weights(axis: AxisTiles, overlap: int) -> list[np.ndarray]:
    """1-D blending weights of every tile: ramps only on sides that have a neighbour."""
    out = []
    for k in range(len(axis.starts)):
        w = np.ones(axis.tile, dtype=np.float64)
        if overlap:
            if k > 0:
                w[:overlap] = ramp(overlap)
            if k < len(axis.starts) - 1:
                w[-overlap:] = ramp(overlap)[::-1]
        out.append(w)
    return out


def tile_weights(grid: TileGrid) -> list[np.ndarray]:
    """2-D weights (th, tw), float32, one per tile in ``positions()`` order.

    Weights are positive everywhere and the blend divides by their sum, so any overlap
    pattern (also three tiles meeting where the last tile was pulled back) is a proper
    weighted average and a constant input comes back unchanged.
    """
    wy, wx = axis_weights(grid.rows, grid.overlap), axis_weights(grid.cols, grid.overlap)
    return [(a[:, None] * b[None, :]).astype(np.float32) for a in wy for b in wx]


TileFunction = Callable[[int, list[Any], list[int]], Any]


def run_tiled(fn: TileFunction | Callable[[int, list[Any]], Any], inputs: Sequence[Any], grid: TileGrid,
              max_batch: int, out_channels: int | None = None, with_owners: bool = False) -> Any:
    """Apply a batched tile function over the canvas of every image and blend its outputs.

    ``inputs`` are canvas-sized (B, C_i, H, W) tensors or arrays, or ``PaddedImage``;
    ``fn(chunk, tiles)`` (``fn(chunk, tiles, owners)`` with ``with_owners``: the image each
    tile belongs to) receives the chunk number (for callers that cache per-chunk work) and,
    for each input, a batch of at most ``max_batch`` tiles, and returns (n, C_out, th, tw).
    Only one chunk's activations exist at a time, which bounds memory for any image size.
    Tiles run image by image, in ``positions()`` order within an image.
    """
    th, tw = grid.tile
    positions, weights = grid.positions(), tile_weights(grid)
    ref = next(t.image if isinstance(t, PaddedImage) else t for t in inputs)
    ops: ArrayOps = ops_for(ref)
    jobs = [(b, k) for b in range(ref.shape[0]) for k in range(len(positions))]
    step = max(1, max_batch)
    out = wsum = None
    weight_arrays = [ops.asarray(w) for w in weights]
    for chunk, first in enumerate(range(0, len(jobs), step)):
        part = jobs[first:first + step]
        tiles = [ops.cat([crop(_image(t, b), *positions[k], th, tw) for b, k in part]) for t in inputs]
        owners = [b for b, _ in part]
        pred = ops.float32(fn(chunk, tiles, owners) if with_owners else fn(chunk, tiles))
        if out is None:
            c = out_channels or pred.shape[1]
            out = ops.zeros((ref.shape[0], c, *grid.canvas), like=ref)
            wsum = ops.zeros((1, 1, *grid.canvas), like=ref)
        for j, (b, k) in enumerate(part):
            (y, x), w = positions[k], weight_arrays[k]
            out[b, :, y:y + th, x:x + tw] += ops.move(pred[j], ref) * w
            if b == 0:
                wsum[0, 0, y:y + th, x:x + tw] += w
    out /= wsum  # in place: one image-sized array less at the peak
    return out


def _image(source: Any, b: int) -> Any:
    """Image ``b`` of a batch of canvases (or padded images), keeping the batch axis."""
    if isinstance(source, PaddedImage):
        return source if source.image.shape[0] == 1 else PaddedImage(
            source.image[b:b + 1], source.rows, source.cols, source.convert)
    return source[b:b + 1]
