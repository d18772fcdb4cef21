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

import torch
import torch.nn.functional as F


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


def pad_axis(x: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    """Pad one spatial axis at its end: reflection if it is long enough, else replication."""
    if amount == 0:
        return x
    mode = "reflect" if amount < x.shape[dim] else "replicate"
    return F.pad(x, (0, amount, 0, 0) if dim == -1 else (0, 0, 0, amount), mode=mode)


def canvas_index(length: int, canvas: int) -> torch.Tensor:
    """For every position of a padded axis, the image position ``pad_axis`` copies it from.

    Lets a caller cut tiles of the padded canvas straight from the image, without building
    the canvas (the encoder's tile simulation of a very large image).
    """
    index = torch.arange(canvas)
    if canvas - length < length:  # reflection, without repeating the edge
        return torch.where(index < length, index, 2 * (length - 1) - index)
    return index.clamp(max=length - 1)  # replication


@dataclass(frozen=True)
class PaddedImage:
    """An image seen as its padded canvas (``pad_to_canvas``) without building the canvas:
    tiles are cut from the image, padded positions read through ``canvas_index``. At 24 MP
    the canvas would be another 288 MB of float32. ``convert`` maps each cut tile (e.g.
    8-bit to the network's range), so the image itself may stay in a compact type."""

    image: torch.Tensor  # (B, C, H, W)
    rows: torch.Tensor  # canvas row -> image row
    cols: torch.Tensor  # canvas column -> image column
    convert: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def of(cls, image: torch.Tensor, grid: TileGrid,
           convert: Callable[[torch.Tensor], torch.Tensor] | None = None) -> "PaddedImage":
        return cls(image, canvas_index(grid.height, grid.rows.canvas),
                   canvas_index(grid.width, grid.cols.canvas), convert)

    def crop(self, y: int, x: int, th: int, tw: int) -> torch.Tensor:
        h, w = self.image.shape[-2:]
        if y + th <= h and x + tw <= w:  # inside the image: a plain view
            tile = self.image[..., y:y + th, x:x + tw]
        else:
            rows, cols = self.rows[y:y + th].to(self.image.device), self.cols[x:x + tw].to(self.image.device)
            tile = self.image.index_select(-2, rows).index_select(-1, cols)
        return tile if self.convert is None else self.convert(tile)


def crop(source: "torch.Tensor | PaddedImage", y: int, x: int, th: int, tw: int) -> torch.Tensor:
    """One tile of a canvas-sized tensor or of a padded image."""
    if isinstance(source, PaddedImage):
        return source.crop(y, x, th, tw)
    return source[..., y:y + th, x:x + tw]


def pad_to_canvas(x: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to the grid's canvas."""
    x = pad_axis(x, grid.rows.canvas - x.shape[-2], -2)
    return pad_axis(x, grid.cols.canvas - x.shape[-1], -1)


def ramp(overlap: int) -> torch.Tensor:
    """A raised-cosine ramp over ``overlap`` pixels, strictly between 0 and 1."""
    p = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
    return 0.5 - 0.5 * torch.cos(math.pi * p)


def axis_weights(axis: AxisTiles, overlap: int) -> list[torch.Tensor]:
    """1-D blending weights of every tile: ramps only on sides that have a neighbour."""
    out = []
    for k in range(len(axis.starts)):
        w = torch.ones(axis.tile, dtype=torch.float64)
        if overlap:
            if k > 0:
                w[:overlap] = ramp(overlap)
            if k < len(axis.starts) - 1:
                w[-overlap:] = ramp(overlap).flip(0)
        out.append(w)
    return out


def tile_weights(grid: TileGrid) -> list[torch.Tensor]:
    """2-D weights (th, tw), float32, one per tile in ``positions()`` order.

    Weights are positive everywhere and the blend divides by their sum, so any overlap
    pattern (also three tiles meeting where the last tile was pulled back) is a proper
    weighted average and a constant input comes back unchanged.
    """
    wy, wx = axis_weights(grid.rows, grid.overlap), axis_weights(grid.cols, grid.overlap)
    return [(a[:, None] * b[None, :]).float() for a in wy for b in wx]


def run_tiled(fn: Callable[[int, list[torch.Tensor]], torch.Tensor], inputs: Sequence[torch.Tensor],
              grid: TileGrid, max_batch: int, out_channels: int | None = None) -> torch.Tensor:
    """Apply a batched tile function over the canvas and blend its outputs.

    ``inputs`` are canvas-sized (1, C_i, H, W) tensors or ``PaddedImage``; ``fn(chunk, tiles)`` receives the
    chunk number (for callers that cache per-chunk work) and, for each input, a batch of at
    most ``max_batch`` tiles, and returns (n, C_out, th, tw). Only one chunk's activations
    exist at a time, which bounds memory for any image size.
    """
    th, tw = grid.tile
    positions, weights = grid.positions(), tile_weights(grid)
    ref = next(t for t in inputs if isinstance(t, torch.Tensor))
    out = wsum = None
    for chunk, first in enumerate(range(0, len(positions), max(1, max_batch))):
        pos = positions[first:first + max_batch]
        tiles = [torch.cat([crop(t, y, x, th, tw) for y, x in pos]) for t in inputs]
        pred = fn(chunk, tiles).float()
        if out is None:
            c = out_channels or pred.shape[1]
            out = torch.zeros(1, c, *grid.canvas, device=ref.device)
            wsum = torch.zeros(1, 1, *grid.canvas, device=ref.device)
        for j, (y, x) in enumerate(pos):
            w = weights[first + j].to(ref.device)
            out[0, :, y:y + th, x:x + tw] += pred[j].to(ref.device) * w
            wsum[0, 0, y:y + th, x:x + tw] += w
    return out.div_(wsum)  # in place: one image-sized tensor less at the peak
