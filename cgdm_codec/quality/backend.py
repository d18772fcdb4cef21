"""The array operations the measures are written in, once for numpy and once for torch.

A measure with a numpy form and a torch form (``msssim``, ``bands``, ``objective``) is one
function over ``ops``; ``NUMPY`` and ``TORCH`` supply the few operations whose spelling
differs between the two libraries (filtering, pooling, per-image means), so a change to a
measure's formula reaches both forms at once. ``TORCH`` imports torch inside each
operation: importing this module (and using ``NUMPY``) stays torch-free.

Images are (B, C, H, W). The numpy forms compute in float32 and follow the torch forms'
order of operations, which is why they agree to float32 rounding (``tests/quality/test_quality.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


# ------------------------------------------------------------------------------- numpy


def pool_numpy(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks, the remainder dropped (avg_pool2d with stride k)."""
    h, w = x.shape[-2] // k, x.shape[-1] // k
    x = x[..., :h * k, :w * k]
    return x.reshape(*x.shape[:-2], h, k, w, k).mean(axis=(-3, -1))


def half_size_numpy(x: np.ndarray) -> np.ndarray:
    """``half_size_torch`` on arrays: an odd side gets its last line repeated, then 2x2 means."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = np.pad(x, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    return pool_numpy(x, 2)


def separable_numpy(x: np.ndarray, taps: np.ndarray, pad: bool = False) -> np.ndarray:
    """Every channel filtered with the same 1-D kernel along both axes: "valid" (no padding)
    or, with ``pad``, edges replicated to keep the size (``separable_torch``)."""
    k = taps.size
    if pad:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(k // 2, k // 2)] * 2, mode="edge")
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = sum(taps[i] * x[..., :, i:i + w] for i in range(k))
    return sum(taps[i] * rows[..., i:i + h, :] for i in range(k))


def gaussian_numpy(size: int, sigma: float = 1.5) -> np.ndarray:
    """Normalised float32 Gaussian of odd length ``size`` centred on the middle tap."""
    r = np.arange(size, dtype=np.float32) - size // 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


class NumpyOps:
    """The operations of the numpy forms (float32 arrays)."""

    pool = staticmethod(pool_numpy)
    separable = staticmethod(separable_numpy)

    @staticmethod
    def gaussian(size: int, like: np.ndarray) -> np.ndarray:
        return gaussian_numpy(size)

    @staticmethod
    def taps(values: Sequence[float], like: np.ndarray) -> np.ndarray:
        return np.array(values, dtype=np.float32)

    @staticmethod
    def per_image(x: np.ndarray) -> np.ndarray:
        """Mean over everything but the batch axis: (B,)."""
        return x.reshape(x.shape[0], -1).mean(1)

    @staticmethod
    def zeros(n: int, like: np.ndarray) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    @staticmethod
    def floor(x: np.ndarray, low: float) -> np.ndarray:
        return np.maximum(x, low)

    @staticmethod
    def weighted_product(values: list[np.ndarray], weights: Sequence[float]) -> np.ndarray:
        """prod_i values[i] ** (weights[i] / sum(weights)), per image."""
        w = np.array(weights, dtype=np.float32)
        w /= w.sum()
        return np.prod(np.stack(values, axis=1) ** w, axis=1)


# ------------------------------------------------------------------------------- torch


def separable_torch(x: "torch.Tensor", taps: "torch.Tensor", pad_mode: str | None = None) -> "torch.Tensor":
    """Every channel filtered with the same 1-D kernel along both axes; ``pad_mode`` None is
    "valid" filtering, else F.pad's mode for a same-size result."""
    import torch.nn.functional as F

    c, k = x.shape[1], taps.numel()
    if pad_mode is not None:
        x = F.pad(x, (k // 2,) * 4, mode=pad_mode)
    kx = taps.view(1, 1, 1, k).repeat(c, 1, 1, 1)
    ky = taps.view(1, 1, k, 1).repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def gaussian_torch(size: int, sigma: float = 1.5, dtype: Any = None,
                   device: "torch.device | None" = None) -> "torch.Tensor":
    """Normalised Gaussian of odd length ``size`` (float32 unless ``dtype``)."""
    import torch

    r = torch.arange(size, dtype=dtype or torch.float32, device=device) - size // 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def half_size_torch(x: "torch.Tensor") -> "torch.Tensor":
    """2x2 mean downsampling; an odd side is first extended by replicating its last line.
    HaarPSI's preprocessing, and the MS-SSIM metric's step between scales."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


class TorchOps:
    """The operations of the torch forms (float32 tensors, differentiable)."""

    @staticmethod
    def separable(x: "torch.Tensor", taps: "torch.Tensor", pad: bool = False) -> "torch.Tensor":
        return separable_torch(x, taps, "replicate" if pad else None)

    @staticmethod
    def pool(x: "torch.Tensor", k: int) -> "torch.Tensor":
        import torch.nn.functional as F

        return F.avg_pool2d(x, k)

    @staticmethod
    def gaussian(size: int, like: "torch.Tensor") -> "torch.Tensor":
        return gaussian_torch(size, device=like.device)

    @staticmethod
    def taps(values: Sequence[float], like: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.tensor(values, device=like.device)

    @staticmethod
    def per_image(x: "torch.Tensor") -> "torch.Tensor":
        return x.flatten(1).mean(1)

    @staticmethod
    def zeros(n: int, like: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.zeros(n, device=like.device)

    @staticmethod
    def floor(x: "torch.Tensor", low: float) -> "torch.Tensor":
        return x.clamp_min(low)

    @staticmethod
    def weighted_product(values: list["torch.Tensor"], weights: Sequence[float]) -> "torch.Tensor":
        import torch

        w = torch.tensor(weights, device=values[0].device)
        w = w / w.sum()
        return torch.stack(values, dim=1).pow(w).prod(dim=1)


NUMPY = NumpyOps()
TORCH = TorchOps()
