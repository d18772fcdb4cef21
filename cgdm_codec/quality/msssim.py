"""SSIM and MS-SSIM: the metric, and the loss's numpy and torch forms.

Two conventions share the SSIM maps (``ssim_maps``), the window and the constants:

* The metric, ``ms_ssim`` / ``ssim`` (uint8 pair -> float, float64): Wang, Simoncelli &
  Bovik (2003), on each RGB channel separately and averaged over the channels. Gaussian
  window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic range 255, "valid" filtering (no
  padding), 2x2 mean downsampling between scales, five scales with weights (0.0448, 0.2856,
  0.3001, 0.2363, 0.1333). Negative contrast-structure terms are clamped to 0 before
  exponentiation, so the result is always in [0, 1]. Small images: a scale is only used
  while both sides are still >= 11 px after halving (rounding up), so images with a side
  below 161 px get fewer than five scales; the weights of the scales that are used are
  rescaled to the same total as the five standard weights (1.0001). Below 11 px the single
  remaining scale uses the largest odd window that fits (the Gaussian truncated and
  renormalised). Odd sides are extended by one replicated row/column before the 2x2 mean.
  With five scales and even sides at every scale this equals pytorch-msssim's
  ``ms_ssim(data_range=255)`` up to its float32 window (~1e-6).
* The loss's, ``ms_ssim_numpy`` / ``ms_ssim_torch`` ((B, C, H, W) in [0, 1] -> (B,),
  float32; the torch form differentiable): per image over all channels, range 1, as many
  of the five scales as ``side // 2**level >= window`` allows, the used weights normalised
  to sum 1, 2x2 mean pooling (odd remainders dropped), terms floored at 1e-6. The training
  loss and the encoder's objective (``objective``) use it; both forms are one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import NUMPY, TORCH, gaussian_torch, half_size_torch, separable_torch
from .images import PEAK, check_pair, to_nchw

if TYPE_CHECKING:
    import torch

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def window(side: int) -> int:
    """The Gaussian's length for an image whose shorter side is ``side``: 11, or the
    largest odd length that fits."""
    return min(SSIM_WIN, side if side % 2 else side - 1)


def ssim_maps(x: Any, y: Any, blur: Callable[[Any], Any], peak: float) -> tuple[Any, Any]:
    """The SSIM map and the contrast-structure map of two images (numpy arrays or torch
    tensors alike), ``blur`` being the local-mean filter and ``peak`` the dynamic range."""
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    cs = (2.0 * sxy + c2) / (sxx + syy + c2)
    lum = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return lum * cs, cs


# ------------------------------------------------------------------------------ the metric


def ms_ssim_scales(height: int, width: int, max_scales: int = len(MS_SSIM_WEIGHTS),
                   win: int = SSIM_WIN) -> int:
    """How many scales fit: a scale is used while both sides are still >= the window size."""
    n, h, w = 1, height, width
    while n < max_scales:
        h, w = (h + 1) // 2, (w + 1) // 2
        if min(h, w) < win:
            break
        n += 1
    return n


def _ms_ssim_weights(n: int) -> list[float]:
    """The first ``n`` standard weights, rescaled to the standard total (1.0001), so that five
    scales use exactly the published weights and fewer scales keep the same overall exponent."""
    head = MS_SSIM_WEIGHTS[:n]
    if n == len(MS_SSIM_WEIGHTS):
        return list(head)
    scale = sum(MS_SSIM_WEIGHTS) / sum(head)
    return [w * scale for w in head]


def _channel_terms(x: "torch.Tensor", y: "torch.Tensor",
                   g: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-channel means of the SSIM map and of the contrast-structure map, shape (C,)."""
    s, cs = ssim_maps(x, y, lambda v: separable_torch(v, g), PEAK)
    return s.mean(dim=(0, 2, 3)), cs.mean(dim=(0, 2, 3))


def _metric_window(a: np.ndarray) -> "torch.Tensor":
    import torch

    return gaussian_torch(window(min(a.shape[:2])), SSIM_SIGMA, dtype=torch.float64)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (5 scales where the image is large enough), RGB channels averaged."""
    import torch

    check_pair(a, b)
    x, y = to_nchw(a), to_nchw(b)
    g = _metric_window(a)
    n = ms_ssim_scales(*a.shape[:2], win=g.numel())
    weights = _ms_ssim_weights(n)
    value = torch.ones(x.shape[1], dtype=torch.float64)
    for j in range(n):
        ssim_mean, cs_mean = _channel_terms(x, y, g)
        term = ssim_mean if j == n - 1 else cs_mean
        value = value * term.clamp(min=0.0) ** weights[j]
        if j < n - 1:
            x, y = half_size_torch(x), half_size_torch(y)
    return float(value.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Single-scale SSIM (same window and constants as ``ms_ssim``), RGB channels averaged."""
    check_pair(a, b)
    ssim_mean, _ = _channel_terms(to_nchw(a), to_nchw(b), _metric_window(a))
    return float(ssim_mean.mean())


# -------------------------------------------------------------------------------- the loss


def loss_levels(side: int, win: int) -> int:
    """The loss's scale count: one more while ``side // 2**levels`` still holds the window."""
    levels = 1
    while levels < len(MS_SSIM_WEIGHTS) and side // 2 ** levels >= win:
        levels += 1
    return levels


def _ms_ssim_loss_form(ops: Any, a: Any, b: Any) -> Any:
    """The loss's MS-SSIM per image (B,), written once over a backend's ``ops``."""
    side = min(a.shape[-2:])
    taps = ops.gaussian(window(side), like=a)
    levels = loss_levels(side, len(taps))
    values = []
    for i in range(levels):
        s, cs = ssim_maps(a, b, lambda v: ops.separable(v, taps), 1.0)
        values.append(ops.floor(ops.per_image(s if i == levels - 1 else cs), 1e-6))
        if i < levels - 1:
            a, b = ops.pool(a, 2), ops.pool(b, 2)
    return ops.weighted_product(values, MS_SSIM_WEIGHTS[:levels])


def ms_ssim_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The loss's MS-SSIM per image (B,) of float32 (B, C, H, W) arrays in [0, 1]."""
    return _ms_ssim_loss_form(NUMPY, a, b)


def ms_ssim_torch(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """The loss's MS-SSIM per image (B,) of (B, C, H, W) tensors in [0, 1], differentiable.
    Images smaller than the 11-tap window get a shorter window instead of an error."""
    return _ms_ssim_loss_form(TORCH, a, b)
