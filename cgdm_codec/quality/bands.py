"""Laplacian-pyramid detail: the bands, the syntax generator's band statistics, the
band-energy loss and the band-energy ratio metric, each one function over numpy or torch.

The pyramid: the 5-tap binomial low-pass (edges replicated), the band is the image minus
its low-pass, the next level the low-pass subsampled by 2; a level is skipped once a side
is below 4 px. Finest band first.

* ``band_means``: mean |band| of x, x~ and x - x~ per band and channel, (B, STAT_WIDTH):
  the measured facts the syntax generator's MLP sees (``models.syntax``; the ONNX runtime
  computes the numpy form beside its graph).
* ``band_energy``: the loss term that asks every band's local detail (mean |band| over
  4x4 windows) to match the original's, per image (B,); unlike L1 it does not care where
  inside a window the detail sits, so it penalises blur without forcing the decoder to
  guess the exact phase of texture.
* ``band_energy_ratios``: the metric (texture kept, per band) of two uint8 images.

Torch is imported inside the torch forms only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import NUMPY, TORCH

if TYPE_CHECKING:
    import torch

BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)
#: Bands of the syntax generator's band statistics.
STAT_BANDS = 4


def _laplacian_bands(ops: Any, x: Any, levels: int) -> list[Any]:
    taps = ops.taps(BINOMIAL5, like=x) / 16.0
    bands = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 4:
            break
        low = ops.separable(x, taps, pad=True)
        bands.append(x - low)
        x = low[..., ::2, ::2]
    return bands


def laplacian_bands_numpy(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass images of a Laplacian pyramid of float32 (..., H, W), finest first."""
    return _laplacian_bands(NUMPY, x, levels)


def laplacian_bands_torch(x: "torch.Tensor", levels: int) -> list["torch.Tensor"]:
    """Band-pass images of a Laplacian pyramid of (B, C, H, W), finest first."""
    return _laplacian_bands(TORCH, x, levels)


def _band_means(bands: Any, x: Any, x_tilde: Any, absent: Any, mean_abs: Any) -> list[Any]:
    """The columns of ``band_means``: a band too small for the image is ``absent`` (zeros)."""
    bx, bt = bands(x, STAT_BANDS), bands(x_tilde, STAT_BANDS)
    missing = [absent] * (STAT_BANDS - len(bx))
    means: list[Any] = []
    for group in (bx, bt, [a - b for a, b in zip(bx, bt)]):
        means += [mean_abs(b) for b in group] + missing
    return means


def band_means_numpy(x: np.ndarray, x_tilde: np.ndarray) -> np.ndarray:
    """``band_means_torch`` on float32 arrays: (B, 3 * STAT_BANDS * C)."""
    absent = np.zeros(x.shape[:2], dtype=np.float32)
    return np.concatenate(_band_means(laplacian_bands_numpy, x, x_tilde, absent,
                                      lambda b: np.abs(b).mean(axis=(-2, -1), dtype=np.float32)), axis=1)


def band_means_torch(x: "torch.Tensor", x_tilde: "torch.Tensor") -> "torch.Tensor":
    """Mean |band| of x, x~ and x - x~ per Laplacian band and channel: (B, 3 * STAT_BANDS * C).

    Means, so that tiles of a large image combine by an area-weighted average like the
    pooled conv features; the logarithm is taken after pooling. The pyramid is linear, so
    the bands of x - x~ are the differences of the two pyramids. An image (or edge tile)
    too small for a band has no detail there: its mean is 0, so every size gets the width
    the MLP expects.
    """
    import torch

    absent = x.new_zeros(x.shape[:2], dtype=torch.float32)
    return torch.cat(_band_means(laplacian_bands_torch, x, x_tilde, absent,
                                 lambda b: b.float().abs().mean(dim=(-2, -1))), dim=1)


def _band_energy(ops: Any, a: Any, b: Any, levels: int, window: int) -> Any:
    total = ops.zeros(a.shape[0], like=a)
    for ba, bb in zip(_laplacian_bands(ops, a, levels), _laplacian_bands(ops, b, levels)):
        k = min(window, *ba.shape[-2:])
        total = total + ops.per_image(abs(ops.pool(abs(ba), k) - ops.pool(abs(bb), k)))
    return total


def band_energy_numpy(a: np.ndarray, b: np.ndarray, levels: int = 4, window: int = 4) -> np.ndarray:
    """Mean |local detail energy difference| over pyramid bands, per image (B,), float32."""
    return _band_energy(NUMPY, a, b, levels, window)


def band_energy_torch(a: "torch.Tensor", b: "torch.Tensor", levels: int = 4,
                      window: int = 4) -> "torch.Tensor":
    """Mean |local detail energy difference| over pyramid bands, per image (B,)."""
    return _band_energy(TORCH, a, b, levels, window)


def band_energy_ratios(decoded: np.ndarray, original: np.ndarray, bands: int = 2) -> list[float]:
    """Texture kept: per Laplacian band (finest first), the mean |band| of the decode over the
    original's, for (H, W, 3) uint8 images. 1.0 = as much detail as the original; a decoder
    that blurs is below 1, one that invents more detail than was there above."""

    def pyramid(rgb: np.ndarray) -> list[np.ndarray]:
        return laplacian_bands_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, bands)

    return [float(np.abs(a).mean() / max(float(np.abs(b).mean()), 1e-9))
            for a, b in zip(pyramid(decoded), pyramid(original))]
