"""The U-Net, SFF and syntax generator: shapes, the identity start, per-sample kernels."""

from __future__ import annotations

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import CgdmConfig, UNetConfig
from cgdm_codec.layers.sff import SyntaxFeatureFusion, dynamic_depthwise
from cgdm_codec.models.cgdm import Cgdm, count_parameters
from cgdm_codec.models.syntax import SyntaxGenerator, quantize, symbols_of
from cgdm_codec.models.condition import timestep_embedding
from cgdm_codec.models.unet import ConsistencyGuidedUNet


pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]


def test_config_round_trip():
    for name in ("paper", "small", "tiny"):
        cfg = CgdmConfig.preset(name)
        assert CgdmConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        CgdmConfig.preset("huge")


def test_paper_preset_size():
    n = count_parameters(ConsistencyGuidedUNet(UNetConfig.paper(), 24))
    assert 11e6 < n < 14e6


@pytest.mark.parametrize("train", [False, True])
def test_untrained_unet_returns_x_tilde_exactly(train):
    cfg = CgdmConfig.preset("tiny")
    net = ConsistencyGuidedUNet(cfg.unet, cfg.syntax.length).train(train)
    gen = torch.Generator().manual_seed(0)
    x_tilde = torch.rand(3, 3, 16, 24, generator=gen) * 2 - 1
    out = net(torch.randn(3, 3, 16, 24, generator=gen), torch.tensor([0, 500, 999]), x_tilde,
              torch.randn(3, cfg.syntax.length, generator=gen), torch.tensor([0, 3, 5]))
    assert out.dtype == torch.float32
    assert torch.equal(out, x_tilde)


def test_trained_unet_depends_on_every_input():
    cfg = CgdmConfig.preset("tiny")
    torch.manual_seed(0)
    net = ConsistencyGuidedUNet(cfg.unet, cfg.syntax.length).eval()
    torch.nn.init.normal_(net.head[2].weight, std=0.1)
    for sff in net.decoder.fuse:
        for branch in (sff.w_e, sff.w_d):
            torch.nn.init.normal_(branch.to_params.weight, std=0.1)
    x_t, x_tilde = torch.randn(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    args = dict(t=torch.tensor([10]), syntax=torch.zeros(1, cfg.syntax.length), quality=torch.tensor([0]))
    ref = net(x_t, x_tilde=x_tilde, **args)
    variants = [dict(args, t=torch.tensor([900])), dict(args, quality=torch.tensor([4])),
                dict(args, syntax=torch.ones(1, cfg.syntax.length))]
    for v in variants:
        assert not torch.allclose(net(x_t, x_tilde=x_tilde, **v), ref)
    assert not torch.allclose(net(x_t * 0, x_tilde=x_tilde, **args), ref)


def test_dynamic_depthwise_matches_per_sample_convolution():
    gen = torch.Generator().manual_seed(1)
    x, k = torch.randn(3, 4, 9, 7, generator=gen), torch.randn(3, 4, 3, 3, generator=gen)
    out = dynamic_depthwise(x, k)
    for b in range(3):
        ref = torch.nn.functional.conv2d(x[b:b + 1], k[b].unsqueeze(1), padding=1, groups=4)
        torch.testing.assert_close(out[b:b + 1], ref)
    same = dynamic_depthwise(x, k[:1].expand(3, -1, -1, -1))  # the shared-kernel fast path
    ref = torch.nn.functional.conv2d(x[2:], k[0].unsqueeze(1), padding=1, groups=4)
    torch.testing.assert_close(same[2:], ref)


def test_sff_starts_as_static_fusion_and_reacts_to_condition():
    sff = SyntaxFeatureFusion(8, 16)
    e, d = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    cond = torch.randn(2, 16)
    torch.testing.assert_close(sff(e, d, cond), sff.mix(torch.cat([e, d], 1)))
    torch.nn.init.normal_(sff.w_e.to_params.weight)
    out = sff(e, d, cond)
    assert not torch.allclose(out[0], sff(e, d, cond.flip(0))[0])


def test_timestep_embedding_shape():
    emb = timestep_embedding(torch.tensor([0, 999]), 32)
    assert emb.shape == (2, 32) and torch.all(emb[0, :16] == 1)


def test_syntax_generator_shapes_and_tiled_pooling():
    cfg = CgdmConfig.preset("tiny").syntax
    gen = SyntaxGenerator(cfg).eval()
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    assert gen(x, x).shape == (1, cfg.length)
    small_tile = SyntaxGenerator(type(cfg)(**{**cfg.__dict__, "pool_tile": 32}))
    small_tile.load_state_dict(gen.state_dict())
    tiled = small_tile(x, x, tiled=True)
    assert tiled.shape == (1, cfg.length) and torch.isfinite(tiled).all()
    tiny = torch.rand(1, 3, 1, 1)
    assert gen(tiny, tiny).shape == (1, cfg.length)


def test_quantize_straight_through_and_clamp():
    v = torch.tensor([0.4, -2.6, 100.0], requires_grad=True)
    q = quantize(v, 63, straight_through=True)
    assert q.tolist() == [0.0, -3.0, 63.0]
    q.sum().backward()
    assert v.grad.tolist() == [1.0, 1.0, 0.0]  # the clamp stops the gradient of the clipped value
    assert symbols_of(torch.tensor([[1.5, -70.0]]), 63).tolist() == [[2, -63]]


def test_cgdm_bundle_has_all_parts():
    m = Cgdm(CgdmConfig.preset("tiny"))
    names = {k.split(".")[0] for k in m.state_dict()}
    assert names == {"unet", "syntax", "prior"}


def test_offline_perceptual_loss():
    from cgdm_codec.quality.bands import band_energy_torch as band_energy_loss
    from cgdm_codec.quality.objective import fine_loss, perceptual_torch as perceptual_loss
    from cgdm_codec.quality.msssim import ms_ssim_torch as ms_ssim

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2))
    assert float(perceptual_loss(x, x).abs().max()) < 1e-5
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert bool((band_energy_loss(blurred, x) > 0.01).all())
    for side in (5, 8, 300):
        y = torch.rand(1, 3, side, side, generator=gen)
        assert torch.isfinite(perceptual_loss(y, y.flip(-1))).all()
    x_hat = blurred.clone().requires_grad_()
    loss, parts = fine_loss(x_hat, x, torch.full((2,), 0.01), 1.0, 0.3, 0.05)
    loss.backward()
    assert x_hat.grad is not None and set(parts) == {"l1", "perceptual", "bpp"}
    with_h, parts_h = fine_loss(x_hat, x, torch.full((2,), 0.01), 1.0, 0.3, 0.05, lambda_h=0.5)
    torch.testing.assert_close(with_h, loss + 0.5 * parts_h["haarpsi"])


def test_haarpsi_loss_is_the_evaluation_metric_made_differentiable():
    """The training term must be the metric the evaluation reports, not a look-alike."""
    import numpy as np

    from cgdm_codec import quality as metrics
    from cgdm_codec.quality.haar import haarpsi_torch

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:96, 0:80]
    a = np.stack([(xx * 3) % 256, (yy * 2 + xx) % 256, (yy * 5) % 256], -1).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    c = np.clip(a * 0.7 + 40, 0, 255).astype(np.uint8)
    t = lambda z: torch.from_numpy(z.copy()).float().permute(2, 0, 1) / 255  # noqa: E731
    losses = 1.0 - haarpsi_torch(torch.stack([t(b), t(c), t(a)]), torch.stack([t(a), t(a), t(a)]))
    expected = [1 - metrics.haarpsi(a, b), 1 - metrics.haarpsi(a, c), 0.0]
    torch.testing.assert_close(losses, torch.tensor(expected), atol=2e-5, rtol=0)
    assert 0.05 < float(losses[0]) < 0.95 and float(losses[0]) != float(losses[1])
    x_hat = t(b)[None].requires_grad_()
    (1.0 - haarpsi_torch(x_hat, t(a)[None])).sum().backward()
    assert torch.isfinite(x_hat.grad).all() and float(x_hat.grad.abs().sum()) > 0
