"""The Pillow plugin: Image.open / im.save for .cgdm, header-only open, lazy decode, options.

Saves name the AV1 base without the diffusion stage, so each round trip takes milliseconds.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cgdm_codec
import cgdm_codec.pillow as plugin
from cgdm_codec import ConfigError, FormatError
from cgdm_codec.container import parse
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FAST = dict(base="av1", base_only=True)


def test_registered_with_pillow():
    assert Image.EXTENSION[".cgdm"] == "CGDM" and Image.MIME["CGDM"] == "image/x-cgdm"
    assert "CGDM" in Image.SAVE and "CGDM" in Image.OPEN


def test_open_reads_the_header_without_decoding():
    code = ("import sys; from PIL import Image; import cgdm_codec.pillow; "
            "im = Image.open(sys.argv[1]); print(im.format, im.size, im.mode, 'torch' in sys.modules); "
            "im.load(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(GOLDEN / "av1-q3.cgdm")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["CGDM (80, 48) RGB False", "False"]  # a base-only AV1 decode needs no torch either


def test_save_and_open_by_extension(tmp_path):
    src = Image.fromarray(textured(24, 40))
    path = tmp_path / "card.cgdm"
    src.save(path, quality=3, **FAST)
    assert path.read_bytes() == cgdm_codec.encode(src, 3, **FAST)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("CGDM", (40, 24), "RGB")
        assert im.info["cgdm"]["quality"] == 3 and im.info["cgdm"]["base_codec"] == "av1"
        assert im.get_format_mimetype() == "image/x-cgdm"
        pixels = np.asarray(im)
    assert np.array_equal(pixels, np.asarray(cgdm_codec.decode(path)))
    assert np.abs(pixels.astype(int) - np.asarray(src, dtype=int)).mean() < 12


@pytest.mark.torch
def test_quality_defaults_to_3_and_save_options_reach_the_encoder(tmp_path):
    src = Image.fromarray(textured(16, 16))
    buf = io.BytesIO()
    src.save(buf, "CGDM", **FAST)
    assert parse(buf.getvalue()).quality == 3
    buf = io.BytesIO()
    src.save(buf, "CGDM", base="av1", base_only=True, seed=7, av1_quality=40)
    f = parse(buf.getvalue())
    assert (f.seed, f.base_codec, f.diffusion) == (7, 2, False)
    buf = io.BytesIO()
    src.save(buf, "CGDM", quality=2, base="hyperprior", base_only=True)
    assert parse(buf.getvalue()).base_codec == 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_grayscale_and_alpha_round_trip_through_files(tmp_path, mode):
    im = Image.fromarray(textured(20, 28, seed=1)).convert(mode)
    if "A" in mode:
        alpha = np.tile(np.arange(20, dtype=np.uint8)[:, None] * 12, (1, 28))
        im.putalpha(Image.fromarray(alpha, "L"))
    im.save(tmp_path / "x.cgdm", quality=4, **FAST)
    with Image.open(tmp_path / "x.cgdm") as back:
        assert back.mode == mode and back.size == (28, 20)
        back.load()
        if "A" in mode:
            assert np.array_equal(np.asarray(back)[..., -1], alpha)


@pytest.mark.torch
def test_decode_options_per_image(tmp_path, float32_cpu):
    with Image.open(GOLDEN / "hyperprior-q3.cgdm") as im:
        assert im.info["cgdm"]["diffusion"]
        im.decode_options["base_only"] = True
        im.decode_options["device"] = "cpu"
        got = np.asarray(im)
    with np.load(GOLDEN / "hyperprior-q3.npz") as ref:
        assert np.abs(got.astype(int) - ref["base"]).max() <= 1


def test_converting_to_other_formats_and_in_memory(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(textured(16, 24)).save(buf, format="CGDM", quality=2, **FAST)
    buf.seek(0)
    with Image.open(buf) as im:
        im.save(tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").size == (24, 16)


def test_errors(tmp_path):
    bad = tmp_path / "bad.cgdm"
    data = (GOLDEN / "av1-q3.cgdm").read_bytes()
    bad.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(FormatError, match="checksum"):
        Image.open(bad)  # a damaged .cgdm says so, not "cannot identify image file"
    with pytest.raises(ConfigError, match="quality must be an integer in 1..6"):
        Image.new("RGB", (8, 8)).save(tmp_path / "q.cgdm", quality=75)
    assert not (tmp_path / "q.cgdm").exists()  # Pillow removes what it created
    (tmp_path / "other.cgdm").write_bytes(b"\x89PNG not really")
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(tmp_path / "other.cgdm")
    assert plugin.register() is None  # registering twice is harmless


def test_metadata_is_in_info_like_pillows_own_readers(tmp_path):
    """``im.info`` held only ``cgdm``: ICC, EXIF and XMP were lost to code written for Pillow."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[271] = "Camera Maker"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">hello</x:xmpmeta>'
    src = tmp_path / "src.png"
    Image.fromarray(textured(16, 24)).save(src, icc_profile=icc, exif=exif)
    data = cgdm_codec.encode(Image.open(src), 3, **FAST)
    with_xmp = tmp_path / "src.jpg"
    Image.open(src).save(with_xmp, icc_profile=icc, exif=exif, xmp=xmp)
    (tmp_path / "p.cgdm").write_bytes(cgdm_codec.encode(with_xmp, 3, **FAST))
    with Image.open(tmp_path / "p.cgdm") as im:
        assert im.info["icc_profile"] == icc and im.info["xmp"] == xmp
        assert im.info["exif"].startswith(b"Exif\x00\x00") and im.getexif()[271] == "Camera Maker"
        im.load()
        assert im.info["icc_profile"] == icc and im.info["xmp"] == xmp
        im.save(tmp_path / "out.png")  # Pillow's PNG writer takes the profile from im.info
        im.save(tmp_path / "out.jpg", icc_profile=im.info["icc_profile"], exif=im.info["exif"])
    assert Image.open(tmp_path / "out.png").info["icc_profile"] == icc
    with Image.open(tmp_path / "out.jpg") as jpg:
        assert jpg.info["icc_profile"] == icc and jpg.getexif()[271] == "Camera Maker"
    assert "icc_profile" in Image.open(io.BytesIO(data)).info


def test_save_options_are_the_encoders():
    from cgdm_codec.api import ENCODE_OPTIONS

    assert plugin.SAVE_OPTIONS == tuple(o.name for o in ENCODE_OPTIONS if o.offered_on("pillow"))
