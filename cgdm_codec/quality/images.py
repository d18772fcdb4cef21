"""The metrics' input, two uint8 RGB images, and PSNR.

The metrics (``psnr``, ``msssim.ssim``, ``msssim.ms_ssim``, ``haar.haarpsi``) take two uint8
RGB images of the same shape (H, W, 3) and compute in float64 on the CPU, so that reported
numbers do not depend on the device or on reduced-precision kernels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PEAK = 255.0


def check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Reject inputs the metrics are not defined for, with a message saying what is wrong."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8, got {x.dtype}")
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must have shape (H, W, 3), got {x.shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{name} has no pixels: {x.shape}")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")


def to_nchw(x: np.ndarray) -> "torch.Tensor":
    """uint8 (H, W, 3) -> float64 (1, 3, H, W) in [0, 255]."""
    import torch

    return torch.from_numpy(np.array(x, copy=True)).to(torch.float64).permute(2, 0, 1)[None]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels, 8-bit peak (255);
    ``inf`` for identical images."""
    check_pair(a, b)
    x, y = to_nchw(a), to_nchw(b)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(PEAK * PEAK / mse)
