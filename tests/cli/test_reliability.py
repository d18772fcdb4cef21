"""Hostile and odd inputs through the CLI, the output policy, limits, weights integrity.

Each bad input must end in one line ``cgdm: error: ...`` and a non-zero exit code with no
output file; each odd-but-valid image must round-trip with the right size and mode.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cgdm_codec import atomic
from cgdm_codec.cli import main
from conftest import textured


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


PROGRESS = re.compile(r"\[ *\d+\.\ds\] ")


def one_line_error(res, code: int = 1) -> str:
    """The error line; progress lines (``[  0.1s] reading x.png``) may precede it, nothing else."""
    err = "\n".join(line for line in res.stderr.strip().splitlines() if not PROGRESS.match(line))
    assert res.exit_code == code, (res.exit_code, res.output)
    assert err.startswith("cgdm: error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in res.output
    return err


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit_rgb(h: int, w: int) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    rows = b"".join(b"\x00" + np.full((w, 3), 40000 + 90 * y, ">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def rgb(h: int = 24, w: int = 40) -> Image.Image:
    return Image.fromarray(textured(h, w, seed=h * w))


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# name -> (file bytes, expected decoded mode) for images that must work
GOOD = {
    "rgb.png": (lambda: save(rgb(), "PNG"), "RGB"),
    "gray.png": (lambda: save(rgb().convert("L"), "PNG"), "L"),
    "gray-alpha.png": (lambda: save(rgb().convert("LA"), "PNG"), "L"),  # opaque alpha is dropped
    "rgba.png": (lambda: save(Image.merge("RGBA", (*rgb().split(), rgb().convert("L"))), "PNG"), "RGBA"),
    "palette.png": (lambda: save(rgb().quantize(16), "PNG"), "RGB"),
    "palette-transparent.png": (lambda: save(rgb().quantize(16), "PNG", transparency=3), "RGBA"),
    "bilevel.png": (lambda: save(rgb().convert("1"), "PNG"), "L"),
    "gray16.png": (lambda: save(Image.fromarray(np.full((24, 40), 50000, np.uint16)), "PNG"), "L"),
    "rgb16.png": (lambda: png_16bit_rgb(24, 40), "RGB"),
    "cmyk.jpg": (lambda: save(rgb().convert("CMYK"), "JPEG"), "RGB"),
    "rgb.jpg": (lambda: save(rgb(), "JPEG", quality=90), "RGB"),
    "float.tif": (lambda: save(Image.fromarray(np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)), "TIFF"), "L"),
    "tiny-1x1.png": (lambda: save(Image.new("RGB", (1, 1), (200, 10, 30)), "PNG"), "RGB"),
    "wide-3000x1.png": (lambda: save(rgb(1, 3000), "PNG"), "RGB"),
    "tall-2x1500.png": (lambda: save(rgb(1500, 2), "PNG"), "RGB"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_odd_images_round_trip(tmp_path, name):
    make, mode = GOOD[name]
    src = tmp_path / name
    src.write_bytes(make())
    with Image.open(src) as im:
        size = im.size
    cg, out = tmp_path / "x.cgdm", tmp_path / "x.png"
    res = cli("encode", str(src), "-o", str(cg), "-q", "1", "--base-only", "-Q")
    assert res.exit_code == 0, res.output
    res = cli("decode", str(cg), "-o", str(out), "-Q")
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.size == size and im.mode == mode
        if name == "rgba.png":  # alpha is lossless
            assert np.array_equal(np.asarray(im)[..., 3], np.asarray(Image.open(src))[..., 3])


def _truncated_png() -> bytes:
    data = save(rgb(64, 64), "PNG")
    return data[: len(data) * 2 // 3]


def _truncated_jpeg() -> bytes:
    data = save(rgb(64, 64), "JPEG")
    return data[: len(data) // 2]


def _bomb_png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b""))
            + png_chunk(b"IEND", b""))


BAD = {
    "text.png": (lambda: b"hello, not an image", "not a readable image"),
    "empty.jpg": (lambda: b"", "not a readable image"),
    "truncated.png": (_truncated_png, "not a readable image"),
    "truncated.jpg": (_truncated_jpeg, "not a readable image"),
    "too-wide.png": (lambda: _bomb_png(40000, 1), "32768 px per side"),
    "too-many-pixels.png": (lambda: _bomb_png(9000, 9000), "67108864 pixels"),
    "pillow-bomb.png": (lambda: _bomb_png(30000, 30000), "too large"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_images_fail_cleanly(tmp_path, name):
    make, message = BAD[name]
    src = tmp_path / name
    src.write_bytes(make())
    res = cli("encode", str(src), "-o", str(tmp_path / "x.cgdm"))
    assert message in one_line_error(res)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_directory_as_input(tmp_path):
    res = cli("encode", str(tmp_path), "-o", str(tmp_path / "x.cgdm"))
    assert one_line_error(res, 2) == f"cgdm: error: {tmp_path}: is a folder, not a file (give the files in it, e.g. {tmp_path}/*)"


# ------------------------------------------------------------------------ output policy


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy")
    src = d / "in.png"
    rgb().save(src)
    assert cli("encode", str(src), "-o", str(d / "in.cgdm"), "-Q", "--base-only").exit_code == 0
    return src, d / "in.cgdm"


def test_existing_output_needs_force(coded, tmp_path):
    src, cg = coded
    for cmd, out in ((["encode", str(src)], tmp_path / "o.cgdm"), (["decode", str(cg)], tmp_path / "o.png")):
        out.write_bytes(b"precious")
        err = one_line_error(cli(*cmd, "-o", str(out), "-Q"))
        assert "already exists" in err and "--force" in err
        assert out.read_bytes() == b"precious"
        res = cli(*cmd, "-o", str(out), "-Q", "--force")
        assert res.exit_code == 0, res.output
        assert out.read_bytes() != b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cgdm-")]


def test_never_overwrites_the_input_even_with_force(coded, tmp_path):
    src, cg = coded
    img = tmp_path / "in.png"
    shutil.copy(src, img)
    before = img.read_bytes()
    assert "is the input" in one_line_error(cli("encode", str(img), "-o", str(img), "-f"))
    link = tmp_path / "link.cgdm"
    link.symlink_to(img)
    assert "is the input" in one_line_error(cli("encode", str(img), "-o", str(link), "-f"))
    disguised = tmp_path / "really-cgdm.png"  # a .cgdm file with an image extension
    shutil.copy(cg, disguised)
    assert "is the input" in one_line_error(cli("decode", str(disguised), "-o", str(disguised), "-f"))
    assert img.read_bytes() == before and disguised.read_bytes() == cg.read_bytes()


def test_failed_decode_keeps_the_existing_output(coded, tmp_path):
    bad = tmp_path / "bad.cgdm"
    data = bytearray(coded[1].read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    one_line_error(cli("decode", str(bad), "-o", str(out), "-f", "-Q"))
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.cgdm", "o.png"]


def test_outputs_get_ordinary_permissions(coded, tmp_path):
    """mkstemp makes 0600 files; the published output must follow the umask like open()."""
    src, cg = coded
    old = os.umask(0o022)
    try:
        assert cli("encode", str(src), "-o", str(tmp_path / "o.cgdm"), "-Q").exit_code == 0
        assert cli("decode", str(cg), "-o", str(tmp_path / "o.png"), "-Q").exit_code == 0
    finally:
        os.umask(old)
    for name in ("o.cgdm", "o.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_interrupted_write_leaves_nothing(tmp_path):
    def writer(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(tmp_path / "o.bin", writer, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_no_clobber_is_atomic_even_if_the_file_appears_late(tmp_path):
    """The existence check before the work cannot see a file created meanwhile; the link can."""
    out = tmp_path / "o.bin"

    def writer(f):
        out.write_bytes(b"theirs")  # another process wins the race
        f.write(b"ours")

    with pytest.raises(atomic.OutputExistsError):
        atomic.write_with(out, writer, overwrite=False)
    assert out.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["o.bin"]


# ------------------------------------------------------------------------------- limits


def test_limits_from_options_and_environment(coded, tmp_path):
    src, cg = coded  # 40x24 = 960 pixels
    for args, env in (((), {"CGDM_MAX_PIXELS": "959"}), (("--max-pixels", "959"), None),
                      (("--max-side", "39"), None), ((), {"CGDM_MAX_SIDE": "39"})):
        err = one_line_error(cli(*args, "encode", str(src), "-o", str(tmp_path / "o.cgdm"), env=env))
        assert "limit" in err
        assert "limit" in one_line_error(cli(*args, "decode", str(cg), "-o", str(tmp_path / "o.png"), env=env))
        assert cli(*args, "info", str(cg), env=env).exit_code == 0  # info decodes no pixel
    assert list(tmp_path.iterdir()) == []
    assert cli("--max-pixels", "960", "--max-side", "40", "info", str(cg)).exit_code == 0
    res = cli("info", str(cg), env={"CGDM_MAX_PIXELS": "960"})
    assert res.exit_code == 0


@pytest.mark.parametrize("value", ["0", "-5", "lots", str((1 << 26) + 1)])
def test_bad_limit_settings_are_usage_errors(coded, value):
    res = cli("info", str(coded[1]), env={"CGDM_MAX_PIXELS": value})
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_lowered_pixel_limit_caps_the_file_size(tmp_path):
    from cgdm_codec.container import FILE_BYTES_PER_PIXEL, FILE_BYTES_SLACK, FormatError, Limits, read_file

    lim = Limits(max_pixels=100)
    p = tmp_path / "big.cgdm"
    with open(p, "wb") as fh:
        fh.truncate(FILE_BYTES_SLACK + FILE_BYTES_PER_PIXEL * 100 + 1)  # sparse
    with pytest.raises(FormatError, match="file too large"):
        read_file(p, lim)


# ------------------------------------------------------------------------------ weights


@pytest.mark.torch
def test_damaged_weights_are_refused(coded, tmp_path, monkeypatch):
    from cgdm_codec import generations
    from cgdm_codec.errors import WeightsError
    from cgdm_codec.weights import base_weights_path

    base = base_weights_path()
    copy = tmp_path / base.name
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0x40  # one bit inside a tensor: safetensors would load it happily
    copy.write_bytes(bytes(data))
    shutil.copy(base.with_suffix(".json"), copy.with_suffix(".json"))
    learned = tmp_path / "learned.cgdm"  # a file of the learned base: its decode reads these weights
    res = cli("encode", str(coded[0]), "-o", str(learned), "-Q", "--base-only", "--base", "hyperprior")
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("CGDM_BASE_WEIGHTS", str(copy))
    with pytest.raises(WeightsError, match="damaged"):
        generations.load_bundle()
    err = one_line_error(cli("decode", str(learned), "-o", str(tmp_path / "o.png"), "-Q"))
    assert "sha256" in err and "manifest" in err
    copy.with_suffix(".json").unlink()
    monkeypatch.setenv("CGDM_BASE_WEIGHTS", str(copy))
    generations.clear_cache()
    assert "manifest" in one_line_error(cli("decode", str(learned), "-o", str(tmp_path / "o.png"), "-Q"))
    assert not (tmp_path / "o.png").exists()


def test_file_from_other_weights_names_both_identifiers(coded, tmp_path):
    from cgdm_codec.container import parse, serialize
    from dataclasses import replace

    f = parse(coded[1].read_bytes())
    other = tmp_path / "other.cgdm"
    other.write_bytes(serialize(replace(f, weights_id=b"\xde\xad\xbe\xef")))
    err = one_line_error(cli("decode", str(other), "-o", str(tmp_path / "o.png"), "-Q"))
    assert "deadbeef" in err and f.weights_id.hex() in err


# ---------------------------------------------------- issue 24: outputs checked before the work


def _no_work(monkeypatch):
    """Make the codec itself fail loudly: the tests below must stop before it runs."""
    from cgdm_codec import pipeline

    def boom(*a, **k):
        raise AssertionError("the codec ran before the output was checked")

    monkeypatch.setattr(pipeline, "encode_image", boom)
    monkeypatch.setattr(pipeline, "decode_image", boom)


def test_output_folder_is_checked_before_any_work(coded, tmp_path, monkeypatch):
    """Encode used to find out only after the whole encode, naming its temporary file
    (``nodir/sub/.cgdm-s3vvf_o5.part: No such file or directory``)."""
    src, cg = coded
    _no_work(monkeypatch)
    for cmd, name in ((["encode", str(src)], "x.cgdm"), (["decode", str(cg)], "x.png")):
        out = tmp_path / "nodir" / "sub" / name
        err = one_line_error(cli(*cmd, "-o", str(out)))
        assert err == f"cgdm: error: {out}: folder {out.parent} does not exist"
    assert list(tmp_path.iterdir()) == []


def _refuses_new_files(folder: str) -> bool:
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(name)
    return False


@pytest.mark.skipif(not _refuses_new_files("/sys"), reason="needs a folder that refuses new files")
def test_unwritable_folder_is_named_not_the_temporary_file(coded, monkeypatch):
    """sysfs refuses new files even to root (where chmod 0555 would not stop anyone)."""
    src, cg = coded
    _no_work(monkeypatch)
    for cmd, name in ((["encode", str(src)], "x.cgdm"), (["decode", str(cg)], "x.png")):
        err = one_line_error(cli(*cmd, "-o", f"/sys/{name}"))
        assert err.startswith(f"cgdm: error: /sys/{name}: cannot create a file in folder /sys (")
        assert ".cgdm-" not in err and ".part" not in err


def test_write_errors_name_the_output_not_the_temporary_file(tmp_path, monkeypatch):
    def writer(f):
        raise OSError(28, "No space left on device")

    out = tmp_path / "o.cgdm"
    with pytest.raises(OSError) as info:
        atomic.write_with(out, writer, overwrite=False)
    assert info.value.filename == str(out) and info.value.strerror == "No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_as_the_output_name(coded, tmp_path):
    src, _ = coded
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in.cgdm").mkdir()  # the output's name is taken by a folder
    err = one_line_error(cli("encode", str(src), "-o", str(tmp_path / "d") + "/", "-Q", "--base-only"))
    assert "is a folder" in err


# ------------------------------------------------------------------ issue 24: input notes


def _frames(fmt: str, n: int) -> bytes:
    frames = [Image.fromarray(textured(24, 40, seed=i)) for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("name, data, note", [
    ("anim.gif", lambda: _frames("GIF", 3), "3 frames"),
    ("pages.tif", lambda: _frames("TIFF", 2), "2 frames"),
    ("rgb16.png", lambda: png_16bit_rgb(24, 40), "16-bit input reduced to 8 bits"),
    ("gray16.png", lambda: save(Image.fromarray(np.full((24, 40), 50000, np.uint16)), "PNG"),
     "16-bit input reduced to 8 bits"),
])
def test_inputs_that_lose_something_say_so(tmp_path, name, data, note):
    src = tmp_path / name
    src.write_bytes(data())
    res = cli("encode", str(src), "-o", str(tmp_path / "x.cgdm"), "--base", "av1", "--base-only")
    assert res.exit_code == 0, res.output
    notes = [line for line in res.stderr.splitlines() if "note:" in line]
    assert len([n for n in notes if note in n]) == 1, res.stderr
