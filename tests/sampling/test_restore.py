"""The seeded tiled decode."""

from __future__ import annotations

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import CgdmConfig
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.sampling.restore import restore

from tiny_models import SAMPLER, image, trained_looking

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]


def test_untrained_network_returns_x_tilde():
    model = Cgdm(CgdmConfig.preset("tiny"))
    x_tilde = image(40, 50)
    out = restore(model.unet, x_tilde, torch.zeros(8, dtype=torch.long), 2, seed=1, steps=3,
                  precision="fp32", max_batch_tiles=2, sampler=SAMPLER)
    torch.testing.assert_close(out, x_tilde, atol=1e-5, rtol=0)


@pytest.mark.parametrize("hw", [(1, 1), (7, 45), (37, 21)])
def test_any_size_comes_back_at_its_size(hw):
    out = restore(trained_looking().unet, image(*hw), torch.zeros(8, dtype=torch.long), 0, seed=0,
                  steps=2, precision="fp32", sampler=SAMPLER)
    assert out.shape == (1, 3, *hw) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_deterministic_and_seed_sensitive():
    model = trained_looking()
    x_tilde, syntax = image(40, 50), torch.arange(8) - 4
    calls = []
    kwargs = dict(steps=3, precision="fp32", max_batch_tiles=3, sampler=SAMPLER)
    a = restore(model.unet, x_tilde, syntax, 3, seed=5, progress=lambda i, n: calls.append((i, n)), **kwargs)
    b = restore(model.unet, x_tilde, syntax, 3, seed=5, **kwargs)
    c = restore(model.unet, x_tilde, syntax, 3, seed=6, **kwargs)
    d = restore(model.unet, x_tilde, syntax + 1, 3, seed=5, **kwargs)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, d)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_feature_cache_does_not_change_the_result():
    model = trained_looking()
    x_tilde, syntax = image(40, 50), torch.zeros(8, dtype=torch.long)
    kwargs = dict(steps=2, precision="fp32", max_batch_tiles=2, sampler=SAMPLER)
    cached = restore(model.unet, x_tilde, syntax, 1, seed=3, **kwargs)
    uncached = restore(model.unet, x_tilde, syntax, 1, seed=3, feature_cache_bytes=0, **kwargs)
    assert torch.equal(cached, uncached)


def test_bf16_path_runs():
    out = restore(trained_looking().unet, image(24, 24), torch.zeros(8, dtype=torch.long), 0, seed=0,
                  steps=1, precision="bf16", sampler=SAMPLER)
    assert torch.isfinite(out).all()


def test_whole_model_brings_its_sampler_settings():
    model, x_tilde, syntax = trained_looking(), image(40, 50), torch.zeros(8, dtype=torch.long)
    a = restore(model, x_tilde, syntax, 0, seed=2, steps=2, precision="fp32")
    b = restore(model.unet, x_tilde, syntax, 0, seed=2, steps=2, precision="fp32", sampler=SAMPLER)
    assert torch.equal(a, b)


@pytest.mark.parametrize("size", [(40, 50), (23, 61)])
def test_uint8_x_tilde_decodes_like_its_float_form(size):
    """AV1's x~ travels as uint8 and is converted tile by tile: the same values as the float
    x~ that rgb_to_tensor makes, also where tiles hang over the image into the padding."""
    from cgdm_codec.base.interface import rgb_to_tensor, rgb_to_uint8_tensor

    model = trained_looking()
    rgb = (torch.rand(*size, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    syntax = torch.zeros(8, dtype=torch.long)
    kwargs = dict(steps=2, precision="fp32", max_batch_tiles=2, sampler=SAMPLER)
    as_float = restore(model.unet, rgb_to_tensor(rgb), syntax, 1, seed=3, **kwargs)
    as_uint8 = restore(model.unet, rgb_to_uint8_tensor(rgb), syntax, 1, seed=3, consume_input=True, **kwargs)
    assert torch.equal(as_float, as_uint8)


def test_uint8_tensor_of_a_read_only_array_copies_it_silently():
    import warnings

    import numpy as np

    from cgdm_codec.base.interface import rgb_to_uint8_tensor

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rgb.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = rgb_to_uint8_tensor(rgb)
    assert t.shape == (1, 3, 2, 3) and torch.equal(t[0].permute(1, 2, 0), torch.from_numpy(rgb.copy()))


@pytest.mark.parametrize("steps", [1, 2])
def test_x_T_read_from_its_patch_decodes_like_the_whole_canvas(steps, monkeypatch):
    """x_T is a lazy periodic canvas (a one-step decode never builds it); the pixels are
    those of the canvas built whole, for one step and for more."""
    import numpy as np

    from cgdm_codec.sampling import restore as restore_module
    from cgdm_codec.sampling.tiling import make_grid

    grid = make_grid(40, 50, SAMPLER.tile, SAMPLER.overlap, 8, SAMPLER.tiling)
    lazy = restore_module.periodic_noise(restore_module.noise_patch(9, 3, SAMPLER.noise_period)[None], grid)
    assert np.array_equal(lazy.crop(0, 0, *grid.canvas), restore_module.seeded_noise_array(9, *grid.canvas, SAMPLER))
    model, x_tilde, syntax = trained_looking(), image(40, 50), torch.arange(8) - 4
    kwargs = dict(steps=steps, precision="fp32", max_batch_tiles=2, sampler=SAMPLER)
    got = restore(model.unet, x_tilde, syntax, 2, seed=9, **kwargs)
    monkeypatch.setattr(restore_module, "periodic_noise",
                        lambda patch, grid: torch.from_numpy(restore_module.tiled_noise(patch[0].numpy(), *grid.canvas)[None]))
    assert torch.equal(got, restore(model.unet, x_tilde, syntax, 2, seed=9, **kwargs))
