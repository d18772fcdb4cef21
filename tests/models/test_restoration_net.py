"""The one-pass restoration network: shapes, the identity start, tile independence, no grid."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import CgdmConfig, RestorationConfig
from cgdm_codec.layers.blurpool import BlurDownsample, upsample2x
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.models.restoration import RestorationNet
from cgdm_codec.models.unet import ConsistencyGuidedUNet
from tiny_models import randomised

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]

SMALL = RestorationConfig(widths=(8, 16, 32), encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1))


def small_net(**changes) -> RestorationNet:
    cfg = CgdmConfig.preset("tiny-av1")
    return RestorationNet(cfg.unet, replace(SMALL, **changes), cfg.syntax.length)


def run(net, x_tilde: torch.Tensor, x_t: torch.Tensor | None = None, quality: int = 100) -> torch.Tensor:
    b = x_tilde.shape[0]
    syntax = torch.linspace(-3, 3, CgdmConfig.preset("tiny-av1").syntax.length).repeat(b, 1)
    x_t = torch.zeros_like(x_tilde) if x_t is None else x_t
    return net(x_t, torch.full((b,), 999), x_tilde, syntax, torch.full((b,), quality))


def test_config_round_trip_and_unet_manifests_unchanged():
    cfg = CgdmConfig.preset("restoration-av1")
    assert CgdmConfig.from_dict(cfg.to_dict()) == cfg
    assert "restoration" not in CgdmConfig.preset("small-av1").to_dict()
    assert isinstance(Cgdm(cfg).unet, RestorationNet)
    with pytest.raises(ValueError):
        RestorationNet(cfg.unet, replace(SMALL, encoder_blocks=(1,)), 8)


@pytest.mark.parametrize("train", [False, True])
def test_untrained_network_returns_x_tilde_exactly(train):
    net = small_net().train(train)
    gen = torch.Generator().manual_seed(0)
    x_tilde = torch.rand(2, 3, 24, 40, generator=gen) * 2 - 1
    out = run(net, x_tilde, torch.randn(2, 3, 24, 40, generator=gen))
    assert out.shape == x_tilde.shape and out.dtype == torch.float32
    assert torch.equal(out, x_tilde)


def test_features_per_level_and_the_sampler_roles():
    net = randomised(small_net())
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    feats = net.consistency(x)
    assert [f.shape[1:] for f in feats] == [(8, 32, 48), (16, 16, 24), (32, 8, 12)]
    cond = net.condition(torch.tensor([999]), torch.zeros(1, 8), torch.tensor([60]))
    assert net.denoise(x, x, feats, cond).shape == x.shape
    assert net.multiple == 4


def test_noise_input_is_the_only_way_x_t_matters():
    x_tilde = torch.rand(1, 3, 32, 32) * 2 - 1
    noise = torch.randn(1, 3, 32, 32)
    with_input, without = randomised(small_net()), randomised(small_net(noise_input=False))
    assert not torch.allclose(run(with_input, x_tilde, noise), run(with_input, x_tilde))
    assert torch.equal(run(without, x_tilde, noise), run(without, x_tilde))


def test_a_pixel_does_not_depend_on_the_tile_around_it():
    """No pooling over space, per-pixel norms: a tile cut from a larger one (at a multiple of
    ``multiple``) decodes its interior as the larger one does."""
    net = randomised(small_net()).eval()
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        whole, tile = run(net, x), run(net, x[..., 32:128, 36:132].contiguous())
    scale = float(whole.abs().max())  # random weights: values in the hundreds
    diff = (tile - whole[..., 32:128, 36:132]).abs()
    assert float(diff[..., 32:64, 32:64].max()) < 1e-5 * scale  # float rounding only
    assert float(diff[..., :4, :4].max()) > 1e-2 * scale  # the border differs


def nyquist_share(residual: torch.Tensor) -> float:
    """Share of the residual's energy in the rows and columns of Nyquist frequency bins."""
    spec = torch.fft.fft2(residual.double()).abs().pow(2).sum(dim=(0, 1))
    h, w = spec.shape
    return float((spec[h // 2].sum() + spec[:, w // 2].sum() - spec[h // 2, w // 2]) / spec.sum())


def test_no_period2_response_whatever_the_weights():
    """A smooth picture through random weights: the pixel-shuffle U-Net paints period-2
    energy (each pixel phase has its own head filters), the restoration network none."""
    gen = torch.Generator().manual_seed(2)
    smooth = upsample2x(upsample2x(upsample2x(torch.rand(1, 3, 12, 12, generator=gen) * 2 - 1)))
    cfg = CgdmConfig.preset("tiny-av1")
    unet = randomised(ConsistencyGuidedUNet(cfg.unet, cfg.syntax.length)).eval()
    net = randomised(small_net()).eval()
    with torch.no_grad():
        ours = run(net, smooth) - smooth
        theirs = run(unet, smooth) - smooth
    inner = (..., slice(16, 80), slice(16, 80))  # away from the zero padding at the edges
    assert nyquist_share(ours[inner]) < 1e-4
    assert nyquist_share(theirs[inner]) > 100 * nyquist_share(ours[inner])


def test_blur_downsample_removes_what_would_alias():
    checker = torch.ones(1, 2, 16, 16)
    checker[..., ::2, 1::2] = checker[..., 1::2, ::2] = -1
    assert BlurDownsample(2)(checker)[..., 1:-1, 1:-1].abs().max() < 1e-6
    flat = torch.full((1, 2, 16, 16), 0.7)
    assert torch.allclose(BlurDownsample(2)(flat), torch.full((1, 2, 8, 8), 0.7))


def test_candidate_fits_the_decode_budget_in_flops():
    spec = importlib.util.spec_from_file_location(
        "network_flops", Path(__file__).resolve().parents[2] / "benchmarks" / "network_flops.py")
    flops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flops)
    ours = flops.flop_per_pixel("preset:restoration-av1", 64)
    unet = flops.flop_per_pixel("preset:small-av1", 64)
    assert ours < 85e3 and ours < unet


def test_the_onnx_roles_export_and_agree_with_torch(tmp_path):
    """The decoder's three graphs (condition, features, denoise) come out of the usual export
    for this network too, their tensors read from the safetensors file, and agree with torch."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from cgdm_codec.models.cgdm import export_weights
    from cgdm_lab.train.export_onnx import export_graphs

    cfg = replace(CgdmConfig.preset("tiny-av1"), restoration=SMALL)
    model = Cgdm(cfg).eval()
    randomised(model.unet)
    weights = tmp_path / "candidate.safetensors"
    export_weights(model, weights)
    record = export_graphs(weights)
    x = torch.rand(2, 3, 24, 32) * 2 - 1
    noise = torch.randn(2, 3, 24, 32)

    def graph(role: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(tmp_path / record[role]["file"]), providers=["CPUExecutionProvider"])

    t, syntax, q = torch.tensor([999]), torch.linspace(-2, 2, 8)[None], torch.tensor([90])
    cond = graph("condition").run(None, {"t": t.numpy(), "syntax": syntax.numpy(), "quality": q.numpy()})[0]
    feats = graph("features").run(None, {"x_tilde": x.numpy()})
    feed = {"x_t": noise.numpy(), "x_tilde": x.numpy(), "cond": cond, **{f"e{i}": f for i, f in enumerate(feats)}}
    x0 = graph("denoise").run(None, feed)[0]
    with torch.no_grad():
        ref = model.unet(noise, t.repeat(2), x, syntax.repeat(2, 1), q.repeat(2))
    scale = float(ref.abs().max())
    assert np.abs(x0 - ref.numpy()).max() < 1e-4 * scale



def test_the_decoders_tile_multiple_is_the_networks():
    """Tiles are padded to the multiple of the network that runs, not always the U-Net's."""
    from cgdm_codec.runtime import OrtDenoiser, graph_paths
    from cgdm_codec.weights import read_manifest, weights_dir

    cfg = CgdmConfig.preset("restoration-av1")
    deeper = replace(cfg, restoration=replace(cfg.restoration, widths=(16, 32, 64, 128, 256),
                                              encoder_blocks=(1, 1, 1, 1), decoder_blocks=(1, 1, 1, 1)))
    assert cfg.multiple == cfg.restoration.multiple == 8
    assert deeper.multiple == 16 != deeper.unet.multiple
    unet = CgdmConfig.preset("small-av1")
    assert unet.multiple == unet.unet.multiple
    shipped = weights_dir() / "cgdm-av1-5.safetensors"
    graphs = graph_paths(shipped, read_manifest(shipped))
    assert OrtDenoiser(graphs, deeper.unet, 1, multiple=deeper.multiple).multiple == 16
    assert OrtDenoiser(graphs, unet.unet, 1).multiple == unet.unet.multiple
