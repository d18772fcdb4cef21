"""Round trips through the real pipeline with the shipped weights, on the default base (AV1);
the tests of the learned base's own coding name it (and need torch)."""


import numpy as np
import pytest
from PIL import Image

from cgdm_codec import imageio
from cgdm_codec.container import ColourMode, parse, serialize
import cgdm_codec
from cgdm_codec import decode
from cgdm_codec.generations import load_bundle
from conftest import textured


def encode(img, quality: int, **options) -> bytes:
    """The one-pass encode: these tests are about the codec, not the encoder's search."""
    return cgdm_codec.encode(img, quality, **{"effort": "fast", **options})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 300), (65, 64), (33, 130)])
def test_odd_sizes_round_trip(size):
    h, w = size
    img = Image.fromarray(textured(h, w, seed=h * 1000 + w))
    data = encode(img, 4)
    out = decode(data)
    assert out.size == (w, h) and out.mode == "RGB"
    f = parse(data)
    assert (f.width, f.height, f.quality) == (w, h, 4)


def test_quality_orders_rate_and_distortion():
    src = textured(96, 160, seed=3)
    sizes, psnrs = [], []
    for q in (1, 3, 6):
        data = encode(Image.fromarray(src), q)
        sizes.append(len(data))
        psnrs.append(psnr(np.asarray(decode(data)), src))
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnrs[0] < psnrs[2]
    assert psnrs[2] > 24.0, psnrs  # a trained codec reconstructs this smooth card well


def test_grayscale_stays_grayscale():
    g = textured(40, 50)[..., 1]
    out = decode(encode(Image.fromarray(g, "L"), 5))
    assert out.mode == "L" and out.size == (50, 40)
    assert psnr(np.asarray(out), g) > 20


def test_alpha_is_kept_exactly():
    rgb = textured(30, 41)
    alpha = (np.arange(30 * 41).reshape(30, 41) % 256).astype(np.uint8)
    img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    data = encode(img, 3)
    assert parse(data).colour_mode == ColourMode.RGBA
    out = decode(data)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_opaque_alpha_is_dropped_without_loss():
    img = Image.fromarray(textured(20, 20)).convert("RGBA")
    assert parse(encode(img, 2)).colour_mode == ColourMode.RGB


def test_la_and_palette_inputs():
    la = Image.fromarray(textured(16, 24)[..., 0], "L").convert("LA")
    la.putalpha(Image.new("L", la.size, 77))
    out = decode(encode(la, 3))
    assert out.mode == "LA" and np.all(np.asarray(out)[..., 1] == 77)
    p = Image.fromarray(textured(16, 24)).convert("P")
    assert decode(encode(p, 3)).mode == "RGB"


def test_16bit_input_is_reduced_with_a_note():
    a = (textured(20, 30)[..., 0].astype(np.uint16) * 257)
    img = Image.fromarray(a)
    assert img.mode.startswith("I")
    prepared = imageio.from_pil(img)
    assert prepared.mode == ColourMode.L
    assert any("16-bit" in n for n in prepared.notes)
    assert np.array_equal(prepared.rgb[..., 0], textured(20, 30)[..., 0])


def test_exif_orientation_is_applied(tmp_path):
    src = textured(20, 40)  # landscape
    img = Image.fromarray(src)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    prepared = imageio.load(path)
    assert (prepared.width, prepared.height) == (20, 40)


@pytest.mark.torch
def test_entropy_decoding_is_identical_across_thread_counts():
    """The hyperprior path must give the same CDF indices whatever the thread count."""
    import torch

    model = load_bundle().base.model
    x = torch.from_numpy(textured(128, 192, seed=9)).permute(2, 0, 1)[None].float() / 255
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        streams = model.compress(x, 2)
        y2 = model.decompress_latent(streams, 2)
        torch.set_num_threads(1)
        y1 = model.decompress_latent(streams, 2)
        out1 = np.asarray(decode(encode(Image.fromarray(textured(64, 64)), 3, base="hyperprior")))
        torch.set_num_threads(2)
        out2 = np.asarray(decode(encode(Image.fromarray(textured(64, 64)), 3, base="hyperprior")))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(y1, y2)
    assert np.abs(out1.astype(int) - out2.astype(int)).max() <= 1


@pytest.mark.torch
def test_decoded_latent_matches_the_encoder():
    import torch

    model = load_bundle().base.model
    x = torch.from_numpy(textured(64, 128, seed=4)).permute(2, 0, 1)[None].float() / 255
    q = 5
    streams = model.compress(x, q)
    y_hat = model.decompress_latent(streams, q)
    with torch.no_grad():
        y, z = model.analysis(x)
        zs_hat = model.entropy_bottleneck.decompress([streams.z], streams.latent_shape)
        _, means = model.entropy_parameters(zs_hat, q)
        ys = model.gain(y, torch.tensor([q]))
        expect = (torch.round(ys - means) + means).double() / model.gain.log_gain[q].double().exp()[None, :, None, None]
    assert torch.allclose(y_hat.double(), expect, atol=1e-5)


def test_weights_mismatch_is_a_clear_error():
    from dataclasses import replace

    from cgdm_codec.errors import WeightsError

    data = encode(Image.fromarray(textured(8, 8)), 1)
    f = replace(parse(data), weights_id=b"\x00\x01\x02\x03")
    with pytest.raises(WeightsError, match="needs weights 00010203"):
        decode(serialize(f))


@pytest.mark.torch
def test_corrupted_stream_with_valid_checksum_does_not_crash():
    """Garbage in the learned base's second stream (the latent y; AV1 has one stream,
    tests/base/test_av1_hostile.py)."""
    from dataclasses import replace

    from cgdm_codec.container import FormatError

    data = encode(Image.fromarray(textured(64, 64)), 3, base="hyperprior")
    f = parse(data)
    for bad_y in (b"", b"\xff" * 3, bytes(range(256)) * 4):
        g = replace(f, base_streams=(f.base_streams[0], bad_y))
        try:
            out = decode(serialize(g))
        except FormatError:
            continue
        assert out.size == (64, 64)  # garbage in, an image of the right size out


@pytest.mark.torch
def test_diffusion_files_carry_syntax_and_decode_deterministically():
    src = Image.fromarray(textured(70, 90, seed=5))
    data = encode(src, 2, base="hyperprior")
    f = parse(data)
    assert f.diffusion and f.steps == 5 and f.syntax is not None  # the learned base's decoder: 5 steps
    full1, full2 = np.asarray(decode(data)), np.asarray(decode(data))
    assert np.array_equal(full1, full2)  # the decode is a function of the file
    base = np.asarray(decode(data, base_only=True))
    assert full1.shape == base.shape == (70, 90, 3)
    assert not np.array_equal(full1, base)  # the trained diffusion stage changes the image
    fewer = np.asarray(decode(data, steps=2))
    assert not np.array_equal(fewer, full1)


def test_seed_changes_the_realism_decode_only():
    """The seed travels in every file. Since cgdm-av1-6 the fidelity decode does not read
    the noise (the same picture at any seed); the realism decode draws its texture from it."""
    src = Image.fromarray(textured(64, 64, seed=6))
    # diffusion=True: on a card this small the encoder may score the base-only decode better
    a, b = encode(src, 3, seed=1, diffusion=True), encode(src, 3, seed=2, diffusion=True)
    fa, fb = parse(a), parse(b)
    assert fa.base_streams == fb.base_streams and fa.syntax == fb.syntax
    assert (fa.seed, fb.seed) == (1, 2)
    assert np.array_equal(np.asarray(decode(a, base_only=True)), np.asarray(decode(b, base_only=True)))
    assert np.array_equal(np.asarray(decode(a)), np.asarray(decode(b)))
    assert not np.array_equal(np.asarray(decode(a)), np.asarray(decode(a, base_only=True)))
    assert not np.array_equal(np.asarray(decode(a, realism=1.0)), np.asarray(decode(b, realism=1.0)))


def test_base_only_files_are_smaller_and_need_only_the_base_weights():
    src = Image.fromarray(textured(40, 40, seed=7))
    full, base = encode(src, 3, diffusion=True), encode(src, 3, base_only=True)
    fb = parse(base)
    assert not fb.diffusion and fb.syntax is None and len(base) < len(full)
    assert fb.weights_id != parse(full).weights_id
    assert np.array_equal(np.asarray(decode(base)), np.asarray(decode(full, base_only=True)))


@pytest.mark.torch
def test_search_writes_the_chosen_seed_and_syntax():
    """The learned base's search (AV1's effort also sets libaom's speed: other bytes)."""
    src = Image.fromarray(textured(48, 64, seed=8))
    fast = encode(src, 2, base="hyperprior")
    assert encode(src, 2, base="hyperprior", effort="default", finetune=False, seeds=1) == fast
    searched = encode(src, 2, base="hyperprior", effort="default", finetune_iters=2, seeds=2, seed=40)
    f, g = parse(searched), parse(fast)
    assert f.base_streams == g.base_streams and f.seed in (40, 41)
    out = np.asarray(decode(searched))
    assert out.shape == (48, 64, 3)
    assert np.array_equal(out, np.asarray(decode(searched)))



def test_pipeline_start_up_skips_compressai_models_and_torch_geometric():
    import subprocess
    import sys

    code = ("import sys, cgdm_codec.pipeline\n"
            "print([m for m in ('torch_geometric', 'compressai.models', 'compressai.datasets') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
