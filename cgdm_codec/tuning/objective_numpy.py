"""The encoder's objective (``objective.Objective``: the fine stage's loss) on numpy arrays.

The torch-free encoder decides between the diffusion stage and the base-only decode with
the same quantity the torch encoder and training use: lambda_d * L1 + lambda_p * (1 -
MS-SSIM + band-energy difference) + lambda_h * (1 - HaarPSI) + lambda_f * syntax bpp, with
the lambdas a generation was trained with (``objective.Objective.of``). The formulas follow
``losses.py`` and ``haarpsi.py`` step by step; tests hold the two within float tolerance.
"""

from __future__ import annotations

import numpy as np

from ..haarpsi import HAARPSI_ALPHA, HAARPSI_SCALES, YIQ, similarity
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


def _half_size(x: np.ndarray) -> np.ndarray:
    """haarpsi.half_size: an odd side gets its last line repeated, then 2x2 means."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = np.pad(x, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    return _pool(x, 2)


def _correlate(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, C, H, W) cross-correlated with the separable kernel outer(rows, cols), zero
    padding (k-1)//2 before and k//2 after: haarpsi._conv_same_zero's alignment."""
    k = rows.size
    h, w = x.shape[-2:]
    p = np.pad(x, ((0, 0), (0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2)))
    across = sum(cols[j] * p[..., :, j:j + w] for j in range(k))
    return sum(rows[i] * across[..., i:i + h, :] for i in range(k))


def haarpsi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """losses.haarpsi_loss's HaarPSI per image (B,) of (B, 3, H, W) in [0, 1] (``a`` clipped)."""
    yiq = np.array(YIQ, dtype=np.float32)
    x = _half_size(np.einsum("oc,nchw->nohw", yiq, np.clip(a, 0.0, 1.0) * np.float32(255.0)))
    y = _half_size(np.einsum("oc,nchw->nohw", yiq, b * np.float32(255.0)))
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


def objective(decoded: np.ndarray, original: np.ndarray, syntax_bpp: float, lambda_d: float = 1.0,
              lambda_p: float = 0.3, lambda_f: float = 0.05, lambda_h: float = 0.0) -> float:
    """objective.Objective's value (mean over the batch) for (B, 3, H, W) images in [0, 1]."""
    decoded, original = decoded.astype(np.float32), original.astype(np.float32)
    l1 = np.abs(decoded - original).reshape(decoded.shape[0], -1).mean(1)
    perceptual = (1.0 - ms_ssim(decoded, original)) + band_energy(decoded, original)
    per_image = lambda_d * l1 + lambda_p * perceptual
    if lambda_h:
        per_image = per_image + lambda_h * (1.0 - haarpsi(decoded, original))
    return float((per_image + lambda_f * syntax_bpp).mean())
