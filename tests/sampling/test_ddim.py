"""DDIM scheduler: timesteps, the forward process and exactness with a perfect oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.sampling.ddim import DDIMScheduler, trailing_timesteps

pytestmark = pytest.mark.torch


def test_trailing_timesteps():
    assert trailing_timesteps(1000, 9) == [999, 887, 776, 665, 554, 443, 332, 221, 110]
    assert trailing_timesteps(1000, 1) == [999]
    with pytest.raises(ValueError):
        trailing_timesteps(10, 11)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedule_is_monotone_and_ends_in_noise(schedule):
    s = DDIMScheduler(1000, schedule)
    a = s.alphas_cumprod
    assert a.dtype == np.float64 and a.shape == (1000,)
    assert bool((a[1:] < a[:-1]).all()) and a[0] > 0.99 and a[-1] < 1e-3


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 2, 9])
def test_perfect_oracle_returns_x0(schedule, steps):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=gen) * 2 - 1
    s = DDIMScheduler(1000, schedule)
    s.set_timesteps(steps)
    sample = torch.randn(x0.shape, generator=gen)
    for t in s.timesteps:
        sample = s.step(x0, t, sample)
    torch.testing.assert_close(sample, x0, atol=1e-6, rtol=0)


def test_step_is_deterministic_and_clamps():
    s = DDIMScheduler()
    s.set_timesteps(2)
    x_t = torch.randn(1, 3, 4, 4)
    out = s.step(torch.full_like(x_t, 5.0), s.timesteps[-1], x_t)
    assert torch.equal(out, torch.ones_like(x_t))  # last step lands on the clamped x0
    a = s.step(torch.zeros_like(x_t), s.timesteps[0], x_t)
    assert torch.equal(a, s.step(torch.zeros_like(x_t), s.timesteps[0], x_t))


def test_add_noise_matches_closed_form():
    s = DDIMScheduler()
    x0, noise = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    t = torch.tensor([0, 999])
    out = s.add_noise(x0, noise, t)
    for i, ti in enumerate(t.tolist()):
        a = float(s.alphas_cumprod[ti])
        torch.testing.assert_close(out[i], torch.full((1, 2, 2), math.sqrt(a) + 2 * math.sqrt(1 - a)))


def test_numpy_and_torch_steps_agree_and_step_in_place_equals_step():
    """One scheduler steps both libraries (the ONNX Runtime decoder's numpy arrays, torch's
    tensors) with the same float32 operations: equal results."""
    s = DDIMScheduler()
    s.set_timesteps(3)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 3, 16, 16, generator=gen) * 1.5
    x_t = torch.randn(1, 3, 16, 16, generator=gen)
    for t in s.timesteps:
        want = s.step(x0, t, x_t)
        got = s.step(x0.numpy(), t, x_t.numpy())
        assert got.dtype == np.float32 and np.array_equal(got, want.numpy())
        in_place = s.step_(x0.numpy().copy(), t, x_t.numpy().copy())
        assert np.array_equal(in_place, want.numpy())
        assert torch.equal(s.step_(x0.clone(), t, x_t.clone()), want)
