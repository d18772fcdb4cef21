"""Artefact measures: what a fidelity metric can reward while an eye sees a flaw.

PSNR, MS-SSIM and HaarPSI average errors; a decoder can lower them by painting a faint
regular pattern (HaarPSI's finest Haar filter has period 2, and it rewarded one), by
overshooting edges, or by adding grain to flat areas. These measures look for exactly
those, in numpy only (no torch), for uint8 RGB arrays (H, W, 3):

* ``period2_ratio`` (no reference): the luma power at the horizontal / vertical Nyquist
  frequency (a one-pixel line or checker pattern) over the mean power of the frequencies just
  below it, the worse of the two directions. About 1 for photographs, AVIF and any smooth
  spectrum; a decoder that paints a period-2 grid gives several times that.
* ``edge_overshoot``: near the original's strongest edges, the mean amount (8-bit luma
  levels) by which the decode leaves the original's local range (ringing and halos); 0 for
  the original itself.
* ``flat_noise``: on the original's flattest blocks (lowest quarter of fine-band energy), the
  decode's finest-band energy over the original's: above 1 the decode added grain or a
  pattern there, below 1 it smoothed.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
#: The neighbouring band the Nyquist power is compared with, in cycles per pixel: wide
#: enough to be a stable mean, clear of the Hann window's leakage from the Nyquist bin.
NEIGHBOURS = (0.40, 0.48)
MIN_SIDE = 64  # shorter lines have too few bins near Nyquist for a stable ratio
EDGE_RADIUS = 3
EDGE_SHARE = 0.02  # the strongest 2 % of the original's luma gradients are its edges
EDGE_MIN_GRADIENT = 16.0  # ... if they are edges at all (8-bit levels per pixel)
FLAT_BLOCK = 16


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float64 in [0, 255]."""
    return np.asarray(rgb, dtype=np.float64)[..., :3] @ LUMA


def line_spectrum(y: np.ndarray) -> np.ndarray:
    """Mean power per frequency bin (0 .. Nyquist) of the rows of ``y`` (even length, Hann window)."""
    w = y.shape[1] - y.shape[1] % 2
    rows = y[:, :w] - y[:, :w].mean(axis=1, keepdims=True)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w)  # periodic: Nyquist stays one bin
    return (np.abs(np.fft.rfft(rows * window, axis=1)) ** 2).mean(axis=0)


def nyquist_ratio(spectrum: np.ndarray) -> float:
    """Power of the Nyquist bin over the mean of the ``NEIGHBOURS`` band."""
    n = 2 * (len(spectrum) - 1)
    lo, hi = (int(np.ceil(f * n)) for f in NEIGHBOURS)
    band = spectrum[lo:hi]
    return float(spectrum[-1] / max(float(band.mean()), 1e-12))


def period2_ratio(rgb: np.ndarray) -> float:
    """The worse of the horizontal and vertical Nyquist ratios of the luma (NaN when too small)."""
    y = luma(rgb)
    if min(y.shape) < MIN_SIDE:
        return float("nan")
    return max(nyquist_ratio(line_spectrum(y)), nyquist_ratio(line_spectrum(y.T)))


def _sliding(y: np.ndarray, radius: int, reduce) -> np.ndarray:
    """A separable (2r+1)^2 max or min filter, edges replicated."""
    k = 2 * radius + 1
    p = np.pad(y, radius, mode="edge")
    rows = reduce(np.lib.stride_tricks.sliding_window_view(p, k, axis=1), axis=-1)
    return reduce(np.lib.stride_tricks.sliding_window_view(rows, k, axis=0), axis=-1)


def _gradient(y: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(y)
    return np.hypot(gx, gy)


def edge_overshoot(decoded: np.ndarray, original: np.ndarray) -> float:
    """Mean luma levels the decode leaves the original's local [min, max] by, near strong edges.

    The region is every pixel within ``EDGE_RADIUS`` of one of the original's strongest
    gradients; 0 where the original has no edge at all.
    """
    yd, yo = luma(decoded), luma(original)
    g = _gradient(yo)
    threshold = max(float(np.quantile(g, 1 - EDGE_SHARE)), EDGE_MIN_GRADIENT)
    near = _sliding((g >= threshold).astype(np.uint8), EDGE_RADIUS, np.max).astype(bool)
    if not near.any():
        return 0.0
    hi, lo = _sliding(yo, EDGE_RADIUS, np.max), _sliding(yo, EDGE_RADIUS, np.min)
    beyond = np.maximum(yd - hi, 0.0) + np.maximum(lo - yd, 0.0)
    return float(beyond[near].mean())


def fine_band(y: np.ndarray) -> np.ndarray:
    """|finest Laplacian band| of a luma image (the pyramid the band-energy ratios use)."""
    from .quality.bands import laplacian_bands_numpy

    return np.abs(laplacian_bands_numpy(y, 1)[0])


def block_means(x: np.ndarray, block: int) -> np.ndarray:
    h, w = (s - s % block for s in x.shape)
    return x[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def flat_noise(decoded: np.ndarray, original: np.ndarray) -> float:
    """Fine-band energy of the decode over the original's on the original's flattest blocks."""
    yo, yd = luma(original), luma(decoded)
    if min(yo.shape) < FLAT_BLOCK:
        return float("nan")
    eo, ed = block_means(fine_band(yo), FLAT_BLOCK), block_means(fine_band(yd), FLAT_BLOCK)
    flat = eo <= np.quantile(eo, 0.25)
    return float(ed[flat].sum() / max(float(eo[flat].sum()), 1e-9))


def artefacts(decoded: np.ndarray, original: np.ndarray) -> dict[str, float]:
    """Every measure of one decode, and the original's own period-2 ratio to compare with."""
    return {"period2": period2_ratio(decoded), "period2_ref": period2_ratio(original),
            "edge_overshoot": edge_overshoot(decoded, original),
            "flat_noise": flat_noise(decoded, original)}
