"""A U-Net that does not read x_t (``UNetConfig.noise_input = False``, cgdm-av1-6 on): its
diffusion features are those of a zero input on an unbounded canvas, one vector per level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import CgdmConfig
from cgdm_codec.layers.sff import SyntaxFeatureFusion
from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.models.unet import ConsistencyGuidedUNet
from tiny_models import randomised

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]


def tiny_unet(noise_input: bool) -> ConsistencyGuidedUNet:
    cfg = CgdmConfig.preset("tiny")
    return randomised(ConsistencyGuidedUNet(replace(cfg.unet, noise_input=noise_input), cfg.syntax.length),
                      scale=0.2).eval()


SYNTAX = CgdmConfig.preset("tiny").syntax.length


def condition(net: ConsistencyGuidedUNet, rows: int = 2) -> torch.Tensor:
    syntax = torch.randn(rows, SYNTAX, generator=torch.Generator().manual_seed(3))
    return net.condition(torch.full((rows,), 999), syntax, torch.arange(rows))


def test_no_input_is_a_zero_input_on_an_unbounded_canvas():
    """With circular padding a zero input's maps are constant everywhere, borders included:
    the finite stand-in for an unbounded canvas, where the encoder's x = None must agree exactly."""
    net = tiny_unet(True)
    cond = condition(net)
    with torch.no_grad():
        vectors = net.diffusion_encoder(None, cond)
        for module in net.diffusion_encoder.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.padding_mode = "circular"
        maps = net.diffusion_encoder(torch.zeros(2, 3, 32, 32), cond)
    assert [v.shape[-2:] for v in vectors] == [torch.Size([1, 1])] * len(maps)
    for v, m in zip(vectors, maps):
        torch.testing.assert_close(v.expand_as(m), m, atol=1e-5, rtol=1e-5)
        assert float(v.std()) > 0.01  # the features are not trivially zero


def test_sff_with_a_constant_d_equals_the_full_map_away_from_the_border():
    sff = randomised(SyntaxFeatureFusion(8, 16), 1, scale=0.2).eval()
    gen = torch.Generator().manual_seed(2)
    e, d, cond = torch.randn(2, 8, 9, 7, generator=gen), torch.randn(2, 8, 1, 1, generator=gen), torch.randn(2, 16)
    with torch.no_grad():
        full = sff(e, d.expand(-1, -1, 9, 7), cond)
        constant = sff(e, d, cond, constant=True)
        shared = sff(e[:1], d[:1], cond[:1], constant=True)  # one condition row for the batch
    torch.testing.assert_close(constant[..., 1:-1, 1:-1], full[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(constant[..., 0, :], full[..., 0, :])  # the border differs: no zero padding
    torch.testing.assert_close(shared, constant[:1])


def test_a_network_without_noise_input_ignores_x_t_and_reads_the_rest():
    net = tiny_unet(False)
    gen = torch.Generator().manual_seed(4)
    x_t, x_tilde = torch.randn(2, 3, 16, 24, generator=gen), torch.rand(2, 3, 16, 24, generator=gen) * 2 - 1
    args = dict(t=torch.tensor([999, 999]), syntax=torch.zeros(2, SYNTAX), quality=torch.tensor([1, 1]))
    with torch.no_grad():
        ref = net(x_t, x_tilde=x_tilde, **args)
        assert torch.equal(net(torch.randn(2, 3, 16, 24, generator=gen), x_tilde=x_tilde, **args), ref)
        assert not torch.allclose(net(x_t, x_tilde=x_tilde, **dict(args, syntax=torch.ones(2, SYNTAX))), ref)
        assert not torch.allclose(net(x_t, x_tilde=x_tilde, **dict(args, quality=torch.tensor([4, 4]))), ref)
        # the same tensors reading x_t decode differently: the setting is part of the network
        reading = tiny_unet(True)
        assert not torch.allclose(reading(x_t, x_tilde=x_tilde, **args), ref)


def test_its_denoise_graph_has_no_x_t_and_the_onnx_decoder_still_runs_it(tmp_path):
    pytest.importorskip("onnxruntime")
    from cgdm_codec.models.cgdm import export_weights
    from cgdm_codec.runtime import OrtDenoiser, graph_paths
    from cgdm_codec.sampling.sample import Steering
    from cgdm_codec.weights import read_manifest
    from cgdm_lab.train.export_onnx import export_graphs

    tiny = CgdmConfig.preset("tiny-av1")
    model = Cgdm(replace(tiny, unet=replace(tiny.unet, noise_input=False))).eval()
    randomised(model.unet, scale=0.2)
    weights = tmp_path / "noise-free.safetensors"
    export_weights(model, weights)
    export_graphs(weights)
    graphs = graph_paths(weights, read_manifest(weights))
    import onnxruntime as ort

    inputs = [i.name for i in ort.InferenceSession(str(graphs["denoise"])).get_inputs()]
    assert "x_t" not in inputs and "x_tilde" in inputs
    ort_net = OrtDenoiser(graphs, model.cfg.unet, 1)
    gen = torch.Generator().manual_seed(5)
    x_t, x_tilde = torch.randn(2, 3, 24, 32, generator=gen), torch.rand(2, 3, 24, 32, generator=gen) * 2 - 1
    syntax = torch.linspace(-2, 2, model.cfg.syntax.length)
    steering = Steering(syntax=syntax.numpy(), quality=90)
    cond = ort_net.condition(999, steering)
    x0 = ort_net.denoise(x_t.numpy(), x_tilde.numpy(), ort_net.features(x_tilde.numpy()), cond)
    with torch.no_grad():
        ref = model.unet(x_t, torch.tensor([999, 999]), x_tilde, syntax[None].repeat(2, 1), torch.tensor([90, 90]))
    assert np.abs(x0 - ref.numpy()).max() < 1e-4 * float(ref.abs().max())
