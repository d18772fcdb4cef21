"""ICC profile, EXIF and XMP: the container's metadata section, reading them from inputs,
writing them into outputs, and the CLI switches (docs/format.md 3.6)."""

from __future__ import annotations

import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from cgdm_codec import container as C
from cgdm_codec import imageio
from cgdm_codec.cli import main
from cgdm_codec.container import (CgdmFile, ColourMode, FormatError, Metadata, decode_metadata,
                                  encode_metadata, encode_varint, parse, serialize, summary)
from cgdm_codec.errors import ConfigError
from conftest import textured

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/'
       b'1.1/"><dc:creator>cgdm test</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')


def exif_bytes(orientation: int | None = None) -> bytes:
    """Pillow-style EXIF (with the Exif\\0\\0 prefix): make, model, a date in the Exif IFD."""
    e = Image.Exif()
    e[0x010F], e[0x0110] = "CamCo", "Model 7"
    e.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    if orientation is not None:
        e[0x0112] = orientation
    return e.tobytes()


EXIF = exif_bytes()[6:]  # the container's canonical form
MD = Metadata(icc=ICC, exif=EXIF, xmp=XMP)


def make(**kw) -> CgdmFile:
    fields = dict(quality=3, width=64, height=48, weights_id=b"\x00\x11\x22\x33",
                  base_streams=(b"zz" * 5, b"y" * 40), seed=7)
    fields.update(kw)
    return CgdmFile(**fields)


def with_section(section: bytes, **kw) -> bytes:
    """A valid file (checksum included) whose metadata section is ``section``."""
    f = make(**kw)
    plain = serialize(f)
    header = bytearray(C._header(f))
    header[4] |= 0x40  # the metadata flag
    body = bytes(header) + encode_varint(len(section)) + section + plain[len(header):-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def record(kind: int, data: bytes, size: int | None = None, packed: bytes | None = None) -> bytes:
    packed = zlib.compress(data, 9) if packed is None else packed
    return (bytes([kind]) + encode_varint(len(data) if size is None else size)
            + encode_varint(len(packed)) + packed)


# --------------------------------------------------------------------------
# container
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize("diffusion", [False, True])
def test_round_trip_and_section_order(mode, diffusion):
    f = make(colour_mode=mode, alpha=b"A" * 3 if mode.has_alpha else None,
             steps=9 if diffusion else None, syntax=b"s" if diffusion else None, metadata=MD)
    data = serialize(f)
    assert data[4] & 0x40 and not data[4] & 0x80
    g = parse(data)
    assert g == f and g.metadata == MD and g.metadata.exif == EXIF
    names = [n for n, _ in g.named_sections()]
    assert names[-3:] == ["metadata", "z", "y"]  # after syntax and alpha, before the base
    assert serialize(g) == data


def test_without_metadata_the_file_is_unchanged():
    plain = serialize(make())
    assert serialize(make(metadata=None)) == plain
    assert serialize(make(metadata=Metadata())) == plain  # nothing to carry: no section
    assert serialize(make(metadata=Metadata(icc=b"", xmp=None))) == plain
    assert not plain[4] & 0x40
    with_md = serialize(make(metadata=MD))
    section = encode_metadata(MD)
    assert len(with_md) == len(plain) + len(encode_varint(len(section))) + len(section)


@pytest.mark.parametrize("name", ["hyperprior-q3.cgdm", "av1-q3.cgdm"])
def test_golden_files_parse_as_before(name):
    data = (GOLDEN / name).read_bytes()
    f = parse(data)
    assert f.metadata is None and "metadata" not in summary(f, len(data))["sections"]
    assert serialize(f) == data


def test_documented_example_section():
    """The worked example of docs/format.md 3.6, byte for byte."""
    section = encode_metadata(Metadata(xmp=b"<x:xmpmeta/>"))
    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    block = doc.split("<!-- metadata-hex -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    assert section == bytes.fromhex(block.replace("\n", " "))
    assert section[:3] == b"\x03\x0c\x14" and decode_metadata(section).xmp == b"<x:xmpmeta/>"


def test_another_writers_deflate_survives_reserialisation():
    """serialize(parse(x)) == x also when the records were compressed differently."""
    section = record(1, ICC, packed=zlib.compress(ICC, 1)) + record(3, XMP, packed=zlib.compress(XMP, 0))
    data = with_section(section)
    f = parse(data)
    assert f.metadata == Metadata(icc=ICC, xmp=XMP)
    assert serialize(f) == data
    assert serialize(make(metadata=Metadata(icc=ICC, xmp=XMP))) != data  # ours is level 9


BOMB = zlib.compress(b"\x00" * (C.MAX_METADATA_RECORD_BYTES + 4096), 9)


@pytest.mark.parametrize("section, fragment", [
    (b"", "no record"),
    (b"\x00" + record(1, ICC)[1:], "unknown record kind 0"),
    (b"\x04" + record(1, ICC)[1:], "unknown record kind 4"),
    (record(1, ICC) + record(1, ICC), "icc is repeated or out of order"),
    (record(3, XMP) + record(1, ICC), "icc is repeated or out of order"),
    (record(2, EXIF) + record(2, EXIF), "exif is repeated"),
    (record(1, ICC) + b"\x07", "unknown record kind 7"),  # trailing byte after the last record
    (record(1, ICC) + b"\x03", "truncated"),  # a record cut short after its kind
    (record(1, ICC)[:-1], "runs past the end of the section"),
    (record(1, ICC, size=0), "declares 0 bytes"),
    (record(1, b"x", size=C.MAX_METADATA_RECORD_BYTES + 1), "declares 16777217 bytes"),
    (record(1, ICC, size=len(ICC) + 1), "does not inflate to exactly"),
    (record(1, ICC, size=len(ICC) - 1), "does not inflate to exactly"),
    (record(1, ICC, packed=zlib.compress(ICC) + b"xx"), "does not inflate to exactly"),
    (record(1, ICC, packed=b"not zlib at all"), "bad zlib data"),
    (record(1, ICC, packed=zlib.compress(ICC)[:-6]), "does not inflate to exactly"),
    (record(1, b"x", size=C.MAX_METADATA_RECORD_BYTES, packed=BOMB), "does not inflate to exactly"),
    (record(2, b"Exif\x00\x00" + EXIF), "TIFF structure"),
    (b"\x01\x80", "invalid metadata section"),
    (b"\x01\x80\x00", "non-canonical"),
])
def test_corrupted_metadata_sections(section, fragment):
    data = with_section(section)
    with pytest.raises(FormatError, match=re.escape(fragment)) as e:
        parse(data)
    assert "\n" not in str(e.value)


def test_checksum_is_checked_before_inflating():
    data = bytearray(with_section(record(1, ICC, packed=b"garbage")))
    data[-1] ^= 1
    with pytest.raises(FormatError, match="checksum mismatch"):
        parse(bytes(data))


def test_metadata_object_validation():
    with pytest.raises(FormatError, match="without the Exif"):
        Metadata(exif=b"Exif\x00\x00" + EXIF)
    with pytest.raises(FormatError, match="too large"):
        Metadata(xmp=b"x" * (C.MAX_METADATA_RECORD_BYTES + 1))
    with pytest.raises(FormatError, match="must be bytes"):
        Metadata(icc="a string")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="Metadata object"):
        make(metadata={"icc": ICC})
    assert Metadata(icc=bytearray(b"ab")).icc == b"ab"
    assert "bytes>" in repr(MD) and len(repr(MD)) < 100  # never dumps a 16 MiB profile


def test_summary_and_info_show_metadata(tmp_path):
    f = make(metadata=Metadata(icc=ICC, xmp=XMP))
    data = serialize(f)
    s = summary(f, len(data))
    assert s["metadata"] == {"icc": len(ICC), "xmp": len(XMP)}
    assert s["sections"]["metadata"] == len(encode_metadata(f.metadata))
    assert summary(make(), 100)["metadata"] == {}
    p = tmp_path / "m.cgdm"
    p.write_bytes(data)
    res = CliRunner().invoke(main, ["info", str(p)])
    assert res.exit_code == 0 and f"metadata   icc {len(ICC)} B, xmp {len(XMP)} B" in res.output
    assert json.loads(CliRunner().invoke(main, ["info", str(p), "--json"]).output)["metadata"] == s["metadata"]


# --------------------------------------------------------------------------
# reading inputs
# --------------------------------------------------------------------------


def jpeg(rgb: np.ndarray, **kw) -> Image.Image:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=95, **kw)
    out.seek(0)
    return Image.open(out)


def test_from_pil_collects_icc_exif_xmp_from_jpeg():
    img = imageio.from_pil(jpeg(textured(16, 24), icc_profile=ICC, exif=exif_bytes(), xmp=XMP))
    assert img.metadata == MD  # EXIF in the canonical form: no Exif\0\0 prefix
    assert img.notes == []


def test_from_pil_png_itxt_xmp_and_exif():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    Image.fromarray(textured(8, 8)).save(out, "PNG", pnginfo=info, exif=exif_bytes(), icc_profile=ICC)
    img = imageio.from_pil(Image.open(out))
    assert img.metadata == MD


@pytest.mark.parametrize("orientation, turn", [(3, Image.Transpose.ROTATE_180),
                                               (6, Image.Transpose.ROTATE_270),
                                               (8, Image.Transpose.ROTATE_90)])
def test_rotated_jpeg_keeps_exif_with_orientation_1(orientation, turn):
    xmp = XMP.replace(b"<dc:creator>", b"<tiff:Orientation>%d</tiff:Orientation><dc:creator>"
                      % orientation)
    src = jpeg(textured(16, 32), exif=exif_bytes(orientation), xmp=xmp)
    upright = np.asarray(src.transpose(turn))
    img = imageio.from_pil(src)
    assert img.rgb.shape == (32, 16, 3) if orientation != 3 else (16, 32, 3)
    assert np.array_equal(img.rgb, upright)
    e = Image.Exif()
    e.load(img.metadata.exif)
    assert e.get(0x0112, 1) == 1 and e[0x010F] == "CamCo"
    assert e.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert b"Orientation" not in img.metadata.xmp


def test_out_of_range_orientation_is_removed():
    img = imageio.from_pil(jpeg(textured(8, 8), exif=exif_bytes(9)))
    e = Image.Exif()
    e.load(img.metadata.exif)
    assert 0x0112 not in e and e[0x0110] == "Model 7"


def test_profile_of_another_colour_space_is_dropped_with_a_note():
    cmyk_like = ICC[:16] + b"CMYK" + ICC[20:]
    img = imageio.from_pil(jpeg(textured(8, 8), icc_profile=cmyk_like))
    assert img.metadata is None and any("ICC profile (CMYK)" in n for n in img.notes)
    gray = Image.fromarray(textured(8, 8)[..., 0])
    gray.info["icc_profile"] = ICC  # an RGB profile on gray pixels
    img = imageio.from_pil(gray)
    assert img.metadata is None and any("gray" in n for n in img.notes)
    gray.info["icc_profile"] = ICC[:16] + b"GRAY" + ICC[20:]
    assert imageio.from_pil(gray).metadata.icc[16:20] == b"GRAY"


def test_tiff_exif_tags_are_collected():
    out = io.BytesIO()
    Image.fromarray(textured(8, 8)).save(out, "TIFF", exif=exif_bytes(6))
    img = imageio.from_pil(Image.open(out))
    e = Image.Exif()
    e.load(img.metadata.exif)
    assert e[0x010F] == "CamCo" and e.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert 0x0112 not in e and 273 not in e  # neither orientation nor strip layout


@pytest.mark.parametrize("spec, kept", [("all", ("icc", "exif", "xmp")), ("none", ()),
                                        ("icc", ("icc",)), ("exif, XMP", ("exif", "xmp")),
                                        ("icc,exif,xmp", ("icc", "exif", "xmp"))])
def test_select_metadata(spec, kept):
    got = imageio.select_metadata(MD, spec)
    assert (tuple(n for n, _ in got.items()) if got else ()) == kept


@pytest.mark.parametrize("spec", ["", "gps", "all,icc", "icc;exif"])
def test_select_metadata_refuses_unknown_names(spec):
    with pytest.raises(ConfigError, match="use all, none"):
        imageio.select_metadata(MD, spec)


# --------------------------------------------------------------------------
# writing outputs
# --------------------------------------------------------------------------


def saved(tmp_path, ext: str, md: Metadata | None, mode=ColourMode.RGB) -> tuple[Image.Image, list[str]]:
    rgb = textured(16, 24)
    alpha = np.full((16, 24), 128, np.uint8) if mode.has_alpha else None
    path = tmp_path / f"out{ext}"
    notes = imageio.save(imageio.to_pil(rgb, mode, alpha, md), path)
    im = Image.open(path)
    im.load()
    return im, notes


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".avif"])
def test_save_writes_verbatim(tmp_path, ext):
    im, notes = saved(tmp_path, ext, MD)
    assert notes == []
    assert imageio.from_pil(im).metadata == MD  # every field byte-identical
    assert im.info["icc_profile"] == ICC


def test_save_tiff_keeps_tags(tmp_path):
    im, notes = saved(tmp_path, ".tiff", MD)
    md = imageio.from_pil(im).metadata
    assert notes == [] and md.icc == ICC and md.xmp == XMP
    e = Image.Exif()
    e.load(md.exif)
    assert e[0x0110] == "Model 7" and e.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"


@pytest.mark.parametrize("ext", [".bmp", ".gif", ".ppm"])
def test_formats_without_metadata_give_a_note(tmp_path, ext):
    _, notes = saved(tmp_path, ext, MD)
    assert any("cannot store ICC profile, EXIF, XMP" in n for n in notes)
    _, notes = saved(tmp_path, ext, None)
    palette = [n for n in notes if "256-colour palette" in n]  # GIF's own limit, also noted
    assert len(palette) == (ext == ".gif") and [n for n in notes if n not in palette] == []


def test_jpeg_segment_limits_give_a_note(tmp_path):
    big = Metadata(icc=ICC, exif=EXIF + bytes(70000), xmp=b"<x/>" * 20000)
    im, notes = saved(tmp_path, ".jpg", big)
    assert any("EXIF" in n and "XMP" in n and "64 KiB" in n for n in notes)
    assert im.info["icc_profile"] == ICC and "exif" not in im.info


def test_gray_and_alpha_outputs_keep_metadata(tmp_path):
    gray_icc = ICC[:16] + b"GRAY" + ICC[20:]
    im, notes = saved(tmp_path, ".png", Metadata(icc=gray_icc, xmp=XMP), ColourMode.LA)
    assert im.mode == "LA" and notes == [] and im.info["icc_profile"] == gray_icc
    im, notes = saved(tmp_path, ".jpg", MD, ColourMode.RGBA)  # alpha dropped, metadata kept
    assert imageio.from_pil(im).metadata == MD


# --------------------------------------------------------------------------
# end to end: pipeline and CLI (learned base, base-only: fast on a CPU)
# --------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    d = tmp_path_factory.mktemp("meta")
    src = d / "photo.jpg"
    Image.fromarray(textured(48, 80)).save(src, quality=95, icc_profile=ICC, exif=exif_bytes(), xmp=XMP)
    cg = d / "photo.cgdm"
    res = run("encode", str(src), "-o", str(cg), "--base-only", "--quiet")
    assert res.exit_code == 0, res.output
    return d, src, cg


def test_encode_carries_metadata_by_default(encoded):
    _, _, cg = encoded
    f = C.read_file(cg)
    assert f.metadata == MD


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tiff", ".avif"])
def test_decode_writes_metadata_into_output(encoded, ext):
    d, _, cg = encoded
    out = d / f"back{ext}"
    res = run("decode", str(cg), "-o", str(out), "--quiet", "--force")
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        md = imageio.from_pil(im).metadata
    assert md.icc == ICC and md.xmp == XMP
    if ext != ".tiff":  # TIFF keeps EXIF as tags of its own directory: same tags here
        assert md.exif == EXIF
    e = Image.Exif()
    e.load(md.exif)
    assert e[0x010F] == "CamCo" and e.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"


def test_decode_strip_writes_none(encoded):
    d, _, cg = encoded
    out = d / "stripped.png"
    assert run("decode", str(cg), "-o", str(out), "--quiet", "--strip").exit_code == 0
    with Image.open(out) as im:
        assert not {"icc_profile", "exif", "xmp"} & set(im.info)


def test_encode_strip_and_choices(encoded):
    d, src, cg = encoded
    plain = d / "plain.png"
    with Image.open(src) as im:
        Image.fromarray(np.asarray(im)).save(plain)  # same pixels, no metadata
    outs = {}
    for name, args in [("plain", [str(plain)]), ("strip", [str(src), "--strip"]),
                       ("none", [str(src), "--metadata", "none"]),
                       ("icc", [str(src), "--metadata", "icc,xmp"])]:
        out = d / f"{name}.cgdm"
        res = run("encode", *args, "-o", str(out), "--base-only", "--quiet", "--force")
        assert res.exit_code == 0, res.output
        outs[name] = out.read_bytes()
    assert outs["strip"] == outs["none"] == outs["plain"]  # byte-identical to a file never given any
    assert parse(outs["icc"]).metadata == Metadata(icc=ICC, xmp=XMP)
    section = encode_metadata(MD)
    assert len(cg.read_bytes()) == len(outs["plain"]) + len(encode_varint(len(section))) + len(section)


def test_bad_metadata_choice_is_a_usage_error(encoded, tmp_path):
    res = CliRunner().invoke(main, ["encode", str(encoded[1]), "-o", str(tmp_path / "x.cgdm"),
                                    "--metadata", "gps", "--base-only"])
    assert res.exit_code == 2 and "use all, none" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.cgdm").exists()


def test_decode_puts_metadata_in_info(encoded, tmp_path):
    import cgdm_codec

    _, _, cg = encoded
    im = cgdm_codec.decode(cg.read_bytes(), base_only=True)
    assert im.info["icc_profile"] == ICC and im.info["exif"] == b"Exif\x00\x00" + EXIF
    assert im.info["xmp"] == XMP
    im.save(tmp_path / "plain.png")  # Pillow's own PNG writer takes the profile from im.info
    with Image.open(tmp_path / "plain.png") as back:
        assert back.info["icc_profile"] == ICC


def test_eval_measures_pixels_without_metadata(tmp_path):
    """cgdm eval's rates must not include the source's profile and EXIF (nor the anchors')."""
    from cgdm_lab.evaluation.images import load_reference

    src = tmp_path / "photo.jpg"
    Image.fromarray(textured(16, 16)).save(src, icc_profile=ICC, exif=exif_bytes(), xmp=XMP)
    assert imageio.from_pil(load_reference(src)).metadata is None
    assert imageio.from_pil(load_reference(src, 0.5)).metadata is None
    assert imageio.from_pil(Image.open(src)).metadata == MD
