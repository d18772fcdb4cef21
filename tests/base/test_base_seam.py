"""The base-codec seam: a backend is one module and one registry line (docs/base-codec.md).

``PngBase`` is a toy backend, defined here and never shipped: lossless PNG as the "base
codec", so its x~ is the image itself. Registered by the test alone (a monkeypatched
registry), it must encode and decode through the pipeline like the real backends.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from cgdm_codec import api, generations, imageio, pipeline
from cgdm_codec.base import registry
from cgdm_codec.base.interface import BaseCodec, BaseEncoding, BaseRecord, rgb_to_tensor
from cgdm_codec.container import BASE_CODEC_STREAMS, FormatError, parse, summary
from cgdm_codec.errors import ConfigError
from cgdm_codec.options import DecodeSettings, EncodeSettings

REPO = Path(__file__).resolve().parents[2]


class PngBase:
    """Lossless PNG behind the base-codec interface: the whole of a new backend."""

    record: ClassVar[BaseRecord] = BaseRecord(
        codec_id=250, name="png", streams=("png",), implementation=f"{__name__}:PngBase", network=False,
    )

    @classmethod
    def create(cls) -> "PngBase":
        return cls()

    def identity(self) -> str:
        return ""  # no weights

    def fine_level(self, fine: int) -> int:
        return self.record.level_for(fine)

    def encode(self, rgb: np.ndarray, level: int, *, fine: int | None = None, effort: str = "default",
               grayscale: bool = False, device=None, threads: int | None = None) -> BaseEncoding:
        if fine is not None:
            raise ValueError("the png base has levels 1..6 only")
        im = Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L") if grayscale else Image.fromarray(rgb, "RGB")
        buf = io.BytesIO()
        im.save(buf, "PNG", compress_level=level)  # the level only trades time for size
        streams = (buf.getvalue(),)
        return BaseEncoding(streams, self.condition(streams, level), level)

    def condition(self, streams: tuple[bytes, ...], level: int) -> int:
        return level - 1

    def decode_image(self, streams: tuple[bytes, ...], width: int, height: int) -> Image.Image:
        with Image.open(io.BytesIO(streams[0]), formats=["PNG"]) as im:
            im.load()
        if im.size != (width, height):
            raise ValueError("the PNG has the wrong size")
        return im

    def decode_rgb(self, streams: tuple[bytes, ...], width: int, height: int, level: int | None = None,
                   device=None) -> np.ndarray:
        return np.asarray(self.decode_image(streams, width, height).convert("RGB"))

    def reconstruct(self, streams: tuple[bytes, ...], width: int, height: int, level: int, device=None):
        return rgb_to_tensor(self.decode_rgb(streams, width, height))


@pytest.fixture
def png_registered(monkeypatch):
    """The registry with one more line: what adding a backend to ``registry.BACKENDS`` does."""
    record = PngBase.record
    monkeypatch.setattr(registry, "BACKENDS", registry.BACKENDS + (record,))
    monkeypatch.setitem(registry.BY_ID, record.codec_id, record)
    monkeypatch.setitem(registry.BY_NAME, record.name, record)
    generations.clear_cache()
    yield record
    generations.clear_cache()


def pattern(h: int, w: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, channels), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_a_toy_png_backend_codes_base_only_through_the_pipeline(png_registered, mode):
    if mode == "RGBA":  # an alpha that is not all opaque (an opaque one is dropped)
        img = Image.fromarray(pattern(37, 53, 4), "RGBA")
    else:
        img = Image.fromarray(pattern(37, 53)).convert(mode)
    data = pipeline.encode_image(imageio.from_pil(img), EncodeSettings(quality=4, base="png", base_only=True,
                                                                        device="cpu"))
    f = parse(data)
    assert f.base_codec == 250 and not f.diffusion and f.weights_id == generations.NO_WEIGHTS_ID
    assert f.quality == 4 and "png" in summary(f, len(data))["sections"]
    out = pipeline.decode_image(f)
    assert out.mode == mode and np.array_equal(np.asarray(out), np.asarray(img))  # lossless
    rgb = pipeline.decode_file(f, DecodeSettings(device="cpu"))  # the numpy path the diffusion stage takes
    assert np.array_equal(rgb, np.asarray(img.convert("RGB")))


def test_without_its_registry_line_a_backend_is_unknown(png_registered, monkeypatch):
    img = imageio.from_pil(Image.fromarray(pattern(8, 8)))
    settings = EncodeSettings(quality=2, base="png", base_only=True, device="cpu")
    data = pipeline.encode_image(img, settings)
    assert BASE_CODEC_STREAMS[250] == 1
    monkeypatch.undo()
    with pytest.raises(FormatError, match="unknown base codec id 250"):
        parse(data)
    with pytest.raises(ConfigError, match="base must be one of .*, got 'png'"):
        EncodeSettings(quality=2, base="png")
    with pytest.raises(ValueError, match="unknown base codec 'png'"):
        pipeline.encode_image(img, settings)  # settings made while it was registered


def test_every_registered_backend_carries_its_record_and_the_whole_protocol():
    members = [m for m in vars(BaseCodec) if not m.startswith("_") and m != "record"]
    assert {"create", "identity", "fine_level", "encode", "condition", "reconstruct", "decode_rgb",
            "decode_image"} <= set(members)
    for record in registry.BACKENDS:
        module, name = record.implementation.split(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert cls.record is record
        assert all(callable(getattr(cls, m)) for m in members), record.name
    assert registry.BY_ID == {r.codec_id: r for r in registry.BACKENDS}
    assert registry.BY_NAME == {r.name: r for r in registry.BACKENDS}


def test_the_choices_come_from_the_registry():
    assert set(api.BASES) == {n for n, r in registry.BY_NAME.items() if not r.lossless}  # --lossless picks that one
    assert api.BASES[0] == registry.DEFAULT_BACKEND
    assert api.ENCODE_OPTION["base"].choices == api.BASES
    assert dict(BASE_CODEC_STREAMS) == {r.codec_id: len(r.streams) for r in registry.BACKENDS}


def test_fine_qualities_map_to_levels_by_the_record():
    av1 = registry.backend("av1")
    assert [av1.level_for(q) for q in av1.level_fine] == [1, 2, 3, 4, 5, 6]
    assert av1.level_for(0) == 1 and av1.level_for(100) == 6 and av1.level_for(22) == 2  # ties go down
    with pytest.raises(ValueError, match="levels 1..6 only"):
        registry.backend("hyperprior").level_for(50)
    with pytest.raises(ValueError, match="go together"):
        BaseRecord(9, "x", ("x",), "m:C", False, fine_range=(0, 9))


def test_the_registry_and_its_backend_modules_import_without_numpy_or_torch():
    code = ("import sys, json\n"
            "from cgdm_codec.base import registry\n"
            "print(json.dumps([m for m in ('torch', 'numpy', 'compressai', 'PIL') if m in sys.modules]))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.torch
def test_a_weightless_toy_backend_gives_training_pairs(png_registered, tmp_path, monkeypatch):
    """``train.cgdm --base png`` would train from whole-image decodes, at the toy's levels."""
    from cgdm_lab.train import cgdm as train_cgdm
    from cgdm_lab.train.av1_pairs import build_pairs

    data = tmp_path / "photos"
    data.mkdir()
    Image.fromarray(pattern(96, 128)).save(data / "p.png")
    monkeypatch.setenv("CGDM_CACHE", str(tmp_path / "cache"))
    pairs = build_pairs(data, min_side=64, per_image=2, workers=1, base="png")
    assert len(pairs.decodes) == 2 * len(pairs.originals) and all(0 <= c <= 5 for c in pairs.qindex)
    assert all(np.array_equal(d, pairs.originals[s]) for d, s in zip(pairs.decodes, pairs.source))  # lossless
    assert list((tmp_path / "cache").glob("pngpairs-*.npz"))
    args = train_cgdm.parse_args(["--data", str(data), "--base", "png"])
    assert args.preset == "small"  # conditioned on the level, like the hyperprior's network
