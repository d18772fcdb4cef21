"""Smoke runs of both training stages: checkpoint, resume, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
torch = pytest.importorskip("torch")
from PIL import Image

from cgdm_codec.config import BaseCodecConfig
from cgdm_codec.models.base_codec import VariableRateHyperprior
from cgdm_codec.models.cgdm import Cgdm
from cgdm_lab.train import cgdm as train_cgdm
from cgdm_codec.weights import save_weights


pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("CGDM_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(data / f"{i}.png")
    torch.manual_seed(0)
    cfg = BaseCodecConfig(N=16, M=16)
    base = tmp_path / "base.safetensors"
    save_weights(base, VariableRateHyperprior(cfg).state_dict(), {"config": cfg.to_dict()})
    return tmp_path, data, base


def run(data, base, out, *extra):
    train_cgdm.main(["--data", str(data), "--base", str(base), "--out", str(out), "--preset", "tiny",
                     "--batch", "2", "--crop", "64", "--ckpt-every", "1", "--precision", "fp32",
                     *extra])


def test_coarse_then_fine_with_resume_and_export(setup, capsys):
    tmp, data, base = setup
    coarse = tmp / "coarse"
    run(data, base, coarse, "--stage", "coarse", "--steps", "2")
    state = torch.load(coarse / "last.pt", weights_only=False)
    assert state["step"] == 2 and state["stage"] == "coarse"
    run(data, base, coarse, "--stage", "coarse", "--steps", "3")
    assert "resumed from" in capsys.readouterr().out
    state = torch.load(coarse / "last.pt", weights_only=False)
    assert state["step"] == 3
    assert (coarse / "log.csv").read_text().count("\n") == 4  # header + 3 rows

    with pytest.raises(SystemExit):
        run(data, base, coarse, "--stage", "fine", "--steps", "4")

    fine, weights = tmp / "fine", tmp / "cgdm-tiny.safetensors"
    run(data, base, fine, "--stage", "fine", "--steps", "2", "--init", str(coarse / "last.pt"),
        "--sample-steps", "2", "--lambda-h", "0.5", "--export", str(weights))
    state = torch.load(fine / "last.pt", weights_only=False)
    assert state["step"] == 2 and state["stage"] == "fine"
    rows = (fine / "log.csv").read_text().splitlines()
    haar = rows[0].split(",").index("haarpsi")
    assert all(0 < float(r.split(",")[haar]) < 1 for r in rows[1:])  # the term was trained on
    manifest = json.loads(weights.with_suffix(".json").read_text())
    assert manifest["stage"] == "fine" and manifest["steps"] == 2 and manifest["kind"] == "cgdm"
    assert len(manifest["sha256"]) == 64 and len(manifest["base_sha256"]) == 64
    model = Cgdm.from_weights(weights)
    assert model.cfg.unet.inner == 8
    symbols = torch.tensor([0, 1, -1, 2, 0, 0, 5, -3])
    assert torch.equal(model.prior.decode_syntax(model.prior.encode_syntax(symbols)), symbols)
    ema = state["ema"]
    for k, v in model.state_dict().items():
        if k != "prior.table":
            torch.testing.assert_close(v, ema[k])


def test_training_changes_the_weights(setup):
    tmp, data, base = setup
    run(data, base, tmp / "c", "--stage", "coarse", "--steps", "2", "--lr", "1e-2")
    state = torch.load(tmp / "c" / "last.pt", weights_only=False)
    head = state["model"]["unet.head.2.weight"]
    assert head.abs().sum() > 0  # the zero-initialised output layer has started to learn


def test_base_training_starts_from_shipped_style_weights(tmp_path):
    """`train.base --init W.safetensors` must accept exported weights (CDF tables included)."""
    from cgdm_codec.config import BaseCodecConfig
    from cgdm_codec.models.base_codec import VariableRateHyperprior
    from cgdm_lab.train.export_base import export

    torch.manual_seed(0)
    model = VariableRateHyperprior(BaseCodecConfig(N=8, M=12))
    ckpt = tmp_path / "m.pt"
    torch.save({"model": model.state_dict(), "config": model.cfg.to_dict(), "step": 0,
                "seconds": 0.0, "data": "none"}, ckpt)
    weights = tmp_path / "w.safetensors"
    export(ckpt, weights)
    loaded = VariableRateHyperprior(BaseCodecConfig(N=8, M=12))
    from cgdm_codec.weights import load_tensors

    loaded.load_exported(load_tensors(weights))
    assert torch.equal(loaded.g_a[0].weight, model.g_a[0].weight)
    assert loaded.entropy_bottleneck._quantized_cdf.numel() > 0


@pytest.mark.parametrize("proxy", ["round", "noise"])
def test_syntax_proxy_lets_the_unet_learn_from_small_syntax_values(proxy):
    """Values inside +-0.5 round to exact zeros, which give the U-Net's syntax weights no
    gradient at all (why the syntax collapsed); the noise proxy gives them one."""
    import torch

    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.cgdm import Cgdm
    from cgdm_lab.train.cgdm import StageLoss, parse_args

    torch.manual_seed(0)
    model = Cgdm(CgdmConfig.preset("tiny-av1"))
    torch.nn.init.zeros_(model.syntax.mlp[-1].weight)  # every value 0.1: inside the rounding dead zone
    torch.nn.init.constant_(model.syntax.mlp[-1].bias, 0.1)
    torch.nn.init.normal_(model.unet.head[2].weight, std=0.01)  # an untrained head passes no gradient
    args = parse_args(["--data", ".", "--base", "av1", "--stage", "coarse", "--syntax-proxy", proxy])
    objective = StageLoss(model, "coarse", args)
    x = torch.rand(2, 3, 32, 32)
    xt = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    s = model.cfg.syntax.length
    u = torch.rand(2, s) - 0.5
    loss, _ = objective(x, xt, torch.tensor([40, 120]), torch.tensor([10, 500]), torch.randn_like(x), u)
    loss.backward()
    syntax_columns = model.unet.cond_mlp[0].weight.grad[:, -s:]
    if proxy == "round":
        assert float(syntax_columns.abs().max()) == 0.0
    else:
        assert float(syntax_columns.abs().max()) > 0.0


def test_syntax_restart_zeroes_the_unets_syntax_weights_and_scales_the_generator():
    import torch

    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.cgdm import Cgdm
    from cgdm_lab.train.cgdm import restart_syntax

    torch.manual_seed(0)
    model = Cgdm(CgdmConfig.preset("tiny-av1"))
    x = torch.rand(8, 3, 32, 32)
    xt = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    before = model.unet.cond_mlp[0].weight.clone()
    restart_syntax(model, x, xt, 3.0)
    s = model.cfg.syntax.length
    weight = model.unet.cond_mlp[0].weight.detach()
    assert float(weight[:, -s:].abs().max()) == 0.0
    assert torch.equal(weight[:, :-s], before[:, :-s])
    with torch.no_grad():
        values = model.syntax(x * 2 - 1, xt * 2 - 1)
    # the spread is across images, per coordinate, and no coordinate keeps a constant offset
    assert float(values.std(dim=0).mean()) == pytest.approx(3.0, rel=1e-3)
    assert float(values.mean(dim=0).abs().max()) < 1e-4



def test_a_generator_with_statistics_sends_per_image_symbols_from_the_start():
    """Conv features pooled over whole images hardly differ between fresh images, so a plain
    generator sends nearly one vector for all; the band statistics make the values differ."""
    import torch

    from dataclasses import replace

    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.syntax import SyntaxGenerator

    torch.manual_seed(0)
    cfg = CgdmConfig.preset("tiny-av1").syntax
    smooth = torch.linspace(0, 1, 48).expand(3, 48, 48)
    x = torch.stack([smooth * (0.2 + 0.1 * i) + 0.3 * i / 8 * torch.rand(3, 48, 48) for i in range(8)])
    xt = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    spreads = {}
    for stats in (False, True):
        torch.manual_seed(1)
        gen = SyntaxGenerator(replace(cfg, statistics=stats))
        with torch.no_grad():
            spreads[stats] = float(gen(x * 2 - 1, xt * 2 - 1).std(dim=0).mean())
    assert spreads[True] > 5 * spreads[False]


def test_statistics_pool_over_tiles_like_the_whole_image():
    import torch

    from dataclasses import replace

    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.syntax import SyntaxGenerator

    torch.manual_seed(0)
    cfg = replace(CgdmConfig.preset("tiny-av1").syntax, statistics=True)
    gen = SyntaxGenerator(cfg).eval()
    x = torch.rand(1, 3, 64, 64)
    xt = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    with torch.no_grad():
        whole = gen(x * 2 - 1, xt * 2 - 1)
        object.__setattr__(gen.cfg, "pool_tile", 32)
        tiled = gen(x * 2 - 1, xt * 2 - 1, tiled=True)
    # only the borders of the tiles (convolution padding, pyramid edges) differ
    assert float((whole - tiled).abs().max()) < 0.25 * float(whole.abs().max())


@pytest.mark.parametrize("h,w", [(1, 1), (3, 40), (17, 33), (70, 65)])
def test_statistics_serve_images_and_edge_tiles_too_small_for_every_band(h, w):
    """A 17x33 image has 3 pyramid bands, a 1x1 none, and a 65-wide image cut into 32-px
    tiles leaves a 1-px edge tile: each still gets the MLP's input width."""
    import torch

    from dataclasses import replace

    from cgdm_codec.diffusion_config import CgdmConfig
    from cgdm_codec.models.syntax import STAT_WIDTH, SyntaxGenerator
    from cgdm_codec.quality.bands import band_means_torch as band_means

    cfg = replace(CgdmConfig.preset("tiny-av1").syntax, statistics=True, pool_tile=32)
    gen = SyntaxGenerator(cfg).eval()
    x = torch.rand(1, 3, h, w) * 2 - 1
    xt = x.clamp(-0.5, 0.5)
    assert band_means(x, xt).shape == (1, STAT_WIDTH)
    with torch.no_grad():
        for tiled in (False, True):
            out = gen(x, xt, tiled=tiled)
            assert out.shape == (1, cfg.length) and torch.isfinite(out).all()


def test_the_one_pass_network_trains_and_a_run_stops_on_cpu_time(setup):
    """``--arch restoration`` in the one training loop; ``--cpu-limit`` stops a run by the CPU
    time it has used (log.csv's ``cpu_seconds``), and a resumed run counts on from there."""
    import csv

    from cgdm_codec.diffusion_config import CgdmConfig, RestorationConfig

    tmp_path, data, base = setup
    out = tmp_path / "run"
    args = ["--arch", "restoration", "--stage", "fine", "--batch", "1", "--sample-steps", "1"]
    run(data, base, out, *args, "--steps", "2")
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert CgdmConfig.from_dict(state["config"]).restoration == RestorationConfig()
    run(data, base, out, *args, "--cpu-limit", str(state["cpu_seconds"]))  # already spent: stops at once
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=False)["step"] == 2
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert 0 < float(rows[0]["cpu_seconds"]) <= float(rows[1]["cpu_seconds"])


def test_the_learning_rate_is_constant_or_follows_a_cosine_to_its_final_value():
    from cgdm_lab.train.cgdm import learning_rate

    assert learning_rate(0, 100, 3e-4, None) == learning_rate(99, 100, 3e-4, None) == 3e-4
    rates = [learning_rate(s, 100, 3e-4, 3e-5) for s in range(0, 101, 10)]
    assert rates[0] == pytest.approx(3e-4) and rates[-1] == pytest.approx(3e-5)
    assert rates[5] == pytest.approx(1.65e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(150, 100, 3e-4, 3e-5) == pytest.approx(3e-5)  # past --steps: the final rate
