"""Decoder variants: new files use the newest decoder settings, older files keep theirs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
from cgdm_codec import generations, pipeline
from cgdm_codec.base.interface import tensor_to_rgb
from cgdm_codec.container import parse, serialize
from cgdm_codec.diffusion_config import SamplerConfig
from cgdm_codec.errors import WeightsError
from cgdm_codec.options import DecodeSettings
from cgdm_codec.sampling.restore import restore
from cgdm_codec.sampling.tiling import make_grid
from cgdm_codec.generations import decoders
from cgdm_codec.weights import decoder_identity
from conftest import textured


@pytest.fixture(scope="module")
def coded():
    """A 300 x 300 file: four fixed tiles of 256, one fitted tile of 304."""
    img = Image.fromarray(textured(300, 300, seed=11))
    data = cgdm_codec.encode(img, 2, base="hyperprior", effort="fast", diffusion=True, steps=2, device="cpu")
    return parse(data)


def test_manifest_lists_the_original_decoder_first():
    manifest = {"sha256": "ab" * 32, "config": {"sampler": {"steps": 9, "tile": 256}}}
    plain = decoders(manifest)
    assert plain == [(decoder_identity(manifest), {"steps": 9, "tile": 256})]
    manifest["decoder_variants"] = [{"steps": 5, "tiling": "fitted"}]
    both = decoders(manifest)
    assert both[0] == plain[0] and both[1][1] == {"steps": 5, "tile": 256, "tiling": "fitted"}
    assert both[1][0] != both[0][0]


@pytest.mark.torch
def test_shipped_weights_write_the_newest_decoder(coded):
    bundle = generations.load_bundle("hyperprior")
    assert len(bundle.decoders) >= 2
    assert coded.weights_id == bundle.weights_id(True) == bundle.weights_id(True, bundle.decoders[-1][0])
    assert bundle.sampler_for(coded.weights_id) == bundle.decoders[-1][1]
    newest = SamplerConfig(**bundle.decoders[-1][1])
    assert len(make_grid(300, 300, newest.tile, newest.overlap, 8, newest.tiling)) == 1


@pytest.mark.torch
def test_each_file_decodes_with_the_decoder_it_names(coded):
    bundle = generations.load_bundle("hyperprior")
    cgdm = bundle.cgdm
    x_tilde = bundle.base.reconstruct(coded.base_streams, 300, 300, coded.quality)
    symbols = cgdm.prior.decode_syntax(coded.syntax)
    cond = bundle.base.condition(coded.base_streams, coded.quality)
    outputs = {}
    for identity, sampler, _ in bundle.decoders:
        f = replace(coded, weights_id=bundle.weights_id(True, identity))
        got = pipeline.decode_file(parse(serialize(f)), DecodeSettings(device="cpu"))
        want = tensor_to_rgb(restore(cgdm, x_tilde.clone(), symbols, cond, f.seed, f.steps,
                                     sampler=SamplerConfig(**sampler)))
        assert np.array_equal(got, want)
        outputs[identity] = got
    first, last = bundle.decoders[0][0], bundle.decoders[-1][0]
    assert not np.array_equal(outputs[first], outputs[last])  # the geometry really differs


@pytest.mark.torch
def test_unknown_decoder_is_refused(coded):
    f = replace(coded, weights_id=b"\x01\x02\x03\x04")
    with pytest.raises(WeightsError, match="01020304"):
        pipeline.decode_file(f, DecodeSettings(device="cpu"))


@pytest.mark.torch
def test_golden_file_of_the_newest_decoder_decodes_as_it_did(float32_cpu):
    """A file written with fitted tiles and 5 steps (weights id fb594293): pinned, with the
    tolerance float convolutions need across CPUs (as the older golden file's)."""
    from pathlib import Path

    golden = Path(__file__).resolve().parents[1] / "golden"
    f = parse((golden / "hyperprior-fitted-q2.cgdm").read_bytes())
    assert f.weights_id.hex() == "fb594293" and f.steps == 5 and (f.width, f.height) == (400, 96)
    base = np.asarray(Image.open(golden / "hyperprior-fitted-q2.base.png")).astype(int)
    full = np.asarray(Image.open(golden / "hyperprior-fitted-q2.full.png")).astype(int)
    got_base = pipeline.decode_file(f, DecodeSettings(base_only=True, device="cpu")).astype(int)
    got_full = pipeline.decode_file(f, DecodeSettings(device="cpu")).astype(int)
    assert np.abs(got_base - base).max() <= 1
    assert np.abs(got_full - full).mean() <= 0.5 and np.abs(got_full - full).max() <= 8


@pytest.mark.torch
def test_a_newer_weights_generation_leaves_older_files_decoding(tmp_path, monkeypatch):
    """The registry lists diffusion weights oldest first: with a second generation installed,
    the encoder writes for it, and a file written for the first still decodes with the first
    (the same pixels as before the second was installed)."""
    import shutil

    import torch

    from cgdm_codec.base import registry
    from cgdm_codec.models.cgdm import Cgdm, export_weights
    from cgdm_codec.weights import weights_dir

    for name in ("cgdm-av1.safetensors", "cgdm-av1.json"):
        shutil.copy(weights_dir() / name, tmp_path / name)
    monkeypatch.setattr(generations, "weights_dir", lambda: tmp_path)
    generations.clear_cache()
    img = Image.fromarray(textured(64, 80, seed=5))
    old_file = parse(cgdm_codec.encode(img, 3, base="av1", effort="fast", diffusion=True, device="cpu"))
    old_pixels = pipeline.decode_file(old_file, DecodeSettings(device="cpu"))

    newer = Cgdm.from_weights(tmp_path / "cgdm-av1.safetensors")
    with torch.no_grad():
        newer.unet.head[2].bias.add_(0.02)  # a different network: brighter output
    export_weights(newer, tmp_path / "cgdm-av1-next.safetensors", name="cgdm-av1-next")
    av1 = replace(registry.BY_NAME["av1"], diffusion_weights=("cgdm-av1", "cgdm-av1-next"))
    monkeypatch.setitem(registry.BY_NAME, "av1", av1)
    monkeypatch.setitem(registry.BY_ID, 2, av1)
    generations.clear_cache()
    try:
        new_file = parse(cgdm_codec.encode(img, 3, base="av1", effort="fast", diffusion=True, device="cpu"))
        assert new_file.weights_id != old_file.weights_id
        assert np.array_equal(pipeline.decode_file(old_file, DecodeSettings(device="cpu")), old_pixels)
        new_pixels = pipeline.decode_file(new_file, DecodeSettings(device="cpu"))
        assert new_pixels.astype(int).mean() > old_pixels.astype(int).mean() + 1  # the newer network ran
        (tmp_path / "cgdm-av1.safetensors").unlink()  # the first generation uninstalled
        generations.clear_cache()
        with pytest.raises(WeightsError, match=old_file.weights_id.hex()):
            pipeline.decode_file(old_file, DecodeSettings(device="cpu"))
    finally:
        generations.clear_cache()
