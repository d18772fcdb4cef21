"""Full-reference image quality metrics that need no downloaded networks.

All functions take two uint8 RGB images as numpy arrays of shape (H, W, 3) with the same
shape, and compute in float64 on the CPU so that benchmark numbers do not depend on the
device or on reduced-precision kernels. Torch is imported inside the functions so that
importing this module stays cheap.

Conventions (chosen to match how learned-compression papers usually report numbers):

* ``psnr``: over all pixels and all three channels, 8-bit peak (255). ``inf`` when equal.
* ``ms_ssim``: Wang, Simoncelli & Bovik (2003), computed on each RGB channel separately and
  averaged over the channels. Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic
  range 255, "valid" filtering (no padding), 2x2 mean downsampling between scales, five scales
  with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Negative contrast-structure terms are
  clamped to 0 before exponentiation, so the result is always in [0, 1].
  Small images: a scale is only used while both sides are still >= 11 px after halving
  (rounding up), so images with a side below 161 px get fewer than five scales; the weights
  of the scales that are used are rescaled to the same total as the five standard weights
  (1.0001). Below 11 px the single remaining scale uses the largest odd window that fits (the
  Gaussian truncated and renormalised). Odd sides are extended by one replicated row/column
  before the 2x2 mean. With five scales and even sides at every scale this equals
  pytorch-msssim's ``ms_ssim(data_range=255)`` up to its float32 window (~1e-6).
* ``haarpsi``: Reisenhofer, Bosse, Kutyniok & Wiegand (2018), colour version in YIQ with
  C = 30 and alpha = 4.2, three Haar scales, and the paper's preprocessing (2x2 mean filter and
  subsampling by 2) applied at every size. Filters use zero padding ("same" size, MATLAB's
  alignment), as in the authors' reference code, which this reproduces to ~1e-12 on
  even-sized images; odd sides are replicated before the 2x2 subsampling (the reference
  pads them with zeros). Any size down to 1x1 works. When all weights are zero (only possible
  for two all-black images) the weights are taken as uniform.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .haarpsi import haarpsi_input, haarpsi_maps, haarpsi_score, half_size

if TYPE_CHECKING:
    import torch

PEAK = 255.0

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# ---------------------------------------------------------------------------------- input


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
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


def _to_nchw(x: np.ndarray) -> "torch.Tensor":
    """uint8 (H, W, 3) -> float64 (1, 3, H, W) in [0, 255]."""
    import torch

    return torch.from_numpy(np.array(x, copy=True)).to(torch.float64).permute(2, 0, 1)[None]


# ----------------------------------------------------------------------------------- PSNR


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with an 8-bit peak; ``inf`` for identical images."""
    _check_pair(a, b)
    x, y = _to_nchw(a), _to_nchw(b)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(PEAK * PEAK / mse)


# -------------------------------------------------------------------------------- MS-SSIM


def _gaussian_1d(size: int, sigma: float) -> "torch.Tensor":
    """Normalised 1-D Gaussian of odd length ``size`` centred on the middle tap."""
    import torch

    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def _blur_valid(x: "torch.Tensor", g: "torch.Tensor") -> "torch.Tensor":
    """Separable per-channel Gaussian filtering without padding ("valid")."""
    import torch.nn.functional as F

    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _ssim_terms(x: "torch.Tensor", y: "torch.Tensor",
                g: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-channel means of the SSIM map and of the contrast-structure map, shape (C,)."""
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = _blur_valid(x, g), _blur_valid(y, g)
    sxx = _blur_valid(x * x, g) - mu_x * mu_x
    syy = _blur_valid(y * y, g) - mu_y * mu_y
    sxy = _blur_valid(x * y, g) - mu_x * mu_y
    cs = (2.0 * sxy + c2) / (sxx + syy + c2)
    lum = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return (lum * cs).mean(dim=(0, 2, 3)), cs.mean(dim=(0, 2, 3))


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


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (5 scales where the image is large enough), RGB channels averaged."""
    import torch

    _check_pair(a, b)
    x, y = _to_nchw(a), _to_nchw(b)
    h, w = a.shape[:2]
    win = min(SSIM_WIN, min(h, w) if min(h, w) % 2 else min(h, w) - 1)
    g = _gaussian_1d(win, SSIM_SIGMA)
    n = ms_ssim_scales(h, w, win=win)
    weights = _ms_ssim_weights(n)
    value = torch.ones(x.shape[1], dtype=torch.float64)
    for j in range(n):
        ssim_mean, cs_mean = _ssim_terms(x, y, g)
        term = ssim_mean if j == n - 1 else cs_mean
        value = value * term.clamp(min=0.0) ** weights[j]
        if j < n - 1:
            x, y = half_size(x), half_size(y)
    return float(value.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Single-scale SSIM (same window and constants as ``ms_ssim``), RGB channels averaged."""
    _check_pair(a, b)
    h, w = a.shape[:2]
    win = min(SSIM_WIN, min(h, w) if min(h, w) % 2 else min(h, w) - 1)
    ssim_mean, _ = _ssim_terms(_to_nchw(a), _to_nchw(b), _gaussian_1d(win, SSIM_SIGMA))
    return float(ssim_mean.mean())


# -------------------------------------------------------------------------------- HaarPSI
# The maps live in ``haarpsi`` (shared with the training loss); this pools them for one image.


def haarpsi(a: np.ndarray, b: np.ndarray) -> float:
    """HaarPSI in [0, 1] (1 for identical images), colour version, paper preprocessing."""
    _check_pair(a, b)
    sims, weights = haarpsi_maps(haarpsi_input(_to_nchw(a)), haarpsi_input(_to_nchw(b)))
    return min(1.0, max(0.0, float(haarpsi_score(sims, weights)[0])))


def band_energy_ratios(decoded: np.ndarray, original: np.ndarray, bands: int = 2) -> list[float]:
    """Texture kept: per Laplacian band (finest first), the mean |band| of the decode over the
    original's, for (H, W, 3) uint8 images. 1.0 = as much detail as the original; a decoder
    that blurs is below 1, one that invents more detail than was there above."""
    from .runtime import laplacian_bands

    def pyramid(rgb: np.ndarray) -> list[np.ndarray]:
        return laplacian_bands(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, bands)

    return [float(np.abs(a).mean() / max(float(np.abs(b).mean()), 1e-9))
            for a, b in zip(pyramid(decoded), pyramid(original))]
