"""The AVIF wrapper of the AV1 base: split off at encode, rebuilt byte for byte at decode.

`build_avif(split_avif(f), w, h) == f` for the files Pillow (libavif + libaom) writes, over
sizes, qualities, speeds and the three layouts (4:2:0, 4:4:4, 4:0:0); hostile files and
payloads raise Av1Error and nothing else; the worked example of docs/format.md is what
`build_avif` writes.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cgdm_codec.base.av1_bitstream import Av1Error, parse_sequence_header, split_obus
from cgdm_codec.base.avif_file import build_avif, sequence_header, split_avif, wrapper_size

REPO = Path(__file__).resolve().parents[2]
LAYOUTS = ("4:2:0", "4:4:4", "gray")
WRAPPER = {"4:2:0": 277, "4:4:4": 277, "gray": 271}


def image(w: int, h: int, layout: str, seed: int = 0) -> Image.Image:
    """Gradients plus noise: cheap to make, not trivial to code."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    a = np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a[..., 0], "L") if layout == "gray" else Image.fromarray(a, "RGB")


def pillow_avif(im: Image.Image, layout: str, quality: int, speed: int, **opts) -> bytes:
    buf = io.BytesIO()
    if layout != "gray":
        opts["subsampling"] = layout
    im.save(buf, "AVIF", quality=quality, speed=speed, **opts)
    return buf.getvalue()


def pixels(avif: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(avif)) as im:
        return np.asarray(im.convert("RGB"))


def check_round_trip(avif: bytes, w: int, h: int, layout: str) -> bytes:
    payload = split_avif(avif)
    assert payload[:1] == b"\x0a"  # a sequence header OBU (type 1, with size field)
    rebuilt = build_avif(payload, w, h)
    assert rebuilt == avif
    assert len(avif) - len(payload) == WRAPPER[layout] == wrapper_size(payload, w, h)
    return payload


# ---------------------------------------------------------------------------------------------
# Byte identity with Pillow's output


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (33, 17), (64, 64)])
def test_small_images_all_qualities(size, layout):
    w, h = size
    for quality in (0, 10, 50, 90, 100):
        for speed in (6, 8):
            avif = pillow_avif(image(w, h, layout, seed=quality), layout, quality, speed)
            check_round_trip(avif, w, h, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_medium_image_and_pixels(layout):
    w, h = 768, 512
    im = image(w, h, layout, seed=5)
    for quality in (10, 90):
        avif = pillow_avif(im, layout, quality, 8)
        payload = check_round_trip(avif, w, h, layout)
        rebuilt = build_avif(payload, w, h)
        assert np.array_equal(pixels(rebuilt), pixels(avif))
        # the fields that vary: ispe, av1C's level (3.0 for 768x512), iloc and mdat lengths
        assert struct.pack(">II", w, h) in rebuilt[:300]
        assert parse_sequence_header(split_obus(payload)[0].payload).seq_level_idx_0 == 4


def test_slow_speed_small_image():
    im = image(40, 24, "4:2:0", seed=3)
    avif = pillow_avif(im, "4:2:0", 50, 2)
    payload = check_round_trip(avif, 40, 24, "4:2:0")
    assert np.array_equal(pixels(build_avif(payload, 40, 24)), pixels(avif))


def test_big_image_with_autotiling():
    """3000x2000: level 5.0; Pillow's autotiling (one tile per thread, up to 32) changes only the payload."""
    w, h = 3000, 2000
    im = image(w, h, "4:2:0", seed=1)
    avif = pillow_avif(im, "4:2:0", 10, 10)
    payload = check_round_trip(avif, w, h, "4:2:0")
    assert sequence_header(payload).seq_level_idx_0 == 12


@pytest.mark.parametrize("opts", [{"range": "limited"}, {"max_threads": 1}, {"autotiling": False},
                                  {"tile_rows": 1, "tile_cols": 1}])
def test_other_pillow_settings_that_only_touch_the_payload_or_colr(opts):
    avif = pillow_avif(image(48, 40, "4:2:0"), "4:2:0", 40, 8, **opts)
    check_round_trip(avif, 48, 40, "4:2:0")


def test_grayscale_colr_and_pixi():
    avif = pillow_avif(image(16, 16, "gray"), "gray", 50, 8)
    payload = split_avif(avif)
    rebuilt = build_avif(payload, 16, 16)
    assert b"MA1B" not in rebuilt[:32] and rebuilt[8:28] == b"avif\0\0\0\0avifmif1miaf"
    assert b"pixi\0\0\0\0\x01\x08" in rebuilt
    assert b"av1C\x81\x00\x1c\x00" in rebuilt  # monochrome, subsampling_x = subsampling_y = 1


# ---------------------------------------------------------------------------------------------
# Files split_avif must refuse


def small_file() -> bytes:
    return pillow_avif(image(20, 12, "4:2:0", seed=7), "4:2:0", 40, 8)


@pytest.mark.parametrize("kind", ["rgba", "exif", "xmp", "icc", "orientation"])
def test_files_with_more_than_the_colour_item_are_refused(kind):
    rgb = np.asarray(image(20, 12, "4:2:0"))
    im, opts = Image.fromarray(rgb), {}
    exif = Image.Exif()
    if kind == "rgba":
        im = Image.fromarray(np.dstack([rgb, rgb[..., 0]]))  # an alpha item
    elif kind == "exif":
        exif[0x010F] = "camera"
        opts["exif"] = exif.tobytes()  # an Exif item
    elif kind == "orientation":
        exif[0x0112] = 6
        opts["exif"] = exif.tobytes()  # irot/imir properties
    elif kind == "xmp":
        opts["xmp"] = b"<x/>"  # an XMP item
    else:
        opts["icc_profile"] = bytes(140)  # a colr 'prof' property (libavif does not parse it)
    buf = io.BytesIO()
    im.save(buf, "AVIF", quality=40, speed=8, **opts)
    with pytest.raises(Av1Error):
        split_avif(buf.getvalue())


def test_truncated_files_are_refused():
    avif = small_file()
    for cut in range(len(avif)):
        with pytest.raises(Av1Error):
            split_avif(avif[:cut])
    with pytest.raises(Av1Error):
        split_avif(avif + b"\0")


def test_patched_files_are_refused():
    avif = small_file()
    payload = split_avif(avif)
    at = avif.index(b"iloc") + 4 + 4 + 10  # extent_offset of the one extent

    def patched(pos: int, new: bytes) -> bytes:
        return avif[:pos] + new + avif[pos + len(new):]

    bad = {
        "iloc outside the file": patched(at, struct.pack(">I", len(avif) + 100)),
        "iloc past the end": patched(at + 4, struct.pack(">I", len(payload) + 3)),
        "iloc into meta": patched(at, struct.pack(">I", 40)),
        "two items": patched(avif.index(b"iinf") + 8, b"\x00\x02"),
        "major brand": patched(8, b"heic"),
        "handler": patched(avif.index(b"pict"), b"vide"),
        "item type": patched(avif.index(b"av01"), b"hvc1"),
        "pitm": patched(avif.index(b"pitm") + 8, b"\x00\x02"),
        "huge box": patched(0, b"\xff\xff\xff\xff"),
        "box size 1": patched(0, b"\x00\x00\x00\x01"),
        "ispe": patched(avif.index(b"ispe") + 8, struct.pack(">I", 21)),
        "av1C": patched(avif.index(b"av1C") + 5, b"\x1f"),
        "no delimiter": patched(avif.index(b"mdat") + 4, b"\x32\x00"),
    }
    for name, data in bad.items():
        assert len(data) == len(avif)
        with pytest.raises(Av1Error):
            split_avif(data)


def test_garbage_and_fuzzed_files_raise_only_av1error():
    rng = np.random.default_rng(0)
    for data in (b"", b"\0" * 8, bytes(range(256)) * 4, rng.bytes(1000), b"\x00\x00\x00\x08ftyp"):
        with pytest.raises(Av1Error):
            split_avif(data)
    with pytest.raises(Av1Error):
        split_avif("not bytes")  # type: ignore[arg-type]
    avif = small_file()
    for _ in range(400):
        bad = bytearray(avif)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(300))] ^= 1 << int(rng.integers(8))
        try:
            payload = split_avif(bytes(bad))
        except Av1Error:
            continue
        assert isinstance(payload, bytes)  # a flip build_avif reproduces (none expected in meta)


# ---------------------------------------------------------------------------------------------
# Payloads build_avif must refuse


def test_hostile_payloads_raise_av1error():
    avif = small_file()
    payload = split_avif(avif)
    other = split_avif(pillow_avif(image(12, 20, "4:2:0"), "4:2:0", 40, 8))
    seq_len = 2 + len(split_obus(payload)[0].payload)
    bad = {
        "empty": b"",
        "truncated frame": payload[:-1],
        "truncated header": payload[:5],
        "header only": payload[:seq_len],
        "garbage": bytes(range(256)) * 3,
        "zeros": bytes(64),
        "with delimiter": b"\x12\x00" + payload,
        "two frames": payload + payload[seq_len:],
        "two headers": payload[:seq_len] + payload,
        "frame first": payload[seq_len:] + payload[:seq_len],
        "padding after": payload + b"\x7a\x00",
        "other image's header": other[:2 + len(split_obus(other)[0].payload)] + payload[seq_len:],
    }
    for name, data in bad.items():
        with pytest.raises(Av1Error):
            build_avif(data, 20, 12)
    for w, h in ((21, 12), (20, 13), (12, 20), (0, 12), (20, -1), (True, 12), (2 ** 32, 12)):
        with pytest.raises(Av1Error):
            build_avif(payload, w, h)
    with pytest.raises(Av1Error):
        build_avif(other, 20, 12)  # a valid payload whose sequence header says 12x20
    with pytest.raises(Av1Error):
        build_avif(None, 20, 12)  # type: ignore[arg-type]


def test_fuzzed_payloads_raise_only_av1error():
    rng = np.random.default_rng(1)
    payload = split_avif(small_file())
    for _ in range(300):
        bad = bytearray(payload)
        bad[int(rng.integers(min(len(bad), 40)))] ^= 1 << int(rng.integers(8))
        try:
            out = build_avif(bytes(bad), 20, 12)
        except Av1Error:
            continue
        assert out.endswith(bytes(bad))


# ---------------------------------------------------------------------------------------------
# docs/format.md worked example


def doc_hex(marker: str) -> bytes:
    text = (REPO / "docs" / "format.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"hex block {marker} not found in docs/format.md"
    return bytes.fromhex(re.sub(r"[^0-9a-fA-F]", "", m.group(1)))


def test_worked_example_in_the_format_doc():
    if not (REPO / "docs" / "format.md").exists():
        pytest.skip("docs/format.md not present")
    payload, wrapper = doc_hex("avif-payload-hex"), doc_hex("avif-wrapper-hex")
    assert len(payload) == 162 and len(wrapper) == 277
    rebuilt = build_avif(payload, 80, 48)
    assert rebuilt == wrapper + payload
    assert split_avif(rebuilt) == payload
    # the fields the table of section 9.6 names
    assert struct.unpack_from(">II", rebuilt, 113) == (275, 164)  # iloc extent offset, length
    assert struct.unpack_from(">II", rebuilt, 189) == (80, 48)  # ispe
    assert rebuilt[221:225] == bytes.fromhex("81000c00")  # av1C
    assert struct.unpack_from(">I4s", rebuilt, 267) == (172, b"mdat")
    assert pixels(rebuilt).shape == (48, 80, 3)
