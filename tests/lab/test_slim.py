"""Cutting a U-Net to fewer channels (train.slim) and distilling it from its teacher."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import CgdmConfig, UNetConfig
from cgdm_codec.models.cgdm import Cgdm
from cgdm_lab.train import cgdm as train_cgdm
from cgdm_lab.train.slim import slim
from tiny_models import randomised

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_thread")]

#: three levels as the shipped network has them (the last two of one width), small enough
#: for a test, with group-norm groups of 2 and 4 channels to cut into
UNET = UNetConfig(inner=16, multipliers=(1, 2, 2), depth=1, dropout=0.0, unshuffle=2,
                  condition="qindex", nyquist_null=True, noise_input=False)


def teacher(seed: int = 0) -> Cgdm:
    cfg = replace(CgdmConfig.preset("tiny-av1"), unet=UNET)
    return randomised(Cgdm(cfg), seed).eval()


def decode(model: Cgdm) -> torch.Tensor:
    unet, gen = model.unet, torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    cond = unet.condition(torch.tensor([999, 999]), torch.randn(2, 8, generator=gen), torch.tensor([40, 200]))
    with torch.no_grad():
        return unet.denoise(torch.zeros_like(x), x, unet.consistency(x), cond)


def test_keeping_every_channel_gives_the_teacher_back():
    model = teacher()
    cfg, tensors = slim(model.state_dict(), model.cfg, (16, 32, 32))
    same = Cgdm(cfg)
    same.load_state_dict(tensors)
    assert torch.equal(decode(same.eval()), decode(model))


def test_a_narrow_network_loads_strictly_and_keeps_a_share_of_each_group():
    model = teacher()
    cfg, tensors = slim(model.state_dict(), model.cfg, (8, 24, 24))
    assert cfg.unet.channels == (8, 24, 24) and cfg.unet.cond_dim == UNET.cond_dim
    narrow = Cgdm(cfg)
    narrow.load_state_dict(tensors)  # strict: every tensor has the narrow shape
    out = decode(narrow.eval())
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()
    assert not torch.equal(out, decode(model))
    # level 0's stem keeps one channel of each group of two, in order
    stem = model.state_dict()["unet.consistency_encoder.stem.1.weight"]
    kept = tensors["unet.consistency_encoder.stem.1.weight"]
    rows = [int((stem == row).all(dim=(1, 2, 3)).nonzero()) for row in kept]
    assert [r // 2 for r in rows] == list(range(8))
    # the condition path, the syntax generator and the prior are the teacher's
    for key, value in model.state_dict().items():
        if not key.startswith("unet.") or key.startswith("unet.cond_mlp") or key.startswith("unet.qindex"):
            assert torch.equal(tensors[key], value), key


def test_the_config_keeps_its_widths_and_older_configs_have_none():
    model = teacher()
    cfg, _ = slim(model.state_dict(), model.cfg, (8, 24, 24))
    assert CgdmConfig.from_dict(cfg.to_dict()) == cfg
    assert "widths" not in model.cfg.to_dict()["unet"]
    with pytest.raises(ValueError):
        UNetConfig(multipliers=(1, 2), widths=(8, 16, 16))


@pytest.mark.parametrize("widths", [(8, 24), (6, 24, 24), (8, 24, 16), (8, 48, 48)])
def test_widths_that_cannot_be_cut_are_refused(widths):
    model = teacher()
    with pytest.raises(SystemExit):
        slim(model.state_dict(), model.cfg, widths)


def test_distillation_trains_the_narrow_network_toward_the_teacher_under_its_frozen_syntax(tmp_path, monkeypatch):
    """``--teacher``: the student's fidelity decode learns the teacher's, the syntax
    generator and prior stay as the teacher's, and the log records the distance."""
    from cgdm_lab.train import av1_pairs
    from cgdm_lab.train.cgdm import export

    big = teacher()
    t_path = tmp_path / "teacher.safetensors"
    export(big, t_path, name="teacher", stage="fine", steps=0, data="", base="av1")
    cfg, tensors = slim(big.state_dict(), big.cfg, (8, 24, 24))
    student = Cgdm(cfg)
    student.load_state_dict(tensors)
    s_path = tmp_path / "student.safetensors"
    export(student, s_path, name="student", stage="slim", steps=0, data="", base="av1")

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 64, 64), generator=gen, dtype=torch.uint8)
    noisy = (x.float() + 12 * torch.randn(x.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    pairs = av1_pairs.PairPool(list(x), list(noisy), [0, 1, 2], [60, 120, 200])
    monkeypatch.setattr(av1_pairs, "build_pairs", lambda *a, **k: pairs)
    out = tmp_path / "run"
    train_cgdm.main(["--data", str(tmp_path), "--base", "av1", "--out", str(out), "--stage", "fine",
                     "--init", str(s_path), "--teacher", str(t_path), "--lambda-teacher", "4",
                     "--batch", "2", "--crop", "32", "--sample-steps", "1", "--steps", "3", "--lr", "1e-3",
                     "--ckpt-every", "1", "--precision", "fp32"])
    from cgdm_codec.weights import load_tensors

    tensors = load_tensors(s_path)
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [float(r["teacher"]) > 0 for r in rows] == [True] * 3
    for key, value in state["model"].items():
        if key.startswith(("syntax.", "prior.")):
            assert torch.equal(value, tensors[key]), key
    assert any(not torch.equal(value, tensors[key]) for key, value in state["model"].items()
               if key.startswith("unet.decoder"))
