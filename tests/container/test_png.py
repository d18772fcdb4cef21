"""The parallel PNG writer: Pillow reads back the same pixels and metadata, any size or mode."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from cgdm_codec import imageio, png
from conftest import textured


def read(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (97, 61), (400, 300)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pixels_come_back(channels, size, threads, monkeypatch):
    monkeypatch.setattr(png, "PARALLEL_MIN_BYTES", 0)  # strips even for small pictures
    h, w = size
    rgb = textured(h, w, seed=channels)
    pixels = np.dstack([rgb, rgb[..., :1]])[..., :channels] if channels != 3 else rgb
    pixels = pixels[..., 0] if channels == 1 else pixels
    buf = io.BytesIO()
    png.write_png(buf, pixels, threads=threads)
    assert np.array_equal(np.asarray(read(buf.getvalue())), pixels)


def test_strips_make_one_stream_with_the_right_checksum(monkeypatch):
    """zlib itself (which checks the Adler-32) inflates the joined strips to the scanlines."""
    monkeypatch.setattr(png, "PARALLEL_MIN_BYTES", 0)
    rows = textured(50, 40).reshape(50, 120)
    stream = png.deflate_strips(rows, 1, 4)
    raw = zlib.decompress(stream)
    assert len(raw) == 50 * 121 and raw == png.filtered_up(rows, np.zeros(120, np.uint8))
    assert png.adler32_concat([(zlib.adler32(b"abc"), 3), (zlib.adler32(b"defg"), 4)]) == zlib.adler32(b"abcdefg")


def test_the_level_is_honoured():
    rows = textured(64, 64)
    sizes = []
    for level in (0, 1, 9):
        buf = io.BytesIO()
        png.write_png(buf, rows, level=level)
        sizes.append(len(buf.getvalue()))
    assert sizes[0] > sizes[1] >= sizes[2]


def test_metadata_is_what_pillow_reads(monkeypatch):
    monkeypatch.setattr(png, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(imageio, "_parallel_png", lambda im, threads: True)
    exif = Image.Exif()
    exif[0x010F] = "cgdm test camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>cgdm</x:xmpmeta>"
    im = Image.fromarray(textured(40, 30))
    im.info.update(icc_profile=icc, exif=exif.tobytes(), xmp=xmp)  # Pillow's, with the Exif\\0\\0 prefix
    buf = io.BytesIO()
    imageio.write_image(im, buf, "PNG")
    back = read(buf.getvalue())
    assert back.info["icc_profile"] == icc
    assert back.getexif()[0x010F] == "cgdm test camera"
    assert back.info["xmp"] == xmp
    assert np.array_equal(np.asarray(back), np.asarray(im))


def test_small_or_single_core_outputs_stay_with_pillow(monkeypatch):
    small = Image.fromarray(textured(40, 30))
    assert not imageio._parallel_png(small, 2)
    big = Image.new("RGB", (2048, 1024))
    assert imageio._parallel_png(big, 2) and not imageio._parallel_png(big.convert("P"), 2)
    assert not imageio._parallel_png(big, 1)
    seen = []
    monkeypatch.setattr(png, "write_png", lambda f, pixels, level, threads=None, **md: seen.append(threads))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    imageio.write_image(big, io.BytesIO(), "PNG")  # the granted cores
    imageio.write_image(big, io.BytesIO(), "PNG", threads=2)  # cgdm decode --threads 2
    imageio.write_image(big, io.BytesIO(), "PNG", threads=1)  # one thread: Pillow's writer
    assert seen == [3, 2]
