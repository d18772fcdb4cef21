"""The Python API (cgdm_codec.encode/decode/info): inputs it accepts, errors it raises, imports it avoids.

Encodes use the AV1 base without the diffusion stage (named, though it is the default), so
every test runs in well under a second.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cgdm_codec
from cgdm_codec import ConfigError, FormatError, ImageError, WeightsError
from cgdm_codec.cli import main
from cgdm_codec.container import Limits, parse, serialize
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FAST = dict(base="av1", base_only=True)


@pytest.fixture(scope="module")
def card() -> Image.Image:
    return Image.fromarray(textured(24, 40))


def test_encode_accepts_an_image_a_path_and_file_bytes(card, tmp_path):
    path = tmp_path / "card.png"
    card.save(path)
    from_image = cgdm_codec.encode(card, 3, **FAST)
    assert cgdm_codec.encode(path, 3, **FAST) == from_image
    assert cgdm_codec.encode(str(path), 3, **FAST) == from_image
    assert cgdm_codec.encode(path.read_bytes(), 3, **FAST) == from_image
    f = parse(from_image)
    assert (f.width, f.height, f.quality, f.diffusion, f.base_codec) == (40, 24, 3, False, 2)


def test_decode_and_info_accept_bytes_and_paths(card, tmp_path):
    data = cgdm_codec.encode(card, 2, **FAST)
    path = tmp_path / "card.cgdm"
    path.write_bytes(data)
    for source in (data, bytearray(data), memoryview(data), path, str(path)):
        im = cgdm_codec.decode(source)
        assert isinstance(im, Image.Image) and im.size == (40, 24) and im.mode == "RGB"
        assert cgdm_codec.info(source)["bytes"] == len(data)
    res = CliRunner().invoke(main, ["info", str(path), "--json"])
    assert cgdm_codec.info(path) == json.loads(res.output)  # the very dict the CLI prints


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_modes_round_trip_and_alpha_is_exact(mode):
    rgb = textured(20, 30, seed=3)
    im = Image.fromarray(rgb).convert(mode)
    if "A" in mode:
        alpha = np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))
        im.putalpha(Image.fromarray(alpha, "L"))
    out = cgdm_codec.decode(cgdm_codec.encode(im, 4, **FAST))
    assert out.mode == mode and out.size == (30, 20)
    if "A" in mode:
        assert np.array_equal(np.asarray(out)[..., -1], alpha)
    err = np.abs(np.asarray(out.convert("RGB"), dtype=int) - np.asarray(im.convert("RGB"), dtype=int))
    assert err.mean() < 12


@pytest.mark.torch
def test_golden_files_decode_through_the_api(float32_cpu):
    data = (GOLDEN / "av1-q3.cgdm").read_bytes()
    expected = (GOLDEN / "av1-q3.base.sha256").read_text().split()[0]
    import hashlib

    assert hashlib.sha256(np.asarray(cgdm_codec.decode(data)).tobytes()).hexdigest() == expected
    with np.load(GOLDEN / "hyperprior-q3.npz") as ref:
        base = ref["base"]
    got = np.asarray(cgdm_codec.decode(GOLDEN / "hyperprior-q3.cgdm", base_only=True, device="cpu"))
    assert np.abs(got.astype(int) - base).max() <= 1


@pytest.mark.torch
def test_the_base_defaults_to_the_environment(card, monkeypatch):
    """Unset, AV1 (the registry's default); CGDM_BASE names another."""
    assert parse(cgdm_codec.encode(card, 1, base_only=True)).base_codec == 2
    monkeypatch.setenv("CGDM_BASE", "hyperprior")
    assert parse(cgdm_codec.encode(card, 1, base_only=True)).base_codec == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(quality=0), "quality must be an integer in 1..6"),
    (dict(quality=7), "quality"),
    (dict(quality=True), "quality"),
    (dict(quality="3"), "quality"),
    (dict(base="jpeg"), "base must be one of"),
    (dict(effort="slow"), "effort must be one of"),
    (dict(steps=0), "steps"),
    (dict(seed=-1), "seed"),
    (dict(av1_quality=101), "av1_quality"),
    (dict(base="hyperprior", av1_quality=50), "needs the AV1 base"),
    (dict(device="tpu"), "device must be"),
])
def test_bad_settings_are_config_errors(card, kwargs, match):
    kwargs = {"quality": 3, **kwargs}
    with pytest.raises(ConfigError, match=match):
        cgdm_codec.encode(card, **kwargs)


def test_bad_inputs_raise_the_projects_errors(tmp_path, card):
    with pytest.raises(ImageError, match="not a readable image") as bad_bytes:
        cgdm_codec.encode(b"certainly not an image", 3, **FAST)
    # it says what the input was, not "cannot identify image file <_io.BytesIO object at 0x7f...>"
    assert str(bad_bytes.value) == ("the image data (22 bytes): not a readable image "
                                    "(not in a format Pillow reads)")
    with pytest.raises(ImageError, match="missing.png: No such file or directory"):
        cgdm_codec.encode(tmp_path / "missing.png", 3, **FAST)
    with pytest.raises(FormatError, match="bad magic"):
        cgdm_codec.decode(b"PNG and such")
    with pytest.raises(FormatError, match="bad magic"):
        cgdm_codec.info(b"PNG and such")
    data = cgdm_codec.encode(card, 3, **FAST)
    with pytest.raises(FormatError, match="checksum"):
        cgdm_codec.info(data[:-1] + bytes([data[-1] ^ 1]))
    (tmp_path / "t.cgdm").write_bytes(data[:12])
    with pytest.raises(FormatError, match="t.cgdm: truncated"):
        cgdm_codec.decode(tmp_path / "t.cgdm")
    with pytest.raises(FileNotFoundError):
        cgdm_codec.info(tmp_path / "missing.cgdm")
    with pytest.raises(TypeError, match="expected .cgdm bytes or a path"):
        cgdm_codec.decode(12)
    with pytest.raises(ImageError, match="the limit is 16 px"):
        cgdm_codec.encode(card, 3, limits=Limits(max_side=16), **FAST)
    with pytest.raises(FormatError, match="limit"):
        cgdm_codec.decode(data, limits=Limits(max_pixels=100))
    other = serialize(type(parse(data))(**{**parse(data).__dict__, "weights_id": b"\xde\xad\xbe\xef"}))
    with pytest.raises(WeightsError, match="deadbeef"):
        cgdm_codec.decode(other)


def test_import_and_info_do_not_import_torch():
    code = ("import sys, cgdm_codec; s = cgdm_codec.info(sys.argv[1]); "
            "heavy = [m for m in ('torch', 'numpy', 'PIL', 'compressai') if m in sys.modules]; "
            "print(s['width'], heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(GOLDEN / "av1-q3.cgdm")],
                         capture_output=True, text=True, check=True).stdout
    assert out.split(None, 1) == ["80", "[]\n"]


def test_api_is_documented_and_listed():
    assert {"encode", "decode", "info"} <= set(dir(cgdm_codec)) and "encode" in cgdm_codec.__all__
    for fn in (cgdm_codec.encode, cgdm_codec.decode, cgdm_codec.info):
        assert fn.__doc__ and fn.__module__ == "cgdm_codec.api"
    with pytest.raises(AttributeError):
        cgdm_codec.no_such_thing  # noqa: B018


def test_the_keywords_are_the_settings_fields():
    """The public signatures, built from ``options.EncodeSettings``/``DecodeSettings``: what
    ``help()`` shows, in the fields' order, with their defaults; an unknown keyword is the
    TypeError of any Python function."""
    import inspect

    from cgdm_codec.api import decode_parsed

    encode = inspect.signature(cgdm_codec.encode).parameters
    assert list(encode) == ["image", "quality", "size", "bpp", "base", "base_only", "lossless", "texture_map",
                            "diffusion", "effort", "seed", "steps", "av1_quality", "finetune_iters", "seeds",
                            "finetune", "metadata", "strip", "device", "runtime", "threads", "limits",
                            "progress"]
    assert encode["quality"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert encode["effort"].default == "default"
    decode = inspect.signature(cgdm_codec.decode).parameters
    assert list(decode) == ["data", "base_only", "steps", "realism", "strip", "fast", "precision", "device", "runtime",
                            "threads", "limits", "progress"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in decode.items() if name != "data")
    assert list(inspect.signature(decode_parsed).parameters) == ["f", *list(decode)[1:-2], "progress"]
    with pytest.raises(TypeError, match="^decode\\(\\) got an unexpected keyword argument 'force'$"):
        cgdm_codec.decode(b"", force=True)
