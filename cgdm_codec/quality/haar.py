"""HaarPSI: the metric, and its numpy and torch forms for the encoder's objective and training.

Reisenhofer, Bosse, Kutyniok & Wiegand (2018), colour version in YIQ with C = 30 and
alpha = 4.2, three Haar scales, and the paper's preprocessing (2x2 mean filter and
subsampling by 2) applied at every size. Filters use zero padding ("same" size, MATLAB's
alignment), as in the authors' reference code, which the metric reproduces to ~1e-12 on
even-sized images; odd sides are replicated before the 2x2 subsampling (the reference pads
them with zeros). Any size down to 1x1 works. When all weights are zero (only possible for
two all-black images) the weights are taken as uniform.

* ``haarpsi`` (uint8 pair -> float, float64): the metric every report quotes.
* ``haarpsi_torch`` ((B, 3, H, W) in [0, 1] -> (B,), float32, differentiable): the same
  maps (``haarpsi_maps``) and pooling (``haarpsi_score``), so the loss is the metric and
  not a look-alike.
* ``haarpsi_numpy``: the torch form on float32 arrays, for the torch-free encoder (the
  Haar filters applied separably), equal to float32 rounding.

Torch is imported inside the functions so that importing this module stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .backend import half_size_numpy, half_size_torch
from .images import check_pair, to_nchw

if TYPE_CHECKING:
    import torch

HAARPSI_C = 30.0
HAARPSI_ALPHA = 4.2
HAARPSI_SCALES = 3
#: RGB -> YIQ (the NTSC matrix the paper uses), shared by the numpy form.
YIQ = ((0.299, 0.587, 0.114),
       (0.596, -0.274, -0.322),
       (0.211, -0.523, 0.312))


def rgb_to_yiq(x: "torch.Tensor") -> "torch.Tensor":
    """(N, 3, H, W) RGB in [0, 255] -> (N, 3, H, W) YIQ (NTSC matrix used by the paper), in
    the input's dtype and device (the training loss shares it in float32)."""
    import torch

    m = torch.tensor(YIQ, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,nchw->nohw", m, x)


def _conv_same_zero(x: "torch.Tensor", kernel: "torch.Tensor") -> "torch.Tensor":
    """Per-channel 2-D filtering to the input size with zero padding (k/2-1 before, k/2 after
    for even k), the alignment of a "same"-size convolution."""
    import torch.nn.functional as F

    k = kernel.shape[-1]
    before, after = (k - 1) // 2, k // 2
    c = x.shape[1]
    x = F.pad(x, (before, after, before, after))
    kernel = kernel.to(dtype=x.dtype, device=x.device)
    return F.conv2d(x, kernel.view(1, 1, k, k).expand(c, 1, k, k), groups=c)


def _haar_kernels(scale: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """2-D Haar wavelet filters of a scale: a 2^j x 2^j block of +-2^-j, split across rows
    (one orientation) or across columns (the other)."""
    import torch

    n = 2 ** scale
    k = torch.full((n, n), 2.0 ** -scale, dtype=torch.float64)
    k[: n // 2] *= -1.0
    return k, k.t().contiguous()


def similarity(p, q, c: float = HAARPSI_C):
    """The paper's local similarity S(a, b) = (2ab + C) / (a^2 + b^2 + C) of magnitudes
    (torch tensors or numpy arrays alike)."""
    return (2.0 * p * q + c) / (p * p + q * q + c)


def _luma_maps(lx: "torch.Tensor", ly: "torch.Tensor",
               orient: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One orientation: similarity of the two finest Haar scales (averaged), and the weight,
    the larger of the two images' coarsest-scale magnitudes (where structure is visible)."""
    import torch

    mags = [(_conv_same_zero(lx, k).abs(), _conv_same_zero(ly, k).abs())
            for k in (_haar_kernels(j)[orient] for j in range(1, HAARPSI_SCALES + 1))]
    sim = (similarity(*mags[0], HAARPSI_C) + similarity(*mags[1], HAARPSI_C)) / 2
    return sim, torch.maximum(*mags[-1])


def _chroma_map(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Similarity of the 2x2-mean-filtered I and Q magnitudes, averaged over I and Q."""
    import torch

    box = torch.full((2, 2), 0.25, dtype=x.dtype, device=x.device)
    sim = similarity(_conv_same_zero(x[:, 1:], box).abs(),
                     _conv_same_zero(y[:, 1:], box).abs(), HAARPSI_C)
    return (sim[:, :1] + sim[:, 1:]) / 2


def haarpsi_maps(x: "torch.Tensor", y: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Local similarity maps and weight maps of (N, 3, h, w) YIQ images after the paper's
    preprocessing, each (N, 3, h, w): horizontal, vertical, chroma (whose weight is the mean
    of the two luma weights). Differentiable, so the training loss uses it too."""
    import torch

    (s_h, w_h), (s_v, w_v) = (_luma_maps(x[:, :1], y[:, :1], o) for o in (0, 1))
    sims = torch.cat([s_h, s_v, _chroma_map(x, y)], dim=1)
    weights = torch.cat([w_h, w_v, (w_h + w_v) / 2], dim=1)
    return sims, weights


def haarpsi_input(rgb255: "torch.Tensor") -> "torch.Tensor":
    """The paper's preprocessing of (N, 3, H, W) RGB in [0, 255]: YIQ, then 2x2 mean and
    subsampling."""
    return half_size_torch(rgb_to_yiq(rgb255))


def haarpsi_score(sims: "torch.Tensor", weights: "torch.Tensor") -> "torch.Tensor":
    """HaarPSI per image (N,) from ``haarpsi_maps``: the weighted mean of the logistic
    similarities, mapped back through the logit and squared. All-zero weights (only two
    all-black images) count uniformly."""
    import torch

    s, w = sims.flatten(1), weights.flatten(1)
    w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
    pooled = (torch.sigmoid(HAARPSI_ALPHA * s) * w).sum(1) / w.sum(1)
    return (torch.logit(pooled) / HAARPSI_ALPHA) ** 2


def haarpsi(a: np.ndarray, b: np.ndarray) -> float:
    """HaarPSI in [0, 1] (1 for identical images) of two uint8 RGB images, float64."""
    check_pair(a, b)
    sims, weights = haarpsi_maps(haarpsi_input(to_nchw(a)), haarpsi_input(to_nchw(b)))
    return min(1.0, max(0.0, float(haarpsi_score(sims, weights)[0])))


def haarpsi_torch(x_hat: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
    """HaarPSI per image (B,) of (B, 3, H, W) in [0, 1] (``x_hat`` clamped), float32 with
    autocast off: the metric's maps and pooling, differentiable.

    Why a structural term beside MS-SSIM in the losses: HaarPSI weighs each place by how
    much coarse structure it has and compares Haar-wavelet edge magnitudes at the two finest
    scales, so it rewards keeping edges crisp where they matter, which L1 and MS-SSIM
    (window statistics) reward less.
    """
    import torch

    with torch.autocast(x.device.type, enabled=False):
        a = haarpsi_input(x_hat.float().clamp(0, 1) * 255.0)
        b = haarpsi_input(x.float() * 255.0)
        return haarpsi_score(*haarpsi_maps(a, b))


def _correlate(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, C, H, W) cross-correlated with the separable kernel outer(rows, cols), zero
    padding (k-1)//2 before and k//2 after: ``_conv_same_zero``'s alignment."""
    k = rows.size
    h, w = x.shape[-2:]
    p = np.pad(x, ((0, 0), (0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2)))
    across = sum(cols[j] * p[..., :, j:j + w] for j in range(k))
    return sum(rows[i] * across[..., i:i + h, :] for i in range(k))


def haarpsi_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``haarpsi_torch`` per image (B,) of float32 (B, 3, H, W) arrays in [0, 1] (``a`` clipped)."""
    yiq = np.array(YIQ, dtype=np.float32)
    x = half_size_numpy(np.einsum("oc,nchw->nohw", yiq, np.clip(a, 0.0, 1.0) * np.float32(255.0)))
    y = half_size_numpy(np.einsum("oc,nchw->nohw", yiq, b * np.float32(255.0)))
    sims, weights = [], []
    for orient in (0, 1):
        mags = []
        for j in range(1, HAARPSI_SCALES + 1):
            n = 2 ** j
            step = np.where(np.arange(n) < n // 2, -1.0, 1.0).astype(np.float32) * np.float32(2.0 ** -j)
            flat = np.ones(n, dtype=np.float32)
            rows, cols = (step, flat) if orient == 0 else (flat, step)
            mags.append((np.abs(_correlate(x[:, :1], rows, cols)), np.abs(_correlate(y[:, :1], rows, cols))))
        sims.append((similarity(*mags[0]) + similarity(*mags[1])) / 2)
        weights.append(np.maximum(*mags[-1]))
    box = np.full(2, 0.5, dtype=np.float32)
    chroma = similarity(np.abs(_correlate(x[:, 1:], box, box)), np.abs(_correlate(y[:, 1:], box, box)))
    sims.append((chroma[:, :1] + chroma[:, 1:]) / 2)
    weights.append((weights[0] + weights[1]) / 2)
    s = np.concatenate(sims, axis=1).reshape(a.shape[0], -1)
    w = np.concatenate(weights, axis=1).reshape(a.shape[0], -1)
    w = np.where(w.sum(1, keepdims=True) > 0, w, 1.0)
    pooled = (w / (1.0 + np.exp(-HAARPSI_ALPHA * s))).sum(1) / w.sum(1)
    return (np.log(pooled / (1.0 - pooled)) / HAARPSI_ALPHA) ** 2
