"""Lossless mode (base codec 3, webp-lossless): bit-exact round trips through the command (a real
process), the API and the Pillow plugin; the options it contradicts; the golden files; the
payload's RIFF rebuild and a strict reader."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
import cgdm_codec.pillow  # noqa: F401  (registers the format)
from cgdm_codec.base import registry
from cgdm_codec.base.webp_lossless import (LosslessError, WebpLosslessBase, build_webp, check_payload,
                                           encode_webp, split_webp)
from cgdm_codec.container import CgdmFile, FormatError, parse, serialize
from cgdm_codec.errors import ConfigError, ImageError
from cgdm_codec.options import EncodeSettings
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CGDM = [sys.executable, "-m", "cgdm_codec.cli"]
ENV = dict(os.environ, CGDM_BASE="av1")
SIZES = [(1, 1), (3, 5), (33, 17)]  # (width, height)
MODES = ["RGB", "RGBA", "L", "LA"]


def picture(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A test card in ``mode``; its alpha (if any) is not fully opaque, so the mode is kept."""
    rgb = textured(height, width, seed)
    rng = np.random.default_rng(seed + 1)
    alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
    alpha.flat[0] = 7
    colour = rgb if mode.startswith("RGB") else rgb[..., 1:2]
    planes = np.dstack([colour, alpha]) if mode.endswith("A") else colour
    return Image.fromarray(planes if planes.shape[-1] > 1 else planes[..., 0], mode)


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CGDM + list(args), input=stdin, capture_output=True, env=ENV)


def one_line(stderr: bytes, prefix: str = "cgdm: error:") -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), text
    return lines[0]


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_api_round_trip_is_bit_exact(mode, size):
    src = picture(mode, *size)
    data = cgdm_codec.encode(src, lossless=True)
    f = parse(data)
    assert f.base_codec == 3 and not f.diffusion and f.colour_mode.name == mode
    assert same_pixels(cgdm_codec.decode(data), src)


@pytest.mark.parametrize("mode", MODES)
def test_pillow_plugin_round_trip_is_bit_exact(tmp_path, mode):
    src = picture(mode, 33, 17, seed=3)
    src.save(tmp_path / "x.cgdm", lossless=True)
    with Image.open(tmp_path / "x.cgdm") as im:
        assert im.info["cgdm"]["lossless"] is True
        assert same_pixels(im.convert(im.mode), src)


def test_cli_round_trip_is_bit_exact_for_every_mode_and_odd_size(tmp_path):
    """One batch encode and one batch decode, as real processes, for 4 modes x 3 sizes."""
    sources = []
    for mode in MODES:
        for w, h in SIZES:
            sources.append(tmp_path / f"{mode}-{w}x{h}.png")
            picture(mode, w, h, seed=w + h).save(sources[-1])
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    res = run("encode", *map(str, sources), "--lossless", "-o", f"{coded}/", "-j", "1", "-Q")
    assert res.returncode == 0, res.stderr.decode()
    res = run("decode", *sorted(map(str, coded.glob("*.cgdm"))), "-o", f"{decoded}/", "-j", "1", "-Q")
    assert res.returncode == 0, res.stderr.decode()
    for src in sources:
        with Image.open(src) as a, Image.open(decoded / src.name) as b:
            assert same_pixels(b, a), src.name


def test_cli_through_pipes(tmp_path):
    src = io.BytesIO()
    picture("RGB", 33, 17).save(src, "PNG")
    enc = run("encode", "-", "--lossless", "-Q", stdin=src.getvalue())
    assert enc.returncode == 0 and parse(enc.stdout).base_codec == 3
    dec = run("decode", "-", "-o", "-", "-Q", stdin=enc.stdout)
    assert dec.returncode == 0
    assert same_pixels(Image.open(io.BytesIO(dec.stdout)), picture("RGB", 33, 17))


def test_a_fully_opaque_alpha_is_dropped_and_the_colour_kept_exactly():
    src = picture("RGBA", 5, 3)
    src.putalpha(255)
    out = cgdm_codec.decode(cgdm_codec.encode(src, lossless=True))
    assert out.mode == "RGB" and same_pixels(out, src.convert("RGB"))


@pytest.mark.parametrize("effort", ["fast", "default", "max"])
def test_every_effort_is_exact(effort):
    src = picture("RGB", 33, 17, seed=9)
    assert same_pixels(cgdm_codec.decode(cgdm_codec.encode(src, lossless=True, effort=effort)), src)


# --------------------------------------------------------------------------- info

def test_info_says_lossless(tmp_path):
    path = tmp_path / "x.cgdm"
    path.write_bytes(cgdm_codec.encode(picture("LA", 3, 5), lossless=True))
    text = run("info", str(path))
    assert text.returncode == 0
    assert "quality    lossless" in text.stdout.decode() and "webp-lossless" in text.stdout.decode()
    described = json.loads(run("info", "--json", str(path)).stdout)
    assert described["lossless"] is True and described["base_codec"] == "webp-lossless"
    assert described["base_codec_id"] == 3 and described["weights"] == "none" and not described["diffusion"]
    lossy = cgdm_codec.info(cgdm_codec.encode(picture("RGB", 16, 16), base="av1", base_only=True))
    assert lossy["lossless"] is False


def test_decode_settings_of_the_diffusion_stage_get_a_note(tmp_path):
    path = tmp_path / "x.cgdm"
    path.write_bytes(cgdm_codec.encode(picture("RGB", 3, 5), lossless=True))
    res = run("decode", str(path), "-o", str(tmp_path / "x.png"), "--realism", "0.5")
    assert res.returncode == 0
    assert "has no diffusion stage (a lossless file): --realism has no effect" in res.stderr.decode()


# --------------------------------------------------------------------------- what contradicts it

@pytest.mark.parametrize("extra, named", [
    (["-q", "3"], "-q"), (["--size", "900"], "--size"), (["--bpp", "2"], "--bpp"),
    (["--av1-quality", "60"], "--av1-quality"), (["--base", "av1"], "--base"),
    (["--diffusion"], "--diffusion"), (["--steps", "2"], "--steps"), (["--seed", "4"], "--seed"),
    (["--seeds", "2"], "--seeds"), (["--finetune-iters", "3"], "--finetune-iters"),
    (["--no-finetune"], "--no-finetune"),
])
def test_cli_contradictions_are_usage_errors(tmp_path, extra, named):
    src = tmp_path / "a.png"
    picture("RGB", 3, 5).save(src)
    res = run("encode", str(src), "--lossless", *extra)
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "--lossless" in line and named in line
    assert not (tmp_path / "a.cgdm").exists()


def test_cli_options_that_agree_with_it_are_accepted(tmp_path):
    src = tmp_path / "a.png"
    picture("RGB", 3, 5).save(src)
    res = run("encode", str(src), "--lossless", "--base-only", "--effort", "fast", "--strip", "--threads", "1", "-Q")
    assert res.returncode == 0, res.stderr.decode()
    env_base = subprocess.run(CGDM + ["encode", str(src), "--lossless", "-f", "-Q"], capture_output=True,
                              env=dict(ENV, CGDM_BASE="hyperprior"))  # the environment's default base: not a choice
    assert env_base.returncode == 0 and parse((tmp_path / "a.cgdm").read_bytes()).base_codec == 3


@pytest.mark.parametrize("settings", [dict(quality=3), dict(base="av1"), dict(av1_quality=50), dict(steps=2),
                                      dict(seed=1), dict(seeds=2), dict(finetune=False)])
def test_api_contradictions_are_config_errors(settings):
    with pytest.raises(ConfigError, match=f"{next(iter(settings))} cannot be given"):
        cgdm_codec.encode(picture("RGB", 3, 5), lossless=True, **settings)
    with pytest.raises(ConfigError):
        picture("RGB", 3, 5).save(io.BytesIO(), "CGDM", lossless=True, **settings)


def test_inputs_whose_numbers_changed_on_reading_are_refused(tmp_path):
    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).save(deep)
    res = run("encode", str(deep), "--lossless", "-QQ")
    assert res.returncode == 1
    assert "cannot be coded losslessly: 16-bit input reduced to 8 bits" in one_line(res.stderr)
    with pytest.raises(ImageError, match="cannot be coded losslessly: CMYK input converted"):
        cgdm_codec.encode(Image.new("CMYK", (4, 4), (1, 2, 3, 4)), lossless=True)
    assert cgdm_codec.encode(Image.new("I", (4, 4), 200), lossless=True)  # 8-bit values in mode I: exact


def test_images_beyond_webps_side_limit_are_refused_in_one_line():
    with pytest.raises(ImageError, match="up to 16383 pixels per side"):
        cgdm_codec.encode(Image.new("L", (16384, 1)), lossless=True)


# --------------------------------------------------------------------------- golden files

@pytest.mark.parametrize("stem", ["lossless-rgba", "lossless-l"])
def test_golden_files_decode_to_their_pictures(stem):
    data = (GOLDEN / f"{stem}.cgdm").read_bytes()
    f = parse(data)
    assert serialize(f) == data and f.base_codec == 3 and f.quality == 6
    with Image.open(GOLDEN / f"{stem}.png") as expected:
        assert same_pixels(cgdm_codec.decode(data), expected)
        assert same_pixels(cgdm_codec.decode(cgdm_codec.encode(expected, lossless=True)), expected)


def test_worked_example_in_format_doc():
    """docs/format.md 9.7: the golden 3x5 L file, its payload and its rebuilt RIFF wrapper."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    data = (GOLDEN / "lossless-l.cgdm").read_bytes()

    def block(marker: str) -> bytes:
        text = doc.split(marker, 1)[1].split("```text", 1)[1].split("```", 1)[0]
        return bytes.fromhex(text)

    assert block("<!-- lossless-file-hex -->") == data
    payload = parse(data).base_streams[0]
    assert block("<!-- webp-wrapper-hex -->") == build_webp(payload, 3, 5)[:20]
    assert build_webp(payload, 3, 5)[20:] == payload + b"\0"  # 85 bytes: one pad byte


# --------------------------------------------------------------------------- payload and reader

def test_split_and_build_are_inverse_and_strip_exactly_the_riff_wrapper():
    for w, h in [(1, 1), (2, 1), (33, 17)]:
        webp = encode_webp(textured(h, w))
        payload = split_webp(webp, w, h)
        assert len(webp) - len(payload) == 20 + (len(payload) & 1)
        assert build_webp(payload, w, h) == webp


@pytest.mark.parametrize("damage, match", [
    (lambda p: b"\x2e" + p[1:], "signature"),
    (lambda p: p[:4], "signature"),
    (lambda p: p[:1] + (int.from_bytes(p[1:5], "little") | 1 << 28).to_bytes(4, "little") + p[5:], "alpha"),
    (lambda p: p[:1] + (int.from_bytes(p[1:5], "little") | 1 << 29).to_bytes(4, "little") + p[5:], "version"),
    (lambda p: p[:1] + (int.from_bytes(p[1:5], "little") + 1).to_bytes(4, "little") + p[5:], "not 33x17"),
])
def test_a_damaged_payload_is_refused_before_libwebp_sees_it(damage, match):
    payload = split_webp(encode_webp(textured(17, 33)), 33, 17)
    with pytest.raises(LosslessError, match=match):
        check_payload(damage(payload), 33, 17)


def test_a_hostile_file_with_a_valid_checksum_is_one_error():
    f = parse(cgdm_codec.encode(picture("RGB", 33, 17), lossless=True))
    cut = CgdmFile(**{**f.__dict__, "base_streams": (f.base_streams[0][:40],)})
    with pytest.raises(FormatError, match="base-codec stream is corrupted"):
        cgdm_codec.decode(serialize(cut))
    with pytest.raises(FormatError, match="lossless: its files have no diffusion stage"):
        CgdmFile(**{**f.__dict__, "steps": 1, "syntax": b""})


def test_the_diffusion_flag_on_a_lossless_file_is_refused_by_the_reader():
    import zlib

    data = bytearray(cgdm_codec.encode(picture("RGB", 3, 5), lossless=True))
    data[4] |= 0x20  # diffusion flag: a steps byte and an (empty) syntax section follow the seed
    body = bytes(data[:13]) + b"\x01\x00" + bytes(data[13:-4])
    forged = body + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(FormatError, match="no diffusion stage"):
        parse(forged)


def test_the_backend_is_registered_but_not_a_base_choice():
    assert registry.lossless_backend() == "webp-lossless" and registry.is_lossless(3)
    assert "webp-lossless" not in cgdm_codec.api.BASES
    assert WebpLosslessBase.record is registry.backend(3)


def test_the_pipeline_never_writes_a_diffusion_stage_on_the_lossless_base(monkeypatch):
    """Not even where CGDM_DIFFUSION_WEIGHTS names weights for every base."""
    from cgdm_codec import imageio, pipeline
    from cgdm_codec.weights import weights_dir

    monkeypatch.setenv("CGDM_DIFFUSION_WEIGHTS", str(weights_dir() / "cgdm-av1-4.safetensors"))
    src = imageio.from_pil(picture("RGB", 33, 17))
    f = parse(pipeline.encode_image(src, EncodeSettings(lossless=True)))
    assert not f.diffusion and f.base_codec == 3
    with pytest.raises(ConfigError, match="without a diffusion stage: diffusion cannot be given"):
        pipeline.encode_image(src, EncodeSettings(lossless=True, diffusion=True))
    with pytest.raises(ConfigError, match="base cannot be given with it"):
        pipeline.encode_image(src, EncodeSettings(base="av1", lossless=True))
