"""Tests of the full-reference metrics: extremes, monotonicity, symmetry, odd/small sizes, and
agreement with simple independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
torch = pytest.importorskip("torch")

from cgdm_codec import quality as M
from cgdm_codec.quality import msssim as S
from cgdm_codec.quality.backend import gaussian_torch
from cgdm_codec.quality.images import to_nchw

pytestmark = pytest.mark.torch

torch.set_num_threads(1)

METRICS = {"psnr": M.psnr, "ms_ssim": M.ms_ssim, "haarpsi": M.haarpsi}
BOUNDED = {"ms_ssim": M.ms_ssim, "haarpsi": M.haarpsi}


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-detail colour image, so every metric has structure to look at."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    img = base[..., None] + np.array([0.0, 20.0, -20.0]) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """The same noise field scaled by sigma, so larger sigma is strictly more distortion."""
    noise = np.random.default_rng(seed).standard_normal(img.shape)
    return np.clip(np.round(img.astype(np.float64) + sigma * noise), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return _textured(192, 256)


def test_identical_images_give_maxima(img: np.ndarray) -> None:
    assert M.psnr(img, img) == math.inf
    assert M.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert M.haarpsi(img, img) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_decreases_with_noise(img: np.ndarray, name: str) -> None:
    values = [METRICS[name](img, _noisy(img, s)) for s in (1, 3, 8, 20, 50)]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", sorted(METRICS))
def test_symmetric(img: np.ndarray, name: str) -> None:
    other = _noisy(img, 15)
    assert METRICS[name](img, other) == pytest.approx(METRICS[name](other, img), rel=1e-12)


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_bounded(img: np.ndarray, name: str) -> None:
    far = 255 - img
    for other in (_noisy(img, 40), far, np.zeros_like(img)):
        assert 0.0 <= BOUNDED[name](img, other) <= 1.0


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 9), (11, 11), (12, 31), (45, 23),
                                   (100, 161), (161, 163)])
def test_small_and_odd_sizes(shape: tuple[int, int]) -> None:
    a = _textured(*shape, seed=3)
    b = _noisy(a, 25)
    for name, fn in BOUNDED.items():
        assert fn(a, a) == pytest.approx(1.0, abs=1e-12), name
        v = fn(a, b)
        assert 0.0 <= v <= 1.0 and math.isfinite(v), (name, v)
    assert math.isfinite(M.psnr(a, b)) or np.array_equal(a, b)


def test_all_black_images() -> None:
    z = np.zeros((8, 8, 3), np.uint8)
    assert M.haarpsi(z, z) == pytest.approx(1.0)
    assert M.ms_ssim(z, z) == pytest.approx(1.0)


def test_ms_ssim_scale_count() -> None:
    assert S.ms_ssim_scales(161, 161) == 5  # 161 -> 81 -> 41 -> 21 -> 11
    assert S.ms_ssim_scales(160, 4000) == 4  # 160 -> ... -> 10 is too small for the window
    assert S.ms_ssim_scales(21, 21) == 2
    assert S.ms_ssim_scales(20, 20) == 1
    assert S.ms_ssim_scales(3, 3, win=3) == 1
    assert sum(S._ms_ssim_weights(5)) == pytest.approx(sum(S.MS_SSIM_WEIGHTS))
    assert sum(S._ms_ssim_weights(2)) == pytest.approx(sum(S.MS_SSIM_WEIGHTS))


def test_psnr_by_hand() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255.0**2 / mse), rel=1e-12)
    flat = np.full((5, 5, 3), 100, np.uint8)
    assert M.psnr(flat, flat + 3) == pytest.approx(10 * math.log10(255.0**2 / 9.0), rel=1e-12)


def _luminance_term(c: float, d: float) -> float:
    c1 = (0.01 * 255) ** 2
    return (2 * c * (c + d) + c1) / (c * c + (c + d) ** 2 + c1)


def test_ssim_of_constant_shift() -> None:
    """Flat images differ only in mean: contrast-structure is 1 at every scale, so SSIM is the
    luminance term and MS-SSIM is that term to the coarsest scale's weight."""
    a = np.full((170, 180, 3), 100, np.uint8)
    b = a + 20
    lum = _luminance_term(100.0, 20.0)
    assert M.ssim(a, b) == pytest.approx(lum, rel=1e-12)
    assert M.ms_ssim(a, b) == pytest.approx(lum ** S.MS_SSIM_WEIGHTS[-1], rel=1e-12)


def test_ssim_shift_of_texture_keeps_structure() -> None:
    """A constant shift of a textured image leaves contrast-structure at exactly 1."""
    a = _textured(64, 64)
    a = np.clip(a, 30, 200).astype(np.uint8)
    b = a + 10
    g = gaussian_torch(S.SSIM_WIN, S.SSIM_SIGMA, dtype=torch.float64)
    _, cs = S._channel_terms(to_nchw(a), to_nchw(b), g)
    assert torch.allclose(cs, torch.ones_like(cs), atol=1e-12)


def test_ms_ssim_matches_pytorch_msssim(img: np.ndarray) -> None:
    """Cross-check with an independent implementation where both conventions coincide."""
    ref = pytest.importorskip("pytorch_msssim")
    b = _noisy(img, 12)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(b.copy()).permute(2, 0, 1)[None].double()
    expected = float(ref.ms_ssim(x, y, data_range=255))
    assert M.ms_ssim(img, b) == pytest.approx(expected, abs=2e-5)


def _haarpsi_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """A direct numpy/scipy transcription of the paper's formulas (even sizes only)."""
    signal = pytest.importorskip("scipy.signal")

    def filt(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        n = k.shape[0]
        xp = np.pad(x, ((n // 2 - 1, n // 2), (n // 2 - 1, n // 2)))
        return signal.correlate2d(xp, k, mode="valid")

    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])

    def prep(img: np.ndarray) -> np.ndarray:
        f = img.astype(np.float64) @ yiq.T
        return (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) / 4

    def s(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (2 * p * q + 30.0) / (p * p + q * q + 30.0)

    fa, fb = prep(a), prep(b)
    sims, weights = [], []
    for transpose in (False, True):
        mags = []
        for j in (1, 2, 3):
            k = np.full((2**j, 2**j), 2.0**-j)
            k[: 2 ** (j - 1)] *= -1
            k = k.T if transpose else k
            mags.append((np.abs(filt(fa[..., 0], k)), np.abs(filt(fb[..., 0], k))))
        sims.append((s(*mags[0]) + s(*mags[1])) / 2)
        weights.append(np.maximum(*mags[2]))
    box = np.full((2, 2), 0.25)
    chroma = [s(np.abs(filt(fa[..., c], box)), np.abs(filt(fb[..., c], box))) for c in (1, 2)]
    sims.append((chroma[0] + chroma[1]) / 2)
    weights.append((weights[0] + weights[1]) / 2)
    sim, w = np.stack(sims), np.stack(weights)
    pooled = np.sum(w / (1 + np.exp(-4.2 * sim))) / np.sum(w)
    return float((np.log(pooled / (1 - pooled)) / 4.2) ** 2)


def test_haarpsi_matches_direct_transcription(img: np.ndarray) -> None:
    for sigma in (4, 30):
        b = _noisy(img, sigma)
        assert M.haarpsi(img, b) == pytest.approx(_haarpsi_numpy(img, b), abs=1e-10)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 5, 3), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_rejects_bad_input(bad: np.ndarray) -> None:
    ok = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises((TypeError, ValueError)):
        M.psnr(ok, bad)
