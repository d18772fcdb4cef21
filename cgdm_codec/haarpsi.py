"""HaarPSI's local maps in torch, below both the evaluation metric and the training loss.

``metrics.haarpsi`` (float64, one image, the number every report quotes) and
``losses.haarpsi_loss`` (float32, batches, differentiable) pool these same maps, so the
loss is the metric and not a look-alike. The definitions follow Reisenhofer, Bosse,
Kutyniok & Wiegand (2018), colour version; ``metrics`` documents the conventions. Torch is
imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HAARPSI_C = 30.0
HAARPSI_ALPHA = 4.2
HAARPSI_SCALES = 3
#: RGB -> YIQ (the NTSC matrix the paper uses); the torch-free encoder's HaarPSI shares it.
YIQ = ((0.299, 0.587, 0.114),
       (0.596, -0.274, -0.322),
       (0.211, -0.523, 0.312))


def half_size(x: "torch.Tensor") -> "torch.Tensor":
    """2x2 mean downsampling; an odd side is first extended by replicating its last line.
    HaarPSI's preprocessing, and MS-SSIM's step between scales (``metrics``)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


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
    return half_size(rgb_to_yiq(rgb255))


def haarpsi_score(sims: "torch.Tensor", weights: "torch.Tensor") -> "torch.Tensor":
    """HaarPSI per image (N,) from ``haarpsi_maps``: the weighted mean of the logistic
    similarities, mapped back through the logit and squared. All-zero weights (only two
    all-black images) count uniformly."""
    import torch

    s, w = sims.flatten(1), weights.flatten(1)
    w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
    pooled = (torch.sigmoid(HAARPSI_ALPHA * s) * w).sum(1) / w.sum(1)
    return (torch.logit(pooled) / HAARPSI_ALPHA) ** 2
