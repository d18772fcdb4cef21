"""The artefact measures find the flaws they name, and not where there are none."""

import numpy as np
import pytest

from cgdm_codec.artefacts import artefacts, edge_overshoot, flat_noise, period2_ratio


def smooth_photo(h: int = 128, w: int = 160, seed: int = 0) -> np.ndarray:
    """A 1/f-ish random image: a power spectrum with no line at Nyquist, like a photograph."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h, w))
    out = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random((h, w)))
        out.append(np.real(np.fft.ifft2(amp * phase)))
    x = np.stack(out, axis=-1)
    x = (x - x.min()) / (x.max() - x.min()) * 200 + 28
    return x.round().astype(np.uint8)


def with_grid(x: np.ndarray, amplitude: float, kind: str) -> np.ndarray:
    yy, xx = np.mgrid[:x.shape[0], :x.shape[1]]
    pattern = {"checker": (yy + xx) % 2, "columns": xx % 2, "rows": yy % 2}[kind] * 2.0 - 1.0
    return np.clip(x + amplitude * pattern[..., None], 0, 255).round().astype(np.uint8)


def test_a_photo_like_spectrum_is_near_one():
    assert 0.3 < period2_ratio(smooth_photo()) < 1.6


@pytest.mark.parametrize("kind", ["checker", "columns", "rows"])
def test_a_one_pixel_grid_is_found_in_either_direction(kind):
    x = smooth_photo()
    assert period2_ratio(with_grid(x, 3.0, kind)) > 5 * period2_ratio(x)


def test_too_small_is_nan_not_an_error():
    assert np.isnan(period2_ratio(np.zeros((32, 200, 3), np.uint8)))


def test_overshoot_is_zero_for_the_original_and_grows_with_a_halo():
    x = np.full((64, 64, 3), 60, np.uint8)
    x[:, 32:] = 200  # one strong vertical edge
    assert edge_overshoot(x, x) == 0.0
    halo = x.copy()
    halo[:, 30:32] = 30  # dark ringing before the edge
    halo[:, 32:34] = 230  # and a bright one after it
    assert edge_overshoot(halo, x) > 5.0
    assert edge_overshoot(np.full_like(x, 60), np.full_like(x, 60)) == 0.0  # no edge, nothing to measure


def test_flat_noise_sees_grain_on_flat_areas_only():
    rng = np.random.default_rng(1)
    x = np.repeat(np.linspace(40, 200, 128)[None, :, None], 128, 0).repeat(3, 2)
    x[:, 64:] += rng.normal(0, 20, (128, 64, 3))  # texture on one half, a smooth ramp on the other
    x = np.clip(x, 0, 255).round().astype(np.uint8)
    assert flat_noise(x, x) == pytest.approx(1.0)
    grainy = np.clip(x + rng.normal(0, 3, x.shape), 0, 255).round().astype(np.uint8)
    assert flat_noise(grainy, x) > 1.5
    blurred = x.copy()
    blurred[:, :64] = 120  # the flat half made perfectly flat
    assert flat_noise(blurred, x) < 1.0


def test_artefacts_reports_every_measure():
    x = smooth_photo()
    row = artefacts(with_grid(x, 2.0, "checker"), x)
    assert set(row) == {"period2", "period2_ref", "edge_overshoot", "flat_noise"}
    assert row["period2"] > row["period2_ref"]


def test_the_nyquist_null_head_filter_removes_a_grid_and_keeps_smooth_signals():
    torch = pytest.importorskip("torch")
    from cgdm_codec.layers.nyquist import NyquistNull

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = torch.sin(xx * 0.2)[None, None].repeat(1, 3, 1, 1)
    grid = ((xx + yy) % 2 * 2 - 1)[None, None].repeat(1, 3, 1, 1)
    f = NyquistNull(3)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the replicated edges
    assert f(grid)[inner].abs().max() < 1e-6
    assert f(smooth)[inner].sub(smooth[inner]).abs().max() < 0.01
    assert dict(f.state_dict()) == {}  # no tensors: weights files are unchanged by it
