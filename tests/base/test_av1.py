"""The AV1 base: the AVIF wrapper rebuild, the bitstream checks, the pipeline and the CLI."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cgdm_codec
from cgdm_codec import pipeline
from cgdm_codec.base.av1 import Av1Base, encode_avif, inspect_payload
from cgdm_codec.base.av1_bitstream import Av1Error
from cgdm_codec.base.avif_file import build_avif, split_avif
from cgdm_codec.cli import main
from cgdm_codec.container import FormatError, parse, serialize
from cgdm_codec.options import DecodeSettings
from conftest import cpu_precision, textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# one committed file per generation of AV1 diffusion weights: (file stem, weights id)
AV1_GENERATIONS = [("av1-cgdm-q3", "506e564b"), ("av1-cgdm2-q3", "d5c2b35d"), ("av1-cgdm3-q3", "fd2b8633"),
                   ("av1-cgdm3s1-q3", "bf1dd9f6"),  # cgdm-av1-3, 1-step decoder (2026-12-04)
                   ("av1-cgdm4-q3", "1c42c21e"),  # cgdm-av1-4, trained for 1 step with the HaarPSI term
                   ("av1-cgdm5-q3", "1bca2eb0"),  # cgdm-av1-5, a head that cannot paint a period-2 grid
                   ("av1-cgdm6-q3", "0e200f05")]  # cgdm-av1-6, the same tensors not reading x_t

FIVE_STEP_GOLDEN = {"av1-cgdm-q3", "av1-cgdm2-q3", "av1-cgdm3-q3"}


def pillow_avif(rgb: np.ndarray, **opts) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "AVIF", **opts)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (33, 17), (64, 64), (300, 200)])
@pytest.mark.parametrize("quality", [0, 30, 90, 100])
def test_rebuilt_wrapper_is_byte_identical(size, quality):
    w, h = size
    rgb = textured(h, w, seed=w + quality)
    for im in (Image.fromarray(rgb), Image.fromarray(rgb[..., 0], "L")):
        buf = io.BytesIO()
        im.save(buf, "AVIF", quality=quality, speed=8)
        avif = buf.getvalue()
        payload = split_avif(avif)
        assert build_avif(payload, w, h) == avif
        assert len(avif) - len(payload) in (271, 277)  # what the container no longer stores


def test_quantiser_follows_the_quality():
    rgb = textured(64, 96)
    q = [inspect_payload(split_avif(pillow_avif(rgb, quality=k, speed=8))) for k in (0, 25, 50, 75, 100)]
    assert q[0] == 255 and q[-1] == 0 and q == sorted(q, reverse=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "size", "empty"])
def test_hostile_payloads_are_refused(damage):
    rgb = textured(40, 48)
    payload = split_avif(pillow_avif(rgb, quality=40, speed=8))
    bad = {"truncate": payload[: len(payload) // 2], "garbage": bytes(range(256)) * 3,
           "size": payload, "empty": b""}[damage]
    w = 47 if damage == "size" else 48
    with pytest.raises(Av1Error):
        Av1Base().decode_rgb((bad,), w, 40)


def test_flipped_bits_never_crash():
    rng = np.random.default_rng(1)
    payload = split_avif(pillow_avif(textured(32, 32), quality=40, speed=8))
    for _ in range(40):
        bad = bytearray(payload)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        try:
            Av1Base().decode_rgb((bytes(bad),), 32, 32)
        except Av1Error:
            pass


@pytest.mark.torch
def test_encoder_sees_the_decoders_x_tilde():
    """The x~ the encoder simulates is what `decode --base-only` writes, byte for byte."""
    img = Image.fromarray(textured(70, 90, seed=2))
    data = cgdm_codec.encode(img, 2, base="av1", device="cpu", effort="fast")
    f = parse(data)
    assert f.base_codec == 2 and f.quality == 2
    decoded = pipeline.decode_file(f, DecodeSettings(base_only=True, device="cpu"))
    backend = Av1Base()
    enc = backend.encode(np.asarray(img), 2, effort="fast")
    simulated = backend.reconstruct(enc.streams, 90, 70, 2)
    assert enc.streams == f.base_streams
    assert np.array_equal((simulated[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), decoded)


def test_modes_sizes_and_fine_quality():
    for mode, shape in (("RGB", (1, 1, 3)), ("L", (17, 33)), ("RGBA", (20, 31, 4)), ("LA", (9, 5, 2))):
        arr = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
        img = Image.fromarray(arr, mode)
        out = cgdm_codec.decode(cgdm_codec.encode(img, 3, base="av1", device="cpu", effort="fast"))
        assert out.mode == mode and out.size == img.size
        if "A" in mode:
            assert np.array_equal(np.asarray(out)[..., -1], arr[..., -1])
    img = Image.fromarray(textured(64, 64))
    sizes = [len(cgdm_codec.encode(img, av1_quality=q, base="av1", device="cpu", effort="fast")) for q in (10, 40, 80)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_framing_beyond_the_av1_payload():
    img = Image.fromarray(textured(512, 768))
    data = cgdm_codec.encode(img, 3, base="av1", device="cpu", effort="fast", base_only=True)
    assert len(data) - len(parse(data).base_streams[0]) <= 32


def test_cli_av1_round_trip_and_damaged_file(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(textured(48, 64)).save(src)
    run = CliRunner()
    res = run.invoke(main, ["encode", str(src), "-o", str(tmp_path / "a.cgdm"), "--base", "av1",
                            "--av1-quality", "30", "-Q"])
    assert res.exit_code == 0, res.output
    f = parse((tmp_path / "a.cgdm").read_bytes())
    damaged = serialize(type(f)(**{**f.__dict__, "base_streams": (f.base_streams[0][:20],)}))
    (tmp_path / "b.cgdm").write_bytes(damaged)
    res = run.invoke(main, ["decode", str(tmp_path / "b.cgdm"), "-o", str(tmp_path / "b.png"), "-Q"])
    assert res.exit_code == 1 and "corrupted" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "b.png").exists()


def test_golden_av1_file_decodes_as_it_always_did():
    """A committed AV1 file: the base-only decode is pinned by SHA-256 (AV1 decoding and
    libavif's YUV->RGB are integer arithmetic), so any change in how it decodes fails here."""
    data = (GOLDEN / "av1-q3.cgdm").read_bytes()
    expected = (GOLDEN / "av1-q3.base.sha256").read_text().split()[0]
    rgb = pipeline.decode_file(parse(data), DecodeSettings(base_only=True, device="cpu"))
    assert hashlib.sha256(rgb.tobytes()).hexdigest() == expected


@pytest.mark.torch
def test_golden_hyperprior_file_decodes_as_it_always_did(float32_cpu):
    """The learned base's float math may differ in the last bit between CPUs: a tolerance."""
    data = (GOLDEN / "hyperprior-q3.cgdm").read_bytes()
    f = parse(data)
    with np.load(GOLDEN / "hyperprior-q3.npz") as ref:
        base, full = ref["base"], ref["full"]
    got_base = pipeline.decode_file(f, DecodeSettings(base_only=True, device="cpu"))
    got_full = pipeline.decode_file(f, DecodeSettings(device="cpu"))
    assert np.abs(got_base.astype(int) - base).max() <= 1
    assert np.abs(got_full.astype(int) - full).mean() <= 0.5 and np.abs(got_full.astype(int) - full).max() <= 8


# bfloat16 (AMX CPUs, CUDA) against the float32 references, measured on an AMX CPU on the
# hyperprior golden files: base-only mean 0.63 / max 2, full mean 0.51 / max 2 levels
BF16_MEAN, BF16_MAX = 1.0, 4


@pytest.mark.torch
def test_golden_files_in_bfloat16(monkeypatch):
    """The other precision class stays near the stored float32 decodes (on any CPU: autocast
    runs bfloat16 without AMX too, only slower)."""
    cpu_precision(monkeypatch, bf16=True)
    f = parse((GOLDEN / "hyperprior-q3.cgdm").read_bytes())
    with np.load(GOLDEN / "hyperprior-q3.npz") as ref:
        base, full = ref["base"].astype(int), ref["full"].astype(int)
    for want, got in ((base, pipeline.decode_file(f, DecodeSettings(base_only=True, device="cpu"))),
                      (full, pipeline.decode_file(f, DecodeSettings(device="cpu")))):
        err = np.abs(got.astype(int) - want)
        assert err.mean() <= BF16_MEAN and err.max() <= BF16_MAX
    for stem, _ in AV1_GENERATIONS:
        f = parse((GOLDEN / f"{stem}.cgdm").read_bytes())
        want = np.asarray(Image.open(GOLDEN / f"{stem}.full.png")).astype(int)
        err = np.abs(pipeline.decode_file(f, DecodeSettings(device="cpu")).astype(int) - want)
        assert err.mean() <= BF16_MEAN and err.max() <= BF16_MAX


def test_worked_example_in_format_doc():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    block = doc.split("<!-- avif-wrapper-hex -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    wrapper = bytes.fromhex(block.replace("\n", " "))
    f = parse((GOLDEN / "av1-q3.cgdm").read_bytes())
    assert build_avif(f.base_streams[0], f.width, f.height) == wrapper + f.base_streams[0]


def test_decoding_layers_never_import_training_code():
    import subprocess
    import sys

    code = ("import sys, cgdm_codec.pipeline, cgdm_codec.tuning, cgdm_codec.sampling.restore, "
            "cgdm_codec.base.av1, cgdm_codec.base.hyperprior; "
            "print(sorted(m for m in sys.modules if m.startswith('cgdm_lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.torch
def test_av1_training_pairs_and_a_training_step(tmp_path, monkeypatch):
    from cgdm_lab.train import cgdm as train_cgdm
    from cgdm_lab.train.av1_pairs import build_pairs, sample_pair_crops

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        Image.fromarray(textured(200, 260, seed=i)).save(data / f"p{i}.png")
    monkeypatch.setenv("CGDM_CACHE", str(tmp_path / "cache"))
    pairs = build_pairs(data, min_side=64, per_image=2, workers=1)
    assert len(pairs.decodes) == 2 * len(pairs.originals) and all(0 <= q <= 255 for q in pairs.qindex)
    import torch

    x, xt, q = sample_pair_crops(pairs, 3, 64, torch.Generator().manual_seed(0))
    assert x.shape == xt.shape == (3, 3, 64, 64) and q.shape == (3,)
    assert 0 < float((x - xt).abs().mean()) < 0.2  # a real, mild degradation at the same place
    out = tmp_path / "run"
    train_cgdm.main(["--data", str(data), "--base", "av1", "--preset", "tiny-av1", "--crop", "64",
                     "--batch", "2", "--steps", "2", "--ckpt-every", "1", "--out", str(out),
                     "--syntax-bits-target", "16", "--threads", "1",
                     "--export", str(tmp_path / "w.safetensors")])
    from cgdm_codec.weights import read_manifest

    manifest = read_manifest(tmp_path / "w.safetensors")
    assert manifest["config"]["unet"]["condition"] == "qindex" and manifest["id_scheme"] == 2


@pytest.mark.parametrize("stem,weights_id", AV1_GENERATIONS)
def test_golden_av1_file_with_the_diffusion_stage(stem: str, weights_id: str, float32_cpu):
    """Every shipped generation of AV1 diffusion weights: a committed file keeps decoding with
    the weights it names (float tolerance, as for the learned base's golden file), and its
    base-only decode needs neither numpy nor torch."""
    data = (GOLDEN / f"{stem}.cgdm").read_bytes()
    f = parse(data)
    assert f.base_codec == 2 and f.diffusion and f.steps == (5 if stem in FIVE_STEP_GOLDEN else 1) and f.weights_id.hex() == weights_id
    full = np.asarray(Image.open(GOLDEN / f"{stem}.full.png")).astype(int)
    got = pipeline.decode_file(f, DecodeSettings(device="cpu")).astype(int)
    assert np.abs(got - full).mean() <= 0.5 and np.abs(got - full).max() <= 8
    base = pipeline.decode_file(f, DecodeSettings(base_only=True, device="cpu")).astype(int)
    assert np.abs(base - full).mean() > 0.1  # the diffusion stage did change the picture
    import subprocess
    import sys

    code = ("import sys; from cgdm_codec import pipeline; from cgdm_codec.container import parse; "
            "from cgdm_codec.options import DecodeSettings; "
            "im = pipeline.decode_image(parse(open(sys.argv[1], 'rb').read()), DecodeSettings(base_only=True)); "
            "print(im.size, 'torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(GOLDEN / f"{stem}.cgdm")],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "(400, 96) False False"


def test_av1_encodes_write_for_the_newest_generation():
    """New files name the newest installed weights; the older generations only decode."""
    img = Image.fromarray(textured(64, 96))
    f = parse(cgdm_codec.encode(img, 3, base="av1", device="cpu", effort="fast", diffusion=True))
    assert f.diffusion and f.weights_id.hex() == AV1_GENERATIONS[-1][1]


def test_the_av1_encoder_uses_the_cores_it_is_given(monkeypatch):
    """libaom gets --threads, else the granted cores (OMP_NUM_THREADS), not a fixed one."""
    seen = []
    save = Image.Image.save

    def spy(self, fp, format=None, **params):
        seen.append(params.get("max_threads"))
        return save(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", spy)
    rgb = textured(64, 96, seed=2)
    Av1Base().encode(rgb, 3, threads=1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    Av1Base().encode(rgb, 3)
    cgdm_codec.encode(Image.fromarray(rgb), 3, base="av1", threads=2)
    assert seen == [1, 3, 2]


def test_the_av1_speed_follows_the_effort_and_the_size(monkeypatch):
    """Speed 3 at the default effort up to DEFAULT_EFFORT_MAX_PIXELS, 4 above (a large photo
    would take twice as long); fast 8 and max 2 at any size."""
    import cgdm_codec.base.av1 as av1

    assert av1.speed_for("default", 1 << 22) == 3 and av1.speed_for("default", (1 << 22) + 1) == 4
    seen = []
    monkeypatch.setattr(av1, "encode_avif", lambda rgb, q, speed, *a, **k: seen.append(speed) or
                        pillow_avif(rgb, quality=q, speed=8))
    monkeypatch.setattr(av1, "DEFAULT_EFFORT_MAX_PIXELS", 64 * 96)
    small, large = textured(64, 96, seed=3), textured(65, 96, seed=3)
    for effort in ("fast", "default", "max"):
        for rgb in (small, large):
            Av1Base().encode(rgb, 3, effort=effort)
    assert seen == [8, 8, 3, 4, 2, 2]


def test_the_newest_generation_paints_no_period_2_grid(float32_cpu):
    """cgdm-av1-5's decode of its golden file has no more Nyquist energy than a photograph;
    cgdm-av1-4's head painted a one-pixel grid (issue: the clean fidelity decode)."""
    from cgdm_codec.artefacts import period2_ratio

    ratios = {}
    for stem in ("av1-cgdm4-q3", "av1-cgdm5-q3"):
        f = parse((GOLDEN / f"{stem}.cgdm").read_bytes())
        ratios[stem] = period2_ratio(pipeline.decode_file(f, DecodeSettings(device="cpu")))
    assert ratios["av1-cgdm5-q3"] < 1.5 < ratios["av1-cgdm4-q3"]
