"""Texture synthesis at realism > 0: seeded, where detail was lost, strip-exact, and fitted."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cgdm_codec import generations, pipeline
from cgdm_codec.container import parse
from cgdm_codec.options import DecodeSettings
from cgdm_codec.quality import band_energy_ratios
from cgdm_codec.sampling import texture
from cgdm_codec.sampling.texture import TextureConfig, add_texture
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
#: A model of the shape train/texture.py fits: the energy a band lacks grows with the decode's
#: texture energy and the quantiser.
MODEL = TextureConfig(coef=((-0.5, 0.0, 0.04, 1.2, 0.0), (-0.17, 0.05, 0.03, 0.29, -0.05)), gain=(2.4, 6.5))
#: The same with the added energy coming from amplifying the decode's bands where they have any.
AMPLIFIED = replace(MODEL, amplify=(1.0, 1.0), max_gain=3.0)


def decode_like(seed: int = 3, size: tuple[int, int] = (96, 130)) -> np.ndarray:
    """A (3, H, W) float decode in [0, 1]: a textured left half, a flat right half."""
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.full((3, h, w), 0.5, dtype=np.float32)
    img[:, :, : w // 2] += 0.15 * rng.standard_normal((1, h, w // 2)).astype(np.float32)
    return np.clip(img, 0, 1)


@pytest.mark.parametrize("cfg", [MODEL, AMPLIFIED], ids=["noise", "amplified"])
def test_tiles_give_the_whole_image_pass(monkeypatch, cfg):
    """Tiles of any shape (the noise field read at their offsets, margins cut at the image's
    ends) add what one pass over the whole image adds."""
    monkeypatch.setattr(texture, "TILE_ROWS", 10_000)
    monkeypatch.setattr(texture, "TILE_COLS", 10_000)
    whole = add_texture(decode_like(), seed=7, qindex=200, realism=1.0, cfg=cfg, workers=1)
    for rows, cols in [(17, 23), (96, 40), (31, 130)]:  # none a multiple of anything; rows, then columns alone
        monkeypatch.setattr(texture, "TILE_ROWS", rows)
        monkeypatch.setattr(texture, "TILE_COLS", cols)
        tiles = add_texture(decode_like(), seed=7, qindex=200, realism=1.0, cfg=cfg, workers=1)
        assert np.array_equal(tiles, whole), (rows, cols)


@pytest.mark.parametrize("workers", [2, 3])
def test_tiles_on_threads_give_the_whole_image_pass_exactly(monkeypatch, workers):
    """Tiles synthesised side by side (several in flight, short last ones) add exactly what
    one pass over the whole image adds."""
    whole = add_texture(decode_like(size=(300, 130)), seed=7, qindex=200, realism=1.0, cfg=AMPLIFIED, workers=1)
    monkeypatch.setattr(texture, "TILE_ROWS", 70)  # 5 rows of tiles, 3 tiles each
    monkeypatch.setattr(texture, "TILE_COLS", 50)
    threaded = add_texture(decode_like(size=(300, 130)), seed=7, qindex=200, realism=1.0, cfg=AMPLIFIED,
                           workers=workers)
    assert np.array_equal(threaded, whole)


def test_texture_is_seeded_goes_where_detail_is_and_scales_with_realism():
    base = decode_like()
    full = add_texture(base.copy(), seed=7, qindex=200, realism=1.0, cfg=MODEL)
    assert np.array_equal(full, add_texture(base.copy(), seed=7, qindex=200, realism=1.0, cfg=MODEL))
    assert not np.array_equal(full, add_texture(base.copy(), seed=8, qindex=200, realism=1.0, cfg=MODEL))
    assert np.array_equal(add_texture(base.copy(), seed=7, qindex=200, realism=0.0, cfg=MODEL), base)
    change = np.abs(full - base)
    w = base.shape[-1]
    assert change[:, :, : w // 2 - 16].mean() > 20 * change[:, :, w // 2 + 16:].mean()  # flat stays flat
    half = np.abs(add_texture(base.copy(), seed=7, qindex=200, realism=0.5, cfg=MODEL) - base)
    assert 0.4 < half[:, :, : w // 2 - 16].mean() / change[:, :, : w // 2 - 16].mean() < 0.6
    luma_only = full - base
    np.testing.assert_allclose(luma_only[0], luma_only[1], atol=1e-6)  # grey noise, no colour


def kept_band(keep: float, size: int = 192) -> tuple[np.ndarray, texture.BandTerm]:
    """A fine band ``t`` of which a decode kept ``keep`` of the amplitude, and the term that
    says exactly what it lacks (the fitted model's ideal)."""
    rng = np.random.default_rng(5)
    truth = texture.atrous_bands(rng.standard_normal((size, size)).astype(np.float32) * 0.05, 1)[0]
    band = keep * truth
    energy = texture.local_energy(band, MODEL)
    missing = np.sqrt(np.maximum(texture.local_energy(truth, MODEL) - energy, 0.0))
    noise = texture.atrous_bands(rng.standard_normal((size, size)).astype(np.float32), 1)[0]
    return truth, texture.BandTerm(missing, noise, texture.band_noise_rms(1)[0], band, energy)


def test_amplifying_a_kept_band_restores_energy_at_a_fraction_of_noises_error():
    truth, term = kept_band(0.5)
    inner = (slice(8, -8), slice(8, -8))
    amplified = term.band + texture.band_texture(term, 1.0, 1.0, 3.0)
    noisy = term.band + texture.band_texture(term, 1.0, 0.0, 3.0)
    for out in (amplified, noisy):  # both put back the truth's energy
        assert 0.9 < np.mean(out[inner] ** 2) / np.mean(truth[inner] ** 2) < 1.1
    err_amplified, err_noisy = (np.mean((out - truth)[inner] ** 2) for out in (amplified, noisy))
    assert err_amplified < 0.1 * err_noisy


def test_a_band_the_decode_lost_entirely_gets_noise_and_the_gain_is_capped():
    truth, term = kept_band(0.0)
    out = texture.band_texture(term, 1.0, 1.0, 3.0)
    inner = (slice(8, -8), slice(8, -8))
    assert 0.8 < np.mean(out[inner] ** 2) / np.mean(truth[inner] ** 2) < 1.2  # all of it noise
    _, faint = kept_band(0.1)
    capped = texture.band_texture(faint, 1.0, 1.0, 3.0)
    amplified_part = np.corrcoef(capped[inner].ravel(), faint.band[inner].ravel())[0, 1]
    assert 0.0 < amplified_part < 0.5  # gain 3 of a 10x loss: mostly noise


def test_models_written_before_amplification_read_as_noise_only():
    d = MODEL.to_dict()
    del d["amplify"], d["max_gain"]
    assert TextureConfig.from_dict(d).amplify == (0.0, 0.0)


def test_band_noise_norms():
    """The unit-noise band RMS the missing RMS is divided by, against white noise measured."""
    rng = np.random.default_rng(0)
    bands = texture.atrous_bands(rng.standard_normal((512, 512)).astype(np.float32), 2)
    measured = [float(b[32:-32, 32:-32].std()) for b in bands]
    np.testing.assert_allclose(measured, texture.band_noise_rms(2), rtol=0.02)


def test_the_shipped_realism_network_carries_a_fitted_model():
    manifest = json.loads((Path(pipeline.__file__).parent / "weights" / "cgdm-av1-3r.json").read_text())
    cfg = TextureConfig.from_dict(manifest["texture"])
    assert cfg.bands == 2 and all(g > 0 for g in cfg.gains(255))  # texture where the bits are fewest
    assert "train.texture" in cfg.fitted["command"]
    assert TextureConfig.from_dict(cfg.to_dict()) == cfg


def test_each_generation_gets_its_texture_model(monkeypatch):
    """Files of a generation the manifest names under ``texture_for`` keep that model (their
    realism picture did not change when the default was refitted); others get ``texture``."""
    manifest = {"texture": {"gain": [1]}, "texture_for": {"old-gen": {"gain": [2]}}}
    assert generations.texture_model(manifest, "old-gen") == {"gain": [2]}
    assert generations.texture_model(manifest, "new-gen") == {"gain": [1]}
    assert generations.texture_model({}, "new-gen") is None
    shipped = json.loads((Path(pipeline.__file__).parent / "weights" / "cgdm-av1-3r.json").read_text())
    assert shipped["texture_for"]["cgdm-av1-3"] != shipped["texture"]
    used = []
    real = texture.add_texture
    monkeypatch.setattr(texture, "add_texture", lambda *a, **k: used.append(a[-1]) or real(*a, **k))
    for golden, model in (("av1-cgdm3s1-q3", shipped["texture_for"]["cgdm-av1-3"]),
                          ("av1-cgdm4-q3", shipped["texture"])):
        pipeline.decode_file(parse((GOLDEN / f"{golden}.cgdm").read_bytes()),
                             DecodeSettings(realism=1.0, device="cpu"))
        assert used.pop() == TextureConfig.from_dict(model), golden


def test_realism_decode_adds_texture_and_the_ablation_leaves_it_out():
    f = parse((GOLDEN / "av1-cgdm3s1-q3.cgdm").read_bytes())
    plain = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"), texture=False)
    full = pipeline.decode_file(f, DecodeSettings(realism=1.0, device="cpu"))
    ref = pipeline.decode_file(f, DecodeSettings(device="cpu"))
    assert not np.array_equal(plain, full)
    assert band_energy_ratios(full, ref, 1)[0] > band_energy_ratios(plain, ref, 1)[0]


@pytest.mark.torch
def test_fitting_recovers_a_model_that_matches_band_energy(tmp_path):
    """train/texture.py end to end on two training-like pictures, written into a manifest."""
    from cgdm_lab.train import texture as fit

    images = tmp_path / "photos"
    images.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray(textured(192, 256, seed=i)).save(images / f"{i}.png")
    manifest = tmp_path / "net.json"
    manifest.write_text(json.dumps({"kind": "cgdm-realism"}))
    assert fit.main(["--data", str(images), "--weights", str(tmp_path / "net.safetensors"), "--images", "2",
                     "--levels", "1", "--crop", "128", "--write"]) == 0
    cfg = TextureConfig.from_dict(json.loads(manifest.read_text())["texture"])
    assert cfg.bands == 2 and cfg.fitted["target_band_energy"] == 1.0


def level_samples() -> list:
    """Two levels of decodes of the same pictures: at qindex 220 the decode kept a fifth of
    the finest detail, at 80 all of it (so there it lacks none)."""
    rng = np.random.default_rng(5)
    samples = []
    for q, keep in ((220, 0.2), (80, 1.0)):
        for seed in (1, 2):
            ref = textured(96, 128, seed=seed)
            fine = ref.astype(np.float32).transpose(2, 0, 1) / 255.0
            low = np.stack([texture._blur(c, 1) for c in fine])
            dec = np.clip(low + keep * (fine - low), 0.0, 1.0).astype(np.float32)
            samples.append((ref, dec, q, int(rng.integers(1 << 30))))
    return samples


def level_ratios(samples: list, cfg: TextureConfig) -> dict[int, np.ndarray]:
    from cgdm_lab.train import texture as fit

    out = {}
    for q in sorted({s[2] for s in samples}):
        parts = [(ref, dec, texture.band_terms(np.tensordot(texture.LUMA, dec, axes=1),
                                               texture.noise_rows(seed, cfg.period, 0, *dec.shape[1:]), q, cfg), q)
                 for ref, dec, sq, seed in samples if sq == q]
        out[q] = fit.mean_band_ratios(parts, cfg)
    return out


def test_calibration_brings_every_level_to_the_target():
    """A gain that is a line in the quantiser gives each level the finest band's energy of
    the original, where one gain for both (the mean's calibration) could not."""
    from cgdm_lab.train import texture as fit

    samples = level_samples()
    cfg = replace(AMPLIFIED, coef=fit.fit_coefficients(samples, AMPLIFIED))
    gain, gain_q = fit.calibrate(samples, cfg, rounds=2)
    assert gain_q[0] != 0.0
    line = replace(cfg, gain=gain, gain_q=gain_q)
    fitted = level_ratios(samples, line)
    assert all(abs(r[0] - 1.0) < 0.03 for r in fitted.values()), fitted
    between = (line.gains(80)[0] + line.gains(220)[0]) / 2
    one_gain = replace(cfg, gain=(between, gain[1]), gain_q=(0.0, gain_q[1]))
    spread = [r[0] for r in level_ratios(samples, one_gain).values()]
    assert max(spread) - min(spread) > 0.05, spread


def test_models_without_a_quantiser_slope_keep_their_gains():
    """Manifests written before ``gain_q`` existed decode exactly as before."""
    old = {k: v for k, v in MODEL.to_dict().items() if k != "gain_q"}
    cfg = TextureConfig.from_dict(old)
    assert cfg.gain_q == (0.0, 0.0)
    assert all(cfg.gains(q) == MODEL.gain for q in (0, 128, 255))
    assert replace(MODEL, gain_q=(-1.0, 0.5)).gains(255) == (MODEL.gain[0] - 1.0, MODEL.gain[1] + 0.5)
    assert replace(MODEL, gain_q=(-10.0, 0.0)).gains(255)[0] == 0.0  # never negative


@pytest.mark.parametrize("side", [1, 2, 3, 7, 9, 16, 19, 27])
def test_erosion_is_the_box_minimum(side):
    """The doubling windows of ``_erode`` give, exactly, the minimum over each pixel's
    side x side box with edges replicated (the definition, taken naively here)."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.random.default_rng(side).standard_normal((37, 61)).astype(np.float32)
    r = side // 2
    padded = np.pad(x, ((r, side - 1 - r), (r, side - 1 - r)), mode="edge")
    want = sliding_window_view(padded, (side, side)).min(axis=(2, 3))
    got = texture._erode(x, side)
    assert got.shape == x.shape and np.array_equal(got, want)


@pytest.mark.parametrize("cfg", [MODEL, AMPLIFIED], ids=["noise", "amplified"])
def test_an_edge_gets_no_fringe(cfg):
    """A thin edge has as much fine energy as texture but no area: its neighbourhood stays
    clean (and is not sharpened either)."""
    base = decode_like()
    w = base.shape[-1]
    base[:, :, 3 * w // 4:] = 0.2  # a step edge in the flat half
    change = np.abs(add_texture(base.copy(), seed=7, qindex=200, realism=1.0, cfg=cfg) - base)
    near_edge = change[:, 16:-16, 3 * w // 4 - 6: 3 * w // 4 + 6].mean()
    assert near_edge < 0.05 * change[:, 16:-16, 8: w // 2 - 16].mean()


@pytest.mark.parametrize("golden", ["av1-cgdm3s1-q3.cgdm", "av1-cgdm5-q3-map.cgdm"])
def test_a_realism_decode_never_imports_torch(golden):
    """The realism network runs on ONNX Runtime and the texture stage on numpy alone; with a
    texture map, its range decoder and the mapped stage are numpy and constriction alone."""
    import subprocess
    import sys

    code = ("import sys; from cgdm_codec import pipeline; from cgdm_codec.container import parse; "
            "from cgdm_codec.options import DecodeSettings; "
            f"f = parse(open({str(GOLDEN / golden)!r}, 'rb').read()); "
            "pipeline.decode_file(f, DecodeSettings(realism=1.0)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_model_gives_each_pixel_one_value_wherever_its_tile_starts():
    """The linear model term by term: a pixel's prediction does not depend on the part of the
    image it was computed in (a BLAS product's does, at its last bit), and it is the product."""
    rng = np.random.default_rng(5)
    inputs = [rng.random((37, 261), dtype=np.float32) * 1e-3 for _ in range(5)]
    coef = AMPLIFIED.coef[0]
    whole = texture.predicted(inputs, coef)
    for r, c in [(slice(3, 30), slice(1, 250)), (slice(0, 37), slice(17, 100)), (slice(5, 6), slice(0, 261))]:
        assert np.array_equal(texture.predicted([x[r, c] for x in inputs], coef), whole[r, c])
    np.testing.assert_allclose(whole, np.stack(inputs, axis=-1) @ np.asarray(coef, dtype=np.float32), rtol=1e-5, atol=1e-9)
