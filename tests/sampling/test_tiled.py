"""Tiled transforms must equal untiled ones: large images are processed in tiles."""

import pytest

torch = pytest.importorskip("torch")

from cgdm_codec.config import BaseCodecConfig
from cgdm_codec.models.base_codec import VariableRateHyperprior
from cgdm_codec.models.tiled import run_tiled

pytestmark = pytest.mark.torch


def test_run_tiled_matches_whole_for_a_conv_stack():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 2, 3, padding=1)).double()
    x = torch.randn(1, 3, 37, 53, dtype=torch.float64)
    whole = net(x)
    tiled = run_tiled(net, x, tile=8, margin=3, scale=1)
    assert torch.allclose(whole, tiled, atol=1e-12)
    # a margin smaller than the receptive field (3 px) must show up as a difference
    assert not torch.allclose(whole, run_tiled(net, x, tile=8, margin=1, scale=1), atol=1e-6)


def test_base_codec_tiling_is_exact(monkeypatch):
    torch.manual_seed(0)
    model = VariableRateHyperprior(BaseCodecConfig(N=16, M=24)).eval()
    x = torch.rand(1, 3, 192, 256)
    with torch.no_grad():
        y_whole = model.g_a(x)
        x_whole = model.g_s(y_whole).clamp(0, 1)
        monkeypatch.setattr(VariableRateHyperprior, "TILE_LATENT", 4)
        y_tiled, _ = model.analysis(x)
        x_tiled = model.synthesis(y_whole)
    assert torch.allclose(y_whole, y_tiled, atol=1e-4)
    assert torch.allclose(x_whole, x_tiled, atol=1e-4)


def test_entropy_parameters_tiled_are_bit_identical(monkeypatch):
    """The float64 h_s runs in tiles to bound memory; the range coder's inputs must not move."""
    torch.manual_seed(1)
    model = VariableRateHyperprior(BaseCodecConfig(N=16, M=24)).eval()
    with torch.no_grad():
        for p in model.h_s.parameters():
            p.normal_(std=0.3)
    zs_hat = torch.randint(-6, 7, (1, 16, 13, 17)).float()
    whole = model.entropy_parameters(zs_hat, 2)  # 13 x 17 fits one tile: untiled
    monkeypatch.setattr(VariableRateHyperprior, "HS_TILE", 4)
    for margin in (3, 5):
        monkeypatch.setattr(VariableRateHyperprior, "HS_MARGIN", margin)
        tiled = model.entropy_parameters(zs_hat, 2)
        assert all(torch.equal(a, b) for a, b in zip(whole, tiled))
    # a margin below the receptive field (1.75 z pixels) must show up
    monkeypatch.setattr(VariableRateHyperprior, "HS_MARGIN", 1)
    assert not torch.equal(whole[1], model.entropy_parameters(zs_hat, 2)[1])
