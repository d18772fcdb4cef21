"""The encoder's objective (``objective.Objective``: the fine stage's loss) on numpy arrays.

The torch-free encoder decides between the diffusion stage and the base-only decode with
the same quantity the torch encoder and training use: lambda_d * L1 + lambda_p * (1 -
MS-SSIM + band-energy difference) + lambda_f * syntax bpp. The formulas follow
``losses.py`` step by step; a test holds the two within float tolerance.
"""

from __future__ import annotations

import numpy as np

from ..runtime import laplacian_bands

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian(size: int, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size, dtype=np.float32) - size // 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def _valid_blur(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    k = taps.size
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = sum(taps[i] * x[..., :, i:i + w] for i in range(k))
    return sum(taps[i] * rows[..., i:i + h, :] for i in range(k))


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks, the remainder dropped (avg_pool2d with stride k)."""
    h, w = x.shape[-2] // k, x.shape[-1] // k
    x = x[..., :h * k, :w * k]
    return x.reshape(*x.shape[:-2], h, k, w, k).mean(axis=(-3, -1))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """losses.ms_ssim per image (B,) of (B, C, H, W) in [0, 1]."""
    side = min(a.shape[-2:])
    taps = _gaussian(min(11, side - 1 + side % 2))
    levels = 1
    while levels < len(MS_SSIM_WEIGHTS) and side // 2 ** levels >= taps.size:
        levels += 1
    weights = np.array(MS_SSIM_WEIGHTS[:levels], dtype=np.float32)
    weights /= weights.sum()
    values = []
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    for i in range(levels):
        mu_a, mu_b = _valid_blur(a, taps), _valid_blur(b, taps)
        var_a = _valid_blur(a * a, taps) - mu_a ** 2
        var_b = _valid_blur(b * b, taps) - mu_b ** 2
        cov = _valid_blur(a * b, taps) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
        term = (lum * cs if i == levels - 1 else cs).reshape(a.shape[0], -1).mean(1)
        values.append(np.maximum(term, 1e-6))
        if i < levels - 1:
            a, b = _pool(a, 2), _pool(b, 2)
    return np.prod(np.stack(values, axis=1) ** weights, axis=1)


def band_energy(a: np.ndarray, b: np.ndarray, levels: int = 4, window: int = 4) -> np.ndarray:
    """losses.band_energy_loss per image (B,)."""
    total = np.zeros(a.shape[0], dtype=np.float32)
    for ba, bb in zip(laplacian_bands(a, levels), laplacian_bands(b, levels)):
        k = min(window, *ba.shape[-2:])
        total += np.abs(_pool(np.abs(ba), k) - _pool(np.abs(bb), k)).reshape(a.shape[0], -1).mean(1)
    return total


def objective(decoded: np.ndarray, original: np.ndarray, syntax_bpp: float, lambda_d: float = 1.0,
              lambda_p: float = 0.3, lambda_f: float = 0.05) -> float:
    """objective.Objective's value (mean over the batch) for (B, 3, H, W) images in [0, 1]."""
    decoded, original = decoded.astype(np.float32), original.astype(np.float32)
    l1 = np.abs(decoded - original).reshape(decoded.shape[0], -1).mean(1)
    perceptual = (1.0 - ms_ssim(decoded, original)) + band_energy(decoded, original)
    return float((lambda_d * l1 + lambda_p * perceptual + lambda_f * syntax_bpp).mean())
